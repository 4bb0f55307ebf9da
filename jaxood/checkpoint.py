"""Checkpoints: the only module that touches orbax.

- :class:`RunCheckpoints`: the latest training state (for resume) and the best one on
  validation, each an orbax ``CheckpointManager`` keeping one step.
- :func:`save_params` / :func:`load_params`: a single params pytree, e.g. the small
  trained models the repository ships.

Every failure to find or read a checkpoint raises :class:`CheckpointError` naming the
path.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or does not match the expected structure."""


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _to_arrays(tree: Any) -> Any:
    # orbax restores numpy scalar leaves badly (docs/data.md): 0-d arrays only.
    return jax.tree.map(np.asarray, tree)


def _restore(checkpointer_restore, path: Path, target: Any) -> Any:
    try:
        if target is None:
            return checkpointer_restore(None)
        return checkpointer_restore(_abstract(_to_arrays(target)))
    except FileNotFoundError as err:
        raise CheckpointError(f"No checkpoint at {path}.") from err
    except Exception as err:  # orbax raises many types for unreadable data.
        raise CheckpointError(
            f"Could not restore the checkpoint at {path}: it is corrupt, incomplete, "
            f"or from a different model configuration ({type(err).__name__}: "
            f"{str(err)[:300]}). Delete it to start over."
        ) from err


def save_params(path: str | Path, params: Any) -> None:
    """Saves a pytree of arrays to ``path`` (a directory), replacing it atomically."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp, _to_arrays(params))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def load_params(path: str | Path, target: Any = None) -> Any:
    """Loads a pytree saved by :func:`save_params`.

    Args:
        path: the checkpoint directory.
        target: a pytree with the expected structure, shapes and dtypes (for example
            freshly initialised params); None restores whatever was saved.

    Raises:
        CheckpointError: missing, corrupt, or structurally different checkpoint.
    """
    path = Path(path).absolute()
    if not path.is_dir():
        raise CheckpointError(f"No checkpoint at {path} (directory not found).")
    with ocp.StandardCheckpointer() as checkpointer:
        return _restore(lambda t: checkpointer.restore(path, t), path, target)


class RunCheckpoints:
    """Latest and best-on-validation training states under ``directory``."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory).absolute()
        self.latest = ocp.CheckpointManager(
            self.directory / "latest",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1, enable_async_checkpointing=False
            ),
        )
        self.best = ocp.CheckpointManager(
            self.directory / "best",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=1,
                best_fn=lambda metrics: metrics["val_loss"],
                best_mode="min",
                keep_checkpoints_without_metrics=False,
                enable_async_checkpointing=False,
            ),
        )

    def save_latest(self, step: int, state: Any) -> None:
        self.latest.save(
            step, args=ocp.args.StandardSave(_to_arrays(state)), force=True
        )
        self.latest.wait_until_finished()

    def save_best(self, step: int, state: Any, val_loss: float) -> None:
        """Keeps ``state`` if ``val_loss`` is the lowest seen so far.

        A resumed run may evaluate a step again; that step's state is identical
        (training is deterministic), so an existing one is left as it is.
        """
        if step in self.best.all_steps():
            return
        self.best.save(
            step,
            args=ocp.args.StandardSave(_to_arrays(state)),
            metrics={"val_loss": float(val_loss)},
            force=True,
        )
        self.best.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.latest.latest_step()

    def _restore_from(self, manager, which: str, target: Any) -> Any:
        step = manager.best_step() if which == "best" else manager.latest_step()
        if step is None:
            raise CheckpointError(f"No {which} checkpoint in {manager.directory}.")
        path = Path(manager.directory) / str(step)
        return _restore(
            lambda t: manager.restore(step, args=ocp.args.StandardRestore(t)),
            path,
            target,
        )

    def restore_latest(self, target: Any) -> Any:
        return self._restore_from(self.latest, "latest", target)

    def restore_best(self, target: Any) -> Any:
        return self._restore_from(self.best, "best", target)

    def close(self) -> None:
        self.latest.close()
        self.best.close()
