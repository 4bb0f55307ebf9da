"""The LID pipeline's cache of rows, shared between run directories."""

from experiments import lid_pipeline


def test_seeded_rows_are_copied_once_and_never_over_a_runs_own(tmp_path, capsys):
    source, out = tmp_path / "a" / "lid", tmp_path / "b" / "lid"
    source.mkdir(parents=True), out.mkdir(parents=True)
    cached = ["id_test.npz", "id_test.key.json", "lidl_id_test.npz",
              "lidl_id_test.key.json", "id_test_log_p.npz", "id_test_log_p_key.json",
              "validation.npz", "validation.key.json", "ood_mnist_5k.npz",
              "ood_mnist_5k.key.json"]  # fmt: skip
    for name in cached:
        (source / name).write_text("a")
    (out / "validation.npz").write_text("b")  # the run's own: kept
    names = ["validation", "id_test", "ood/animal_mnist"]
    copied = lid_pipeline.seed_rows(out, source, names)
    assert copied == ["id_test", "lidl_id_test", "id_test_log_p"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*cached[:6], "validation.npz"]
    )
    assert (out / "validation.npz").read_text() == "b"
    assert lid_pipeline.seed_rows(out, source, names) == []  # nothing twice
    # No such run: a warning, and the run computes its rows itself.
    assert lid_pipeline.seed_rows(out, tmp_path / "c" / "lid", names) == []
    assert "WARNING lid.rows_from: no LID cache" in capsys.readouterr().out
