"""Training losses of flows: dequantized NLL (also on mutated inputs, for Ren et al.'s
background model) and Schirrmeister et al.'s outlier loss.

Losses are in nats per image (the bits/dim offset D ln 256 is a constant and is left
out of the gradient), as in the reference code, so that the outlier-loss weight
lambda = 6000 and temperature T = 1000 nats keep their meaning.

References: Schirrmeister et al., "Understanding Anomaly Detection with Deep
Invertible Networks through Hierarchies of Distributions and Features", NeurIPS 2020,
section 4 and official code ``invglow/losses.py``, ``exp.py``; Ren et al.,
"Likelihood Ratios for Out-of-Distribution Detection", NeurIPS 2019.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from jaxood.data.preprocess import bits_per_dim, dequantize, mutate
from jaxood.flows.glow import Glow

if TYPE_CHECKING:  # jaxood.train imports orbax: not needed to import the flows
    from jaxood.train import LossFn


def nll_loss(model: Glow, *, mutation_rate: float = 0.0) -> LossFn:
    """``loss(params, images_uint8, key)``: mean -log p of uniformly dequantized
    images, in nats; metrics ``bpd``.

    With ``mutation_rate`` μ > 0 the pixels are first mutated at rate μ
    (``jaxood.data.mutate``, drawn fresh every step): the loss of Ren et al.'s
    background model, which sees the data's local statistics but no clean semantic
    image. Their L2 penalty on the weights is the optimizer's weight decay
    (``jaxood.train.make_optimizer``), not part of this loss.
    """
    num_dims = model.config.num_dims

    def loss_fn(params, images, key):
        if mutation_rate > 0.0:
            mutate_key, key = jax.random.split(key)
            images = mutate(mutate_key, images, mutation_rate)
        nll = -model.forward(params, dequantize(key, images)).total
        loss = jnp.mean(nll)
        return loss, {"bpd": bits_per_dim(loss, num_dims)}

    return loss_fn


def outlier_penalty(
    log_p_fitted: jax.Array,
    log_p_general: jax.Array,
    *,
    weight: float = 6000.0,
    temperature: float = 1000.0,
) -> jax.Array:
    """The outlier term ``-weight * mean log sigmoid((log p_gen - log p_fit) / T)``
    over outlier images, in nats: the cost of an outlier the fitted model does not
    put ``temperature`` nats below the general model. Also evaluated on held-out
    outliers to validate the outlier-loss model (``experiments.flow_pipeline``).

    Args:
        log_p_fitted, log_p_general: ``(n,)`` log-likelihoods in nats of the same
            outlier images under the model being fit and the general model.
    """
    ratio = (log_p_general - log_p_fitted) / temperature
    return -weight * jnp.mean(jax.nn.log_sigmoid(ratio))


def outlier_loss(
    model: Glow, *, weight: float = 6000.0, temperature: float = 1000.0
) -> LossFn:
    """NLL on inliers plus the outlier loss against a frozen general model.

    ``L = mean NLL_in(x) - weight * mean log sigmoid((log p_gen(x_o) -
    log p_in(x_o)) / temperature)``. The batch is ``(inliers, outliers,
    general_params)``: uint8 image batches and the params of the general model (same
    architecture), passed as data rather than closed over so that large models are
    not baked into the compiled step as constants; no gradient reaches them.
    """
    num_dims = model.config.num_dims

    def loss_fn(params, batch, key):
        inliers, outliers, general_params = batch
        general_params = jax.lax.stop_gradient(general_params)
        key_in, key_out = jax.random.split(key)
        nll = -model.forward(params, dequantize(key_in, inliers)).total
        x_out = dequantize(key_out, outliers)
        lp_in = model.forward(params, x_out).total
        lp_gen = model.forward(general_params, x_out).total
        out = outlier_penalty(lp_in, lp_gen, weight=weight, temperature=temperature)
        loss = jnp.mean(nll) + out
        return loss, {
            "bpd": bits_per_dim(jnp.mean(nll), num_dims),
            "outlier_loss": out,
            "outlier_llr": jnp.mean(lp_in - lp_gen),
        }

    return loss_fn
