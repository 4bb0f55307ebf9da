"""Density of states (DoSE) over the statistics of the Glows and the three VAEs.

For each in-distribution setting (Fashion-MNIST against every Fashion-MNIST OOD
set; MNIST-5k against Fashion-MNIST) the models of ``glow_fmnist.py`` and
``vae_ood.py`` are restored from their run directories (trained there when
missing), their per-image statistics are computed on the same images, and
``jaxood.detectors.density_of_states`` is fit on statistics of in-distribution
training images only: per model family (flow; VAE = the three VAEs together) and
over all families. Features, density and bandwidth rule are fixed here, before any
OOD set is looked at; the bandwidth is chosen by leave-one-out likelihood of the
ID fit set. The results hold single-feature and drop-one AUROCs (the ablation).

    python -m experiments.main --config experiments/configs/dose_fmnist.py \
        --workdir runs/dose_fmnist [--mode {train,score,report,all}]

Options: none (restores ``runs/glow_fmnist``, ``runs/glow_mnist_5k`` and
``runs/vae_ood``, training what is missing there: about 20 minutes of scoring on 2
CPU cores when they exist), ``smoke`` (tiny models trained inside the run
directory, for the tests). Expect the all-families detector at about 1.00 on
FMNIST → MNIST-5k (DoSE's reported figure) and every column at 0.95 or more.
"""

import ml_collections

from experiments.configs import data_mesh, glow_fmnist, parse_options, vae_ood


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    smoke = "smoke" in parse_options(arg, ("smoke",))
    c = ml_collections.ConfigDict()
    c.pipeline = "dose"
    c.name = "dose_fmnist_smoke" if smoke else "dose_fmnist"
    c.seed = 20210413  # AISTATS 2021
    c.mesh = data_mesh()

    # The models whose statistics are the features, and where they are trained.
    # An empty workdir means a sub-directory of this run's workdir.
    variant = ",smoke" if smoke else ""
    c.flow = ml_collections.ConfigDict()
    c.flow.fashion_mnist = glow_fmnist.get_config(variant.strip(","))
    c.flow.mnist_5k = glow_fmnist.get_config("mnist_5k" + variant)
    c.flow.fashion_mnist.train_baseline_models = False
    c.flow.mnist_5k.train_baseline_models = False
    c.flow_workdirs = ml_collections.ConfigDict(
        dict(fashion_mnist="runs/glow_fmnist", mnist_5k="runs/glow_mnist_5k")
    )
    c.vae = vae_ood.get_config(variant.strip(","))
    c.vae_workdir = "runs/vae_ood"

    # The images: ID training images that every model was trained on (the fit
    # set), ID test images and each OOD set, the same images for every family.
    c.data = ml_collections.ConfigDict()
    c.data.ood = ml_collections.ConfigDict(
        dict(
            fashion_mnist=c.flow.fashion_mnist.data.ood,
            mnist_5k=c.flow.mnist_5k.data.ood,
        )
    )
    c.data.num_fit = 2000
    c.data.max_eval = 1000  # images per evaluation set

    c.dose = ml_collections.ConfigDict()
    c.dose.method = "kde"  # the reported detector
    c.dose.alternative = "gmm"  # reported beside it
    c.dose.ridge = 1e-3
    c.dose.num_components = 4
    c.dose.vae_samples = 100  # posterior draws for IWAE, distortion, hole
    c.dose.vae_chunk = 50
    c.dose.codec = "png"  # input complexity
    c.dose.ci_resamples = 200

    if smoke:
        c.flow_workdirs = ml_collections.ConfigDict(dict(fashion_mnist="", mnist_5k=""))
        c.flow.mnist_5k.checkpoints = ""
        c.vae_workdir = ""
        c.data.ood.fashion_mnist = (
            *c.data.ood.fashion_mnist,
            "fashion_mnist_vflip:test",
        )
        c.data.num_fit = 64
        c.data.max_eval = 32
        c.dose.vae_samples = 8
        c.dose.vae_chunk = 4
        c.dose.ci_resamples = 20
    return c
