"""Simulation from any state and impulse responses of a fitted linear-Gaussian forecaster
(statsmodels' ``simulate`` and ``impulse_responses``).

The model's state disturbance is written as statsmodels writes it,
:math:`x_{t+1} = F x_t + b_t + G \\eta_t`, :math:`\\eta_t \\sim N(0, Q_\\eta)` with ``r``
shocks (statsmodels' ``selection`` :math:`G` ``(n, r)`` and ``state_cov`` :math:`Q_\\eta`,
``k_posdef = r``). :func:`shock_loadings` reads :math:`G, Q_\\eta` off the model's
:math:`Q = G Q_\\eta G^T` by its structure: states whose disturbances are uncorrelated with all
others get a shock each; a group of states driven by one shared disturbance (the ARMA block of
a SARIMAX, :math:`\\sigma^2 r r^T`) gets one shock whose loading is :math:`r` (first entry 1);
a group with a full-rank covariance (a user's dense :math:`Q`) gets a shock per state. Shocks
are ordered by their first state, as in statsmodels' structural and SARIMAX models.

Paths are drawn with :func:`probssm.kalman.sample`; given shocks enter the model as offsets with
their covariance set to zero, so the same sampler reproduces a path exactly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _data
from ..base import per_series
from . import compiled
from .inference import filter as kalman_filter
from .inference import sample as kalman_sample
from .insample import index_position

__all__ = ["SimulationMixin", "shock_loadings"]

# Unconstrained parameters at which no variance or coefficient is zero, so that the zeros of the
# state covariance there are structural.
_GENERIC = 0.3


def _groups(support: np.ndarray) -> list[list[int]]:
    """Connected groups of the states with a disturbance, linked where ``support[i, j]``."""
    active = [i for i in range(support.shape[0]) if support[i, i]]
    seen, groups = set(), []
    for i in active:
        if i in seen:
            continue
        group, todo = [], [i]
        while todo:
            j = todo.pop()
            if j in seen:
                continue
            seen.add(j)
            group.append(j)
            todo += [k for k in active if support[j, k] and k not in seen]
        groups.append(sorted(group))
    return groups


def shock_loadings(Q: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Loadings :math:`G` ``(n, r)`` and shock covariance :math:`Q_\\eta` ``(r, r)`` with
    :math:`G Q_\\eta G^T = Q` ``(n, n)``, shaped by ``structure`` ``(n, n)``, the same
    covariance at parameters where only structural entries vanish (see the module docs)."""
    n = Q.shape[0]
    support = np.abs(structure) > 1e-12 * max(np.max(np.abs(np.diag(structure))), 1e-300)
    columns, blocks = [], []
    for group in _groups(support):
        sub = structure[np.ix_(group, group)]
        if len(group) > 1 and np.linalg.matrix_rank(sub, tol=1e-9 * np.max(np.abs(sub))) == 1:
            lead = group[0]
            # the loading from the structure's own column where the variance is zero
            source = Q if Q[lead, lead] > 0 else structure
            column = np.zeros(n)
            column[group] = source[group, lead] / source[lead, lead]
            columns.append(column)
            blocks.append(Q[np.ix_([lead], [lead])])
        else:
            columns += [np.eye(n)[:, i] for i in group]
            blocks.append(Q[np.ix_(group, group)])
    r = len(columns)
    G = np.stack(columns, axis=1) if r else np.zeros((n, 0))
    Q_eta = np.zeros((r, r))
    at = 0
    for block in blocks:
        k = block.shape[0]
        Q_eta[at:at + k, at:at + k] = block
        at += k
    return G, Q_eta


def _count(value, name) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _per_sample(values, name, n_samples, n_steps, width):
    """Given values as ``(n_samples, n_steps, width)``, or ``(n_samples, width)`` without
    ``n_steps``; values without the leading axis are shared by every sample."""
    arr = np.array(values, dtype=np.float64)  # a copy: the caller's array is never changed
    shape = (width,) if n_steps is None else (n_steps, width)
    if arr.shape == shape:
        arr = np.broadcast_to(arr, (n_samples, *shape))
    if arr.shape != (n_samples, *shape):
        raise ValueError(f"{name}: expected shape {shape} or {(n_samples, *shape)}, got {np.shape(values)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return jnp.asarray(arr)


class SimulationMixin:
    """Simulation and impulse responses of
    :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`, at the estimates ``params_``."""

    def _loadings(self, model):
        """:math:`G` ``(n, r)`` and :math:`Q_\\eta` ``(r, r)`` of the fitted model
        (:func:`shock_loadings`; the first step's covariance of a time-varying one)."""
        with jax.enable_x64(True):
            theta = jnp.full(len(self._params), _GENERIC)
            generic = compiled.builder(self)(self._to_natural(theta), self._steps_aux(0, 1))
        Q, S = (np.asarray(m.transition_cov).reshape((-1,) + m.transition_cov.shape[-2:])[0]
                for m in (model, generic))
        return shock_loadings(Q, S)

    def _steps_aux(self, start, steps, X=None, *, zero_exog=False):
        """``aux`` for ``steps`` steps from position ``start``: exogenous rows from the training
        data, then from ``X`` for the steps past it (zeros with ``zero_exog``, where only the
        matrices matter)."""
        if self._exog_columns is None:
            return self._aux(None, start, steps)
        T = self._y.num_timesteps
        inside = self._X[start:start + steps]
        if zero_exog:
            rows = np.zeros((steps, len(self._exog_columns)))
        elif start + steps > T:
            future = _data.future_index(self._y.index, np.arange(1, start + steps - T + 1))
            rows = np.concatenate([inside, self._exog_for(X, future, "X", f"the simulated steps up to {future[-1]!r}")])
        else:
            if X is not None:
                raise ValueError("X is needed only for steps past the data; the simulated steps are all inside it")
            rows = inside
        return self._aux(rows, start, steps)

    def _state_at(self, position):
        """:math:`p(x_t \\mid y_{0:t-1})` at ``position`` ``t``: ``(mean (n,), cov (n, n))``."""
        if position == self._y.num_timesteps:
            return tuple(map(jnp.asarray, self._next))
        y, aux, _ = self._padded_data()
        model, burn = self._model(self._params, aux)
        res = kalman_filter(model, y, burn=burn)
        if np.any(np.asarray(res.predicted_diffuse_cov[position]) != 0):
            raise ValueError(f"the state at position {position} is still diffuse; pass initial_state")
        return res.predicted_mean[position], res.predicted_cov[position]

    @per_series
    def simulate(self, n_steps, initial_state=None, n_samples=1, random_state=None, X=None, *,
                 anchor="end", measurement_shocks=None, state_shocks=None) -> pd.DataFrame:
        """Simulate ``n_steps`` observations from the fitted model, starting at ``anchor``
        (statsmodels' ``simulate(nsimulations, ..., anchor=...)``).

        .. math::

            y_t = H_t x_t + d_t + \\varepsilon_t,\\qquad x_{t+1} = F_t x_t + b_t + G \\eta_t,

        for :math:`t = a, \\dots, a + n - 1`, from :math:`x_a` = ``initial_state`` or a draw of
        :math:`p(x_a \\mid y_{0:a-1})` (the filter's prediction; after all the data by default).

        Parameters
        ----------
        n_steps : int
            Number of simulated steps ``n``.
        initial_state : array ``(n_states,)`` or ``(n_samples, n_states)``, optional
            :math:`x_a`; required where the state at ``anchor`` is still diffuse.
        n_samples : int
            Number of paths.
        random_state : None, int or numpy Generator
        X : DataFrame or array, optional
            Exogenous values for the simulated steps past the data (models with regressors).
        anchor : "end", "start", int or label
            Where the simulation starts: after the data (``"end"``, position ``T``), at its
            first step (``"start"``), or at a position / label of the training index.
        measurement_shocks : array ``(n_steps, m)`` or ``(n_samples, n_steps, m)``, optional
            :math:`\\varepsilon_t` instead of draws (statsmodels' ``measurement_shocks``).
        state_shocks : array ``(n_steps, r)`` or ``(n_samples, n_steps, r)``, optional
            :math:`\\eta_t` instead of draws, ``r`` statsmodels' ``k_posdef`` (the module docs say
            how :math:`G` is read off the model).

        Returns
        -------
        DataFrame
            Indexed by ``(sample, time)``, one column per variable, as :meth:`sample`.
        """
        self._check_is_fitted()
        n_steps, n_samples = _count(n_steps, "n_steps"), _count(n_samples, "n_samples")
        T = self._y.num_timesteps
        if isinstance(anchor, str) and anchor in ("start", "end"):
            start = 0 if anchor == "start" else T
        else:
            start = index_position(anchor, self._y.index, "anchor")
        rng = _data.random_generator(random_state)
        with jax.enable_x64(True):
            model = compiled.builder(self)(jnp.asarray(self._params), self._steps_aux(start, n_steps, X))
            n, m = model.state_dim, model.observation_dim
            if initial_state is None:
                mean, cov = self._state_at(start)
                model = model.replace(initial_mean=mean, initial_cov=cov, initial_diffuse_cov=None)
            else:
                model = model.replace(initial_cov=jnp.zeros((n, n)), initial_diffuse_cov=None)
            x0 = None if initial_state is None else _per_sample(initial_state, "initial_state", n_samples, None, n)
            eps = None if measurement_shocks is None else _per_sample(
                measurement_shocks, "measurement_shocks", n_samples, n_steps, m)
            eta = None
            if state_shocks is not None:
                G, _ = self._loadings(model)
                eta = _per_sample(state_shocks, "state_shocks", n_samples, n_steps, G.shape[1]) @ jnp.asarray(G).T
            keys = jax.random.split(jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1))), n_samples)

            def one(key, x0_, eps_, eta_):
                m_ = model
                if x0_ is not None:
                    m_ = m_.replace(initial_mean=x0_)
                if eps_ is not None:  # given shocks: offsets, with nothing left to draw
                    m_ = m_.replace(observation_offset=m_.observation_offset + eps_,
                                    observation_cov=jnp.zeros_like(m_.observation_cov))
                if eta_ is not None:
                    m_ = m_.replace(transition_offset=m_.transition_offset + eta_,
                                    transition_cov=jnp.zeros_like(m_.transition_cov))
                return kalman_sample(m_, key, n_steps)[1]

            paths = np.asarray(jax.vmap(one)(keys, x0, eps, eta))
        inside = self._y.index[start:start + n_steps]
        times = inside.append(_data.future_index(self._y.index, np.arange(1, start + n_steps - T + 1))) \
            if start + n_steps > T else inside
        index = pd.MultiIndex.from_product([range(n_samples), times], names=["sample", "time"])
        return pd.DataFrame(paths.reshape(-1, m), index=index, columns=self._y.columns)

    @per_series
    def impulse_responses(self, steps=10, impulse=0, orthogonalized=False, cumulative=False):
        """Responses of :math:`y` to a unit state shock (statsmodels' ``impulse_responses``).

        .. math::

            \\Psi_k = H F^k G\\, e, \\qquad k = 0, \\dots, \\text{steps},

        :math:`e` the unit vector of shock ``impulse`` (or the given vector), replaced by
        :math:`L e` with :math:`L L^T = Q_\\eta` when ``orthogonalized``; intercepts play no part.

        Parameters
        ----------
        steps : int
            Responses after the impulse; ``steps + 1`` rows including the impact (as statsmodels
            gives for time-invariant models).
        impulse : int or array ``(r,)``
            Which shock, or a shock vector (``r`` statsmodels' ``k_posdef``).
        orthogonalized, cumulative : bool
            Shocks scaled by the Cholesky factor of :math:`Q_\\eta`; running sums of the responses.

        Returns
        -------
        Series or DataFrame
            Indexed by ``step`` ``0..steps``, one column per variable (a Series for a univariate
            series). Where the matrices vary in time (a time-varying regression) the responses
            are :math:`\\Psi_k = H_k F_{k-1} \\cdots F_1 G e` at ``step`` ``1..steps``, with the
            matrices of the training steps, as statsmodels gives them.
        """
        self._check_is_fitted()
        steps = _count(steps, "steps")
        build = compiled.builder(self)
        first, count = 0, steps + 1
        with jax.enable_x64(True):
            params = jnp.asarray(self._params)
            model = build(params, self._steps_aux(0, count, zero_exog=True))
            if {"observation_matrix", "transition_matrix"} & set(model.time_varying):
                # matrices that vary with the regressors (time-varying regression): statsmodels'
                # convention, the responses at steps 1..steps with the training steps' matrices
                T = self._y.num_timesteps
                if steps >= T:
                    raise ValueError(f"steps must be below the {T} training steps for a model whose matrices vary "
                                     f"in time, got {steps}")
                first, count = 1, steps
                model = build(params, self._steps_aux(first, count))
            G, Q_eta = self._loadings(model)
            r = G.shape[1]
            if isinstance(impulse, (int, np.integer)) and not isinstance(impulse, (bool, np.bool_)):
                if not 0 <= impulse < r:
                    raise ValueError(f"impulse must be a shock in 0..{r - 1}, got {impulse}")
                e = np.eye(r)[int(impulse)]
            else:
                e = np.asarray(impulse, dtype=np.float64).reshape(-1)
                if e.shape != (r,):
                    raise ValueError(f"impulse: expected an int or a vector of {r} shocks, got shape {np.shape(impulse)}")
            if orthogonalized:
                e = np.linalg.cholesky(Q_eta) @ e
            n = model.state_dim
            zero = {k: jnp.zeros_like(getattr(model, k)) for k in
                    ("transition_cov", "observation_cov", "transition_offset", "observation_offset")}
            model = model.replace(initial_mean=jnp.asarray(G @ e), initial_cov=jnp.zeros((n, n)),
                                  initial_diffuse_cov=None, **zero)
            irf = np.asarray(kalman_sample(model, jax.random.PRNGKey(0), count)[1])
        if cumulative:
            irf = np.cumsum(irf, axis=0)
        index = pd.RangeIndex(first, first + count, name="step")
        if self._y.is_series:
            return pd.Series(irf[:, 0], index=index, name=self._y.columns[0])
        return pd.DataFrame(irf, index=index, columns=self._y.columns)
