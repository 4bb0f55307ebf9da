"""Shared pytest setup: strict rank promotion, float32, a PRNG key fixture, and a
persistent compilation cache."""

import os
from pathlib import Path

# Most of the suite's time is XLA compilation, and many tests (and the pipelines
# that test_reproduce and test_docs start in subprocesses, which inherit these
# variables) compile the same programs again: a disk cache compiles each once per
# run, and keeps them for the next run. Set before jax is imported.
CACHE = Path(__file__).resolve().parent.parent / ".jax_cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    """A fresh PRNG key; tests split or fold it, never reuse a key twice."""
    return jax.random.key(0)


@pytest.fixture(scope="session")
def data_dir():
    """The prepared offline data (``make test`` prepares it first)."""
    from jaxood.data import default_data_dir, prepare

    path = default_data_dir()
    prepare(data_dir=path)
    return path
