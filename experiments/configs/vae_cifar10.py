"""The Vacant Holes VAEs on CIFAR-10 against SVHN and CelebA, for accelerators: the
models and scores of ``vae_ood.py`` (IWAE, typicality, hole indicator, likelihood
regret, the intensity-scaling ablation on SVHN) on 32x32 colour images.

    pip install -r requirements-accelerators.txt   # TensorFlow: tfds prepares the sets
    python -m experiments.main --config experiments/configs/vae_cifar10.py \
        --workdir runs/vae_cifar10 [--mode {train,score,report,all}]

tfds's ``cifar10``, ``svhn_cropped`` and ``celeb_a`` (faces centre-cropped, resized
to 32x32) are downloaded and prepared once into ``$JAXOOD_DATA_DIR``. The
likelihood stays Bernoulli (as the Fashion-MNIST runs: the scaling ablation needs a
likelihood defined for pixel values above 1).

Options (``...vae_cifar10.py:OPTIONS``): none (the conv VAEs' 32-pixel layout,
latent 10 as on Fashion-MNIST, 20,000 steps of 64: about an hour on a GPU), or
``smoke`` (a few steps; tests run it offline on ``tfds.testing.mock_data``).
"""

import ml_collections

from experiments.configs import parse_options, vae_ood


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    options = parse_options(arg, ("smoke",))
    smoke = "smoke" in options
    # The Fashion-MNIST config's models and scores; data and size here.
    c = vae_ood.get_config("smoke" if smoke else "")
    c.name = "vae_cifar10" + ("_smoke" if smoke else "")
    c.image_shape = (32, 32, 3)
    c.settings = ml_collections.ConfigDict()
    c.settings.cifar10 = ml_collections.ConfigDict(
        dict(
            train_split="train",
            test_split="test",
            ood=("svhn_cropped:test", "celeb_a:test"),
            steps=4 if smoke else 20_000,
        )
    )
    c.score.scaling_setting = "cifar10"
    c.score.scaling_ood = "svhn_cropped"
    if not smoke:
        c.score.max_eval = 10_000
        c.score.regret_eval = 1000
    return c
