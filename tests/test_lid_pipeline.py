"""The τ sweep of the LID experiment on spectra whose answer is known."""

import numpy as np

from experiments import lid_pipeline
from jaxood import lid


def _counts(s):
    """Threshold LID of each row of singular values at each log τ of the sweep."""
    return np.asarray(lid.threshold_lid(s, lid_pipeline.SWEEP))


def test_the_sweep_finds_the_band_of_tau_that_separates_the_sets():
    # ID: four singular values of 1 (LID 4 below τ = 1). OOD: two of 1 and two of
    # 1e-4, so LID 2 for 1e-4 < τ < 1: separated there, tied (4 or 0) elsewhere.
    ones, mixed = np.ones((6, 4)), np.tile([1.0, 1.0, 1e-4, 1e-4], (5, 1))
    spectra = {
        "id_test": {"s": ones, "log_p": np.zeros(6)},
        "ood/x": {"s": mixed, "log_p": np.zeros(5)},
    }
    counts = {k: _counts(v["s"]) for k, v in spectra.items()}
    sweep = lid_pipeline._lid_only_sweep(spectra, counts, ["ood/x"])
    log_taus, curve = np.array(sweep["log_taus"]), np.array(sweep["lid_only"]["x"])
    inside = (log_taus > np.log(1e-4)) & (log_taus < 0)
    np.testing.assert_allclose(curve[inside], 1.0)  # OOD has the lower LID
    np.testing.assert_allclose(curve[~inside], 0.5)
    assert sweep["best"]["x"] == {
        "log_tau": log_taus[inside][0],
        "lid_only": 1.0,
        "envelope": 1.0,
    }
