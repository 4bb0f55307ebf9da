"""Local intrinsic dimension from Jacobian-vector products."""

from jaxood.lid.estimators import lidl, threshold_lid
from jaxood.lid.matrix_free import MatrixFreeLID, lidl_matrix_free
from jaxood.lid.spectrum import Spectrum, jacobian, jacobian_spectrum

__all__ = [
    "MatrixFreeLID",
    "Spectrum",
    "jacobian",
    "jacobian_spectrum",
    "lidl",
    "lidl_matrix_free",
    "threshold_lid",
]
