"""Many series with one kernel structure: every series' hyperparameters in one batched, compiled
L-BFGS (:func:`probssm.fit.batched.maximize_likelihood_batched`), as the structural panels are.

The series share the panel's regular time grid (NaN where a series has no value); each gets its
own hyperparameters and noise variance, and a fitted :class:`~probssm.gp.GaussianProcess`.
"""

from __future__ import annotations

import jax
import numpy as np

from .. import _data
from ..fit.batched import maximize_likelihood_batched
from .fitting import Hyperparameters, objective_for
from .likelihoods import resolve_likelihood
from .time_axis import TimeAxis

__all__ = ["fit_panel"]


def fit_panel(template, panel: _data.PanelData) -> dict:
    """Fitted copies of the estimator ``template`` (hyper-parameters only), one per series of
    ``panel``, ``{series_id: estimator}``."""
    if template.method == "nuts":
        raise ValueError("method='nuts' fits one series at a time; fit estimators_ per series instead")
    if template.noise is not None and np.ndim(template.noise) != 0:
        raise ValueError("a panel fit takes a scalar noise (or None); per-point noise needs one fit per series")
    axis = TimeAxis.from_index(panel.index)
    t = axis.times()
    likelihood = resolve_likelihood(template.likelihood)
    for i, sid in enumerate(panel.ids):
        try:
            likelihood.check_observations(panel.values[i][:, None])
        except ValueError as err:
            raise ValueError(f"fitting series {sid!r}: {err}") from err
    estimate_noise = template._estimates_noise(likelihood)
    fixed_noise = 0.0 if template.noise is None else float(template.noise)
    starts = [Hyperparameters(template.kernel, _start_noise(row) if estimate_noise else None) for row in panel.values]
    space = starts[0]
    method = template.get_config()["inference"]
    objective = objective_for(space, likelihood.marginal_likelihood_function(method))
    theta0 = np.stack([s.theta0 for s in starts])
    with jax.enable_x64(True):
        if template.optimizer is None:
            theta = theta0
            value = np.asarray(jax.vmap(objective, in_axes=(0, None, 0, None))(theta0, t, panel.values, fixed_noise))
            converged = np.ones(len(theta0), bool)
        else:
            res = maximize_likelihood_batched(objective, theta0, t, panel.values, fixed_noise,
                                              in_axes=(None, 0, None))
            theta, value, converged = (np.asarray(a) for a in (res.theta, res.value, res.converged))
        fitted = {}
        for i, sid in enumerate(panel.ids):
            est = type(template)(**template.get_params(deep=False))
            est._config = dict(template.get_config())
            est._panel, est._X, est._exog_columns, est._draws = None, None, None, None
            est._y = panel.series_data(i, min_observed=1)
            est._axis, est._likelihood = axis, likelihood
            est.kernel_ = jax.tree_util.tree_map(float, space.kernel(theta[i]))
            est.noise_ = float(space.noise(theta[i], fixed_noise)) if space.fit_noise else fixed_noise
            est.log_marginal_likelihood_ = float(value[i])
            est.converged_ = bool(converged[i])
            est._set_params_table()
            est.cutoff_ = panel.index[-1]
            est.is_fitted_ = True
            fitted[sid] = est
    return fitted


def _start_noise(values) -> float:
    start = 0.1 * float(np.nanvar(values))
    return start if start > 0 else 1.0
