"""normflows' Glow log-likelihood throughput (runs in the PyTorch bench venv).

Same architecture as jaxood's ``GlowConfig(image_shape=(32, 32, 1), num_scales=L,
steps_per_scale=K, hidden=H)``: per scale K blocks of ActNorm, LU 1x1 conv and a
channel-split sigmoid-scale affine coupling whose net is conv3x3 -> conv1x1 ->
zero-init conv3x3 with ActNorm inside, squeezes between scales, half split per scale.
Prints one JSON line.
"""

import argparse
import json
import time
import warnings

import normflows as nf
import torch


def build(num_scales: int, steps: int, hidden: int, channels: int = 1, size: int = 32):
    q0, merges, flows = [], [], []
    for i in range(num_scales):
        blocks = [
            nf.flows.GlowBlock(
                channels * 2 ** (num_scales + 1 - i), hidden, split_mode="channel",
                scale=True, scale_map="sigmoid", net_actnorm=True,
            )
            for _ in range(steps)
        ]  # fmt: skip
        flows.append([*blocks, nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            factor = 2 ** (num_scales - i)
            shape = (channels * factor, size // factor, size // factor)
        else:
            factor = 2**num_scales
            shape = (channels * 2 * factor, size // factor, size // factor)
        q0.append(nf.distributions.DiagGaussian(shape))
    return nf.MultiscaleFlow(q0, flows, merges, class_cond=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-scales", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="torch.lu is deprecated")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.num_scales, args.steps, args.hidden).eval()
    x = torch.rand(args.batch, 1, 32, 32) - 0.5
    with torch.no_grad():
        model.log_prob(x, None)  # data-dependent ActNorm init, then warm-up
        model.log_prob(x, None)
        tic = time.perf_counter()
        for _ in range(args.repeats):
            log_p = model.log_prob(x, None)
        seconds = (time.perf_counter() - tic) / args.repeats
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({
        "images_per_second": args.batch / seconds,
        "seconds_per_batch": seconds,
        "finite": bool(torch.isfinite(log_p).all()),
        "params": params,
        "torch": torch.__version__,
        "threads": args.threads,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
