"""Shared pytest setup: strict rank promotion, float32, a PRNG key fixture."""

import os

import jax
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
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
