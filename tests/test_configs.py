"""Configs and the command line of ``experiments.main`` (fast: nothing is trained)."""

import json
import re

import pytest

from experiments import configured, diffusion_pipeline, flow_pipeline, main, ship
from experiments.configs import diffusion_fmnist, glow_fmnist, vae_ood
from jaxood import io

CONFIGS = "experiments/configs/"
RESULTS = configured.ROOT / "experiments" / "results"
# What glow_fmnist's docstring tells users to expect, by the published result it
# was read from: (results file, "/"-separated keys, the docstring's words).
GI, GI_LID = "glow_fmnist_general_images", "glow_fmnist_general_images_5000_lid"
SPLINE, WIDEST = "glow_fmnist_spline_5000_lid", "fixed_tau/-6.02 (widest ID LID)/"
EXPECTED = [
    ("glow_fmnist", "bpd/id/id_test", "bits/dim of Fashion-MNIST about {:.1f}"),
    ("glow_fmnist", "metrics/likelihood/mnist_5k/auroc", "({:.2f}: the paradox)"),
    ("glow_fmnist", "groups/5/auroc/klods_image_k2/mnist_5k/mean",
     "KLODS-R in groups of 5 at about {:.2f}"),
    ("glow_mnist_5k", "metrics/likelihood/fashion_mnist/auroc",
     "Expect likelihood AUROC {:.2f}."),
    (GI, "bpd/id/id_test", "ID test bits/dim {:.2f}"),
    (GI, "metrics/llr/mnist_5k/auroc", "``llr`` {:.2f},"),
    (GI, "metrics/llr_outlier/mnist_5k/auroc", "``llr_outlier`` {:.2f},"),
    (GI, "metrics/final_scale/mnist_5k/auroc", "final scale {:.2f},"),
    (GI, "metrics/dose/mnist_5k/auroc", "DoSE {:.2f};"),
    (GI_LID, "pairs/mnist_5k/envelope_reported", "envelope {:.2f} at the calibrated"),
    (GI_LID, WIDEST + "pairs/mnist_5k/envelope_reported", "{:.2f} at the widest"),
    ("glow_mnist_5k_general_images_6000", "metrics/likelihood/fashion_mnist/auroc",
     "likelihood {:.3f} on MNIST-5k"),
    (SPLINE, "id_model/test_bpd", "Test bits/dim: {:.3f} on Fashion-MNIST"),
    (SPLINE, "pairs/mnist_5k/envelope_reported", "envelope of {:.2f} at the"),
    (SPLINE, WIDEST + "pairs/mnist_5k/envelope_reported", "and {:.2f} at the widest"),
    (SPLINE, "pairs/mnist_5k/likelihood/auroc", "(likelihood {:.2f});"),
    ("glow_mnist_5k_spline_5000_lid", "pairs/fashion_mnist/likelihood/auroc",
     "likelihood and envelope {:.3f}"),
    ("glow_mnist_5k_spline_5000_lid", "pairs/fashion_mnist/envelope_reported",
     "likelihood and envelope {:.3f}"),
]  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.no_such_field=1"], "no config field"),
        (["--config.lid.num_eval=many"], "invalid literal"),
        (["--mode", "sample"], "--mode"),
        (["extra"], "unexpected"),
    ],
)
def test_bad_command_lines(tmp_path, args, message):
    argv = ["--config", f"{CONFIGS}glow_fmnist.py:smoke", "--workdir", str(tmp_path)]
    with pytest.raises(SystemExit, match=message):
        main.parse(["experiments.main", *argv, *args])


def test_bad_config_paths_and_workdirs(tmp_path):
    file = tmp_path / "file"
    file.write_text("")
    for argv, message in (
        ([f"{CONFIGS}glow_fmnist.py:big", str(tmp_path)], "Unknown config option"),
        ([f"{CONFIGS}no_such.py", str(tmp_path)], "No such file"),
        ([f"{CONFIGS}glow_fmnist.py", str(file)], "is a file"),
    ):
        with pytest.raises(SystemExit, match=message):
            main.parse(["experiments.main", "--config", argv[0], "--workdir", argv[1]])
    assert not list(tmp_path.iterdir())[1:]  # nothing written but the test's file


def test_general_model_is_shared_between_in_distribution_sets():
    # The general model never sees ID data, so MNIST-5k runs restore Fashion-MNIST's.
    for first, second in (("", "mnist_5k"), ("smoke", "mnist_5k,smoke")):
        a, b = glow_fmnist.get_config(first), glow_fmnist.get_config(second)
        assert a.data.id_dataset != b.data.id_dataset
        assert flow_pipeline.fingerprint(a, "general") == flow_pipeline.fingerprint(
            b, "general"
        )
        for stage in ("id", "background", "ensemble_0"):
            assert flow_pipeline.fingerprint(a, stage) != flow_pipeline.fingerprint(
                b, stage
            )
    # make run's shipped checkpoints carry today's fingerprints.
    config = glow_fmnist.get_config()
    for stage in ship.SHIPPED_STAGES:
        fp = flow_pipeline.fingerprint(config, stage)
        found = io.find_source(configured.restore_sources(config), stage, fp)
        assert found is not None and (found / "params").is_dir(), stage
    # The three models of the general_images runs, with their earlier snapshots.
    config = glow_fmnist.get_config("general_images")
    sc = config.stages
    for stage in flow_pipeline.STAGES:
        fp = flow_pipeline.fingerprint(config, stage)
        found = io.find_source(configured.restore_sources(config), stage, fp)
        assert found is not None and (found / "params").is_dir()
        snapshots = sc.outlier_snapshots if stage == "id_outlier" else sc.snapshots
        assert io.snapshots(found) == list(snapshots)


def test_a_fine_tuned_stage_fingerprints_only_what_trains_it():
    # The ID and the outlier-loss model both start from the general model: neither
    # is retrained when the other's settings, or where snapshots are kept, change.
    base = glow_fmnist.get_config("general_images")
    both, outlier = {"id", "id_outlier"}, {"id_outlier"}
    retrained = {"general_steps": both, "id_steps": {"id"}, "outlier_steps": outlier,
                 "outlier_weight": outlier, "outlier_temperature": outlier,
                 "snapshots": set(), "outlier_snapshots": set()}  # fmt: skip
    for field, stages in retrained.items():
        config = glow_fmnist.get_config("general_images")
        value = config.stages[field]
        config.stages[field] = value[:1] if isinstance(value, tuple) else value + 1
        moved = {s for s in both if flow_pipeline.fingerprint(config, s)
                 != flow_pipeline.fingerprint(base, s)}  # fmt: skip
        assert moved == stages, field


def test_mnist_5k_runs_restore_shipped_stages_on_a_fresh_clone():
    # No runs/ folder needed: the general model comes from the Fashion-MNIST
    # config's shipped checkpoints, the 6,000-step ID models from their own.
    for option, shipped in (
        ("mnist_5k", {"general": "glow_fmnist"}),
        ("mnist_5k,general_images", {"general": "glow_fmnist_general_images",
                                     "id": "glow_mnist_5k_general_images",
                                     "id_outlier": "glow_mnist_5k_general_images"}),
    ):  # fmt: skip
        config = glow_fmnist.get_config(option)
        config.stages.id_steps = 6000
        sources = [
            s for s in configured.restore_sources(config) if "runs" not in s.parts
        ]
        for stage, folder in shipped.items():
            fp = flow_pipeline.fingerprint(config, stage)
            found = io.find_source(sources, stage, fp)
            assert found is not None and found.parent.name == folder, (option, stage)
    config = glow_fmnist.get_config("mnist_5k,general_images")  # 1,000 steps: trains
    fp = flow_pipeline.fingerprint(config, "id")
    assert io.find_source(configured.restore_sources(config), "id", fp) is None


def test_config_options():
    assert glow_fmnist.get_config("mnist_5k,smoke").name == "glow_mnist_5k_smoke"
    assert glow_fmnist.get_config("default").name == "glow_fmnist"
    assert vae_ood.get_config("smoke").pipeline == "vae"
    with pytest.raises(ValueError, match="Unknown config option"):
        glow_fmnist.get_config("big")


def test_the_spline_flow_is_one_id_model_of_its_own():
    spline, glow = glow_fmnist.get_config("spline"), glow_fmnist.get_config()
    assert spline.name == "glow_fmnist_spline" and spline.model.coupling == "spline"
    fp = flow_pipeline.fingerprint(spline, "id")
    assert fp["id_from_scratch"] and fp != flow_pipeline.fingerprint(glow, "id")
    assert "id_from_scratch" not in flow_pipeline.fingerprint(glow, "id")
    for option in ("spline", "spline,mnist_5k"):  # both ship, at today's fingerprint
        config = glow_fmnist.get_config(option)
        fp = flow_pipeline.fingerprint(config, "id")
        found = io.find_source(configured.restore_sources(config), "id", fp)
        assert found is not None and found.parent.name == config.name


@pytest.mark.parametrize("option", ["", "mnist_5k"])
def test_the_shipped_diffusion_models_match_their_configs(option):
    config = diffusion_fmnist.get_config(option)
    (setting,) = config.settings
    assert setting == (option or "fashion_mnist")
    assert config.checkpoints.endswith(f"diffusion_{option or 'fmnist'}")
    fp = diffusion_pipeline.fingerprint(config, setting)
    found = io.find_source(
        configured.restore_sources(config), diffusion_pipeline.STAGE, fp
    )
    assert found is not None and (found / "params").is_dir()


@pytest.mark.parametrize("name, keys, words", EXPECTED)
def test_the_config_docstring_expects_the_published_numbers(name, keys, words):
    """The expected numbers in a config's docstring are typed by hand (the
    big_vision convention): each must still be what the published run gives."""
    value = json.loads((RESULTS / f"{name}.json").read_text())
    for key in keys.split("/"):
        value = value[key]
    docstring = re.sub(r"\s+", " ", glow_fmnist.__doc__)
    expected = words.format(value)
    assert expected in docstring, f"{expected!r} not in glow_fmnist's docstring"
