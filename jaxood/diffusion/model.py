"""A VP-SDE diffusion model: a static description, params, and pure functions.

Images live in *diffusion space*, 8-bit pixels mapped to [−1, 1]:
y = 2 ((k + u) / 256 − ½) with u = ½ (bin midpoints, for evaluation) or
u ~ U[0, 1) (dequantised, for training): twice the flows' model space, so that
log p_model-space(x) = log p(y) + D log 2 and bits/dim follow as for the flows.

The network predicts the noise ε of y_t = ψ(t) y + σ(t) ε, and the score is
s(y, t) = −ε̂(y, t) / σ(t). Training minimises the denoising score-matching loss
E_{t ~ U[t_min, 1], ε} ‖ε̂(ψ(t) y + σ(t) ε, t) − ε‖² / D (Song et al.'s σ²-weighted
score matching, Ho et al.'s "simple" loss).

    model = ScoreModel(DiffusionConfig())
    params = init(model, key)
    eps = noise_prediction(model, params, y, t)     # (B, 28, 28, 1)
    s = score(model, params, y, t)                  # ∇_y log p_t(y)
    score_fn = score_function(model, params)        # one example: (y, t) -> score

References: Song et al., "Score-Based Generative Modeling through Stochastic
Differential Equations", ICLR 2021; Ho, Jain & Abbeel, "Denoising Diffusion
Probabilistic Models", NeurIPS 2020.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import nnx

from jaxood.data.preprocess import dequantize, to_model_space
from jaxood.diffusion.sde import VPSDE
from jaxood.nets import pure
from jaxood.nets.unet import UNet
from jaxood.typing import Array, Params, PRNGKey

if TYPE_CHECKING:  # jaxood.train imports orbax: not needed to score
    from jaxood.train import LossFn


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """Static description of a diffusion model (hashable).

    Attributes:
        image_shape: (H, W, C); H and W divisible by 2 ** (len(multipliers) − 1).
        base, multipliers, num_res_blocks, attention: the UNet
            (:class:`jaxood.nets.unet.UNet`).
        beta_min, beta_max: the VP-SDE (Song et al.: 0.1, 20).
        t_min: the smallest time of training and of the likelihood (Song et al.:
            1e-5), where σ(t_min) = 0.0032 in y units of width 2/256 = 0.0078 per bin.
    """

    image_shape: tuple[int, int, int] = (28, 28, 1)
    base: int = 16
    multipliers: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 1
    attention: bool = True
    beta_min: float = 0.1
    beta_max: float = 20.0
    t_min: float = 1e-5

    def __post_init__(self):
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        object.__setattr__(self, "multipliers", tuple(self.multipliers))
        h, w, _ = self.image_shape
        factor = 2 ** (len(self.multipliers) - 1)
        if h % factor or w % factor:
            raise ValueError(
                f"image_shape {self.image_shape}: H and W must be divisible by "
                f"{factor} for {len(self.multipliers)} UNet levels."
            )
        if not 0.0 < self.t_min < 1.0:
            raise ValueError(f"t_min must lie in (0, 1), got {self.t_min}.")
        VPSDE(self.beta_min, self.beta_max)  # validates the schedule

    @property
    def num_dims(self) -> int:
        h, w, c = self.image_shape
        return h * w * c


@dataclasses.dataclass(frozen=True)
class ScoreModel:
    """The static structure derived from a :class:`DiffusionConfig`."""

    config: DiffusionConfig

    @property
    def sde(self) -> VPSDE:
        return VPSDE(self.config.beta_min, self.config.beta_max)

    @functools.cached_property
    def _net_args(self) -> tuple:
        c = self.config
        return (c.image_shape[-1], c.base, c.multipliers, c.num_res_blocks, c.attention)

    def random_params(self, key: PRNGKey) -> Params:
        return pure.params_of(UNet(*self._net_args, rngs=nnx.Rngs(params=key)))

    def network(self, params: Params, y: Array, t: Array) -> Array:
        return _network(self, params, y, t)


# Jitted once per model: op by op every layer compiles its own programs, and the
# first score of an 8x8, base-8 UNet took 12 s against 3.7 s jitted (2 busy cores).
# The init gives the same values either way; its compile (21 s) is mostly LLVM
# optimising the unrolled threefry of ~100 leaves, and a lower optimisation level
# would change some of them by an ulp.
_random_params = jax.jit(ScoreModel.random_params, static_argnums=0)
_network = jax.jit(
    lambda model, params, y, t: pure.apply(
        pure.graphdef(UNet, *model._net_args), params, y, t
    ),
    static_argnums=0,
)


def init(model: ScoreModel, key: PRNGKey) -> Params:
    """Random params (a pure dict of arrays); the output conv starts at zero."""
    return _random_params(model, key)


def _check_batch(model: ScoreModel, y: Array, t: Array) -> Array:
    shape = model.config.image_shape
    if y.ndim != 4 or tuple(y.shape[1:]) != shape:
        raise ValueError(
            f"y must have shape (B, {', '.join(map(str, shape))}), got "
            f"{tuple(y.shape)}; add a batch axis with y[None] for one image."
        )
    if not jnp.issubdtype(y.dtype, jnp.floating):
        raise ValueError(
            f"y must be floating point in [-1, 1], got {y.dtype}: convert uint8 "
            "pixels with jaxood.diffusion.to_diffusion_space."
        )
    t = jnp.asarray(t, y.dtype)
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != y.shape[0]):
        raise ValueError(
            f"t must be a scalar or have shape ({y.shape[0]},), got {t.shape}."
        )
    return jnp.broadcast_to(t, y.shape[:1])


def noise_prediction(model: ScoreModel, params: Params, y: Array, t: Array) -> Array:
    """ε̂(y, t) for a batch ``y`` ``(B, H, W, C)`` and ``t`` (scalar or ``(B,)``)."""
    t = _check_batch(model, y, t)
    return model.network(params, y, t)


def score(model: ScoreModel, params: Params, y: Array, t: Array) -> Array:
    """∇_y log p_t(y) = −ε̂(y, t) / σ(t), batched like :func:`noise_prediction`."""
    t = _check_batch(model, y, t)
    sigma = model.sde.sigma(t).reshape((-1,) + (1,) * (y.ndim - 1))
    return -model.network(params, y, t) / sigma


@functools.cache
def _one_example_score(model: ScoreModel):
    def score_fn(params: Params, y: Array, t: Array) -> Array:
        return score(model, params, y[None], jnp.reshape(t, (1,)))[0]

    return score_fn


def score_function(model: ScoreModel, params: Params) -> jax.tree_util.Partial:
    """``score_fn(y, t)`` for ONE example ``y`` ``(H, W, C)`` and a scalar ``t``,
    the form :func:`jaxood.diffusion.flipd` and the likelihood take.

    A ``jax.tree_util.Partial`` holding ``params``: it passes through ``jit`` as an
    argument, and the same model reuses one compiled program for any params.
    """
    return jax.tree_util.Partial(_one_example_score(model), params)


def to_diffusion_space(images: Array, key: PRNGKey | None = None) -> Array:
    """uint8 ``(N, H, W, C)`` pixels → float32 in [−1, 1].

    Bin midpoints ``2 (k + ½) / 256 − 1`` without a key; uniformly dequantised
    ``2 (k + u) / 256 − 1``, u ~ U[0, 1), with one.
    """
    # Twice the flows' model space (k + u) / 256 − ½: the same checks and noise.
    return 2.0 * (to_model_space(images) if key is None else dequantize(key, images))


def denoising_loss(model: ScoreModel) -> LossFn:
    """``loss(params, images_uint8, key)``: the ε-prediction loss, mean squared
    error per dimension over t ~ U[t_min, 1] and ε ~ N(0, I), on dequantised
    images (fresh t, ε and dequantisation noise every step)."""
    t_min = model.config.t_min

    def loss_fn(params, images, key):
        key_u, key_t, key_eps = jax.random.split(key, 3)
        y = to_diffusion_space(images, key_u)
        t = jax.random.uniform(key_t, y.shape[:1], y.dtype, t_min, 1.0)
        y_t, eps = model.sde.marginal_sample(key_eps, y, t)
        loss = jnp.mean((model.network(params, y_t, t) - eps) ** 2)
        return loss, {}

    return loss_fn
