"""Exact flow LID per image, the layer6 way, on normflows' Glow (bench venv).

    .venv-bench/bin/python benchmarks/normflows_lid.py --images 3 --threads 2

What ``dgm_ood_detection`` / ``dgm_geometry`` do for a flow (Kamkari et al., "A
Geometric Explanation of the Likelihood OOD Detection Paradox", ICML 2024; see
docs/lid.md): z0 = f⁻¹(x); J = ``torch.func.jacfwd`` of the decoder z -> x at z0 (D×D);
M = JᵀJ, symmetrised, clamped to ±10^4.5, NaNs set to 0; ``torch.linalg.eigh(M)``.
The decoder of normflows' ``MultiscaleFlow`` is ``forward_and_log_det`` (z -> x)
on the list of per-scale latents; a flat (D,) latent is split into that list.
``jacfwd`` pushes all D tangents through at once (the reference's fastest setting:
its configs loop over data chunks, not over tangent chunks).

The model is ``normflows_glow.build`` (same architecture as jaxood's benchmark
Glow); the zero-initialised last conv of every coupling network is redrawn from
N(0, perturb²) so that the flow is not linear, then ActNorm is initialised on a
uniform random batch. Prints one JSON line.
"""

import argparse
import json
import statistics
import time
import warnings

import normflows
import torch
from normflows_glow import build


def _perturb(model: torch.nn.Module, std: float) -> None:
    """Redraws the zero-initialised output conv of every coupling net."""
    for module in model.modules():
        if hasattr(module, "net") and isinstance(module.net, torch.nn.Sequential):
            last = module.net[-1]
            if isinstance(last, torch.nn.Conv2d):
                torch.nn.init.normal_(last.weight, std=std)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-scales", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--perturb", type=float, default=0.02)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="torch.lu is deprecated")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.num_scales, args.steps, args.hidden, size=args.size).eval()
    with torch.no_grad():
        _perturb(model, args.perturb)  # before the data-dependent ActNorm init
        model.log_prob(torch.rand(64, 1, args.size, args.size) - 0.5, None)
    for p in model.parameters():
        p.requires_grad_(False)

    x = torch.rand(args.images + 1, 1, args.size, args.size) - 0.5
    with torch.no_grad():
        latents, _ = model.inverse_and_log_det(x)
    shapes = [tuple(z.shape[1:]) for z in latents]
    sizes = [int(torch.tensor(s).prod()) for s in shapes]
    z0 = torch.cat([z.reshape(len(x), -1) for z in latents], dim=1)

    def decode(z_flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(z_flat, sizes)
        z = [p.reshape(1, *s) for p, s in zip(parts, shapes, strict=True)]
        return model.forward_and_log_det(z)[0].reshape(-1)

    jac = torch.func.jacfwd(decode)

    def one(z: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        tic = time.perf_counter()
        j = jac(z)
        middle = time.perf_counter()
        m = j.T @ j
        m = torch.nan_to_num((m + m.T) / 2).clamp(-(10**4.5), 10**4.5)
        eigenvalues = torch.linalg.eigh(m).eigenvalues.clamp_min(1e-20)
        return eigenvalues, middle - tic, time.perf_counter() - middle

    with torch.no_grad():
        check = decode(z0[0]) - x[0].reshape(-1)
        one(z0[0])  # warm-up (first image not timed)
        runs = [one(z) for z in z0[1:]]
    times = [r[1] + r[2] for r in runs]
    singular = runs[-1][0].sqrt()
    print(json.dumps({
        "seconds_per_image": statistics.median(times),
        "seconds_jacobian": statistics.median(r[1] for r in runs),
        "seconds_eigh": statistics.median(r[2] for r in runs),
        "times": times,
        "num_dims": int(z0.shape[1]),
        "method": "torch.func.jacfwd (all D tangents vmapped) + eigh(JᵀJ)",
        "round_trip_error": float(check.abs().max()),
        "singular_value_range": [float(singular.min()), float(singular.max())],
        "torch": torch.__version__,
        "normflows": normflows.__version__,
        "threads": args.threads,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
