"""The VAE: a static description, params as a pure dict, and pure functions of them.

Three models of the Vacant Holes paper come from one config:

- vanilla: conv (or MLP) encoder with ReLU, Gaussian posterior, N(0, I) prior;
- Lipschitz: the same with ``lipschitz=M`` (every encoder layer ℓ∞-norm-projected
  inside the forward pass, GroupSort activations): an M-Lipschitz encoder whose
  latent image of [0, 1]^D is compact;
- hyperspherical: ``latent="vmf"``, a vMF posterior and a uniform prior on the
  compact S^{d−1} (the Alexandroff extension of R^{d−1}).

Images are 8-bit values divided by 255 (``(B, H, W, C)`` in [0, 1]).

    model = VAE(VAEConfig(image_shape=(28, 28, 1), latent_dim=10))
    params = init(model, key)
    elbo(model, params, x, key)                     # (B,) nats, single sample
    log_prob(model, params, x, key, num_samples)    # (B,) IWAE bound in nats

References: Kingma & Welling, ICLR 2014 (ELBO); Burda, Grosse & Salakhutdinov,
"Importance Weighted Autoencoders", ICLR 2016 (IWAE); Glazunov & Zarras, UAI 2023
(the compact-latent VAEs); Davidson et al., UAI 2018 (S-VAE).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxood import checks, parallel
from jaxood.nets import pure
from jaxood.nets.vae_nets import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from jaxood.typing import Array, Params, PRNGKey
from jaxood.vae import likelihoods
from jaxood.vae.latents import LATENTS, Posterior


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Static description of a VAE (hashable: a jit static argument).

    Attributes:
        image_shape: (H, W, C).
        latent_dim: d; for ``latent="vmf"`` the ambient dimension of S^{d−1}.
        architecture: "conv" (28 or 32 px, the layouts of the Vacant Holes
            supplement §D; docs/vae.md) or "mlp".
        hidden: MLP widths of the encoder (the decoder uses them reversed).
        latent: "gaussian" or "vmf".
        likelihood: "bernoulli", "logistic" or "categorical".
        lipschitz: M for an M-Lipschitz (ℓ∞) encoder, or None.
    """

    image_shape: tuple[int, int, int] = (28, 28, 1)
    latent_dim: int = 10
    architecture: str = "conv"
    hidden: tuple[int, ...] = (256, 128)
    latent: str = "gaussian"
    likelihood: str = "bernoulli"
    lipschitz: float | None = None

    def __post_init__(self):
        if self.architecture not in ("conv", "mlp"):
            raise ValueError(
                f"architecture must be 'conv' or 'mlp', got {self.architecture!r}."
            )
        if self.latent not in LATENTS:
            raise ValueError(
                f"latent must be one of {list(LATENTS)}, got {self.latent!r}."
            )
        likelihoods.output_channels(self.likelihood, 1)  # validates the name
        if self.lipschitz is not None and not self.lipschitz > 0:
            raise ValueError(f"lipschitz must be positive, got {self.lipschitz}.")
        if self.latent_dim < (2 if self.latent == "vmf" else 1):
            raise ValueError(
                f"latent_dim must be ≥ 2 for a spherical latent and ≥ 1 otherwise, "
                f"got {self.latent_dim}."
            )
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        object.__setattr__(self, "hidden", tuple(self.hidden))

    @property
    def num_dims(self) -> int:
        h, w, c = self.image_shape
        return h * w * c


@dataclasses.dataclass(frozen=True)
class VAE:
    """The static structure derived from a :class:`VAEConfig`."""

    config: VAEConfig

    @functools.cached_property
    def latent(self):
        return LATENTS[self.config.latent](self.config.latent_dim)

    def random_params(self, key: PRNGKey) -> Params:
        rngs = nnx.Rngs(params=key)  # encoder first, then decoder: one key stream
        return {
            "encoder": pure.params_of(_encoder(self.config, rngs=rngs)),
            "decoder": pure.params_of(_decoder(self.config, rngs=rngs)),
        }

    def encoder_head(self, encoder_params: Params, x: Array) -> Array:
        """The encoder's raw output ``(B, head_size)`` (parsed by the latent)."""
        graph = pure.graphdef(_encoder, self.config)
        return pure.apply(graph, encoder_params, x)

    def decoder_output(self, decoder_params: Params, z: Array) -> Array:
        """The decoder's raw output: likelihood parameters per pixel."""
        return pure.apply(pure.graphdef(_decoder, self.config), decoder_params, z)


def _encoder(config: VAEConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    head_size = LATENTS[config.latent](config.latent_dim).head_size
    if config.architecture == "conv":
        return ConvEncoder(
            config.image_shape, head_size, lipschitz=config.lipschitz, rngs=rngs
        )
    return MLPEncoder(
        config.num_dims, config.hidden, head_size, lipschitz=config.lipschitz,
        rngs=rngs,
    )  # fmt: skip


def _decoder(config: VAEConfig, *, rngs: nnx.Rngs) -> nnx.Module:
    c = config
    out_channels = likelihoods.output_channels(c.likelihood, c.image_shape[-1])
    if c.architecture == "conv":
        return ConvDecoder(c.image_shape[0], c.latent_dim, out_channels, rngs=rngs)
    return MLPDecoder(
        c.latent_dim, c.hidden[::-1], c.image_shape, out_channels, rngs=rngs
    )


def check_images(model: VAE, x: Array, name: str = "x") -> None:
    """Raises a clear error unless ``x`` is a finite ``(B, H, W, C)`` float batch the
    model accepts (in [0, 1] for the discrete likelihoods).

    Shape and dtype are checked statically; values through :mod:`jaxood.checks`:
    at once on concrete arrays, and under ``jit`` when the caller runs the program
    through ``jaxood.checks.checked`` (or ``checkify``).
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a jaxood.vae.VAE, got {type(model).__name__}.")
    checks.float_array(
        x,
        name,
        "VAE inputs are uint8 pixels / 255: use jaxood.data.to_unit_interval; cast "
        "bfloat16/float16 to float32.",
    )
    if x.ndim != 4 or tuple(x.shape[1:]) != model.config.image_shape:
        raise ValueError(
            f"{name} must be (B, {', '.join(map(str, model.config.image_shape))}), "
            f"got shape {tuple(x.shape)}."
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {tuple(x.shape)}).")
    if model.config.likelihood == "bernoulli":
        # Defined for any real x (the intensity-scaling ablation feeds x·s, s ≤ 15).
        checks.finite(x, name)
    else:
        checks.in_range(
            x,
            name,
            0.0,
            1.0,
            f"The {model.config.likelihood} likelihood needs uint8 pixels / 255 "
            "(jaxood.data.to_unit_interval).",
        )


# Jitted once per model (the same values as op by op, which took 9 s against 6 s for
# the convolutional VAE on 2 busy cores).
_random_params = jax.jit(VAE.random_params, static_argnums=0)


def init(model: VAE, key: PRNGKey) -> Params:
    """Random params ``{"encoder": ..., "decoder": ...}`` (pure dicts of arrays)."""
    return _random_params(model, key)


def encode(model: VAE, params: Params, x: Array) -> Posterior:
    """The posterior q(z|x): Gaussian ``(μ, log σ)`` or vMF ``(μ, κ)``, batched."""
    check_images(model, x)
    return model.latent.posterior(model.encoder_head(params["encoder"], x))


def decode_mean(model: VAE, params: Params, z: Array) -> Array:
    """``E[x|z]`` in [0, 1]: ``(B, d) -> (B, H, W, C)``."""
    out = model.decoder_output(params["decoder"], z)
    return likelihoods.mean_image(
        model.config.likelihood, out, model.config.image_shape[-1]
    )


def _log_likelihood(model: VAE, params: Params, z: Array, x: Array) -> Array:
    out = model.decoder_output(params["decoder"], z)
    return likelihoods.log_likelihood(model.config.likelihood, out, x)


def elbo_terms(
    model: VAE, params: Params, x: Array, key: PRNGKey
) -> tuple[Array, Array]:
    """Single-sample reconstruction term and analytic KL, ``(B,)`` each, in nats."""
    post = encode(model, params, x)
    z = model.latent.sample(key, post)
    return _log_likelihood(model, params, z, x), model.latent.kl(post)


def _elbo(model: VAE, params: Params, x: Array, key: PRNGKey) -> Array:
    reconstruction, kl = elbo_terms(model, params, x, key)
    return reconstruction - kl


_elbo_jit = jax.jit(_elbo, static_argnums=0)


def elbo(model: VAE, params: Params, x: Array, key: PRNGKey) -> Array:
    """``E_q[log p(x|z)] − KL(q(z|x) ‖ p(z))`` with one sample and the analytic KL.

    Jitted with ``model`` static: op by op it ran 4x (conv, B = 64) to 2000x
    (vMF + Lipschitz encoder, B = 1) slower. ``x`` is checked by
    :func:`check_images`: a plain call raises ``InputError`` on NaN or values
    outside [0, 1] (one error flag copied to the host); inside your own ``jit``
    under ``jaxood.checks.checked``.

    Args:
        model, params: the VAE.
        x: ``(B, H, W, C)`` images in [0, 1].
        key: PRNG key of the posterior sample.

    Returns:
        ``(B,)`` in nats (a lower bound of log p(x)).
    """
    check_images(model, x)  # static checks before tracing: clear tracebacks
    return _elbo_jit(model, params, x, key)


def importance_terms(
    model: VAE,
    params: Params,
    x: Array,
    key: PRNGKey,
    num_samples: int,
    *,
    chunk_size: int | None = None,
) -> tuple[Array, Array]:
    """``log p(x|z_i)`` and ``log p(x|z_i) + log p(z_i) − log q(z_i|x)``, z_i ~ q(z|x).

    The encoder runs once; the k samples are vmapped in chunks of ``chunk_size``
    (``lax.map`` over chunks) so memory is that of one chunk of decoder passes.
    Sample i uses ``fold_in(key, i)``: results do not depend on the chunk size.

    Returns:
        Two ``(B, num_samples)`` arrays in nats.
    """
    num_samples = checks.positive_int(num_samples, "num_samples")
    chunk = num_samples if chunk_size is None else chunk_size
    chunk = checks.positive_int(chunk, "chunk_size")
    if not 1 <= chunk <= num_samples or num_samples % chunk:
        raise ValueError(
            f"chunk_size must divide num_samples ({num_samples}), got {chunk_size}."
        )
    post = encode(model, params, x)
    batch = x.shape[0]

    def samples(indices):
        """``(B, chunk)`` terms of the samples ``indices``. The chunk is folded
        into the batch axis batch-major (one decoder call of ``B · chunk``), the
        order that keeps the batch sharding on a mesh with explicit axes."""
        draw = lambda i: model.latent.sample(jax.random.fold_in(key, i), post)  # noqa: E731
        zs = jax.vmap(draw)(indices)  # (chunk, B, d)
        z = parallel.reshape_batch(
            jnp.moveaxis(zs, 0, 1), (batch * chunk, zs.shape[-1])
        )
        xs = jnp.broadcast_to(x[:, None], (batch, chunk, *x.shape[1:]))
        xs = parallel.reshape_batch(xs, (batch * chunk, *x.shape[1:]))
        log_lik = parallel.reshape_batch(
            _log_likelihood(model, params, z, xs), (batch, chunk)
        )
        log_ratio = jax.vmap(
            lambda z: model.latent.log_prior(z) - model.latent.log_q(post, z)
        )(zs).T
        return log_lik, log_lik + log_ratio

    indices = jnp.arange(num_samples).reshape(num_samples // chunk, chunk)
    log_lik, weight = jax.lax.map(samples, indices)  # (chunks, B, chunk) each
    # -> (B, num_samples), keeping the batch sharding.
    to_batch_major = lambda a: parallel.reshape_batch(  # noqa: E731
        jnp.moveaxis(a, 1, 0), (batch, num_samples)
    )
    return to_batch_major(log_lik), to_batch_major(weight)


def iwae_bound(weights: Array) -> Array:
    """``log (1/k) Σ_i w_i`` over the last axis of k log importance weights (nats)."""
    return jax.nn.logsumexp(weights, axis=-1) - math.log(weights.shape[-1])


def _importance_estimates(model, params, x, key, *, num_samples, chunk_size):
    log_lik, weights = importance_terms(
        model, params, x, key, num_samples, chunk_size=chunk_size
    )
    return log_lik, iwae_bound(weights)


_IW_STATIC = ("num_samples", "chunk_size")
_importance_jit = jax.jit(
    _importance_estimates, static_argnums=0, static_argnames=_IW_STATIC
)


def importance_estimates(
    model: VAE,
    params: Params,
    x: Array,
    key: PRNGKey,
    num_samples: int = 100,
    chunk_size: int | None = None,
) -> tuple[Array, Array]:
    """Decoder log-likelihoods and the IWAE estimate from one set of draws (jitted).

    Returns:
        ``log p(x | z_i)`` ``(B, num_samples)`` (what the hole indicator spreads) and
        the IWAE estimate ``log (1/k) Σ_i p(x, z_i)/q(z_i|x)`` ``(B,)``, in nats.
    """
    check_images(model, x)  # static checks before tracing: clear tracebacks
    return _importance_jit(
        model,
        params,
        x,
        key,
        num_samples=checks.positive_int(num_samples, "num_samples"),
        chunk_size=chunk_size,
    )


def log_prob(
    model: VAE,
    params: Params,
    x: Array,
    key: PRNGKey,
    num_samples: int = 100,
    chunk_size: int | None = None,
) -> Array:
    """The IWAE estimate of log p(x), ``(B,)`` nats (:func:`importance_estimates`).

    A lower bound in expectation that grows with k = ``num_samples`` towards
    log p(x); k = 1 is the ELBO with a sampled KL.
    """
    return importance_estimates(model, params, x, key, num_samples, chunk_size)[1]


def decoder_log_likelihoods(
    model: VAE,
    params: Params,
    x: Array,
    key: PRNGKey,
    num_samples: int = 100,
    chunk_size: int | None = None,
) -> Array:
    """``log p(x | z_i)``, z_i ~ q(z|x), ``(B, num_samples)`` nats: the same draws as
    :func:`log_prob` with the same key (:func:`importance_estimates`)."""
    return importance_estimates(model, params, x, key, num_samples, chunk_size)[0]


def sample(model: VAE, params: Params, key: PRNGKey, num: int) -> Array:
    """Mean images ``E[x|z]`` of ``num`` prior draws, ``(num, H, W, C)`` in [0, 1]."""
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a jaxood.vae.VAE, got {type(model).__name__}.")
    num = checks.positive_int(num, "num")
    d = model.config.latent_dim
    z = jax.random.normal(key, (num, d))
    if model.config.latent == "vmf":
        z = z / jnp.linalg.norm(z, axis=-1, keepdims=True)  # uniform on the sphere
    return decode_mean(model, params, z)
