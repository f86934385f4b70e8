"""A GP on sorted time stamps as a linear-Gaussian state-space model (:class:`probssm.kalman.LGSSM`).

For sorted times :math:`t_0 \\le \\dots \\le t_{T-1}`, gaps :math:`\\Delta_k = t_{k+1} - t_k`
(zero between repeated time stamps) and observation noise variances :math:`r_k`:

.. math::

    x_0 \\sim N(0, P(t_0)), \\qquad
    x_{k+1} = A(\\Delta_k) x_k + q_k, \\quad q_k \\sim N(0, Q(t_k, \\Delta_k)), \\qquad
    y_k = H x_k + \\varepsilon_k, \\quad \\varepsilon_k \\sim N(0, r_k + \\sigma^2_{white}).

The model's last transition (past the data) is the identity. Everything here is traceable: times,
observations and hyperparameters may be traced; sorting happens in :mod:`probssm.gp.inference`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..kalman import LGSSM
from .kernels.base import Kernel

__all__ = ["state_space_model", "check_kernel"]

_TIME_VARYING = frozenset({"transition_matrix", "transition_cov", "observation_cov"})


def check_kernel(kernel) -> Kernel:
    """``kernel`` if it is a kernel with a state, else a clear error."""
    if not isinstance(kernel, Kernel):
        raise TypeError(f"kernel: expected a probssm.gp kernel (e.g. Matern52()), got {type(kernel).__name__}")
    if kernel.state_dim == 0:
        raise ValueError(f"kernel {kernel!r} has no state (white noise only); add a kernel with a "
                         "state, e.g. Matern32() + WhiteNoise()")
    return kernel


def state_space_model(kernel: Kernel, t, noise) -> LGSSM:
    """The LGSSM of ``kernel`` observed at sorted times ``t`` with noise variances ``noise``.

    Parameters
    ----------
    kernel : Kernel
        State dimension ``n``.
    t : array ``(T,)``
        Sorted time stamps.
    noise : array ``(T,)`` or scalar
        Observation noise variance :math:`r_k \\ge 0` (the kernel's white noise is added).

    Returns
    -------
    LGSSM
        ``transition_matrix``, ``transition_cov`` ``(T, n, n)``, ``observation_matrix``
        ``(1, n)``, ``observation_cov`` ``(T, 1, 1)``, zero initial mean, initial covariance
        :math:`P(t_0)`; a proper prior, so every :mod:`probssm.kalman` method applies.
    """
    t = jnp.asarray(t)
    gaps = jnp.diff(t, append=t[-1:])
    transition_matrix, transition_cov = jax.vmap(kernel.transition)(t, gaps)
    dtype = transition_matrix.dtype
    observation_cov = (jnp.broadcast_to(noise, t.shape) + kernel.white_noise_variance).astype(dtype)
    return LGSSM(
        transition_matrix,
        transition_cov,
        kernel.measurement()[None, :].astype(dtype),
        observation_cov[:, None, None],
        jnp.zeros(kernel.state_dim, dtype),
        kernel.marginal_cov(t[0]).astype(dtype),
        time_varying=_TIME_VARYING,
    )
