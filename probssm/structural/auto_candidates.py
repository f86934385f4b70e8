r"""Fitting many ARMA candidates at once: every (series, order) pair of a search round is one member
of a single batched, compiled L-BFGS (:func:`probssm.fit.batched.maximize_likelihood_batched`).

A candidate :math:`(p, q, P, Q, c)` is fitted to a differenced series
:math:`w_t = \Delta^d \Delta_s^D y_t` as the stationary model

.. math::

    \phi(L)\Phi(L^s)\, w_t = c + \theta(L)\Theta(L^s)\, \varepsilon_t,
    \qquad \varepsilon_t \sim N(0, \sigma^2),

statsmodels' ``SARIMAX(w, (p, 0, q), (P, 0, Q, s), trend="c" or "n")``. Candidates of different
orders share one program by **padding**: all members use the largest orders of the batch
:math:`(\bar p, \bar q, \bar P, \bar Q)`, and a member's unused coefficients are held at zero by a
0/1 mask on its unconstrained parameters. Under the Monahan / Jones transforms (partial
autocorrelations through the Durbin-Levinson recursion) zero trailing partial autocorrelations
give exactly the lower-order polynomial, so a masked member *is* its candidate, and its gradient
in the masked coordinates is zero.

Two objectives:

* ``"css"``, conditional sum of squares (the approximation ``forecast::auto.arima`` searches
  with on long or high-frequency series): residuals
  :math:`e_t = w_t - c - \sum_k a_k w_{t-k} - \sum_k b_k e_{t-k}` of the multiplied-out
  polynomials, conditioned on the first ``condition`` observations (:math:`e_t = 0` there) and
  :math:`\sigma^2` concentrated out: :math:`\log L = -\tfrac n2 (\log(2\pi \hat\sigma^2) + 1)`,
  :math:`\hat\sigma^2 = \sum e_t^2 / n` over the :math:`n` scored steps. A missing :math:`w_t` has
  :math:`e_t = 0` and is not scored, nor are the steps whose AR lags reach it. Every candidate of a search is
  conditioned on the same number of steps, so their criteria compare.
* ``"ml"``, the exact Gaussian likelihood by the Kalman filter (stationary initial state), equal
  to statsmodels' ``llf``.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..fit.batched import maximize_likelihood_batched
from ..kalman import compiled
from . import arima

__all__ = ["Candidate", "CandidateFit", "criterion_value", "fit_candidates"]


class Candidate(NamedTuple):
    """ARMA orders of a candidate on the differenced series, and whether it has a constant."""

    p: int
    q: int
    P: int
    Q: int
    constant: bool

    @property
    def num_params(self) -> int:
        """Estimated parameters: coefficients, the constant and :math:`\\sigma^2`."""
        return self.p + self.q + self.P + self.Q + int(self.constant) + 1


class CandidateFit(NamedTuple):
    """One fitted member: its log-likelihood, the number of observations it scores, its natural
    parameters in statsmodels' order (``intercept`` if any, ``ar``, ``ma``, ``ar.S``, ``ma.S``,
    ``sigma2``) and whether L-BFGS converged."""

    loglik: float
    nobs: int
    params: np.ndarray
    converged: bool


def criterion_value(name: str, loglik: float, k: int, n: int) -> float:
    r"""``"aic"`` :math:`-2\log L + 2k`; ``"aicc"`` :math:`\mathrm{AIC} + 2k(k+1)/(n-k-1)`
    (:math:`+\infty` when :math:`n \le k + 1`); ``"bic"`` :math:`-2\log L + k\log n`, with
    :math:`k` estimated parameters (:math:`\sigma^2` included) and :math:`n` observations."""
    aic = -2.0 * loglik + 2.0 * k
    if name == "aic":
        return aic
    if name == "aicc":
        return aic + 2.0 * k * (k + 1) / (n - k - 1) if n > k + 1 else np.inf
    if name == "bic":
        return -2.0 * loglik + k * np.log(n)
    raise ValueError(f"information_criterion must be 'aicc', 'aic' or 'bic', got {name!r}")


def _padded_spec(cands, s: int) -> arima.SarimaxSpec:
    """The spec every member of ``cands`` fits inside: the largest orders, a constant if any."""
    p, q, P, Q = (max(getattr(c, f) for c in cands) for f in ("p", "q", "P", "Q"))
    seasonal = (P, 0, Q, s) if (P or Q) else (0, 0, 0, 0)
    return arima.sarimax_spec((p, 0, q), seasonal, "c" if any(c.constant for c in cands) else "n", ())


def _blocks(spec: arima.SarimaxSpec, cand: Candidate) -> dict:
    """Per block of ``spec``'s parameter vector, how many leading entries ``cand`` uses."""
    return {"trend": int(cand.constant) if spec.k_trend else 0, "exog": 0, "ar": cand.p, "ma": cand.q,
            "seasonal_ar": cand.P, "seasonal_ma": cand.Q, "sigma2": 1}


def _mask_and_start(spec, cand, w, s):
    """The 0/1 mask ``(k,)`` of ``cand`` inside ``spec`` and its Hannan-Rissanen start, natural
    parameters ``(k,)`` with zeros in the masked entries."""
    own = arima.sarimax_spec((cand.p, 0, cand.q), (cand.P, 0, cand.Q, s) if (cand.P or cand.Q) else (0, 0, 0, 0),
                             "c" if cand.constant else "n", ())
    start = arima.start_params(own, w)
    mask, full = np.zeros(spec.k_params), np.zeros(spec.k_params)
    for name, used in _blocks(spec, cand).items():
        sl, mine = spec.param_slices[name], own.param_slices[name]
        mask[sl.start:sl.start + used] = 1.0
        full[sl.start:sl.start + used] = start[mine][:used]
    return mask, full


# -- conditional sum of squares --------------------------------------------------------------
def _lag_coefficients(spec, params):
    """Coefficients :math:`a_k` (lags ``1..p+sP``) and :math:`b_k` (lags ``1..q+sQ``) with
    :math:`w_t = c + \\sum a_k w_{t-k} + e_t + \\sum b_k e_{t-k}`."""
    ar_poly, ma_poly = arima.lag_polynomials(spec, params)
    return -ar_poly[1:], ma_poly[1:]


def _css_loglik(theta, w, scored, mask, *, spec):
    r"""Concentrated CSS log-likelihood of one member (see the module's notes).

    The AR part :math:`u_t = w_t - c - \sum_k a_k w_{t-k}` is one matrix product; only the MA
    part :math:`e_t = u_t - \sum_k b_k e_{t-k}` is a recursion over time (``lax.scan``)."""
    params = arima.to_natural(spec, theta * mask)
    a, b = _lag_coefficients(spec, params)
    c = params[spec.param_slices["trend"]].sum()
    T = w.shape[0]
    if a.shape[0]:
        source = jnp.arange(T)[:, None] - jnp.arange(1, a.shape[0] + 1)[None, :]
        u = w - c - jnp.where(source >= 0, w[jnp.clip(source, 0)], 0.0) @ a
    else:
        u = w - c
    u = jnp.where(scored, u, 0.0)
    if b.shape[0]:
        def step(past, inputs):
            u_t, score_t = inputs
            e_t = jnp.where(score_t, u_t - jnp.dot(b, past), 0.0)
            return jnp.concatenate([e_t[None], past[:-1]]), e_t

        _, e = jax.lax.scan(step, jnp.zeros(b.shape[0], w.dtype), (u, scored), unroll=8)
    else:
        e = u
    n = jnp.sum(scored)
    return -0.5 * n * (jnp.log(2 * jnp.pi * jnp.sum(e * e) / n) + 1.0)


_OBJECTIVES: dict = {}


def _css_objective(spec):
    key = ("css", spec)
    if key not in _OBJECTIVES:
        _OBJECTIVES[key] = partial(_css_loglik, spec=spec)
    return _OBJECTIVES[key]


def _scored(observed, condition: int, window: int) -> np.ndarray:
    """Steps ``(B, T)`` whose CSS residual counts: past the first ``condition`` steps, observed,
    and with all ``window`` AR lags observed (a missing value enters no residual)."""
    T = observed.shape[1]
    ok = observed.copy()
    for k in range(1, window + 1):
        ok[:, k:] &= observed[:, :-k]
    ok[:, :min(condition, T)] = False
    return ok


def _masked_kalman(theta, y, aux, mask, *, objective):
    return objective(theta * mask, y, aux)


def _ml_objective(spec):
    """The exact log-likelihood of ``spec`` (stationary start) as ``f(theta, y, aux, mask)``,
    and the model's ``aux`` builder; through the SARIMAX estimator's compiled objective."""
    from .estimator import SARIMAX

    key = ("ml", spec)
    if key not in _OBJECTIVES:
        est = SARIMAX(spec.order, spec.seasonal_order, trend="c" if spec.k_trend else "n")
        est._exog_columns = None
        est._spec = spec
        _OBJECTIVES[key] = (partial(_masked_kalman, objective=compiled.objective(est, 0)), est)
    return _OBJECTIVES[key]


def _batch_size(n: int) -> int:
    """Members of a CSS batch: 32, or a multiple of 64. The batched optimiser works in queues of
    at most 64 slots, one queue per core, so these sizes keep to two compiled programs."""
    return 32 if n <= 32 else -(-n // 64) * 64


def fit_candidates(series, jobs, s: int, method: str, condition: int, bounds=None) -> list[CandidateFit]:
    """Fit every job ``(i, candidate)`` to ``series[i]`` in one batched program.

    Parameters
    ----------
    series : list of ndarray
        Differenced series :math:`w`, each ``(n_i,)``, leading missing values removed.
    jobs : list of (int, Candidate)
    s : int
        Seasonal period (used when a candidate has seasonal terms).
    method : {"css", "ml"}
    condition : int
        Steps the CSS residuals are conditioned on (``max_p + s * max_P`` of the search).
    bounds : Candidate, optional
        For CSS, the orders every member is padded to (the search's largest), so that the whole
        search runs one compiled program; the batch is also filled up to 32 or a multiple of 64
        members by repeating the last one. By default, the largest orders of ``jobs``.

    Returns
    -------
    list of CandidateFit, in the order of ``jobs``. A member whose start is not finite gets
    ``loglik = -inf``.
    """
    n_jobs = len(jobs)
    cands = [c for _, c in jobs]
    if method == "css":
        jobs = list(jobs) + [jobs[-1]] * (_batch_size(n_jobs) - n_jobs)
        if bounds is not None:
            cands = cands + [bounds]
    spec = _padded_spec(cands, s)
    length = compiled.bucket_length(max(series[i].size for i, _ in jobs))
    W = np.full((len(jobs), length), np.nan)
    masks, starts = [], []
    for b, (i, cand) in enumerate(jobs):
        W[b, :series[i].size] = series[i]
        mask, start = _mask_and_start(spec, cand, series[i], s)
        masks.append(mask)
        starts.append(start)
    masks = np.stack(masks)
    observed = np.isfinite(W)
    with jax.enable_x64(True):
        theta0 = np.asarray(arima.to_unconstrained(spec, jnp.asarray(np.stack(starts)))) * masks
        if method == "css":
            scored = _scored(observed, condition, spec.ar_order)
            css_mask = masks.copy()
            css_mask[:, spec.param_slices["sigma2"]] = 0.0  # concentrated out
            res = maximize_likelihood_batched(
                _css_objective(spec), theta0 * css_mask, np.where(observed, W, 0.0), scored, css_mask)
            nobs = np.sum(scored, axis=1)
        else:
            objective, est = _ml_objective(spec)
            aux = est._aux(None, 0, length)
            res = maximize_likelihood_batched(objective, theta0, W[:, :, None], aux, masks, in_axes=(0, None, 0))
            nobs = np.sum(observed, axis=1)
        theta = np.asarray(res.theta) * masks
        natural = np.asarray(arima.to_natural(spec, jnp.asarray(theta)))
        out = []
        for b, (_, cand) in enumerate(jobs[:n_jobs]):
            keep = masks[b] > 0
            params = natural[b][keep]
            loglik = float(res.value[b])
            if method == "css":  # sigma2 was concentrated out: log L = -n/2 (log(2 pi sigma2) + 1)
                params[-1] = np.exp(-2.0 * loglik / nobs[b] - 1.0) / (2 * np.pi)
            out.append(CandidateFit(loglik if np.isfinite(loglik) else -np.inf, int(nobs[b]), params,
                                    bool(res.converged[b])))
    return out
