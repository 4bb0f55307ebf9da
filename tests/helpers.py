"""Helpers shared by several test modules."""

import os

import jax


def perturb(params, key, scale: float):
    """Adds N(0, scale^2) noise to every leaf: moves params off trivial init values."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    leaves = [
        leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
        for leaf, k in zip(leaves, keys, strict=False)
    ]
    return jax.tree.unflatten(tree, leaves)


def forced_devices_env(count: int, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that sees ``count`` host CPU devices.

    It gets its own XLA compilation cache (a sibling of the suite's): jax leaves the
    forced device count out of its cache key, so one-device and ``count``-device
    processes would otherwise load each other's executables.
    """
    cache = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    env = {**os.environ, **extra}
    env["XLA_FLAGS"] = (
        f"{os.environ.get('XLA_FLAGS', '')} "
        f"--xla_force_host_platform_device_count={count}"
    ).strip()
    if cache:
        env["JAX_COMPILATION_CACHE_DIR"] = f"{cache}-{count}-devices"
    return env
