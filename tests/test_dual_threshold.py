"""The LID + likelihood dual threshold: envelope AUROC, rank-space AND score."""

import numpy as np
import pytest

from jaxood import detectors, lid, metrics


@pytest.fixture
def paradox():
    """OOD with *higher* likelihood but lower LID, as MNIST under an FMNIST model."""
    rng = np.random.default_rng(0)
    lik_in, lid_in = rng.normal(0.0, 1.0, 400), rng.normal(250, 15, 400).round()
    lik_out, lid_out = rng.normal(1.0, 1.0, 300), rng.normal(180, 15, 300).round()
    return lik_in, lid_in, lik_out, lid_out


def test_uninformative_lid_gives_the_likelihood_auroc():
    rng = np.random.default_rng(1)
    lik_in, lik_out = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 150)
    constant_in, constant_out = np.full(200, 7.0), np.full(150, 7.0)
    result = detectors.envelope_auroc(lik_in, constant_in, lik_out, constant_out)
    expected = metrics.auroc(-lik_in, -lik_out)
    assert result["envelope"] == pytest.approx(expected, abs=1e-9)
    assert result["reported"] == pytest.approx(expected, abs=1e-9)


def test_envelope_rescues_the_paradox(paradox):
    lik_in, lid_in, lik_out, lid_out = paradox
    result = detectors.envelope_auroc(lik_in, lid_in, lik_out, lid_out)
    assert result["likelihood"] < 0.4  # the paradox
    assert result["envelope"] > 0.97 and result["reported"] == result["envelope"]


def test_envelope_interval_is_a_bootstrap_around_it():
    rng = np.random.default_rng(4)  # overlapping: an interval of some width
    slim = [rng.normal(0.0, 1.0, 60), rng.normal(250, 15, 60).round(),
            rng.normal(-0.5, 1.0, 50), rng.normal(235, 15, 50).round()]  # fmt: skip
    result = detectors.envelope_auroc(*slim, ci_resamples=40, seed=3)
    assert result["reported_ci_low"] < result["reported"] < result["reported_ci_high"]
    again = detectors.envelope_auroc(*slim, ci_resamples=40, seed=3)
    assert again == result  # deterministic in the seed
    assert "reported_ci_low" not in detectors.envelope_auroc(*slim)


def test_rank_and_score_and_lid_only(paradox):
    lik_in, lid_in, lik_out, lid_out = paradox
    rng = np.random.default_rng(2)
    detector = detectors.rank_and_detector()
    stats = detector.fit(rng.normal(0.0, 1.0, 500), rng.normal(250, 15, 500).round())
    s_in = detector.score(stats, lik_in, lid_in)
    s_out = detector.score(stats, lik_out, lid_out)
    assert s_in.shape == (400,) and np.all((s_in >= -1) & (s_in <= 0))
    single = metrics.auroc(s_in, s_out)
    envelope = detectors.envelope_auroc(lik_in, lid_in, lik_out, lid_out)["envelope"]
    assert 0.9 < single <= envelope + 1e-9
    assert metrics.auroc(detectors.lid_only(lid_in), detectors.lid_only(lid_out)) > 0.95


def test_rank_and_over_several_lids_takes_the_rarest_statistic():
    rng = np.random.default_rng(3)
    val = rng.normal(0, 1, 200), rng.normal(0, 1, 200), rng.normal(0, 1, 200)
    rule = detectors.rank_and_detector()
    stats = rule.fit(*val)
    # Typical in likelihood and the first LID, far below the second LID's range.
    point = np.array([0.0]), np.array([0.0]), np.array([-9.0])
    assert rule.score(stats, *point)[0] == 0.0  # F = 0: as anomalous as possible
    assert rule.score(rule.fit(*val[:2]), *point[:2])[0] < -0.3  # not without it
    x = rng.normal(0, 1, (3, 50))
    cdfs = [np.mean(v[None] <= c[:, None], axis=1) for v, c in zip(val, x, strict=True)]
    np.testing.assert_allclose(rule.score(stats, *x), -np.min(cdfs, axis=0))
    with pytest.raises(ValueError, match="fit on 2 LIDs, scored 1"):
        rule.score(stats, *x[:2])
    with pytest.raises(ValueError, match="at least one LID"):
        rule.fit(val[0])


def test_every_report_of_one_pair(paradox):
    lik_in, lid_in, lik_out, lid_out = paradox
    rng = np.random.default_rng(2)
    val = rng.normal(0.0, 1.0, 500), rng.normal(250, 15, 500).round()
    r = detectors.dual_threshold_aurocs(
        lik_in,
        lid_in,
        lik_out,
        lid_out,
        *val,
        ci_resamples=50,
        envelope_ci_resamples=20,
    )
    envelope = detectors.envelope_auroc(lik_in, lid_in, lik_out, lid_out)
    assert r["envelope"] == envelope["envelope"]
    assert r["envelope_reported"] == envelope["reported"]
    assert r["likelihood"]["auroc"] == metrics.auroc(-lik_in, -lik_out) < 0.4
    rule = detectors.rank_and_detector()
    stats = rule.fit(*val)
    assert r["rank_and"]["auroc"] == metrics.auroc(
        rule.score(stats, lik_in, lid_in), rule.score(stats, lik_out, lid_out)
    )
    assert r["lid_only"]["auroc"] > 0.95 and r["lid_only"]["n_out"] == 300
    for k in ("likelihood", "lid_only", "rank_and"):
        assert r[k]["auroc_ci_low"] <= r[k]["auroc"] <= r[k]["auroc_ci_high"]
    low, high = r["envelope_reported_ci_low"], r["envelope_reported_ci_high"]
    assert low <= r["envelope_reported"] <= high
    bare = detectors.dual_threshold_aurocs(
        lik_in, lid_in, lik_out, lid_out, *val, ci_resamples=0
    )
    assert "auroc_ci_low" not in bare["rank_and"]
    assert "envelope_reported_ci_low" not in bare


def test_bad_input():
    with pytest.raises(ValueError, match="pair up"):
        detectors.envelope_auroc(np.zeros(3), np.zeros(2), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        detectors.lid_only(np.array([1.0, np.nan]))


def test_pairs_sweep_and_rank_and_over_named_sets(paradox):
    lik_in, lid_in, lik_out, lid_out = paradox
    rng = np.random.default_rng(5)
    val = rng.normal(0.0, 1.0, 300), rng.normal(250, 15, 300).round()
    log_p = {"id_test": lik_in, "val": val[0], "digits": lik_out, "same": lik_in[::-1]}
    lid = {"id_test": lid_in, "val": val[1], "digits": lid_out, "same": lid_in[::-1]}
    pairs = detectors.dual_threshold_pairs(
        log_p, lid, ["digits", "same"], validation="val"
    )
    one = detectors.dual_threshold_aurocs(lik_in, lid_in, lik_out, lid_out, *val)
    assert list(pairs) == ["digits", "same"] and pairs["digits"] == one
    assert pairs["same"]["rank_and"]["auroc"] == pytest.approx(0.5)
    # The sweep: the LID at three "τ", of which the middle one carries the signal.
    grid = {k: np.stack([np.zeros_like(v), v, np.zeros_like(v)], axis=1)
            for k, v in lid.items()}  # fmt: skip
    sweep = detectors.lid_only_sweep(log_p, grid, [-3.0, -2.0, -1.0], ["digits"])
    assert sweep["lid_only"]["digits"][0] == 0.5
    best = sweep["best"]["digits"]
    assert best["log_tau"] == -2.0 and best["lid_only"] > 0.95
    assert best["envelope"] == pytest.approx(one["envelope_reported"])
    # Rank-AND over two LIDs: the second (noise) cannot raise the first one's rank.
    both = {k: [v, rng.normal(0, 1, len(v))] for k, v in lid.items()}
    ranked = detectors.rank_and_pairs(
        log_p, both, ["digits"], validation="val", ci_resamples=20
    )["digits"]
    assert 0.8 < ranked["auroc"] and ranked["auroc_ci_low"] <= ranked["auroc"]


def test_the_sweep_finds_the_band_of_tau_that_separates_the_sets():
    # ID: four singular values of 1 (LID 4 below τ = 1). OOD: two of 1 and two of
    # 1e-4, so LID 2 for 1e-4 < τ < 1: separated there, tied (4 or 0) elsewhere.
    log_taus = np.linspace(-10.0, 5.0, 50)
    ones, mixed = np.ones((6, 4)), np.tile([1.0, 1.0, 1e-4, 1e-4], (5, 1))
    grid = {k: np.asarray(lid.threshold_lid(s, log_taus))
            for k, s in (("id_test", ones), ("x", mixed))}  # fmt: skip
    log_p = {"id_test": np.zeros(6), "x": np.zeros(5)}
    sweep = detectors.lid_only_sweep(log_p, grid, log_taus, ["x"])
    curve = np.array(sweep["lid_only"]["x"])
    inside = (log_taus > np.log(1e-4)) & (log_taus < 0)
    np.testing.assert_allclose(curve[inside], 1.0)  # OOD has the lower LID
    np.testing.assert_allclose(curve[~inside], 0.5)
    assert sweep["best"]["x"] == {
        "log_tau": log_taus[inside][0],
        "lid_only": 1.0,
        "envelope": 1.0,
    }
