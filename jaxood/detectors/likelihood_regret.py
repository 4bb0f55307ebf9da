"""Likelihood regret: how much a VAE's likelihood of x improves when its encoder is
re-fitted to x alone.

``LR(x) = log p(x; θ, φ*(x)) − log p(x; θ, φ)``: φ*(x) is a copy of the encoder
optimised on the negative ELBO of the single input (decoder θ fixed); both
log-likelihoods are IWAE estimates with the same draws. The in-distribution inputs
are already well encoded, so their regret is small; outliers gain more. Higher = OOD.

Each input gets a fresh copy of the encoder and a fresh Adam state; the copies are
vmapped across inputs; the optimisation steps are a host loop of one jitted step.

References: Xiao, Yan & Amit, "Likelihood Regret: An Out-of-Distribution Detection
Score for Variational Auto-encoder", NeurIPS 2020 (100 Adam steps, lr 2e-4,
weight decay 5e-5, IWAE with 1,000 samples before and after).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxood import parallel
from jaxood.train import make_optimizer
from jaxood.typing import Array, Params, PRNGKey
from jaxood.vae.model import (
    VAE,
    check_images,
    elbo,
    importance_terms,
    iwae_bound,
)


class LikelihoodRegret(NamedTuple):
    """``regret`` is the anomaly score; the IWAE log p before and after, in nats."""

    regret: Array  # (B,)
    log_p_before: Array  # (B,)
    log_p_after: Array  # (B,)


def _adam(learning_rate: float, weight_decay: float):
    return make_optimizer(learning_rate, optimizer="adam", weight_decay=weight_decay)


@functools.partial(jax.jit, static_argnames=("model", "learning_rate", "weight_decay"))
def _refit_step(
    model, encoders, opt_states, decoder, x, keys, learning_rate, weight_decay
):
    """One Adam step of every input's own encoder copy (vmapped over inputs)."""
    optimizer = _adam(learning_rate, weight_decay)

    def refit(per_input, decoder):
        def one(encoder, opt_state, image, key):
            def loss(enc):
                params = {"encoder": enc, "decoder": decoder}
                return -elbo(model, params, image[None], key)[0]

            grads = jax.grad(loss)(encoder)
            updates, opt_state = optimizer.update(grads, opt_state, encoder)
            return jax.tree.map(jnp.add, encoder, updates), opt_state

        return jax.vmap(one)(*per_input)

    # On a mesh each device re-fits the encoders of its own inputs.
    return parallel.per_shard(refit, (encoders, opt_states, x, keys), decoder)


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "chunk_size"))
def _iwae_per_input(model, encoders, decoder, x, keys, num_samples, chunk_size):
    def bounds(per_input, decoder):
        def one(encoder, image, key):
            _, weights = importance_terms(
                model,
                {"encoder": encoder, "decoder": decoder},
                image[None],
                key,
                num_samples,
                chunk_size=chunk_size,
            )
            return iwae_bound(weights[0])

        return jax.vmap(one)(*per_input)

    return parallel.per_shard(bounds, (encoders, x, keys), decoder)


def likelihood_regret(
    model: VAE,
    params: Params,
    x: Array,
    key: PRNGKey,
    *,
    steps: int = 100,
    learning_rate: float = 2e-4,
    weight_decay: float = 5e-5,
    num_samples: int = 1000,
    chunk_size: int | None = 100,
) -> LikelihoodRegret:
    """Likelihood regret of every image in ``x`` (inputs vmapped, steps jitted).

    Args:
        model, params: the trained VAE.
        x: ``(B, H, W, C)`` images in [0, 1].
        key: PRNG key (one sub-key per input: the ELBO draws of the re-fit and the
            IWAE draws).
        steps: Adam steps of the encoder re-fit per input.
        learning_rate, weight_decay: Adam's (L2 added to the gradient, as PyTorch's
            ``weight_decay``).
        num_samples: importance samples of both IWAE estimates.
        chunk_size: importance samples per vmapped chunk (must divide num_samples).

    Returns:
        :class:`LikelihoodRegret` (nats).
    """
    check_images(model, x)
    if steps < 0:
        raise ValueError(f"steps must be non-negative, got {steps}.")
    if chunk_size is not None and chunk_size > num_samples:
        chunk_size = num_samples
    # The per-input copies are made eagerly: on a mesh, in its context.
    with parallel.mesh_context(x):
        batch = x.shape[0]
        fit_key, eval_key = jax.random.split(key)
        eval_keys = jax.random.split(eval_key, batch)
        copies = jax.tree.map(
            lambda a: jnp.broadcast_to(a, (batch, *a.shape)), params["encoder"]
        )
        encoders = copies
        opt_states = jax.vmap(_adam(learning_rate, weight_decay).init)(copies)
        # A host loop of jitted steps: on XLA:CPU a conv weight-gradient inside a
        # while loop (lax.fori_loop) runs ~8x slower here (docs/performance.md).
        for i in range(steps):
            step_keys = jax.random.split(jax.random.fold_in(fit_key, i), batch)
            encoders, opt_states = _refit_step(
                model, encoders, opt_states, params["decoder"], x, step_keys,
                learning_rate, weight_decay,
            )  # fmt: skip
        # The same importance draws before and after: the difference has less noise.
        iwae = functools.partial(
            _iwae_per_input, model, decoder=params["decoder"], x=x, keys=eval_keys,
            num_samples=num_samples, chunk_size=chunk_size,
        )  # fmt: skip
        before, after = iwae(copies), iwae(encoders)
    return LikelihoodRegret(after - before, before, after)
