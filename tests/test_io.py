"""jaxood.io: a stage is trained once, restored by fingerprint, never reused for
another configuration; caches follow their key; nothing is half-written."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxood import checkpoint, io, train

X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
Y = X @ np.array([1.0, -2.0, 0.5], np.float32)
TEMPLATE = {"w": np.zeros(3, np.float32)}
FINGERPRINT = {"steps": 20, "lr": 0.1}


def loss_fn(params, batch, key):
    x, y = batch
    return jnp.mean((x @ params["w"] - y) ** 2), {}


def fit(stage, select="best"):
    batches = train.epoch_batches(np.arange(len(X)), 16, seed=1)
    return io.fit_stage(
        stage,
        TEMPLATE,
        loss_fn,
        io.optimizer(0.1, optimizer="adam"),
        lambda step: (X[batches(step)], Y[batches(step)]),
        20,
        jax.random.key(0),
        lambda p: {"val_loss": float(loss_fn(p, (X, Y), None)[0])},
        eval_every=5,
        log_every=5,
        checkpoint_every=10,
        select=select,
    )


class Trainer:
    """``train_fn`` that counts its calls."""

    def __init__(self, stage):
        self.stage, self.calls = stage, 0

    def __call__(self):
        self.calls += 1
        return fit(self.stage)


def test_a_finished_stage_is_restored_not_trained_again(tmp_path):
    stage = tmp_path / "id"
    trainer = Trainer(stage)
    first = io.train_or_restore(stage, FINGERPRINT, TEMPLATE, trainer)
    again = io.train_or_restore(stage, FINGERPRINT, TEMPLATE, trainer)
    assert trainer.calls == 1
    np.testing.assert_array_equal(first["w"], again["w"])
    assert float(loss_fn(first, (X, Y), None)[0]) < float(np.mean(Y**2)) / 10
    summary = io.stage_summary(stage)
    assert summary["steps"] == 20 and summary["selected"] == "best"
    assert summary["selected_step"] in (5, 10, 15, 20) and summary["train_seconds"] > 0
    assert json.loads((stage / "config.json").read_text()) == FINGERPRINT


def test_restore_or_fit_initialises_only_when_it_trains(tmp_path):
    stage, inits = tmp_path / "id", []
    batches = train.epoch_batches(np.arange(len(X)), 16, seed=1)

    def run():
        return io.restore_or_fit(
            stage, FINGERPRINT, TEMPLATE, lambda: inits.append(1) or TEMPLATE,
            loss_fn, io.optimizer(0.1, optimizer="adam"),
            lambda step: (X[batches(step)], Y[batches(step)]), 20, jax.random.key(0),
            lambda p: {"val_loss": float(loss_fn(p, (X, Y), None)[0])},
            final_metrics=lambda p: {"final_w0": float(p["w"][0])},
            eval_every=5, log_every=5, checkpoint_every=10,
        )  # fmt: skip

    first, again = run(), run()
    assert len(inits) == 1  # the second call restores: no data-dependent init
    np.testing.assert_array_equal(first["w"], again["w"])
    summary = io.stage_summary(stage)
    assert summary["final_w0"] == pytest.approx(float(first["w"][0]))
    assert summary["steps"] == 20 and "val_loss" not in summary


def test_another_fingerprint_is_refused(tmp_path):
    stage = tmp_path / "id"
    io.train_or_restore(stage, FINGERPRINT, TEMPLATE, Trainer(stage))
    with pytest.raises(RuntimeError, match="another configuration"):
        io.train_or_restore(stage, {**FINGERPRINT, "lr": 0.2}, TEMPLATE, Trainer(stage))
    assert not io.is_available(stage, {**FINGERPRINT, "lr": 0.2})
    assert io.is_available(stage, FINGERPRINT)


def test_an_unfinished_stage_of_another_fingerprint_is_not_resumed(tmp_path):
    stage = tmp_path / "id"
    io.train_or_restore(stage, FINGERPRINT, TEMPLATE, Trainer(stage))
    shutil.rmtree(stage / "final_params")  # as if stopped before the end
    trainer = Trainer(stage)
    with pytest.raises(RuntimeError, match="unfinished training"):
        io.train_or_restore(stage, {**FINGERPRINT, "lr": 0.2}, TEMPLATE, trainer)
    assert trainer.calls == 0
    (stage / "config.json").unlink()  # continuing it on purpose
    io.train_or_restore(stage, {**FINGERPRINT, "lr": 0.2}, TEMPLATE, trainer)
    assert trainer.calls == 1 and io.is_available(stage, {**FINGERPRINT, "lr": 0.2})


def test_a_matching_source_is_restored_then_trained_for_real(tmp_path, capsys):
    shipped = tmp_path / "shipped" / "id"  # the layout of a shipped checkpoint
    checkpoint.save_params(shipped / "params", {"w": np.ones(3, np.float32)})
    io.write_json(shipped / "config.json", FINGERPRINT)
    io.write_json(shipped / "summary.json", {"steps": 20})
    other = tmp_path / "other" / "id"
    io.write_json(other / "config.json", {**FINGERPRINT, "lr": 0.2})
    sources = ["", other.parent, shipped.parent]

    stage = tmp_path / "run" / "id"
    trainer = Trainer(stage)
    assert io.is_available(stage, FINGERPRINT, sources)
    restored = io.train_or_restore(stage, FINGERPRINT, TEMPLATE, trainer, sources)
    assert (
        trainer.calls == 0 and "holds another configuration" in capsys.readouterr().out
    )
    np.testing.assert_array_equal(restored["w"], np.ones(3))
    assert io.stage_summary(stage)["restored_from"].endswith("shipped/id")

    trained = io.train_or_restore(stage, FINGERPRINT, TEMPLATE, trainer, sources=[])
    assert trainer.calls == 1 and not (stage / io.RESTORED_MARKER).exists()
    assert "restored_from" not in io.stage_summary(stage)
    assert not np.array_equal(trained["w"], np.ones(3))


def test_a_restored_copy_follows_a_changed_source(tmp_path, capsys):
    # A run directory restored the shipped stage; the shipped stage was then replaced
    # by one of another configuration (a longer training): the copy is replaced, and
    # its snapshots with it, instead of refusing the run directory.
    shipped, stage = tmp_path / "shipped" / "id", tmp_path / "run" / "id"
    versions = [(FINGERPRINT, 1.0, ["10"]), ({**FINGERPRINT, "steps": 30}, 2.0, [])]
    for fingerprint, value, snapshots in versions:
        shutil.rmtree(shipped, ignore_errors=True)
        checkpoint.save_params(shipped / "params", {"w": np.full(3, value, np.float32)})
        for step in snapshots:
            checkpoint.save_params(shipped / "snapshots" / step, TEMPLATE)
        io.write_json(shipped / "config.json", fingerprint)
        io.write_json(shipped / "summary.json", {"steps": 20})
        trainer = Trainer(stage)
        restored = io.train_or_restore(
            stage, fingerprint, TEMPLATE, trainer, [shipped.parent]
        )
        assert trainer.calls == 0
        np.testing.assert_array_equal(restored["w"], np.full(3, value))
        assert io.snapshots(stage) == [int(s) for s in snapshots]
    assert "holds another configuration: replacing it" in capsys.readouterr().out


def test_the_restore_marker_is_relative_inside_the_working_directory(
    tmp_path, monkeypatch
):
    shipped = tmp_path / "shipped" / "id"
    checkpoint.save_params(shipped / "params", {"w": np.ones(3, np.float32)})
    io.write_json(shipped / "config.json", FINGERPRINT)
    io.write_json(shipped / "summary.json", {"steps": 20})
    monkeypatch.chdir(tmp_path)  # a moved checkout keeps a relative marker valid
    stage = tmp_path / "run" / "id"
    io.train_or_restore(stage, FINGERPRINT, TEMPLATE, Trainer(stage), [shipped.parent])
    assert (stage / io.RESTORED_MARKER).read_text().strip() == "shipped/id"
    assert io.stage_summary(stage)["restored_from"] == "shipped/id"


def test_best_selection_beats_the_last_state_and_final_keeps_it(tmp_path):
    best, summary_best = fit(tmp_path / "best")
    last, summary_last = fit(tmp_path / "last", select="final")
    assert summary_last["selected_step"] == 20
    val = {k: float(loss_fn(p, (X, Y), None)[0]) for k, p in [("b", best), ("l", last)]}
    assert val["b"] <= val["l"] + 1e-7  # the same run: best of its evaluations
    assert summary_best["selected_step"] in (5, 10, 15, 20)
    state = checkpoint.RunCheckpoints(tmp_path / "last" / "checkpoints")
    try:
        template = train.init_state(TEMPLATE, io.optimizer(0.1, optimizer="adam"))
        latest = train.TrainState(*state.restore_latest(template))
    finally:
        state.close()
    np.testing.assert_allclose(last["w"], latest.params["w"])


def test_snapshots_are_listed_by_step(tmp_path):
    assert io.snapshots(tmp_path) == []
    for step in ("300", "20", "notes"):
        (tmp_path / "snapshots" / step).mkdir(parents=True)
    assert io.snapshots(tmp_path) == [20, 300]


def test_cache_follows_its_key_and_outputs(tmp_path):
    key_file, out = tmp_path / "key.json", tmp_path / "scores.npz"
    key = {"seed": 0, "sets": ("a", "b")}  # a tuple reads back as a list
    assert not io.is_cached(key_file, key, [out])
    io.save_arrays(out, {"a": np.arange(3)})
    assert not io.is_cached(key_file, key, [out])  # written, not yet marked
    io.mark_cached(key_file, key)
    assert io.is_cached(key_file, key, [out])
    assert not io.is_cached(key_file, {**key, "seed": 1}, [out])
    out.unlink()
    assert not io.is_cached(key_file, key, [out])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json"]  # no .tmp left


def test_cached_arrays_compute_once_per_key(tmp_path):
    path, key_file = tmp_path / "run" / "scores.npz", tmp_path / "run" / "key.json"
    calls = []

    def compute(value):
        calls.append(value)
        return {"s": np.full(2, value, np.float32)}

    first = io.cached_arrays(path, key_file, {"k": 1}, lambda: compute(1.0))
    again = io.cached_arrays(path, key_file, {"k": 1}, lambda: compute(9.0))
    np.testing.assert_array_equal(again["s"], first["s"])  # read back, not computed
    assert calls == [1.0] and again["s"].dtype == np.float32
    other = io.cached_arrays(path, key_file, {"k": 2}, lambda: compute(2.0))
    assert calls == [1.0, 2.0] and other["s"][0] == 2.0

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.cached_arrays(path, key_file, {"k": 3}, interrupted)
    assert io.cached_arrays(path, key_file, {"k": 2}, lambda: compute(0.0))["s"][0] == 2
    assert calls == [1.0, 2.0]  # the interrupted call changed nothing


def test_resumable_rows_resume_extend_and_follow_their_key(tmp_path):
    path, calls = tmp_path / "rows.npz", []

    def fn(batch):
        calls.append(len(batch))
        return {"square": batch**2, "sum": batch.sum(axis=1)}

    x = np.arange(20.0).reshape(10, 2)
    first = io.resumable_rows(path, {"model": 1}, fn, x[:5], batch_size=2)
    np.testing.assert_array_equal(first["square"], x[:5] ** 2)
    assert calls == [2, 2, 1]
    calls.clear()  # more inputs: only the new rows are computed
    more = io.resumable_rows(path, {"model": 1}, fn, x, batch_size=2)
    np.testing.assert_array_equal(more["sum"], x.sum(axis=1))
    assert calls == [2, 2, 1]
    calls.clear()  # fewer inputs: the first rows, nothing computed
    assert len(io.resumable_rows(path, {"model": 1}, fn, x[:3], 2)["sum"]) == 3
    assert calls == []
    # Another key: the rows of the old one are discarded, not mixed in.
    io.resumable_rows(path, {"model": 2}, lambda b: {"sum": -b.sum(axis=1)}, x, 4)
    np.testing.assert_array_equal(np.load(path)["sum"], -x.sum(axis=1))
    assert json.loads((tmp_path / "rows.key.json").read_text()) == {"model": 2}


def test_resumable_rows_belong_to_their_inputs(tmp_path):
    # Another subset of a set under the same key (e.g. another max_eval): the rows
    # of the old images must not be returned for the new ones.
    path, x = tmp_path / "rows.npz", np.arange(20.0).reshape(10, 2)
    fn = lambda b: {"sum": b.sum(axis=1)}  # noqa: E731
    io.resumable_rows(path, {"model": 1}, fn, x[:6], batch_size=2)
    shuffled = x[::-1].copy()
    rows = io.resumable_rows(path, {"model": 1}, fn, shuffled[:4], batch_size=2)
    np.testing.assert_array_equal(rows["sum"], shuffled[:4].sum(axis=1))
    assert set(np.load(path)) == {"sum", io.INPUTS_FIELD}
    # A file without the hashes (or with rows of unknown inputs) is recomputed.
    np.savez(path, sum=np.zeros(4))
    rows = io.resumable_rows(path, {"model": 1}, fn, shuffled[:4], batch_size=2)
    np.testing.assert_array_equal(rows["sum"], shuffled[:4].sum(axis=1))


def test_resumable_rows_keep_what_was_saved_when_interrupted(tmp_path):
    path, x = tmp_path / "rows.npz", np.arange(12.0).reshape(6, 2)

    def failing_at(index):
        calls = []

        def fn(batch):
            calls.append(1)
            if len(calls) == index:
                raise KeyboardInterrupt
            return {"sum": batch.sum(axis=1)}

        return fn

    with pytest.raises(KeyboardInterrupt):  # saved after every batch
        io.resumable_rows(path, {}, failing_at(3), x, batch_size=2, save_every=0)
    assert len(np.load(path)["sum"]) == 4
    path.unlink()
    with pytest.raises(KeyboardInterrupt):  # saved only at the end: nothing yet
        io.resumable_rows(path, {}, failing_at(3), x, batch_size=2, save_every=1e9)
    assert not path.exists()
    rows = io.resumable_rows(path, {}, failing_at(0), x, batch_size=2, save_every=1e9)
    np.testing.assert_array_equal(rows["sum"], x.sum(axis=1))
    np.testing.assert_array_equal(np.load(path)["sum"], x.sum(axis=1))


def test_resumable_rows_print_what_is_left_in_background_runs(tmp_path, capsys):
    x = np.arange(12.0).reshape(6, 2)
    io.resumable_rows(tmp_path / "rows.npz", {}, lambda b: {"sum": b.sum(axis=1)},
                      x, batch_size=2, desc="set", save_every=0)  # fmt: skip
    lines = capsys.readouterr().out.splitlines()  # no terminal: no bar, lines
    assert [line.split(" (")[0] for line in lines] == [
        f"set: {n}/6 rows saved" for n in (2, 4, 6)
    ]
    assert lines[-1].endswith(", 0 s left)")
    assert [io.duration(s) for s in (0.4, 59.4, 60, 449, 3600, 7500)] == [
        "0 s", "59 s", "1 min", "7 min", "1 h 00 min", "2 h 05 min"
    ]  # fmt: skip


def test_epoch_batches_cover_each_epoch_once():
    batches = train.epoch_batches(np.arange(10), 3, seed=4)
    epoch = np.concatenate([batches(step) for step in range(3)])
    assert len(set(epoch.tolist())) == 9  # the last partial batch dropped
    assert not np.array_equal(batches(0), batches(3))  # a new order each epoch


def test_a_shipped_stage_restores_with_its_summary_and_snapshots(tmp_path):
    stage = tmp_path / "run" / "id"
    trained = io.train_or_restore(stage, FINGERPRINT, TEMPLATE, Trainer(stage))
    checkpoint.save_params(stage / "snapshots" / "10", trained)
    with pytest.raises(ValueError, match="final_params"):
        io.ship_stage(tmp_path / "run" / "missing", tmp_path / "ship" / "missing")
    assert io.ship_stage(stage, tmp_path / "ship" / "id") > 0
    again = tmp_path / "again" / "id"
    trainer = Trainer(again)
    restored = io.train_or_restore(
        again, FINGERPRINT, TEMPLATE, trainer, [tmp_path / "ship"]
    )
    assert trainer.calls == 0 and io.snapshots(again) == [10]
    np.testing.assert_array_equal(restored["w"], trained["w"])
    assert io.stage_summary(again)["steps"] == io.stage_summary(stage)["steps"]


def test_resumable_rows_compute_identical_inputs_once(tmp_path):
    path, calls = tmp_path / "rows.npz", []

    def fn(batch):
        calls.append(batch[:, 0].tolist())
        return {"sum": batch.sum(axis=1), "square": batch**2}

    base = np.arange(10.0).reshape(5, 2)
    x = base[[0, 1, 0, 2, 1, 0, 3]]  # 4 distinct rows in 7

    def one_batch_then_stop(batch):
        if calls:
            raise KeyboardInterrupt
        return fn(batch)

    with pytest.raises(KeyboardInterrupt):  # saved after every batch
        io.resumable_rows(path, {}, one_batch_then_stop, x, 2, save_every=0)
    # The first batch (rows 0 and 1) covers every input before row 3.
    np.testing.assert_array_equal(np.load(path)["sum"], x[:3].sum(axis=1))
    rows = io.resumable_rows(path, {}, fn, x, batch_size=2)
    assert calls == [[0.0, 2.0], [4.0, 6.0]]  # each distinct row once, in all
    np.testing.assert_array_equal(rows["sum"], x.sum(axis=1))
    np.testing.assert_array_equal(rows["square"], x**2)
    calls.clear()  # more inputs that repeat saved ones: copied, nothing computed
    more = np.concatenate([x, base[[3, 1]]])
    rows = io.resumable_rows(path, {}, fn, more, batch_size=2)
    assert calls == []
    np.testing.assert_array_equal(rows["sum"], more.sum(axis=1))
    np.testing.assert_array_equal(np.load(path)["square"], more**2)
