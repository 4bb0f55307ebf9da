"""Offline datasets, the prepare step, the mock tfds path, preprocessing, bad input."""

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxood import data
from jaxood.data import __main__ as cli
from jaxood.data import builders, sources, synthetic

EXPECTED = {
    ("fashion_mnist", "train"): 60_000,
    ("fashion_mnist", "test"): 10_000,
    ("mnist_5k", "all"): 5_000,
    ("mnist_5k", "train"): 4_000,
    ("animal_mnist", "all"): 10_000,
    ("digits", "all"): 1_797,
    ("uniform_noise", "test"): 10_000,
    ("constant", "test"): 10_000,
    ("fashion_mnist_vflip", "test"): 10_000,
    ("fashion_mnist_inverted", "test"): 10_000,
}


@pytest.mark.parametrize(("name", "split"), list(EXPECTED))
def test_offline_datasets_have_documented_shapes(data_dir, name, split):
    images, labels = data.load(name, split, data_dir=data_dir, with_labels=True)
    assert images.shape == (EXPECTED[name, split], 28, 28, 1)
    assert images.dtype == np.uint8
    assert labels.shape == (len(images),) and labels.dtype == np.int64


def test_real_data_is_not_noise(data_dir):
    fmnist, labels = data.load(
        "fashion_mnist", "test", data_dir=data_dir, with_labels=True
    )
    assert sorted(np.unique(labels)) == list(range(10))
    assert np.bincount(labels).tolist() == [1000] * 10
    assert 60 < fmnist.mean() < 90  # FMNIST mean pixel is about 73
    mnist = data.load("mnist_5k", "all", data_dir=data_dir)
    assert 25 < mnist.mean() < 40  # MNIST mean pixel is about 33
    flipped = data.load("fashion_mnist_vflip", "test", data_dir=data_dir)
    np.testing.assert_array_equal(flipped[:, ::-1], fmnist)


def test_stratified_split_is_fixed_and_disjoint():
    labels = np.repeat(np.arange(10), 500)
    train, test = sources.stratified_split(labels, 0.2, seed=1)
    again = sources.stratified_split(labels, 0.2, seed=1)
    np.testing.assert_array_equal(train, again[0])
    assert len(np.intersect1d(train, test)) == 0
    assert np.bincount(labels[test]).tolist() == [100] * 10


def test_synthetic_sets_are_deterministic_by_seed():
    np.testing.assert_array_equal(
        synthetic.uniform_noise(4, 1), synthetic.uniform_noise(4, 1)
    )
    assert not np.array_equal(
        synthetic.uniform_noise(4, 1), synthetic.uniform_noise(4, 2)
    )
    const = synthetic.constant(3)
    assert all(len(np.unique(im)) == 1 for im in const)
    assert synthetic.invert(np.zeros((1, 2, 2, 1), np.uint8)).max() == 255


def test_prepare_is_idempotent(data_dir):
    before = sorted(p.name for p in Path(data_dir).iterdir())
    assert data.prepare(data_dir=data_dir) == []
    assert sorted(p.name for p in Path(data_dir).iterdir()) == before


def test_failed_prepare_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken_examples(images, labels):
        yield 0, {"image": builders._png(images[0]), "label": int(labels[0])}
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr(builders, "_examples", broken_examples)
    with pytest.raises(RuntimeError, match="simulated"):
        data.prepare(["mnist_5k"], data_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not data.is_prepared("mnist_5k", tmp_path)


def test_missing_fashion_source_names_the_apt_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("JAXOOD_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(
        data.SourceMissingError, match="apt-get install dataset-fashion"
    ):
        data.prepare(["fashion_mnist"], data_dir=tmp_path / "d", allow_apt=False)
    code = cli.main(["prepare", "--data-dir", str(tmp_path / "d"), "--no-apt"])
    assert code != 0
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err
    assert not (tmp_path / "d" / "fashion_mnist").exists()


def test_missing_python_source_names_the_pip_fix():
    with pytest.raises(data.SourceMissingError, match="pip install --no-deps x==1"):
        sources._package_file(
            "no_such_package_jaxood", "f.csv", "`pip install --no-deps x==1`"
        )


def test_unknown_dataset_and_split(data_dir):
    with pytest.raises(
        data.UnknownDatasetError, match="Unknown dataset 'fmnist'.*fashion_mnist"
    ):
        data.load("fmnist", "test", data_dir=data_dir)
    with pytest.raises(
        data.UnknownSplitError, match="no split 'validation'.*train, test, all"
    ):
        data.load("fashion_mnist", "validation", data_dir=data_dir)
    with pytest.raises(data.UnknownSplitError, match="no split 'train'"):
        data.load("uniform_noise", "train", data_dir=data_dir)
    with pytest.raises(data.UnknownDatasetError, match="No offline builder"):
        data.prepare(["cifar10"], data_dir=data_dir)


def test_online_names_without_tensorflow_fail_clearly(tmp_path):
    with pytest.raises(data.DataError, match="needs TensorFlow"):
        data.load("cifar10", "test", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("name", "shape"),
    [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3)), ("svhn_cropped", (32, 32, 3))],
)
def test_online_path_through_mock_tfds(tmp_path, name, shape):
    with tfds.testing.mock_data(num_examples=6):
        images, labels = data.load(name, "test", data_dir=tmp_path, with_labels=True)
    assert images.shape == (6, *shape) and images.dtype == np.uint8
    assert labels.shape == (6,)


def test_cache_is_used_after_first_read(data_dir):
    data.load("digits", "test", data_dir=data_dir)
    cached = Path(data_dir) / "jaxood_cache" / "digits" / "1.0.0" / "test_images.npy"
    assert cached.is_file()
    stamp = os.stat(cached).st_mtime_ns
    data.load("digits", "test", data_dir=data_dir)
    assert os.stat(cached).st_mtime_ns == stamp


# ---------------------------------------------------------------- preprocessing


def test_dequantize_and_midpoint(key):
    pixels = np.array([0, 1, 255], np.uint8).reshape(1, 3, 1, 1)
    x = data.dequantize(key, pixels)
    assert x.dtype == jnp.float32
    low = pixels.astype(np.float32) / 256 - 0.5
    assert np.all((x >= low) & (x < low + 1 / 256))
    np.testing.assert_array_equal(x, data.dequantize(key, pixels))
    mid = data.to_model_space(pixels)
    np.testing.assert_allclose(mid, low + 1 / 512)
    np.testing.assert_array_equal(data.to_uint8(mid), pixels)
    np.testing.assert_array_equal(data.to_uint8(x), pixels)


def test_bits_per_dim_of_uniform_density_is_eight():
    # The uniform density on model space has log p = 0: 8 bits per 8-bit pixel.
    assert float(data.bits_per_dim(0.0, 784)) == pytest.approx(8.0)
    nll = 784 * np.log(2.0)  # one more bit per dimension
    assert float(data.bits_per_dim(nll, 784)) == pytest.approx(9.0)
    with pytest.raises(ValueError, match="num_dims"):
        data.bits_per_dim(1.0, 0)


def test_resize_and_pad():
    images = synthetic.uniform_noise(3)
    resized = data.resize(images, 32)
    assert resized.shape == (3, 32, 32, 1) and resized.dtype == np.uint8
    const = data.resize(synthetic.constant(2, seed=5), 32)
    assert all(len(np.unique(im)) == 1 for im in const)
    padded = data.pad(images, 32)
    assert padded.shape == (3, 32, 32, 1)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], images)
    with pytest.raises(ValueError, match="smaller"):
        data.pad(images, 20)


def test_preprocessing_bad_input_messages():
    with pytest.raises(TypeError, match="must be uint8"):
        data.to_model_space(np.zeros((1, 2, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"shape \(N, H, W, C\)"):
        data.to_model_space(np.zeros((2, 2), np.uint8))
    with pytest.raises(TypeError, match="floating point"):
        data.check_model_space(np.zeros((1, 2, 2, 1), np.uint8))
    with pytest.raises(ValueError, match="outside model space"):
        data.check_model_space(jnp.full((1, 2, 2, 1), 200.0))
    with pytest.raises(ValueError, match="NaN"):
        data.check_model_space(jnp.full((1, 2, 2, 1), jnp.nan))
    with pytest.raises(ValueError, match="expects"):
        data.check_model_space(jnp.zeros((1, 28, 28, 1)), (32, 32, 1))
    data.check_model_space(data.dequantize(jax.random.key(1), synthetic.constant(2)))
