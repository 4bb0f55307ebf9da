"""The shape of a detector that needs statistics of in-distribution data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Detector(NamedTuple):
    """A pair of pure functions, in the style of optax's ``GradientTransformation``.

    ``stats = fit(...)`` computes whatever the detector needs from in-distribution
    data (thresholds, entropies, empirical CDFs); ``scores = score(stats, ...)``
    returns anomaly scores, higher = more out-of-distribution. Neither keeps state.
    """

    fit: Callable[..., Any]
    score: Callable[..., Any]
