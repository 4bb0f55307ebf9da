"""The detectors of the flow experiments beyond Schirrmeister et al.'s four: typicality
and KLODS-R (point-wise and in groups), input complexity, Ren et al.'s background
ratio and WAIC, computed from the log-likelihoods and latents of the trained Glows.

Point-wise scores have one value per image and go through ``metrics.summary`` like
the others; group scores follow the group protocol of ``docs/detectors.md``
(fixed-seed shuffles into groups of M, last incomplete group dropped, AUROC over ID
groups vs OOD groups, mean ± std over the shuffles).
"""

from __future__ import annotations

import jax
import numpy as np

from jaxood import data, detectors, metrics
from jaxood.typing import Array

KLODS_PARTS = {
    "": "full",
    "_tc": "total_correlation",
    "_dw": "dimension_wise",
}


def klods_latents(variant: str, log_probs: dict[str, np.ndarray]) -> np.ndarray:
    """The latents a KLODS-R variant ``"layout:k"`` looks at: ``"image"`` (all scales
    in image layout) or ``"scaleI"`` (scale I's latents alone)."""
    layout, _ = variant.split(":")
    if layout == "image":
        return log_probs["latents"]
    if layout.startswith("scale"):
        return log_probs[f"latents_{int(layout.removeprefix('scale'))}"]
    raise ValueError(f"Unknown KLODS-R layout {layout!r} in {variant!r}.")


def klods_name(variant: str) -> str:
    layout, k = variant.split(":")
    return f"klods_{layout}_k{k}"


def klods_group_score(variant: str, ridge: float, part: str = "full"):
    """``(G, M, H, W, C)`` latents -> ``(G,)`` scores of one KLODS-R part."""
    patch_size = int(variant.split(":")[1])

    def score(grouped: Array) -> np.ndarray:
        parts = detectors.klods(grouped, patch_size=patch_size, ridge=ridge)
        return np.asarray(getattr(parts, part))

    return score


def pointwise_scores(
    config,
    log_probs: dict[str, dict[str, dict[str, np.ndarray]]],
    images: dict[str, np.ndarray],
    entropy: float,
    num_dims: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-image anomaly scores of every baseline whose models are there:
    typicality, KLODS-R and its parts per variant, input complexity per codec,
    Ren et al.'s ratio (``background``) and WAIC (two or more ``ensemble_k``).

    Args:
        config: the experiment config (its ``scoring`` block).
        log_probs: ``log_probs[stage][set]`` from ``log_prob_images``; the ``id``
            stage with latents. ``background`` and ``ensemble_k`` are optional.
        images: the uint8 evaluation sets at model size.
        entropy: Ĥ, the mean NLL (nats) of ID training images under the ID model.
        num_dims: D, for bits/dim.
    """
    sc = config.scoring
    members = sorted(k for k in log_probs if k.startswith("ensemble_"))
    typicality = detectors.typicality()
    stats = {"entropy": entropy}
    complexity = {
        (codec, name): detectors.compression_bits_per_dim(images[name], codec)
        for codec in sc.codecs
        for name in images
    }
    scores = {}
    for name in images:
        lp_id = log_probs["id"][name]
        nll = -lp_id["total"]
        s = {"typicality": np.asarray(typicality.score(stats, nll))}
        for variant in sc.klods_variants:
            latents = klods_latents(variant, lp_id)[:, None]  # groups of one
            parts = detectors.klods(
                latents,
                patch_size=int(variant.split(":")[1]),
                ridge=sc.klods_ridge,
            )
            for suffix, part in KLODS_PARTS.items():
                s[klods_name(variant) + suffix] = np.asarray(getattr(parts, part))
        nll_bpd = np.asarray(data.bits_per_dim(nll, num_dims), np.float64)
        for codec in sc.codecs:
            s[f"complexity_{codec}"] = detectors.input_complexity(
                nll_bpd, complexity[codec, name]
            )
        if "background" in log_probs:
            s["ren_llr"] = np.asarray(
                detectors.likelihood_ratio(
                    lp_id["total"], log_probs["background"][name]["total"]
                )
            )
        if len(members) >= 2:
            stacked = np.stack([log_probs[m][name]["total"] for m in members])
            s["waic"] = np.asarray(detectors.waic(stacked))
        scores[name] = s
    return scores


def group_results(
    config,
    id_log_probs: dict[str, dict[str, np.ndarray]],
    entropy: float,
    nll_val: np.ndarray,
) -> dict:
    """AUROC over groups for typicality and every KLODS-R part, per group size and OOD
    set, plus the typicality test's bootstrap decisions.

    Returns:
        ``{M: {"auroc": {detector: {ood: group_auroc dict}}, "typicality_test":
        {"threshold", "flagged": {set: fraction of groups over the threshold}}}}``
        with M as a string (JSON keys).
    """
    sc = config.scoring
    seeds = tuple(sc.group_seeds)
    typicality = detectors.typicality()
    stats = {"entropy": entropy}
    ood_sets = [k for k in id_log_probs if k != "id_test"]
    nll = {name: -lp["total"] for name, lp in id_log_probs.items()}
    out = {}
    for size in sc.group_sizes:
        scorers = {
            "typicality": (
                lambda g: np.asarray(typicality.score(stats, g)),
                nll,
            )
        }
        for variant in sc.klods_variants:
            latents = {n: klods_latents(variant, lp) for n, lp in id_log_probs.items()}
            for suffix, part in KLODS_PARTS.items():
                scorers[klods_name(variant) + suffix] = (
                    klods_group_score(variant, sc.klods_ridge, part),
                    latents,
                )
        auroc = {
            detector: {
                name.removeprefix("ood/"): metrics.group_auroc(
                    score, values["id_test"], values[name], size, seeds
                )
                for name in ood_sets
            }
            for detector, (score, values) in scorers.items()
        }
        threshold = float(
            detectors.bootstrap_threshold(
                jax.random.key(config.seed),
                stats,
                nll_val,
                size,
                num_bootstrap=sc.bootstrap_resamples,
                alpha=sc.alpha,
            )
        )
        flagged = {}
        for name, values in nll.items():
            groups = values[metrics.group_indices(len(values), size, seeds[0])]
            flagged[name.removeprefix("ood/")] = float(
                np.mean(np.asarray(typicality.score(stats, groups)) > threshold)
            )
        out[str(size)] = {
            "auroc": auroc,
            "typicality_test": {
                "threshold": threshold,
                "alpha": sc.alpha,
                "bootstrap_resamples": sc.bootstrap_resamples,
                "flagged": flagged,
            },
        }
    return out
