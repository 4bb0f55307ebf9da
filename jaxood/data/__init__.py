"""Data: offline tfds datasets, synthetic OOD sets, preprocessing, bits/dim.

Preprocessing and bits/dim import without tensorflow-datasets, so that the models,
detectors and LID (which import them) run where only JAX is installed, e.g. on an
accelerator host scoring arrays it was sent; ``load``, ``available`` and the prepare
step import tfds on first use.
"""

import importlib
from typing import TYPE_CHECKING

from jaxood.data.errors import (
    DataError,
    SourceMissingError,
    UnknownDatasetError,
    UnknownSplitError,
)
from jaxood.data.preprocess import (
    bits_per_dim,
    check_model_space,
    dequantize,
    mutate,
    pad,
    resize,
    to_model_space,
    to_uint8,
    to_unit_interval,
)

__all__ = [
    "DataError",
    "SourceMissingError",
    "UnknownDatasetError",
    "UnknownSplitError",
    "available",
    "bits_per_dim",
    "check_model_space",
    "default_data_dir",
    "dequantize",
    "is_prepared",
    "load",
    "mutate",
    "pad",
    "prepare",
    "resize",
    "to_model_space",
    "to_uint8",
    "to_unit_interval",
]

# Name -> the submodule that defines it; none of these names is a submodule's.
_NEEDS_TFDS = {
    "available": "datasets",
    "load": "datasets",
    "default_data_dir": "preparation",
    "is_prepared": "preparation",
    "prepare": "preparation",
}

if TYPE_CHECKING:
    from jaxood.data.datasets import available, load
    from jaxood.data.preparation import default_data_dir, is_prepared, prepare


def __getattr__(name: str):
    if name in _NEEDS_TFDS:
        module = importlib.import_module(f"{__name__}.{_NEEDS_TFDS[name]}")
        globals()[name] = getattr(module, name)  # __getattr__ runs once per name
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
