"""Glow on Fashion-MNIST (28 -> 32 px) against MNIST-5k, Animal-MNIST, noise,
constants and flipped or inverted images: raw likelihood, final scale, likelihood
ratio to a general model without and with the outlier loss (Schirrmeister et al.
2020), Ren et al.'s background ratio, WAIC over an ensemble, input complexity,
typicality and KLODS-R, point-wise and in groups of 5 and 10; LID + likelihood dual
threshold (Kamkari et al. 2024) with ``--mode lid``.

    python -m experiments.main --config experiments/configs/glow_fmnist.py \
        --workdir runs/glow_fmnist [--mode {train,score,lid,report,all}]

``--config experiments/configs/glow_fmnist.py:OPTIONS`` takes comma-separated
options:

- (none): sized for 2 CPU cores. Restores the shipped checkpoints of
  ``experiments/checkpoints/glow_fmnist`` (``--config.checkpoints=`` trains them
  instead, about 80 minutes). Expect test bits/dim of Fashion-MNIST about 3.3, a
  likelihood AUROC on FMNIST -> MNIST-5k far below 0.5 (0.17: the paradox) and
  KLODS-R in groups of 5 at about 0.99.
- ``mnist_5k``: the reverse pair, MNIST-5k (4,000 training digits) in-distribution,
  Fashion-MNIST out. The general model does not depend on the ID data: it is
  restored from the Fashion-MNIST run directory ``runs/glow_fmnist`` if trained
  there, else from the Fashion-MNIST config's shipped checkpoints; the others (from
  ``experiments/checkpoints/<name>`` where shipped) are trained for fewer steps (a
  smaller training set). Expect likelihood AUROC 0.99.
- ``smoke``: a few steps of a tiny model (tests); combines with ``mnist_5k``.
- ``general_images``: the general model trained on ``general_images`` (about
  230,000 crops of Debian's clip art and wallpapers) for 12,000 steps instead of
  ``general_photos`` (17 photographs) for 3,000, the ID model fine-tuned for
  15,000 and the outlier-loss model for 15,000 (about 115, 111 and 129 minutes on 2
  cores), params kept at four earlier steps of the first two and twelve of the
  outlier-loss model; restores
  ``experiments/checkpoints/glow_fmnist_general_images``. Combines with
  ``mnist_5k`` (general model restored as above; the ID model fine-tuned for
  1,000 steps, or restored at 6,000 with ``--config.stages.id_steps=6000``).
  Expect ID test bits/dim 2.93 and, on FMNIST -> MNIST-5k (5,000 each), ``llr``
  0.46, ``llr_outlier`` 0.80, final scale 0.92, DoSE 0.97; ``--mode lid`` with
  ``--config.lid.num_eval=5000``: dual envelope 0.70 at the calibrated τ, 0.90 at
  the widest-ID τ. With ``mnist_5k`` at 6,000 steps: likelihood 0.996 on
  MNIST-5k -> FMNIST.
- ``spline``: the LID experiment's second model, an RQ-NSF (Kamkari et al.'s
  flows): rational-quadratic spline couplings (8 bins, tail bound 3), one ID model
  trained from scratch for 6,000 steps (3,000 with ``mnist_5k``; no general
  model: ``--mode lid`` trains it; ``score`` needs the ratio's models), Adam at
  1e-3 with gradient clipping at 1 as theirs. Restores
  ``experiments/checkpoints/<name>``. Test bits/dim: 2.702 on Fashion-MNIST.
  Expect (``--mode lid``, 5,000 images per set) a dual envelope of 0.72 at the
  calibrated τ and 0.93 at the widest-ID τ on FMNIST -> MNIST-5k (likelihood
  0.15); with ``mnist_5k``, likelihood and envelope 0.999 on MNIST-5k -> FMNIST.
- ``paper``: the paper's size (L=3, K=32, hidden 512, 250 epochs) for accelerators.
"""

import ml_collections

from experiments.configs import FASHION_MNIST_OOD, data_mesh, parse_options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    options = parse_options(
        arg, ("smoke", "paper", "mnist_5k", "general_images", "spline")
    )
    c = ml_collections.ConfigDict()
    c.pipeline = "flow"
    c.name = "glow_mnist_5k" if "mnist_5k" in options else "glow_fmnist"
    if options - {"mnist_5k"}:
        c.name += "_" + "_".join(sorted(options - {"mnist_5k"}))
    c.seed = 20200610  # Schirrmeister et al.'s numpy/torch seed
    c.mesh = data_mesh()

    c.data = ml_collections.ConfigDict()
    c.data.id_dataset = "fashion_mnist"
    c.data.general_dataset = "general_photos"
    c.data.image_size = 32  # bilinear 28 -> 32 so that three squeezes fit
    c.data.channels = 1
    c.data.general_test_split = "test"  # the general set's split validating it
    c.data.val_size = 2000  # held out of the training split, stratified
    c.data.general_val_size = 2000  # general-set test images validating that model
    c.data.ood = FASHION_MNIST_OOD
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
    # Steps after which the general and ID models' params are also kept (under
    # <stage>/snapshots/): the likelihood ratio against the length of training.
    c.stages.snapshots = ()
    c.stages.outlier_snapshots = ()  # the same for the outlier-loss model

    # Ren et al.'s background model: a Glow of the same size trained from scratch on
    # ID training images mutated at rate μ, with L2 weight decay λ (the gradient of
    # ½λ‖θ‖² added to that of the NLL in nats per image). μ = 0.2 is alibi-detect's
    # default and the middle of Ren et al.'s grid. λ is our choice (picking it on an
    # OOD validation set, as Ren et al. did, would leak the test distribution): the
    # decay λθ ≈ 0.15 is about 15 % of the median per-weight NLL gradient (1.1) of the
    # trained ID Glow, so it removes what the data does not hold up, no more.
    c.background = ml_collections.ConfigDict()
    c.background.mutation_rate = 0.2
    c.background.l2_weight = 1.0
    c.background.steps = 3000

    # WAIC ensemble: Glows trained from scratch on the ID data, differing only in
    # their seed (init, batch order, dequantization noise).
    c.ensemble = ml_collections.ConfigDict()
    c.ensemble.size = 5
    c.ensemble.steps = 1000

    # Train the background model and the ensemble when they are missing (make
    # reproduce); make run sets this False and scores them only if already there.
    c.train_baseline_models = True
    # True: the ID model alone, trained from scratch (the spline option).
    c.id_from_scratch = False

    # Detectors that need no extra model.
    c.scoring = ml_collections.ConfigDict()
    c.scoring.typicality_train_images = 10_000  # Ĥ = mean NLL over these
    c.scoring.bootstrap_resamples = 1000  # K of the typicality threshold
    c.scoring.alpha = 0.99
    c.scoring.group_sizes = (5, 10)  # group tables; size 1 is the point-wise table
    c.scoring.group_seeds = (0, 1, 2, 3, 4)  # shuffles: AUROC mean ± std
    # KLODS-R variants "layout:k": image layout (squeeze/split undone) or one scale's
    # latents ("scale0" = the finest), k×k patches across all channels.
    c.scoring.klods_variants = ("image:2", "scale0:2")
    c.scoring.klods_ridge = 1e-6
    c.scoring.codecs = ("png", "jpeg2000")  # input complexity
    # Density of states over the ID and general Glows' statistics (log p, per-scale
    # terms, latent norms, KLODS-R parts, PNG input complexity, typicality), a KDE
    # fit on this many ID training images.
    c.scoring.dose_fit_images = 2000
    # Also score the general set's held-out validation crops as an OOD set (the kind
    # of images the outlier loss pushes down): does a ratio reach what it was fit on?
    c.scoring.general_held_out = False

    # --mode lid: exact decoder spectra of the ID model on the first images of each
    # set (1024 JVPs and one SVD per image: about 0.7 s on 2 idle cores for the
    # affine Glow, 2.1 s for the spline flow, with 2 forced host devices).
    c.lid = ml_collections.ConfigDict()
    c.lid.num_eval = 128  # per evaluation set
    c.lid.num_calibration = 48  # ID training images whose mean LID matches lPCA
    c.lid.num_validation = 128  # ID validation images for the rank-AND CDFs
    c.lid.num_lidl = 16  # LIDL sweeps per set
    c.lid.lpca_reference = 10_000  # training images searched for lPCA neighbours
    c.lid.lpca_neighbors = 1000
    c.lid.lpca_alpha = 1e-3
    c.lid.envelope_resamples = 200  # bootstrap of the envelope's interval
    c.lid.fixed_log_taus = (-3.0,)  # the authors' threshold, beside the calibrated one
    # Another run directory (relative to the repository) of the same ID model whose
    # cached spectra this run starts from, or a shipped copy of them
    # (experiments/lid_rows/...): runs that differ only in their OOD sets or image
    # counts compute each spectrum once.
    c.lid.rows_from = ""

    c.report = ml_collections.ConfigDict()
    c.report.sample_temperature = 0.7
    c.report.num_samples = 64
    # Folders whose stages are restored instead of trained when their fingerprint
    # (config.json) matches: shipped checkpoints or another run directory.
    c.checkpoints = "experiments/checkpoints/glow_fmnist"

    if "smoke" in options:
        c.data.ood = ("mnist_5k:all", "uniform_noise:test")
        c.data.val_size = 128
        c.data.general_val_size = 128
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
        c.stages.snapshots = c.stages.outlier_snapshots = (2,)
        c.background.steps = 4
        c.ensemble.size = 2
        c.ensemble.steps = 4
        c.scoring.typicality_train_images = 128
        c.scoring.dose_fit_images = 64
        c.scoring.bootstrap_resamples = 50
        c.scoring.group_seeds = (0, 1, 2)
        c.scoring.general_held_out = True  # the tests run this path
        c.lid.update(num_eval=2, num_calibration=2, num_validation=2, num_lidl=2)
        c.lid.envelope_resamples = 10
        c.lid.update(lpca_reference=256, lpca_neighbors=64)
        c.report.num_samples = 4
        c.checkpoints = ""
    if "paper" in options:
        c.model.steps_per_scale = 32
        c.model.hidden = 512
        c.model.scan_unroll = False  # accelerators: small compile graph
        c.train.warmup_steps = 0
        c.stages.general_steps = 250 * 48_000 // 64
        c.stages.id_steps = 250 * 58_000 // 64
        c.stages.outlier_steps = 250 * 58_000 // 64
        c.background.steps = 250 * 58_000 // 64
        c.ensemble.steps = 250 * 58_000 // 64
        c.data.max_eval = 10_000
        c.checkpoints = ""
    if "general_images" in options:
        c.data.general_dataset = "general_images"
        c.checkpoints = "experiments/checkpoints/glow_fmnist_general_images"
        c.train_baseline_models = False  # their detectors do not use the general set
        c.scoring.general_held_out = True
        if "smoke" not in options:
            c.stages.general_steps = 12_000
            c.stages.id_steps = 15_000
            c.stages.outlier_steps = 15_000
            c.stages.snapshots = (1000, 3000, 6000, 9000)
            c.stages.outlier_snapshots = (
                *(1000, 2000, 3000, 4500, 6000, 7500),
                *range(9000, 15_000, 1000),
            )
    if "mnist_5k" in options:
        c.data.id_dataset = "mnist_5k"
        c.data.val_size = 128 if "smoke" in options else 400  # of 4,000 digits
        c.data.ood = ("fashion_mnist:test",)
        c.data.max_eval = min(c.data.max_eval, 1000)  # the MNIST-5k test split
        # The general model does not depend on the ID data: the Fashion-MNIST run's
        # (trained there, else shipped), then this config's own shipped stages.
        general_run = "runs/" + c.name.replace("glow_mnist_5k", "glow_fmnist")
        own = f"experiments/checkpoints/{c.name}"
        c.checkpoints = ",".join((general_run, c.checkpoints, own))
        if "smoke" in options:
            c.checkpoints = ""
        if "smoke" not in options:
            c.stages.id_steps = 1000
            c.stages.outlier_steps = 500
            c.background.steps = 1000
            c.ensemble.steps = 400
    if "spline" in options:
        c.model.update(coupling="spline", spline_bins=8, spline_bound=3.0)
        c.id_from_scratch = True
        c.train.update(optimizer="adam", learning_rate=1e-3, clip_norm=1.0)
        c.train.weight_decay = 0.0
        c.stages.snapshots = ()
        if "smoke" not in options:
            # ~100 min on 2 cores (2 forced host devices); MNIST-5k: 3,600
            # digits, 3,000 steps (~53 epochs) at half the time
            c.stages.id_steps = 3000 if "mnist_5k" in options else 6000
            c.checkpoints = f"experiments/checkpoints/{c.name}"
    return c
