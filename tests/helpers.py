"""Helpers shared by several test modules."""

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
