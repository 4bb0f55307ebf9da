"""Copies a finished run's stage params into the checkpoints that ``make run`` restores.

    python -m experiments.ship --run runs/glow_fmnist \
        --to experiments/checkpoints/glow_fmnist [--stages background]

Shipped by default: the general, ID and outlier-loss models and Ren et al.'s
background model (1.2 MB each at the default size), so that ``make run`` scores the
background ratio without training; the WAIC ensemble (five more models) is left to
``make reproduce``. Any other finished stage ships with ``--stages``, e.g. the
diffusion model's parameter average::

    python -m experiments.ship --run runs/diffusion_fmnist/fashion_mnist \
        --to experiments/checkpoints/diffusion_fmnist --stages score_model

Each stage gets ``params/`` (orbax), ``config.json`` (the fingerprint that must match
for a restore), ``summary.json`` (steps, validation bits/dim, training time) and the
stage's ``snapshots/`` (params at earlier steps) if it has them.

With ``--lid-rows``, the rows a LID run cached (spectra, log p, LIDL) instead, in
the compact form of :mod:`experiments.lid_rows`; a later run starts from them with
``--config.lid.rows_from``::

    python -m experiments.ship --run runs/glow_fmnist_spline_animal_5000 \
        --to experiments/lid_rows/glow_fmnist_spline --lid-rows
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from experiments import lid_rows
from experiments.flow_pipeline import STAGES
from experiments.lid_pipeline import SWEEP
from jaxood import io, lid

SHIPPED_STAGES = (*STAGES, "background")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m experiments.ship")
    parser.add_argument("--run", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument(
        "--stages",
        default=",".join(SHIPPED_STAGES),
        help="comma-separated; re-shipping an unchanged stage rewrites its binary "
        "files, so name only the stages that changed",
    )
    parser.add_argument(
        "--lid-rows",
        action="store_true",
        help="ship the rows the run's LID cached (only those --to lacks), not params",
    )
    args = parser.parse_args(argv)
    run, target, stages = Path(args.run), Path(args.to), args.stages.split(",")
    if args.lid_rows:
        if not (run / "lid").is_dir():
            raise SystemExit(f"{run / 'lid'}: no LID rows (run it with --mode lid).")
        ship_lid_rows(run / "lid", target)
        return
    for stage in stages:  # final_params is written last: the stage is finished
        if not (run / stage / "final_params").is_dir():
            raise SystemExit(f"{run / stage} is not finished (no final_params).")
    for stage in stages:
        size = io.ship_stage(run / stage, target / stage)
        print(f"{target / stage}: {size / 1e6:.1f} MB")


def ship_lid_rows(run_lid: Path, target: Path) -> None:
    """Ships the rows of ``run_lid`` that ``target`` lacks, then reads every shipped
    spectrum back and prints how far it is from the run's own (float32) rows."""
    for part in lid_rows.ship(run_lid, target):
        print(f"{part}: {part.stat().st_size / 1e6:.2f} MB")
    for key_file in sorted(target.glob("*.key.json")):
        stem = key_file.name.removesuffix(".key.json")
        _, shipped = lid_rows.load(target, stem)
        cache = run_lid / f"{stem}.npz"
        if lid_rows.SPECTRUM not in shipped or not cache.exists():
            continue
        own = np.load(cache)[lid_rows.SPECTRUM][: len(shipped[lid_rows.SPECTRUM])]
        back = shipped[lid_rows.SPECTRUM][: len(own)]
        finite = ~np.isnan(own).any(axis=1)
        own, back = own[finite], back[finite]
        if not len(own):
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.nan_to_num(np.abs(np.log(own / back)), nan=0.0).max(initial=0.0)
        changed = np.asarray(lid.threshold_lid(own, SWEEP)) != np.asarray(
            lid.threshold_lid(back, SWEEP)
        )
        print(f"{stem}: {len(own):,} rows with a spectrum; log σ within {gap:.1e} "
              f"of the run's; threshold LID changed at {changed.mean():.3%} of "
              f"(image, log τ) pairs of the sweep, in {changed.any(axis=1).mean():.1%} "
              "of the images at one τ or more")  # fmt: skip


if __name__ == "__main__":
    main()
