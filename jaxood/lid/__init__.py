"""Local intrinsic dimension from Jacobian-vector products."""

from jaxood.lid.calibration import calibrate_log_tau, lpca, widest_log_tau
from jaxood.lid.estimators import lidl, threshold_lid
from jaxood.lid.flow import (
    flatten_latents,
    flow_decoder,
    flow_encoder,
    flow_slq,
    flow_spectra,
    unflatten_latents,
)
from jaxood.lid.images import flow_lidl_images, flow_spectra_images
from jaxood.lid.quadrature import (
    Quadrature,
    SLQEstimate,
    SpectralQuadrature,
    lidl_from,
    slq,
    slq_lidl,
    slq_threshold_lid,
    threshold_lid_from,
)
from jaxood.lid.spectrum import Spectrum, jacobian, jacobian_spectrum
from jaxood.lid.vae import vae_decoder_spectra

__all__ = [
    "Quadrature",
    "SLQEstimate",
    "SpectralQuadrature",
    "Spectrum",
    "calibrate_log_tau",
    "flatten_latents",
    "flow_decoder",
    "flow_encoder",
    "flow_lidl_images",
    "flow_slq",
    "flow_spectra",
    "flow_spectra_images",
    "jacobian",
    "jacobian_spectrum",
    "lidl",
    "lidl_from",
    "lpca",
    "slq",
    "slq_lidl",
    "slq_threshold_lid",
    "threshold_lid",
    "threshold_lid_from",
    "unflatten_latents",
    "vae_decoder_spectra",
    "widest_log_tau",
]
