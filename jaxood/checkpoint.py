"""Checkpoints: the only module that touches orbax.

- :class:`RunCheckpoints`: the latest training state (for resume) and the best one on
  validation, each kept as one step directory.
- :func:`save_params` / :func:`load_params`: a single params pytree, e.g. the small
  trained models the repository ships.

Integrity. Every checkpoint directory this module writes holds ``INTEGRITY.json``,
written after the orbax data and before the directory is renamed into place: the
size and SHA-256 of every file, plus a digest of the record itself. Every restore
checks, in this order, that (1) the files match their checksums, (2) the stored
tree has the target's leaf paths, shapes and dtypes, (3) orbax reads it, and (4)
every leaf is finite. Any failure is one :class:`CheckpointError` naming the path
and what to do. Checking the bytes before orbax reads them also keeps orbax from
failing half-way through its parallel reads, which closes its event loop under
tensorstore's pending callbacks (dozens of "Event loop is closed" tracebacks).

Checkpoints without ``INTEGRITY.json`` were written before this record existed:
they are restored with a warning after checks (2) to (4). To seal a checkpoint you
trust (this is how the shipped ``experiments/checkpoints/*/*/params`` were sealed)::

    python -m jaxood.checkpoint seal PATH [PATH ...]

and ``python -m jaxood.checkpoint verify PATH [PATH ...]`` runs every check.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from jaxood import parallel

__all__ = [
    "INTEGRITY_FILE",
    "CheckpointError",
    "RunCheckpoints",
    "load_params",
    "save_params",
    "seal",
    "verify",
]

INTEGRITY_FILE = "INTEGRITY.json"
_FORMAT = "jaxood-checkpoint-integrity-1"
# Orbax writes into "<name>.orbax-checkpoint-tmp-<n>" and renames; we write into
# "<name>.tmp" and rename. Either, left by a killed process, is removed on sight.
_TMP_MARKERS = (".tmp", ".orbax-checkpoint-tmp")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the expected structure."""


# --------------------------------------------------------------------------- files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_integrity(directory: Path, info: dict | None = None) -> None:
    """Records the checksum of every file under ``directory`` (after its data)."""
    files = {
        str(f.relative_to(directory)): {"size": f.stat().st_size, "sha256": _sha256(f)}
        for f in sorted(directory.rglob("*"))
        if f.is_file() and f.name != INTEGRITY_FILE
    }
    record = {"format": _FORMAT, "files": files, "info": info or {}}
    record["digest"] = _record_digest(record)
    path = directory / INTEGRITY_FILE
    with path.open("w") as f:
        json.dump(record, f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    _fsync(directory)


def _read_integrity(directory: Path, shown: Path) -> dict | None:
    """The integrity record of ``directory``; None for a checkpoint that predates it."""
    path = directory / INTEGRITY_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        valid = record.get("format") == _FORMAT and record.get(
            "digest"
        ) == _record_digest(record)
    except (ValueError, UnicodeDecodeError, AttributeError):
        valid = False
    if not valid:
        raise CheckpointError(
            f"Checkpoint {shown} is corrupt: its {INTEGRITY_FILE} is unreadable or "
            f"altered. {_ADVICE}"
        )
    return record


_ADVICE = (
    "Replace it with a good copy (for the shipped checkpoints: git checkout -- "
    "experiments/checkpoints), or delete it: training then starts again."
)


def _verify_files(directory: Path, record: dict, shown: Path) -> None:
    for name, expected in record["files"].items():
        f = directory / name
        problem = None
        if not f.is_file():
            problem = "is missing"
        elif f.stat().st_size != expected["size"]:
            problem = (
                f"has {f.stat().st_size} bytes, {expected['size']} when saved "
                "(truncated or overwritten)"
            )
        elif _sha256(f) != expected["sha256"]:
            problem = "does not match its checksum (garbled or overwritten)"
        if problem:
            raise CheckpointError(
                f"Checkpoint {shown} is corrupt: its file {name} {problem}. {_ADVICE}"
            )


def _remove_tmp(directory: Path, name: str | None = None) -> None:
    """Removes what a killed writer left in ``directory`` (for ``name`` only, if
    given): nothing half-written survives the next open or save."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        if name is not None and not entry.name.startswith(name + "."):
            continue
        if any(marker in entry.name for marker in _TMP_MARKERS):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


# -------------------------------------------------------------------------- pytrees


def _to_arrays(tree: Any) -> Any:
    # orbax restores numpy scalar leaves badly (docs/data.md): 0-d arrays only.
    return jax.tree.map(np.asarray, tree)


def _as_target(tree: Any) -> Any:
    # Shape-only targets (``jax.eval_shape`` of an init) are accepted as they are.
    return jax.tree.map(
        lambda x: x if isinstance(x, jax.ShapeDtypeStruct) else np.asarray(x), tree
    )


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def _leaf_specs(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{"a/b/0": (shape, dtype)}``: NamedTuple fields and dict keys alike (orbax
    stores a NamedTuple as a dict of its fields)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(_key_name(k) for k in path): (tuple(leaf.shape), str(leaf.dtype))
        for path, leaf in leaves
    }


def _check_structure(directory: Path, target: Any, shown: Path) -> None:
    """Refuses a checkpoint whose leaves differ from ``target``'s (orbax would
    silently return the stored shapes: another architecture would run)."""
    try:
        # The handler, not a Checkpointer: older layouts lack the step metadata
        # file a Checkpointer looks for (and logs about).
        handler = ocp.StandardCheckpointHandler()
        try:
            stored_tree = handler.metadata(directory).tree
        finally:
            handler.close()
        stored = _leaf_specs(stored_tree)
    except Exception as err:  # orbax raises many types for unreadable metadata.
        raise CheckpointError(
            f"Could not read the structure of checkpoint {shown} "
            f"({type(err).__name__}: {str(err)[:200]}). {_ADVICE}"
        ) from None
    expected = _leaf_specs(target)
    hint = (
        "It was saved from another model configuration (hidden size, steps per "
        "scale, ...): build the model with the checkpoint's configuration, or use "
        "another checkpoint or work directory."
    )
    for path, (shape, dtype) in expected.items():
        if path not in stored:
            raise CheckpointError(
                f"Checkpoint {shown} has no leaf {path} (the model has one of shape "
                f"{shape}). {hint}"
            )
        if stored[path][0] != shape:
            raise CheckpointError(
                f"Checkpoint {shown} does not fit the model: leaf {path} has shape "
                f"{stored[path][0]} in the checkpoint, {shape} in the model. {hint}"
            )
        if stored[path][1] != dtype:
            raise CheckpointError(
                f"Checkpoint {shown} does not fit the model: leaf {path} has dtype "
                f"{stored[path][1]} in the checkpoint, {dtype} in the model. {hint}"
            )
    extra = sorted(set(stored) - set(expected))
    if extra:
        raise CheckpointError(
            f"Checkpoint {shown} has leaves the model lacks ({len(extra)}, first "
            f"{extra[0]} of shape {stored[extra[0]][0]}). {hint}"
        )


def _check_finite(tree: Any, shown: Path) -> None:
    bad = [
        path
        for path, leaf in _flat(tree)
        if jnp.issubdtype(leaf.dtype, jnp.inexact) and not np.isfinite(leaf).all()
    ]
    if bad:
        raise CheckpointError(
            f"Checkpoint {shown} holds non-finite values in {len(bad)} leaves (first: "
            f"{bad[0]}): it is corrupt or was saved from a diverged state. {_ADVICE}"
        )


def _flat(tree: Any) -> list[tuple[str, np.ndarray]]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [
        ("/".join(_key_name(k) for k in path), np.asarray(leaf))
        for path, leaf in leaves
    ]


def _restore_dir(directory: Path, target: Any, shown: Path | None = None) -> Any:
    """Checks and restores the orbax checkpoint in ``directory`` (see the module
    docstring for the order of the checks)."""
    shown = shown or directory
    if not directory.is_dir():
        raise CheckpointError(f"No checkpoint at {shown} (directory not found).")
    record = _read_integrity(directory, shown)
    if record is None:
        warnings.warn(
            f"Checkpoint {shown} has no {INTEGRITY_FILE} (written before checksums "
            "existed): restored after structure and finiteness checks only. If you "
            f"trust it: python -m jaxood.checkpoint seal {directory}",
            stacklevel=3,
        )
    else:
        _verify_files(directory, record, shown)
    if target is not None:
        target = _as_target(target)
        _check_structure(directory, target, shown)
    try:
        # Host arrays, whatever mesh is set (orbax cannot place onto the abstract
        # mesh that jax.set_mesh leaves in context); callers place them.
        with (
            parallel.outside_mesh_context(),
            ocp.Checkpointer(ocp.StandardCheckpointHandler()) as checkpointer,
        ):
            # Shapes and dtypes only: a target made under a mesh (or by eval_shape
            # there) would carry a sharding orbax cannot place onto.
            abstract = (
                None
                if target is None
                else jax.tree.map(
                    lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), target
                )
            )
            restored = checkpointer.restore(directory, abstract)
    except Exception as err:  # orbax raises many types for unreadable data.
        raise CheckpointError(
            f"Could not restore checkpoint {shown}: it is corrupt or incomplete "
            f"({type(err).__name__}: {str(err)[:300]}). {_ADVICE}"
        ) from err
    _check_finite(restored, shown)
    return restored


def _save_dir(directory: Path, tree: Any, info: dict | None = None) -> None:
    """Writes ``tree`` and its integrity record to ``directory``, which must not
    exist: callers write to a temporary name and rename it into place."""
    with (
        parallel.outside_mesh_context(),
        ocp.Checkpointer(ocp.StandardCheckpointHandler()) as checkpointer,
    ):
        checkpointer.save(directory, _to_arrays(tree))
    _write_integrity(directory, info)


# ----------------------------------------------------------------------- params


def save_params(path: str | Path, params: Any) -> None:
    """Saves a pytree of arrays to ``path`` (a directory), replacing it atomically.

    The data and its ``INTEGRITY.json`` are written under ``<path>.tmp`` and renamed
    into place, so ``path`` is either the old checkpoint or the complete new one.
    """
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_tmp(path.parent, path.name)
    tmp = path.with_name(path.name + ".tmp")
    _save_dir(tmp, params)
    if path.exists():
        old = path.with_name(path.name + ".old.tmp")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
    _fsync(path.parent)


def load_params(path: str | Path, target: Any = None) -> Any:
    """Loads a pytree saved by :func:`save_params`, checked (module docstring).

    Args:
        path: the checkpoint directory.
        target: a pytree with the expected structure, shapes and dtypes (for example
            freshly initialised params, or their ``jax.eval_shape``); None restores
            whatever was saved.

    Returns:
        The pytree, numpy leaves, with ``target``'s structure when given.

    Raises:
        CheckpointError: missing, corrupt (checksum, unreadable, non-finite) or of
            another structure, shape or dtype than ``target``.
    """
    path = Path(path).absolute()
    return _restore_dir(path, target)


def seal(path: str | Path) -> None:
    """Writes ``INTEGRITY.json`` for an existing checkpoint you trust.

    The checkpoint is restored and checked to be finite first; its orbax files are
    not changed. A checkpoint that already has a record is verified, not resealed.
    """
    path = Path(path).absolute()
    if (path / INTEGRITY_FILE).exists():
        verify(path)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "no INTEGRITY.json" warning.
        _restore_dir(path, None)
    _write_integrity(path)


def verify(path: str | Path) -> None:
    """Runs every check of a restore on ``path``; raises :class:`CheckpointError`."""
    _restore_dir(Path(path).absolute(), None)


# ---------------------------------------------------------------------- training


def _steps(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted(
        int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()
    )


def _payload(step_dir: Path) -> Path:
    # Checkpoints written by orbax's CheckpointManager (before INTEGRITY.json)
    # keep their data in "<step>/default".
    # (our step directories hold the orbax files themselves, never "default/").
    legacy = step_dir / "default"
    return legacy if (legacy / "_METADATA").exists() else step_dir


class RunCheckpoints:
    """Latest and best-on-validation training states under ``directory``.

    Each lives in ``latest/<step>`` and ``best/<step>``: written as ``<step>.tmp``
    (orbax data, then ``INTEGRITY.json`` with the step's ``info``) and renamed, then
    the older steps are deleted. A process killed at any point leaves either the old
    or the new step complete (both, if killed between the rename and the deletion:
    the highest latest step and the lowest best loss win).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).absolute()
        for which in ("latest", "best"):
            _remove_tmp(self.directory / which)

    def _save(self, which: str, step: int, state: Any, info: dict) -> None:
        folder = self.directory / which
        folder.mkdir(parents=True, exist_ok=True)
        _remove_tmp(folder)
        tmp, final = folder / f"{step}.tmp", folder / str(step)
        _save_dir(tmp, state, {"step": int(step), **info})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(folder)
        for other in _steps(folder):
            if other != step:
                shutil.rmtree(folder / str(other))

    def save_latest(self, step: int, state: Any, info: dict | None = None) -> None:
        """Saves ``state`` as the latest; ``info`` (JSON) is read back with
        :meth:`latest_info`."""
        self._save("latest", step, state, dict(info or {}))

    def save_best(self, step: int, state: Any, val_loss: float) -> bool:
        """Keeps ``state`` if ``val_loss`` is finite and lower than the best so far.

        A non-finite loss is never kept and never replaces a finite best. A resumed
        run may evaluate a step again; its loss is then equal (training is
        deterministic), so the existing checkpoint is left as it is.

        Returns:
            Whether ``state`` became the best.
        """
        val_loss = float(val_loss)
        if not math.isfinite(val_loss):
            return False
        best = self.best_record()
        if best is not None and not val_loss < best["val_loss"]:
            return False
        self._save("best", step, state, {"val_loss": val_loss})
        return True

    def latest_step(self) -> int | None:
        steps = _steps(self.directory / "latest")
        return steps[-1] if steps else None

    def latest_info(self) -> dict:
        """The ``info`` saved with the latest step (empty for older checkpoints)."""
        step = self.latest_step()
        if step is None:
            return {}
        step_dir = self.directory / "latest" / str(step)
        record = _read_integrity(step_dir, step_dir)
        return record["info"] if record else {}

    def best_record(self) -> dict | None:
        """``{"step", "val_loss"}`` of the best state, None before any finite one."""
        records = []
        for step in _steps(self.directory / "best"):
            step_dir = self.directory / "best" / str(step)
            record = _read_integrity(step_dir, step_dir)
            if record is not None:
                loss = record["info"].get("val_loss")
            else:  # orbax CheckpointManager layout: "<step>/metrics/metrics".
                try:
                    metrics = json.loads((step_dir / "metrics" / "metrics").read_text())
                    loss = float(metrics["val_loss"])
                except (OSError, ValueError, KeyError, TypeError):
                    loss = None
            if loss is not None and math.isfinite(loss):
                records.append({"step": step, "val_loss": float(loss)})
        return min(records, key=lambda r: (r["val_loss"], r["step"]), default=None)

    def best_step(self) -> int | None:
        record = self.best_record()
        return None if record is None else record["step"]

    def restore_latest(self, target: Any) -> Any:
        """The latest state, with ``target``'s structure (checked; see module doc)."""
        step = self.latest_step()
        if step is None:
            raise CheckpointError(
                f"No latest checkpoint in {self.directory / 'latest'}."
            )
        step_dir = self.directory / "latest" / str(step)
        return _restore_dir(_payload(step_dir), target, step_dir)

    def restore_best(self, target: Any) -> Any:
        """The best state on validation, with ``target``'s structure.

        Raises:
            CheckpointError: no finite validation loss was ever recorded, or the
                checkpoint fails its checks.
        """
        step = self.best_step()
        if step is None:
            raise CheckpointError(
                f"No best checkpoint in {self.directory / 'best'}: no evaluation "
                "recorded a finite val_loss (see metrics.jsonl; training diverged or "
                "never evaluated). Fix the divergence, or use the final state."
            )
        step_dir = self.directory / "best" / str(step)
        return _restore_dir(_payload(step_dir), target, step_dir)

    def close(self) -> None:
        """Nothing to release (kept so callers can close in ``finally``)."""


def _main(argv: list[str]) -> int:
    commands = {"seal": seal, "verify": verify}
    if len(argv) < 2 or argv[0] not in commands:
        print("usage: python -m jaxood.checkpoint {seal,verify} PATH [PATH ...]")
        return 2
    for path in argv[1:]:
        try:
            commands[argv[0]](path)
        except CheckpointError as err:
            print(f"FAILED {err}")
            return 1
        print(f"ok {path}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
