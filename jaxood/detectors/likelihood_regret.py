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
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxood.train import make_optimizer
from jaxood.typing import Array, Params, PRNGKey
from jaxood.vae.model import VAE, check_images, elbo, importance_terms


class LikelihoodRegret(NamedTuple):
    """``regret`` is the anomaly score; the IWAE log p before and after, in nats."""

    regret: Array  # (B,)
    log_p_before: Array  # (B,)
    log_p_after: Array  # (B,)


def _refit_step(model: VAE, optimizer):
    """One Adam step of every input's own encoder copy (vmapped over inputs)."""

    def one(encoder, opt_state, decoder, image, key):
        def loss(enc):
            p = {"encoder": enc, "decoder": decoder}
            return -elbo(model, p, image[None], key)[0]

        updates, opt_state = optimizer.update(
            jax.grad(loss)(encoder), opt_state, encoder
        )
        return jax.tree.map(jnp.add, encoder, updates), opt_state

    return jax.vmap(one, in_axes=(0, 0, None, 0, 0))


@functools.partial(jax.jit, static_argnames=("model", "learning_rate", "weight_decay"))
def _refit_steps_jit(
    model, encoders, opt_states, decoder, x, keys, learning_rate, weight_decay
):
    optimizer = make_optimizer(
        learning_rate, optimizer="adam", weight_decay=weight_decay
    )
    return _refit_step(model, optimizer)(encoders, opt_states, decoder, x, keys)


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "chunk_size"))
def _iwae_per_input(model, encoders, decoder, x, keys, num_samples, chunk_size):
    def one(encoder, image, key):
        _, weights = importance_terms(
            model,
            {"encoder": encoder, "decoder": decoder},
            image[None],
            key,
            num_samples,
            chunk_size=chunk_size,
        )
        return jax.nn.logsumexp(weights[0]) - math.log(num_samples)

    return jax.vmap(one)(encoders, x, keys)


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
    batch = x.shape[0]
    fit_key, eval_key = jax.random.split(key)
    eval_keys = jax.random.split(eval_key, batch)
    copies = jax.tree.map(
        lambda a: jnp.broadcast_to(a, (batch, *a.shape)), params["encoder"]
    )
    optimizer = make_optimizer(
        learning_rate, optimizer="adam", weight_decay=weight_decay
    )
    encoders, opt_states = copies, jax.vmap(optimizer.init)(copies)
    # A host loop of jitted steps: on XLA:CPU a conv weight-gradient inside a
    # while loop (lax.fori_loop) runs ~8x slower here (shared/specs/performance.md).
    for i in range(steps):
        step_keys = jax.random.split(jax.random.fold_in(fit_key, i), batch)
        encoders, opt_states = _refit_steps_jit(
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
