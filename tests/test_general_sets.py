"""experiments.general_sets: make run's side-by-side table of the two general sets,
scored on the shipped general_images checkpoints."""

import json
import shutil
from pathlib import Path

import pytest

from experiments import flow_pipeline, general_sets

RESULTS = Path(__file__).resolve().parent.parent / "experiments" / "results"


@pytest.mark.slow
def test_new_general_set_rows_beside_the_old_run(tmp_path, data_dir, capsys):
    old = tmp_path / "glow_fmnist"
    old.mkdir()
    shutil.copy(RESULTS / "glow_fmnist.json", old / "results.json")
    general_sets.main(["--workdir", str(tmp_path / "out"), "--old", str(old),
                       "--max_eval", "32"])  # fmt: skip
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| general_")]
    pairs = [(r.split(" | ")[0][2:], r.split(" | ")[3]) for r in rows]
    assert pairs == [
        ("general_photos", "FMNIST→mnist_5k"),
        ("general_photos", "FMNIST→animal_mnist"),
        ("general_images", "FMNIST→mnist_5k"),
        ("general_images", "FMNIST→animal_mnist"),
        ("general_images", "MNIST-5k→fashion_mnist"),
    ]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    chain = results["glow_fmnist_general_images"]
    assert chain["training"]["id"]["restored_from"].endswith(
        "checkpoints/glow_fmnist_general_images/id"
    )
    for detector, per_pair in chain["metrics"].items():
        assert per_pair["mnist_5k"]["n_in"] == per_pair["mnist_5k"]["n_out"] == 32
        assert 0.0 <= per_pair["mnist_5k"]["auroc"] <= 1.0, detector
    assert (
        "Command: `python -m experiments.general_sets"
        in (tmp_path / "out" / "report.md").read_text()
    )


def test_a_missing_checkpoint_is_an_error_not_a_training(tmp_path, monkeypatch):
    from experiments.configs import glow_fmnist

    config = glow_fmnist.get_config("general_images")
    config.checkpoints = str(tmp_path / "nothing_here")
    with pytest.raises(SystemExit, match="no checkpoint of the general stage"):
        general_sets.restore(
            config, flow_pipeline.build_model(config), tmp_path / "run"
        )
    assert not (tmp_path / "run" / "general" / "final_params").exists()
