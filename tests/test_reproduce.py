"""``make reproduce`` killed mid-way and started again finishes without redoing runs.

The flow step (six trainings, scoring, report) and the tables on the smoke configs;
the LID and VAE steps reuse their run directories the same way and are tested for it
in ``test_experiments.py`` (a second call recomputes nothing).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOW_STAGES = ("general", "id", "id_outlier", "background", "ensemble_0", "ensemble_1")


def _start(runs: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "experiments.reproduce", "--variant", "smoke"]
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*command, "--steps", "flow,tables", "--runs", str(runs)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _snapshot(runs: Path) -> dict[str, tuple[str, float]]:
    """metrics.jsonl text and final_params time of every finished training run."""
    out = {}
    for final in runs.rglob("final_params"):
        metrics = final.parent / "metrics.jsonl"
        text = metrics.read_text() if metrics.exists() else ""
        out[str(final.parent.relative_to(runs))] = (text, final.stat().st_mtime)
    return out


def test_interrupted_reproduce_finishes_without_redoing_runs(tmp_path, data_dir):
    del data_dir  # prepared offline data
    runs = tmp_path / "runs"
    first = _start(runs, tmp_path / "first.log")
    # Kill it (as a power cut would) once the flow's general model is finished and
    # the next stages are under way.
    deadline = time.monotonic() + 600
    while not (runs / "glow_fmnist" / "general" / "final_params").is_dir():
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the general stage never finished"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = _snapshot(runs)
    assert "glow_fmnist/general" in before
    assert not (runs / "glow_fmnist" / "results.json").exists()

    second = _start(runs, tmp_path / "second.log")
    assert second.wait(timeout=1200) == 0, (tmp_path / "second.log").read_text()[-3000:]
    after = _snapshot(runs)
    for run, state in before.items():  # nothing finished was trained again
        assert after[run] == state, run
    for stage in FLOW_STAGES:
        assert f"glow_fmnist/{stage}" in after
    assert (runs / "glow_fmnist" / "results.json").is_file()
    tables = (runs / "EXPERIMENTS.md").read_text()
    assert "Groups of 5" in tables and "ren_llr" in tables and "waic" in tables

    # A third run finds everything done: no training, the flow scores reused.
    third = _start(runs, tmp_path / "third.log")
    assert third.wait(timeout=600) == 0
    assert _snapshot(runs) == after
    assert "up to date: reusing them" in (tmp_path / "third.log").read_text()
