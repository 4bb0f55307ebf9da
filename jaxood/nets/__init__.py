"""Flax NNX networks. Only model code sees these modules; the public API sees params.

:mod:`jaxood.nets.pure` is the one place where a module becomes pure functions of a
params pytree (cached graph definitions, ``params_of``, ``apply``).
"""

from jaxood.nets import pure
from jaxood.nets.coupling_net import CouplingNet
from jaxood.nets.layers import ActNorm2d, ZeroConv2d, actnorm_statistics

__all__ = [
    "ActNorm2d",
    "CouplingNet",
    "ZeroConv2d",
    "actnorm_statistics",
    "pure",
]
