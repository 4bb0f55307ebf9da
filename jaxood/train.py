"""Training: optimizer factory, one jitted step with a non-finite guard, and a loop.

The loop is deterministic given its seed: batch b of epoch e is a fixed permutation
of the data (``numpy`` seeded by ``(seed, e)``) and the step's randomness is
``fold_in(key, step)``, so an interrupted run resumed from its latest checkpoint ends
with exactly the params of an uninterrupted one.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxood.checkpoint import RunCheckpoints
from jaxood.typing import Array, Params, PRNGKey

# loss_fn(params, batch, key) -> (scalar loss, dict of scalar metrics)
LossFn = Callable[[Params, Any, PRNGKey], tuple[Array, dict[str, Array]]]


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree; checkpointed whole)."""

    params: Params
    opt_state: Any
    step: Array  # int32 ()
    num_skipped: Array  # int32 (), steps dropped for non-finite loss or gradients


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
    return jnp.stack(leaves).all()


def make_train_step(
    loss_fn: LossFn, optimizer: optax.GradientTransformation
) -> Callable[[TrainState, Any, PRNGKey], tuple[TrainState, dict[str, Array]]]:
    """One jitted optimisation step; steps with non-finite loss or gradient are skipped.

    The whole batch is skipped (the reference also retries without the non-finite
    examples when enough remain; not done here: the step is counted instead).

    The returned ``step(state, batch, key)`` folds ``state.step`` into ``key``, so the
    caller passes the same run key every time. It donates ``state`` (argument 0):
    the new state reuses its buffers, so parameters and optimizer moments are not
    held twice; the state passed in is invalid afterwards (``state, m = step(state,
    ...)``). Every backend jax supports donates, XLA:CPU included (checked on jax
    0.10.2: no "donated buffers were not usable" warning, the old buffers deleted).
    """

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state: TrainState, batch: Any, key: PRNGKey):
        step_key = jax.random.fold_in(key, state.step)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, step_key
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        finite = jnp.isfinite(loss) & _all_finite(grads)
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

    return step


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


def _append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drops lines logged after the checkpoint we resume from."""
    if not path.exists():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= last_step
    ]
    path.write_text("".join(line + "\n" for line in kept))


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
    progress_metric: Callable[[dict[str, float]], dict[str, float]] | None = None,
    description: str = "train",
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
        eval_fn: ``params -> {"val_loss": ..., ...}``; the best ``val_loss`` state
            is kept as the "best" checkpoint.
        eval_every, log_every, checkpoint_every: periods in steps.
        progress_metric: maps the logged metrics to what the progress bar shows.
        description: progress-bar label.

    Returns:
        The final state. Non-finite steps are skipped and counted in
        ``state.num_skipped`` (also logged).
    """
    if eval_every % log_every:
        raise ValueError(f"eval_every ({eval_every}) must be a multiple of log_every.")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    metrics_path = workdir / "metrics.jsonl"
    checkpoints = RunCheckpoints(workdir / "checkpoints")
    try:
        if checkpoints.latest_step() is not None:
            state = TrainState(*checkpoints.restore_latest(state))
            state = jax.tree.map(jnp.asarray, state)
        start = int(state.step)
        # Lines logged after the state we (re)start from belong to lost work.
        _truncate_metrics(metrics_path, start)
        window: list[dict[str, float]] = []
        bar = tqdm(total=num_steps, initial=start, desc=description, dynamic_ncols=True)
        tic = time.perf_counter()
        for step in range(start, num_steps):
            state, metrics = train_step(state, batch_fn(step), key)
            window.append(metrics)
            done = step + 1
            if done % log_every == 0 or done == num_steps:
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
                    checkpoints.save_best(done, state, record["val_loss"])
                _append_jsonl(metrics_path, record)
                shown = progress_metric(record) if progress_metric else record
                bar.set_postfix(
                    {k: f"{v:.3f}" for k, v in shown.items()}, refresh=False
                )
            if done % checkpoint_every == 0 or done == num_steps:
                checkpoints.save_latest(done, state)
            bar.update(1)
        bar.close()
        return state
    finally:
        checkpoints.close()
