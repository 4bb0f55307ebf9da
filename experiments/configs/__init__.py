"""Experiment configs: ``get_config(arg)`` files read by ``experiments.main``."""

import ml_collections

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


def data_mesh() -> ml_collections.ConfigDict:
    """``config.mesh``: ``devices`` = how many local devices the batches are split
    over (0: all; results do not depend on it beyond float summation order)."""
    return ml_collections.ConfigDict({"devices": 0})


def parse_options(arg: str, known: tuple[str, ...]) -> set[str]:
    """``"a,b"`` after the config path's colon -> ``{"a", "b"}``, checked."""
    options = {o for o in (arg or "").split(",") if o and o != "default"}
    unknown = options - set(known)
    if unknown:
        raise ValueError(
            f"Unknown config option(s) {sorted(unknown)}; choose from {known}, "
            "comma-separated (e.g. ':smoke')."
        )
    return options
