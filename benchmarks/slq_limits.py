"""How much work stochastic Lanczos quadrature needs for the accuracy bars of the SLQ
benchmark, and so the largest speed-up over the exact path it could ever reach.

    JAXOOD_DATA_DIR=$PWD/data PYTHONPATH=. .venv/bin/python -m benchmarks.slq_limits \\
        [--quick]

``benchmarks/lid_speed.py`` times a few SLQ settings on the flow itself and finds
none both accurate and fast. This script asks the question behind it without the
flow's cost per step. A Lanczos run of m steps on JᵀJ = V diag(σ²) Vᵀ from a probe
v builds the same tridiagonal matrix, so the same quadrature, as a run on diag(σ²)
from Vᵀv: the SLQ estimate depends on the spectrum and on the probes' coordinates
in the eigenbasis only. With an image's exact SVD J = U diag(σ) Vᵀ
(``lid.flow_spectra(vectors=True)``), ``lid.slq`` on the stand-in decoder
z ↦ σ ⊙ (Vᵀz) (inverse x ↦ V(x / σ)), at the same z0 and key, is the flow's own SLQ
estimate, up to float32 rounding (checked below against ``lid.flow_slq``), at a
dense d×d product per step instead of a JVP and a VJP through the flow. That lets
the sweep go far past the settings that the flow's own runs can afford:

1. The error of the mean LID (50 thresholds ℓ = log τ, 50 LIDL scales δ, as in
   ``lid_speed``: at the typical point, where the exact mean LID is D/6, and the
   worst over the grid) for every probes × steps setting, on the 16 test images of
   the trained Fashion-MNIST Glow (D = 1,024) and 16 of a random-init RGB Glow
   (D = 3,072). Work counted as ``lid.flow_slq`` spends it: 2 sides × (P + 1) runs
   × m steps × (one JVP + one VJP). The smallest work that meets the 2 % bars bounds
   the speed-up from above by D / work, even if a step cost no more than one of the
   exact path's batched JVPs (it costs more on these cores: see ``lid_speed``).
2. What matters for OOD: on the 500 + 500 images and 128 validation images of
   ``lid_speed``'s AUROC part (same keys, so its 4 × 40 row is the measured SLQ
   row), the LID-only, envelope and rank-AND AUROCs of FMNIST test vs MNIST-5k at
   the calibrated τ for several settings, against exact LID (goal: within 0.01).

Writes ``benchmarks/results/slq_limits.json`` and regenerates ``benchmarks/README.md``
(``--quick``: tiny sizes, prints, writes nothing; ``--only {1024,3072,auroc}``
re-measures one part and merges it into the existing results).

References: Ubaru, Chen & Saad, "Fast Estimation of tr(f(A)) via Stochastic Lanczos
Quadrature", SIAM J. Matrix Anal. Appl. 2017.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import lid_speed, readme
from jaxood import flows, lid

FULL = dict(
    mean_images={1024: 16, 3072: 16},
    # (probes, steps): every m of a doubling ladder for each P, up to a work of
    # 4 × D at D = 1,024 and 0.4 × D at D = 3,072 (the 20× goal allows 0.05 × D).
    probes=(1, 2, 4, 8, 16),
    steps=(8, 16, 32, 64, 128, 256),
    max_work={1024: 4096, 3072: 1280},
    # and the settings lid_speed times on the flow itself, whatever their work
    timed={1024: ((4, 40), (8, 80), (4, 120)), 3072: ((4, 40), (8, 80))},
    batch={1024: 4, 3072: 2},
    auroc_images=500,
    auroc_validation=128,
    auroc_settings=((4, 40), (16, 40), (4, 160), (8, 80), (16, 160)),
    check_setting=(4, 40),
    arch=lid_speed.FULL["arch"],
)
QUICK = dict(
    mean_images={1024: 2, 3072: 1},
    probes=(1, 2),
    steps=(8, 16),
    max_work={1024: 4096, 3072: 1280},
    timed={1024: ((2, 4),), 3072: ()},
    batch={1024: 2, 3072: 1},
    auroc_images=8,
    auroc_validation=8,
    auroc_settings=((2, 8),),
    check_setting=(2, 8),
    arch=lid_speed.QUICK["arch"],
)
BAR = 0.02  # the error of the mean that lid_speed's goals allow
AUROC_BAR = 0.01
work = readme.slq_work  # JVPs + VJPs per image of a (probes, steps) setting
BATCH = 8  # images per lid.flow_slq call of lid_speed's AUROC part (its key layout)


@functools.partial(jax.jit, static_argnames=("num_probes", "num_steps"))
def standin_slq(singular_values, right_vectors, z0, keys, *, num_probes, num_steps):
    """``lid.slq`` of z ↦ σ ⊙ (Vᵀz) per image: the flow's SLQ at a cheaper step.

    Args:
        singular_values: ``(B, d)`` σ of each image's decoder Jacobian.
        right_vectors: ``(B, d, d)`` rows of Vᵀ.
        z0: ``(B, d)`` latents the spectra were taken at.
        keys: ``(B,)`` keys, as ``lid.flow_slq`` splits them per image.

    Returns:
        A batched ``lid.SpectralQuadrature``.
    """

    def one(s, vt, z, key):
        return lid.slq(
            lambda v: s * (vt @ v),
            z,
            key,
            inverse_fn=lambda x: vt.T @ (x / s),
            num_probes=num_probes,
            num_steps=num_steps,
        )

    return jax.vmap(one)(singular_values, right_vectors, z0, keys)


def sweeps(quadrature) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold LID at every ℓ and LIDL at every δ of ``lid_speed``'s grids, and
    the threshold estimates' error indicators, each ``(B, 50)``."""
    counts = jax.vmap(lid.threshold_lid_from, in_axes=(0, None))(
        quadrature, jnp.asarray(lid_speed.LOG_TAUS)
    )
    smooth = jax.vmap(lid.lidl_from, in_axes=(0, None))(
        quadrature, jnp.asarray(lid_speed.DELTAS)
    )
    return np.asarray(counts.value), np.asarray(counts.error), np.asarray(smooth.value)


def _exact(model, params, x):
    """Exact spectra with vectors, z0, threshold LID and LIDL sweeps of a batch."""
    spectrum, z0 = lid.flow_spectra(model, params, x, vectors=True)
    counts = lid.threshold_lid(
        spectrum.singular_values, jnp.asarray(lid_speed.LOG_TAUS)
    )
    smooth = jax.vmap(lid.lidl, in_axes=(0, 0, None))(
        spectrum, z0, jnp.asarray(lid_speed.DELTAS)
    )
    return spectrum, z0, np.asarray(counts, np.float64), np.asarray(smooth)


def settings(size: dict, num_dims: int) -> list[tuple[int, int]]:
    """The (probes, steps) pairs of ``size``'s ladder that fit D and its largest
    work, and the settings ``lid_speed`` times."""
    ladder = [
        (p, m)
        for p in size["probes"]
        for m in size["steps"]
        if m <= num_dims and work(p, m) <= size["max_work"][num_dims]
    ]
    return ladder + [s for s in size["timed"][num_dims] if s not in ladder]


def _keys(batch_key, count: int):
    """Per-image keys as ``lid.flow_slq`` splits the key of one call."""
    return jax.random.split(batch_key, count)


def mean_error_part(
    model, params, x, size: dict, batch: int, log, *, check_flow: bool
) -> dict:
    """Errors of the mean LID of every setting on the images ``x``, from one exact
    SVD per image; with ``check_flow`` also the stand-in against ``lid.flow_slq``."""
    num_dims = model.config.num_dims
    exact, found = {"counts": [], "lidl": []}, {s: [] for s in settings(size, num_dims)}
    p_check, m_check = size["check_setting"]
    check = {"standin": [], "flow": []}
    for i in range(0, len(x), batch):
        b, batch_key = x[i : i + batch], jax.random.key(7 + i)
        spectrum, z0, counts, smooth = _exact(model, params, b)
        exact["counts"].append(counts)
        exact["lidl"].append(smooth)
        args = (spectrum.singular_values, spectrum.right_vectors, z0,
                _keys(batch_key, len(b)))  # fmt: skip
        for p, m in found:
            found[(p, m)].append(sweeps(standin_slq(*args, num_probes=p, num_steps=m)))
        if check_flow:  # the stand-in against the flow's own SLQ, same keys
            options = dict(num_probes=p_check, num_steps=m_check)
            check["standin"].append(sweeps(standin_slq(*args, **options)))
            q, _ = lid.flow_slq(
                model, params, b, batch_key, batch_size=batch, **options
            )
            check["flow"].append(sweeps(q))
        log(f"D = {num_dims}: {i + len(b)}/{len(x)} images")
    counts, smooth = (np.concatenate(exact[k]) for k in ("counts", "lidl"))
    rows = []
    for (p, m), parts in found.items():
        est, err, est_lidl = (_cat(parts, j) for j in range(3))
        rows.append({
            "num_probes": p,
            "num_steps": m,
            "work": work(p, m),
            "threshold": lid_speed.sweep_accuracy(est, err, counts, lid_speed.LOG_TAUS,
                                             num_dims),
            # LIDL's error indicator is not studied here: zeros stand in for it.
            "lidl": lid_speed.sweep_accuracy(est_lidl, np.zeros_like(est_lidl), smooth,
                                        lid_speed.DELTAS, num_dims),
        })  # fmt: skip
    out = {"num_dims": num_dims, "images": len(x), "rows": rows}
    if check["flow"]:
        out["check"] = {"num_probes": p_check, "num_steps": m_check}
        for name, j in (("threshold", 0), ("lidl", 2)):
            gap = np.abs(_cat(check["flow"], j) - _cat(check["standin"], j))
            out["check"] |= {f"max_abs_{name}": float(gap.max()),
                             f"mean_abs_{name}": float(gap.mean())}  # fmt: skip
    return out


def _cat(parts: list, j: int) -> np.ndarray:
    """Item ``j`` of every batch's :func:`sweeps`, concatenated over images."""
    return np.concatenate([q[j] for q in parts])


def auroc_part(size: dict, log) -> dict:
    """AUROCs from exact LID and from the stand-in SLQ of every AUROC setting, on
    the images, calibrated τ and keys of ``lid_speed``'s AUROC part."""
    n, v = size["auroc_images"], size["auroc_validation"]
    log_tau = lid_speed.auroc_log_tau()
    model, params, sets = lid_speed.auroc_sets(n, v)
    settings_of = {"exact": None} | {
        f"{p}x{m}": (p, m) for p, m in size["auroc_settings"]
    }
    names = list(settings_of)
    num_dims = model.config.num_dims  # the exact path's JVPs per image
    at_tau = jnp.asarray([log_tau])
    log_p, lids = {}, {k: {} for k in names}
    for name, images in sets.items():
        rows = {k: [] for k in ["log_p", *names]}
        for i in range(0, len(images), BATCH):
            b = images[i : i + BATCH]
            spectrum, z0 = lid.flow_spectra(model, params, b, vectors=True)
            rows["log_p"].append(np.asarray(flows.log_prob(model, params, b).total))
            rows["exact"].append(
                np.asarray(lid.threshold_lid(spectrum.singular_values, log_tau))
            )
            args = (spectrum.singular_values, spectrum.right_vectors, z0,
                    _keys(lid_speed.auroc_key(i), len(b)))  # fmt: skip
            for p, m in size["auroc_settings"]:
                q = standin_slq(*args, num_probes=p, num_steps=m)
                count = jax.vmap(lid.threshold_lid_from, in_axes=(0, None))(q, at_tau)
                rows[f"{p}x{m}"].append(np.asarray(count.value[:, 0]))
            if (i // BATCH) % 10 == 0 or i + BATCH >= len(images):
                log(f"AUROC part: {name} {i + len(b)}/{len(images)} images")
        log_p[name] = np.concatenate(rows["log_p"]).astype(np.float64)
        for k in names:
            lids[k][name] = np.concatenate(rows[k]).astype(np.float64)
    aurocs = {k: lid_speed.dual_threshold_aurocs(log_p, lids[k]) for k in names}
    return {
        "images_per_set": n,
        "validation_images": v,
        "log_tau": log_tau,
        "mean_lid": {k: {s: float(lids[k][s].mean()) for s in sets} for k in names},
        "rows": [
            {
                "method": k,
                "work": work(*settings_of[k]) if settings_of[k] else num_dims,
                "auroc": aurocs[k],
                "largest_difference": max(
                    abs(aurocs[k][d] - aurocs["exact"][d]) for d in aurocs[k]
                ),
            }
            for k in names
        ],
        "goal": AUROC_BAR,
    }


PARTS = ("1024", "3072", "auroc")


def measure(part: str, size: dict, log) -> dict:
    """One part of the results: the mean-error sweep at D = 1,024 or 3,072, or the
    AUROCs."""
    if part == "auroc":
        return auroc_part(size, log)
    if part == "1024":
        model, params, x = lid_speed.trained_glow(size["mean_images"][1024])
        flow = "shipped Fashion-MNIST Glow (trained), test images"
    else:
        model, params, x = lid_speed.random_glow(
            (32, 32, 3), 3, size["arch"], size["mean_images"][3072]
        )
        flow = "random-init Glow (perturbed couplings), RGB of FMNIST"
    batch = size["batch"][int(part)]
    # The flow's own SLQ is affordable at D = 1,024: check the stand-in there.
    out = mean_error_part(model, params, x, size, batch, log, check_flow=part == "1024")
    return out | {"flow": flow}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.slq_limits")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes, prints, writes nothing"
    )
    parser.add_argument(
        "--only",
        choices=PARTS,
        help="re-measure one part and merge it into the existing results",
    )
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    tic = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - tic:5.0f} s] {message}", flush=True)

    out = readme.HERE / "results" / "slq_limits.json"
    result = json.loads(out.read_text()) if args.only else {"seconds": {}}
    result |= {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0]}",
        "jax": jax.__version__,
        "bar": BAR,
        "goals": lid_speed.SPEEDUP_GOALS,
        "quick": args.quick,
    }
    for part in [args.only] if args.only else PARTS:
        start = time.perf_counter()
        result[part] = measure(part, size, log)
        result["seconds"][part] = time.perf_counter() - start
    readme.publish("slq_limits", result, readme.slq_limits_section)


if __name__ == "__main__":
    main()
