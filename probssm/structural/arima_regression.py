"""Regression coefficients as states of a SARIMAX model (statsmodels' ``mle_regression=False``).

Instead of the observation offset :math:`z_t^T\\beta` with :math:`\\beta` a parameter, the
:math:`k` coefficients join the state vector after the ARIMA states,

.. math::

    y_t = (H,\\; z_t^T) \\begin{pmatrix} x_t \\\\ \\beta_t \\end{pmatrix}, \\qquad
    \\beta_{t+1} = \\beta_t + \\omega_t, \\quad \\omega_t \\sim N(0, \\mathrm{diag}(\\sigma^2_{\\beta})),

started diffuse. With ``time_varying_regression`` the variances :math:`\\sigma^2_{\\beta_j}` are
the parameters ``var.{column}``; otherwise :math:`\\omega_t = 0` and the coefficients are
constant, estimated by the filter and the smoother rather than by maximum likelihood.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.linalg import block_diag

from ..kalman.model import LGSSM

__all__ = ["with_state_regression"]


def with_state_regression(model: LGSSM, exog, variances=None) -> LGSSM:
    """``model`` (``n`` states, one observation) with ``k`` regression states appended.

    Parameters
    ----------
    model : LGSSM
        Time-invariant observation matrix ``(1, n)``, no regression offset.
    exog : array, shape ``(T, k)``
        The regressors :math:`z_t`; they become the loadings of the new states.
    variances : array, shape ``(k,)``, optional
        :math:`\\sigma^2_{\\beta}`; ``None`` for constant coefficients.

    Returns
    -------
    LGSSM
        ``n + k`` states: :math:`F = \\mathrm{diag}(F, I_k)`,
        :math:`Q = \\mathrm{diag}(Q, \\mathrm{diag}(\\sigma^2_\\beta))`, observation matrix
        ``(T, 1, n + k)``, initial mean and covariance padded with zeros, the new states diffuse.
    """
    dtype = model.transition_matrix.dtype
    T, k = exog.shape
    q = jnp.zeros((k, k), dtype) if variances is None else jnp.diag(jnp.asarray(variances, dtype))
    H = jnp.concatenate([jnp.broadcast_to(model.observation_matrix, (T, 1, model.observation_matrix.shape[-1])),
                         exog.astype(dtype)[:, None, :]], axis=-1)
    offset = model.transition_offset
    if offset is not None:
        offset = jnp.concatenate([offset, jnp.zeros(offset.shape[:-1] + (k,), dtype)], axis=-1)
    diffuse = model.initial_diffuse_cov
    if diffuse is None:
        diffuse = jnp.zeros_like(model.initial_cov)
    return model.replace(
        transition_matrix=block_diag(model.transition_matrix, jnp.eye(k, dtype=dtype)),
        transition_cov=block_diag(model.transition_cov, q),
        observation_matrix=H,
        transition_offset=offset,
        initial_mean=jnp.concatenate([model.initial_mean, jnp.zeros(k, dtype)]),
        initial_cov=block_diag(model.initial_cov, jnp.zeros((k, k), dtype)),
        initial_diffuse_cov=block_diag(diffuse, jnp.eye(k, dtype=dtype)),
        time_varying=set(model.time_varying) | {"observation_matrix"},
    )
