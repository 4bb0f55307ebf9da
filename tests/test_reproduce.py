"""An experiment killed mid-way (``kill -9``) and started again finishes without
redoing finished models (``--mode train``: scoring and the report after training
are tested in test_experiments, as is a run that finds everything done)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOW_STAGES = ("general", "id", "id_outlier", "background", "ensemble_0", "ensemble_1")
pytestmark = pytest.mark.slow


def _start(workdir: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "experiments.main",
        "--config",
        "experiments/configs/glow_fmnist.py:smoke",
        "--workdir",
        str(workdir),
        "--mode",
        "train",
    ]
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _snapshot(workdir: Path) -> dict[str, tuple[str, float]]:
    """metrics.jsonl text and final_params time of every finished stage."""
    out = {}
    for final in workdir.rglob("final_params"):
        metrics = final.parent / "metrics.jsonl"
        text = metrics.read_text() if metrics.exists() else ""
        out[final.parent.name] = (text, final.stat().st_mtime)
    return out


def test_interrupted_run_finishes_without_redoing_stages(tmp_path, data_dir):
    del data_dir  # prepared offline data
    workdir = tmp_path / "glow_fmnist"
    first = _start(workdir, tmp_path / "first.log")
    # Kill it (as a power cut would) once the general model is finished and the
    # next stages are under way.
    deadline = time.monotonic() + 600
    while not (workdir / "general" / "final_params").is_dir():
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the general stage never finished"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    before = _snapshot(workdir)
    assert "general" in before and set(FLOW_STAGES) - set(before)

    second = _start(workdir, tmp_path / "second.log")
    assert second.wait(timeout=1200) == 0, (tmp_path / "second.log").read_text()[-3000:]
    after = _snapshot(workdir)
    for stage, state in before.items():  # nothing finished was trained again
        assert after[stage] == state, stage
    assert set(FLOW_STAGES) <= set(after)
