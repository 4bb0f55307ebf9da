"""Local intrinsic dimension from Jacobian-vector products."""

from jaxood.lid.calibration import calibrate_log_tau, lpca
from jaxood.lid.estimators import lidl, threshold_lid
from jaxood.lid.flow import (
    flatten_latents,
    flow_decoder,
    flow_spectra,
    unflatten_latents,
)
from jaxood.lid.matrix_free import MatrixFreeLID, lidl_matrix_free
from jaxood.lid.spectrum import Spectrum, jacobian, jacobian_spectrum
from jaxood.lid.vae import vae_decoder_spectra

__all__ = [
    "MatrixFreeLID",
    "Spectrum",
    "calibrate_log_tau",
    "flatten_latents",
    "flow_decoder",
    "flow_spectra",
    "jacobian",
    "jacobian_spectrum",
    "lidl",
    "lidl_matrix_free",
    "lpca",
    "threshold_lid",
    "unflatten_latents",
    "vae_decoder_spectra",
]
