"""``make reproduce``: train what is missing, score every detector, regenerate tables.

    python -m experiments.reproduce [--runs runs] [--variant default|smoke] [--shipped]

Steps, each skipping what its run directory already holds (finished trainings are
never redone, an interrupted one resumes from its last checkpoint, cached scores are
reused while their configuration is unchanged), so an interrupted reproduction is
finished by running the same command again:

1. ``flow``: Glow on Fashion-MNIST (``runs/glow_fmnist``): the general, ID and
   outlier-loss models, Ren et al.'s background model and the WAIC ensemble, trained
   here; every point-wise and group detector scored; report with plots. The shipped
   checkpoints of ``make run`` are not used unless ``--shipped`` is given: then the
   general, ID, outlier-loss and background models are restored from them (they
   were trained by this step with the same configuration) and only the rest is
   trained, which saves over an hour on 2 CPU cores.
2. ``flow_mnist``: the same with MNIST-5k in-distribution (``runs/glow_mnist_5k``),
   reusing step 1's general model.
3. ``lid``: LID + likelihood dual threshold on step 1's Glow (``runs/glow_fmnist/lid``).
4. ``vae``: the VAEs on Fashion-MNIST and MNIST-5k (``runs/vae_ood``).
5. ``tables``: ``experiments/README.md`` and the README's headline table.

``--variant smoke`` runs the same steps on the smoke configurations (for tests) and
writes the tables next to the runs instead of into the repository; ``--steps`` picks
some of the steps (default: all).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from experiments import flow_pipeline, lid_pipeline, main, tables, vae_pipeline
from experiments.configs import glow_fmnist, vae_ood

# LID sample sizes: (evaluation images per set, calibration, validation, LIDL sweeps).
LID_COUNTS = {"default": (128, 48, 128, 16), "smoke": (3, 4, 3, 2)}
STEPS = ("flow", "flow_mnist", "lid", "vae", "tables")


def _step(title: str):
    print(f"\n=== {title} ===", flush=True)
    return time.monotonic()


def run(
    runs: Path, variant: str = "default", steps=STEPS, shipped: bool = False
) -> None:
    if variant not in LID_COUNTS:
        raise SystemExit(f"--variant must be one of {sorted(LID_COUNTS)}.")
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise SystemExit(f"Unknown steps {sorted(unknown)}; choose from {STEPS}.")
    start = time.monotonic()
    glow_dir = runs / "glow_fmnist"
    glow_dir.mkdir(parents=True, exist_ok=True)
    if "flow" in steps:
        config = glow_fmnist.get_config(variant)
        restore = config.checkpoints if shipped else ""
        _flow(glow_dir, config, "1/5 Glow on Fashion-MNIST", restore_from=restore)
    if "flow_mnist" in steps:
        config = glow_fmnist.get_config(
            "mnist_5k" if variant == "default" else "mnist_5k_smoke"
        )
        # The general model does not depend on the ID data: step 1's is restored.
        _flow(
            runs / "glow_mnist_5k",
            config,
            "2/5 Glow on MNIST-5k",
            restore_from=str(glow_dir.resolve()),
        )
    if "lid" in steps:
        t = _step("3/5 LID + likelihood dual threshold")
        num_eval, num_calibration, num_validation, num_lidl = LID_COUNTS[variant]
        lid_pipeline.run(
            glow_dir, num_eval, num_calibration, num_validation, variant, num_lidl
        )
        print(f"({(time.monotonic() - t) / 60:.1f} min)")
    if "vae" in steps:
        t = _step("4/5 VAEs on Fashion-MNIST and MNIST-5k")
        vae_pipeline.run(vae_ood.get_config(variant), runs / "vae_ood")
        print(f"({(time.monotonic() - t) / 60:.1f} min)")
    if "tables" in steps:
        _step("5/5 Tables")
        _tables(runs, variant)
    print(f"\nDone in {(time.monotonic() - start) / 60:.1f} min.")


def _flow(glow_dir: Path, config, title: str, restore_from: str) -> None:
    """Trains (resuming) and scores one Glow setting; writes its report.

    ``restore_from``: a run directory or shipped-checkpoint folder whose stages with
    a matching fingerprint are restored instead of trained ("" = none).
    """
    t = _step(f"{title}: train (resuming) and score")
    glow_dir.mkdir(parents=True, exist_ok=True)
    config.checkpoints = restore_from
    config.train_baseline_models = True
    config.command = "make reproduce"
    (glow_dir / "config.json").write_text(config.to_json_best_effort(indent=2))
    sets = flow_pipeline.load_sets(config)
    params = flow_pipeline.train_all(config, glow_dir, sets)
    flow_pipeline.score_all(config, glow_dir, sets, params)
    print(main.write_report(config, glow_dir, sets, params))
    print(f"({(time.monotonic() - t) / 60:.1f} min)")


def _tables(runs: Path, variant: str) -> None:
    if variant == "default":
        tables.main(["--runs", str(runs)])
        return
    # Never overwrite the repository's READMEs with smoke numbers.
    tables.main(
        [
            "--runs",
            str(runs),
            "--experiments-readme",
            str(runs / "EXPERIMENTS.md"),
            "--readme",
            str(runs / "README.md"),
        ]
    )


def cli(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.reproduce")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--variant", default="default", choices=sorted(LID_COUNTS))
    parser.add_argument(
        "--steps", default=",".join(STEPS), help=f"comma-separated, from {STEPS}"
    )
    parser.add_argument(
        "--shipped",
        action="store_true",
        help="restore the shipped Fashion-MNIST checkpoints (general, id, "
        "id_outlier, background) where their configuration matches instead of "
        "training them",
    )
    args = parser.parse_args(argv)
    run(Path(args.runs), args.variant, tuple(args.steps.split(",")), args.shipped)


if __name__ == "__main__":
    cli()
