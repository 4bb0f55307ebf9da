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
    """The environment of a subprocess that sees ``count`` host CPU devices (the
    device count is fixed when the backend starts), plus ``extra`` variables."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} "
    flags += f"--xla_force_host_platform_device_count={count}"
    return {**os.environ, **extra, "XLA_FLAGS": flags.strip()}
