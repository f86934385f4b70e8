"""Ready-made :mod:`probssm.ssm` models for particle filtering."""

from __future__ import annotations

import jax.numpy as jnp

from ..ssm import StateSpaceModel

__all__ = ["stochastic_volatility"]


def _sv_initial(p):
    import numpyro.distributions as dist
    return dist.Normal(jnp.reshape(p["mu"], (1,)), jnp.reshape(p["sigma"] / jnp.sqrt(1 - p["rho"] ** 2), (1,)))


def _sv_transition(x, t, p):
    import numpyro.distributions as dist
    return dist.Normal(p["mu"] + p["rho"] * (x - p["mu"]), p["sigma"])


def _log_scale_normal():
    """``Normal(loc, exp(log_scale))`` whose log-density uses ``log_scale`` directly: one
    exponential a draw instead of an exponential, a logarithm and a division (the compiler does
    not simplify :math:`\\log e^{x}`)."""
    import numpyro.distributions as dist

    global _LogScaleNormal
    if _LogScaleNormal is None:
        class LogScaleNormal(dist.Normal):
            def __init__(self, loc=0.0, log_scale=0.0, *, validate_args=None):
                self.log_scale = log_scale
                super().__init__(loc, jnp.exp(log_scale), validate_args=validate_args)

            def log_prob(self, value):
                z = (value - self.loc) * jnp.exp(-self.log_scale)
                return -0.5 * z * z - self.log_scale - 0.5 * jnp.log(2 * jnp.pi)

            def tree_flatten(self):
                return (self.loc, self.log_scale), None

            @classmethod
            def tree_unflatten(cls, aux_data, params):
                return cls(*params)

        _LogScaleNormal = LogScaleNormal
    return _LogScaleNormal


_LogScaleNormal = None


def _sv_emission(x, t, p):
    return _log_scale_normal()(jnp.zeros_like(x), 0.5 * x)


def stochastic_volatility(mu=-1.0, rho=0.95, sigma=0.2) -> StateSpaceModel:
    """The basic stochastic-volatility model (Chopin & Papaspiliopoulos 2020, sec. 2.4.3; the
    ``StochVol`` of the ``particles`` library):

    .. math::

        x_0 \\sim N\\!\\left(\\mu, \\frac{\\sigma^2}{1 - \\rho^2}\\right), \\quad
        x_t = \\mu + \\rho (x_{t-1} - \\mu) + \\sigma \\varepsilon_t, \\quad
        y_t \\mid x_t \\sim N(0, e^{x_t}),

    state :math:`x_t` the log-variance ``(1,)``, observation a return ``(1,)``. Parameters
    ``params = {"mu", "rho", "sigma"}`` (scalars; :math:`|\\rho| < 1`, :math:`\\sigma > 0`).
    """
    params = {"mu": jnp.asarray(mu, dtype=jnp.result_type(float)),
              "rho": jnp.asarray(rho, dtype=jnp.result_type(float)),
              "sigma": jnp.asarray(sigma, dtype=jnp.result_type(float))}
    return StateSpaceModel(_sv_initial, _sv_transition, _sv_emission, params=params)
