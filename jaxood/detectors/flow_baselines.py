"""The classic baselines of a trained multi-scale flow, from its outputs on a set:
typicality and KLODS-R (per image and over groups of M images), input complexity,
the background-model ratio and WAIC.

Both functions read what :func:`jaxood.flows.log_prob_images` returns for a set
(``total`` log p in nats, ``latents`` in image layout, ``latents_<i>`` per scale), so
that one pass of each model over the images serves every baseline. Point-wise scores
are anomaly scores, one per image (higher = more OOD). The group protocol: a fixed
seed shuffles a set into groups of M images (the last incomplete group is dropped),
each group gets one score, and the AUROC of ID groups against OOD groups is reported
as mean ± std over the shuffles (:func:`jaxood.metrics.group_auroc`).

References: Nalisnick et al., "Detecting Out-of-Distribution Inputs to Deep
Generative Models Using Typicality", 2019; Schirrmeister et al., "Understanding
Anomaly Detection with Deep Invertible Networks through Hierarchies of
Distributions and Features", NeurIPS 2020 (KLODS-R is Jiang et al.'s KL-divergence
of latent statistics; see :func:`jaxood.detectors.klods`); Serrà et al., "Input
Complexity and Out-of-distribution Detection with Likelihood-based Generative
Models", ICLR 2020; Ren et al., "Likelihood Ratios for Out-of-Distribution
Detection", NeurIPS 2019; Choi et al., "WAIC, but Why?", 2018.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from jaxood import data, metrics
from jaxood.detectors.input_complexity import (
    compression_bits_per_dim,
    input_complexity,
)
from jaxood.detectors.klods import klods
from jaxood.detectors.likelihood_ratio import likelihood_ratio
from jaxood.detectors.typicality import bootstrap_threshold, typicality
from jaxood.detectors.waic import waic
from jaxood.typing import PRNGKey

# KLODS-R's parts, by the suffix of their score name.
KLODS_PARTS = {"": "full", "_tc": "total_correlation", "_dw": "dimension_wise"}
Outputs = Mapping[str, np.ndarray]  # one set's log_prob_images output


def klods_latents(variant: str, outputs: Outputs) -> np.ndarray:
    """The latents a KLODS-R variant ``"layout:k"`` (k = patch size) looks at:
    ``"image"`` (every scale in image layout) or ``"scaleI"`` (scale I alone)."""
    layout, _ = variant.split(":")
    if layout == "image":
        return outputs["latents"]
    if layout.startswith("scale"):
        return outputs[f"latents_{int(layout.removeprefix('scale'))}"]
    raise ValueError(f"Unknown KLODS-R layout {layout!r} in {variant!r}.")


def klods_name(variant: str) -> str:
    """The score name of a KLODS-R variant: ``"image:2"`` -> ``"klods_image_k2"``."""
    layout, k = variant.split(":")
    return f"klods_{layout}_k{k}"


def _klods_parts(variant: str, latents, ridge: float) -> dict[str, np.ndarray]:
    """``{name + suffix: (G,)}`` of ``(G, M, H, W, C)`` latents, every part."""
    parts = klods(latents, patch_size=int(variant.split(":")[1]), ridge=ridge)
    return {
        klods_name(variant) + suffix: np.asarray(getattr(parts, part))
        for suffix, part in KLODS_PARTS.items()
    }


def _klods_part(variant: str, name: str, ridge: float, computed: dict):
    """``(G, M, H, W, C)`` latents -> ``(G,)`` scores of one KLODS-R part.

    The three parts come from one fit: ``computed`` keeps every part of each group
    array (by its bytes) so that the other two parts' calls reuse it.
    """

    def score(groups: np.ndarray) -> np.ndarray:
        groups = np.ascontiguousarray(groups)
        key = (variant, groups.shape, hashlib.blake2b(groups.tobytes()).digest())
        if key not in computed:
            computed[key] = _klods_parts(variant, groups, ridge)
        return computed[key][name]

    return score


def flow_baseline_scores(
    outputs: Outputs,
    images: np.ndarray,
    entropy: float,
    num_dims: int,
    *,
    klods_variants: Sequence[str] = ("image:2",),
    klods_ridge: float = 1e-6,
    codecs: Sequence[str] = ("png",),
    background_log_p: np.ndarray | None = None,
    ensemble_log_p: Sequence[np.ndarray] = (),
) -> dict[str, np.ndarray]:
    """Per-image anomaly scores of every baseline whose models are given.

    Args:
        outputs: the ID flow's :func:`~jaxood.flows.log_prob_images` output on the
            set, with latents.
        images: the same set, uint8 ``(N, H, W, C)`` (input complexity).
        entropy: Ĥ, the mean NLL (nats) of ID training images under the ID flow.
        num_dims: D of the flow, for bits/dim.
        klods_variants: ``"layout:k"`` per KLODS-R variant (:func:`klods_latents`).
        klods_ridge: the ridge of KLODS-R's patch covariances.
        codecs: compressors of input complexity.
        background_log_p: ``(N,)`` log p of Ren et al.'s background model
            (``ren_llr``); omitted when None.
        ensemble_log_p: ``(N,)`` log p of each ensemble member (``waic``, two or
            more members).

    Returns:
        ``{"typicality", "klods_<layout>_k<k>[_tc|_dw]", "complexity_<codec>",
        ["ren_llr"], ["waic"]: (N,)}``.
    """
    nll = -outputs["total"]
    scores = {"typicality": np.asarray(typicality().score({"entropy": entropy}, nll))}
    for variant in klods_variants:  # groups of one image
        latents = klods_latents(variant, outputs)[:, None]
        scores |= _klods_parts(variant, latents, klods_ridge)
    nll_bpd = np.asarray(data.bits_per_dim(nll, num_dims), np.float64)
    for codec in codecs:
        complexity = compression_bits_per_dim(images, codec)
        scores[f"complexity_{codec}"] = input_complexity(nll_bpd, complexity)
    if background_log_p is not None:
        ratio = likelihood_ratio(outputs["total"], background_log_p)
        scores["ren_llr"] = np.asarray(ratio)
    if len(ensemble_log_p) >= 2:
        scores["waic"] = np.asarray(waic(np.stack(ensemble_log_p)))
    return scores


def flow_group_results(
    outputs: Mapping[str, Outputs],
    entropy: float,
    validation_nll: np.ndarray,
    key: PRNGKey,
    *,
    group_sizes: Sequence[int] = (5, 10),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    klods_variants: Sequence[str] = ("image:2",),
    klods_ridge: float = 1e-6,
    bootstrap_resamples: int = 1000,
    alpha: float = 0.99,
) -> dict:
    """AUROC over groups of typicality and every KLODS-R part, per group size and
    OOD set, and the typicality test's decisions (Nalisnick et al.'s bootstrap
    threshold from ID validation NLLs).

    Args:
        outputs: ``{"id_test": ..., "ood/<name>": ...}`` log_prob_images outputs of
            the ID flow, with latents.
        entropy: Ĥ (nats), as in :func:`flow_baseline_scores`.
        validation_nll: ``(N,)`` NLL (nats) of ID validation images: the bootstrap.
        key: the bootstrap's randomness.

    Returns:
        ``{str(M): {"auroc": {detector: {ood: group_auroc dict}},
        "typicality_test": {"threshold", "alpha", "bootstrap_resamples",
        "flagged": {set: fraction of groups over the threshold}}}}``, OOD sets
        named without their ``ood/`` prefix.
    """
    stats, test = {"entropy": entropy}, typicality()
    nll = {name: -o["total"] for name, o in outputs.items()}
    scorers = {"typicality": (lambda g: np.asarray(test.score(stats, g)), nll)}
    computed = {}  # KLODS-R parts per group array, shared by the parts' scorers
    for variant in klods_variants:  # one scorer per part, on the variant's latents
        latents = {n: klods_latents(variant, o) for n, o in outputs.items()}
        for suffix in KLODS_PARTS:
            name = klods_name(variant) + suffix
            score = _klods_part(variant, name, klods_ridge, computed)
            scorers[name] = (score, latents)
    out = {}
    for size in group_sizes:
        auroc = {
            detector: {
                name.removeprefix("ood/"): metrics.group_auroc(
                    score, per_set["id_test"], per_set[name], size, tuple(seeds)
                )
                for name in per_set
                if name != "id_test"
            }
            for detector, (score, per_set) in scorers.items()
        }
        threshold = float(
            bootstrap_threshold(key, stats, validation_nll, size,
                                num_bootstrap=bootstrap_resamples, alpha=alpha)
        )  # fmt: skip
        flagged = {}  # on the first shuffle's groups
        for name, values in nll.items():
            groups = values[metrics.group_indices(len(values), size, seeds[0])]
            over = np.asarray(test.score(stats, groups)) > threshold
            flagged[name.removeprefix("ood/")] = float(np.mean(over))
        out[str(size)] = {
            "auroc": auroc,
            "typicality_test": {
                "threshold": threshold,
                "alpha": alpha,
                "bootstrap_resamples": bootstrap_resamples,
                "flagged": flagged,
            },
        }
    return out
