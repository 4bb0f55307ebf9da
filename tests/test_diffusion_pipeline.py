"""The diffusion experiment through the one entry point, on its smoke config.

A file of its own so that the two test workers (``--dist loadfile``) run it beside
tests/test_experiments.py instead of after it.
"""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import forced_devices_env

from experiments import configured, main, tables
from experiments.configs import diffusion_fmnist

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    del data_dir  # prepared offline data
    runs = tmp_path_factory.mktemp("runs")
    main.main([
        "experiments.main", "--config",
        "experiments/configs/diffusion_fmnist.py:smoke",
        "--workdir", str(runs / "diffusion_fmnist"),
    ])  # fmt: skip
    return runs


def test_every_set_and_t0_is_scored(runs):
    workdir = runs / "diffusion_fmnist"
    config = diffusion_fmnist.get_config("smoke")
    results = json.loads((workdir / "results.json").read_text())
    s = results["settings"]["fashion_mnist"]
    oods = [entry.split(":")[0] for entry in config.settings.fashion_mnist.ood]
    assert list(s["pairs"]) == oods
    assert s["t0_knee"] in s["t0s"] and len(s["curve_t0s"]) == config.score.curve_points
    for pair in s["pairs"].values():
        assert len(pair["per_t0"]) == len(s["t0s"])
        for cell in pair["per_t0"].values():
            assert cell["envelope_reported"] >= pair["likelihood"]["auroc"] - 1e-12
    scores = np.load(workdir / "fashion_mnist" / "scores.npz")
    n = config.score.max_eval
    assert scores["id_test/flipd"].shape == (n, len(s["t0s"]))
    assert scores["id_val/log_p"].shape == (config.score.val_images,)
    assert np.all(np.isfinite(scores["id_test/log_p"]))
    summary = json.loads(
        (workdir / "fashion_mnist/score_model/summary.json").read_text()
    )
    assert summary["selected"] == "final"  # the parameter average of the last step


def test_report_and_table(runs, tmp_path):
    workdir = runs / "diffusion_fmnist"
    assert (workdir / "samples_fashion_mnist.png").stat().st_size > 1000
    assert (workdir / "flipd_fashion_mnist.png").stat().st_size > 1000
    assert tables.collect(runs, tmp_path) == ["diffusion_fmnist"]
    block = tables.blocks(tmp_path)["experiments/README.md"]["diffusion_fmnist"]
    assert "| dual envelope, t0 = " in block and "Test bits/dim" in block
    assert "diffusion_fmnist.py --workdir runs/diffusion_fmnist" in block
    # A second run restores the model and the cached scores: nothing is redone.
    outputs = [workdir / "fashion_mnist" / f for f in
               ("scores.npz", "score_model/metrics.jsonl")]  # fmt: skip
    before = [p.stat().st_mtime_ns for p in outputs]
    main.main([
        "experiments.main", "--config",
        "experiments/configs/diffusion_fmnist.py:smoke",
        "--workdir", str(workdir), "--mode", "score",
    ])  # fmt: skip
    assert [p.stat().st_mtime_ns for p in outputs] == before


@pytest.mark.extended  # ~90 s; tests/test_parallel.py covers the same functions
def test_four_devices_give_the_one_device_run(runs, tmp_path):
    """The same smoke run on 4 forced host devices (batches split, params
    replicated, every ODE and FLIPD batch sharded): the printed mesh line, and the
    one-device scores up to float summation order."""
    env = forced_devices_env(4, PYTHONPATH=str(configured.ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "experiments.main", "--config",
         "experiments/configs/diffusion_fmnist.py:smoke",
         "--workdir", str(tmp_path / "four"), "--mode", "score"],
        cwd=configured.ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mesh {'data': 4} over 4 device(s)" in done.stdout
    one = np.load(runs / "diffusion_fmnist" / "fashion_mnist" / "scores.npz")
    four = np.load(tmp_path / "four" / "fashion_mnist" / "scores.npz")
    assert sorted(one) == sorted(four)
    for name in one:
        np.testing.assert_allclose(four[name], one[name], rtol=1e-3, err_msg=name)

    # The AUROCs of every detector and pair, from those scores.
    def aurocs(workdir):
        pairs = json.loads((workdir / "results.json").read_text())["settings"]
        return json.dumps(pairs["fashion_mnist"]["pairs"], sort_keys=True)

    assert aurocs(tmp_path / "four") == aurocs(runs / "diffusion_fmnist")
