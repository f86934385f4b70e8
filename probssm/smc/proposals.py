"""Proposals of the particle filters: bootstrap, guided (a user distribution) and auxiliary.

At step :math:`t \\ge 1` a particle :math:`x_{t-1}` is moved by a proposal
:math:`q_t(x_t \\mid x_{t-1}, y_t)` and weighted by

.. math::

    G_t(x_{t-1}, x_t) = \\frac{p(y_t \\mid x_t)\\, p(x_t \\mid x_{t-1})}{q_t(x_t \\mid x_{t-1}, y_t)},

which is :math:`p(y_t \\mid x_t)` for the bootstrap proposal :math:`q_t = p(x_t \\mid x_{t-1})`.
At :math:`t = 0` the same with :math:`q_0(x_0 \\mid y_0)` and the initial density.

The auxiliary particle filter (Pitt & Shephard 1999) also selects ancestors by
:math:`w_{t-1}^i \\eta_t(x_{t-1}^i)`, a look-ahead :math:`\\eta_t \\approx p(y_t \\mid x_{t-1})`,
and divides the weight of a selected particle by :math:`\\eta_t` again, so every estimate stays
unbiased; a good look-ahead spends particles where :math:`y_t` says the state is going.

User functions follow :mod:`probssm.ssm`: with ``model.params`` not ``None`` they get the
parameters as their last argument; ``x_prev`` is one particle ``(n,)``, ``y`` one observation
``(m,)`` (NaN entries missing), ``t`` the integer time step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax.numpy as jnp

from ..ssm import _call, _vector

__all__ = ["Auxiliary", "Guided", "predictive_mean_look_ahead"]


@dataclass(frozen=True)
class Guided:
    """A guided proposal.

    Parameters
    ----------
    transition : callable
        ``transition(x_prev, y, t[, params])`` -> NumPyro distribution of :math:`x_t`, event
        shape ``(n,)`` (or a batch of ``n`` univariate ones), for :math:`t \\ge 1`.
    initial : callable, optional
        ``initial(y0[, params])`` -> distribution of :math:`x_0`; by default the model's initial
        distribution (then :math:`G_0 = p(y_0 \\mid x_0)`).

    A plain callable passed as ``proposal=`` is ``Guided(transition=callable)``.
    """

    transition: Callable
    initial: Callable | None = None


def predictive_mean_look_ahead(model, x_prev, y, t):
    """:math:`\\log \\eta_t(x_{t-1}) = \\log p(y_t \\mid x_t = E[x_t \\mid x_{t-1}])`, the look-ahead
    of Pitt & Shephard (1999) (a scalar; 0 for a fully missing ``y``)."""
    mean = _vector(model.transition_moments(x_prev, t - 1)[0])
    return model.emission_log_prob(mean, y, t)


@dataclass(frozen=True)
class Auxiliary:
    """The auxiliary particle filter.

    Parameters
    ----------
    look_ahead : callable, optional
        ``look_ahead(x_prev, y, t[, params])`` -> :math:`\\log \\eta_t(x_{t-1})`, a scalar; by
        default :func:`predictive_mean_look_ahead`.
    proposal : ``"bootstrap"``, callable or :class:`Guided`
        How selected particles move.

    ``proposal="auxiliary"`` is ``Auxiliary()``.
    """

    look_ahead: Callable | None = None
    proposal: str | Callable | Guided = "bootstrap"


@dataclass(frozen=True)
class _Resolved:
    """A proposal in one form: the guided parts (``None``: bootstrap) and the look-ahead
    (``None``: no auxiliary stage; ``"mean"``: the predictive-mean look-ahead)."""

    transition: Callable | None = None
    initial: Callable | None = None
    look_ahead: None | str | Callable = None


def resolve(proposal) -> _Resolved:
    """The :class:`_Resolved` form of a ``proposal=`` argument (raises on anything else)."""
    if isinstance(proposal, _Resolved):
        return proposal
    if isinstance(proposal, str):
        if proposal == "bootstrap":
            return _Resolved()
        if proposal == "auxiliary":
            return _Resolved(look_ahead="mean")
        raise ValueError(f"proposal must be 'bootstrap', 'auxiliary', a callable, Guided or Auxiliary, "
                         f"got {proposal!r}")
    if isinstance(proposal, Guided):
        return _Resolved(transition=proposal.transition, initial=proposal.initial)
    if isinstance(proposal, Auxiliary):
        inner = resolve(proposal.proposal)
        if inner.look_ahead is not None:
            raise ValueError("Auxiliary(proposal=...) must be 'bootstrap', a callable or Guided, not "
                             "another auxiliary proposal")
        return _Resolved(inner.transition, inner.initial,
                         "mean" if proposal.look_ahead is None else proposal.look_ahead)
    if callable(proposal):
        return _Resolved(transition=proposal)
    raise TypeError(f"proposal must be 'bootstrap', 'auxiliary', a callable, Guided or Auxiliary, "
                    f"got {type(proposal).__name__}")


def log_look_ahead(resolved: _Resolved, model, x_prev, y, t):
    """:math:`\\log \\eta_t` of one particle (scalar)."""
    if resolved.look_ahead == "mean":
        return predictive_mean_look_ahead(model, x_prev, y, t)
    return jnp.asarray(_call(resolved.look_ahead, (x_prev, y, t), model.params))


def initial_proposal(resolved: _Resolved, model, y0):
    """The distribution of :math:`x_0` under the proposal."""
    if resolved.initial is None:
        return model.initial_distribution()
    return _call(resolved.initial, (y0,), model.params)


def transition_proposal(resolved: _Resolved, model, x_prev, y, t):
    """The distribution of :math:`x_t` under the guided proposal."""
    return _call(resolved.transition, (x_prev, y, t), model.params)
