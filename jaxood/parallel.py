"""Data parallelism over a device mesh with ``jax.sharding`` (no ``pmap``).

A 1-D mesh with one axis, ``"data"``, over the local devices: batches are split
along their first axis, parameters are replicated. jaxood's functions take sharded
arrays as they are (``jit`` follows the input shardings), and their outputs keep
the batch sharding, with meshes from ``jax.make_mesh`` (explicit axes, the default)
and from ``jax.sharding.Mesh`` alike::

    mesh = jaxood.parallel.data_mesh()                 # every local device
    x = jaxood.parallel.shard_batch(mesh, x)           # B divisible by the devices
    params = jaxood.parallel.replicate(mesh, params)
    log_p = jaxood.flows.log_prob(model, params, x).total   # sharded like x

Sets of any size go through ``jaxood.batching.map_batches(..., mesh=mesh)`` (and
``flows.log_prob_images(..., mesh=mesh)``), which pads the last batch and drops the
padding, never an image. On several hosts call ``jax.distributed.initialize()``
first; each process then reads its own slice of the data
(``jax.process_index()`` of ``jax.process_count()``) and ``data_mesh`` spans every
host's devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxood.typing import Array

AXIS = "data"


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D ``"data"`` mesh (explicit axes) over ``devices`` (default: all)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh: no devices given.")
    return jax.make_mesh((len(devices),), (AXIS,), devices=devices)


def describe(mesh: Mesh) -> str:
    """One line naming the mesh and its devices, for a run's start-up log."""
    kinds = sorted({d.device_kind for d in mesh.devices.flat})
    return (
        f"mesh {dict(mesh.shape)} over {mesh.devices.size} device(s): "
        f"{', '.join(kinds)} ({jax.process_count()} process(es))"
    )


def shard_batch(mesh: Mesh, x) -> Array:
    """``x`` split along its first axis over the mesh's ``"data"`` axis.

    Raises a ``ValueError`` naming the sizes when the batch does not divide: pad
    it, or use ``map_batches(..., mesh=mesh)``, which pads and drops the padding.
    """
    devices = mesh.shape[AXIS]
    if np.shape(x)[0] % devices:
        raise ValueError(
            f"a batch of {np.shape(x)[0]} does not split over {devices} devices "
            f"of the '{AXIS}' axis: use a multiple of {devices}, or "
            "jaxood.batching.map_batches(..., mesh=mesh), which pads the last batch."
        )
    spec = PartitionSpec(AXIS, *([None] * (np.ndim(x) - 1)))
    return jax.device_put(x, NamedSharding(mesh, spec))


def replicate(mesh: Mesh, tree):
    """Every leaf of ``tree`` (params, optimizer state) copied to every device."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def batch_shards(x: Array) -> int:
    """How many pieces the first axis of ``x`` is split into (1 if unsharded);
    works on traced arrays (reads the sharding in the array's type)."""
    sharding = jax.typeof(x).sharding
    spec = getattr(sharding, "spec", ())
    axes = spec[0] if len(spec) else None
    if axes is None:
        return 1
    axes = axes if isinstance(axes, tuple) else (axes,)
    return math.prod(sharding.mesh.shape[a] for a in axes)


def reshape_batch(x: Array, shape: tuple[int, ...]) -> Array:
    """``x.reshape(shape)`` where the leading axis keeps its sharding.

    On a mesh with explicit axes JAX cannot infer the sharding of a reshape that
    splits or merges axes (a ``ShardingTypeError``); here the first output axis
    takes the first input axis's sharding and the others are replicated.
    """
    sharding = jax.typeof(x).sharding
    spec = getattr(sharding, "spec", ())
    if not len(spec) or spec[0] is None:
        return x.reshape(shape)
    out = PartitionSpec(spec[0], *([None] * (len(shape) - 1)))
    return jax.lax.reshape(x, shape, out_sharding=NamedSharding(sharding.mesh, out))


def map_per_shard(fn: Callable, x: Array):
    """``lax.map(fn, x)`` over the first axis, each device mapping its own slice.

    ``lax.map`` walks an axis in order, so on a mesh with explicit axes it cannot
    run over the sharded batch axis; here each device maps over its own images
    inside ``shard_map`` (nothing in ``fn`` sees a sharded array). Unsharded (or on
    a mesh with automatic axes, where the compiler partitions), it is ``lax.map``.
    """
    shards = batch_shards(x)
    if shards == 1:
        return jax.lax.map(fn, x)
    if x.shape[0] % shards:
        raise ValueError(
            f"a batch of {x.shape[0]} does not split over {shards} devices: use a "
            f"multiple of {shards} (jaxood.parallel.shard_batch)."
        )
    sharding = jax.typeof(x).sharding
    spec = PartitionSpec(sharding.spec[0])
    local = jax.shard_map(
        lambda part: jax.lax.map(fn, part),
        mesh=sharding.mesh,
        in_specs=spec,
        out_specs=spec,
        check_vma=False,  # fn's own constants (e.g. JVP basis vectors) are not
    )  # marked as varying over the mesh; each device runs plain per-image code
    return local(x)
