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


def _sv_emission(x, t, p):
    import numpyro.distributions as dist
    return dist.Normal(jnp.zeros_like(x), jnp.exp(0.5 * x))


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
