"""The CIFAR-10 configs (accelerator-sized) on their smoke variants, offline.

tfds's ``mock_data`` serves random images with the real datasets' shapes
(32x32x3 CIFAR-10 and SVHN, 218x178x3 CelebA, ImageNet 32x32) in place of the
downloads, so the whole pipeline runs: colour Glows, the general model, the
centre-crop of CelebA, the diffusion model, the report.
"""

import json

import pytest
import tensorflow_datasets as tfds

from experiments import main
from experiments.configs import diffusion_cifar10, glow_cifar10, vae_cifar10


def test_the_configs_and_their_mesh_knob():
    for module in (glow_cifar10, vae_cifar10, diffusion_cifar10):
        for option in ("", "smoke"):
            config = module.get_config(option)
            assert config.mesh.devices == 0  # every local device
    glow = glow_cifar10.get_config("")
    assert (glow.model.steps_per_scale, glow.model.hidden) == (32, 512)
    assert glow.data.channels == 3 and glow.data.ood == (
        "svhn_cropped:test",
        "celeb_a:test",
    )
    assert diffusion_cifar10.get_config("").model.image_shape == (32, 32, 3)
    with pytest.raises(SystemExit, match="sees 1 device"):
        main.devices(99)
    assert len(main.devices(0)) == len(main.devices(1)) == 1


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.extended)  # ~1-2 min each: CI time
     for name in ("glow_cifar10", "vae_cifar10", "diffusion_cifar10")],
)  # fmt: skip
def test_the_smoke_variant_runs_on_mocked_data(name, tmp_path, monkeypatch):
    monkeypatch.setenv("JAXOOD_DATA_DIR", str(tmp_path / "data"))
    workdir = tmp_path / name
    with tfds.testing.mock_data(num_examples=300):
        main.main([
            "experiments.main", "--config", f"experiments/configs/{name}.py:smoke",
            "--workdir", str(workdir),
        ])  # fmt: skip
    results = json.loads((workdir / "results.json").read_text())
    text = json.dumps(results)
    assert "svhn_cropped" in text and "celeb_a" in text
    assert (workdir / "report.md").stat().st_size > 1000
