"""Stateless OOD detectors. Every score is an anomaly score: higher = more OOD."""

from jaxood.detectors.detector import Detector
from jaxood.detectors.likelihood import final_scale, negative_log_likelihood
from jaxood.detectors.likelihood_ratio import likelihood_ratio

__all__ = ["Detector", "final_scale", "likelihood_ratio", "negative_log_likelihood"]
