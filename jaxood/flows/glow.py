"""Multi-scale Glow / RealNVP with the per-scale likelihood decomposition.

For each scale i = 0..L-1: squeeze 2x2, K flow steps (in a ``lax.scan``), then
(except at the last scale) split off the first half of the channels as the latent
z_i. The per-scale log-likelihood is

    lp_i(x) = log p_i(z_i) + sum over the K steps of scale i of log|det J_k|,

with each step's log-det computed on the full tensor entering the scale (channels
that continue to later scales included); squeeze and split contribute 0, and
``lp_0 + ... + lp_{L-1} = log p(x)`` exactly. ``lp_{L-1}`` is the final-scale score
of Schirrmeister et al.

Everything public is a pure function of a params pytree; ``Glow`` is a hashable
static description.

References: Kingma & Dhariwal, "Glow: Generative Flow with Invertible 1x1
Convolutions", NeurIPS 2018; Dinh, Sohl-Dickstein, Bengio, "Density estimation using
Real NVP", ICLR 2017; Schirrmeister et al., "Understanding Anomaly Detection with Deep
Invertible Networks through Hierarchies of Distributions and Features", NeurIPS 2020
(section 3 and official code ``invglow/evaluate.py::get_nlls`` for lp_i).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxood import checks
from jaxood.flows.actnorm import ActNorm
from jaxood.flows.bijector import Bijector
from jaxood.flows.conv1x1 import InvertibleConv1x1
from jaxood.flows.coupling import COMPUTE_DTYPES, TRANSFORMS, Coupling
from jaxood.flows.priors import PRIORS, ScalePrior
from jaxood.flows.squeeze import squeeze, unsqueeze
from jaxood.typing import Array, Params, PRNGKey

STEP_KINDS = ("glow", "realnvp")


@dataclasses.dataclass(frozen=True)
class GlowConfig:
    """Static description of a multi-scale flow (hashable).

    Attributes:
        image_shape: (H, W, C) in model space; H and W divisible by 2**num_scales.
        num_scales: L.
        steps_per_scale: K.
        hidden: width of every coupling network.
        coupling: ``"affine"`` (Glow), ``"additive"`` or ``"spline"`` (RQ-NSF).
        step: ``"glow"`` = ActNorm, LU 1x1 conv, channel coupling; ``"realnvp"`` =
            ActNorm then checkerboard couplings (parity 0, 1) and channel couplings
            (first half, second half).
        prior: ``"diagonal"`` (Schirrmeister) or ``"conditional"`` (Glow split prior).
        spline_bins, spline_bound: RQ spline settings (Kamkari et al.: 8, 3).
        checkpoint_coupling: rematerialise coupling nets in the backward pass.
        compute_dtype: the coupling networks' convolutions in ``"float32"``
            (default), ``"bfloat16"`` or ``"float16"`` (for accelerators: params and
            inputs are cast per call, the stored params stay float32). Everything
            else (the flow's transforms, log-determinants, priors, log p) is
            float32. On the shipped Fashion-MNIST Glow bfloat16 moves bits/dim by
            the amount in ``benchmarks/README.md``; on CPUs it is slower.
        scan_unroll: unroll the ``lax.scan`` over steps. None (default): unrolled
            when JAX's default backend is the CPU, where a rolled scan makes
            parameter gradients ~17x slower (docs/performance.md), rolled on GPU and
            TPU, where a small compiled graph is worth more. True or False forces
            it (the shipped experiment configs say True).
    """

    image_shape: tuple[int, int, int] = (32, 32, 1)
    num_scales: int = 3
    steps_per_scale: int = 8
    hidden: int = 128
    coupling: str = "affine"
    step: str = "glow"
    prior: str = "diagonal"
    spline_bins: int = 8
    spline_bound: float = 3.0
    checkpoint_coupling: bool = False
    scan_unroll: bool | None = None
    compute_dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        h, w, _ = self.image_shape
        factor = 2**self.num_scales
        if self.num_scales < 1 or h % factor or w % factor:
            raise ValueError(
                f"image_shape {self.image_shape} cannot be squeezed {self.num_scales} "
                f"times: H and W must be divisible by {factor}. Resize or pad 28x28 "
                "images to 32x32 (jaxood.data.resize / jaxood.data.pad)."
            )
        if self.steps_per_scale < 1 or self.hidden < 1:
            raise ValueError("steps_per_scale and hidden must be positive.")
        if self.coupling not in TRANSFORMS:
            raise ValueError(
                f"coupling must be one of {TRANSFORMS}, got {self.coupling!r}."
            )
        if self.step not in STEP_KINDS:
            raise ValueError(f"step must be one of {STEP_KINDS}, got {self.step!r}.")
        if self.prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {self.prior!r}.")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"compute_dtype must be one of {COMPUTE_DTYPES}, got "
                f"{self.compute_dtype!r}."
            )

    @property
    def num_dims(self) -> int:
        """D, the number of data dimensions."""
        h, w, c = self.image_shape
        return h * w * c


class LogProb(NamedTuple):
    """Output of :func:`log_prob`; all log-densities in nats of model-space x."""

    total: Array  # (B,) log p(x); () for one unbatched image
    per_scale: Array  # (B, L) lp_i, summing to total; (L,) unbatched
    latents: tuple[Array, ...]  # standardised latents u_i, N(0, I) under the model


@dataclasses.dataclass(frozen=True)
class Glow:
    """A multi-scale flow: the static structure derived from a :class:`GlowConfig`."""

    config: GlowConfig

    @functools.cached_property
    def step_bijectors(self) -> tuple[tuple[str, Bijector], ...]:
        """(name, bijector) pairs of one flow step, in forward order."""
        c = self.config
        coupling = functools.partial(
            Coupling,
            c.coupling,
            hidden=c.hidden,
            spline_bins=c.spline_bins,
            spline_bound=c.spline_bound,
            checkpoint=c.checkpoint_coupling,
            compute_dtype=c.compute_dtype,
        )
        if c.step == "glow":
            return (
                ("actnorm", ActNorm()),
                ("conv1x1", InvertibleConv1x1()),
                ("coupling", coupling(partition="channel")),
            )
        return (
            ("actnorm", ActNorm()),
            ("checker0", coupling(partition="checkerboard", parity=0)),
            ("checker1", coupling(partition="checkerboard", parity=1)),
            ("channel0", coupling(partition="channel", parity=0)),
            ("channel1", coupling(partition="channel", parity=1)),
        )

    @functools.cached_property
    def scale_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """Shape (H, W, C) of the tensor the steps of each scale act on."""
        h, w, c = self.config.image_shape
        shapes = []
        for i in range(self.config.num_scales):
            h, w, c = h // 2, w // 2, 4 * c
            shapes.append((h, w, c))
            if i < self.config.num_scales - 1:
                c //= 2
        return tuple(shapes)

    @functools.cached_property
    def priors(self) -> tuple[ScalePrior, ...]:
        last = self.config.num_scales - 1
        priors = []
        for i, (h, w, c) in enumerate(self.scale_shapes):
            if i < last:
                priors.append(
                    ScalePrior(self.config.prior, (h, w, c // 2), (h, w, c // 2))
                )
            else:
                priors.append(ScalePrior(self.config.prior, (h, w, c), None))
        return tuple(priors)

    @property
    def latent_shapes(self) -> tuple[tuple[int, int, int], ...]:
        """Shapes of the per-scale latents returned by :func:`encode`."""
        return tuple(p.latent_shape for p in self.priors)

    # ----------------------------------------------------------------- internals
    def _run_steps(
        self, steps: Params, h: Array, *, inverse: bool
    ) -> tuple[Array, Array]:
        bijectors = self.step_bijectors[::-1] if inverse else self.step_bijectors

        def body(carry, step_params):
            h, log_det = carry
            for name, bijector in bijectors:
                if inverse:
                    h, d = bijector.inverse_and_log_det(step_params[name], h)
                else:
                    h, d = bijector.forward_and_log_det(step_params[name], h)
                log_det = log_det + d
            return (h, log_det), None

        # Log-determinants accumulate in float32 at least, whatever the dtype of h
        # (a bfloat16 carry would not match the float32 terms of the bijectors).
        # zeros_like keeps the batch axis's sharding (a scan carry must not change).
        dtype = jnp.promote_types(h.dtype, jnp.float32)
        init = (h, jnp.zeros_like(h[:, 0, 0, 0], dtype=dtype))
        unrolled = self.config.scan_unroll
        if unrolled is None:
            unrolled = jax.default_backend() == "cpu"
        unroll = self.config.steps_per_scale if unrolled else 1
        (h, log_det), _ = jax.lax.scan(
            body, init, steps, reverse=inverse, unroll=unroll
        )
        return h, log_det

    def _split(self, i: int, h: Array) -> tuple[Array, Array | None]:
        if i == self.config.num_scales - 1:
            return h, None
        half = h.shape[-1] // 2
        return h[..., :half], h[..., half:]

    def forward(self, params: Params, x: Array) -> LogProb:
        per_scale, latents = [], []
        h = x
        for i, prior in enumerate(self.priors):
            scale = params[f"scale{i}"]
            h, log_det = self._run_steps(scale["steps"], squeeze(h), inverse=False)
            z, h = self._split(i, h)
            u, prior_lp = prior.standardize(scale["prior"], z, h)
            per_scale.append(prior_lp + log_det)
            latents.append(u)
        per_scale = jnp.stack(per_scale, axis=-1)
        return LogProb(jnp.sum(per_scale, axis=-1), per_scale, tuple(latents))

    def inverse(self, params: Params, latents: tuple[Array, ...]) -> Array:
        h = None
        for i in reversed(range(self.config.num_scales)):
            scale = params[f"scale{i}"]
            z = self.priors[i].unstandardize(scale["prior"], latents[i], h)
            h = z if h is None else jnp.concatenate([z, h], axis=-1)
            h, _ = self._run_steps(scale["steps"], h, inverse=True)
            h = unsqueeze(h)
        return h

    def random_params(self, key: PRNGKey) -> Params:
        params = {}
        for i, shape in enumerate(self.scale_shapes):
            key, prior_key = jax.random.split(key)
            steps = []
            for step_key in jax.random.split(
                jax.random.fold_in(key, i), self.config.steps_per_scale
            ):
                keys = jax.random.split(step_key, len(self.step_bijectors))
                steps.append(
                    {
                        name: b.init(k, shape)
                        for (name, b), k in zip(self.step_bijectors, keys, strict=True)
                    }
                )
            params[f"scale{i}"] = {
                "steps": jax.tree.map(lambda *xs: jnp.stack(xs), *steps),
                "prior": self.priors[i].init(prior_key),
            }
        return params

    def data_init(self, params: Params, x: Array) -> Params:
        """Data-dependent init of every bijector and prior on a batch, scale by scale.

        Each flow step calls :meth:`Bijector.data_init` on the tensor entering it
        (ActNorm standardises it, couplings initialise their inner ActNorms, the
        rest keep their params), then applies the step; the diagonal prior
        standardises the scale's latent. The K steps of a scale run in one rolled
        ``lax.scan``, so under ``jit`` (as in :func:`init`) the step is compiled
        once per scale instead of being dispatched op by op. Traceable.

        Args:
            params: from :meth:`random_params`.
            x: ``(B, H, W, C)`` model-space batch.

        Returns:
            Params of the same structure, shapes and dtypes.
        """
        new = dict(params)
        h = x
        for i, prior in enumerate(self.priors):
            scale = params[f"scale{i}"]

            def body(h, step):
                step = dict(step)
                for name, bijector in self.step_bijectors:
                    step[name] = bijector.data_init(step[name], h)
                    h, _ = bijector.forward_and_log_det(step[name], h)
                return h, step

            h, steps = jax.lax.scan(body, squeeze(h), scale["steps"])
            z, h = self._split(i, h)
            new[f"scale{i}"] = {
                "steps": steps,
                "prior": prior.data_init(scale["prior"], z),
            }
        return new


# --------------------------------------------------------------------- public API


def _check_model(model: Glow) -> None:
    if not isinstance(model, Glow):
        raise TypeError(
            f"model must be a jaxood.flows.Glow, got {type(model).__name__}."
        )


def _check_images(model: Glow, x: Array, name: str) -> None:
    """Static checks only (type, dtype, shape): they hold at trace time, read no
    values and copy nothing to the host. Values: :func:`jaxood.checks.model_space`.
    """
    checks.float_array(
        x,
        name,
        "Map uint8 pixels with jaxood.data.to_model_space (evaluation) or "
        "jaxood.data.dequantize (training); cast bfloat16/float16 to float32.",
    )
    image_shape = model.config.image_shape
    if x.ndim not in (3, 4) or tuple(x.shape[-3:]) != image_shape:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; the model expects a batch "
            f"(B, {', '.join(map(str, image_shape))}) or one image {image_shape}."
        )
    if x.ndim == 4 and x.shape[0] == 0:
        raise ValueError(
            f"{name} is an empty batch (shape {tuple(x.shape)}): pass at least one "
            "image."
        )


def _unbatch(tree):
    return jax.tree.map(lambda a: a[0], tree)


# ActNorm/prior log-scales above this mean a standard deviation below 1e-5 over the
# init batch: far below the quantisation noise of 8-bit data (bin width 1/256), so
# the dimension was constant and every other input gets log p of about -1e14.
_DEGENERATE_LOGSCALE = -math.log(1e-5)


def _check_not_degenerate(model: Glow, new: Params, num_images: int) -> None:
    scales = [new[f"scale{i}"] for i in range(model.config.num_scales)]
    logscales = [scale["steps"]["actnorm"]["logscale"] for scale in scales]
    if model.config.prior == "diagonal":
        logscales += [scale["prior"]["logscale"] for scale in scales]
    count = sum(jnp.sum(s > _DEGENERATE_LOGSCALE) for s in logscales)
    checks.check(
        count == 0,
        f"x_init: {{count}} ActNorm/prior dimensions are constant over the batch of "
        f"{num_images} images (std < 1e-5), which makes log p of any other input "
        "about -1e14. Initialise on a few hundred distinct, dequantized training "
        "images (jaxood.data.dequantize), not on constant or repeated ones.",
        count=count,
    )


def init(model: Glow, key: PRNGKey, x_init: Array) -> Params:
    """Random init followed by data-dependent ActNorm and prior init on ``x_init``.

    Args:
        model: the flow.
        key: PRNG key for conv weights and the 1x1 convolutions.
        x_init: ``(B, H, W, C)`` model-space batch (dequantized training images),
            B ≥ 2; a few hundred images give stable statistics. Checked
            (:mod:`jaxood.checks`): finite, inside model space, and no ActNorm or
            prior dimension constant over the batch.

    Returns:
        The params pytree. ActNorm and prior statistics are ordinary entries, so a
        restored checkpoint keeps them.

    Raises:
        InputError: ``x_init`` has NaN, values outside model space, or constant
            dimensions (one image repeated, constant images).
    """
    _check_model(model)
    _check_images(model, x_init, "x_init")
    if x_init.ndim != 4 or x_init.shape[0] < 2:
        raise ValueError(
            f"x_init must be a batch (B, H, W, C) with B ≥ 2, got shape "
            f"{tuple(x_init.shape)}: the data-dependent init of ActNorm and the "
            "prior takes per-dimension statistics over many images (use a few "
            "hundred)."
        )
    checks.model_space(x_init, "x_init")
    params = _data_init(model, model.random_params(key), x_init)
    _check_not_degenerate(model, params, x_init.shape[0])
    return params


# Jitted once per model: op by op, every op compiles separately, and the data init of
# a 3-scale, K = 8, hidden 64 Glow on 512 images took ~11 s on its first call (2 busy
# CPU cores) against ~4 s jitted; see Glow.data_init.
_data_init = jax.jit(Glow.data_init, static_argnums=0)


def _log_prob(model: Glow, params: Params, x: Array) -> LogProb:
    _check_model(model)
    _check_images(model, x, "x")
    if x.ndim == 3:
        return _unbatch(model.forward(params, x[None]))
    return model.forward(params, x)


_log_prob_jit = jax.jit(_log_prob, static_argnums=0)


def log_prob(model: Glow, params: Params, x: Array) -> LogProb:
    """log p(x) in nats, its per-scale parts lp_i, and the standardised latents.

    Jitted with ``model`` static; composes with ``jit``, ``vmap``, ``grad`` and
    ``jvp``. Shape and dtype are checked at trace time; values (finite, inside
    model space) by :mod:`jaxood.checks`: a plain call raises ``InputError`` (one
    error flag copied to the host), inside your own ``jit`` the check is active
    when you wrap it with ``jaxood.checks.checked`` or ``checkify.checkify``.

    Args:
        model: the flow.
        params: from :func:`init` or training.
        x: ``(B, H, W, C)`` float32 in model space ``[-0.5, 0.5]``, or one image
            ``(H, W, C)`` (then the outputs have no batch axis, so
            ``jax.vmap(lambda x: log_prob(model, params, x).total)`` works).

    Returns:
        ``LogProb(total (B,), per_scale (B, L), latents)``; ``per_scale`` sums to
        ``total``. For bits/dim: ``jaxood.data.bits_per_dim(-total, D)``.
    """
    # Static checks before tracing too: the error then carries no JAX trace note.
    _check_model(model)
    _check_images(model, x, "x")
    # On concrete x: read on the host now. Traced (a caller's jit, vmap, grad):
    # a checkify check in the caller's program, free unless it is checkified.
    checks.model_space(x, "x")
    return _log_prob_jit(model, params, x)


def encode(model: Glow, params: Params, x: Array) -> tuple[Array, ...]:
    """The standardised per-scale latents u_i (N(0, I) under the model).

    Args:
        model, params: the flow.
        x: ``(B, H, W, C)`` model-space batch or one image ``(H, W, C)``; checked
            as in :func:`log_prob`.

    Returns:
        One array per scale, ``(B, *s)`` for ``s`` in ``model.latent_shapes``
        (``s`` alone for one image).
    """
    return log_prob(model, params, x).latents


def latents_to_image(latents: tuple[Array, ...]) -> Array:
    """Per-scale latents ``(B, h_i, w_i, c_i)`` arranged back in image layout
    ``(B, H, W, C)``: the squeeze/split bookkeeping undone, no flow step applied.

    Neighbouring latent pixels then sit where the image pixels they came from sit,
    which is what the local-patch statistics of KLODS-R look at. A permutation: the
    values (and their N(0, I) law under the model) are unchanged.
    """
    h = None
    for u in reversed(latents):
        h = u if h is None else jnp.concatenate([u, h], axis=-1)
        h = unsqueeze(h)
    return h


def _decode(model: Glow, params: Params, latents: tuple[Array, ...]) -> Array:
    _check_model(model)
    latents = tuple(latents)
    shapes = model.latent_shapes
    got = [tuple(getattr(u, "shape", ())) for u in latents]
    single = len(latents) == len(shapes) and all(
        g == s for g, s in zip(got, shapes, strict=True)
    )
    batched = (
        len(latents) == len(shapes)
        and all(len(g) == 4 and g[1:] == s for g, s in zip(got, shapes, strict=True))
        and len({g[0] for g in got}) == 1
    )
    if not (single or batched):
        raise ValueError(
            f"decode expects {len(shapes)} latents of shapes (B, *s) for s in "
            f"{shapes} (or s alone for one example), got {got}."
        )
    for i, u in enumerate(latents):
        checks.float_array(u, f"latents[{i}]")
    if batched and got[0][0] == 0:
        raise ValueError(f"latents are an empty batch (shapes {got}).")
    if single:
        return model.inverse(params, tuple(u[None] for u in latents))[0]
    return model.inverse(params, latents)


_decode_jit = jax.jit(_decode, static_argnums=0)


def decode(model: Glow, params: Params, latents: tuple[Array, ...]) -> Array:
    """Inverse of :func:`encode`: per-scale latents -> model-space images.

    Jitted with ``model`` static; latents must be finite (checked as the images of
    :func:`log_prob` are).

    Args:
        model, params: the flow.
        latents: one array per scale, ``(B, *s)`` for ``s`` in
            ``model.latent_shapes``, or all without the batch axis.

    Returns:
        ``(B, H, W, C)`` model-space images (``(H, W, C)`` for unbatched latents).
    """
    latents = tuple(latents)
    for i, u in enumerate(latents):
        if hasattr(u, "dtype"):  # others are refused by _decode
            checks.finite(u, f"latents[{i}]", "Decode latents from encode or sample.")
    return _decode_jit(model, params, latents)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _sample(
    model: Glow, params: Params, key: PRNGKey, num: int, temperature: Array
) -> Array:
    keys = jax.random.split(key, model.config.num_scales)
    latents = tuple(
        temperature * jax.random.normal(k, (num, *s))
        for k, s in zip(keys, model.latent_shapes, strict=True)
    )
    return _decode(model, params, latents)


def sample(
    model: Glow, params: Params, key: PRNGKey, num: int, temperature: float = 1.0
) -> Array:
    """``num`` model-space samples ``(num, H, W, C)`` with latents drawn from
    N(0, temperature^2 I). Jitted with ``model`` and ``num`` static.

    Args:
        model, params: the flow.
        key: PRNG key of the latents.
        num: number of samples, a positive Python int.
        temperature: standard deviation of the latents, ≥ 0.
    """
    _check_model(model)
    num = checks.positive_int(num, "num")
    if not checks.is_traced(temperature):
        checks.check(
            jnp.isfinite(temperature) & (jnp.asarray(temperature) >= 0),
            "temperature must be finite and ≥ 0, got {t}.",
            t=temperature,
        )
    return _sample(model, params, key, num, temperature)
