"""Shared pytest setup: strict rank promotion, float32, a PRNG key fixture."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The suite is dominated by XLA compilation of small programs, not by running
# them: without LLVM's optimisation passes tests/test_glow.py took 106 s instead
# of 186 s on 2 cores. No fast-math either way, but float32 sums may be ordered
# differently, so a test must not depend on the rounding of one order. The
# fusion emitters (XLA's MLIR path for fused loops) cost compile time the tests
# never win back: switching them off took the compile of a small Glow's training
# step from 1.8 s to 0.95 s (affine) and 3.9 s to 2.5 s (spline). Set before the
# backend starts; the pipeline subprocesses inherit them.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()
if "xla_cpu_use_fusion_emitters" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
# Many tests compile the same programs (the smoke Glow's train step and scoring in
# the pipeline tests and in their subprocesses, the shipped Glow in the API tests
# and the Quickstart): one compilation cache on disk for the two make-test workers
# and every subprocess. Keys hold the program, the XLA flags and the jax version,
# so a stale entry is never used. Set before jax is imported (it reads JAX_*).
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    str(Path(tempfile.gettempdir()) / f"jaxood-tests-xla-cache-{os.getuid()}"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

import jax
import pytest

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
