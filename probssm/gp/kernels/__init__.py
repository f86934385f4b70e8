"""Kernels that know their state-space form (:mod:`probssm.gp.kernels.base` states the contract).

=====================  ====================  =========================================
kernel                 state dimension       state-space form
=====================  ====================  =========================================
``Matern12/32/52/72``  1 / 2 / 3 / 4         exact
``Constant``           1                     exact
``WhiteNoise``         0                     exact (added to the observation noise)
sum / product          sum / product         exact when the terms are
=====================  ====================  =========================================
"""

from .base import SDE, Kernel, Product, Sum
from .constant import Constant
from .matern import Matern12, Matern32, Matern52, Matern72
from .white import WhiteNoise

__all__ = [
    "Kernel", "Sum", "Product", "SDE",
    "Matern12", "Matern32", "Matern52", "Matern72", "Constant", "WhiteNoise",
]
