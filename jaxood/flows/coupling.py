"""Coupling layers: affine (Glow), additive (NICE) and rational-quadratic spline.

A coupling leaves one part ``x_a`` of its input unchanged and transforms the other
part ``x_b`` elementwise with parameters ``NN(x_a)``. Two partitions:

- ``"channel"``: ``x_a`` = first half of the channels, ``x_b`` = second half
  (``parity=1`` swaps them). The network sees only ``C/2`` channels.
- ``"checkerboard"``: ``x_a`` = pixels with ``(h + w + parity)`` even, all channels;
  the network sees ``x * mask`` and the transform is applied where the mask is 0.

Transforms of ``x_b`` with per-element network outputs:

- ``"affine"``: ``y = (x + shift) * sigmoid(raw + 2)``, shift and raw de-interleaved
  from the network output (Glow's bounded scale, shift then scale).
- ``"additive"``: ``y = x + shift``, log-det 0.
- ``"spline"``: monotone rational-quadratic spline on ``[-bound, bound]``.

The network ends in a zero-initialised conv, so at init the additive and spline
couplings are the identity and the affine one multiplies ``x_b`` by ``sigmoid(2)``.

References: Dinh et al., "Density estimation using Real NVP", ICLR 2017;
Kingma & Dhariwal, "Glow", NeurIPS 2018; Durkan et al., "Neural Spline Flows",
NeurIPS 2019.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from jaxood.flows import spline
from jaxood.flows.bijector import Bijector
from jaxood.nets import CouplingNet, pure
from jaxood.typing import Array, Params, PRNGKey

TRANSFORMS = ("affine", "additive", "spline")
PARTITIONS = ("channel", "checkerboard")
AFFINE_SCALE_OFFSET = 2.0
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class Coupling(Bijector):
    """A coupling bijector; the conditioner is a :class:`jaxood.nets.CouplingNet`."""

    transform: str = "affine"
    partition: str = "channel"
    parity: int = 0
    hidden: int = 128
    spline_bins: int = 8
    spline_bound: float = 3.0
    checkpoint: bool = False
    compute_dtype: str = "float32"

    def __post_init__(self):
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype must be one of {COMPUTE_DTYPES}, got "
                f"{self.compute_dtype!r}."
            )
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"transform must be one of {TRANSFORMS}, got {self.transform!r}."
            )
        if self.partition not in PARTITIONS:
            raise ValueError(
                f"partition must be one of {PARTITIONS}, got {self.partition!r}."
            )
        if self.parity not in (0, 1):
            raise ValueError(f"parity must be 0 or 1, got {self.parity}.")

    # ------------------------------------------------------------------ structure
    @property
    def params_per_element(self) -> int:
        return {"affine": 2, "additive": 1}.get(
            self.transform, spline.num_params(self.spline_bins)
        )

    def _net_channels(self, channels: int) -> tuple[int, int]:
        if self.partition == "channel":
            if channels % 2:
                raise ValueError(
                    f"channel coupling needs an even channel count, got {channels}."
                )
            half = channels // 2
            return half, half * self.params_per_element
        return channels, channels * self.params_per_element

    def _graphdef(self, channels: int):
        n_in, n_out = self._net_channels(channels)
        return pure.graphdef(CouplingNet, n_in, self.hidden, n_out)

    def _mask(self, shape: tuple[int, ...]) -> Array:
        """1 where the input conditions (is kept), shape (1, H, W, 1)."""
        h, w = shape[1], shape[2]
        rows = jnp.arange(h)[:, None]
        cols = jnp.arange(w)[None, :]
        mask = ((rows + cols + self.parity) % 2 == 0).astype(jnp.float32)
        return mask[None, :, :, None]

    def _split(self, x: Array) -> tuple[Array, Array]:
        half = x.shape[-1] // 2
        first, second = x[..., :half], x[..., half:]
        return (second, first) if self.parity else (first, second)

    def _merge(self, x_a: Array, y_b: Array) -> Array:
        parts = (y_b, x_a) if self.parity else (x_a, y_b)
        return jnp.concatenate(parts, axis=-1)

    # ------------------------------------------------------------------ params
    def init(self, key: PRNGKey, shape: tuple[int, ...]) -> Params:
        n_in, n_out = self._net_channels(shape[-1])
        net = CouplingNet(n_in, self.hidden, n_out, rngs=nnx.Rngs(params=key))
        return pure.params_of(net)

    def data_init(self, params: Params, x: Array) -> Params:
        """Initialises the network's inner ActNorms on the conditioning input."""
        net = pure.merge(self._graphdef(x.shape[-1]), params)
        net.initialize_from(self._conditioner_input(x))
        return pure.params_of(net)

    # ------------------------------------------------------------------ maps
    def _conditioner_input(self, x: Array) -> Array:
        if self.partition == "channel":
            return self._split(x)[0]
        return x * self._mask(x.shape)

    def _net_output(self, params: Params, x: Array) -> Array:
        graphdef = self._graphdef(x.shape[-1])

        def apply(p, inputs):
            return pure.apply(graphdef, p, inputs)

        if self.checkpoint:
            apply = jax.checkpoint(apply)
        inputs = self._conditioner_input(x)
        if self.compute_dtype != "float32":
            # Only the conditioner's convolutions run in the narrow type; its
            # output (scales, shifts, spline knots) and every log-determinant are
            # float32, so the likelihood is accumulated at full precision.
            narrow = jnp.dtype(self.compute_dtype)
            params = jax.tree.map(lambda a: a.astype(narrow), params)
            out = apply(params, inputs.astype(narrow)).astype(jnp.float32)
        else:
            out = apply(params, inputs)
        return out.reshape(*out.shape[:-1], -1, self.params_per_element)

    def _elementwise(self, h: Array, x: Array, inverse: bool) -> tuple[Array, Array]:
        if self.transform == "additive":
            shift = h[..., 0]
            return (x - shift if inverse else x + shift), jnp.zeros_like(x)
        if self.transform == "affine":
            shift, raw = h[..., 0], h[..., 1]
            log_scale = jax.nn.log_sigmoid(raw + AFFINE_SCALE_OFFSET)
            if inverse:
                return x * jnp.exp(-log_scale) - shift, -log_scale
            return (x + shift) * jnp.exp(log_scale), log_scale
        return spline.rational_quadratic_spline(
            x, h, bound=self.spline_bound, inverse=inverse
        )

    def _apply(self, params: Params, x: Array, inverse: bool) -> tuple[Array, Array]:
        h = self._net_output(params, x)
        if self.partition == "channel":
            x_a, x_b = self._split(x)
            y_b, log_det = self._elementwise(h, x_b, inverse)
            return self._merge(x_a, y_b), jnp.sum(log_det, axis=(1, 2, 3))
        mask = self._mask(x.shape)
        y, log_det = self._elementwise(h, x, inverse)
        y = mask * x + (1.0 - mask) * y
        return y, jnp.sum((1.0 - mask) * log_det, axis=(1, 2, 3))

    def forward_and_log_det(self, params: Params, x: Array) -> tuple[Array, Array]:
        return self._apply(params, x, inverse=False)

    def inverse_and_log_det(self, params: Params, y: Array) -> tuple[Array, Array]:
        # The conditioning part is unchanged, so the same network input is available.
        return self._apply(params, y, inverse=True)
