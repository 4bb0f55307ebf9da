"""Value checks (NaN, range) that hold in eager code and under ``jit``.

jaxood's public functions check shapes and dtypes statically (at trace time). Values
are checked with :func:`check`, which adapts to where it runs:

- on concrete arrays (a plain call) it reads the predicate on the host and raises
  :class:`InputError` at once;
- on traced arrays (inside ``jit``, ``vmap``, ``grad``, ``lax.scan`` ...) it is a
  :func:`jax.experimental.checkify.debug_check`: free when nobody asks, and an
  error flag carried out of the compiled program when the caller wraps it in
  ``checkify.checkify``.

Every public entry point that takes data (``flows.log_prob``/``encode``/``decode``/
``init``, ``flows.log_prob_images``, ``lid.flow_spectra`` and the LID estimators,
``vae.elbo``/``importance_estimates``, the detectors) calls these checks on its
arguments before its jitted core, so a plain call is checked (a few reductions and
one flag read on the host) and the compiled scoring program is unchanged. Inside your
own ``jit`` the same checks are traced into your program; turn them on with
:func:`checked`::

    score = jaxood.checks.checked(jax.jit(lambda x: flows.log_prob(m, p, x).total))
    score(x)            # raises InputError naming x if x has NaN or 0..255 values

or, to inspect the error yourself::

    err, out = checkify.checkify(jax.jit(fn))(x)
    err.throw()         # a JaxRuntimeError (a ValueError) with the same message
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import checkify as _checkify_internals  # see _error_code_of
from jax.experimental import checkify

from jaxood.typing import Array

# Slack on the model-space bounds: float32 rounding of (k + 0.5) / 256 - 0.5.
MODEL_SPACE_SLACK = 1e-6
_CHECKIFY_SUFFIX = " (`check` failed)"


class InputError(ValueError):
    """A value check failed: the message names the argument, the value and the fix."""


def is_traced(*trees: Any) -> bool:
    """Whether any leaf of ``trees`` is a tracer (we are inside a JAX transform)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(trees))


def check(pred: Any, message: str, **values: Any) -> None:
    """Raises :class:`InputError` unless ``pred`` holds; traceable.

    Args:
        pred: a boolean scalar (array or Python bool).
        message: ``str.format`` template over ``values``; one line naming the
            argument, its value and the fix.
        **values: scalars shown in the message (arrays: read only on failure).
    """
    if not is_traced(pred, values):
        if not bool(pred):
            shown = {k: _show(v) for k, v in values.items()}
            raise InputError(message.format(**shown))
        return
    with _error_code_of(message):
        checkify.debug_check(pred, message, **values)


@contextlib.contextmanager
def _error_code_of(message: str):
    """Numbers the traced check by its message instead of by a process counter.

    checkify tags each traced check with ``next_code()``, a counter over the whole
    process, and that integer is a constant of the traced program even when the
    check is dropped (no ``checkify`` around it). The same program traced twice
    then differs, so the persistent compilation cache never hits: the VAE pipeline
    compiled its training step once per setting, identical apart from that number.
    A code derived from the message is the same on every trace; two checks that
    share it share their message template too, so a failed one still reads right.
    Codes from 2**30 up stay clear of checkify's own counter (NaN, index checks).
    Of several failed checks checkify reports the lowest code, which is now set by
    the messages, not by program order: the checks here are written so that one
    bad value fails one check.
    """
    counter = getattr(_checkify_internals, "next_code", None)
    if counter is None:  # another jax: keep its numbering
        yield
        return
    digest = hashlib.sha256(message.encode()).digest()
    code = 2**30 + int.from_bytes(digest[:4], "little") % 2**29
    _checkify_internals.next_code = lambda: code
    try:
        yield
    finally:
        _checkify_internals.next_code = counter


def _show(value: Any) -> Any:
    """A host value for messages: 0-d arrays as Python scalars."""
    if hasattr(value, "shape") and np.ndim(value) == 0:
        return np.asarray(value).item()
    return value


def throw(error: checkify.Error) -> None:
    """Raises a failed check of a checkify ``error`` as :class:`InputError`.

    Reads the error flag (a few scalars) on the host: the one synchronisation a
    checked call costs.
    """
    message = error.get()
    if message:
        raise InputError(message.split(_CHECKIFY_SUFFIX)[0])


def checked(fn: Callable) -> Callable:
    """``fn`` with every :func:`check` inside it active, raising :class:`InputError`.

    ``fn`` may be jitted; jit it outside (``checked(jax.jit(f))``) so that the
    checks are compiled into the same program.
    """
    checkified = checkify.checkify(fn, errors=checkify.user_checks)

    @functools.wraps(fn)
    def run(*args, **kwargs):
        error, out = checkified(*args, **kwargs)
        throw(error)
        return out

    return run


# ----------------------------------------------------------------- value checks


def finite(x: Array, name: str, fix: str = "") -> Array:
    """Checks that ``x`` has no NaN/inf; returns ``x``."""
    bad = jnp.sum(~jnp.isfinite(x))
    check(
        bad == 0,
        f"{name} contains {{count}} NaN or inf values out of {int(np.size(x))}."
        + (f" {fix}" if fix else ""),
        count=bad,
    )
    return x


def in_range(
    x: Array, name: str, low: float, high: float, fix: str, space: str = ""
) -> Array:
    """Checks that ``x`` is finite and inside ``[low, high]``; returns ``x``.

    ``space`` names the interval in the message (e.g. "model space").
    """
    finite(x, name, fix)
    if np.size(x) == 0:
        return x
    # Over the finite values only: NaN and inf are finite()'s to report (traced,
    # the order of two failed checks is not program order; see _error_code_of).
    ok = jnp.isfinite(x)
    x_min, x_max = jnp.min(jnp.where(ok, x, high)), jnp.max(jnp.where(ok, x, low))
    check(
        (x_min >= low) & (x_max <= high),
        f"{name} has values in [{{x_min:.4g}}, {{x_max:.4g}}], outside "
        f"{space + ' ' if space else ''}[{round(low, 4):g}, {round(high, 4):g}]. "
        f"{fix}",
        x_min=x_min,
        x_max=x_max,
    )
    return x


def model_space(x: Array, name: str = "x") -> Array:
    """Checks that ``x`` is finite and inside flow model space ``[-0.5, 0.5]``."""
    return in_range(
        x,
        name,
        -0.5 - MODEL_SPACE_SLACK,
        0.5 + MODEL_SPACE_SLACK,
        "Map uint8 pixels (0..255) with jaxood.data.to_model_space (evaluation) "
        "or jaxood.data.dequantize (training).",
        "model space",
    )


def unit_interval(x: Array, name: str = "x") -> Array:
    """Checks that ``x`` is finite and inside ``[0, 1]`` (VAE input space)."""
    return in_range(
        x, name, 0.0, 1.0, "Map uint8 pixels with jaxood.data.to_unit_interval."
    )


def positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """A static integer argument ``≥ minimum`` (bools and floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"{name} must be an integer ≥ {minimum}, got {value!r} "
            f"({type(value).__name__}); pass int({value!r}) if you meant it."
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value}.")
    return int(value)


def float_array(x: Any, name: str, fix: str = "") -> None:
    """Static check: ``x`` is an array (not a list) of float32 or float64."""
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise TypeError(
            f"{name} must be an array, got {type(x).__name__}. Wrap it with "
            "jnp.asarray(..., jnp.float32)."
        )
    if x.dtype not in (jnp.float32, jnp.float64):
        raise TypeError(
            f"{name} must be floating point (float32 or float64), got dtype "
            f"{x.dtype}. " + (fix or f"Cast with {name}.astype(jnp.float32).")
        )
