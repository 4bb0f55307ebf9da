"""The generated blocks of the READMEs match the committed results files."""

import json
import re
import shlex
import shutil

import pytest

from experiments import figures, main, tables
from jaxood import plots


def test_generated_blocks_are_fresh():
    for path, new in tables.blocks().items():
        text = (tables.ROOT / path).read_text()
        assert tables.replace_blocks(text, new) == text, (
            f"{path} is stale against experiments/results/: run "
            "`python -m experiments.tables`"
        )
        # Every block in the README has its results file, and the other way round.
        assert set(re.findall(r"<!-- generated:(\w+) -->", text)) == set(new), path


def test_figures_are_fresh(tmp_path):
    plt = plots.pyplot()
    drawn = figures.write(out=tmp_path)
    assert [p.name for p in drawn] == ["lid_tau.png"]
    for path in drawn:  # pixels, not bytes: the PNG's metadata may differ
        committed = figures.FIGURES / path.name
        assert (plt.imread(path) == plt.imread(committed)).all(), (
            f"{committed} is stale against experiments/results/: run "
            "`python -m experiments.tables`"
        )
    assert figures.write(tmp_path / "no_results", tmp_path) == []


def test_every_block_names_its_command_and_results_file():
    for new in tables.blocks().values():
        for name, body in new.items():
            if name in tables.SOURCES:
                assert f"`{tables.SOURCES[name][1]}`" in body
                assert f"experiments/results/{name}.json" in body


def test_replace_blocks():
    text = "a\n<!-- generated:x -->\nold\n<!-- /generated:x -->\nb\n"
    assert tables.replace_blocks(text, {"x": "new"}) == text.replace("old", "new")
    with pytest.raises(ValueError, match="No generated block 'y'"):
        tables.replace_blocks(text, {"y": "new"})


def test_collect_copies_finished_runs_only(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    (runs / "vae_ood").mkdir(parents=True)
    results.mkdir()
    (runs / "vae_ood" / "results.json").write_text(json.dumps({"a": 1}))
    assert tables.collect(runs, results) == ["vae_ood"]
    assert json.loads((results / "vae_ood.json").read_text()) == {"a": 1}
    assert [p.name for p in results.iterdir()] == ["vae_ood.json"]  # no temp file


def test_collect_only_the_named_runs(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    for name in ("vae_ood", "glow_fmnist"):
        (runs / name).mkdir(parents=True)
        (runs / name / "results.json").write_text(json.dumps({"run": name}))
    results.mkdir()
    assert tables.collect(runs, results, only=["vae_ood"]) == ["vae_ood"]
    assert [p.name for p in results.iterdir()] == ["vae_ood.json"]
    with pytest.raises(ValueError, match="No published run.*'vae_odd'"):
        tables.collect(runs, results, only=["vae_odd"])
    # A run asked for by name but not finished is an error, not "nothing".
    with pytest.raises(FileNotFoundError, match="dose_fmnist/results.json"):
        tables.collect(runs, results, only=["vae_ood", "dose_fmnist"])
    assert tables.collect(runs, results) == ["glow_fmnist", "vae_ood"]  # all found


def test_only_a_run_with_a_block_is_collected(tmp_path, monkeypatch, capsys):
    # A name in the recipe whose README block is missing: refused before copying.
    monkeypatch.setitem(tables.SOURCES, "vae_new", ("vae_new/results.json", ""))
    with pytest.raises(SystemExit):
        tables.main(["--collect", str(tmp_path), "--only", "vae_new"])
    assert "has no block ['vae_new']" in capsys.readouterr().err


def test_general_sets_side_by_side(tmp_path):
    for name in ("glow_fmnist", "glow_mnist_5k"):
        text = (tables.RESULTS / f"{name}.json").read_text()
        (tmp_path / f"{name}.json").write_text(text)
    assert "general_sets" not in tables.blocks(tmp_path)["experiments/README.md"]
    shutil.copy(
        tmp_path / "glow_fmnist.json", tmp_path / "glow_fmnist_general_images.json"
    )
    block = tables.blocks(tmp_path)["experiments/README.md"]["general_sets"]
    rows = [line for line in block.splitlines() if line.startswith("| general_")]
    # FMNIST→MNIST-5k and →Animal for both, MNIST-5k→FMNIST for the photos only.
    assert len(rows) == 5
    assert rows[0].split(" | ")[3] == "FMNIST→mnist_5k"
    assert rows[0].split(" | ")[4:] == rows[3].split(" | ")[4:]  # the same results


def test_every_image_block_gathers_both_flows(tmp_path):
    affine, spline = (
        "glow_fmnist_general_images_5000_lid",
        "glow_fmnist_spline_5000_lid",
    )
    for name in (spline, affine):
        shutil.copy(tables.RESULTS / f"{name}.json", tmp_path)
    block = tables.blocks(tmp_path)["experiments/README.md"]["lid_every_image"]
    rows = [line.strip("| ").split(" | ") for line in block.splitlines() if "→" in line]
    files = {n: tmp_path / f"{n}.json" for n in tables.FLOW_OF}
    results = {n: json.loads(f.read_text()) for n, f in files.items() if f.exists()}
    expected = [(n, o) for n, r in results.items() for o in r["pairs"]]
    assert [r[1] for r in rows] == [f"FMNIST→{o}" for _, o in expected]  # affine first
    for row, (name, ood) in zip(rows, expected, strict=True):
        r = results[name]
        assert row[0].split(" (")[0] == tables.FLOW_OF[name]
        (widest,) = [v for t, v in r["fixed_tau"].items() if "widest" in t]
        cells = {4: r["pairs"][ood], 5: r["fixed_tau"]["-3"]["pairs"][ood],
                 6: widest["pairs"][ood]}  # fmt: skip
        for column, pair in cells.items():
            assert row[column].startswith(f"{pair['envelope_reported']:.3f} [")
        for column, key in ((3, "likelihood"), (7, "rank_and"), (8, "lid_only")):
            assert row[column].startswith(f"{r['pairs'][ood][key]['auroc']:.3f} [")
        best = r["tau_sweep"]["best"][ood]
        assert row[9] == f"{best['envelope']:.3f} ({best['log_tau']:.2f})"
    pending = block.split("Not run on every image yet: ")[1]
    assert spline not in pending and "glow_mnist_5k_spline_5000_lid" in pending
    # The top README names it below its table (calibrated / widest τ).
    for name in ("glow_fmnist", "glow_mnist_5k"):
        shutil.copy(tables.RESULTS / f"{name}.json", tmp_path)
    headline = tables.blocks(tmp_path)["README.md"]["headline"]
    cell = rows[-1][4].split(" [")[0] + " / " + rows[-1][6].split(" [")[0]
    assert headline.endswith(f"spline flow FMNIST → mnist_5k {cell}.")  # last pair


def test_every_results_file_has_its_command_in_make_reproduce():
    committed = {path.stem for path in tables.RESULTS.glob("*.json")}
    assert committed <= set(tables.SOURCES), committed - set(tables.SOURCES)
    # and every command of the recipe publishes a committed results file
    assert set(tables.SOURCES) <= committed, set(tables.SOURCES) - committed


def test_published_commands_drop_the_restore_switches(tmp_path):
    makefile = tmp_path / "Makefile"
    makefile.write_text(
        "x:\n\techo\n\nreproduce: data\n"
        "\t$(MAIN)/glow_fmnist.py --workdir runs/a $(SHIPPED)\n"
        "\t$(MAIN)/glow_fmnist.py:spline --workdir runs/b --mode lid $(FROM_RUNS)\n"
        "\t$(PY) -m experiments.tables --collect runs\n\nother:\n"
    )
    assert tables.published_commands(makefile) == {
        "a": ("a/results.json", f"{tables.MAIN}glow_fmnist.py --workdir runs/a"),
        "b_lid": ("b/lid/results.json",
                  f"{tables.MAIN}glow_fmnist.py:spline --workdir runs/b --mode lid"),
    }  # fmt: skip


def test_every_published_command_parses_through_the_entry_point():
    """Each table's command line, overrides included, is accepted by the one
    entry point as it stands (the locked config knows every field it sets)."""
    parsed = {}
    for name, (_, command) in tables.SOURCES.items():
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "experiments.main"], name
        parsed[name], workdir, mode = main.parse(["experiments.main", *argv[3:]])
        assert str(workdir) == f"runs/{name.removesuffix('_lid')}", name
        assert (mode == "lid") == name.endswith("_lid"), name
    flips = parsed["glow_fmnist_general_images_flips_lid"]  # overrides reach the config
    assert flips.lid.num_eval >= 1000 and tuple(flips.data.ood) == (
        "fashion_mnist_vflip:test", "fashion_mnist_inverted:test")  # fmt: skip
