"""Data: offline tfds datasets, synthetic OOD sets, preprocessing, bits/dim."""

from jaxood.data.datasets import available, load
from jaxood.data.errors import (
    DataError,
    SourceMissingError,
    UnknownDatasetError,
    UnknownSplitError,
)
from jaxood.data.prepare import default_data_dir, is_prepared, prepare
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
