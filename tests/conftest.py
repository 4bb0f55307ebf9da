"""Shared pytest setup: strict rank promotion, float32, a PRNG key fixture."""

import os

import jax
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite is dominated by XLA compilation of small programs, not by running
# them: without LLVM's optimisation passes tests/test_glow.py took 106 s instead
# of 186 s on 2 cores. No fast-math either way, but float32 sums may be ordered
# differently, so a test must not depend on the rounding of one order. Set
# before the backend starts; the pipeline subprocesses inherit it.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()
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
