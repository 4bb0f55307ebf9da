"""Every published experiment through the one entry point, on the smoke configs.

The commands are those of ``make reproduce`` (and of the tables' "Command:" lines)
with ``:smoke`` configs and temporary run directories.
"""

import json
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import forced_devices_env

from experiments import (
    configured,
    dose_pipeline,
    flow_pipeline,
    main,
    ship,
    tables,
    vae_pipeline,
)
from experiments.configs import dose_fmnist, glow_fmnist
from jaxood.flows import losses

pytestmark = pytest.mark.slow
CONFIGS = "experiments/configs/"


def run_main(*args: str) -> None:
    main.main(["experiments.main", *args])
    # Drop the run's compiled programs: this module runs about fifteen pipelines in
    # one process, and on a fresh 2-core machine (2026-12-02) the next executable
    # loaded after them aborted inside XLA, three runs of three (their code pages
    # stay mapped while the jit caches hold them).
    jax.clear_caches()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir):
    """The smoke variant of every published table's command, in order."""
    del data_dir  # prepared offline data
    runs = tmp_path_factory.mktemp("runs")
    glow, mnist = str(runs / "glow_fmnist"), str(runs / "glow_mnist_5k")
    run_main("--config", f"{CONFIGS}glow_fmnist.py:smoke", "--workdir", glow)
    run_main(
        "--config",
        f"{CONFIGS}glow_fmnist.py:mnist_5k,smoke",
        "--workdir",
        mnist,
        f"--config.checkpoints={glow}",
    )
    for config, workdir, *extra in (
        ("smoke", glow),
        ("mnist_5k,smoke", mnist, f"--config.checkpoints={glow}"),
    ):
        config = f"{CONFIGS}glow_fmnist.py:{config}"
        run_main("--config", config, "--workdir", workdir, "--mode", "lid", *extra)
    # Its own ID model, then LID, on 2 forced host devices as the published LID
    # runs: replicated arrays there once hung the lPCA step and broke its slicing.
    lid_run = subprocess.run(
        [sys.executable, "-m", "experiments.main", "--config",
         f"{CONFIGS}glow_fmnist.py:smoke,spline", "--workdir",
         str(runs / "glow_fmnist_spline"), "--mode", "lid"],
        env=forced_devices_env(2, PYTHONPATH=str(configured.ROOT)),
        cwd=configured.ROOT, timeout=900, capture_output=True, text=True,
    )  # fmt: skip
    assert lid_run.returncode == 0, lid_run.stderr[-3000:]
    assert "over 2 device(s)" in lid_run.stdout
    assert "| pair | log τ | likelihood | dual: envelope" in lid_run.stdout  # table
    vae = str(runs / "vae_ood")
    run_main("--config", f"{CONFIGS}vae_ood.py:smoke", "--workdir", vae)
    run_main(  # DoSE over the models above: restored, not trained again
        "--config",
        f"{CONFIGS}dose_fmnist.py:smoke",
        "--workdir",
        str(runs / "dose_fmnist"),
        f"--config.flow_workdirs.fashion_mnist={glow}",
        f"--config.flow_workdirs.mnist_5k={mnist}",
        f"--config.flow.mnist_5k.checkpoints={glow}",
        f"--config.vae_workdir={vae}",
    )
    return runs


def test_every_detector_and_set_is_scored(runs):
    config, workdir = glow_fmnist.get_config("smoke"), runs / "glow_fmnist"
    results = json.loads((workdir / "results.json").read_text())
    ood = [entry.split(":")[0] for entry in config.data.ood]
    ood += ["general_held_out"] * config.scoring.general_held_out  # the general crops
    baselines = {"typicality", "ren_llr", "waic", "complexity_png", "klods_image_k2"}
    assert set(flow_pipeline.DETECTORS) | baselines <= set(results["metrics"])
    assert set(results["metrics"]) == set(results["detectors"])
    for per_set in results["metrics"].values():
        assert sorted(per_set) == sorted(ood)
        for m in per_set.values():
            assert 0.0 <= m["auroc"] <= 1.0 and m["n_in"] == config.data.max_eval
    held_out = results["metrics"]["llr_outlier"]["general_held_out"]
    assert held_out["n_out"] == len(flow_pipeline.load_sets(config)["general_val"])
    scores = np.load(workdir / "scores.npz")
    assert scores["id_test/likelihood"].shape == (config.data.max_eval,)
    # Each detector is computed from the right stage's log-likelihoods.
    for name in ("id_test", "ood/mnist_5k"):
        log_p = {s: scores[f"{name}/log_p_{s}"] for s in flow_pipeline.STAGES}
        np.testing.assert_allclose(scores[f"{name}/likelihood"], -log_p["id"])
        np.testing.assert_allclose(
            scores[f"{name}/final_scale"], -scores[f"{name}/per_scale_id"][:, -1]
        )
        np.testing.assert_allclose(
            scores[f"{name}/llr"], log_p["general"] - log_p["id"]
        )
        np.testing.assert_allclose(
            scores[f"{name}/llr_outlier"], log_p["general"] - log_p["id_outlier"]
        )
        background = scores[f"{name}/log_p_background"]
        np.testing.assert_allclose(scores[f"{name}/ren_llr"], background - log_p["id"])
        members = np.stack([scores[f"{name}/log_p_ensemble_{k}"] for k in (0, 1)])
        waic = members.mean(0) - members.var(0, ddof=1)
        np.testing.assert_allclose(scores[f"{name}/waic"], -waic, rtol=1e-5)
        entropy = results["typicality_entropy_nats"]
        # float32 NLLs of ~10³ nats: |NLL − Ĥ| near 0 keeps only ~1e-4 absolute.
        np.testing.assert_allclose(
            scores[f"{name}/typicality"],
            np.abs(-log_p["id"] - entropy),
            rtol=1e-5,
            atol=1e-3,
        )
        nll_bpd = -log_p["id"] / (1024 * np.log(2)) + 8
        png = nll_bpd - scores[f"{name}/complexity_png"]  # the PNG bits/dim
        assert np.all((png > 0) & (png < 16))
    assert list(results["groups"]) == ["5", "10"]
    for size in ("5", "10"):
        for detector, per_set in results["groups"][size]["auroc"].items():
            assert sorted(per_set) == sorted(ood), detector
            for g in per_set.values():
                assert len(g["per_seed"]) >= 3 and 0.0 <= g["mean"] <= 1.0


def test_ratio_against_the_length_of_training(runs):
    # The smoke Glows keep their params after 2 of their 4 steps.
    for workdir in (runs / "glow_fmnist", runs / "glow_mnist_5k"):
        results = json.loads((workdir / "results.json").read_text())
        sweep, metrics = results["training_length"], results["metrics"]
        assert list(sweep) == ["general", "id", "id_outlier"]
        assert all(list(rows) == ["2", "4"] for rows in sweep.values())
        assert (workdir / "general" / "snapshots" / "2").is_dir()  # also restored
        for ood, auroc in sweep["general"]["4"]["llr"].items():  # the final models
            assert auroc == pytest.approx(metrics["llr"][ood]["auroc"], abs=1e-9)
            assert sweep["id"]["4"]["llr"][ood] == pytest.approx(auroc, abs=1e-9)
            assert sweep["id"]["4"]["likelihood"][ood] == pytest.approx(
                metrics["likelihood"][ood]["auroc"], abs=1e-9
            )
            assert sweep["id_outlier"]["4"]["llr_outlier"][ood] == pytest.approx(
                metrics["llr_outlier"][ood]["auroc"], abs=1e-9
            )
        # The outlier loss's term on the held-out general crops, from the same log p.
        arrays = np.load(workdir / "scores.npz")
        held_out = {
            s: arrays[f"ood/general_held_out/log_p_{s}"]
            for s in ("general", "id_outlier")
        }
        sc = glow_fmnist.get_config("smoke").stages  # the same loss in both runs
        expected = losses.outlier_penalty(
            held_out["id_outlier"], held_out["general"],
            weight=sc.outlier_weight, temperature=sc.outlier_temperature,
        )  # fmt: skip
        term = sweep["id_outlier"]["4"]["val_outlier_term"]
        assert term == pytest.approx(float(expected), rel=1e-6)
        assert all(r["val_outlier_term"] >= 0 for r in sweep["id_outlier"].values())
        assert (workdir / "length.png").stat().st_size > 0  # its plot
        early = sweep["id"]["2"]
        assert early["val_bpd"] > 0 and 0 <= early["llr"][ood] <= 1


def test_report_files_are_written(runs):
    workdir = runs / "glow_fmnist"
    for name in (
        "report.md",
        "scores.png",
        "training.png",
        "groups.png",
        "samples_id.png",
    ):
        assert (workdir / name).stat().st_size > 0
    assert "| typicality | 5 |" in (workdir / "report.md").read_text()
    assert "glow_fmnist.py:smoke" in (workdir / "report.md").read_text()  # command
    for stage in flow_pipeline.STAGES:
        summary = json.loads((workdir / stage / "summary.json").read_text())
        assert summary["steps"] == 4 and np.isfinite(summary["val_bpd"])
    outlier = json.loads((workdir / "id_outlier" / "summary.json").read_text())
    assert outlier["selected"] == "final" and outlier["selected_step"] == 4
    for name in ("report.md", "hole_histograms.png", "scaling.png"):
        assert (runs / "vae_ood" / name).stat().st_size > 0


def test_a_second_run_trains_and_scores_nothing(runs, capsys):
    workdir = runs / "glow_fmnist"
    stages = [p.parent for p in workdir.glob("*/final_params")]
    before = {p: (p / "metrics.jsonl").read_text() for p in stages}
    scores = (workdir / "scores.npz").stat().st_mtime_ns
    run_main(
        "--config",
        f"{CONFIGS}glow_fmnist.py:smoke",
        "--workdir",
        str(workdir),
        "--mode",
        "score",
    )
    assert {p: (p / "metrics.jsonl").read_text() for p in stages} == before
    assert (workdir / "scores.npz").stat().st_mtime_ns == scores
    assert "up to date: reusing them" in capsys.readouterr().out


def test_the_reverse_setting_restores_the_general_model(runs):
    mnist = runs / "glow_mnist_5k"
    assert not (mnist / "general" / "metrics.jsonl").exists()  # restored, not trained
    assert (mnist / "id" / "metrics.jsonl").exists()
    results = json.loads((mnist / "results.json").read_text())
    assert list(results["metrics"]["likelihood"]) == [
        "fashion_mnist",
        "general_held_out",
    ]
    assert results["training"]["general"]["restored_from"].endswith("general")


def test_lid_results(runs):
    results = json.loads((runs / "glow_fmnist" / "lid" / "results.json").read_text())
    assert results["counts"]["id_test"] == 2 and results["counts"]["calibration"] == 2
    model = results["id_model"]  # the test bits/dim on every ID test image
    assert model["steps"] == 4 and model["test_images"] == 128
    assert 0 < model["test_bpd"] < 16 and np.isfinite(model["val_bpd"])
    curves = results["lidl"]["mean_curves"]
    assert set(curves) == {"id_test", "ood/mnist_5k", "ood/uniform_noise"}
    # LIDL is about D = 1024 at tiny δ and falls towards 0 at large δ. The
    # z-dependent term of the formula may lift it above D: at δ = -8 by a few units
    # for uniform noise, whose latents are far out (σ² Σ z̃ᵢ²/λᵢ).
    for curve in curves.values():
        assert 1022.0 < curve[0] < 1.01 * 1024 and curve[-1] < 0.05 * curve[0]
        assert min(curve) >= 0.0
    assert set(results["pairs"]) == {"mnist_5k", "uniform_noise"}  # every OOD set
    for r in results["pairs"].values():
        rank_and, likelihood = r["rank_and"], r["likelihood"]
        assert (
            rank_and["auroc_ci_low"] <= rank_and["auroc"] <= rank_and["auroc_ci_high"]
        )
        assert r["envelope_reported"] >= likelihood["auroc"] - 1e-12
        assert r["envelope_reported_ci_low"] <= r["envelope_reported_ci_high"]
    assert (runs / "glow_fmnist" / "lid" / "lid.png").stat().st_size > 0
    assert any(k.endswith("(widest ID LID)") for k in results["fixed_tau"])
    both = results["rank_and_both"]  # one score: log p and the LID at two τ
    assert both["log_taus"][0] == results["log_tau"] and len(both["log_taus"]) == 2
    assert set(both["pairs"]) == set(results["pairs"])
    for r in both["pairs"].values():
        assert r["auroc_ci_low"] <= r["auroc"] <= r["auroc_ci_high"]
    sweep = results["tau_sweep"]  # LID only at every τ; the envelope at the best
    for ood, curve in sweep["lid_only"].items():
        assert len(curve) == len(sweep["log_taus"]) == 50
        assert all(0 <= a <= 1 for a in curve)
        best = sweep["best"][ood]
        assert best["lid_only"] == max(curve) <= best["envelope"] + 1e-9
        assert best["log_tau"] == sweep["log_taus"][curve.index(max(curve))]
    report = (runs / "glow_fmnist" / "lid" / "report.md").read_text()
    assert "--mode lid" in report and "dual: envelope" in report and "lid.png" in report


def test_vae_results(runs):
    results = json.loads((runs / "vae_ood" / "results.json").read_text())
    assert set(results["pairs"]) == {
        "fashion_mnist→mnist_5k",
        "fashion_mnist→uniform_noise",
        "mnist_5k→fashion_mnist",
    }
    for per_model in results["pairs"].values():
        assert set(per_model) == {"vanilla", "lipschitz", "hyperspherical"}
        for per_detector in per_model.values():
            assert set(per_detector) == set(vae_pipeline.DETECTORS)
            for m in per_detector.values():
                assert 0.0 <= m["auroc"] <= 1.0 and 0.0 <= m["fpr80"] <= 1.0
    assert set(results["scaling"]) == {"vanilla", "lipschitz"}


def test_density_of_states_results(runs):
    workdir = runs / "dose_fmnist"
    assert not list(workdir.glob("**/metrics.jsonl"))  # every model restored
    results = json.loads((workdir / "results.json").read_text())
    config = dose_fmnist.get_config("smoke")
    assert list(results["settings"]) == ["fashion_mnist", "mnist_5k"]
    for setting, r in results["settings"].items():
        oods = [e.split(":")[0] for e in config.data.ood[setting]]
        assert r["sizes"]["fit"] == config.data.num_fit
        assert set(r["dose"]) == {"kde", "gmm"}
        for per_family in r["dose"].values():
            assert set(per_family) == {"flow", "vae", "all"}
            for per_set in per_family.values():
                assert list(per_set) == oods
                assert all(0.0 <= m["auroc"] <= 1.0 for m in per_set.values())
        features = r["features"]["all"]
        assert {"glow/log_p", "glow/klods_tc", "vanilla/hole", "lipschitz/rate"} <= set(
            features
        )
        assert set(r["ablation"]["drop_one"]) == set(features)
    quarters = results["settings"]["fashion_mnist"]["flip_asymmetry"]
    assert [q["n"] for q in quarters["fashion_mnist_vflip"]] == [8, 8, 8, 8]
    report = (workdir / "report.md").read_text()
    assert "| DoSE (kde), all (27 features) |" in report
    assert (workdir / "single_features_mnist_5k.png").stat().st_size > 0


def test_the_dose_fit_set_holds_no_image_of_any_validation_or_test_set(data_dir):
    """Fit images are training images of every model: none is in the flow's or a
    VAE's validation split, nor in the ID test split."""
    from jaxood import data

    del data_dir
    config = dose_fmnist.get_config("")
    images = dose_pipeline.load_images(config, "fashion_mnist")
    train, labels = data.load("fashion_mnist", "train", with_labels=True)
    flow_val = flow_pipeline.split_indices(config.flow.fashion_mnist, labels)[1]
    vae_val = configured.split_indices(config.vae, labels)[1]
    held_out = np.concatenate(
        [train[flow_val], train[vae_val], data.load("fashion_mnist", "test")]
    )
    fit = {x.tobytes() for x in images[dose_pipeline.FIT]}
    assert len(fit) > 0.99 * config.data.num_fit  # (Fashion-MNIST has duplicates)
    assert not fit & {x.tobytes() for x in held_out}


def test_every_table_renders_from_the_smoke_results(runs, tmp_path):
    """The renderers of every generated block accept what the pipelines write."""
    # The diffusion pipeline has its own file (tests/test_diffusion_pipeline.py),
    # the MNIST-5k spline run its own test (extended, for CI time); the 1,000- and
    # 5,000-image spline LID runs are the spline command with other counts; the
    # general_images runs need that set (a 300 MB download): not smoke-tested.
    skipped = ("diffusion", "mnist_5k_spline", "spline_1000", "spline_5000",
               "general_images")  # fmt: skip
    expected = [n for n in tables.SOURCES if not any(s in n for s in skipped)]
    assert tables.collect(runs, tmp_path) == expected
    rendered = tables.blocks(tmp_path)
    glow = rendered["experiments/README.md"]["glow_fmnist"]
    assert "| likelihood |" in glow and "glow_fmnist.py --workdir" in glow
    lid_block = rendered["experiments/README.md"]["glow_fmnist_lid"]
    assert "FMNIST→mnist_5k" in lid_block and "ID model: 4 steps" in lid_block
    assert (
        "| fashion_mnist→mnist_5k | vanilla |"
        in rendered["experiments/README.md"]["vae_ood"]
    )
    assert "| Glow −log p(x) |" in rendered["README.md"]["headline"]
    spline = rendered["experiments/README.md"]["glow_fmnist_spline_lid"]
    assert "glow_fmnist.py:spline --workdir" in spline and "ID model: 4 steps" in spline
    assert not (runs / "glow_fmnist_spline" / "general").exists()  # no general model
    assert "| DoSE (kde), all" in rendered["experiments/README.md"]["dose_fmnist"]


@pytest.mark.extended  # ~1 min (CI time); the fixture runs the FMNIST spline LID
def test_the_mnist_5k_spline_lid_run_trains_its_id_model_and_renders(tmp_path):
    """The MNIST-5k spline command of make reproduce: it trains its one ID model
    from scratch, then the LID step; its block renders."""
    workdir = tmp_path / "runs" / "glow_mnist_5k_spline"
    run_main("--config", f"{CONFIGS}glow_fmnist.py:mnist_5k,smoke,spline",
             "--workdir", str(workdir), "--mode", "lid")  # fmt: skip
    assert (workdir / "id" / "metrics.jsonl").exists()
    assert not (workdir / "general").exists()
    results = tmp_path / "results"
    results.mkdir()
    assert tables.collect(tmp_path / "runs", results) == ["glow_mnist_5k_spline_lid"]
    spline = tables.blocks(results)["experiments/README.md"]["glow_mnist_5k_spline_lid"]
    assert "MNIST-5k→fashion_mnist | -3 |" in spline and "mnist_5k,spline --" in spline


def test_changed_configuration_is_refused(runs):
    with pytest.raises(RuntimeError, match="another configuration"):
        run_main(
            "--config",
            f"{CONFIGS}glow_fmnist.py:smoke",
            "--workdir",
            str(runs / "glow_fmnist"),
            "--config.train.learning_rate=1.0",
        )
    with pytest.raises(RuntimeError, match="another configuration"):
        run_main(
            "--config",
            f"{CONFIGS}vae_ood.py:smoke",
            "--workdir",
            str(runs / "vae_ood"),
            "--config.train.learning_rate=0.5",
        )


def test_shipped_checkpoints_restore_exactly(runs, tmp_path):
    workdir = runs / "glow_fmnist"
    shipped = tmp_path / "shipped"
    ship.main(["--run", str(workdir), "--to", str(shipped)])
    restored_dir = tmp_path / "restored"
    run_main(
        "--config",
        f"{CONFIGS}glow_fmnist.py:smoke",
        "--workdir",
        str(restored_dir),
        f"--config.checkpoints={shipped}",
        "--config.train_baseline_models=False",
        "--mode",
        "train",
    )
    config = glow_fmnist.get_config("smoke")
    model = flow_pipeline.build_model(config)
    template = model.random_params(jax.random.key(0))
    for stage in ship.SHIPPED_STAGES:
        assert not (restored_dir / stage / "metrics.jsonl").exists()  # not trained
        for a, b in zip(
            jax.tree.leaves(_load(restored_dir / stage, template)),
            jax.tree.leaves(_load(workdir / stage, template)),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    assert not (restored_dir / "ensemble_0").exists()  # no ensemble is shipped
    # make reproduce passes --config.checkpoints= : no source, so restored stages
    # are trained for real (jaxood.io's rule, tests/test_io.py).
    config.checkpoints = ""
    assert configured.restore_sources(config) == []
    shutil.rmtree(shipped)


def _load(stage_dir, template):
    from jaxood import checkpoint

    return checkpoint.load_params(stage_dir / "final_params", template)


@pytest.mark.extended  # ~40 s (CI time): one more smoke LID run and its spectra
def test_spectra_computed_elsewhere_fill_the_lid_cache(runs, tmp_path, monkeypatch):
    """export -> compute -> merge (benchmarks/lid_offload.py): the rows land in the
    run's cache, so the LID command with more images computes no spectrum."""
    from benchmarks import lid_offload

    workdir = str(runs / "glow_fmnist")
    command = ["--", "--config", f"{CONFIGS}glow_fmnist.py:smoke", "--workdir",
               workdir, "--mode", "lid", "--config.lid.num_eval=5"]  # fmt: skip
    bundle, rows = tmp_path / "bundle", tmp_path / "rows"
    lid_offload.main(["export", str(bundle), *command])
    lid_offload.main(["compute", str(bundle), str(rows), "--budget_s", "600",
                      "--batch_size", "2", "--chunk_size", "64"])  # fmt: skip
    throughput = json.loads((rows / "throughput.json").read_text())
    assert throughput["images"] == 3 * 3  # 3 new rows in each of 3 sets
    tampered = tmp_path / "tampered"
    shutil.copytree(rows, tampered)
    got = dict(np.load(tampered / "id_test.npz"))
    np.savez(tampered / "id_test.npz", **got | {"checksum": got["checksum"] + 1})
    results = lid_offload.HERE / "results" / "lid_offload.json"
    monkeypatch.setattr(lid_offload, "HERE", tmp_path)  # not the committed results
    (tmp_path / "results").mkdir()
    with pytest.raises(SystemExit, match="rows of other images"):
        lid_offload.main(["merge", str(tampered), *command])
    lid_offload.main(["merge", str(rows), *command])
    assert "glow_fmnist" in json.loads(
        (tmp_path / "results" / results.name).read_text()
    )

    def no_spectra(*args, **kwargs):
        raise AssertionError("a spectrum was computed again")

    monkeypatch.setattr("jaxood.lid.flow_spectra_images", no_spectra)
    run_main(*command[1:])
    lid = json.loads((runs / "glow_fmnist" / "lid" / "results.json").read_text())
    assert lid["counts"]["id_test"] == 5


@pytest.mark.extended  # ~1 min (CI time): two smoke LID runs
def test_a_run_of_the_same_model_starts_from_anothers_spectra(
    tmp_path, data_dir, monkeypatch
):
    """``lid.rows_from``: the ID model restored in another run directory keeps its
    key, so the first run's cached rows serve the second; no spectrum is computed
    again, and the results are the same."""
    del data_dir  # prepared offline data
    first, second = tmp_path / "first", tmp_path / "second"
    command = ["--config", f"{CONFIGS}glow_fmnist.py:smoke", "--mode", "lid"]
    run_main(*command, "--workdir", str(first))

    def no_spectra(*args, **kwargs):
        raise AssertionError("a spectrum was computed again")

    monkeypatch.setattr("jaxood.lid.flow_spectra_images", no_spectra)
    monkeypatch.setattr("jaxood.lid.flow_lidl_images", no_spectra)
    run_main(*command, "--workdir", str(second), f"--config.checkpoints={first}",
             f"--config.lid.rows_from={first}")  # fmt: skip
    a, b = (json.loads((d / "lid" / "results.json").read_text())
            for d in (first, second))  # fmt: skip
    assert a["pairs"] == b["pairs"] and a["counts"] == b["counts"]


def test_offloaded_rows_are_found_by_image_and_repeats_are_asked_once(tmp_path):
    from benchmarks.lid_offload import rows_of
    from jaxood import io

    images = np.repeat(np.arange(3, dtype=np.uint8), 4).reshape(6, 2)  # 3 distinct
    grey = images[:, 0].astype(float)
    got = {"checksum": io.row_hashes(images), "s": np.stack([grey, grey], axis=1),
           "log_p": -2 * grey}  # fmt: skip
    asked = []

    def merged(batch):
        asked.append(len(batch))
        return rows_of(got, batch)

    rows = io.resumable_rows(tmp_path / "rows.npz", {}, merged, images, 6)
    assert asked == [3]
    np.testing.assert_array_equal(rows["log_p"], [0, 0, -2, -2, -4, -4])
    np.testing.assert_array_equal(rows_of(got, images[[4, 1]])["log_p"], [-4, 0])


def test_each_offloaded_call_keeps_its_own_entry():
    """Two calls for one run directory recheck the same reference images; both
    entries stay, so the table shows how much the accelerator varies between calls."""
    from benchmarks.lid_offload import call_name

    runs = {"glow_fmnist_spline": {}, "glow_fmnist_spline_5000": {}}
    assert call_name(runs, "glow_fmnist_spline_1000") == "glow_fmnist_spline_1000"
    assert call_name(runs, "glow_fmnist_spline") == "glow_fmnist_spline, call 2"
    runs["glow_fmnist_spline, call 2"] = {}
    assert call_name(runs, "glow_fmnist_spline") == "glow_fmnist_spline, call 3"
