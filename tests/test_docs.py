"""The README's Quickstart runs as printed, and the repository stands alone."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def quickstart() -> str:
    text = (ROOT / "README.md").read_text().split("## Quickstart", 1)[1]
    return re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)


@pytest.mark.slow
def test_quickstart_runs_verbatim(data_dir, tmp_path):
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart())
    env = {**os.environ, "JAXOOD_DATA_DIR": str(data_dir)}
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "bits/dim" in out.stdout and "step 2:" in out.stdout
    auroc = float(re.search(r"-log p\(x\) ([0-9.]+)", out.stdout).group(1))
    assert auroc < 0.5  # the likelihood paradox, on the shipped model


def test_no_file_points_outside_the_repository():
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    private = "sha" + "red"  # the developers' notes, spelled so this file passes
    pattern = re.compile(
        rf"\.\./{private}|{private}/specs|{private}/DESIGN|methods\.md"
    )
    offenders = [
        name
        for name in tracked
        if name.endswith((".py", ".md", ".txt", ".toml", "Makefile"))
        and (ROOT / name).is_file()
        and pattern.search((ROOT / name).read_text(errors="ignore"))
    ]
    assert offenders == []


def test_the_benchmarks_readme_is_generated_from_its_results():
    """benchmarks/README.md is what benchmarks/readme.py renders from the committed
    results: nobody edited it by hand, and no result file is left out."""
    from benchmarks import readme

    assert (readme.HERE / "README.md").read_text() == readme.render()


def test_every_relative_link_in_the_docs_resolves():
    """To a file or folder of a clean checkout (not an ignored local file)."""
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    present = {Path(n) for n in tracked} | {p for n in tracked for p in Path(n).parents}
    broken = []
    for name in [n for n in tracked if n.endswith(".md")]:
        for target in re.findall(r"\]\(([^)\s]+)\)", (ROOT / name).read_text()):
            path = target.split("#")[0]
            if not path or ":" in path:  # an anchor here, a URL, mailto:
                continue
            resolved = os.path.normpath(Path(name).parent / path)
            if Path(resolved) not in present:
                broken.append(f"{name}: {target}")
    assert broken == []


def test_the_readme_pytest_command_needs_no_pythonpath():
    """The README's inner loop calls the virtualenv's ``pytest`` script, not
    ``python -m pytest`` (which puts the working directory on sys.path): the test
    files that import ``experiments`` must still be collected."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pytest_script = Path(sys.executable).parent / "pytest"
    if not pytest_script.exists():
        pytest.skip(f"no pytest script beside {sys.executable}")
    command = [str(pytest_script), "--collect-only", "-q", "-n", "0",
               "-p", "no:cacheprovider", "tests/test_lid_pipeline.py"]  # fmt: skip
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
