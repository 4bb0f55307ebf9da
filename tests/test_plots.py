"""jaxood.plots: each figure is written as a PNG; malformed input is refused."""

import json

import numpy as np
import pytest

from jaxood import plots


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_roc_and_histograms_tolerates_non_finite_scores(tmp_path):
    rng = np.random.default_rng(0)
    s_in, s_out = rng.normal(size=200), rng.normal(1.0, size=100)
    s_out[:3] = [np.inf, np.nan, -np.inf]
    path = tmp_path / "scores.png"
    plots.roc_and_histograms({"a": (s_in, {"far": s_out}), "b": (s_in, {})}, path)
    assert _is_png(path)


def test_image_grid_grey_and_colour_and_bad_shapes(tmp_path):
    for channels in (1, 3):
        images = np.zeros((10, 8, 8, channels), np.uint8)
        plots.image_grid(images, tmp_path / f"grid{channels}.png", "t", columns=4)
        assert _is_png(tmp_path / f"grid{channels}.png")
    with pytest.raises(ValueError, match="N, H, W"):
        plots.image_grid(np.zeros((4, 8, 8)), tmp_path / "bad.png")


def test_training_curves_names_restored_stages(tmp_path):
    trained = tmp_path / "id"
    trained.mkdir()
    records = [{"step": 10, "bpd": 4.0}, {"step": 20, "bpd": 3.5, "val_bpd": 3.6}]
    trained.joinpath("metrics.jsonl").write_text(
        "\n".join(json.dumps(r) for r in records)
    )
    stages = {"id": trained, "general": tmp_path / "general"}  # no metrics: restored
    plots.training_curves(stages, "bpd", tmp_path / "training.png")
    assert _is_png(tmp_path / "training.png")


def test_auroc_heatmap_checks_its_labels(tmp_path):
    plots.auroc_heatmap(np.eye(2), ["x", "y"], ["p", "q"], tmp_path / "h.png")
    assert _is_png(tmp_path / "h.png")
    with pytest.raises(ValueError, match="rows"):
        plots.auroc_heatmap(np.eye(2), ["x"], ["p", "q"], tmp_path / "h.png")


def test_line_panels_draw_every_series_as_asked(tmp_path, monkeypatch):
    drawn = {}
    monkeypatch.setattr(plots, "save", lambda fig, path: drawn.update(fig=fig))
    x = np.arange(5.0)
    plots.line_panels(
        [
            {"series": {"a": (x, x**2, np.ones(5)), "b": (x, -x)}, "xscale": "log",
             "ylim": (0, 1), "vline": 2.0, "title": "curves"},
            {"series": {"c": (x, x), "d": (x, x)}, "scatter": True,
             "xlabel": "log p"},
            {"series": {}},
        ],
        tmp_path / "unused.png",
    )  # fmt: skip
    curves, points, empty = drawn["fig"].axes
    assert curves.get_title() == "curves" and curves.get_xscale() == "log"
    assert curves.get_ylim() == (0, 1) and len(curves.containers) == 2  # errorbars
    assert [t.get_text() for t in curves.get_legend().get_texts()] == ["a", "b"]
    assert any(list(line.get_xdata()) == [2.0, 2.0] for line in curves.lines)
    assert len(points.collections) == 2 and points.get_xlabel() == "log p"
    c, d = points.collections  # the first series (the ID set) drawn on top
    assert c.get_zorder() > d.get_zorder()
    assert empty.get_legend() is None
    monkeypatch.undo()
    plots.line_panels([{"series": {"a": (x, x)}}], tmp_path / "one.png")
    assert _is_png(tmp_path / "one.png")
