"""One Kalman prediction and one update, in square-root form, for filters that linearise as
they go (:mod:`probssm.nonlinear`).

A Gaussian :math:`N(\\mu, P)` is carried as its mean and a square factor :math:`U`,
:math:`P = U U^T`. The factorisations are those of the parallel filter's elements
(:mod:`.parallel`), applied to one step:

.. math::

    \\text{predict:}\\quad & \\mu' = F \\mu + b, \\qquad
        U' = \\mathrm{tria}\\,[F U,\\; Q^{1/2}] \\\\
    \\text{update:}\\quad & \\mathrm{tria}\\begin{bmatrix} H U & R^{1/2} \\\\ U & 0 \\end{bmatrix}
        = \\begin{bmatrix} S^{1/2} & 0 \\\\ K S^{1/2} & U^+ \\end{bmatrix}, \\qquad
        \\mu^+ = \\mu + K S^{1/2} \\, S^{-1/2} (y - H \\mu - d),

with :math:`U^+ U^{+T} = (I - K H) P (I - K H)^T + K R K^T` (Joseph form, positive
semi-definite by construction). Missing entries (NaN) of ``y`` are decoupled as everywhere in
:mod:`probssm.kalman`: zero row of :math:`H`, unit noise variance, zero innovation.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from ._linalg import chol_psd, solve_lower, tria
from .parallel import _masked_observation, _update_factors

__all__ = ["predict", "update"]

_LOG_2PI = math.log(2.0 * math.pi)


def predict(mean, chol, F, Q, b):
    """Predict :math:`x' = F x + b + \\eta`, :math:`\\eta \\sim N(0, Q)`.

    Parameters
    ----------
    mean : ``(n,)``
    chol : ``(n, n)``
        Square factor of the covariance of ``x``.
    F : ``(n, n)``
    Q : ``(n, n)``
        Positive semi-definite.
    b : ``(n,)``

    Returns
    -------
    mean ``(n,)``, chol ``(n, n)`` (lower triangular) of :math:`x'`.
    """
    return F @ mean + b, tria(jnp.concatenate([F @ chol, chol_psd(Q)], axis=1))


def update(mean, chol, y, H, R, d):
    """Condition :math:`x \\sim N(\\mu, U U^T)` on :math:`y = H x + d + \\varepsilon`,
    :math:`\\varepsilon \\sim N(0, R)`.

    Parameters
    ----------
    mean : ``(n,)``
    chol : ``(n, n)``
    y : ``(m,)``
        NaN entries are missing.
    H : ``(m, n)``
    R : ``(m, m)``
        Positive semi-definite.
    d : ``(m,)``

    Returns
    -------
    mean ``(n,)``, chol ``(n, n)`` of the conditioned state, and the log-density
    :math:`\\log N(y_{obs};\\, H_{obs}\\mu + d_{obs},\\, H_{obs} P H_{obs}^T + R_{obs})` of the
    observed entries (zero when none is observed).
    """
    observed, H, R, base = _masked_observation(y, H, R, d)
    s_sqrt, gain_sqrt, post_sqrt = _update_factors(chol, H, chol_psd(R))
    white = solve_lower(s_sqrt, base - H @ mean)
    # The triangular factor's diagonal may be negative (QR's sign convention). A missing entry's
    # row is decoupled (zero row of H, unit variance), so its pivot is one up to the jitter of
    # chol_psd: it is left out, and a step without observations has log-density exactly zero.
    log_det = jnp.sum(jnp.where(observed, jnp.log(jnp.abs(jnp.diagonal(s_sqrt))), 0.0))
    log_density = -0.5 * (jnp.sum(observed) * _LOG_2PI + white @ white) - log_det
    return mean + gain_sqrt @ white, post_sqrt, log_density
