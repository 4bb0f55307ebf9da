"""The one bridge between Flax NNX modules and pure functions of a params pytree.

Model code builds a module once to create its params and, at every call, merges the
params back into a cached abstract graph definition:

    params = pure.params_of(CouplingNet(4, 64, 8, rngs=nnx.Rngs(params=key)))
    graphdef = pure.graphdef(CouplingNet, 4, 64, 8)     # cached, no arrays allocated
    y = pure.apply(graphdef, params, x)                 # traceable: jit, vmap, grad

The params are plain nested dicts of arrays (``nnx.to_pure_dict``), so checkpoints
hold no NNX types and nothing outside the model code sees a module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flax import nnx

from jaxood.typing import Params


def graphdef(factory: Callable[..., nnx.Module], *args: Any, **kwargs: Any):
    """The NNX graph definition of ``factory(*args, **kwargs, rngs=...)``.

    The module is built abstractly (``nnx.eval_shape``: no arrays allocated, no
    random numbers drawn) and the result is cached, so every call with equal
    arguments returns the same hashable graph definition.

    Args:
        factory: a module class, or any callable taking the same arguments plus a
            keyword ``rngs``; must be hashable (a bound method of a frozen dataclass
            is).
        *args, **kwargs: hashable constructor arguments (ints, strings, tuples).

    Returns:
        The ``nnx.GraphDef`` shared by every module of this structure.
    """
    return _graphdef(factory, args, tuple(sorted(kwargs.items())))


@functools.cache
def _graphdef(factory, args, kwargs):
    abstract = nnx.eval_shape(lambda: factory(*args, **dict(kwargs), rngs=nnx.Rngs(0)))
    return nnx.split(abstract)[0]


def params_of(module: nnx.Module) -> Params:
    """The module's state as a pure nested dict of arrays (its params pytree)."""
    return nnx.to_pure_dict(nnx.state(module))


def merge(graph: Any, params: Params) -> nnx.Module:
    """A module with the structure ``graph`` holding ``params`` (for methods that
    update the state, such as a data-dependent init; read it back with
    :func:`params_of`)."""
    return nnx.merge(graph, params)


def apply(graph: Any, params: Params, *inputs: Any) -> Any:
    """``module(*inputs)`` for the module ``graph`` with ``params``: a pure function."""
    return nnx.merge(graph, params)(*inputs)
