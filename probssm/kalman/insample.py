"""In-sample predictions of a fitted linear-Gaussian forecaster: one-step-ahead and dynamic
(statsmodels' ``fittedvalues``, ``resid`` and ``get_prediction(start, end, dynamic)``).

The one-step prediction of :math:`y_t` is the filter's predictive distribution

.. math::

    p(y_t \\mid y_{0:t-1}) = N(H_t a_t + d_t,\\ H_t P_t H_t^T + R_t),

:math:`a_t, P_t` the predicted state moments. A dynamic prediction from step :math:`\\tau` on
absorbs no observation at or after :math:`\\tau`: for :math:`t \\ge \\tau` it is
:math:`p(y_t \\mid y_{0:\\tau-1})`, the filter run with :math:`y_\\tau, y_{\\tau+1}, \\dots`
treated as missing (a multi-step forecast from :math:`\\tau - 1`). During an exact diffuse
period the variance is the finite part (as in statsmodels).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from .. import _data
from ..base import per_series
from .inference import filter as kalman_filter

__all__ = ["InSampleMixin", "index_position"]


def index_position(key, index: pd.Index, name: str) -> int:
    """The position in ``index`` of ``key``: a label of ``index``, or an int position (negative
    counts from the end) unless the index itself holds integer labels (other than a
    ``RangeIndex``, whose labels are its positions)."""
    T = len(index)
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"{name} must be a position or a label of the training index, got {key!r}")
    integer_labels = pd.api.types.is_integer_dtype(index.dtype) and not isinstance(index, pd.RangeIndex)
    if isinstance(key, (int, np.integer)) and not integer_labels:
        pos = int(key) + (T if key < 0 else 0)
        if not 0 <= pos < T:
            raise ValueError(f"{name}={key} is outside the training data (positions 0..{T - 1}); "
                             "use predict() past the data")
        return pos
    try:
        pos = index.get_loc(key)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{name}={key!r} is not a label of the training index "
                         f"({index[0]!r} .. {index[-1]!r}); use predict() past the data") from None
    if not isinstance(pos, (int, np.integer)):
        raise ValueError(f"{name}={key!r} matches several rows of the training index")
    return int(pos)


def _dynamic_position(dynamic, first: int, index: pd.Index):
    """The first position whose observation is not absorbed, or ``None`` (one-step throughout).
    statsmodels' rules: ``True`` is ``first``, an int an offset from ``first``, a label absolute."""
    if dynamic is None or isinstance(dynamic, (bool, np.bool_)):
        return first if dynamic else None
    if isinstance(dynamic, (int, np.integer)):
        if dynamic < 0:
            raise ValueError(f"dynamic must be a non-negative offset from start, got {dynamic}")
        return min(first + int(dynamic), len(index))
    return index_position(dynamic, index, "dynamic")


class InSampleMixin:
    """In-sample predictions of :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`.

    ``fittedvalues_`` and ``resid_`` cover the data seen so far (the training data and what
    :meth:`update` added), at the estimates ``params_`` (the posterior mean after
    ``method="nuts"``)."""

    def _in_sample_moments(self, cut):
        """One-step (dynamic from position ``cut``) predictive means and variances of ``y``,
        each ``(T, m)``."""
        y, aux, T = self._padded_data()
        with jax.enable_x64(True):
            if cut is not None:
                y = y.at[cut:].set(jnp.nan)
            model, burn = self._model(self._params, aux)
            res = kalman_filter(model, y, burn=burn)
            mean = np.asarray(res.observation_mean)[:T]
            var = np.diagonal(np.asarray(res.observation_cov), axis1=-2, axis2=-1)[:T]
        return mean, np.clip(var, 0, None)

    @per_series
    def predict_in_sample(self, start=None, end=None, dynamic=False, coverage=None):
        """Predictions of :math:`y_t` at the training times ``start..end`` (inclusive):
        one-step-ahead :math:`E[y_t \\mid y_{0:t-1}]`, or dynamic from ``dynamic`` on
        :math:`E[y_t \\mid y_{0:\\tau-1}]` for :math:`t \\ge \\tau` (statsmodels'
        ``get_prediction(start, end, dynamic=...)``).

        Parameters
        ----------
        start, end : int or label, optional
            First and last prediction, as positions (negative from the end) or labels of the
            training index; the whole sample by default.
        dynamic : bool, int or label, default False
            Where dynamic prediction begins (:math:`\\tau`), statsmodels' rules: ``False`` one-step
            throughout, ``True`` from ``start``, an int an offset from ``start``, a label that
            time.
        coverage : float or sequence of float, optional
            Without it, the predictive means (a Series for a univariate series, else a DataFrame,
            ``(end - start + 1, m)``). With it, central intervals
            :math:`\\hat y_t \\pm z_{(1+c)/2} \\sqrt{F_t}` in :meth:`predict_interval`'s layout,
            columns ``(variable, coverage, "lower"|"upper")`` (statsmodels' ``conf_int(alpha=1-c)``).
        """
        self._check_is_fitted()
        index = self._y.index
        first = 0 if start is None else index_position(start, index, "start")
        last = len(index) - 1 if end is None else index_position(end, index, "end")
        if last < first:
            raise ValueError(f"end ({end!r}) comes before start ({start!r})")
        mean, var = self._in_sample_moments(_dynamic_position(dynamic, first, index))
        rows = slice(first, last + 1)
        mean, sd, labels = mean[rows], np.sqrt(var[rows]), index[rows]
        if coverage is None:
            if self._y.is_series:
                return pd.Series(mean[:, 0], index=labels, name=self._y.columns[0])
            return pd.DataFrame(mean, index=labels, columns=self._y.columns)
        cols = {}
        for j, variable in enumerate(self._y.columns):
            for c in _data.check_coverage(coverage):
                z = stats.norm.ppf(0.5 + c / 2)
                cols[(variable, c, "lower")] = mean[:, j] - z * sd[:, j]
                cols[(variable, c, "upper")] = mean[:, j] + z * sd[:, j]
        return pd.DataFrame(cols, index=labels)

    @per_series
    def _residuals(self):
        fitted = self.predict_in_sample()
        if self._y.is_series:
            return pd.Series(self._y.values[:, 0] - fitted.to_numpy(), index=fitted.index, name=fitted.name)
        return pd.DataFrame(self._y.values - fitted.to_numpy(), index=fitted.index, columns=fitted.columns)

    @property
    def fittedvalues_(self):
        """One-step-ahead predictions :math:`\\hat y_t = E[y_t \\mid y_{0:t-1}]` at the training
        times (statsmodels' ``fittedvalues``): a Series (DataFrame for several variables) on the
        training index, stacked under ``series_id`` for a panel."""
        return self.predict_in_sample()

    @property
    def resid_(self):
        """One-step prediction errors :math:`y_t - \\hat y_t` (statsmodels' ``resid``), NaN where
        :math:`y_t` is missing; shaped like ``fittedvalues_``."""
        self._check_is_fitted()
        return self._residuals()
