"""Run directories: a model is never trained twice, a file never half-written.

A *stage* is one trained model in a directory of its own:

- ``config.json``: its fingerprint, a JSON-able description of everything that
  determines its params (architecture, data, steps, seed, optimizer);
- ``metrics.jsonl`` and ``checkpoints/`` while :func:`jaxood.train.fit` runs (an
  interrupted stage resumes from them), ``snapshots/<step>`` if asked for;
- ``final_params`` and ``summary.json`` once it is finished.

:func:`train_or_restore` returns a finished stage's params without training, resumes
an unfinished one, refuses a directory made with another fingerprint, and restores a
stage from other folders (shipped checkpoints ``<stage>/params``, other runs'
``<stage>/final_params``) whose ``config.json`` holds the same fingerprint
(:func:`ship_stage` writes the shipped layout). Outputs
computed from trained models are cached next to the key they were computed for
(:func:`cached_arrays`; :func:`is_cached` and :func:`mark_cached` for other files;
:func:`resumable_rows` for long per-example work that resumes batch by batch).
:func:`write_json` and :func:`save_arrays` write through a temporary file and a
rename; params through :func:`jaxood.checkpoint.save_params`, which checks them on
every restore.

Example::

    params = io.train_or_restore(
        Path("runs/mine/id"), {"steps": 2000, "lr": 1e-3}, template,
        lambda: io.fit_stage(Path("runs/mine/id"), init, loss, opt, batches, 2000,
                             key, evaluate),
        sources=["checkpoints/mine"],
    )
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxood import checkpoint, parallel, train

RESTORED_MARKER = "restored_from"

# Stages with equal optimizer settings and the same loss function share one jitted
# train step: compiled once per process, not once per stage (about 10 s each on
# 2 CPU cores for a small Glow). Equal arguments give the same optimizer object.
optimizer = functools.lru_cache(maxsize=16)(train.make_optimizer)
_train_step = functools.lru_cache(maxsize=16)(train.make_train_step)


def as_json(obj):
    """``obj`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


def write_json(path: Path, obj) -> None:
    """Writes ``obj`` as JSON through a temporary file: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` through a temporary file."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def is_cached(key_file: Path, key: dict, outputs: Sequence[Path]) -> bool:
    """True when ``outputs`` exist and were computed for ``key`` (JSON-equal)."""
    return (
        key_file.exists()
        and all(p.exists() for p in outputs)
        and json.loads(key_file.read_text()) == as_json(key)
    )


def mark_cached(key_file: Path, key: dict) -> None:
    """Records that the outputs next to ``key_file`` belong to ``key``; call it
    after writing them, so that an interruption leaves them uncached."""
    write_json(key_file, key)


def cached_arrays(
    path: Path, key_file: Path, key: dict, compute: Callable[[], dict]
) -> dict[str, np.ndarray]:
    """The arrays of ``path`` (.npz) if they were computed for ``key``, otherwise
    ``compute()`` written there (then ``key`` recorded in ``key_file``)."""
    if not is_cached(key_file, key, [path]):
        path.parent.mkdir(parents=True, exist_ok=True)
        save_arrays(path, compute())
        mark_cached(key_file, key)
    return dict(np.load(path))


INPUTS_FIELD = "__inputs__"  # resumable_rows: a hash of each row's input


def row_hashes(inputs: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each input row (which image a cached row belongs to)."""
    flat = np.ascontiguousarray(inputs).reshape(len(inputs), -1)
    return np.array(
        [int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest())
         for row in flat], np.uint64,
    )  # fmt: skip


def first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """For each row, the index of the first row with the same hash (its own when
    it is the first)."""
    first: dict[int, int] = {}
    return np.array(
        [first.setdefault(h, i) for i, h in enumerate(hashes.tolist())], np.int64
    )


def rows_key_file(path: Path) -> Path:
    """Where :func:`resumable_rows` records the key of the rows it saves at ``path``."""
    return path.with_name(path.stem + ".key.json")


def saved_rows(path: Path, key: dict, hashes: np.ndarray) -> dict | None:
    """The rows that :func:`resumable_rows` saved at ``path``, if they belong to
    ``key`` and to inputs whose hashes (:func:`row_hashes`) match ``hashes``
    prefix-wise: ``{name: rows}``, ``{}`` when nothing is saved for ``key``, None
    when the saved rows are of other inputs."""
    if not is_cached(rows_key_file(path), key, [path]):
        return {}
    return matching_rows(dict(np.load(path)), hashes)


def matching_rows(saved: dict[str, np.ndarray], hashes: np.ndarray) -> dict | None:
    """``saved`` (rows and their :data:`INPUTS_FIELD`) without the input hashes if
    they match ``hashes`` prefix-wise (either may be longer), else None."""
    done = dict(saved)
    inputs = done.pop(INPUTS_FIELD, np.zeros(0, np.uint64))
    common = min(len(inputs), len(hashes))
    if (
        len(inputs) != len(next(iter(done.values()), inputs))
        or (inputs[:common] != hashes[:common]).any()
    ):
        return None
    return done


def row_count(rows: dict[str, np.ndarray]) -> int:
    """How many rows ``{name: rows}`` holds (0 when empty)."""
    return len(next(iter(rows.values()), ()))


def write_rows(path: Path, key: dict, rows: dict, hashes: np.ndarray) -> None:
    """Writes ``rows`` as :func:`resumable_rows` saves them: the first
    ``len(hashes)`` of each name beside the hashes of their inputs, in an
    uncompressed .npz (a running job rewrites it often) through a temporary file,
    then ``key``."""
    count = len(hashes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **{k: v[:count] for k, v in rows.items()}, **{INPUTS_FIELD: hashes})
    tmp.replace(path)
    mark_cached(rows_key_file(path), key)


def resumable_rows(
    path: Path,
    key: dict,
    fn: Callable[[np.ndarray], dict],
    inputs: np.ndarray,
    batch_size: int,
    desc: str = "rows",
    save_every: float = 60.0,
) -> dict[str, np.ndarray]:
    """``fn(batch) -> {name: rows}`` over ``inputs`` in batches, the rows appended to
    ``path`` (.npz) at least every ``save_every`` seconds and at the end: an
    interrupted run resumes where it last saved and a later one with more inputs
    computes only the new rows (for work that takes hours, such as exact LID
    spectra; ``save_every=0`` saves after every batch).

    The rows belong to ``key`` (recorded in ``<path stem>.key.json``) and to their
    inputs (a hash of each is saved beside the rows): rows computed for another key,
    or for inputs that are not a prefix-wise match of these (another subset of a
    test set, another preprocessing), are discarded, not mixed with new ones.
    ``fn`` must give each row from its own input alone (resuming already cuts
    batches anywhere): identical inputs are computed once and their rows copied.

    Returns:
        The first ``len(inputs)`` rows of each name.
    """
    hashes = row_hashes(inputs)
    done = saved_rows(path, key, hashes)
    if done is None:
        print(f"{path}: rows of other inputs, recomputed.")
        done = {}
    start, n = row_count(done), len(inputs)
    if start >= n:
        return {k: v[:n] for k, v in done.items()}
    # Identical inputs are computed once (5,000 constant images hold at most 256
    # grey levels): row i is a copy of the row of the first input of its hash.
    source = first_occurrences(hashes)
    todo = np.flatnonzero(source == np.arange(n))
    todo = todo[todo >= start]
    batches = [todo[b : b + batch_size] for b in range(0, len(todo), batch_size)]

    if not batches:  # every new input repeats one whose row is saved
        rows = {k: v[source] for k, v in done.items()}
        write_rows(path, key, rows, hashes)
        return rows
    rows, filled, saved = None, start, time.monotonic()
    bar = tqdm(batches, desc=desc, disable=None)  # off without a terminal: then
    began, computed = saved, 0  # each save prints a line, for background runs
    for i, index in enumerate(bar):
        got = {k: np.asarray(v) for k, v in fn(inputs[index]).items()}
        if rows is None:
            rows = {k: np.empty((n, *v.shape[1:]), v.dtype) for k, v in got.items()}
            for k, v in done.items():
                rows[k][:start] = v
        for k, v in got.items():
            rows[k][index] = v
        computed += len(index)
        ready = batches[i + 1][0] if i + 1 < len(batches) else n
        copies = np.arange(filled, ready)
        copies = copies[source[copies] != copies]
        for v in rows.values():
            v[copies] = v[source[copies]]
        filled = ready
        if filled == n or time.monotonic() - saved >= save_every:
            write_rows(path, key, rows, hashes[:filled])
            saved = time.monotonic()
            if bar.disable:
                rate = computed / max(saved - began, 1e-9)
                left = (len(todo) - computed) / rate
                print(f"{desc}: {filled}/{n} rows saved ({rate:.2f} computed/s, "
                      f"{duration(left)} left)", flush=True)  # fmt: skip
    return rows


def duration(seconds: float) -> str:
    """``seconds`` as "2 h 05 min", "7 min" or "40 s" (for progress lines)."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _holds(stage: Path, fingerprint: dict) -> bool:
    info = stage / "config.json"
    return info.is_file() and json.loads(info.read_text()) == as_json(fingerprint)


def check_fingerprint(stage: Path, fingerprint: dict) -> None:
    """Raises ``RuntimeError`` when ``stage/config.json`` records another one."""
    if not _holds(stage, fingerprint):
        raise RuntimeError(
            f"{stage} was trained with another configuration. Use another "
            "run directory, or delete that one to train again."
        )


def _check_unfinished(stage: Path, fingerprint: dict) -> None:
    """Refuses to resume checkpoints that a training of another fingerprint left."""
    checkpoints = stage / "checkpoints"
    if (
        (stage / "config.json").is_file()
        and not _holds(stage, fingerprint)
        and checkpoints.is_dir()
        and any(checkpoints.iterdir())
    ):
        raise RuntimeError(
            f"{stage} holds an unfinished training of another configuration: "
            "resuming its checkpoints would mix the two. Delete that folder to train "
            "again; to continue it on purpose under the new configuration (more "
            "steps, say), delete its config.json."
        )


def find_source(sources: Sequence[str | Path], name: str, fingerprint: dict):
    """The first ``source/name`` folder trained with ``fingerprint``, or None.

    Empty entries of ``sources`` are skipped; a folder with another fingerprint is
    reported and skipped."""
    for source in filter(None, sources):
        folder = Path(source) / name
        if _holds(folder, fingerprint):
            return folder
        if (folder / "config.json").is_file():
            print(f"[{name}] {folder} holds another configuration: not restored.")
    return None


def is_available(stage: Path, fingerprint: dict, sources: Sequence = ()) -> bool:
    """Whether :func:`train_or_restore` would find the stage instead of training:
    finished in ``stage`` with this fingerprint, or restorable from ``sources``."""
    if (stage / "final_params").is_dir() and _holds(stage, fingerprint):
        return True
    return find_source(sources, stage.name, fingerprint) is not None


def train_or_restore(
    stage: Path,
    fingerprint: dict,
    template,
    train_fn: Callable[[], tuple[object, dict]],
    sources: Sequence[str | Path] = (),
):
    """The params of one stage: finished here, restored, or trained now.

    Args:
        stage: the stage directory.
        fingerprint: JSON-able description of everything that determines the params.
        template: a params pytree of the right structure and dtypes (restoring).
        train_fn: trains in ``stage`` (resuming) and returns ``(params, summary)``.
        sources: folders to restore a matching stage ``<source>/<stage name>`` from.
            A stage restored earlier is trained for real once ``sources`` is empty.

    Returns:
        The params: numpy leaves, or replicated over the mesh set with
        ``jax.set_mesh``.

    Raises:
        RuntimeError: ``stage`` holds a stage of another fingerprint trained there,
            finished or not (a restored copy of another fingerprint is replaced
            instead).
        jaxood.checkpoint.CheckpointError: a checkpoint is corrupt or of another
            structure than ``template``.
    """
    mesh = parallel.current_mesh()
    place = (
        (lambda p: p) if mesh is None else functools.partial(parallel.replicate, mesh)
    )
    final, marker = stage / "final_params", stage / RESTORED_MARKER

    def drop_restored_copy(why: str) -> None:  # nothing was trained here
        print(
            f"[{stage.name}] the copy restored from {marker.read_text().strip()} {why}."
        )
        shutil.rmtree(final)
        shutil.rmtree(stage / "snapshots", ignore_errors=True)  # the source's too
        marker.unlink()

    if final.is_dir() and marker.exists() and not _holds(stage, fingerprint):
        # A copy of a checkpoint whose configuration has changed since (a newer
        # shipped model): replaced, not refused.
        drop_restored_copy("holds another configuration: replacing it")
    if final.is_dir():
        check_fingerprint(stage, fingerprint)
        if not (marker.exists() and not any(sources)):
            return place(checkpoint.load_params(final, template))
        drop_restored_copy("is replaced by a training")
    source = find_source(sources, stage.name, fingerprint)
    if source is not None:
        print(f"[{stage.name}] restoring {source}")
        shipped = source / "params"
        params = checkpoint.load_params(
            shipped if shipped.is_dir() else source / "final_params", template
        )
        stage.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "summary.json", stage / "summary.json")
        if (source / "snapshots").is_dir():  # params at earlier steps, if shipped
            shutil.rmtree(stage / "snapshots", ignore_errors=True)
            shutil.copytree(source / "snapshots", stage / "snapshots")
        write_json(stage / "config.json", fingerprint)
        marker.write_text(f"{_shown(source)}\n")  # relative: survives a moved checkout
    else:
        _check_unfinished(stage, fingerprint)
        write_json(stage / "config.json", fingerprint)
        params, summary = train_fn()
        write_json(stage / "summary.json", summary)
    checkpoint.save_params(final, params)
    return place(params)


def ship_stage(stage: Path, dest: Path) -> int:
    """Copies a finished stage into the layout :func:`train_or_restore` restores
    from (``dest/params``, ``config.json``, ``summary.json``, ``snapshots/`` if
    any), replacing ``dest``; returns its size in bytes.

    Raises:
        ValueError: ``stage`` is not finished (names the missing files).
    """
    needed = ("final_params", "config.json", "summary.json")
    missing = [name for name in needed if not (stage / name).exists()]
    if missing:
        raise ValueError(f"{stage} is not finished (missing {missing}).")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copytree(stage / "final_params", dest / "params")
    for name in ("config.json", "summary.json"):
        shutil.copy(stage / name, dest / name)
    if (stage / "snapshots").is_dir():  # the params at earlier steps
        shutil.copytree(stage / "snapshots", dest / "snapshots")
    return sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())


def snapshots(stage: Path) -> list[int]:
    """The steps of a stage's params snapshots (``<stage>/snapshots/<step>``)."""
    folder = stage / "snapshots"
    names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    return sorted(int(n) for n in names if n.isdigit())


def _shown(path: Path) -> Path:
    """``path`` relative to the working directory when inside it, else as given."""
    here = Path.cwd()
    inside = path.is_absolute() and path.is_relative_to(here)
    return path.relative_to(here) if inside else path


def stage_summary(stage: Path) -> dict:
    """``summary.json`` of a finished stage, plus ``restored_from`` (the folder,
    relative to the working directory when inside it) if it was restored."""
    summary = json.loads((stage / "summary.json").read_text())
    marker = stage / RESTORED_MARKER
    if marker.exists():
        summary["restored_from"] = str(_shown(Path(marker.read_text().strip())))
    return summary


def fit_stage(
    stage: Path,
    init_params,
    loss_fn,
    optimizer,
    batch_fn,
    num_steps: int,
    key,
    eval_fn,
    *,
    eval_every: int = 500,
    log_every: int = 50,
    checkpoint_every: int = 500,
    select: str = "best",
    description: str = "",
    export: Callable[[train.TrainState], object] = lambda state: state.params,
    snapshot_steps: Sequence[int] = (),
) -> tuple[object, dict]:
    """:func:`jaxood.train.fit` in ``stage``, then the params to keep and a summary.

    Args:
        select: ``"best"`` (the state of lowest validation loss) or ``"final"``.
        export: reads the params to keep from a state (a parameter average:
            ``train.ema_params(state.opt_state)``).
        The others: as :func:`jaxood.train.fit`.

    Returns:
        ``(params, summary)``; the summary has the steps, the selected step, the
        number of skipped steps and the training time read from ``metrics.jsonl``.
    """
    state = train.fit(
        workdir=stage,
        state=train.init_state(init_params, optimizer),
        train_step=_train_step(loss_fn, optimizer, mesh=parallel.current_mesh()),
        batch_fn=batch_fn,
        num_steps=num_steps,
        key=key,
        eval_fn=eval_fn,
        eval_every=eval_every,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        progress_metric=lambda r: {
            k: r[k] for k in ("loss", "bpd", "val_loss", "val_bpd") if k in r
        },
        description=description or stage.name,
        snapshot_steps=tuple(snapshot_steps),
    )
    params, step = export(state), num_steps
    if select == "best":
        checkpoints = checkpoint.RunCheckpoints(stage / "checkpoints")
        try:
            best = train.TrainState(*checkpoints.restore_best(state))
            params, step = export(best), checkpoints.best_step()
        finally:
            checkpoints.close()
    summary = {
        "steps": num_steps,
        "selected": select,
        "selected_step": step,
        "num_skipped": int(state.num_skipped),
        "train_seconds": train_seconds(stage),
    }
    return jax.tree.map(jnp.asarray, params), summary


def restore_or_fit(
    stage: Path,
    fingerprint: dict,
    template,
    init_fn: Callable[[], object],
    loss_fn,
    optimizer,
    batch_fn,
    num_steps: int,
    key,
    eval_fn,
    *,
    sources: Sequence[str | Path] = (),
    final_metrics: Callable[[object], dict] | None = None,
    **options,
):
    """One model in its run directory: finished there, restored from ``sources``,
    or trained now (resuming an interrupted run) by :func:`fit_stage`.

    Args:
        init_fn: gives the starting params; called only when the stage trains (a
            data-dependent init is a pass over images that a restore skips).
        final_metrics: metrics of the kept params added to ``summary.json``
            (default ``eval_fn``).
        options: those of :func:`fit_stage` (``select``, ``eval_every``, ...).
        The others: as :func:`train_or_restore` and :func:`fit_stage`.

    Returns:
        The params, as :func:`train_or_restore`.
    """

    def train_fn():
        params, summary = fit_stage(stage, init_fn(), loss_fn, optimizer, batch_fn,
                                    num_steps, key, eval_fn, **options)  # fmt: skip
        return params, summary | (final_metrics or eval_fn)(params)

    return train_or_restore(stage, fingerprint, template, train_fn, sources)


def train_seconds(stage: Path) -> float:
    """Training time from ``metrics.jsonl`` (seconds per step × steps logged)."""
    path = stage / "metrics.jsonl"
    if not path.exists():
        return 0.0
    total, previous = 0.0, 0
    for line in filter(str.strip, path.read_text().splitlines()):
        record = json.loads(line)
        total += record["seconds_per_step"] * (record["step"] - previous)
        previous = record["step"]
    return total
