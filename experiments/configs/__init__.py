"""Experiment configs (``ml_collections`` ``get_config(variant)`` files)."""

# The offline OOD sets of the Fashion-MNIST settings, as "name:split" entries: the
# MNIST and Animal-MNIST images and the synthetic sets built from Fashion-MNIST.
FASHION_MNIST_OOD = (
    "mnist_5k:all",
    "animal_mnist:all",
    "uniform_noise:test",
    "constant:test",
    "fashion_mnist_vflip:test",
    "fashion_mnist_inverted:test",
)
