"""Flax NNX networks. Only model code sees these modules; the public API sees params."""

from jaxood.nets.coupling_net import CouplingNet, coupling_net_graphdef
from jaxood.nets.layers import ActNorm2d, ZeroConv2d, actnorm_statistics

__all__ = [
    "ActNorm2d",
    "CouplingNet",
    "ZeroConv2d",
    "actnorm_statistics",
    "coupling_net_graphdef",
]
