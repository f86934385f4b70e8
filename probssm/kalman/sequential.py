"""Sequential Kalman filter and smoother for one series (no batch axes).

Observations are processed one element at a time (the univariate treatment of Koopman & Durbin
2000; Durbin & Koopman 2012, section 6.4). Per time step the observation covariance of the observed
entries is factorised as :math:`R = L D L^T` (unit lower :math:`L`) and the observation equation is
premultiplied by :math:`L^{-1}`, which decorrelates the noise without changing the density
(:math:`\\det L = 1`). Then:

* a missing entry (NaN) is simply skipped, so whole and partial missing rows need no special case;
* every update is a rank-one scalar update: in float32 in Joseph form and symmetrised, so
  covariances stay positive semi-definite, in float64 as the cheaper rank-one downdate (the
  prediction step symmetrises once per time step);
* a single observation per step (``m = 1``) needs no decorrelation, and skips it;
* a model whose prior is statically proper (:attr:`LGSSM.proper_prior`) compiles without the
  diffuse recursions, and filtering alone without the update-map products the smoother needs;
* the exact diffuse initialisation (Koopman 1997) needs only the scalar diffuse gains; an element
  with :math:`F_\\infty = h^T P_\\infty h > 0` makes a diffuse update, one with
  :math:`F_\\infty = 0` a regular one.

The smoother is the backward :math:`(r, N)` recursion (Bryson-Frazier form, with the diffuse
extension :math:`r^{(0)}, r^{(1)}, N^{(0)}, N^{(1)}, N^{(2)}` of Durbin & Koopman 2012, section 5.3),
which never inverts a predicted covariance and so also smooths through the diffuse period.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from ._linalg import ldl, symmetrize
from .model import LGSSM

_LOG_2PI = math.log(2.0 * math.pi)
_STEP_FIELDS = (
    "transition_matrix", "transition_cov", "observation_matrix", "observation_cov",
    "transition_offset", "observation_offset",
)


def _split_params(model: LGSSM):
    """Static step parameters, and the time-varying ones as scan inputs."""
    static = {k: getattr(model, k) for k in _STEP_FIELDS if k not in model.time_varying}
    varying = {k: getattr(model, k) for k in _STEP_FIELDS if k in model.time_varying}
    return static, varying


def _diffuse_tolerance(model: LGSSM):
    eps = jnp.finfo(model.initial_diffuse_cov.dtype).eps
    scale = jnp.maximum(1.0, jnp.max(jnp.abs(model.initial_diffuse_cov)))
    return jnp.sqrt(eps) * scale


def _decorrelate(y, observed, H, R, d):
    """Premultiply the observation equation by ``L^{-1}`` where ``R_obs = L D L^T``.

    Missing entries are decoupled first (zero cross-covariance, unit variance, zero row of H), so
    they stay zero after the transform and are skipped by the element loop.
    """
    obs = observed.astype(H.dtype)
    if y.shape[0] == 1:  # one observation: nothing to decorrelate (and no triangular solves)
        return jnp.where(observed, y - d, 0.0), H * obs[:, None], R[0] * obs + (1.0 - obs)
    r_obs = R * obs[:, None] * obs[None, :] + jnp.diag(1.0 - obs)
    lower, diag = ldl(r_obs)
    y_star = solve_triangular(lower, jnp.where(observed, y - d, 0.0), lower=True, unit_diagonal=True)
    h_star = solve_triangular(lower, H * obs[:, None], lower=True, unit_diagonal=True)
    return y_star, h_star, diag


def _element_update(carry, element, tol, joseph):
    """One scalar observation ``y_i = h^T x + e_i``, ``e_i ~ N(0, r)``; skipped when missing.

    ``carry = (a, P, P_inf, A, remaining)``; ``P_inf`` and ``remaining`` are ``None`` for a
    statically proper prior (no diffuse machinery compiled), ``A`` (the product of the update
    maps, for the smoother) is ``None`` when only filtering. ``remaining`` counts the diffuse
    directions not yet resolved: each diffuse update lowers the rank of ``P_inf`` by one, so after
    ``rank(P_inf,0)`` of them ``P_inf`` is exactly zero. Setting it to zero then (rather than
    keeping the round-off of the rank-one downdates) stops a residual of ~1e-9 from passing the
    tolerance later and making a spurious diffuse step.

    ``joseph``: the regular covariance update in Joseph form,
    :math:`(I - K h^T) P (I - K h^T)^T + r K K^T` (``O(n^3)``, keeps ``P`` PSD in float32,
    symmetrised), or the rank-one downdate :math:`P - K M^T` (``O(n^2)``, float64, symmetric to
    rounding; the prediction step symmetrises).
    """
    a, P, P_inf, A, remaining = carry
    h, y, r, observed = element
    n = a.shape[0]
    eye = jnp.eye(n, dtype=a.dtype)
    M = P @ h
    F = h @ M + r
    v = y - h @ a
    if P_inf is None:
        diffuse = jnp.zeros((), bool)
        M_inf, F_inf = jnp.zeros_like(M), jnp.zeros_like(F)
    else:
        M_inf = P_inf @ h
        F_inf = h @ M_inf
        diffuse = observed & (remaining > 0) & (F_inf > tol * (h @ h))
    regular = observed & ~diffuse
    F_safe = jnp.where(regular, F, 1.0)

    # Regular update.
    K = M / F_safe
    a_new = jnp.where(regular, a + K * v, a)
    if joseph:
        L = eye - jnp.outer(K, h)
        P_regular = L @ P @ L.T + r * jnp.outer(K, K)
    else:
        P_regular = P - jnp.outer(K, M)
    P_new = jnp.where(regular, P_regular, P)
    if A is not None:
        A_new = jnp.where(regular, (eye - jnp.outer(K, h)) @ A, A)

    if P_inf is not None:
        # Diffuse update: the limit kappa -> inf of the update with P + kappa P_inf.
        F_inf_safe = jnp.where(diffuse, F_inf, 1.0)
        K0 = M_inf / F_inf_safe
        a_new = jnp.where(diffuse, a + K0 * v, a_new)
        P_diffuse = P + jnp.outer(K0, K0) * F - jnp.outer(K0, M) - jnp.outer(M, K0)
        P_new = jnp.where(diffuse, P_diffuse, P_new)
        remaining = remaining - diffuse.astype(remaining.dtype)
        P_inf = jnp.where(remaining > 0, jnp.where(diffuse, P_inf - jnp.outer(K0, M_inf), P_inf), 0.0)
        P_inf = symmetrize(P_inf)
        if A is not None:
            A_new = jnp.where(diffuse, (eye - jnp.outer(K0, h)) @ A, A_new)
        diffuse_term = -0.5 * (_LOG_2PI + jnp.log(F_inf_safe))
    else:
        diffuse_term = 0.0
    loglik = jnp.where(
        diffuse, diffuse_term,
        jnp.where(regular, -0.5 * (_LOG_2PI + jnp.log(F_safe) + v * v / F_safe), 0.0),
    )
    saved = dict(v=v, F=F, F_inf=F_inf, M=M, M_inf=M_inf, diffuse=diffuse, regular=regular)
    # float64: no symmetrising per element (two transposes and their adjoints, ~6 % of a
    # gradient); the rank-one downdate keeps P symmetric to rounding and the prediction step
    # symmetrises once per time step
    P_new = symmetrize(P_new) if joseph else P_new
    return (a_new, P_new, P_inf, None if A is None else A_new, remaining), (loglik, saved)


def _forward(model: LGSSM, y, keep_gains: bool = False):
    """Run the filter; returns per-step outputs including what the smoother needs
    (``keep_gains``: also the products of the update maps, ``gain_product``)."""
    static, varying = _split_params(model)
    observed = ~jnp.isnan(y)
    n = model.state_dim
    tol = _diffuse_tolerance(model)
    dtype = model.initial_cov.dtype
    joseph = dtype != jnp.float64
    proper = model.proper_prior

    def step(carry, inputs):
        a, P, P_inf, remaining = carry
        y_t, observed_t, varying_t = inputs
        p = {**static, **varying_t}
        H, R, d = p["observation_matrix"], p["observation_cov"], p["observation_offset"]
        y_star, h_star, r_star = _decorrelate(y_t, observed_t, H, R, d)
        gains = jnp.eye(n, dtype=dtype) if keep_gains else None
        (a_f, P_f, P_inf_f, A, remaining), (loglik, saved) = jax.lax.scan(
            lambda c, e: _element_update(c, e, tol, joseph),
            (a, P, P_inf, gains, remaining),
            (h_star, y_star, r_star, observed_t),
        )
        F, Q, b = p["transition_matrix"], p["transition_cov"], p["transition_offset"]
        P_inf_next = None if proper else symmetrize(F @ P_inf_f @ F.T)
        next_carry = (F @ a_f + b, symmetrize(F @ P_f @ F.T + Q), P_inf_next, remaining)
        out = dict(
            predicted_mean=a, predicted_cov=P,
            predicted_diffuse_cov=jnp.zeros_like(P) if proper else P_inf,
            mean=a_f, cov=symmetrize(P_f), log_likelihood_terms=jnp.sum(loglik),
            observation_mean=H @ a + d, observation_cov=symmetrize(H @ P @ H.T + R),
            h_star=h_star, saved=saved,
        )
        if keep_gains:
            out["gain_product"] = A
        return next_carry, out

    if proper:
        init = (model.initial_mean, model.initial_cov, None, None)
    else:
        rank = jax.lax.stop_gradient(jnp.linalg.matrix_rank(model.initial_diffuse_cov))
        init = (model.initial_mean, model.initial_cov, model.initial_diffuse_cov, rank)
    (a_next, P_next, _, _), out = jax.lax.scan(step, init, (y, observed, varying))
    out["next_mean"], out["next_cov"] = a_next, P_next
    return out


def filter_single(model: LGSSM, y):
    """Filter one series ``y`` of shape ``(T, m)``; returns a dict of arrays with time axis first."""
    out = _forward(model, y)
    for key in ("h_star", "saved"):
        out.pop(key)
    return out


def _element_smooth(carry, element):
    """Backward step over one scalar observation (regular or diffuse), skipped when missing."""
    r0, r1, N0, N1, N2 = carry
    h, s = element
    n = h.shape[0]
    eye = jnp.eye(n, dtype=h.dtype)
    diffuse, regular = s["diffuse"], s["regular"]
    F_safe = jnp.where(regular, s["F"], 1.0)
    F_inf_safe = jnp.where(diffuse, s["F_inf"], 1.0)
    hh = jnp.outer(h, h)
    v = s["v"]

    L = eye - jnp.outer(s["M"] / F_safe, h)
    regular_out = (
        h * v / F_safe + L.T @ r0, L.T @ r1,
        hh / F_safe + L.T @ N0 @ L, L.T @ N1 @ L, L.T @ N2 @ L,
    )

    K0 = s["M_inf"] / F_inf_safe
    K1 = (s["M"] - K0 * s["F"]) / F_inf_safe
    L0 = eye - jnp.outer(K0, h)
    L1 = -jnp.outer(K1, h)
    diffuse_out = (
        L0.T @ r0,
        h * v / F_inf_safe + L0.T @ r1 + L1.T @ r0,
        L0.T @ N0 @ L0,
        hh / F_inf_safe + L0.T @ N1 @ L0 + L1.T @ N0 @ L0 + L0.T @ N0 @ L1,
        -hh * s["F"] / F_inf_safe**2 + L0.T @ N2 @ L0 + L0.T @ N1 @ L1 + L1.T @ N1 @ L0
        + L1.T @ N0 @ L1,
    )
    new = tuple(
        jnp.where(diffuse, d_, jnp.where(regular, r_, c_))
        for d_, r_, c_ in zip(diffuse_out, regular_out, carry)
    )
    return new, None


def smooth_single(model: LGSSM, y):
    """Smooth one series ``y`` of shape ``(T, m)``.

    Returns the filter's outputs plus ``smoothed_mean`` ``(T, n)``, ``smoothed_cov`` ``(T, n, n)``
    and ``lag_one_cov`` ``(T-1, n, n)`` with ``lag_one_cov[t] = Cov(x_{t+1}, x_t | y)`` (valid
    where the prior is proper, i.e. after the diffuse period).
    """
    out = _forward(model, y, keep_gains=True)
    _, varying = _split_params(model)
    F_static = model.transition_matrix
    n = model.state_dim
    zeros_n = jnp.zeros(n, out["mean"].dtype)
    zeros_nn = jnp.zeros((n, n), out["mean"].dtype)

    def step(carry, inputs):
        r0, r1, N0, N1, N2, P_next = carry
        t_in = inputs
        F = t_in["F"] if "transition_matrix" in varying else F_static
        # Cov(x_t, x_{t+1} | y) = P_t A_t^T F_t^T (I - N_t P_{t+1}), with N_t taken at the start
        # of step t+1 (Durbin & Koopman 2012, eq. 4.69, in element-wise form).
        lag_one = (t_in["P"] @ t_in["A"].T @ F.T @ (jnp.eye(n, dtype=F.dtype) - N0 @ P_next)).T
        # Carry the backward quantities over the transition x_{t+1} = F_t x_t + ...
        carry_end = (F.T @ r0, F.T @ r1, F.T @ N0 @ F, F.T @ N1 @ F, F.T @ N2 @ F)
        (r0, r1, N0, N1, N2), _ = jax.lax.scan(
            _element_smooth, carry_end, (t_in["h_star"], t_in["saved"]), reverse=True
        )
        P, P_inf = t_in["P"], t_in["P_inf"]
        mean = t_in["a"] + P @ r0 + P_inf @ r1
        P_N1 = P_inf @ N1 @ P
        cov = P - P @ N0 @ P - P_N1.T - P_N1 - P_inf @ N2 @ P_inf
        return (r0, r1, N0, N1, N2, P), (mean, symmetrize(cov), lag_one)

    inputs = dict(
        a=out["predicted_mean"], P=out["predicted_cov"], P_inf=out["predicted_diffuse_cov"],
        A=out["gain_product"], h_star=out["h_star"], saved=out["saved"],
    )
    if "transition_matrix" in varying:
        inputs["F"] = varying["transition_matrix"]
    init = (zeros_n, zeros_n, zeros_nn, zeros_nn, zeros_nn, out["next_cov"])
    _, (mean, cov, lag_one) = jax.lax.scan(step, init, inputs, reverse=True)
    for key in ("h_star", "gain_product", "saved"):
        out.pop(key)
    out.update(smoothed_mean=mean, smoothed_cov=cov, lag_one_cov=lag_one[:-1])
    return out
