"""Kernels that know their state-space form (:mod:`probssm.gp.kernels.base` states the contract).

========================  ======================  =============================================
kernel                    state dimension         state-space form
========================  ======================  =============================================
``Matern12/32/52/72``     1 / 2 / 3 / 4           exact
``SquaredExponential``    N (order, 1..20)        Taylor approximation, error 9.1e-4 at N = 8
``Periodic``              2J + 1 (J harmonics)    truncated Bessel series, error 1e-6 default
``QuasiPeriodic``         (2J + 1)(p + 1)         periodic x Matérn, as accurate as Periodic
``Cosine``                2                       exact
``Constant``              1                       exact
``Linear``                2                       exact (non-stationary)
``Wiener``                1                       exact (non-stationary)
``IntegratedWiener``      q + 1                   exact (non-stationary)
``WhiteNoise``            0                       exact (added to the observation noise)
sum / product             sum / product           exact when the terms are
========================  ======================  =============================================
"""

from .base import SDE, Kernel, Product, Sum
from .constant import Constant
from .cosine import Cosine
from .matern import Matern12, Matern32, Matern52, Matern72
from .periodic import Periodic, QuasiPeriodic
from .squared_exponential import SquaredExponential
from .trends import IntegratedWiener, Linear, Wiener
from .white import WhiteNoise

__all__ = [
    "Kernel", "Sum", "Product", "SDE",
    "Matern12", "Matern32", "Matern52", "Matern72", "Constant", "WhiteNoise",
    "SquaredExponential", "Periodic", "QuasiPeriodic", "Cosine", "Linear", "Wiener", "IntegratedWiener",
]
