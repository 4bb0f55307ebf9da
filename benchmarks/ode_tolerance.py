"""Probability-flow ODE likelihood: error and cost against the solver's settings, on
the shipped Fashion-MNIST diffusion model (D = 784).

    JAXOOD_DATA_DIR=$PWD/data PYTHONPATH=. .venv/bin/python -m benchmarks.ode_tolerance

For each start time t (the model's t_min = 1e-5, where bits/dim are defined, and
t = 0.01, the detectors' time) and each solver setting, log p_t(y) of the first
``images`` test images of Fashion-MNIST and of MNIST-5k, against a reference solve
from the same t at tolerance 1e-5. Every solve uses the same key, so the one
Rademacher probe per image is the same in all of them and the differences are the
solver's alone. Reported per setting: accepted steps (the cost: each is 6 or 7
score evaluations for Tsit5, 2 for Heun, 1 for Euler), the largest per-image error
in nats/dim, the mean error per set in bits/dim, and Spearman's ρ with the
reference over both sets (what a detector's AUROC depends on). The settings the
experiment uses (``experiments/configs/diffusion_fmnist.py``) are marked.
``--quick`` runs 2 images per set on a random model and writes nothing. Writes
``benchmarks/results/ode_tolerance.json`` and regenerates ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import jax
import numpy as np
from scipy import stats

from benchmarks import readme
from benchmarks.flipd_speed import diffusion_header, shipped_diffusion
from experiments.configs import diffusion_fmnist
from jaxood import data, diffusion

SETS = ("fashion_mnist", "mnist_5k")
REFERENCE_TOLERANCE = 1e-5
# (start time or None for the model's t_min, solver, tolerance or number of steps)
SETTINGS = (
    (None, "tsit5", 1e-4),
    (None, "tsit5", 1e-3),
    (0.01, "tsit5", 1e-4),
    (0.01, "tsit5", 1e-3),
    (0.01, "tsit5", 1e-2),
    (0.01, "heun", 25),
    (0.01, "euler", 25),
    (0.01, "euler", 100),
)


def _log_prob(model, params, y, key, t_min, solver, setting):
    """log p_{t_min}(y) (nats) and the accepted steps of one solver setting."""
    options = {"num_steps": setting} if solver in ("heun", "euler") else {
        "rtol": setting, "atol": setting}  # fmt: skip
    out = diffusion.ode_log_prob_batch(
        diffusion.score_function(model, params), y, key, sde=model.sde,
        t_min=t_min, num_probes=1, solver=solver, **options,
    )  # fmt: skip
    return np.asarray(out.log_prob), np.asarray(out.num_steps)


def _compare(log_p, reference, steps, names, num_dims) -> dict:
    """Errors of ``log_p`` against ``reference`` (both ``(N,)`` nats, images of the
    sets ``names`` in order)."""
    error = (log_p - reference) / num_dims  # nats/dim, positive: too likely
    per_set = {
        s: float(-error[names == s].mean() / math.log(2)) for s in dict.fromkeys(names)
    }
    return {
        "steps": [int(steps.min()), int(steps.max())],
        "max_abs_error_nats_per_dim": float(np.abs(error).max()),
        "mean_error_bits_per_dim": per_set,  # bits/dim = −nats/dim / ln 2
        "spearman": float(stats.spearmanr(log_p, reference).statistic),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ode_tolerance")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--images", type=int, default=16, help="per set")
    args = parser.parse_args(argv)
    count = 2 if args.quick else args.images
    tic, load = time.perf_counter(), [os.getloadavg()[0]]
    model, params = shipped_diffusion(args.quick)
    y = diffusion.to_diffusion_space(
        np.concatenate([data.load(s, "test")[:count] for s in SETS])
    )
    names = np.repeat(SETS, count)
    num_dims, key = int(np.prod(y.shape[1:])), jax.random.key(1)
    t_model = model.config.t_min
    references, rows = {}, []
    for t_min, solver, setting in SETTINGS:
        t = t_model if t_min is None else t_min
        if t not in references:
            log_p, steps = _log_prob(
                model, params, y, key, t, "tsit5", REFERENCE_TOLERANCE
            )
            references[t] = log_p, [int(steps.min()), int(steps.max())]
        log_p, steps = _log_prob(model, params, y, key, t, solver, setting)
        rows.append(
            {"t_min": t, "solver": solver, "setting": setting}
            | _compare(log_p, references[t][0], steps, names, num_dims)
        )
    load.append(os.getloadavg()[0])
    score = diffusion_fmnist.get_config("").score
    result = {
        **diffusion_header(args.quick),
        "images_per_set": count,
        "sets": list(SETS),
        "reference": {
            str(t): {"tolerance": REFERENCE_TOLERANCE, "steps": steps}
            for t, (_, steps) in references.items()
        },
        "rows": rows,
        "experiment": {
            "likelihood": [score.likelihood_time, score.ode_tolerance],
            "bits_per_dim": [t_model, score.bpd_tolerance],
        },
        "load_average": load,
        "total_seconds": time.perf_counter() - tic,
        "quick": args.quick,
    }
    readme.publish("ode_tolerance", result, readme.ode_tolerance_section)


if __name__ == "__main__":
    main()
