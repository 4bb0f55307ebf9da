"""The LID pipeline's cache of rows, shared between run directories."""

import numpy as np

from experiments import lid_pipeline
from jaxood import io

KEY, OTHER_MODEL = {"steps": 3, "val_bpd": 2.9}, {"steps": 3, "val_bpd": 3.0}


def cache(folder, name, key, images, prefix=""):
    """Rows as the pipeline caches them (``io.resumable_rows``)."""
    file = lid_pipeline.rows_file(folder, name, prefix)
    io.resumable_rows(file, key, lambda x: {"s": x.sum(1)}, images, batch_size=2)


def test_seeded_rows_are_the_ones_the_run_would_accept(tmp_path, capsys):
    source, out = tmp_path / "a" / "lid", tmp_path / "b" / "lid"
    source.mkdir(parents=True)
    out.mkdir(parents=True)
    images = np.arange(60.0).reshape(10, 6)
    chosen = {"validation": images[:4], "id_test": images[:8],
              "ood/mnist_5k": images[8:], "ood/animal_mnist": images[5:]}  # fmt: skip
    cache(source, "validation", KEY, images[:4])
    cache(source, "id_test", KEY, images)  # more rows than the run asks for
    cache(source, "id_test", KEY, images[:2], prefix="lidl_")
    cache(source, "ood/mnist_5k", OTHER_MODEL, images[8:])  # another model
    cache(source, "ood/animal_mnist", KEY, images[:5])  # other images
    cache(out, "validation", KEY, images[:4])  # the run's own, as long: kept
    cache(out, "id_test", KEY, images[:2])  # the run's own, shorter: replaced
    before = (out / "validation.npz").stat().st_mtime_ns
    copied = lid_pipeline.seed_rows(out, source, chosen, KEY)
    assert copied == ["id_test", "lidl_id_test"]
    assert (out / "validation.npz").stat().st_mtime_ns == before
    assert not (out / "ood_mnist_5k.npz").exists()
    assert not (out / "ood_animal_mnist.npz").exists()

    def no_rows(x):
        raise AssertionError("a seeded row was computed again")

    file = lid_pipeline.rows_file(out, "id_test")
    got = io.resumable_rows(file, KEY, no_rows, images[:8], batch_size=2)
    np.testing.assert_array_equal(got["s"], images[:8].sum(1))
    assert lid_pipeline.seed_rows(out, source, chosen, KEY) == []  # nothing twice
    assert lid_pipeline.seed_rows(out, out, chosen, KEY) == []  # itself
    # No such run: a warning, and the run computes its rows itself.
    assert lid_pipeline.seed_rows(out, tmp_path / "c" / "lid", chosen, KEY) == []
    assert "WARNING lid.rows_from: no LID cache" in capsys.readouterr().out
