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
padding, never an image. Under ``with jax.set_mesh(mesh):`` those helpers and
``train.make_train_step`` use that mesh without being told (:func:`current_mesh`).
Per-example code that explicit axes cannot type (loops, rejection samplers, ODE
solvers) runs per device through :func:`per_shard`; docs/parallel.md lists where.
Batched LAPACK work that is not split over a mesh of several CPU devices runs
under :func:`single_device` (a replicated one can hang, see there).

On several hosts call ``jax.distributed.initialize()`` first; each process then
reads its own slice of the data (``jax.process_index()`` of
``jax.process_count()``) and ``data_mesh`` spans every host's devices.
"""

from __future__ import annotations

import contextlib
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


def single_device(mesh: Mesh | None = None):
    """A context in which new arrays and computations sit on one device, when
    ``mesh`` (default: :func:`current_mesh`) holds several CPU devices; a no-op
    otherwise. Use it around batched LAPACK work that is not split over the mesh.

    Under ``jax.set_mesh`` a host array becomes *replicated*, so a computation on it
    runs once per device. jaxlib's CPU kernels for ``eigvalsh``, ``svd`` and the like
    split a batch over XLA's intra-op thread pool and wait for the pieces; when
    every thread of that pool runs such a kernel (one per CPU device, as many devices
    as cores) nothing is left to run the pieces and the process hangs at 0 % CPU:
    ``lid.lpca`` of 48 MNIST-5k digits against 3,600 (1,000 neighbours) did on 2
    forced host devices and 2 cores (all threads waiting, two inside ``ssyevd``'s
    batch map), and took 4 s inside this context. Its arrays belong to a one-device
    mesh and do not mix with the outer mesh's: make the inputs from host arrays
    inside it and bring the results to the host (``float``, ``np.asarray``) there.
    """
    mesh = current_mesh(mesh)
    if mesh is None or sum(d.platform == "cpu" for d in mesh.devices.flat) < 2:
        return contextlib.nullcontext()
    return jax.set_mesh(data_mesh(list(mesh.devices.flat)[:1]))


def current_mesh(mesh: Mesh | None = None) -> Mesh | None:
    """``mesh`` if given, else the mesh set with ``jax.set_mesh`` when it has a
    ``"data"`` axis, else None (one device, nothing sharded).

    The batch helpers (``batching.map_batches``, ``flows.log_prob_images``,
    ``train.make_train_step``) take ``mesh=None`` to mean this, so a program that
    runs under ``with jax.set_mesh(parallel.data_mesh()):`` is data-parallel
    without passing the mesh around (the experiments' entry point does so).
    """
    if mesh is not None:
        return mesh
    ambient = jax.sharding.get_mesh()
    return None if ambient.empty or AXIS not in ambient.shape else ambient


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


def _batch_axes(x: Array):
    """The mesh axes that the first axis of ``x`` is split over in its type (an
    explicit mesh: even one of size 1), or None."""
    spec = getattr(jax.typeof(x).sharding, "spec", ())
    return spec[0] if len(spec) else None


def batch_shards(x: Array) -> int:
    """How many pieces the first axis of ``x`` is split into (1 if unsharded);
    works on traced arrays (reads the sharding in the array's type)."""
    axes = _batch_axes(x)
    if axes is None:
        return 1
    axes = axes if isinstance(axes, tuple) else (axes,)
    return math.prod(jax.typeof(x).sharding.mesh.shape[a] for a in axes)


def reshape_batch(x: Array, shape: tuple[int, ...]) -> Array:
    """``x.reshape(shape)`` where the leading axis keeps its sharding.

    On a mesh with explicit axes JAX cannot infer the sharding of a reshape that
    splits or merges axes (a ``ShardingTypeError``); here the first output axis
    takes the first input axis's sharding and the others are replicated.
    """
    axes = _batch_axes(x)
    if axes is None:
        return x.reshape(shape)
    out = NamedSharding(jax.typeof(x).sharding.mesh, PartitionSpec(axes))
    return jax.lax.reshape(x, shape, out_sharding=out)


def batch_sharding(x: Array):
    """The sharding of ``x`` if its batch axis is split over explicit mesh axes,
    else None: the ``out_sharding`` for random draws of ``x``'s shape, which
    otherwise come out replicated and cannot be mixed with ``x`` in a select."""
    return None if _batch_axes(x) is None else jax.typeof(x).sharding


def like_batch(a: Array, x: Array) -> Array:
    """``a`` (same leading size as ``x``) with the batch sharding of ``x``.

    ``vmap`` over several arrays needs their mapped axes sharded alike on a mesh
    with explicit axes: an index ``jnp.arange(len(x))`` or per-example probes made
    inside a function are replicated while ``x`` is split. Elsewhere a no-op.
    """
    axes = _batch_axes(x)
    if axes is None or _batch_axes(a) == axes:
        return a
    out = NamedSharding(jax.typeof(x).sharding.mesh, PartitionSpec(axes))
    return jax.sharding.reshard(a, out)


def mesh_context(x: Array):
    """``jax.set_mesh`` of the mesh a concrete ``x`` is split over, or a no-op
    context: eager operations on arrays placed on explicit mesh axes need it (JAX
    asks for the mesh in context). Call outside ``jit``."""
    sharding = getattr(x, "sharding", None)
    if not isinstance(sharding, NamedSharding) or _batch_axes(x) is None:
        return contextlib.nullcontext()
    return jax.set_mesh(sharding.mesh)


def outside_mesh_context(x: Array | None = None):
    """A context without the mesh set by ``jax.set_mesh`` (inputs keep their
    shardings). diffrax's solvers trace their step with ``jax.eval_shape``, which
    fails inside ``shard_map`` while a mesh with explicit axes is set (jax 0.10).
    A no-op when no mesh is set, or when ``x`` is traced (``set_mesh`` cannot be
    entered inside ``jit``: call such code outside your own ``jit`` on a mesh)."""
    if jax.sharding.get_abstract_mesh().empty or isinstance(x, jax.core.Tracer):
        return contextlib.nullcontext()
    return jax.set_mesh(Mesh(np.empty((), object), ()))


def per_shard(fn: Callable, batch, *replicated):
    """``fn(batch, *replicated)`` with each device running its own slice of ``batch``.

    ``batch`` is an array or a pytree of arrays of one leading size, split over the
    mesh's batch axis like its split leaves; ``replicated`` (params, keys) go whole to
    every device. For code that explicit axes cannot type (loops over the batch
    axis, solvers that lose the mesh context), run inside ``shard_map``: ``fn``
    then sees plain per-device arrays. ``fn`` must treat examples independently.
    Unsharded (or on a mesh with automatic axes, where the compiler partitions),
    it is ``fn(batch, *replicated)``.
    """
    first = max(jax.tree.leaves(batch), key=lambda a: _batch_axes(a) is not None)
    if _batch_axes(first) is None:
        return fn(batch, *replicated)
    shards = batch_shards(first)
    if first.shape[0] % shards:
        raise ValueError(
            f"a batch of {first.shape[0]} does not split over {shards} devices: use "
            f"a multiple of {shards} (jaxood.parallel.shard_batch)."
        )
    sharding = jax.typeof(first).sharding
    batch = jax.tree.map(lambda a: like_batch(a, first), batch)
    spec = PartitionSpec(_batch_axes(first))
    local = jax.shard_map(
        fn,
        mesh=sharding.mesh,
        in_specs=(spec, *[PartitionSpec()] * len(replicated)),
        out_specs=spec,
        check_vma=False,  # fn's own constants (e.g. JVP basis vectors) are not
    )  # marked as varying over the mesh; each device runs plain per-example code
    return local(batch, *replicated)


def map_per_shard(fn: Callable, x: Array, *replicated):
    """``lax.map(lambda xi: fn(xi, *replicated), x)`` over the first axis, each
    device mapping its own slice (``lax.map`` walks an axis in order: it cannot run
    over a batch axis split by explicit mesh axes). Pass arrays ``fn`` needs
    (params) in ``replicated``, not by closure: ``shard_map`` cannot close over
    arrays placed on explicit mesh axes. See :func:`per_shard`."""

    def local(part, *rest):
        return jax.lax.map(lambda xi: fn(xi, *rest), part)

    return per_shard(local, x, *replicated)
