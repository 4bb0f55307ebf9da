"""A VP-SDE diffusion model on CIFAR-10 against SVHN and CelebA, for accelerators:
likelihood (probability-flow ODE), FLIPD and the LID + likelihood dual threshold of
``diffusion_fmnist.py`` on colour images.

    pip install -r requirements-accelerators.txt   # TensorFlow: tfds prepares the sets
    python -m experiments.main --config experiments/configs/diffusion_cifar10.py \
        --workdir runs/diffusion_cifar10 [--mode {train,score,report,all}]

tfds's ``cifar10``, ``svhn_cropped`` and ``celeb_a`` (faces centre-cropped, resized
to 32x32) are downloaded and prepared once into ``$JAXOOD_DATA_DIR``.

Options (``...diffusion_cifar10.py:OPTIONS``):

- (none): the seed paper's UNet layout (levels of 128, 128, 256, 256, 512, 512
  channels, two residual blocks each, attention at the lowest resolution), 150
  epochs of 128 at learning rate 5e-5 (58,600 steps), an EMA of 0.9999: GPU-days.
  Anchors (Kamkari et al. 2024, VP-SDE diffusion models, normal-bundle LID):
  likelihood AUROC 0.064 on SVHN and 0.360 on CelebA, dual threshold 0.943 and
  0.648.
- ``smoke``: a tiny model, a few steps (tests run it offline on
  ``tfds.testing.mock_data``).
"""

import ml_collections

from experiments.configs import diffusion_fmnist, parse_options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
    options = parse_options(arg, ("smoke",))
    smoke = "smoke" in options
    # The Fashion-MNIST config's scoring protocol; data, model and training here.
    c = diffusion_fmnist.get_config("smoke" if smoke else "")
    c.name = "diffusion_cifar10" + ("_smoke" if smoke else "")
    c.checkpoints = ""
    del c.settings["fashion_mnist"]
    c.settings.cifar10 = ml_collections.ConfigDict(
        dict(
            train_split="train",
            test_split="test",
            ood=("svhn_cropped:test", "celeb_a:test"),
            steps=4 if smoke else 150 * 50_000 // 128,
        )
    )
    c.model.image_shape = (32, 32, 3)
    if not smoke:
        c.model.update(base=128, multipliers=(1, 1, 2, 2, 4, 4), num_res_blocks=2)
        c.train.update(batch_size=128, learning_rate=5e-5, warmup_steps=1000)
        c.train.update(ema_decay=0.9999, eval_every=5000, checkpoint_every=5000)
        c.score.max_eval = 10_000
    return c
