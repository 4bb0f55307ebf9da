"""Apply a jitted function over a large array in fixed-shape batches, with progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxood import parallel


def _join(*parts: Any) -> Any:
    if all(isinstance(p, np.ndarray) for p in parts):
        return np.concatenate(parts)  # already on the host: no round trip
    return jnp.concatenate(parts)


def map_batches(
    fn: Callable[[int, Any], Any],
    x,
    batch_size: int,
    *,
    desc: str = "batches",
    mesh=None,
):
    """``fn(batch_index, batch)`` over consecutive batches of ``x``, outputs joined.

    The last batch is padded with copies of its final element so that every call
    has the same shape (one compilation); the padded rows are dropped from the
    outputs; a set smaller than ``batch_size`` runs as one batch of its own size.
    Outputs stay on the device until the end, where they are concatenated and
    copied to the host in one transfer.

    Args:
        fn: returns a pytree of arrays with a leading batch axis of ``batch_size``.
        x: array with a leading example axis.
        batch_size: examples per call.
        desc: progress-bar label.
        mesh: a ``jaxood.parallel.data_mesh`` (default: the mesh set with
            ``jax.set_mesh``, if any): each batch is split over its devices
            (``batch_size`` is rounded up to a multiple of the device count;
            the padding is dropped as above).

    Returns:
        The pytree of ``fn``'s outputs as numpy arrays concatenated over batches,
        ``len(x)`` rows each.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(
            f"batch_size must be a positive integer, got {batch_size!r} "
            f"({type(batch_size).__name__})."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    n = len(x)
    if n == 0:
        raise ValueError(f"{desc}: x is empty (no examples).")
    batch_size = min(batch_size, n)  # a small set is one batch, not padded up
    mesh = parallel.current_mesh(mesh)
    if mesh is not None:
        devices = mesh.shape[parallel.AXIS]
        batch_size = -(-batch_size // devices) * devices
    outputs = []
    starts = range(0, n, batch_size)
    for i, start in enumerate(tqdm(starts, desc=desc, leave=False, disable=None)):
        batch = x[start : start + batch_size]
        real = len(batch)
        if real < batch_size:
            pad = np.repeat(np.asarray(batch[-1:]), batch_size - real, axis=0)
            batch = np.concatenate([np.asarray(batch), pad])
        if mesh is not None:
            batch = parallel.shard_batch(mesh, batch)
        outputs.append(fn(i, batch))
        if len(outputs) > 1:
            # Wait for the previous batch (no copy): keeps one batch in flight
            # behind the one being dispatched and makes the progress bar honest.
            jax.block_until_ready(outputs[-2])
    joined = jax.tree.map(_join, *outputs)
    return jax.tree.map(lambda a: np.asarray(a)[:n], jax.device_get(joined))
