"""Per-image statistics of each model family: the features of density of states.

Each function scores a whole image set in batches (a progress bar, one compiled
program) and returns a named table ``{name: (N,)}`` of float64 numpy arrays, the
input of :func:`jaxood.detectors.density_of_states`. Log-densities are in nats,
input complexity in bits/dim. :func:`with_typicality` adds the typicality distance
to tables of either family, with the entropy estimated on the fit table.

References: Morningstar et al., "Density of States Estimation for
Out-of-Distribution Detection", AISTATS 2021 (statistics as features); the
statistics' own papers are cited by the detectors of the same names.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import numpy as np

from jaxood import batching, checks, data, flows, vae
from jaxood.detectors.hole_indicator import hole_indicator
from jaxood.detectors.input_complexity import (
    compression_bits_per_dim,
    input_complexity,
)
from jaxood.detectors.klods import klods
from jaxood.detectors.typicality import typicality
from jaxood.typing import Params, PRNGKey

Table = dict[str, np.ndarray]


def flow_statistics(
    model: flows.Glow,
    params: Params,
    images: np.ndarray,
    *,
    general_params: Params | None = None,
    codec: str = "png",
    klods_patch_size: int = 2,
    klods_ridge: float = 1e-6,
    batch_size: int = 256,
    desc: str = "flow statistics",
) -> Table:
    """Statistics of a multi-scale flow on uint8 images at the model's shape.

    Args:
        model, params: the flow.
        images: ``(N, H, W, C)`` uint8.
        general_params: a general-purpose flow of the same architecture, whose
            log p is added as ``log_p_general``.
        codec: input complexity's compressor.
        klods_patch_size, klods_ridge: KLODS-R's patches and covariance ridge.
        batch_size: images per compiled call.

    Returns:
        The table of :func:`flow_table`.
    """
    log_probs = flows.log_prob_images(
        model, params, images, batch_size=batch_size, desc=desc, with_latents=True
    )
    general = None
    if general_params is not None:
        general = flows.log_prob_images(
            model, general_params, images, batch_size=batch_size, desc=desc
        )["total"]
    return flow_table(
        log_probs,
        images,
        model.config.num_dims,
        log_p_general=general,
        codec=codec,
        klods_patch_size=klods_patch_size,
        klods_ridge=klods_ridge,
    )


def flow_table(
    log_probs: Mapping[str, np.ndarray],
    images: np.ndarray,
    num_dims: int,
    *,
    log_p_general: np.ndarray | None = None,
    codec: str = "png",
    klods_patch_size: int = 2,
    klods_ridge: float = 1e-6,
) -> Table:
    """The flow statistics from log-likelihoods already computed.

    Args:
        log_probs: :func:`jaxood.flows.log_prob_images` of the images
            ``with_latents=True``.
        images: the same uint8 images (for input complexity).
        num_dims: D, for bits/dim.
        log_p_general: ``(N,)`` log p of a general-purpose flow, or None.

    Returns:
        ``log_p`` (nats); ``lp_scale{i}`` per scale (the last is the final-scale
        term; they sum to ``log_p``); ``latent_sq{i}``, the mean square of scale
        i's standardised latents (1 under the prior); ``klods_tc`` and
        ``klods_dw``, the total-correlation and dimension-wise parts of KLODS-R
        on the image's own latent patches; ``complexity_<codec>``, input
        complexity (bits/dim); ``log_p_general`` when given.
    """
    total, per_scale = log_probs["total"], log_probs["per_scale"]
    table = {"log_p": np.asarray(total, np.float64)}
    for i in range(per_scale.shape[1]):
        table[f"lp_scale{i}"] = np.asarray(per_scale[:, i], np.float64)
        latents = np.asarray(log_probs[f"latents_{i}"], np.float64)
        table[f"latent_sq{i}"] = np.mean(latents.reshape(len(total), -1) ** 2, axis=1)
    parts = klods(
        log_probs["latents"][:, None], patch_size=klods_patch_size, ridge=klods_ridge
    )
    table["klods_tc"] = np.asarray(parts.total_correlation, np.float64)
    table["klods_dw"] = np.asarray(parts.dimension_wise, np.float64)
    nll_bpd = np.asarray(data.bits_per_dim(-table["log_p"], num_dims))
    table[f"complexity_{codec}"] = np.asarray(
        input_complexity(nll_bpd, compression_bits_per_dim(images, codec)),
        np.float64,
    )
    if log_p_general is not None:
        table["log_p_general"] = np.asarray(log_p_general, np.float64)
    return table


@functools.partial(jax.jit, static_argnums=0, static_argnames=("num", "chunk"))
def _vae_batch(model, params, x, key, *, num, chunk):
    log_lik, weights = vae.importance_terms(
        model, params, x, key, num, chunk_size=chunk
    )
    return {
        "log_p": vae.iwae_bound(weights),
        "rate": model.latent.kl(vae.encode(model, params, x)),
        "distortion": -log_lik.mean(axis=1),
        "hole": hole_indicator(log_lik),
    }


def vae_statistics(
    model: vae.VAE,
    params: Params,
    images: np.ndarray,
    key: PRNGKey,
    *,
    num_samples: int = 100,
    chunk_size: int = 50,
    batch_size: int = 100,
    desc: str = "VAE statistics",
) -> Table:
    """Statistics of a VAE on whole image sets at the model's shape.

    Args:
        model, params: the VAE.
        images: ``(N, H, W, C)`` uint8 pixels, or float32 model inputs as
            :func:`jaxood.vae.importance_estimates` takes them (e.g. [0, 1] images
            scaled by a factor, as in the Vacant Holes scaling ablation).
        key: the posterior draws of batch i use ``fold_in(key, i)``.
        num_samples: posterior draws per image (IWAE and hole indicator share
            them).
        chunk_size: draws vectorised at once (divides ``num_samples``).
        batch_size: images per compiled call.

    Returns:
        ``log_p`` (IWAE, nats); ``rate``, the analytic KL(q(z|x) ‖ p(z)) (nats);
        ``distortion``, the mean of −log p(x|z_i) over the draws (nats);
        ``hole``, the hole indicator (std of log p(x|z_i), nats).
    """
    pixels = getattr(images, "dtype", None) == np.uint8
    if not pixels and getattr(images, "dtype", None) != np.float32:
        raise TypeError(
            "vae_statistics: images must be uint8 pixels (0..255) or float32 model "
            f"inputs, got {getattr(images, 'dtype', type(images).__name__)}."
        )
    num_samples = checks.positive_int(num_samples, "num_samples")
    chunk_size = checks.positive_int(chunk_size, "chunk_size")
    if num_samples % chunk_size:
        raise ValueError(
            f"chunk_size ({chunk_size}) must divide num_samples ({num_samples})."
        )
    to_input = data.to_unit_interval if pixels else (lambda x: x)
    vae.check_images(model, to_input(images[:1]))

    def one(i, batch):
        return _vae_batch(
            model,
            params,
            to_input(batch),
            jax.random.fold_in(key, i),
            num=num_samples,
            chunk=chunk_size,
        )

    out = batching.map_batches(one, images, batch_size, desc=desc)
    return {k: v.astype(np.float64) for k, v in out.items()}


def with_typicality(
    fit: Mapping[str, np.ndarray], *tables: Mapping[str, np.ndarray]
) -> list[Table]:
    """``fit`` and ``tables`` with ``typicality = |−log p − Ĥ|`` added, Ĥ the mean
    −log p of ``fit`` (in-distribution images, never OOD ones).

    References: Nalisnick et al., "Detecting Out-of-Distribution Inputs to Deep
    Generative Models Using Typicality", 2019.
    """
    test = typicality()
    state = test.fit(-np.asarray(fit["log_p"]))
    return [
        {**t, "typicality": np.asarray(test.score(state, -t["log_p"]), np.float64)}
        for t in (fit, *tables)
    ]


def _last_scale(stats: Mapping[str, np.ndarray]) -> int:
    return max(int(k.removeprefix("lp_scale")) for k in stats if k.startswith("lp_"))


# label -> anomaly score (higher = OOD) from one model's statistics table.
_PUBLISHED = {
    "flow": {
        "Glow −log p": lambda s: -s["log_p"],
        "Glow final scale": lambda s: -s[f"lp_scale{_last_scale(s)}"],
        "ratio to general Glow": lambda s: s["log_p_general"] - s["log_p"],
        "input complexity": lambda s: s["complexity_png"],
        "KLODS-R": lambda s: s["klods_tc"] + s["klods_dw"],
    },
    "vae": {
        "IWAE −log p": lambda s: -s["log_p"],
        "hole indicator": lambda s: s["hole"],
    },
}


def published_scores(stats: Mapping[str, np.ndarray], family: str) -> Table:
    """The published single detectors, recomputed from one model's statistics table
    (so that they score exactly the images density of states scores).

    Args:
        stats: a :func:`flow_statistics` table (``family="flow"``; with the general
            model's log p and PNG complexity) or a :func:`vae_statistics` table
            (``"vae"``), after :func:`with_typicality`.
        family: ``"flow"`` or ``"vae"``.

    Returns:
        ``{label: (N,) anomaly scores}``: for flows −log p, the final scale's −log p
        (Schirrmeister et al. 2020), the ratio to the general model, input
        complexity (Serrà et al. 2020), KLODS-R (Dai et al. 2023); for VAEs the IWAE
        −log p and the hole indicator (Glazunov & Zarras 2023); typicality for both.
    """
    if family not in _PUBLISHED:
        raise ValueError(f"family must be 'flow' or 'vae', got {family!r}.")
    scores = {label: score(stats) for label, score in _PUBLISHED[family].items()}
    return scores | {"typicality": stats["typicality"]}
