"""User-set diffuse prior variance and log-likelihood burn of the structural estimators.

statsmodels' state-space models take ``initial_variance`` (the variance :math:`\\kappa` of the
approximate diffuse prior :math:`P_0 = P_* + \\kappa P_\\infty`, default :math:`10^6`) and
``loglikelihood_burn`` (how many leading log-likelihood terms to leave out, by default the number
of diffuse states under the approximate diffuse prior and none under the exact one). The mixin
below gives :class:`~probssm.structural.SARIMAX` and
:class:`~probssm.structural.UnobservedComponents` the same two hyper-parameters:

.. math::

    \\log L = \\sum_{t = b}^{T-1} \\log p(y_t \\mid y_{0:t-1}),

with :math:`b` = ``loglikelihood_burn`` when given. The information criteria then count
:math:`T - b` observations, as statsmodels' ``nobs_effective`` does.
"""

from __future__ import annotations

import numbers

import numpy as np

from ..kalman.model import APPROXIMATE_DIFFUSE_VARIANCE

__all__ = ["APPROXIMATE_DIFFUSE_VARIANCE", "DiffuseOptionsMixin"]


class DiffuseOptionsMixin:
    """``initial_variance`` and ``loglikelihood_burn`` hyper-parameters for a
    :class:`~probssm.kalman.forecaster.LinearGaussianForecaster` subclass (listed before it in the
    bases). The subclass stores both in ``__init__`` and puts :meth:`_diffuse_options` in its
    ``_structure()``, since both change the compiled log-likelihood."""

    #: :math:`\\kappa` when ``initial_variance`` is None (statsmodels' default).
    default_initial_variance = APPROXIMATE_DIFFUSE_VARIANCE

    @property
    def approximate_diffuse_variance(self) -> float:
        """:math:`\\kappa`, the prior variance of the diffuse states under
        ``initialization="approximate_diffuse"``: ``initial_variance``, or
        :attr:`default_initial_variance` when that is None."""
        kappa = self.initial_variance
        return float(self.default_initial_variance if kappa is None else kappa)

    def _diffuse_options(self) -> tuple:
        return (self.initial_variance, self.loglikelihood_burn)

    def _check_settings(self):
        super()._check_settings()
        kappa = self.initial_variance
        if kappa is None:
            kappa = self.default_initial_variance
        if isinstance(kappa, (bool, np.bool_)) or not isinstance(kappa, numbers.Real):
            raise TypeError(f"initial_variance must be None or a positive number, got {kappa!r}")
        if not (np.isfinite(kappa) and kappa > 0):
            raise ValueError(f"initial_variance must be positive and finite, got {kappa!r}")
        burn = self.loglikelihood_burn
        if burn is not None:
            if isinstance(burn, (bool, np.bool_)) or not isinstance(burn, numbers.Integral):
                raise TypeError(f"loglikelihood_burn must be None or a non-negative integer, got {burn!r}")
            if burn < 0:
                raise ValueError(f"loglikelihood_burn must be non-negative, got {burn}")

    def _set_burn(self, params):
        super()._set_burn(params)
        if self.loglikelihood_burn is not None:
            observed = int(np.sum(~np.all(np.isnan(self._y.values), axis=1)))
            if self.loglikelihood_burn >= observed:
                raise ValueError(
                    f"loglikelihood_burn={self.loglikelihood_burn} leaves no observation of the "
                    f"{observed} in y in the log-likelihood"
                )
            self._burn = int(self.loglikelihood_burn)

    def _model(self, params, aux, burn=None):
        model, default = super()._model(params, aux, burn)
        if self.loglikelihood_burn is None:
            return model, default
        # the exact diffuse prior burns nothing by default; a user's burn applies under both
        return model, self._burn if burn is None else burn
