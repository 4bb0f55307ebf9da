"""Glow on Fashion-MNIST (28 -> 32 px), scored against MNIST-5k, Animal-MNIST, noise,
constants and flipped images: raw likelihood, final scale, likelihood ratio to a
general model without and with the outlier loss (Schirrmeister et al. 2020).

Variants (``--config experiments/configs/glow_fmnist.py:VARIANT``):

- ``default``: sized for 2 CPU cores (``make run``: restores the shipped checkpoints
  of ``experiments/checkpoints/glow_fmnist``, or trains them in about an hour).
  Expect: test bits/dim of Fashion-MNIST about 3.0; likelihood AUROC on
  FMNIST->MNIST-5k far below 0.5 (the paradox); ratios well above it.
- ``smoke``: a few steps of a tiny model, for tests of the pipeline.
- ``paper``: the paper's size (L=3, K=32, hidden 512, 250 epochs) for accelerators.
"""

import ml_collections

VARIANTS = ("default", "smoke", "paper")


def get_config(variant: str = "default") -> ml_collections.ConfigDict:
    variant = variant or "default"
    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose from {VARIANTS}.")
    c = ml_collections.ConfigDict()
    c.name = "glow_fmnist" if variant == "default" else f"glow_fmnist_{variant}"
    c.variant = variant
    c.command = "make run"
    c.seed = 20200610  # Schirrmeister et al.'s numpy/torch seed

    c.data = ml_collections.ConfigDict()
    c.data.id_dataset = "fashion_mnist"
    c.data.general_dataset = "general_photos"
    c.data.image_size = 32  # bilinear 28 -> 32 so that three squeezes fit
    c.data.val_size = 2000  # held out of the training split, stratified
    c.data.ood = (
        "mnist_5k:all",
        "animal_mnist:all",
        "uniform_noise:test",
        "constant:test",
        "fashion_mnist_vflip:test",
        "fashion_mnist_inverted:test",
    )
    c.data.max_eval = 5000  # images per evaluation set (fixed random subset)

    c.model = ml_collections.ConfigDict()
    c.model.num_scales = 3
    c.model.steps_per_scale = 8
    c.model.hidden = 64
    c.model.coupling = "affine"
    c.model.step = "glow"
    c.model.prior = "diagonal"
    c.model.scan_unroll = True

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 64
    c.train.optimizer = "adamax"
    c.train.learning_rate = 5e-4
    c.train.weight_decay = 5e-5
    c.train.warmup_steps = 200
    c.train.clip_norm = 100.0
    c.train.init_images = 704  # 11 batches of 64, as the reference
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.checkpoint_every = 250
    c.train.eval_images = 2000

    c.stages = ml_collections.ConfigDict()
    c.stages.general_steps = 3000
    c.stages.id_steps = 3000
    c.stages.outlier_steps = 1500
    c.stages.outlier_weight = 6000.0
    c.stages.outlier_temperature = 1000.0

    c.report = ml_collections.ConfigDict()
    c.report.sample_temperature = 0.7
    c.report.num_samples = 64
    c.checkpoints = "experiments/checkpoints/glow_fmnist"

    if variant == "smoke":
        c.command = "pytest tests/test_experiments.py"
        c.data.ood = ("mnist_5k:all", "uniform_noise:test")
        c.data.val_size = 128
        c.data.max_eval = 128
        c.model.steps_per_scale = 1
        c.model.hidden = 8
        c.train.init_images = 64
        c.train.batch_size = 16
        c.train.log_every = 2
        c.train.eval_every = 4
        c.train.checkpoint_every = 4
        c.train.eval_images = 64
        c.stages.general_steps = 4
        c.stages.id_steps = 4
        c.stages.outlier_steps = 4
        c.report.num_samples = 4
        c.checkpoints = ""
    elif variant == "paper":
        c.command = (
            "python -m experiments.main --config "
            "experiments/configs/glow_fmnist.py:paper --workdir runs/glow_fmnist_paper"
        )
        c.model.steps_per_scale = 32
        c.model.hidden = 512
        c.model.scan_unroll = False  # accelerators: small compile graph
        c.train.warmup_steps = 0
        c.stages.general_steps = 250 * 48_000 // 64
        c.stages.id_steps = 250 * 58_000 // 64
        c.stages.outlier_steps = 250 * 58_000 // 64
        c.data.max_eval = 10_000
        c.checkpoints = ""
    return c
