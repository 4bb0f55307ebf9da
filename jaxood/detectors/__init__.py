"""Stateless OOD detectors. Every score is an anomaly score: higher = more OOD."""

from jaxood.detectors.detector import Detector
from jaxood.detectors.dual_threshold import envelope_auroc, lid_only, rank_and_detector
from jaxood.detectors.likelihood import final_scale, negative_log_likelihood
from jaxood.detectors.likelihood_ratio import likelihood_ratio

__all__ = [
    "Detector",
    "envelope_auroc",
    "final_scale",
    "lid_only",
    "likelihood_ratio",
    "negative_log_likelihood",
    "rank_and_detector",
]
