"""Shipped copies of LID rows: what comes back, and how a copy grows."""

import json
import re

import numpy as np
import pytest

from experiments import lid_pipeline, lid_rows, ship
from jaxood import io

KEY = {"steps": 3, "selected_step": 3, "val_bpd": 2.9}


def spectra(n, d=64, seed=0):
    """Descending singular values, log σ in [-80, 80] (float32's range)."""
    log_s = np.sort(np.random.default_rng(seed).uniform(-80, 80, (n, d)))[:, ::-1]
    return np.exp(log_s).astype(np.float32)


def test_round_trip_is_within_half_a_step_of_log_sigma():
    s = spectra(5)
    s[2, 7] = np.nan  # no finite Jacobian: the whole row is dropped downstream
    s[3, -1] = 0.0
    rows = {
        "s": s,
        "log_p": np.arange(5.0),
        io.INPUTS_FIELD: np.arange(5, dtype=np.uint64),
    }
    stored = lid_rows.encode(rows)
    assert "s" not in stored and stored[f"{lid_rows.GAPS}_0"].dtype == np.uint8
    back = lid_rows.decode(stored)
    assert back["s"].dtype == np.float32
    assert np.isnan(back["s"][2]).all() and not np.isnan(back["s"][[0, 1, 3, 4]]).any()
    np.testing.assert_array_equal(back["log_p"], rows["log_p"])
    kept = np.delete(np.arange(5), 2)
    with np.errstate(divide="ignore"):  # σ = 0 is stored as e⁻¹²⁸, which is 0 again
        got, want = (np.clip(np.log(v[kept].astype(np.float64)), -128, 128)
                     for v in (back["s"], s))  # fmt: skip
    assert back["s"][3, -1] == 0.0
    assert np.abs(got - want).max() <= lid_rows.STEP / 2 + 1e-6  # float32 exp: ~1e-7
    with pytest.raises(ValueError, match="descending"):
        lid_rows.encode({"s": s[:, ::-1]})


def cache(folder, name, images, key=KEY, prefix=""):
    """Rows as the pipeline caches them, each a function of its own image: a
    spectrum and log p, or LIDL curves (``prefix="lidl_"``); an image of NaNs has
    no finite spectrum."""

    def rows(x):
        if prefix:
            return {"lidl": np.stack([np.full(3, image.sum()) for image in x])}
        s = np.concatenate([spectra(1, seed=int(np.nansum(i))) for i in x])
        s[np.isnan(x).any(axis=1)] = np.nan
        return {"s": s, "log_p": np.nansum(x, axis=1)}

    file = lid_pipeline.rows_file(folder, name, prefix)
    io.resumable_rows(file, key, rows, images, batch_size=2)


def shipped_from(run, shipped):
    ship.main(["--run", str(run), "--to", str(shipped), "--lid-rows"])


def test_shipping_adds_only_new_rows_and_a_run_starts_from_them(tmp_path, capsys):
    run, shipped, out = tmp_path / "run", tmp_path / "shipped", tmp_path / "out" / "lid"
    images = np.arange(60.0).reshape(10, 6)
    images[[6, 8]] = images[[1, 5]]  # repeats of a row in an earlier / the same part
    images[7] = np.nan  # no finite Jacobian
    cache(run / "lid", "id_test", images[:4])
    shipped_from(run, shipped)
    cache(run / "lid", "id_test", images)  # the run got further
    cache(run / "lid", "id_test", images[:3], prefix="lidl_")
    shipped_from(run, shipped)
    shipped_from(run, shipped)  # nothing new: no part
    parts = sorted(p.name for p in shipped.glob("*.npz"))
    assert parts == ["id_test.00000.npz", "id_test.00004.npz", "lidl_id_test.00000.npz"]
    printed = capsys.readouterr().out
    assert "id_test.00004.npz: " in printed and "MB" in printed
    gap = re.search(r"id_test: 9 rows with a spectrum; log σ within (\S+) ", printed)
    assert 0 < float(gap[1]) <= lid_rows.STEP / 2 + 1e-6

    second = np.load(shipped / "id_test.00004.npz")
    assert len(second[lid_rows.FIRST]) == 4  # rows 4, 5, 7, 9: the repeats are indices
    key, rows = lid_rows.load(shipped, "id_test")
    assert key == KEY
    cached = dict(np.load(lid_pipeline.rows_file(run / "lid", "id_test")))
    np.testing.assert_array_equal(rows[io.INPUTS_FIELD], cached[io.INPUTS_FIELD])
    np.testing.assert_array_equal(rows["log_p"], cached["log_p"])
    np.testing.assert_allclose(rows["s"], cached["s"], rtol=lid_rows.STEP)
    assert np.isnan(rows["s"][7]).all()
    _, lidl = lid_rows.load(shipped, "lidl_id_test")  # no spectrum: stored as it is
    np.testing.assert_array_equal(
        lidl["lidl"], np.load(run / "lid" / "lidl_id_test.npz")["lidl"]
    )

    chosen = {"id_test": images[:8]}
    cache(out, "id_test", images[:2])  # the run's own rows: kept, not replaced
    own = np.load(lid_pipeline.rows_file(out, "id_test"))["s"]
    assert lid_pipeline.seed_rows(out, shipped, chosen, KEY) == [
        "id_test", "lidl_id_test"]  # fmt: skip
    seeded = json.loads((out / "seeded.json").read_text())
    assert seeded["id_test"] == [
        {"from": str(shipped), "rows": [2, 8], "rounded": True}
    ]

    def no_rows(x):
        raise AssertionError("a shipped row was computed again")

    file = lid_pipeline.rows_file(out, "id_test")
    assert len(np.load(file)["s"]) == 8  # this run's count, not the copy's 10
    got = io.resumable_rows(file, KEY, no_rows, images[:8], batch_size=2)
    np.testing.assert_array_equal(got["s"][:2], own)
    np.testing.assert_allclose(got["s"], cached["s"][:8], rtol=lid_rows.STEP)
    assert got["s"].dtype == np.float32
    other = KEY | {"steps": 4}  # rows of another ID model are not taken
    assert lid_pipeline.seed_rows(tmp_path / "x", shipped, chosen, other) == []


def test_a_part_of_repeats_alone_is_a_part(tmp_path):
    images = np.zeros((6, 4))
    images[:3] = np.arange(3.0)[:, None]  # 6 constant images, 3 grey levels
    cache(tmp_path / "run" / "lid", "id_test", images[:3])
    shipped_from(tmp_path / "run", tmp_path / "shipped")
    cache(tmp_path / "run" / "lid", "id_test", images)  # rows 3-5 repeat row 0
    shipped_from(tmp_path / "run", tmp_path / "shipped")
    assert len(np.load(tmp_path / "shipped" / "id_test.00003.npz")[lid_rows.FIRST]) == 0
    _, rows = lid_rows.load(tmp_path / "shipped", "id_test")
    np.testing.assert_array_equal(rows["s"][3:], rows["s"][[0, 0, 0]])


def test_a_copy_refuses_other_rows_and_a_missing_part(tmp_path):
    images, shipped = np.arange(60.0).reshape(10, 6), tmp_path / "shipped"
    cache(tmp_path / "a" / "lid", "id_test", images)
    cache(tmp_path / "b" / "lid", "id_test", images[::-1])  # other images
    cache(tmp_path / "c" / "lid", "id_test", images, key=KEY | {"steps": 4})
    lid_rows.ship(tmp_path / "a" / "lid", shipped)
    for other in ("b", "c"):  # other images, another model
        with pytest.raises(SystemExit, match="of another model or of other images"):
            lid_rows.ship(tmp_path / other / "lid", shipped)
    with pytest.raises(SystemExit, match="no LID rows"):
        ship.main(["--run", str(tmp_path / "d"), "--to", str(shipped), "--lid-rows"])
    (shipped / "id_test.00000.npz").rename(shipped / "id_test.00002.npz")
    with pytest.raises(ValueError, match="a part is missing"):
        lid_rows.load(shipped, "id_test")
