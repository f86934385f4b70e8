r"""Typed outputs of the kernel filter and smoother (:mod:`.filter_kernel`), which are also the
types of their cotangents in the reverse mode (:mod:`.adjoint`).

Shapes for ``B`` series of ``T`` steps, state dimension ``n`` and observation dimension ``m``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple, Optional

import jax

_FILTERED_FIELDS = ("mean", "cov", "log_likelihood_terms", "next_mean", "next_cov")


class FilterStates(NamedTuple):
    r"""Per-step outputs of the filter: the fields of :class:`probssm.kalman.FilterResult` but
    ``log_likelihood``.

    Attributes
    ----------
    mean, cov : ``(B, T, n)``, ``(B, T, n, n)``
        Filtered moments of :math:`p(x_t \mid y_{0:t})`.
    predicted_mean, predicted_cov : ``(B, T, n)``, ``(B, T, n, n)``
        One-step predictions :math:`a_t, P_t` of :math:`p(x_t \mid y_{0:t-1})` (the prior at
        ``t = 0``).
    predicted_diffuse_cov : ``(B, T, n, n)``
        Zero: the kernel needs a proper prior.
    observation_mean, observation_cov : ``(B, T, m)``, ``(B, T, m, m)``
        :math:`H a_t + d`, :math:`H P_t H^T + R`. These five fields are ``None`` for a filter
        run without predictions.
    log_likelihood_terms : ``(B, T)``
        :math:`\log p(y_t \mid y_{0:t-1})` over the observed entries (0 for a missing row).
    next_mean, next_cov : ``(B, n)``, ``(B, n, n)``
        Prediction of the state one step past the data.

    As cotangents (:func:`probssm.kalman.ops.adjoint.filter_vjp`) ``None`` is a zero cotangent,
    so every field defaults to ``None``.
    """

    mean: Optional[jax.Array] = None
    cov: Optional[jax.Array] = None
    predicted_mean: Optional[jax.Array] = None
    predicted_cov: Optional[jax.Array] = None
    predicted_diffuse_cov: Optional[jax.Array] = None
    observation_mean: Optional[jax.Array] = None
    observation_cov: Optional[jax.Array] = None
    log_likelihood_terms: Optional[jax.Array] = None
    next_mean: Optional[jax.Array] = None
    next_cov: Optional[jax.Array] = None

    @classmethod
    def from_mapping(cls, out: Mapping, predictions: bool = True) -> FilterStates:
        """The fields of a filter's dict of outputs (:func:`probssm.kalman.sequential.filter_single`
        and :func:`probssm.kalman.parallel.filter_single`, which hold more), the five prediction
        fields ``None`` unless ``predictions``."""
        return cls(**{field: out[field] if predictions or field in _FILTERED_FIELDS else None
                      for field in cls._fields})


class SmootherStates(NamedTuple):
    r"""Outputs of the smoother.

    Attributes
    ----------
    filtered : FilterStates
        The forward pass.
    smoothed_mean, smoothed_cov : ``(B, T, n)``, ``(B, T, n, n)``
        Moments of :math:`p(x_t \mid y_{0:T-1})`.
    lag_one_cov : ``(B, T - 1, n, n)``
        :math:`\mathrm{Cov}(x_{t+1}, x_t \mid y_{0:T-1})`.

    As cotangents (:func:`probssm.kalman.ops.adjoint.smoother_vjp`) ``None`` is a zero
    cotangent, as in :class:`FilterStates`.
    """

    filtered: FilterStates = FilterStates()
    smoothed_mean: Optional[jax.Array] = None
    smoothed_cov: Optional[jax.Array] = None
    lag_one_cov: Optional[jax.Array] = None

    @classmethod
    def from_mapping(cls, out: Mapping) -> SmootherStates:
        """The fields of a smoother's dict of outputs
        (:func:`probssm.kalman.sequential.smooth_single`,
        :func:`probssm.kalman.parallel.smooth_single`)."""
        return cls(FilterStates.from_mapping(out), out["smoothed_mean"], out["smoothed_cov"],
                   out["lag_one_cov"])
