"""Faults: corrupt checkpoints, other architectures, NaN validation, diverging steps,
torn metrics lines and ``kill -9`` during training.

Every test uses a five-parameter linear regression (or, for the architecture check,
a Glow with hidden 4 on 8x8 images) and ends by checking that nothing half-written
(``*.tmp``, orbax temporary folders) was left behind.
"""

import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxood import checkpoint, flows, train
from jaxood.checkpoint import CheckpointError, RunCheckpoints

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "experiments" / "checkpoints" / "glow_fmnist" / "id" / "params"

X = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
Y = X @ np.array([1.0, -2.0, 0.5, 3.0], np.float32) + np.float32(0.1)
PARAMS = {"w": np.zeros(4, np.float32), "b": np.zeros(1, np.float32)}


def loss_fn(params, batch, key):
    """Mean squared error; the key adds noise so that ``fold_in(key, step)`` matters."""
    x, y = batch
    noise = 1e-3 * jax.random.normal(key, y.shape)
    return jnp.mean((x @ params["w"] + params["b"] - y - noise) ** 2), {}


def nan_loss_fn(params, batch, key):
    """Always NaN: every step is skipped."""
    return jnp.sum(params["w"]) * jnp.nan, {}


def batch_fn(step):
    index = train.epoch_batch_indices(len(X), 8, step, seed=1)
    return X[index], Y[index]


def val_loss(params):
    return {"val_loss": float(jnp.mean((X @ params["w"] + params["b"] - Y) ** 2))}


@functools.cache
def optimizer_and_step(lr, loss):
    """One jitted step per (learning rate, loss): compiled once for the module."""
    optimizer = train.make_optimizer(lr, optimizer="adam")
    return optimizer, train.make_train_step(loss, optimizer)


def run_fit(workdir, num_steps, *, lr=0.05, loss=loss_fn, **kwargs):
    """``train.fit`` on the tiny regression; ``kwargs`` override the defaults."""
    optimizer, step = optimizer_and_step(lr, loss)
    options = dict(
        batch_fn=batch_fn,
        eval_fn=val_loss,
        log_every=2,
        checkpoint_every=2,
        eval_every=2,
    )
    options.update(kwargs)
    return train.fit(
        workdir=workdir,
        state=train.init_state(PARAMS, optimizer),
        train_step=step,
        num_steps=num_steps,
        key=jax.random.key(0),
        **options,
    )


def state_template():
    return train.init_state(PARAMS, train.make_optimizer(0.05, optimizer="adam"))


def assert_clean(root: Path) -> None:
    """Nothing half-written: no temporary file or folder anywhere under ``root``."""
    left = [
        str(p.relative_to(root))
        for p in root.rglob("*")
        if ".tmp" in p.name or "orbax-checkpoint-tmp" in p.name
    ]
    assert not left, f"half-written files left: {left}"


def corrupt(directory: Path, mode: str) -> Path:
    """Damages the largest data file of a checkpoint in place; returns it."""
    files = [
        f
        for f in directory.rglob("*")
        if f.is_file() and f.name != checkpoint.INTEGRITY_FILE
    ]
    target = max(files, key=lambda f: f.stat().st_size)
    data = bytearray(target.read_bytes())
    if mode == "garble":  # 400 bytes (or all of a smaller file) overwritten
        start = max(0, len(data) // 2 - 200)
        end = min(len(data), start + 400)
        data[start:end] = bytes((b + 101) % 256 for b in data[start:end])
    elif mode == "truncate":
        data = data[: len(data) // 2]
    elif mode == "zero":
        data = bytearray(len(data))
    target.write_bytes(bytes(data))
    return target


def metrics_lines(workdir: Path) -> list[dict]:
    """``metrics.jsonl`` parsed strictly (a bare NaN token fails) without timings."""

    def refuse(token):
        raise AssertionError(f"not JSON: {token}")

    text = (workdir / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    records = [json.loads(x, parse_constant=refuse) for x in text.splitlines()]
    for r in records:
        r.pop("seconds_per_step")
    return records


def raises_exactly(error_type, call, match=None):
    with pytest.raises(error_type, match=match) as info:
        call()
    assert type(info.value) is error_type
    return info.value


MODES = ["garble", "truncate", "zero"]


# ------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("mode", MODES)
def test_corrupt_params_are_refused(tmp_path, capfd, mode):
    path = tmp_path / "params"
    checkpoint.save_params(path, PARAMS)
    np.testing.assert_array_equal(checkpoint.load_params(path, PARAMS)["w"], 0.0)
    corrupt(path, mode)
    error = raises_exactly(
        CheckpointError, lambda: checkpoint.load_params(path, PARAMS)
    )
    assert str(path) in str(error) and "corrupt" in str(error)
    raises_exactly(CheckpointError, lambda: checkpoint.load_params(path))
    # The checksums refuse it before orbax reads: no "Event loop is closed" noise.
    assert "Traceback" not in capfd.readouterr().err
    assert_clean(tmp_path)


def test_corrupt_checkpoint_without_record_is_refused(tmp_path):
    path = tmp_path / "params"
    checkpoint.save_params(path, {"w": np.linspace(-1, 1, 4000, dtype=np.float32)})
    (path / checkpoint.INTEGRITY_FILE).unlink()
    corrupt(path, "zero")
    with pytest.warns(UserWarning, match="no INTEGRITY.json"):
        raises_exactly(CheckpointError, lambda: checkpoint.load_params(path))
    assert_clean(tmp_path)


def test_checkpoints_of_the_orbax_manager_layout_still_resume(tmp_path):
    # Runs started before INTEGRITY.json used orbax's CheckpointManager.
    state = state_template()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=1,
        best_fn=lambda metrics: metrics["val_loss"],
        best_mode="min",
        enable_async_checkpointing=False,
    )
    for which, metrics in (("latest", {"val_loss": 9.0}), ("best", {"val_loss": 2.5})):
        with ocp.CheckpointManager(tmp_path / which, options=options) as manager:
            manager.save(
                6,
                args=ocp.args.StandardSave(jax.tree.map(np.asarray, state)),
                metrics=metrics,
            )
            manager.wait_until_finished()
    checkpoints = RunCheckpoints(tmp_path)
    assert checkpoints.latest_step() == 6
    assert checkpoints.best_record() == {"step": 6, "val_loss": 2.5}
    with pytest.warns(UserWarning, match="no INTEGRITY.json"):
        assert int(checkpoints.restore_latest(state).step) == 0
    assert not checkpoints.save_best(8, state, 3.0)  # worse than the old best
    assert checkpoints.save_best(8, state, 2.0)
    assert checkpoints.best_step() == 8 and not (tmp_path / "best" / "6").exists()
    assert_clean(tmp_path)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("which", ["latest", "best"])
def test_corrupt_run_checkpoints_are_refused(tmp_path, mode, which):
    checkpoints = RunCheckpoints(tmp_path)
    state = state_template()
    checkpoints.save_latest(4, state)
    assert checkpoints.save_best(4, state, 1.0)
    corrupt(tmp_path / which / "4", mode)
    restore = getattr(checkpoints, f"restore_{which}")
    error = raises_exactly(CheckpointError, lambda: restore(state))
    assert str(tmp_path / which / "4") in str(error)
    assert_clean(tmp_path)


@pytest.mark.parametrize("mode", MODES)
def test_corrupt_latest_stops_a_resumed_fit(tmp_path, capfd, mode):
    run_fit(tmp_path, 4)
    corrupt(tmp_path / "checkpoints" / "latest" / "4", mode)
    error = raises_exactly(CheckpointError, lambda: run_fit(tmp_path, 8))
    assert "latest/4" in str(error)
    assert "Traceback" not in capfd.readouterr().err
    assert_clean(tmp_path)


def test_damaged_integrity_record_and_missing_file_are_refused(tmp_path):
    path = tmp_path / "params"
    checkpoint.save_params(path, PARAMS)
    record = path / checkpoint.INTEGRITY_FILE
    record.write_text(record.read_text().replace('"size": ', '"size": 1'))
    raises_exactly(CheckpointError, lambda: checkpoint.load_params(path, PARAMS))
    checkpoint.save_params(path, PARAMS)
    (path / "_METADATA").unlink()
    raises_exactly(
        CheckpointError, lambda: checkpoint.load_params(path), match="missing"
    )
    assert_clean(tmp_path)


def test_non_finite_values_are_refused(tmp_path):
    # Checksums match (the values were saved so): the finiteness check refuses it.
    path = tmp_path / "params"
    checkpoint.save_params(path, {"w": np.array([1.0, np.inf], np.float32)})
    raises_exactly(
        CheckpointError, lambda: checkpoint.load_params(path), match="non-finite"
    )
    assert_clean(tmp_path)


def test_other_structure_shape_or_dtype_is_refused(tmp_path):
    path = tmp_path / "params"
    checkpoint.save_params(path, PARAMS)
    wider = {"w": np.zeros(5, np.float32), "b": np.zeros(1, np.float32)}
    raises_exactly(
        CheckpointError,
        lambda: checkpoint.load_params(path, wider),
        match=r"leaf w has shape \(4,\) in the checkpoint, \(5,\) in the model",
    )
    doubles = {"w": np.zeros(4, np.float64), "b": np.zeros(1, np.float32)}
    raises_exactly(
        CheckpointError, lambda: checkpoint.load_params(path, doubles), match="dtype"
    )
    more = {**PARAMS, "c": np.zeros(1, np.float32)}
    raises_exactly(
        CheckpointError, lambda: checkpoint.load_params(path, more), match="no leaf c"
    )
    fewer = {"w": np.zeros(4, np.float32)}
    raises_exactly(
        CheckpointError, lambda: checkpoint.load_params(path, fewer), match="lacks"
    )
    # The same through a training resume: the first mismatching leaf is named.
    checkpoints = RunCheckpoints(tmp_path / "run")
    checkpoints.save_latest(2, state_template())
    wider_state = train.init_state(wider, train.make_optimizer(0.05, optimizer="adam"))
    raises_exactly(
        CheckpointError,
        lambda: checkpoints.restore_latest(wider_state),
        match=r"leaf params/w has shape \(4,\) in the checkpoint, \(5,\) in the",
    )
    assert_clean(tmp_path)


@pytest.mark.parametrize(
    "change", [{"hidden": 8}, {"steps_per_scale": 2}], ids=["hidden", "steps"]
)
def test_glow_of_another_architecture_is_refused(tmp_path, change):
    config = flows.GlowConfig(
        image_shape=(8, 8, 1), num_scales=2, steps_per_scale=1, hidden=4
    )
    # Shapes are all that matter here: eval_shape spares initialising the flows.
    key = jax.random.key(0)
    shapes = jax.eval_shape(flows.Glow(config).random_params, key)
    params = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    checkpoint.save_params(tmp_path / "glow", params)
    checkpoint.load_params(tmp_path / "glow", shapes)  # the same architecture loads
    other = flows.Glow(dataclasses.replace(config, **change))
    target = jax.eval_shape(other.random_params, key)
    error = raises_exactly(
        CheckpointError,
        lambda: checkpoint.load_params(tmp_path / "glow", target),
        match="another model configuration",
    )
    assert "in the checkpoint" in str(error) or "no leaf" in str(error)
    assert_clean(tmp_path)


def test_checkpoint_without_record_warns_and_can_be_sealed(tmp_path):
    # Checkpoints written before INTEGRITY.json: restored with a warning; sealing
    # one makes later damage detectable.
    path = tmp_path / "params"
    checkpoint.save_params(path, PARAMS)
    (path / checkpoint.INTEGRITY_FILE).unlink()
    with pytest.warns(UserWarning, match="no INTEGRITY.json"):
        checkpoint.load_params(path, PARAMS)
    checkpoint.seal(path)
    checkpoint.verify(path)
    corrupt(path, "garble")
    raises_exactly(CheckpointError, lambda: checkpoint.load_params(path, PARAMS))
    assert_clean(tmp_path)


def test_shipped_checkpoint_copy_restores_and_refuses_damage(tmp_path):
    copy = tmp_path / "params"
    shutil.copytree(SHIPPED, copy)
    params = checkpoint.load_params(copy)  # sealed: no warning (warnings are errors)
    assert len(jax.tree.leaves(params)) > 10
    corrupt(copy, "garble")
    raises_exactly(CheckpointError, lambda: checkpoint.load_params(copy))
    assert_clean(tmp_path)


# ------------------------------------------------------------------- validation


NAN = float("nan")


@pytest.mark.parametrize(
    ("losses", "best"),
    [
        ([3.0, NAN, NAN], 2),  # the reported case: step 2 must survive
        ([NAN, 2.0, 1.0], 6),
        ([3.0, NAN, 1.0], 6),
        ([3.0, 2.0, NAN], 4),
        ([2.0, float("inf"), 3.0], 2),
        ([NAN, NAN, NAN], None),
    ],
    ids=["issue", "first", "middle", "last", "inf", "all"],
)
def test_non_finite_validation_loss_never_becomes_best(tmp_path, losses, best):
    calls = iter(losses)
    run_fit(tmp_path, 6, eval_fn=lambda params: {"val_loss": next(calls)})
    checkpoints = RunCheckpoints(tmp_path / "checkpoints")
    assert checkpoints.best_step() == best
    best_dir = tmp_path / "checkpoints" / "best"
    kept = [p.name for p in best_dir.iterdir()] if best_dir.exists() else []
    assert kept == ([str(best)] if best else [])
    if best is None:
        raises_exactly(
            CheckpointError,
            lambda: checkpoints.restore_best(state_template()),
            match="no evaluation recorded a finite val_loss",
        )
    else:
        restored = checkpoints.restore_best(state_template())
        assert int(restored.step) == best
    logged = [r["val_loss"] for r in metrics_lines(tmp_path)]
    assert logged == [x if np.isfinite(x) else None for x in losses]
    assert_clean(tmp_path)


# ------------------------------------------------------------------ divergence


# float32(1e39) is inf: numpy warns when the schedule is built.
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_update_that_overflows_the_params_is_skipped():
    optimizer = train.make_optimizer(1e39, optimizer="adam")
    step = train.make_train_step(loss_fn, optimizer)
    state = train.init_state(PARAMS, optimizer)
    for i in range(3):
        state, metrics = step(state, batch_fn(i), jax.random.key(0))
        assert np.isfinite(float(metrics["loss"])) and not bool(metrics["finite"])
    assert int(state.num_skipped) == 3 and int(state.step) == 3
    for leaf in jax.tree.leaves(state):
        assert np.isfinite(np.asarray(leaf)).all()
    np.testing.assert_array_equal(state.params["w"], PARAMS["w"])


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(("loss", "lr"), [(nan_loss_fn, 0.05), (loss_fn, 1e39)])
def test_run_of_skipped_steps_stops_with_usable_latest(tmp_path, loss, lr):
    def fit_until_stopped():
        run_fit(tmp_path, 50, loss=loss, lr=lr, log_every=1, checkpoint_every=10,
                eval_fn=None, max_consecutive_skipped=5)  # fmt: skip

    with pytest.raises(train.TrainingError, match="5 consecutive training steps"):
        fit_until_stopped()
    checkpoints = RunCheckpoints(tmp_path / "checkpoints")
    assert checkpoints.latest_step() == 5
    restored = checkpoints.restore_latest(state_template())
    assert int(restored.num_skipped) == 5
    np.testing.assert_array_equal(restored.params["w"], PARAMS["w"])
    records = metrics_lines(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    if loss is nan_loss_fn:
        assert all(r["loss"] is None for r in records)
    # The streak is saved with the checkpoint: resuming stops at the next step.
    with pytest.raises(train.TrainingError, match="6 consecutive"):
        fit_until_stopped()
    assert_clean(tmp_path)


# --------------------------------------------------------------------- metrics


def test_torn_last_metrics_line_is_dropped_on_resume(tmp_path):
    straight = tmp_path / "straight"
    run_fit(straight, 6)
    resumed = tmp_path / "resumed"
    run_fit(resumed, 4)
    with (resumed / "metrics.jsonl").open("a") as f:
        f.write('{"loss": 0.5, "fin')  # a write cut short by a crash
    with pytest.warns(UserWarning, match="torn last line"):
        run_fit(resumed, 6)
    assert metrics_lines(resumed) == metrics_lines(straight)
    assert_clean(tmp_path)


def test_damaged_middle_metrics_line_is_a_clear_error(tmp_path):
    run_fit(tmp_path, 4)
    path = tmp_path / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["{oops", *lines[1:]]) + "\n")
    with pytest.raises(train.TrainingError, match="line 1 is not JSON"):
        run_fit(tmp_path, 6)
    assert_clean(tmp_path)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"log_every": 0}, r"log_every must be a positive whole number.*got 0"),
        ({"checkpoint_every": 0}, r"checkpoint_every must be .*got 0"),
        ({"eval_every": -2}, r"eval_every must be .*got -2"),
        ({"log_every": 2.0}, r"log_every must be .*got 2.0"),
        ({"max_consecutive_skipped": 0}, "max_consecutive_skipped must be"),
        (
            {"checkpoint_every": 3},
            r"checkpoint_every \(3\) must be a multiple of log_every \(2\).*"
            r"checkpoint_every=4",
        ),
        ({"eval_every": 5}, r"eval_every \(5\) must be a multiple of log_every"),
    ],
)
def test_bad_periods_are_one_line_errors(tmp_path, options, match):
    error = raises_exactly(
        ValueError, lambda: run_fit(tmp_path / "run", 4, **options), match=match
    )
    assert "\n" not in str(error)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------- kill -9

CHILD = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_faults as tf
from jaxood import checkpoint

workdir, marker = Path(sys.argv[1]), Path(sys.argv[2])

calls = []

def slow_batch(step):
    calls.append(step)
    if len(calls) > 2:  # compiled and training: the parent may kill from now on
        marker.touch()
    time.sleep(0.02)
    return tf.batch_fn(step)

tic = time.perf_counter()
state = tf.run_fit(workdir, 60, batch_fn=slow_batch, checkpoint_every=4, eval_every=4)
checkpoint.save_params(workdir / "final", state.params)
print(f"trained in {{time.perf_counter() - tic:.2f}} s", file=sys.stderr)
"""


@pytest.mark.slow
def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}

    def launch(workdir, name):
        marker = tmp_path / f"started-{name}"
        child = subprocess.Popen(
            [sys.executable, str(script), str(workdir), str(marker)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return child, marker

    straight, _ = launch(tmp_path / "straight", "straight")
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()
    rng = np.random.default_rng(2026)
    killed, resume_points = 0, []
    for attempt in range(3):
        child, marker = launch(tmp_path / "resumed", attempt)
        deadline = time.monotonic() + 120
        while not marker.exists() and child.poll() is None:
            assert time.monotonic() < deadline, "child never started training"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.2, 2.0))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            killed += 1
        child.wait(timeout=60)
        child.stderr.close()
        latest = RunCheckpoints(tmp_path / "resumed" / "checkpoints").latest_step()
        resume_points.append(latest)
    # The kills landed while training, not after it, and later runs resumed.
    assert killed >= 2 and any(resume_points), resume_points
    print("latest step after each kill:", resume_points)
    final, _ = launch(tmp_path / "resumed", "final")
    assert final.wait(timeout=300) == 0, final.stderr.read().decode()
    straight.stderr.close()
    final.stderr.close()
    a = checkpoint.load_params(tmp_path / "straight" / "final", PARAMS)
    b = checkpoint.load_params(tmp_path / "resumed" / "final", PARAMS)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert metrics_lines(tmp_path / "resumed") == metrics_lines(tmp_path / "straight")
    assert (
        RunCheckpoints(tmp_path / "resumed" / "checkpoints").best_record()
        == RunCheckpoints(tmp_path / "straight" / "checkpoints").best_record()
    )
    assert_clean(tmp_path)
