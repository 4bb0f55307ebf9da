"""LID + likelihood dual threshold: x is in-distribution iff log p(x) ≥ ψ_L and
LID(x) ≥ ψ_LID.

Three ways to report it, named so that nobody confuses them:

- :func:`envelope_auroc` — the authors' protocol: the upper envelope of (FPR, TPR)
  over *all* threshold pairs, then ``max(AUC_envelope, AUC_likelihood)``. An oracle
  over a two-parameter family of classifiers, not the AUROC of any one score: it is at
  least the likelihood AUROC by construction.
- :func:`rank_and_detector` — an honest single score (a jaxood proposal): the AND
  rule in rank space, ``s(x) = -min(F_L(log p(x)), F_LID(LID(x)))`` with F the
  empirical CDFs of in-distribution *validation* data. Thresholding s at -q accepts x
  iff both its likelihood and its LID are above their q-quantiles.
- :func:`lid_only` — ``-LID(x)``.

:func:`dual_threshold_aurocs` reports all of them, with the likelihood alone, for one
(ID, OOD) pair; :func:`dual_threshold_pairs` for several OOD sets,
:func:`rank_and_pairs` the rank-AND rule over several LIDs, and
:func:`lid_only_sweep` what the best single τ of a sweep would give.

References: Kamkari et al., "A Geometric Explanation of the Likelihood OOD Detection
Paradox", ICML 2024, and its code ``notebooks/roc_analysis.py`` (the envelope).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from jaxood.detectors.detector import Detector
from jaxood.metrics import auroc, bootstrap_ci, summary


def _as_1d(values, name: str) -> np.ndarray:
    array = np.asarray(values, np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array, got shape {array.shape}."
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has {np.sum(~np.isfinite(array))} NaN/inf values.")
    return array


def _pairs(lik, lid, name: str) -> tuple[np.ndarray, np.ndarray]:
    lik, lid = _as_1d(lik, f"{name} likelihoods"), _as_1d(lid, f"{name} LIDs")
    if lik.shape != lid.shape:
        raise ValueError(
            f"{name}: {lik.size} likelihoods but {lid.size} LIDs; they must pair up."
        )
    return lik, lid


def _accept_rates(lik, lid, lik_thresholds, lid_threshold) -> np.ndarray:
    """Fraction of points with lik ≥ t_L and lid ≥ t_LID, for every t_L at once."""
    kept = np.sort(lik[lid >= lid_threshold])
    count = kept.size - np.searchsorted(kept, lik_thresholds, side="left")
    return count / lik.size


def envelope_auroc(
    lik_in,
    lid_in,
    lik_out,
    lid_out,
    *,
    max_lid_thresholds: int = 512,
    ci_resamples: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """The envelope AUROC of the dual threshold (ID positive), as the authors report.

    Every likelihood threshold is used; LID thresholds are all distinct LID values
    (plus a sentinel) when there are at most ``max_lid_thresholds`` of them, else that
    many quantiles (the reference instead draws 100,000 random pairs of the full grid).

    Args:
        lik_in, lid_in: ``(n_in,)`` log-likelihoods and LIDs of ID test points.
        lik_out, lid_out: ``(n_out,)`` of OOD points.
        ci_resamples: with a positive count, also the 95 % percentile bootstrap
            interval of ``reported`` (ID and OOD points resampled separately, as
            :func:`jaxood.metrics.bootstrap_ci`; a few seconds per 100 resamples
            at 1,000 points each).
        seed: of the bootstrap.

    Returns:
        ``{"envelope": AUC of the dual-rule envelope, "likelihood": likelihood-only
        AUROC, "reported": max of the two}``, plus ``reported_ci_low`` and
        ``reported_ci_high`` with ``ci_resamples``.
    """
    lik_in, lid_in = _pairs(lik_in, lid_in, "ID")
    lik_out, lid_out = _pairs(lik_out, lid_out, "OOD")
    result = _envelope(lik_in, lid_in, lik_out, lid_out, max_lid_thresholds)
    if ci_resamples:
        rng, reported = np.random.default_rng(seed), []
        for _ in range(ci_resamples):
            i = rng.integers(0, len(lik_in), len(lik_in))
            o = rng.integers(0, len(lik_out), len(lik_out))
            again = _envelope(lik_in[i], lid_in[i], lik_out[o], lid_out[o],
                              max_lid_thresholds)  # fmt: skip
            reported.append(again["reported"])
        low, high = np.quantile(reported, [0.025, 0.975])
        result |= {"reported_ci_low": float(low), "reported_ci_high": float(high)}
    return result


def _envelope(lik_in, lid_in, lik_out, lid_out, max_lid_thresholds) -> dict:
    all_lik = np.concatenate([lik_in, lik_out])
    all_lid = np.concatenate([lid_in, lid_out])
    lik_thresholds = np.r_[np.unique(all_lik), np.inf]
    lid_values = np.unique(all_lid)
    if lid_values.size > max_lid_thresholds:
        lid_values = np.unique(
            np.quantile(all_lid, np.linspace(0, 1, max_lid_thresholds))
        )
    points = [np.array([[0.0, 0.0], [1.0, 1.0]])]
    for t_lid in np.r_[lid_values, np.inf]:
        tpr = _accept_rates(lik_in, lid_in, lik_thresholds, t_lid)
        fpr = _accept_rates(lik_out, lid_out, lik_thresholds, t_lid)
        points.append(np.stack([fpr, tpr], axis=1))
    points = np.concatenate(points)
    order = np.lexsort((points[:, 1], points[:, 0]))
    points = points[order]
    # The monotone non-decreasing chain from (0, 0): drop points below the best TPR
    # already reached at a lower FPR, join the rest linearly.
    chain = points[points[:, 1] >= np.maximum.accumulate(points[:, 1])]
    area = np.trapezoid(chain[:, 1], chain[:, 0])
    likelihood = auroc(-lik_in, -lik_out)
    return {
        "envelope": float(area),
        "likelihood": likelihood,
        "reported": max(area, likelihood),
    }


def _cdf(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_values, values, side="right") / sorted_values.size


def rank_and_detector() -> Detector:
    """The AND rule in rank space as a ``Detector(fit, score)``.

    ``stats = fit(lik_val, lid_val)`` stores the ID validation distributions;
    ``score(stats, lik, lid)`` returns ``-min(F_L(lik), F_LID(lid))``, higher = OOD.
    More LIDs (e.g. the threshold LID at two τ) enter the same way:
    ``fit(lik_val, lid_val, lid2_val)``, ``score(stats, lik, lid, lid2)``, and the
    minimum runs over every CDF (a point is as anomalous as its rarest statistic).
    """

    def fit(lik_val, *lid_vals):
        if not lid_vals:
            raise ValueError("rank-AND needs at least one LID besides the likelihood.")
        columns = [_pairs(lik_val, lid, "validation") for lid in lid_vals]
        return {"likelihood": np.sort(columns[0][0]),
                "lid": [np.sort(lid) for _, lid in columns]}  # fmt: skip

    def score(stats, lik, *lids):
        if len(lids) != len(stats["lid"]):
            raise ValueError(f"fit on {len(stats['lid'])} LIDs, scored {len(lids)}.")
        columns = [_pairs(lik, lid, "test") for lid in lids]
        ranks = [_cdf(stats["likelihood"], columns[0][0])]
        for fitted, (_, lid) in zip(stats["lid"], columns, strict=True):
            ranks.append(_cdf(fitted, lid))
        return -np.min(ranks, axis=0)

    return Detector(fit, score)


def lid_only(lid) -> np.ndarray:
    """``-LID(x)``: low intrinsic dimension = anomalous."""
    return -_as_1d(lid, "LIDs")


def _auroc_summary(s_in, s_out, ci_resamples: int, seed: int) -> dict:
    result = {"auroc": auroc(s_in, s_out), "n_in": len(s_in), "n_out": len(s_out)}
    if ci_resamples:
        low, high = bootstrap_ci(
            auroc, s_in, s_out, num_resamples=ci_resamples, seed=seed
        )
        result |= {"auroc_ci_low": low, "auroc_ci_high": high}
    return result


def dual_threshold_aurocs(
    lik_in,
    lid_in,
    lik_out,
    lid_out,
    lik_val,
    lid_val,
    *,
    ci_resamples: int = 1000,
    envelope_ci_resamples: int = 0,
    seed: int = 0,
) -> dict:
    """Every way of reporting the dual threshold on one (ID, OOD) pair, OOD positive.

    Args:
        lik_in, lid_in: ``(n_in,)`` log-likelihoods (nats) and LIDs of ID test points.
        lik_out, lid_out: ``(n_out,)`` of OOD points.
        lik_val, lid_val: of ID validation points: the CDFs of the rank-AND rule are
            fit on them (never on a test point).
        ci_resamples: bootstrap resamples of the AUROC intervals (0: none).
        envelope_ci_resamples: of the envelope's interval (0: none; the envelope is
            recomputed per resample, a few seconds per 100 at 1,000 points each).
        seed: of both bootstraps.

    Returns:
        ``likelihood`` (−log p alone), ``lid_only`` and ``rank_and``: each
        ``{"auroc", "n_in", "n_out"}`` plus ``auroc_ci_low`` / ``auroc_ci_high``;
        ``envelope`` (the envelope's area) and ``envelope_reported`` (its max with
        the likelihood AUROC, as the authors report), floats, plus
        ``envelope_reported_ci_low`` / ``_high`` with ``envelope_ci_resamples``.
    """
    rule = rank_and_detector()
    stats = rule.fit(lik_val, lid_val)
    envelope = envelope_auroc(
        lik_in, lid_in, lik_out, lid_out, ci_resamples=envelope_ci_resamples, seed=seed
    )
    scores = {
        "likelihood": (
            -_as_1d(lik_in, "ID likelihoods"),
            -_as_1d(lik_out, "OOD likelihoods"),
        ),
        "lid_only": (lid_only(lid_in), lid_only(lid_out)),
        "rank_and": (
            rule.score(stats, lik_in, lid_in),
            rule.score(stats, lik_out, lid_out),
        ),
    }
    result = {k: _auroc_summary(*v, ci_resamples, seed) for k, v in scores.items()}
    result |= {
        "envelope": envelope["envelope"],
        "envelope_reported": envelope["reported"],
    }
    if envelope_ci_resamples:
        for end in ("low", "high"):
            result[f"envelope_reported_ci_{end}"] = envelope[f"reported_ci_{end}"]
    return result


def dual_threshold_pairs(
    log_p: Mapping[str, np.ndarray],
    lid: Mapping[str, np.ndarray],
    oods: Sequence[str],
    *,
    test: str = "id_test",
    validation: str = "validation",
    envelope_ci_resamples: int = 0,
    seed: int = 0,
) -> dict[str, dict]:
    """:func:`dual_threshold_aurocs` of each OOD set against the ID test set.

    Args:
        log_p, lid: ``{set: (N,)}`` log-likelihoods (nats) and LIDs of the sets
            named ``test``, ``validation`` (the rank-AND CDFs) and ``oods``.
        oods: the OOD sets' names; the result's keys.
        envelope_ci_resamples, seed: as :func:`dual_threshold_aurocs`.
    """
    return {
        ood: dual_threshold_aurocs(
            log_p[test], lid[test], log_p[ood], lid[ood], log_p[validation],
            lid[validation], envelope_ci_resamples=envelope_ci_resamples, seed=seed,
        )
        for ood in oods
    }  # fmt: skip


def rank_and_pairs(
    log_p: Mapping[str, np.ndarray],
    lids: Mapping[str, Sequence[np.ndarray]],
    oods: Sequence[str],
    *,
    test: str = "id_test",
    validation: str = "validation",
    ci_resamples: int = 1000,
) -> dict[str, dict]:
    """The rank-AND score over log p and several LIDs per point (e.g. the threshold
    LID at two τ), its CDFs fit on the ``validation`` set alone: one score from ID
    data. ``lids``: ``{set: [(N,), ...]}``. Returns ``{ood: metrics.summary}`` of
    each OOD set against the ``test`` set."""
    rule = rank_and_detector()
    stats = rule.fit(log_p[validation], *lids[validation])

    def score(name):
        return rule.score(stats, log_p[name], *lids[name])

    return {ood: summary(score(test), score(ood), ci_resamples=ci_resamples)
            for ood in oods}  # fmt: skip


def lid_only_sweep(
    log_p: Mapping[str, np.ndarray],
    lid_grid: Mapping[str, np.ndarray],
    log_taus: Sequence[float],
    oods: Sequence[str],
    *,
    test: str = "id_test",
) -> dict:
    """The LID-only AUROC of each OOD set at every τ of a sweep, and the dual
    envelope at the τ where it is highest. That τ is read off the test pair itself:
    a bound on what any one threshold gives, not a detector.

    Args:
        log_p: ``{set: (N,)}`` log-likelihoods (nats).
        lid_grid: ``{set: (N, len(log_taus))}`` threshold LID at each log τ.
        log_taus: the sweep.
        oods: the OOD sets' names.

    Returns:
        ``{"log_taus", "lid_only": {ood: [AUROC per τ]}, "best": {ood: {"log_tau",
        "lid_only", "envelope"}}}`` (the first τ of equal AUROCs).
    """
    out = {"log_taus": [float(t) for t in log_taus], "lid_only": {}, "best": {}}
    for ood in oods:
        pair = (lid_grid[test], lid_grid[ood])
        curve = [auroc(lid_only(a), lid_only(b))
                 for a, b in zip(pair[0].T, pair[1].T, strict=True)]  # fmt: skip
        best = int(np.argmax(curve))
        envelope = envelope_auroc(
            log_p[test], pair[0][:, best], log_p[ood], pair[1][:, best]
        )["reported"]
        out["lid_only"][ood] = curve
        out["best"][ood] = {"log_tau": float(log_taus[best]), "lid_only": curve[best],
                            "envelope": envelope}  # fmt: skip
    return out
