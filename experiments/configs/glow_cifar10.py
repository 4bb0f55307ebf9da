"""Glow on CIFAR-10 against SVHN and CelebA, at the size of Schirrmeister et al.
(2020), for accelerators: the detectors of ``glow_fmnist.py`` on colour images.

    pip install -r requirements-accelerators.txt   # TensorFlow: tfds prepares the sets
    python -m experiments.main --config experiments/configs/glow_cifar10.py \
        --workdir runs/glow_cifar10 [--mode {train,score,lid,report,all}]

The datasets are tfds's built-in ``cifar10``, ``svhn_cropped``, ``celeb_a`` (faces
centre-cropped to 178x178, then resized to 32x32) and, as the general distribution
(the paper's 80 Million Tiny Images is withdrawn), ``imagenet_resized/32x32``:
downloaded and prepared once into ``$JAXOOD_DATA_DIR`` (CelebA and ImageNet may ask
for a manual download: tfds's error says where to put the files). Any tfds name can
replace them, e.g. ``--config.data.general_dataset=...``.

Options (``...glow_cifar10.py:OPTIONS``):

- (none): L=3, K=32, hidden 512, 250 epochs of the 48,000 training images
  (187,500 steps of 64 per stage): GPU-days. Schirrmeister et al. (2020, Tables 1-2)
  report a raw-likelihood AUROC for CIFAR-10 -> SVHN far below 0.5 that the ratio
  to a general model (80M Tiny Images there) lifts well above it; their exact
  numbers are not reproduced in this repository. ``--config.model.compute_dtype=
  bfloat16`` runs the coupling networks in bfloat16 (likelihoods stay float32).
- ``smoke``: a tiny model, a few steps (tests run it offline on
  ``tfds.testing.mock_data``: random images with the datasets' real shapes).
"""

import ml_collections

from experiments.configs import glow_fmnist, parse_options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    options = parse_options(arg, ("smoke",))
    smoke = "smoke" in options
    # The Fashion-MNIST config's detectors, stages and cadence; data and size here.
    c = glow_fmnist.get_config("smoke" if smoke else "paper")
    c.name = "glow_cifar10" + ("_smoke" if smoke else "")
    c.data.id_dataset = "cifar10"
    c.data.channels = 3
    c.data.general_dataset = "imagenet_resized/32x32"
    c.data.general_test_split = "validation"
    c.data.ood = ("svhn_cropped:test", "celeb_a:test")
    c.data.val_size = 128 if smoke else 2000
    c.data.max_eval = 128 if smoke else 10_000
    c.checkpoints = ""
    if smoke:  # the baseline models' code is that of glow_fmnist's smoke run
        c.train_baseline_models = False
    else:
        steps = 250 * 48_000 // 64  # 250 epochs of the 48,000 training images
        c.stages.general_steps = steps
        c.stages.id_steps = steps
        c.stages.outlier_steps = steps
        c.background.steps = steps
        c.ensemble.steps = steps
        c.train.eval_images = 2000
    return c
