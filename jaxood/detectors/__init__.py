"""Stateless OOD detectors. Every score is an anomaly score: higher = more OOD."""

from jaxood.detectors.density_of_states import DensityState, density_of_states
from jaxood.detectors.detector import Detector
from jaxood.detectors.dual_threshold import (
    dual_threshold_aurocs,
    dual_threshold_pairs,
    envelope_auroc,
    lid_only,
    lid_only_sweep,
    rank_and_detector,
    rank_and_pairs,
)
from jaxood.detectors.flow_baselines import (
    KLODS_PARTS,
    flow_baseline_scores,
    flow_group_results,
    klods_latents,
    klods_name,
)
from jaxood.detectors.hole_indicator import hole_indicator
from jaxood.detectors.input_complexity import (
    compression_bits_per_dim,
    input_complexity,
)
from jaxood.detectors.klods import KLParts, gaussian_kl_parts, klods
from jaxood.detectors.likelihood import final_scale, negative_log_likelihood
from jaxood.detectors.likelihood_ratio import likelihood_ratio
from jaxood.detectors.likelihood_regret import LikelihoodRegret, likelihood_regret
from jaxood.detectors.statistics import (
    flow_statistics,
    flow_table,
    published_scores,
    vae_statistics,
    with_typicality,
)
from jaxood.detectors.typicality import bootstrap_threshold, typicality
from jaxood.detectors.waic import waic

__all__ = [
    "KLODS_PARTS",
    "DensityState",
    "Detector",
    "KLParts",
    "LikelihoodRegret",
    "bootstrap_threshold",
    "compression_bits_per_dim",
    "density_of_states",
    "dual_threshold_aurocs",
    "dual_threshold_pairs",
    "envelope_auroc",
    "final_scale",
    "flow_baseline_scores",
    "flow_group_results",
    "flow_statistics",
    "flow_table",
    "gaussian_kl_parts",
    "hole_indicator",
    "input_complexity",
    "klods",
    "klods_latents",
    "klods_name",
    "lid_only",
    "lid_only_sweep",
    "likelihood_ratio",
    "likelihood_regret",
    "negative_log_likelihood",
    "published_scores",
    "rank_and_detector",
    "rank_and_pairs",
    "typicality",
    "vae_statistics",
    "waic",
    "with_typicality",
]
