"""``make reproduce``: train what is missing, score every detector, regenerate tables.

    python -m experiments.reproduce [--runs runs] [--variant default|smoke]

Steps, each skipping what its run directory already holds (finished trainings are
never redone, an interrupted one resumes from its last checkpoint, cached scores are
reused while their configuration is unchanged), so an interrupted reproduction is
finished by running the same command again:

1. Glow on Fashion-MNIST (``runs/glow_fmnist``): the general, ID and outlier-loss
   models, Ren et al.'s background model and the WAIC ensemble, trained here (the
   shipped checkpoints of ``make run`` are not used); every point-wise and group
   detector scored; report with plots.
2. LID + likelihood dual threshold on that Glow (``runs/glow_fmnist/lid``).
3. The VAEs on Fashion-MNIST and MNIST-5k (``runs/vae_ood``).
4. ``experiments/README.md`` and the README's headline table, from the results files.

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
STEPS = ("flow", "lid", "vae", "tables")


def _step(title: str):
    print(f"\n=== {title} ===", flush=True)
    return time.monotonic()


def run(runs: Path, variant: str = "default", steps=STEPS) -> None:
    if variant not in LID_COUNTS:
        raise SystemExit(f"--variant must be one of {sorted(LID_COUNTS)}.")
    unknown = set(steps) - set(STEPS)
    if unknown:
        raise SystemExit(f"Unknown steps {sorted(unknown)}; choose from {STEPS}.")
    start = time.monotonic()
    glow_dir = runs / "glow_fmnist"
    glow_dir.mkdir(parents=True, exist_ok=True)
    if "flow" in steps:
        _flow(glow_dir, variant)
    if "lid" in steps:
        t = _step("2/4 LID + likelihood dual threshold")
        num_eval, num_calibration, num_validation, num_lidl = LID_COUNTS[variant]
        lid_pipeline.run(
            glow_dir, num_eval, num_calibration, num_validation, variant, num_lidl
        )
        print(f"({(time.monotonic() - t) / 60:.1f} min)")
    if "vae" in steps:
        t = _step("3/4 VAEs on Fashion-MNIST and MNIST-5k")
        vae_pipeline.run(vae_ood.get_config(variant), runs / "vae_ood")
        print(f"({(time.monotonic() - t) / 60:.1f} min)")
    if "tables" in steps:
        _step("4/4 Tables")
        _tables(runs, variant)
    print(f"\nDone in {(time.monotonic() - start) / 60:.1f} min.")


def _flow(glow_dir: Path, variant: str) -> None:
    t = _step("1/4 Glow on Fashion-MNIST: train (resuming) and score")
    config = glow_fmnist.get_config(variant)
    config.checkpoints = ""  # train here, do not restore make run's checkpoints
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
    args = parser.parse_args(argv)
    run(Path(args.runs), args.variant, tuple(args.steps.split(",")))


if __name__ == "__main__":
    cli()
