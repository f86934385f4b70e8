"""A linear-Gaussian model with the user's own matrices: :class:`KalmanFilter`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..fit import cov_from_unconstrained, cov_to_unconstrained
from . import em as _em
from .forecaster import FIT_METHODS, LinearGaussianForecaster
from .model import LGSSM, check_covariance

__all__ = ["KalmanFilter"]

_MATRICES = ("transition_matrix", "transition_cov", "observation_matrix", "observation_cov", "initial_mean")
_COVS = ("transition_cov", "observation_cov")


class KalmanFilter(LinearGaussianForecaster):
    """A linear-Gaussian state-space model whose matrices you give; ``fit`` estimates the ones
    named in ``estimate`` by maximum likelihood (``method="mle"``), EM (``method="em"``) or
    NUTS (``method="nuts"``).

    .. math::

        x_0 \\sim N(\\mu_0, P_0),\\quad y_t = H x_t + \\varepsilon_t,\\ \\varepsilon_t \\sim N(0, R),
        \\quad x_{t+1} = F x_t + \\eta_t,\\ \\eta_t \\sim N(0, Q)

    Parameters
    ----------
    transition_matrix : array of shape (n, n)
        :math:`F`.
    transition_cov : array of shape (n, n)
        :math:`Q`, positive semi-definite.
    observation_matrix : array of shape (m, n)
        :math:`H`.
    observation_cov : array of shape (m, m)
        :math:`R`, positive semi-definite.
    initial_mean : array of shape (n,), optional
        :math:`\\mu_0` (zeros by default).
    initial_cov : array of shape (n, n), optional
        :math:`P_0`. If omitted the prior is diffuse (exact, or approximate per
        ``initialization``).
    estimate : tuple of str
        Which of ``transition_matrix``, ``transition_cov``, ``observation_matrix``,
        ``observation_cov``, ``initial_mean`` to estimate (starting from the given values).
        Empty: ``fit`` only filters with the given matrices.
    method : {"mle", "em", "nuts"}
        MLE: L-BFGS with exact gradients; covariances parameterised by log-Cholesky factors.
        EM: closed-form M-steps (Shumway & Stoffer 1982); needs a proper prior (``initial_cov``)
        and, when estimating ``observation_*``, rows that are either fully observed or fully missing.
        NUTS: posterior draws started at the MLE (see
        :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`).
    initialization : {"exact_diffuse", "approximate_diffuse"}
        Used when ``initial_cov`` is omitted.
    max_iter : int
        Maximum L-BFGS or EM iterations.
    tol : float
        EM stops when the log-likelihood improves by less than ``tol`` (relative).
    priors, num_warmup, num_samples, num_chains, random_state
        Settings of ``method="nuts"`` (see
        :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`).
    """

    _methods = FIT_METHODS + ("em",)
    _structure_attributes = ("_estimated", "_base")

    def __init__(
        self,
        transition_matrix=None,
        transition_cov=None,
        observation_matrix=None,
        observation_cov=None,
        initial_mean=None,
        initial_cov=None,
        estimate=(),
        method="mle",
        initialization="exact_diffuse",
        max_iter=500,
        tol=1e-8,
        priors=None,
        num_warmup=500,
        num_samples=500,
        num_chains=2,
        random_state=None,
    ):
        self.transition_matrix = transition_matrix
        self.transition_cov = transition_cov
        self.observation_matrix = observation_matrix
        self.observation_cov = observation_cov
        self.initial_mean = initial_mean
        self.initial_cov = initial_cov
        self.estimate = estimate
        self.method = method
        self.initialization = initialization
        self.max_iter = max_iter
        self.tol = tol
        self.priors = priors
        self.num_warmup = num_warmup
        self.num_samples = num_samples
        self.num_chains = num_chains
        self.random_state = random_state

    # -- validation of the user's matrices ---------------------------------------------------
    def _matrices(self, m_data: int) -> dict:
        given = {k: getattr(self, k) for k in ("transition_matrix", "transition_cov", "observation_matrix", "observation_cov")}
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise ValueError(f"KalmanFilter needs {missing}; pass them to the constructor")
        mats = {k: np.array(v, dtype=np.float64, ndmin=2) for k, v in given.items()}
        n = mats["transition_matrix"].shape[-1]
        expect = {
            "transition_matrix": (n, n), "transition_cov": (n, n),
            "observation_matrix": (m_data, n), "observation_cov": (m_data, m_data),
        }
        for k, shape in expect.items():
            if mats[k].shape != shape:
                raise ValueError(
                    f"{k}: expected shape {shape} (n={n} states from transition_matrix, m={m_data} "
                    f"variables in y), got {mats[k].shape}"
                )
        mats["initial_mean"] = (
            np.zeros(n) if self.initial_mean is None else np.array(self.initial_mean, dtype=np.float64).reshape(-1)
        )
        if mats["initial_mean"].shape != (n,):
            raise ValueError(f"initial_mean: expected shape ({n},), got {mats['initial_mean'].shape}")
        if self.initial_cov is not None:
            mats["initial_cov"] = np.array(self.initial_cov, dtype=np.float64, ndmin=2)
            if mats["initial_cov"].shape != (n, n):
                raise ValueError(f"initial_cov: expected shape ({n}, {n}), got {mats['initial_cov'].shape}")
        for k in ("transition_cov", "observation_cov", "initial_cov"):
            if k in mats:
                check_covariance(mats[k], k)
        return mats

    def _check_hyper(self, m_data):
        est = tuple(self.estimate) if not isinstance(self.estimate, str) else (self.estimate,)
        bad = [e for e in est if e not in _MATRICES]
        if bad:
            raise ValueError(f"estimate: unknown names {bad}; choose among {_MATRICES}")
        self._estimated = est
        self._base = self._matrices(m_data)

    # -- parameterisation: natural params are the flattened estimated matrices -----------------
    def _param_names(self, m):
        names = []
        for k in self._estimated:
            shape = self._base[k].shape
            names += [f"{k}[{','.join(map(str, ix))}]" for ix in np.ndindex(*shape)]
        return names

    def _aux(self, exog, start, steps):
        return {k: jnp.asarray(v) for k, v in self._base.items()}

    def _unpack(self, params, aux):
        mats = dict(aux)
        offset = 0
        for k in self._estimated:
            size = int(np.prod(self._base[k].shape))
            mats[k] = jnp.reshape(params[offset:offset + size], self._base[k].shape)
            offset += size
        return mats

    def _start_params(self, values):
        return np.concatenate([self._base[k].reshape(-1) for k in self._estimated]) if self._estimated else np.zeros(0)

    def _to_unconstrained(self, params):
        parts, offset = [], 0
        for k in self._estimated:
            size = int(np.prod(self._base[k].shape))
            block = params[offset:offset + size]
            if k in _COVS:
                d = self._base[k].shape[0]
                cov = jnp.reshape(block, (d, d))
                cov = cov + 1e-9 * jnp.trace(cov) / d * jnp.eye(d)
                block = cov_to_unconstrained(cov)
            parts.append(block)
            offset += size
        return jnp.concatenate(parts) if parts else jnp.zeros(0)

    def _to_natural(self, theta):
        parts, offset = [], 0
        for k in self._estimated:
            if k in _COVS:
                d = self._base[k].shape[0]
                size = d * (d + 1) // 2
                parts.append(cov_from_unconstrained(theta[offset:offset + size], d).reshape(-1))
            else:
                size = int(np.prod(self._base[k].shape))
                parts.append(theta[offset:offset + size])
            offset += size
        return jnp.concatenate(parts) if parts else jnp.zeros(0)

    def _build(self, params, aux):
        mats = self._unpack(params, aux)
        n = mats["transition_matrix"].shape[-1]
        if "initial_cov" in mats:
            p0, p_inf = mats["initial_cov"], jnp.zeros((n, n))
        else:
            p0, p_inf = jnp.zeros((n, n)), jnp.eye(n)
        return LGSSM(
            mats["transition_matrix"], mats["transition_cov"], mats["observation_matrix"],
            mats["observation_cov"], mats["initial_mean"], p0, initial_diffuse_cov=p_inf,
        )

    def _state_names(self):
        return [f"state_{i}" for i in range(self._base["transition_matrix"].shape[0])]

    def _structure(self):
        shapes = tuple((k, self._base[k].shape) for k in sorted(self._base))
        return (self.initialization, self._estimated, shapes)

    # -- fitting ---------------------------------------------------------------------------------
    def _prepare(self, data):
        self._check_hyper(data.values.shape[1])
        if self.method == "em" and "initial_cov" not in self._base and self._estimated:
            raise ValueError("method='em' needs a proper prior: pass initial_cov")

    def _estimate(self, data, start):
        if not self._estimated:
            self.converged_ = True
            return start
        if self.method == "em":
            return self._em(data)
        return super()._estimate(data, start)

    def _em(self, data) -> np.ndarray:
        partial_rows = np.any(np.isnan(data.values), axis=1) & ~np.all(np.isnan(data.values), axis=1)
        if partial_rows.any() and {"observation_matrix", "observation_cov"} & set(self._estimated):
            raise ValueError(
                "method='em' estimates observation_matrix/observation_cov only from rows that are "
                f"fully observed or fully missing; row {int(np.argmax(partial_rows))} is partly "
                "missing. Use method='mle'."
            )
        with jax.enable_x64(True):
            model = self._build(jnp.asarray(self._start_params(data.values)), self._aux(None, 0, data.num_timesteps))
            model, history = _em.fit_em(
                model, jnp.asarray(data.values), self._estimated, max_iter=self.max_iter, tol=self.tol
            )
            self.em_log_likelihoods_ = np.asarray(history)
            self.converged_ = len(history) < self.max_iter
            return np.concatenate([np.asarray(getattr(model, k)).reshape(-1) for k in self._estimated])

    def _restore_fitted_state(self, meta, arrays):
        self._check_hyper(self._y.values.shape[1])
        super()._restore_fitted_state(meta, arrays)
