"""The bijector contract every flow layer follows (distrax naming, explicit params).

A bijector is a static, hashable description (a frozen dataclass: usable as a
``jax.jit`` static argument); its parameters are a separate pytree, so every method
is a pure function of ``(params, input)`` that composes with ``jit``, ``vmap``,
``grad`` and ``jvp``:

    bijector = Coupling("affine", hidden=64)
    params = bijector.init(key, (16, 16, 4))          # event shape (H, W, C)
    params = bijector.data_init(params, x)            # optional, data-dependent
    y, log_det = bijector.forward_and_log_det(params, x)      # log_det: (B,)
    x, inv_log_det = bijector.inverse_and_log_det(params, y)  # = -log_det

Inputs are batches ``(B, H, W, C)``; log-determinants are in nats, summed over every
event axis, one per example. Unlike distrax, parameters are not stored in the
bijector: restoring a checkpoint is restoring a pytree.

References: the distrax ``Bijector`` interface (``forward_and_log_det``,
``inverse_and_log_det``); Papamakarios et al., "Normalizing Flows for Probabilistic
Modeling and Inference", JMLR 2021 (change of variables).
"""

from __future__ import annotations

import abc

from jaxood.typing import Array, Params, PRNGKey


class Bijector(abc.ABC):
    """Base class of jaxood's bijectors; subclasses are frozen dataclasses.

    Required: :meth:`init`, :meth:`forward_and_log_det`,
    :meth:`inverse_and_log_det`. Optional: :meth:`data_init` (the default keeps the
    params). Every method must be traceable: no Python control flow on array
    values, no host transfers.
    """

    @abc.abstractmethod
    def init(self, key: PRNGKey, shape: tuple[int, ...]) -> Params:
        """Random (data-independent) params for inputs of event shape ``shape``.

        Args:
            key: PRNG key.
            shape: event shape ``(H, W, C)`` of one input, without the batch axis.

        Returns:
            A pytree of arrays (possibly empty).
        """

    def data_init(self, params: Params, x: Array) -> Params:
        """Params re-initialised from a batch ``x`` ``(B, H, W, C)`` (e.g. ActNorm's
        per-channel standardisation). The default returns ``params`` unchanged.

        Must return a pytree of the same structure, shapes and dtypes as
        ``params``, so that it can run inside ``jit`` and ``lax.scan``.
        """
        del x
        return params

    @abc.abstractmethod
    def forward_and_log_det(self, params: Params, x: Array) -> tuple[Array, Array]:
        """``y = f(x)`` and ``log |det ∂f/∂x|``.

        Args:
            params: from :meth:`init` (or training).
            x: ``(B, H, W, C)`` batch.

        Returns:
            ``(y, log_det)``: ``y`` a batch of the output event shape, ``log_det``
            ``(B,)`` in nats.
        """

    @abc.abstractmethod
    def inverse_and_log_det(self, params: Params, y: Array) -> tuple[Array, Array]:
        """``x = f⁻¹(y)`` and ``log |det ∂f⁻¹/∂y|`` (the negative of the forward
        log-det at x).

        Args:
            params: as for :meth:`forward_and_log_det`.
            y: ``(B, ...)`` batch in the output space.

        Returns:
            ``(x, log_det)`` with ``log_det`` of shape ``(B,)`` in nats.
        """
