"""Training: optimizer factory, one jitted step with a non-finite guard, and a loop.

The loop is deterministic given its seed: batch b of epoch e is a fixed permutation
of the data (``numpy`` seeded by ``(seed, e)``) and the step's randomness is
``fold_in(key, step)``, so an interrupted run (even by ``kill -9``) resumed from its
latest checkpoint ends with exactly the params of an uninterrupted one, and the same
``metrics.jsonl`` except the ``seconds_per_step`` timings.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from jaxood import parallel
from jaxood.checkpoint import RunCheckpoints, save_params
from jaxood.typing import Array, Params, PRNGKey

# loss_fn(params, batch, key) -> (scalar loss, dict of scalar metrics)
LossFn = Callable[[Params, Any, PRNGKey], tuple[Array, dict[str, Array]]]


class TrainingError(RuntimeError):
    """Training cannot make progress (e.g. every recent step was non-finite)."""


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree; checkpointed whole)."""

    params: Params
    opt_state: Any
    step: Array  # int32 ()
    num_skipped: Array  # int32 (), steps dropped by the non-finite guard


def make_optimizer(
    learning_rate: float,
    *,
    optimizer: str = "adamax",
    warmup_steps: int = 0,
    clip_norm: float | None = None,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """Adam or Adamax with linear warm-up, global-norm clipping, L2 weight decay.

    Weight decay is added to the gradient before the adaptive scaling (PyTorch's
    ``weight_decay``, as in Schirrmeister et al.'s Adamax recipe), not decoupled.
    """
    scalers = {"adam": optax.scale_by_adam, "adamax": optax.scale_by_adamax}
    if optimizer not in scalers:
        raise ValueError(
            f"optimizer must be one of {list(scalers)}, got {optimizer!r}."
        )
    schedule = (
        optax.warmup_constant_schedule(0.0, learning_rate, warmup_steps)
        if warmup_steps > 0
        else optax.constant_schedule(learning_rate)
    )
    parts = []
    if clip_norm:
        parts.append(optax.clip_by_global_norm(clip_norm))
    if weight_decay:
        parts.append(optax.add_decayed_weights(weight_decay))
    parts += [scalers[optimizer](), optax.scale_by_learning_rate(schedule)]
    return optax.chain(*parts)


class EmaParamsState(NamedTuple):
    """The exponential moving average of the parameters (inside the optimizer
    state, so it is checkpointed, resumed and guarded with everything else)."""

    ema: Params


def with_ema(
    optimizer: optax.GradientTransformation, decay: float
) -> optax.GradientTransformation:
    """``optimizer`` that also keeps ``ema ← decay · ema + (1 − decay) · params``.

    The average is of the parameters after each update; it lives in the optimizer
    state (read it with :func:`ema_params`), so a step that the non-finite guard
    skips leaves it unchanged too. Diffusion models score with the average.
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must lie in [0, 1), got {decay}.")

    def init(params):
        return EmaParamsState(jax.tree.map(lambda a: jnp.array(a, copy=True), params))

    def update(updates, state, params=None):
        new = optax.apply_updates(params, updates)
        ema = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema, new)
        return updates, EmaParamsState(ema)

    return optax.chain(optimizer, optax.GradientTransformation(init, update))


def ema_params(opt_state: Any) -> Params:
    """The parameter average kept by :func:`with_ema` in ``opt_state``."""
    found = [
        s
        for s in jax.tree.leaves(
            opt_state, is_leaf=lambda s: isinstance(s, EmaParamsState)
        )
        if isinstance(s, EmaParamsState)
    ]
    if len(found) != 1:
        raise ValueError(
            f"opt_state holds {len(found)} parameter averages; build the optimizer "
            "with jaxood.train.with_ema."
        )
    return found[0].ema


def init_state(params: Params, optimizer: optax.GradientTransformation) -> TrainState:
    """A fresh state at step 0 holding a copy of ``params``.

    The train step donates its state, so the state must own its buffers: the
    caller's ``params`` stay valid after training.
    """
    params = jax.tree.map(lambda a: jnp.array(a, copy=True), params)
    return TrainState(
        params,
        optimizer.init(params),
        jnp.zeros((), jnp.int32),
        jnp.zeros((), jnp.int32),
    )


def _all_finite(tree: Any) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.stack(leaves).all() if leaves else jnp.array(True)


def make_train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation, *, mesh=None
) -> Callable[[TrainState, Any, PRNGKey], tuple[TrainState, dict[str, Array]]]:
    """One jitted optimisation step with a non-finite guard.

    A step is skipped (params and optimizer state unchanged, ``num_skipped``
    counted) when the loss or a gradient is non-finite, or when the update would
    make a parameter or optimizer moment non-finite: a finite gradient times a huge
    learning rate can overflow to inf. The whole batch is skipped (the reference
    also retries without the non-finite examples when enough remain; not done here).

    The returned ``step(state, batch, key)`` folds ``state.step`` into ``key``, so the
    caller passes the same run key every time. It donates ``state`` (argument 0):
    the new state reuses its buffers, so parameters and optimizer moments are not
    held twice; the state passed in is invalid afterwards (``state, m = step(state,
    ...)``). Every backend jax supports donates, XLA:CPU included (checked on jax
    0.10.2: no "donated buffers were not usable" warning, the old buffers deleted).

    Data parallel on ``mesh`` (a ``jaxood.parallel.data_mesh``; default: the mesh
    set with ``jax.set_mesh``, if any): every host (numpy) leaf of the batch is
    split over the devices along its first axis (which must divide by their
    number: a ``ValueError`` says so); leaves that are already ``jax.Array`` keep
    their placement (e.g. the general model's params in the outlier loss's batch:
    replicate them). The state is replicated and comes out replicated
    (``out_shardings``); the loss's mean over the batch makes the gradient an
    all-reduce. The same params as on one device, up to float summation order.
    """
    mesh = parallel.current_mesh(mesh)
    jit = functools.partial(jax.jit, donate_argnums=0)
    if mesh is not None:
        replicated = NamedSharding(mesh, PartitionSpec())
        jit = functools.partial(jit, out_shardings=(replicated, replicated))

    @jit
    def step(state: TrainState, batch: Any, key: PRNGKey):
        step_key = jax.random.fold_in(key, state.step)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, step_key
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = (
            jnp.isfinite(loss)
            & _all_finite(grads)
            & _all_finite(params)
            & _all_finite(opt_state)
        )
        keep = lambda new, old: jax.tree.map(  # noqa: E731
            lambda a, b: jnp.where(finite, a, b), new, old
        )
        new_state = TrainState(
            keep(params, state.params),
            keep(opt_state, state.opt_state),
            state.step + 1,
            state.num_skipped + (~finite).astype(jnp.int32),
        )
        return new_state, {"loss": loss, **metrics, "finite": finite}

    if mesh is None:
        return step

    def sharded_step(state: TrainState, batch: Any, key: PRNGKey):
        # Both are no-ops once the state lives on the mesh (every step but the first).
        state = parallel.replicate(mesh, state)
        batch = jax.tree.map(
            lambda a: a if isinstance(a, jax.Array) else parallel.shard_batch(mesh, a),
            batch,
        )
        return step(state, batch, key)

    return sharded_step


def epoch_batch_indices(num_examples: int, batch_size: int, step: int, seed: int):
    """Indices of the batch at ``step``: epochs are seeded permutations, last partial
    batch dropped."""
    per_epoch = num_examples // batch_size
    if per_epoch == 0:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {num_examples} examples."
        )
    epoch, offset = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_examples)
    return order[offset * batch_size : (offset + 1) * batch_size]


def epoch_batches(examples, batch_size: int, seed: int) -> Callable[[int], Any]:
    """``step -> batch`` of ``examples`` (an array indexed on its first axis) by
    :func:`epoch_batch_indices`: the ``batch_fn`` of :func:`fit`."""
    return lambda step: examples[
        epoch_batch_indices(len(examples), batch_size, step, seed)
    ]


def held_out_loss(
    loss_fn: LossFn, examples: Any, key: PRNGKey
) -> Callable[[Params], float]:
    """``params -> float``: ``loss_fn`` on fixed examples with a fixed key (the same
    noise at every evaluation, so that evaluations compare), read on the host.

    The examples are an argument of the jitted program, not a constant closed
    over: a validation set as a constant is compiled into the program (megabytes)
    and makes each set's program another entry of the compilation cache.
    """
    evaluate = jax.jit(lambda params, x, k: loss_fn(params, x, k)[0])
    return lambda params: float(evaluate(params, examples, key))


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no NaN or Infinity)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic | jax.Array):
        value = value.item() if np.ndim(value) == 0 else np.asarray(value).tolist()
        return _json_safe(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _append_jsonl(path: Path, record: dict) -> None:
    """Appends one JSON line with a single ``write`` and ``fsync``: a killed process
    leaves whole lines (at worst one torn last line, dropped on resume)."""
    line = (json.dumps(_json_safe(record), allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    if written != len(line):
        raise OSError(f"Short write to {path} ({written} of {len(line)} bytes).")


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drops lines logged after the checkpoint we resume from, and a torn last line.

    Raises:
        TrainingError: a line other than the last is not JSON (the file was edited
            or damaged by something else than an interrupted write).
    """
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # left by a run killed while rewriting
    if not path.exists():
        return
    text = path.read_text()
    lines = text.split("\n")
    # A whole file ends with "\n": the last element is then empty.
    complete, tail = lines[:-1], lines[-1]
    records = []
    for number, line in enumerate(complete, 1):
        if not line.strip():
            continue
        try:
            records.append((line, json.loads(line)))
        except ValueError:
            if number == len(complete) and not tail:
                tail = line
                break
            raise TrainingError(
                f"{path} line {number} is not JSON ({line[:60]!r}): delete that "
                "line (or the file) and resume."
            ) from None
    if tail.strip():
        try:
            records.append((tail, json.loads(tail)))
        except ValueError:
            warnings.warn(
                f"{path}: dropped a torn last line ({len(tail)} characters, left by "
                "an interrupted write); the steps it logged are trained again.",
                stacklevel=3,
            )
    # Re-serialised: bare NaN tokens of older files become null.
    kept = [
        json.dumps(_json_safe(r), allow_nan=False)
        for _, r in records
        if r.get("step", 0) <= last_step
    ]
    new_text = "".join(line + "\n" for line in kept)
    if new_text != text:
        tmp.write_text(new_text)
        tmp.replace(path)


def _check_period(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(
            f"{name} must be a positive whole number of steps, got {value!r}: pass "
            f"e.g. {name}=50."
        )


def _check_multiple(name: str, value: int, log_every: int, why: str) -> None:
    if value % log_every:
        suggestion = max(1, round(value / log_every)) * log_every
        raise ValueError(
            f"{name} ({value}) must be a multiple of log_every ({log_every}) {why}: "
            f"pass {name}={suggestion} or change log_every."
        )


def fit(
    *,
    workdir: str | Path,
    state: TrainState,
    train_step: Callable,
    batch_fn: Callable[[int], Any],
    num_steps: int,
    key: PRNGKey,
    eval_fn: Callable[[Params], dict[str, float]] | None = None,
    eval_every: int = 500,
    log_every: int = 50,
    checkpoint_every: int = 500,
    max_consecutive_skipped: int = 100,
    progress_metric: Callable[[dict[str, float]], dict[str, float]] | None = None,
    description: str = "train",
    snapshot_steps: Sequence[int] = (),
) -> TrainState:
    """Runs (or resumes) training up to ``num_steps`` steps.

    Args:
        workdir: run directory; writes ``metrics.jsonl`` and ``checkpoints/``.
        state: the initial state (used when no checkpoint exists, and as the
            structure to restore into). Consumed: the train step donates its
            buffers, so use the returned state, not this one.
        train_step: from :func:`make_train_step`.
        batch_fn: ``step -> batch``; must be a pure function of the step.
        num_steps: total steps of the run (not additional ones).
        key: the run's PRNG key.
        eval_fn: ``params -> {"val_loss": ..., ...}``; the state with the lowest
            finite ``val_loss`` is kept as the "best" checkpoint (a NaN or inf
            loss never is).
        eval_every, log_every, checkpoint_every: periods in steps, positive;
            ``eval_every`` and ``checkpoint_every`` multiples of ``log_every``
            (a resumed run then logs exactly what an uninterrupted one does).
        max_consecutive_skipped: stop after this many consecutive non-finite
            (skipped) steps. Checked at each logging step, so the run stops at the
            first logging step at which the streak reaches it.
        progress_metric: maps the logged metrics to what the progress bar shows.
        description: progress-bar label.
        snapshot_steps: after each of these steps the params are also saved to
            ``workdir/snapshots/<step>`` (:func:`jaxood.checkpoint.save_params`):
            the model at several lengths of training from one run, for studies of
            how a result moves with training time. Kept when the run resumes; one
            at the step a run resumes from is written then if missing (a finished
            run extended to more steps).

    Returns:
        The final state. Non-finite steps are skipped and counted in
        ``state.num_skipped`` (also logged). ``metrics.jsonl`` is valid JSON
        lines: non-finite values are written as null.

    Raises:
        ValueError: a period is not a positive integer or not a multiple of
            ``log_every``.
        TrainingError: ``max_consecutive_skipped`` consecutive steps were skipped;
            the state is saved as the latest checkpoint first.
        jaxood.checkpoint.CheckpointError: the checkpoint to resume from is
            corrupt or of another model configuration.
    """
    for name, value in (
        ("log_every", log_every),
        ("checkpoint_every", checkpoint_every),
        ("eval_every", eval_every),
        ("max_consecutive_skipped", max_consecutive_skipped),
    ):
        _check_period(name, value)
    if isinstance(num_steps, bool) or not isinstance(num_steps, int | np.integer):
        raise ValueError(f"num_steps must be an integer, got {num_steps!r}.")
    if num_steps < 0:
        raise ValueError(f"num_steps must be >= 0, got {num_steps}.")
    _check_multiple(
        "checkpoint_every",
        checkpoint_every,
        log_every,
        "so that a resumed run logs what an uninterrupted one does",
    )
    if eval_fn is not None:
        _check_multiple(
            "eval_every", eval_every, log_every, "(evaluation runs on logging steps)"
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    metrics_path = workdir / "metrics.jsonl"
    checkpoints = RunCheckpoints(workdir / "checkpoints")
    try:
        streak = 0  # consecutive skipped steps up to the current one
        if checkpoints.latest_step() is not None:
            state = TrainState(*checkpoints.restore_latest(state))
            state = jax.tree.map(jnp.asarray, state)
            streak = int(checkpoints.latest_info().get("consecutive_skipped", 0))
        start = int(state.step)
        snapshot_at_start = workdir / "snapshots" / str(start)
        if start in snapshot_steps and not snapshot_at_start.is_dir():
            # A run stopped between its checkpoint and its snapshot, or a finished
            # run extended to more steps: its start is a snapshot it has not kept.
            save_params(snapshot_at_start, state.params)
        # Lines logged after the state we (re)start from belong to lost work.
        _truncate_metrics(metrics_path, start)
        window: list[dict[str, float]] = []
        bar = tqdm(total=num_steps, initial=start, desc=description, dynamic_ncols=True)
        tic = time.perf_counter()
        for step in range(start, num_steps):
            state, metrics = train_step(state, batch_fn(step), key)
            window.append(metrics)
            done = step + 1
            stop = False
            if done % log_every == 0 or done == num_steps:
                # One host sync per logging step: the streak is counted here.
                for m in window:
                    streak = 0 if bool(m["finite"]) else streak + 1
                    stop = stop or streak >= max_consecutive_skipped
                record = {
                    k: float(np.mean([float(m[k]) for m in window])) for k in window[0]
                }
                record.update(
                    step=done,
                    num_skipped=int(state.num_skipped),
                    seconds_per_step=(time.perf_counter() - tic) / len(window),
                )
                window, tic = [], time.perf_counter()
                if eval_fn is not None and (
                    done % eval_every == 0 or done == num_steps
                ):
                    record.update(eval_fn(state.params))
                    val_loss = float(record["val_loss"])
                    if not checkpoints.save_best(done, state, val_loss):
                        if not math.isfinite(val_loss):
                            tqdm.write(
                                f"[{description}] step {done}: val_loss is "
                                f"{val_loss}; not a candidate for the best checkpoint."
                            )
                _append_jsonl(metrics_path, record)
                shown = progress_metric(record) if progress_metric else record
                bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in shown.items()}, refresh=False
                )
            if stop or done % checkpoint_every == 0 or done == num_steps:
                checkpoints.save_latest(done, state, {"consecutive_skipped": streak})
            if done in snapshot_steps:
                save_params(workdir / "snapshots" / str(done), state.params)
            bar.update(1)
            if stop:
                bar.close()
                raise TrainingError(
                    f"{streak} consecutive training steps (up to step {done}) were "
                    "skipped for a non-finite loss, gradient or update: lower the "
                    "learning rate, clip gradients, or check the data. The last "
                    f"finite state is saved in {checkpoints.directory / 'latest'}."
                )
        bar.close()
        return state
    finally:
        checkpoints.close()
