"""The flow experiment pipeline end to end on the smoke config."""

import json

import jax
import numpy as np
import pytest

from experiments import flow_pipeline, lid_pipeline, main, ship
from experiments.configs import glow_fmnist


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
    del data_dir  # prepared offline data
    config = glow_fmnist.get_config("smoke")
    workdir = tmp_path_factory.mktemp("smoke")
    sets = flow_pipeline.load_sets(config)
    params = flow_pipeline.train_all(config, workdir, sets)
    results = flow_pipeline.score_all(config, workdir, sets, params)
    table = main.write_report(config, workdir, sets, params)
    return config, workdir, sets, results, table


def test_every_detector_and_set_is_scored(smoke_run):
    config, workdir, _, results, table = smoke_run
    ood = [entry.split(":")[0] for entry in config.data.ood]
    baselines = {"typicality", "ren_llr", "waic", "complexity_png", "klods_image_k2"}
    assert set(flow_pipeline.DETECTORS) | baselines <= set(results["metrics"])
    assert set(results["metrics"]) == set(results["detectors"])
    for per_set in results["metrics"].values():
        assert sorted(per_set) == sorted(ood)
        for m in per_set.values():
            assert 0.0 <= m["auroc"] <= 1.0 and m["n_in"] == config.data.max_eval
    scores = np.load(workdir / "scores.npz")
    assert scores["id_test/likelihood"].shape == (config.data.max_eval,)
    assert table.startswith("AUROC") and "| likelihood | " in table
    assert "| klods_image_k2 | 5 |" in table  # the group table
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
    # Groups: every size and OOD set, ≥ 3 shuffles, AUROCs in [0, 1].
    assert list(results["groups"]) == ["5", "10"]
    for size in ("5", "10"):
        for detector, per_set in results["groups"][size]["auroc"].items():
            assert sorted(per_set) == sorted(ood), detector
            for g in per_set.values():
                assert len(g["per_seed"]) >= 3 and 0.0 <= g["mean"] <= 1.0
    assert "| typicality | 5 |" in (workdir / "report.md").read_text()


def test_report_files_are_written(smoke_run):
    _, workdir, _, _, _ = smoke_run
    for name in (
        "report.md",
        "roc.png",
        "histograms.png",
        "training.png",
        "groups.png",
        "samples_id.png",
    ):
        assert (workdir / name).stat().st_size > 0
    for stage in flow_pipeline.STAGES:
        summary = json.loads((workdir / stage / "summary.json").read_text())
        assert summary["steps"] == 4 and np.isfinite(summary["val_bpd"])
    outlier = json.loads((workdir / "id_outlier" / "summary.json").read_text())
    assert outlier["selected"] == "final" and outlier["selected_step"] == 4


def test_finished_stages_are_not_trained_again(smoke_run):
    config, workdir, sets, _, _ = smoke_run
    before = {
        s: (workdir / s / "metrics.jsonl").read_text() for s in flow_pipeline.STAGES
    }
    flow_pipeline.train_all(config, workdir, sets)
    after = {
        s: (workdir / s / "metrics.jsonl").read_text() for s in flow_pipeline.STAGES
    }
    assert before == after


def test_changed_configuration_is_refused(smoke_run):
    config, workdir, sets, _, _ = smoke_run
    changed = glow_fmnist.get_config("smoke")
    changed.train.learning_rate = 1.0
    with pytest.raises(RuntimeError, match="another configuration"):
        flow_pipeline.train_all(changed, workdir, sets)
    del config


def test_unknown_variant():
    with pytest.raises(ValueError, match="Unknown variant"):
        glow_fmnist.get_config("big")


def test_shipped_checkpoints_restore_and_reproduce_retrains(smoke_run, tmp_path):
    config, workdir, sets, _, _ = smoke_run
    shipped = tmp_path / "shipped"
    ship.main(["--run", str(workdir), "--to", str(shipped)])
    config = glow_fmnist.get_config("smoke")
    config.checkpoints = str(shipped)
    config.train_baseline_models = False  # as make run: only shipped ones are used
    restored_dir = tmp_path / "restored"
    restored = flow_pipeline.train_all(config, restored_dir, sets)
    original = flow_pipeline.train_all(glow_fmnist.get_config("smoke"), workdir, sets)
    assert set(restored) == set(ship.SHIPPED_STAGES)  # no ensemble is shipped
    for stage in ship.SHIPPED_STAGES:
        assert not (restored_dir / stage / "metrics.jsonl").exists()  # not trained
        for a, b in zip(
            jax.tree.leaves(restored[stage]),
            jax.tree.leaves(original[stage]),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
    # make reproduce: shipped checkpoints disabled, so the copies are trained for real.
    config.checkpoints = ""
    flow_pipeline.train_all(config, restored_dir, sets)
    for stage in ship.SHIPPED_STAGES:
        assert (restored_dir / stage / "metrics.jsonl").exists()
        assert not (restored_dir / stage / "restored_from").exists()


def test_lid_pipeline_on_the_smoke_run(smoke_run):
    config, workdir, _, _, _ = smoke_run
    del config
    results = lid_pipeline.run(workdir, 3, 4, 3, variant="smoke", num_lidl=2)
    assert results["counts"]["id_test"] == 3 and results["counts"]["calibration"] == 4
    curves = results["lidl"]["mean_curves"]
    assert set(curves) == {"id_test", "ood/mnist_5k", "ood/uniform_noise"}
    # LIDL is about D = 1024 at tiny δ and falls towards 0 at large δ. The
    # z-dependent term of the formula may lift it above D: at δ = -8 by a few units
    # for uniform noise, whose latents are far out (σ² Σ z̃ᵢ²/λᵢ).
    for curve in curves.values():
        assert 1022.0 < curve[0] < 1.01 * 1024 and curve[-1] < 0.05 * curve[0]
        assert min(curve) >= 0.0
    assert set(results["pairs"]) == {"mnist_5k", "uniform_noise"}  # every OOD set
    for pair in ("mnist_5k", "uniform_noise"):
        r = results["pairs"][pair]
        assert 0.0 <= r["rank_and"] <= 1.0
        assert r["envelope_reported"] >= r["likelihood"] - 1e-12
    assert (workdir / "lid" / "lid.png").stat().st_size > 0
    # resumes from files
    again = lid_pipeline.run(workdir, 3, 4, 3, variant="smoke", num_lidl=2)
    assert again["pairs"] == results["pairs"]


def test_vae_pipeline_smoke(tmp_path, data_dir):
    """The VAE pipeline end to end: every pair × model × detector, the scaling
    ablation, the generated section; a second run reuses everything."""
    from experiments import tables, vae_pipeline

    del data_dir
    config = vae_pipeline.load_config("experiments/configs/vae_ood.py:smoke")
    results = vae_pipeline.run(config, tmp_path)
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
    assert (tmp_path / "scaling.png").exists() and (tmp_path / "report.md").exists()
    section = tables.vae_section(results)
    assert "| fashion_mnist→mnist_5k | hole | " in section
    scores = tmp_path / "fashion_mnist" / "vanilla" / "scores.npz"
    stamp = scores.stat().st_mtime_ns
    again = vae_pipeline.run(config, tmp_path)
    assert scores.stat().st_mtime_ns == stamp  # not recomputed
    assert again["pairs"] == results["pairs"]
    config.train.learning_rate = 0.5
    with pytest.raises(RuntimeError, match="another configuration"):
        vae_pipeline.run(config, tmp_path)


def test_general_model_is_shared_between_in_distribution_sets():
    # The general model never sees ID data, so MNIST-5k runs restore Fashion-MNIST's.
    for first, second in (("default", "mnist_5k"), ("smoke", "mnist_5k_smoke")):
        a, b = glow_fmnist.get_config(first), glow_fmnist.get_config(second)
        assert a.data.id_dataset != b.data.id_dataset
        general = [flow_pipeline._fingerprint(c, "general") for c in (a, b)]
        assert general[0] == general[1]
        for stage in ("id", "background", "ensemble_0"):
            assert flow_pipeline._fingerprint(a, stage) != flow_pipeline._fingerprint(
                b, stage
            )
    # make run's shipped general checkpoint carries today's fingerprint.
    shipped = flow_pipeline._shipped(glow_fmnist.get_config("mnist_5k"), "general")
    assert shipped is not None and (shipped / "params").is_dir()
