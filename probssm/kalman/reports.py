"""What a fitted linear-Gaussian forecaster reports beyond forecasts: the smoothed signal,
standardised residuals and their tests (the numbers of statsmodels' results summary), and the
summary table."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import stats

from .. import diagnostics
from ..base import per_series, single_series
from .inference import filter as kalman_filter
from .inference import smooth as kalman_smooth

__all__ = ["ReportsMixin"]


class ReportsMixin:
    """Reports of :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`."""

    @per_series
    def smoothed_signal(self) -> pd.DataFrame:
        """Smoothed mean of the noise-free signal :math:`H_t x_t + d_t`, one column per variable,
        and its standard deviation (columns ``(variable, "mean"|"std")``, rows ``T``)."""
        self._check_is_fitted()
        y, aux, T = self._padded_data()
        with jax.enable_x64(True):
            model, _ = self._model(self._params, aux)
            res = kalman_smooth(model, y)
            H, d = model.observation_matrix, model.observation_offset
            mean = np.asarray(jnp.einsum("...ij,tj->ti", H, res.mean) + d)[:T]
            var = np.asarray(jnp.einsum("...ij,tjk,...lk->til", H, res.cov, H))[:T]
        std = np.sqrt(np.clip(np.diagonal(var, axis1=-2, axis2=-1), 0, None))
        cols = {}
        for j, v in enumerate(self._y.columns):
            cols[(v, "mean")] = mean[:, j]
            cols[(v, "std")] = std[:, j]
        return pd.DataFrame(cols, index=self._y.index)

    @per_series
    def standardized_residuals(self) -> pd.DataFrame:
        """One-step forecast errors standardised by their predictive covariance,
        :math:`L_t^{-1}(y_t - \\hat y_{t|t-1})` with :math:`L_t L_t^T = F_t`, one column per
        variable, NaN where ``y`` is missing. The first ``max(burn, diffuse steps)`` rows are left
        out, as statsmodels does for its residual tests."""
        self._check_is_fitted()
        y, aux, T = self._padded_data()
        with jax.enable_x64(True):
            model, burn = self._model(self._params, aux)
            res = kalman_filter(model, y, burn=burn)
        skip = max(burn, diagnostics.nobs_diffuse(res))
        resid = diagnostics.standardized_residuals(
            self._y.values, np.asarray(res.observation_mean)[:T], np.asarray(res.observation_cov)[:T],
            skip=skip,
        )
        return pd.DataFrame(resid, index=self._y.index[skip:], columns=self._y.columns)

    @per_series(drop_inner_level=True)
    def diagnostics(self, lags: int = 1) -> pd.DataFrame:
        """Ljung-Box :math:`Q` at lag ``lags``, Jarque-Bera, skew, kurtosis and the
        heteroskedasticity :math:`H` test of :meth:`standardized_residuals`, with p-values (the
        numbers of statsmodels' results summary); one row per variable."""
        self._check_is_fitted()
        return diagnostics.diagnostics_table(self.standardized_residuals(), lags=lags)

    @single_series
    def plot_diagnostics(self, variable=0, lags: int = 10, fig=None):
        """statsmodels' four residual panels: standardised residuals, histogram with a KDE and
        :math:`N(0,1)`, normal Q-Q plot, correlogram. Returns the matplotlib Figure."""
        resid = self.standardized_residuals()
        return diagnostics.plot_diagnostics(resid, index=resid.index, variable=variable, lags=lags, fig=fig)

    @single_series
    def summary(self) -> str:
        """A text table of the estimates and the residual tests.

        After maximum likelihood (or EM): coefficients with standard errors, z, p-values and 95 %
        intervals, the log-likelihood, information criteria and convergence. After
        ``method="nuts"``: the posterior's mean, sd, 5 % and 95 % quantiles, split-:math:`\\hat R`
        and effective sample size, with the number of chains, draws and divergences."""
        self._check_is_fitted()
        tests = self.diagnostics().iloc[0]
        foot = [
            "",
            f"  Ljung-Box (L1) Q: {tests['ljung_box']:.3f} (p {tests['ljung_box_pvalue']:.3f})"
            f"    Jarque-Bera: {tests['jarque_bera']:.3f} (p {tests['jarque_bera_pvalue']:.3f})"
            f"    Heteroskedasticity H: {tests['heteroskedasticity']:.3f} (p {tests['heteroskedasticity_pvalue']:.3f})",
        ]
        if self._draws is not None:
            return self._posterior_summary_text() + "\n".join(foot)
        z = self.params_ / self.bse_
        p = 2 * stats.norm.sf(np.abs(z))
        table = pd.DataFrame({
            "coef": self.params_, "std err": self.bse_, "z": z, "P>|z|": p,
            "[0.025": self.params_ - 1.959964 * self.bse_, "0.975]": self.params_ + 1.959964 * self.bse_,
        })
        head = [
            f"{type(self).__name__} results",
            f"  observations: {self.nobs_}    initialization: {self.initialization}",
            f"  log-likelihood: {self.loglik_:.5f}    AIC: {self.aic_:.4f}    BIC: {self.bic_:.4f}"
            f"    HQIC: {self.hqic_:.4f}",
            f"  converged: {self.converged_}",
            "",
        ]
        return "\n".join(head) + table.to_string(float_format=lambda v: f"{v:.6g}") + "\n".join(foot)
