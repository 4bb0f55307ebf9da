"""Shared pytest setup: strict rank promotion, float32, a PRNG key fixture."""

import atexit
import os
import shutil
import tempfile

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

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# A compilation cache on disk for this process alone: every train.fit and pipeline
# run jits new function objects for programs compiled before, and the cache turns
# those recompilations into loads. It is not shared with other processes (neither
# the other make-test worker nor the tests' subprocesses, which do not inherit it):
# on a fresh 2-core machine (2026-12-02) a worker segfaulted twice, at the same
# test, inside XLA while deserialising a smoke-Glow train step that another process
# had written to the then shared cache; written and read by one process, it loads.
_CACHE = tempfile.mkdtemp(prefix="jaxood-tests-xla-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


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
