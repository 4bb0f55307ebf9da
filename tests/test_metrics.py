"""jaxood.metrics against scikit-learn, on random, tied and degenerate inputs."""

import functools

import numpy as np
import pytest
from sklearn import metrics as skm

from jaxood import metrics

NUM_CASES = 1000


def _case(rng: np.random.Generator):
    n_in, n_out = rng.integers(1, 60, size=2)
    kind = rng.integers(0, 3)
    if kind == 0:  # continuous
        s_in, s_out = rng.normal(size=n_in), rng.normal(0.5, size=n_out)
    elif kind == 1:  # heavy ties: few distinct values
        s_in, s_out = rng.integers(0, 4, n_in), rng.integers(0, 4, n_out)
    else:  # integer counts like threshold LID
        s_in, s_out = rng.poisson(20, n_in), rng.poisson(22, n_out)
    return s_in.astype(float), s_out.astype(float)


def _sklearn(s_in, s_out, positive="ood"):
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s = np.r_[s_in, s_out]
    if positive == "id":
        y, s = 1 - y, -s
    return y, s


def _sk_fpr(s_in, s_out, q, positive="ood"):
    y, s = _sklearn(s_in, s_out, positive)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    return fpr[np.argmax(tpr >= q)]


@pytest.mark.slow
def test_metrics_equal_sklearn_on_1000_random_cases():
    rng = np.random.default_rng(1234)
    for _ in range(NUM_CASES):
        s_in, s_out = _case(rng)
        y, s = _sklearn(s_in, s_out)
        assert metrics.auroc(s_in, s_out) == pytest.approx(
            skm.roc_auc_score(y, s), abs=1e-9
        )
        assert metrics.aupr_out(s_in, s_out) == pytest.approx(
            skm.average_precision_score(y, s), abs=1e-9
        )
        y_id, s_id = _sklearn(s_in, s_out, "id")
        assert metrics.aupr_in(s_in, s_out) == pytest.approx(
            skm.average_precision_score(y_id, s_id), abs=1e-9
        )
        for q in (0.95, 0.80):
            for positive in ("ood", "id"):
                ours = metrics.fpr_at_tpr(s_in, s_out, q, positive=positive)
                assert ours == pytest.approx(
                    _sk_fpr(s_in, s_out, q, positive), abs=1e-9
                )


def test_auroc_is_the_same_under_either_positive_class():
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(size=50), rng.normal(1.0, size=40)
    y, s = _sklearn(s_in, s_out, "id")
    assert metrics.auroc(s_in, s_out) == pytest.approx(skm.roc_auc_score(y, s))


def test_degenerate_cases():
    same = np.ones(10)
    assert metrics.auroc(same, same) == 0.5
    assert metrics.auroc([0.0], [1.0]) == 1.0
    assert metrics.auroc([1.0], [0.0]) == 0.0  # inverted scores stay inverted
    assert metrics.aupr_out(same, same) == pytest.approx(0.5)
    assert metrics.fpr_at_tpr([0.0, 0.1], [1.0, 2.0]) == 0.0
    assert metrics.fpr_at_tpr(same, same) == 1.0


def test_nonfinite_scores_raise_or_rank_highest():
    with pytest.raises(ValueError, match="1 NaN/inf scores.*most_anomalous"):
        metrics.auroc([0.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="NaN/inf"):
        metrics.summary([0.0], [np.inf])
    auc = metrics.auroc([0.0, 1.0], [np.nan, np.inf], nonfinite="most_anomalous")
    assert auc == 1.0
    result = metrics.summary([0.0, 1.0], [np.nan, 0.5], nonfinite="most_anomalous")
    assert result["n_nonfinite"] == 1
    assert result["auroc"] == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("scores_in", "scores_out", "message"),
    [
        ([], [1.0], "scores_in is empty"),
        ([1.0], np.zeros((2, 2)), "1-D array"),
        (["a"], [1.0], "numeric"),
    ],
)
def test_bad_input_names_the_problem(scores_in, scores_out, message):
    with pytest.raises((ValueError, TypeError), match=message):
        metrics.auroc(scores_in, scores_out)


def test_bad_arguments():
    with pytest.raises(ValueError, match="positive must be"):
        metrics.fpr_at_tpr([0.0], [1.0], positive="in")
    with pytest.raises(ValueError, match="tpr must be"):
        metrics.fpr_at_tpr([0.0], [1.0], 1.5)


def test_summary_keys_and_bootstrap_interval():
    rng = np.random.default_rng(3)
    s_in, s_out = rng.normal(size=300), rng.normal(1.0, size=200)
    result = metrics.summary(s_in, s_out, ci_resamples=200)
    assert result["n_in"] == 300 and result["n_out"] == 200
    for name in ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr80"):
        assert result[f"{name}_ci_low"] <= result[name] <= result[f"{name}_ci_high"]
    assert result["auroc_ci_low"] < result["auroc_ci_high"]
    low, high = metrics.bootstrap_ci(
        functools.partial(metrics.fpr_at_tpr, tpr=0.8), s_in, s_out, seed=1
    )
    assert 0.0 <= low <= high <= 1.0
    again = metrics.bootstrap_ci(
        functools.partial(metrics.fpr_at_tpr, tpr=0.8), s_in, s_out, seed=1
    )
    assert again == (low, high)


def test_roc_curve_matches_sklearn():
    rng = np.random.default_rng(5)
    s_in, s_out = (
        rng.integers(0, 5, 40).astype(float),
        rng.integers(1, 6, 30).astype(float),
    )
    fpr, tpr = metrics.roc_curve(s_in, s_out)
    y, s = _sklearn(s_in, s_out)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_auroc_by_quantile_bins_the_ood_examples():
    rng = np.random.default_rng(0)
    s_in, values = rng.normal(size=200), rng.uniform(size=400)
    s_out = values * 4 - 2 + rng.normal(size=400) * 0.1  # larger values: more OOD
    bins = metrics.auroc_by_quantile(values, s_in, s_out)
    assert [b["n"] for b in bins] == [100] * 4
    assert bins[0]["low"] == values.min() and bins[-1]["high"] == values.max()
    aurocs = [b["auroc"] for b in bins]
    assert aurocs == sorted(aurocs) and aurocs[0] < 0.3 and aurocs[-1] > 0.9
    low = values < bins[0]["high"]
    assert aurocs[0] == metrics.auroc(s_in, s_out[low])
    with pytest.raises(ValueError, match="must match"):
        metrics.auroc_by_quantile(values[:3], s_in, s_out)
