"""Training loop: determinism and resume, non-finite guard, checkpoints, errors."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxood import checkpoint, data, flows, train
from jaxood.data import synthetic
from jaxood.flows.losses import nll_loss

CONFIG = flows.GlowConfig(
    image_shape=(8, 8, 1), num_scales=2, steps_per_scale=2, hidden=8
)


@pytest.fixture(scope="module")
def setup():
    model = flows.Glow(CONFIG)
    images = data.resize(synthetic.uniform_noise(64, seed=3), 8)
    images = np.minimum(images, 128)  # something learnable: a clipped intensity range
    params = flows.init(
        model, jax.random.key(0), data.dequantize(jax.random.key(1), images)
    )
    optimizer = train.make_optimizer(
        1e-3, warmup_steps=3, clip_norm=10.0, weight_decay=1e-5
    )
    step = train.make_train_step(nll_loss(model), optimizer)
    return model, images, params, optimizer, step


def _run(tmp, setup, num_steps, interrupt_at=None, snapshot_steps=(10, 20)):
    model, images, params, optimizer, step = setup

    def batch_fn(i):
        if interrupt_at is not None and i == interrupt_at:
            raise KeyboardInterrupt
        return images[train.epoch_batch_indices(len(images), 16, i, seed=7)]

    return train.fit(
        workdir=tmp,
        state=train.init_state(params, optimizer),
        train_step=step,
        batch_fn=batch_fn,
        num_steps=num_steps,
        key=jax.random.key(42),
        log_every=5,
        checkpoint_every=5,
        eval_every=5,
        eval_fn=lambda p: {
            "val_loss": float(
                -jnp.mean(model.forward(p, data.to_model_space(images)).total)
            )
        },
        snapshot_steps=snapshot_steps,
    )


@pytest.mark.slow
def test_resume_after_interruption_gives_identical_params(tmp_path, setup):
    straight = _run(tmp_path / "straight", setup, 20)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "resumed", setup, 20, interrupt_at=12)  # checkpoint at 10
    resumed = _run(tmp_path / "resumed", setup, 20)
    assert int(resumed.step) == 20
    for a, b in zip(
        jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    lines = [
        json.loads(x)
        for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in lines] == [5, 10, 15, 20]
    assert lines[-1]["loss"] < lines[0]["loss"]
    # The log equals the uninterrupted one, timings aside.
    straight_lines = [
        json.loads(x)
        for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()
    ]
    for r in lines + straight_lines:
        r.pop("seconds_per_step")
    assert lines == straight_lines

    # Params at 10 and 20 steps, the same with or without the interruption.
    def snapshot(run, step):
        path = tmp_path / run / "snapshots" / str(step)
        return jax.tree.leaves(checkpoint.load_params(path, straight.params))

    final = jax.tree.leaves(straight.params)
    for run in ("straight", "resumed"):
        for a, b in zip(snapshot(run, 20), final, strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(snapshot(run, 10), snapshot("straight", 10), strict=True):
            np.testing.assert_array_equal(a, b)
    early = zip(snapshot("straight", 10), final, strict=True)
    assert any(not np.array_equal(a, b) for a, b in early)


def test_a_finished_run_extended_keeps_the_snapshot_it_ended_at(tmp_path, setup):
    # 10 steps kept no snapshot; asked for 20 steps with snapshots at 10 and 20, it
    # resumes at 10 and must write that one too, equal to an uninterrupted run's.
    _run(tmp_path / "extended", setup, 10, snapshot_steps=())
    assert not (tmp_path / "extended" / "snapshots").exists()
    extended = _run(tmp_path / "extended", setup, 20)
    straight = _run(tmp_path / "straight", setup, 20)
    for step in (10, 20):
        kept = [
            checkpoint.load_params(tmp_path / run / "snapshots" / str(step), p)
            for run, p in (("extended", extended.params), ("straight", straight.params))
        ]
        for a, b in zip(*map(jax.tree.leaves, kept), strict=True):
            np.testing.assert_array_equal(a, b)


def test_non_finite_steps_are_skipped_and_counted(setup):
    _, _, params, optimizer, _ = setup

    def loss_fn(p, batch, key):
        value = jnp.sum(jax.tree.leaves(p)[0] ** 2)
        return jnp.where(batch[0] > 0, jnp.nan, value), {}

    step = train.make_train_step(loss_fn, optimizer)
    state = train.init_state(params, optimizer)
    state, metrics = step(state, jnp.ones(1), jax.random.key(0))
    assert not bool(metrics["finite"]) and int(state.num_skipped) == 1
    for a, b in zip(
        jax.tree.leaves(state.params), jax.tree.leaves(params), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    state, _ = step(state, -jnp.ones(1), jax.random.key(0))
    assert int(state.num_skipped) == 1 and int(state.step) == 2


def test_actnorm_init_survives_save_and_restore(tmp_path, setup):
    model, images, params, _, _ = setup
    x = data.to_model_space(images)
    checkpoint.save_params(tmp_path / "params", params)
    fresh = model.random_params(jax.random.key(9))  # different values, same structure
    restored = checkpoint.load_params(tmp_path / "params", fresh)
    np.testing.assert_array_equal(
        flows.log_prob(model, params, x).total, flows.log_prob(model, restored, x).total
    )


def test_missing_and_corrupt_checkpoints_name_the_path(tmp_path, setup):
    _, _, params, _, _ = setup
    with pytest.raises(checkpoint.CheckpointError, match=str(tmp_path / "absent")):
        checkpoint.load_params(tmp_path / "absent", params)
    checkpoint.save_params(tmp_path / "p", params)
    for f in (tmp_path / "p").rglob("*"):
        if f.is_file() and f.stat().st_size > 100:
            f.write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.load_params(tmp_path / "p", params)
    shutil.rmtree(tmp_path / "p")


def test_optimizer_choices():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train.make_optimizer(1e-3, optimizer="sgd")
    with pytest.raises(ValueError, match="exceeds"):
        train.epoch_batch_indices(3, 4, 0, 0)


def test_held_out_loss_is_the_loss_on_fixed_examples_and_noise(key):
    def loss(params, x, k):  # a noisy loss: the key must be the same every time
        return jnp.mean((x - params) ** 2) + jax.random.normal(k), {}

    x = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    evaluate = train.held_out_loss(loss, x, key)
    got = evaluate(jnp.float32(0.5))
    assert isinstance(got, float) and got == evaluate(jnp.float32(0.5))
    assert got == pytest.approx(float(loss(jnp.float32(0.5), x, key)[0]), rel=1e-6)
    assert evaluate(jnp.float32(2.0)) > got
