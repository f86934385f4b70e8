"""Parallel-in-time Kalman filter and smoother for one series, in square-root form.

The filter is the associative scan of Särkkä & García-Fernández (2021): every step ``t`` becomes an
element :math:`(A_t, b_t, C_t, \\eta_t, J_t)` describing
:math:`p(x_t \\mid x_{t-1}, y_t) = N(A_t x_{t-1} + b_t, C_t)` and
:math:`p(y_t \\mid x_{t-1}) \\propto N_I(x_{t-1}; \\eta_t, J_t)`; the prefix of elements ``0..t`` is
the filtered distribution of :math:`x_t`. As in Yaghoobi, Corenflos, Hassan & Särkkä (2025) the
state covariances are carried as factors :math:`C = U U^T` and every combination is written with
triangularisations (QR) and the Cholesky factor of :math:`I + U_i^T J_j U_i`, whose eigenvalues
are at least one; that keeps float32 stable where the plain form is not. The information matrix
:math:`J` (rank at most ``m``) is carried as a symmetrised matrix: its factor would be rank
deficient, and the derivative of a QR decomposition does not exist there, so ``grad`` would fail.

Combination of an earlier element ``i`` with a later ``j``, with
:math:`\\Xi \\Xi^T = I + U_i^T J_j U_i`, :math:`V = \\Xi^{-1} U_i^T J_j` and
:math:`G = (I + C_i J_j)^{-1} = I - U_i \\Xi^{-T} V` (Woodbury):

.. math::

    A &= A_j G A_i, \\quad b = A_j G (b_i + C_i \\eta_j) + b_j, \\quad
    U = \\mathrm{tria}[A_j U_i \\Xi^{-T},\\ U_j] \\\\
    \\eta &= A_i^T G^T (\\eta_j - J_j b_i) + \\eta_i, \\quad
    J = A_i^T (J_j - V^T V) A_i + J_i

The smoother scans the backward elements :math:`(E_t, g_t, D_t)` of the RTS recursion in reverse
(Särkkä & García-Fernández 2021, section 4), again with factors :math:`L_t = D_t D_t^T`. The
log-likelihood is computed afterwards, in parallel over time, from the predicted moments.

Missing entries are decoupled exactly as in :mod:`.sequential`: zero observation row, unit noise
variance uncorrelated with the rest, zero innovation. Exact diffuse priors are not representable
in these elements; :func:`probssm.kalman.filter` routes them to the sequential method.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from ._linalg import chol_psd, cholesky, solve_lower, solve_lower_transposed, symmetrize, tria
from .model import LGSSM

_LOG_2PI = math.log(2.0 * math.pi)


def _masked_observation(y, H, R, d):
    """Decouple missing entries: zero row of H, unit variance, zero innovation."""
    observed = ~jnp.isnan(y)
    obs = observed.astype(H.dtype)
    H = H * obs[:, None]
    R = R * obs[:, None] * obs[None, :] + jnp.diag(1.0 - obs)
    innovation_base = jnp.where(observed, y - d, 0.0)
    return observed, H, R, innovation_base


def _step_params(model: LGSSM, T: int):
    """Per-step parameters with a leading time axis where the model varies in time.

    Returns (transition params for steps 1..T-1, taken at t-1), (observation params for 0..T-1),
    and the vmap axes of each.
    """
    def field(name, sl):
        value = getattr(model, name)
        if name in model.time_varying:
            return value[sl], 0
        return value, None

    trans = {k: field(k, slice(0, T - 1)) for k in ("transition_matrix", "transition_cov", "transition_offset")}
    obs = {k: field(k, slice(0, T)) for k in ("observation_matrix", "observation_cov", "observation_offset")}
    return trans, obs


def _vmap_over_time(fn, params: dict, extra: dict):
    """``vmap`` ``fn(**params, **extra)`` over the leading time axis where there is one."""
    names = list(params) + list(extra)
    values = [v for v, _ in params.values()] + list(extra.values())
    axes = [a for _, a in params.values()] + [0] * len(extra)
    return jax.vmap(lambda *args: fn(**dict(zip(names, args))), in_axes=axes)(*values)


def _update_factors(prior_sqrt, H, R_sqrt):
    """Joint triangularisation for one update: the innovation factor, gain and posterior factor.

    ``tria([[H N, R^{1/2}], [N, 0]]) = [[S^{1/2}, 0], [K S^{1/2}, U]]`` with ``N N^T`` the prior
    covariance, so ``K = Psi21 Psi11^{-1}`` and ``U U^T = (I - K H) P (I - K H)^T + K R K^T``.
    """
    n, m = prior_sqrt.shape[0], H.shape[0]
    top = jnp.concatenate([H @ prior_sqrt, R_sqrt], axis=1)
    bottom = jnp.concatenate([prior_sqrt, jnp.zeros((n, m), prior_sqrt.dtype)], axis=1)
    psi = tria(jnp.concatenate([top, bottom], axis=0))
    s_sqrt, psi21, post_sqrt = psi[:m, :m], psi[m:, :m], psi[m:, m:]
    return s_sqrt, psi21, post_sqrt


def _first_element(m0, P0, y, H, R, d):
    n = m0.shape[0]
    _, H, R, base = _masked_observation(y, H, R, d)
    s_sqrt, psi21, post_sqrt = _update_factors(chol_psd(P0), H, chol_psd(R))
    # K = psi21 S^{-1/2}; the innovation is whitened by S^{-1/2}.
    white = solve_lower(s_sqrt, base - H @ m0)
    zeros = jnp.zeros((n, n), m0.dtype)
    return (zeros, m0 + psi21 @ white, post_sqrt, jnp.zeros(n, m0.dtype), zeros)


def _generic_element(transition_matrix, transition_cov, transition_offset,
                     observation_matrix, observation_cov, observation_offset, y):
    F, u = transition_matrix, transition_offset
    _, H, R, base = _masked_observation(y, observation_matrix, observation_cov, observation_offset)
    s_sqrt, psi21, post_sqrt = _update_factors(chol_psd(transition_cov), H, chol_psd(R))
    white = solve_lower(s_sqrt, base - H @ u)                         # S^{-1/2} eps
    HF_white = solve_lower(s_sqrt, H @ F)                              # S^{-1/2} H F
    A = F - psi21 @ HF_white                                           # (I - K H) F
    b = u + psi21 @ white                                              # u + K eps
    eta = HF_white.T @ white                                           # F^T H^T S^{-1} eps
    J = HF_white.T @ HF_white                                          # F^T H^T S^{-1} H F
    return (A, b, post_sqrt, eta, J)


def _combine_filter(earlier, later):
    """Associative combination of filtering elements (works on leading batch axes)."""
    A_i, b_i, U_i, eta_i, J_i = earlier
    A_j, b_j, U_j, eta_j, J_j = later
    n = A_i.shape[-1]
    eye = jnp.eye(n, dtype=A_i.dtype)
    Xi = cholesky(eye + symmetrize(U_i.mT @ J_j @ U_i), unrolled=False)
    V = solve_lower(Xi, U_i.mT @ J_j, unrolled=False)                  # Xi^{-1} U_i^T J_j
    U_Xi = solve_lower(Xi, U_i.mT, unrolled=False).mT                 # U_i Xi^{-T}
    G = eye - U_Xi @ V                                                  # (I + C_i J_j)^{-1}
    AjG = A_j @ G
    A = AjG @ A_i
    C_eta = U_i @ (U_i.mT @ eta_j[..., None])
    b = (AjG @ (b_i[..., None] + C_eta))[..., 0] + b_j
    U = tria(jnp.concatenate([A_j @ U_Xi, U_j], axis=-1), unrolled=False)
    eta = (A_i.mT @ G.mT @ (eta_j[..., None] - J_j @ b_i[..., None]))[..., 0] + eta_i
    J = symmetrize(A_i.mT @ (J_j - V.mT @ V) @ A_i + J_i)
    return A, b, U, eta, J


def _log_likelihood_terms(pred_mean, pred_cov, y, H, R, d):
    """log N(y_obs; H a + d, H P H^T + R) over the observed entries of one step."""
    observed, Hm, Rm, base = _masked_observation(y, H, R, d)
    S = symmetrize(Hm @ pred_cov @ Hm.T + Rm)
    L = cholesky(S)
    white = solve_lower(L, base - Hm @ pred_mean)
    k = jnp.sum(observed)
    return -0.5 * (k * _LOG_2PI + 2.0 * jnp.sum(jnp.log(jnp.diagonal(L))) + white @ white)


def filter_single(model: LGSSM, y):
    """Parallel filter of one series ``y`` ``(T, m)``; same outputs as the sequential filter."""
    T = y.shape[0]
    trans, obs = _step_params(model, T)
    obs0 = {k: (v if a is None else v[0]) for k, (v, a) in obs.items()}
    first = _first_element(model.initial_mean, model.initial_cov, y[0], obs0["observation_matrix"],
                           obs0["observation_cov"], obs0["observation_offset"])
    first = jax.tree_util.tree_map(lambda a: a[None], first)
    if T > 1:
        obs_rest = {k: (v, None) if a is None else (v[1:], 0) for k, (v, a) in obs.items()}
        rest = _vmap_over_time(_generic_element, {**trans, **obs_rest}, {"y": y[1:]})
        elements = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), first, rest)
    else:
        elements = first
    _, mean, U, _, _ = jax.lax.associative_scan(_combine_filter, elements)
    cov = symmetrize(U @ U.mT)
    out = _assemble(model, y, mean, cov, trans, obs)
    out["cov_sqrt"] = U
    return out


def _predict(F, Q, u, mean, cov):
    return F @ mean + u, symmetrize(F @ cov @ F.T + Q)


def _assemble(model, y, mean, cov, trans, obs):
    """Predicted moments, observation predictions and log-likelihood terms from filtered ones."""
    T = y.shape[0]
    if T > 1:
        pm, pc = _vmap_over_time(
            lambda transition_matrix, transition_cov, transition_offset, mean, cov: _predict(
                transition_matrix, transition_cov, transition_offset, mean, cov),
            trans, {"mean": mean[:-1], "cov": cov[:-1]},
        )
        pred_mean = jnp.concatenate([model.initial_mean[None], pm])
        pred_cov = jnp.concatenate([model.initial_cov[None], pc])
    else:
        pred_mean, pred_cov = model.initial_mean[None], model.initial_cov[None]

    def observe(observation_matrix, observation_cov, observation_offset, pm, pc, y):
        H, R, d = observation_matrix, observation_cov, observation_offset
        return (H @ pm + d, symmetrize(H @ pc @ H.T + R),
                _log_likelihood_terms(pm, pc, y, H, R, d))

    obs_mean, obs_cov, terms = _vmap_over_time(observe, obs, {"pm": pred_mean, "pc": pred_cov, "y": y})
    last = {k: (v if k not in model.time_varying else v[-1]) for k, v in (
        (k, getattr(model, k)) for k in ("transition_matrix", "transition_cov", "transition_offset"))}
    next_mean, next_cov = _predict(last["transition_matrix"], last["transition_cov"],
                                   last["transition_offset"], mean[-1], cov[-1])
    return dict(
        mean=mean, cov=cov, predicted_mean=pred_mean, predicted_cov=pred_cov,
        predicted_diffuse_cov=jnp.zeros_like(pred_cov),
        observation_mean=obs_mean, observation_cov=obs_cov, log_likelihood_terms=terms,
        next_mean=next_mean, next_cov=next_cov,
    )


def _smoother_element(transition_matrix, transition_cov, transition_offset, mean, N):
    """Backward element from the filtered mean and covariance factor ``N`` (``P = N N^T``)."""
    F, u = transition_matrix, transition_offset
    n = F.shape[0]
    top = jnp.concatenate([F @ N, chol_psd(transition_cov)], axis=1)
    bottom = jnp.concatenate([N, jnp.zeros((n, n), N.dtype)], axis=1)
    psi = tria(jnp.concatenate([top, bottom], axis=0))
    psi11, psi21, D = psi[:n, :n], psi[n:, :n], psi[n:, n:]
    E = solve_lower_transposed(psi11, psi21.T).T                       # P F^T (F P F^T + Q)^{-1}
    g = mean - E @ (F @ mean + u)
    return E, g, D


def _combine_smoother(earlier, later):
    E_i, g_i, D_i = earlier
    E_j, g_j, D_j = later
    E = E_i @ E_j
    g = (E_i @ g_j[..., None])[..., 0] + g_i
    D = tria(jnp.concatenate([E_i @ D_j, D_i], axis=-1), unrolled=False)
    return E, g, D


def smooth_single(model: LGSSM, y):
    """Parallel filter and smoother of one series ``y`` ``(T, m)``."""
    out = filter_single(model, y)
    T = y.shape[0]
    mean, U = out["mean"], out["cov_sqrt"]
    n = mean.shape[-1]
    last = (jnp.zeros((1, n, n), mean.dtype), mean[-1:], U[-1:])
    if T > 1:
        trans, _ = _step_params(model, T)
        E, g, D = _vmap_over_time(_smoother_element, trans, {"mean": mean[:-1], "N": U[:-1]})
        elements = (jnp.concatenate([E, last[0]]), jnp.concatenate([g, last[1]]),
                    jnp.concatenate([D, last[2]]))
    else:
        elements = last
    # With reverse=True the scan hands the later element first.
    _, s_mean, s_D = jax.lax.associative_scan(
        lambda later, earlier: _combine_smoother(earlier, later), elements, reverse=True
    )
    s_cov = symmetrize(s_D @ s_D.mT)
    lag_one = s_cov[1:] @ elements[0][:-1].mT                  # Cov(x_{t+1}, x_t | y) = P^s_{t+1} E_t^T
    out.update(smoothed_mean=s_mean, smoothed_cov=s_cov, lag_one_cov=lag_one)
    return out
