"""Maximum likelihood with some parameters held at given values (statsmodels' ``fix_params``).

With the parameter vector split into free and fixed entries, :math:`\\psi = (\\psi_f, \\psi_c)`,
the fit maximises the profile

.. math::

    \\hat\\psi_f = \\arg\\max_{\\psi_f} \\log L(\\psi_f, \\psi_c)

over the unconstrained free entries :math:`\\vartheta_f`, the fixed ones entering as their
unconstrained images :math:`\\vartheta_c`. That needs every fixed entry to be a function of its
own unconstrained number only (a variance, a cycle's frequency); parameters transformed jointly
(the AR coefficients under a stationarity transform, a covariance matrix's entries) can be
fixed all together or not at all, as statsmodels requires.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..fit import maximize_likelihood
from . import compiled

__all__ = ["FixedParamsMixin", "resolve_fixed", "with_fixed", "free_objective"]

# A point in the unconstrained space at which no parameter sits on a special value (zero
# variances, a zero MA coefficient), so the Jacobian's zeros are structural.
_GENERIC = 0.3


def resolve_fixed(fixed, names, to_unconstrained, to_natural, start) -> np.ndarray:
    """The mask of fixed entries ``(k,)`` (bool), after checking ``fixed``.

    ``fixed`` maps parameter names (of ``names``, length ``k``) to values. Raises ``TypeError``
    for a non-mapping, ``ValueError`` for unknown names, non-finite or inadmissible values, and
    for a fixed entry whose transform it shares with free ones (it could not stay fixed while
    they move). ``start`` ``(k,)`` are natural starting values of the free entries."""
    if not hasattr(fixed, "items"):
        raise TypeError(f"fixed must be a mapping {{name: value}}, got {type(fixed).__name__}")
    fixed = dict(fixed.items())
    unknown = [n for n in fixed if n not in names]
    if unknown:
        raise ValueError(f"fixed: unknown parameters {unknown}; the model has {list(names)}")
    mask = np.array([n in fixed for n in names])
    if mask.all():
        raise ValueError(f"fixed: every parameter is fixed; pass them as params= to fit without estimating {list(names)}")
    bad = [n for n, v in fixed.items()
           if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating))
           or not np.isfinite(v)]
    if bad:
        raise ValueError(f"fixed: values of {bad} must be finite numbers, got {[fixed[n] for n in bad]}")
    values = with_fixed(start, names, fixed)
    with jax.enable_x64(True):
        back = np.asarray(to_natural(to_unconstrained(jnp.asarray(values))))
        jac = np.asarray(jax.jacfwd(to_natural)(jnp.full(len(names), _GENERIC)))
    off = ~np.isclose(back, values, rtol=1e-6, atol=1e-10) & mask
    if off.any():
        raise ValueError(f"fixed: {names[int(np.argmax(off))]} = {float(values[int(np.argmax(off))])} is outside "
                         "its admissible range")
    for i in np.flatnonzero(mask):
        shared = np.flatnonzero(jac[i] != 0)
        free = [names[j] for j in shared if not mask[j]]
        if free:
            group = [names[j] for j in shared]
            raise ValueError(
                f"fixed: {names[i]} is transformed jointly with {group} (e.g. a stationarity or "
                f"covariance transform); fix all of them or none (free: {free})"
            )
    return mask


def with_fixed(values, names, fixed) -> np.ndarray:
    """``values`` ``(k,)`` (a copy) with the entries named in ``fixed`` replaced by its values."""
    out = np.array(values, dtype=np.float64)
    for i, name in enumerate(names):
        if name in fixed:
            out[i] = float(fixed[name])
    return out


def _profile(theta_free, y, aux, theta_fixed, *, objective, free):
    theta = theta_fixed.at[free].set(theta_free)
    return objective(theta, y, aux)


_OBJECTIVES: dict = {}


def free_objective(objective, mask: np.ndarray):
    """``objective(theta, y, aux)`` over the full unconstrained vector as a function of the free
    entries, ``g(theta_free, y, aux, theta_fixed)``: ``theta_fixed`` ``(k,)`` supplies the fixed
    entries (its free ones are ignored). One function object per objective and mask, so the
    optimiser compiles once for every value of the fixed entries."""
    key = (objective, tuple(bool(m) for m in mask))
    if key not in _OBJECTIVES:
        _OBJECTIVES[key] = partial(_profile, objective=objective, free=np.flatnonzero(~np.asarray(mask)))
    return _OBJECTIVES[key]


class FixedParamsMixin:
    """``fit(..., fixed=...)`` of :class:`~probssm.kalman.forecaster.LinearGaussianForecaster`:
    the checks and the maximisation over the free parameters."""

    def _resolve_fixed(self, data, start) -> dict:
        """The checked ``fixed`` mapping of this fit, in parameter order (empty without)."""
        fixed = getattr(self, "_fixed_request", None)
        if fixed is None:
            return {}
        if self.method != "mle":
            raise ValueError(f"fixed parameters are estimated with method='mle' (got {self.method!r})")
        # these fits maximise another objective (the differenced series', the profile
        # likelihood), which holds no fixed entries
        for setting in ("simple_differencing", "concentrate_scale"):
            if getattr(self, setting, False):
                raise ValueError(f"fixed parameters are not available with {setting}=True")
        names = self._param_names(data.values.shape[1])
        with jax.enable_x64(True):
            resolve_fixed(fixed, names, self._to_unconstrained, self._to_natural, start)
        return {n: float(fixed[n]) for n in names if n in fixed}

    def _estimate_free(self, data, start) -> np.ndarray:
        """Natural parameters ``(k,)`` maximising the likelihood over the free entries, the
        fixed ones (``self._fixed``) held."""
        y, aux, _ = self._padded_data()
        names = self._param_names(data.values.shape[1])
        mask = np.array([n in self._fixed for n in names])
        with jax.enable_x64(True):
            theta0 = np.asarray(self._to_unconstrained(jnp.asarray(start)))
            objective = free_objective(compiled.objective(self, self._burn), mask)
            res = maximize_likelihood(objective, theta0[~mask], y, aux, jnp.asarray(theta0))
            self.converged_ = res.converged
            theta = theta0.copy()
            theta[~mask] = np.asarray(res.theta)
            # the fixed entries exactly as given, not their round trip through the transform
            return with_fixed(np.asarray(self._to_natural(jnp.asarray(theta))), names, self._fixed)
