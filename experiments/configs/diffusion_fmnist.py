"""A VP-SDE diffusion model on Fashion-MNIST (28x28) against every Fashion-MNIST OOD
set: likelihood (probability-flow ODE, bits/dim), FLIPD at a sweep of t0, and the
LID + likelihood dual threshold (Kamkari et al. 2024) with FLIPD as the LID.

    python -m experiments.main --config experiments/configs/diffusion_fmnist.py \
        --workdir runs/diffusion_fmnist [--mode {train,score,report,all}]

Options (``...diffusion_fmnist.py:OPTIONS``, comma-separated):

- (none): sized for 2 CPU cores: a 0.64M-parameter UNet, 7,000 steps of 64 images
  (about 90 minutes of training; the shipped EMA checkpoint of
  ``experiments/checkpoints/diffusion_fmnist`` is restored instead), then about an
  hour of scoring 1,000 images per set. The seed paper's anchor on FMNIST -> MNIST:
  likelihood AUROC 0.240, dual threshold 0.846 (normal-bundle LID).
- ``mnist_5k``: the reverse pair, MNIST-5k in-distribution, Fashion-MNIST out
  (expect a likelihood AUROC near 1).
- ``smoke``: a few steps of a tiny model (tests).
"""

import ml_collections

from experiments.configs import FASHION_MNIST_OOD, data_mesh, parse_options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    options = parse_options(arg, ("smoke", "mnist_5k"))
    smoke = "smoke" in options
    c = ml_collections.ConfigDict()
    c.pipeline = "diffusion"
    c.name = "diffusion_" + ("mnist_5k" if "mnist_5k" in options else "fmnist")
    c.name += "_smoke" if smoke else ""
    c.seed = 20240531  # FLIPD (arXiv 2406.03537)
    c.mesh = data_mesh()
    c.checkpoints = "experiments/checkpoints/" + c.name.removesuffix("_smoke")

    # In-distribution set -> (training split, test split, OOD "name:split" entries).
    c.settings = ml_collections.ConfigDict()
    if "mnist_5k" in options:
        c.settings.mnist_5k = ml_collections.ConfigDict(
            dict(
                train_split="train",
                test_split="test",
                ood=("fashion_mnist:test",),
                steps=4000,
            )
        )
    else:
        c.settings.fashion_mnist = ml_collections.ConfigDict(
            dict(
                train_split="train",
                test_split="test",
                ood=FASHION_MNIST_OOD,
                steps=7000,
            )
        )
    c.val_size = 0.05  # fraction of the training split held out for validation

    c.model = ml_collections.ConfigDict(
        dict(
            base=16,
            multipliers=(1, 2, 4),
            num_res_blocks=1,
            attention=True,
            beta_min=0.1,
            beta_max=20.0,
            t_min=1e-5,
        )
    )

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 64
    c.train.learning_rate = 5e-4
    c.train.warmup_steps = 500
    c.train.clip_norm = 1.0
    c.train.ema_decay = 0.999
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.checkpoint_every = 500
    c.train.eval_images = 500

    c.score = ml_collections.ConfigDict()
    c.score.max_eval = 1000  # images per evaluation set (fixed random subset)
    c.score.batch_size = 50
    c.score.val_images = 500  # ID validation: the knee and the rank-AND fit
    # The detectors' likelihood: log p_t at t = 0.01 (as the seed's OOD runs), by
    # adaptive Tsit5 at 1e-2 with 1 Rademacher probe: few steps, and it ranks images
    # as a tolerance-1e-5 solve does. Bits/dim: at the model's t_min = 1e-5 and Song
    # et al.'s 1e-5 on bpd_images test images (below t = 1e-3 the ODE is stiff and a
    # loose tolerance is bits/dim off). Measured: benchmarks/ode_tolerance.py.
    c.score.likelihood_time = 0.01
    c.score.ode_tolerance = 1e-2
    c.score.ode_probes = 1
    c.score.bpd_tolerance = 1e-5
    c.score.bpd_images = 100
    # FLIPD: the authors' t0 values plus the knee of the ID validation curve.
    c.score.flipd_t0s = (0.01, 0.1, 0.2)
    c.score.flipd_probes = 4
    c.score.curve_images = 100  # per set, one probe, at curve_points t0 values
    c.score.curve_points = 50
    c.score.curve_t0_min = 1e-3
    c.score.envelope_resamples = 200

    c.report = ml_collections.ConfigDict()
    c.report.num_samples = 64

    if smoke:
        c.model.base = 8
        c.model.multipliers = (1, 2)
        c.model.attention = False
        for s in c.settings:
            c.settings[s].steps = 4
            c.settings[s].ood = c.settings[s].ood[:1]
        c.train.warmup_steps = 2
        c.train.batch_size = 16
        c.train.log_every = 2
        c.train.eval_every = 4
        c.train.checkpoint_every = 4
        c.train.eval_images = 32
        c.checkpoints = ""
        c.score.max_eval = 8
        c.score.batch_size = 8
        # One batch shape and one tolerance everywhere: each compiles once.
        c.score.bpd_images = 8
        c.score.val_images = 8
        c.score.bpd_tolerance = 1e-3
        c.score.likelihood_time = c.model.t_min
        c.score.curve_images = 8
        c.score.curve_points = 5
        c.score.flipd_probes = 1
        c.score.envelope_resamples = 5
        c.report.num_samples = 8
    return c
