"""OOD metrics with one explicit convention: anomaly scores, OOD positive by default.

Every jaxood detector returns an anomaly score (higher = more out-of-distribution).
The functions here take ``(scores_in, scores_out)``: ``scores_in`` for the
in-distribution (ID) test inputs, ``scores_out`` for the OOD inputs. ``positive="ood"``
(default) treats OOD as the positive class with score s; ``positive="id"`` treats ID as
positive with score -s. AUROC is the same either way; AUPR and FPR@TPR are not.

All results equal scikit-learn's ``roc_auc_score``, ``average_precision_score`` and
``roc_curve(drop_intermediate=False)`` exactly, ties included (tested to 1e-9). They run
on the host in float64: metrics are evaluation code, not part of a jitted model.

References: Hendrycks & Gimpel, "A Baseline for Detecting Misclassified and
Out-of-Distribution Examples in Neural Networks", ICLR 2017 (FPR at 95 % TPR, AUPR-In
/Out); docs/detectors.md ("Conventions") for the conventions of each paper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy.stats import rankdata

Positive = Literal["ood", "id"]
NonFinite = Literal["raise", "most_anomalous"]


def _as_scores(scores, name: str, nonfinite: NonFinite) -> np.ndarray:
    array = np.asarray(scores)
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}.")
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of per-input scores, got shape "
            f"{array.shape}. Flatten it, or score groups with the group protocol."
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty: every metric needs at least one score.")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        if nonfinite == "raise":
            raise ValueError(
                f"{name} has {int(bad.sum())} NaN/inf scores out of {array.size}. "
                "Find out why the model produced them, or pass "
                "nonfinite='most_anomalous' to rank them above every finite score "
                "(and report that you did)."
            )
        # The largest finite float keeps ties among them exact (inf - inf is NaN).
        array = np.where(bad, np.finfo(np.float64).max, array)
    return array


def _labelled(
    scores_in, scores_out, positive: Positive, nonfinite: NonFinite = "raise"
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (y, s): binary labels of the positive class and scores that rank it."""
    if positive not in ("ood", "id"):
        raise ValueError(f"positive must be 'ood' or 'id', got {positive!r}.")
    s_in = _as_scores(scores_in, "scores_in", nonfinite)
    s_out = _as_scores(scores_out, "scores_out", nonfinite)
    s = np.concatenate([s_in, s_out])
    y_ood = np.concatenate([np.zeros(s_in.size), np.ones(s_out.size)])
    if positive == "ood":
        return y_ood, s
    return 1.0 - y_ood, -s


def auroc(scores_in, scores_out, *, nonfinite: NonFinite = "raise") -> float:
    """Area under the ROC curve; ties count one half (Mann-Whitney U).

    Independent of the positive class as long as the score direction follows it.

    Args:
        scores_in: ``(n_in,)`` anomaly scores of ID inputs.
        scores_out: ``(n_out,)`` anomaly scores of OOD inputs.
        nonfinite: ``"raise"`` or ``"most_anomalous"`` (NaN/inf ranked highest).

    Returns:
        P(s_out > s_in) + P(s_out = s_in) / 2.
    """
    y, s = _labelled(scores_in, scores_out, "ood", nonfinite)
    ranks = rankdata(s)
    n_out = y.sum()
    n_in = y.size - n_out
    u = ranks[y == 1].sum() - n_out * (n_out + 1) / 2
    return float(u / (n_in * n_out))


def _counts_at_thresholds(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
    """(true positives, false positives) at every distinct score, highest first.

    A threshold sits after the last of each group of tied scores, so ties are
    never split (sklearn's convention).
    """
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    true_pos = np.cumsum(y)[last_of_tie]
    return true_pos, (last_of_tie + 1) - true_pos


def _average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Step-wise AP = sum_k (R_k - R_{k-1}) P_k, thresholds at distinct scores."""
    true_pos, false_pos = _counts_at_thresholds(y, s)
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def aupr_out(scores_in, scores_out, *, nonfinite: NonFinite = "raise") -> float:
    """Average precision with OOD as the positive class (AUPR-Out).

    A random score gets about n_out / (n_in + n_out): report the class sizes with it.
    """
    y, s = _labelled(scores_in, scores_out, "ood", nonfinite)
    return _average_precision(y, s)


def aupr_in(scores_in, scores_out, *, nonfinite: NonFinite = "raise") -> float:
    """Average precision with ID as the positive class and score -s (AUPR-In)."""
    y, s = _labelled(scores_in, scores_out, "id", nonfinite)
    return _average_precision(y, s)


def _roc_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct threshold, highest first, starting at (0, 0)."""
    true_pos, false_pos = _counts_at_thresholds(y, s)
    return (
        np.r_[0.0, false_pos / false_pos[-1]],
        np.r_[0.0, true_pos / true_pos[-1]],
    )


def roc_curve(
    scores_in, scores_out, *, positive: Positive = "ood", nonfinite: NonFinite = "raise"
) -> tuple[np.ndarray, np.ndarray]:
    """ROC curve points ``(fpr, tpr)`` (as sklearn's ``drop_intermediate=False``)."""
    y, s = _labelled(scores_in, scores_out, positive, nonfinite)
    return _roc_points(y, s)


def fpr_at_tpr(
    scores_in,
    scores_out,
    tpr: float = 0.95,
    *,
    positive: Positive = "ood",
    nonfinite: NonFinite = "raise",
) -> float:
    """False-positive rate at the first threshold whose TPR reaches ``tpr``.

    With ``positive="ood"`` (default): the fraction of ID inputs flagged when a
    fraction ``tpr`` of OOD inputs is caught. With ``positive="id"`` (Hendrycks &
    Gimpel): the fraction of OOD inputs accepted when ``tpr`` of ID inputs are kept.
    Thresholds only at distinct score values, no interpolation, as
    ``roc_curve(..., drop_intermediate=False)`` then ``fpr[argmax(tpr >= q)]``.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr must be in (0, 1], got {tpr}.")
    fprs, tprs = roc_curve(
        scores_in, scores_out, positive=positive, nonfinite=nonfinite
    )
    return float(fprs[np.argmax(tprs >= tpr)])


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    scores_in,
    scores_out,
    *,
    num_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric, resampling ID and OOD separately.

    Args:
        metric: e.g. :func:`auroc`, or a ``functools.partial`` of another metric.
        scores_in, scores_out: 1-D anomaly scores.
        num_resamples: bootstrap replicates.
        level: coverage, e.g. 0.95 or 0.999 (Vacant Holes reports 99.9 %).
        seed: numpy seed; the interval is a pure function of the inputs and it.

    Returns:
        (low, high).
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    if num_resamples < 2:
        raise ValueError(f"num_resamples must be at least 2, got {num_resamples}.")
    s_in = _as_scores(scores_in, "scores_in", "raise")
    s_out = _as_scores(scores_out, "scores_out", "raise")
    rng = np.random.default_rng(seed)
    values = np.empty(num_resamples)
    for i in range(num_resamples):
        values[i] = metric(
            s_in[rng.integers(0, s_in.size, s_in.size)],
            s_out[rng.integers(0, s_out.size, s_out.size)],
        )
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": auroc,
    "aupr_in": aupr_in,
    "aupr_out": aupr_out,
    "fpr95": lambda s_in, s_out: fpr_at_tpr(s_in, s_out, 0.95),
    "fpr80": lambda s_in, s_out: fpr_at_tpr(s_in, s_out, 0.80),
}


def summary(
    scores_in,
    scores_out,
    *,
    nonfinite: NonFinite = "raise",
    ci_resamples: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of the library's OOD tables for one (ID, OOD) pair.

    Keys: ``auroc``, ``aupr_in``, ``aupr_out``, ``fpr95`` and ``fpr80`` (OOD positive),
    ``n_in``, ``n_out``, ``n_nonfinite``; with ``ci_resamples > 0`` also
    ``<metric>_ci_low`` / ``<metric>_ci_high`` for each metric (95 % percentile
    bootstrap over test points, ID and OOD resampled separately).
    """
    raw = [np.asarray(scores_in), np.asarray(scores_out)]
    s_in = _as_scores(scores_in, "scores_in", nonfinite)
    s_out = _as_scores(scores_out, "scores_out", nonfinite)
    result = {name: fn(s_in, s_out) for name, fn in METRICS.items()}
    result.update(
        n_in=int(s_in.size),
        n_out=int(s_out.size),
        n_nonfinite=int(sum(np.sum(~np.isfinite(r)) for r in raw)),
    )
    if ci_resamples:
        for name, fn in METRICS.items():
            low, high = bootstrap_ci(
                fn, s_in, s_out, num_resamples=ci_resamples, seed=seed
            )
            result[f"{name}_ci_low"], result[f"{name}_ci_high"] = low, high
    return result


def auroc_by_quantile(
    values, scores_in, scores_out, *, num_bins: int = 4
) -> list[dict[str, float]]:
    """AUROC of all the ID scores against each quantile bin of the OOD examples,
    binned by ``values`` (one per OOD example, e.g. how far an image is from its
    in-distribution counterpart): which OOD examples a detector misses.

    Returns:
        One ``{"low", "high", "n", "auroc"}`` per bin, in order of ``values``; bins
        are ``[low, high)`` between quantiles, the last one closed.
    """
    values, scores_out = np.asarray(values, np.float64), np.asarray(scores_out)
    if values.shape != scores_out.shape:
        raise ValueError(
            f"values {values.shape} must match scores_out {scores_out.shape}."
        )
    edges = np.quantile(values, np.linspace(0.0, 1.0, num_bins + 1))
    member = np.searchsorted(edges[1:-1], values, side="right")  # each in one bin
    return [
        {"low": float(edges[b]), "high": float(edges[b + 1]),
         "n": int(np.sum(member == b)),
         "auroc": auroc(scores_in, scores_out[member == b])}
        for b in range(num_bins)
    ]  # fmt: skip


def group_indices(num: int, group_size: int, seed: int) -> np.ndarray:
    """``(num // group_size, group_size)`` indices of a fixed-seed shuffle into groups.

    The last incomplete group is dropped (never padded, never mixing sets), as in the
    group anomaly detection protocol of ``watml/ood``.
    """
    if isinstance(group_size, bool) or not isinstance(group_size, int | np.integer):
        raise TypeError(
            f"group_size must be an integer, got {group_size!r} "
            f"({type(group_size).__name__})."
        )
    if group_size < 1 or num < group_size:
        raise ValueError(
            f"Cannot make groups of {group_size} from {num} inputs: group_size must "
            f"lie in [1, {num}]."
        )
    order = np.random.default_rng(seed).permutation(num)
    usable = num // group_size * group_size
    return order[:usable].reshape(-1, group_size)


def group_auroc(
    group_score,
    values_in,
    values_out,
    group_size: int,
    seeds=(0, 1, 2),
) -> dict[str, float | list[float]]:
    """AUROC over groups (ID-test groups vs OOD groups), mean ± std over shuffles.

    Args:
        group_score: maps per-input values of shape ``(G, M, ...)`` to ``(G,)``
            anomaly scores (e.g. the typicality statistic of grouped NLLs).
        values_in, values_out: per-input values ``(N, ...)`` of the two sets.
        group_size: M.
        seeds: one shuffle per seed (≥ 3 for a spread).

    Returns:
        ``{"mean", "std", "per_seed", "groups_in", "groups_out"}``.
    """
    values_in, values_out = np.asarray(values_in), np.asarray(values_out)
    per_seed = []
    for seed in seeds:
        gi = group_indices(len(values_in), group_size, seed)
        go = group_indices(len(values_out), group_size, seed + 10_000)
        per_seed.append(
            auroc(
                np.asarray(group_score(values_in[gi])),
                np.asarray(group_score(values_out[go])),
            )
        )
    return {
        "mean": float(np.mean(per_seed)),
        "std": float(np.std(per_seed)),
        "per_seed": per_seed,
        "groups_in": len(values_in) // group_size,
        "groups_out": len(values_out) // group_size,
    }
