"""jaxood: out-of-distribution detection with deep generative models, in JAX.

Subpackages load on first attribute access (PEP 562), so ``import jaxood`` does not
import JAX, Flax or orbax:

    import jaxood
    model = jaxood.flows.Glow(jaxood.flows.GlowConfig())   # imports jaxood.flows now
"""

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "checkpoint",
    "checks",
    "data",
    "detectors",
    "diffusion",
    "flows",
    "io",
    "lid",
    "metrics",
    "parallel",
    "plots",
    "train",
    "vae",
]
# Also importable, not re-exported by ``from jaxood import *``: helpers for model
# code, and ``typing`` (which would shadow the standard library's).
_OTHER_SUBMODULES = ("batching", "nets", "typing")

if TYPE_CHECKING:  # static analysers and IDEs see the real modules
    from jaxood import (  # noqa: F401
        batching,
        checkpoint,
        checks,
        data,
        detectors,
        diffusion,
        flows,
        io,
        lid,
        metrics,
        nets,
        parallel,
        plots,
        train,
        vae,
    )


def __getattr__(name: str):
    if name in __all__ or name in _OTHER_SUBMODULES:
        # import_module also binds the submodule as an attribute of this package,
        # so __getattr__ runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_OTHER_SUBMODULES])
