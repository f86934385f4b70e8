r"""The Hyndman-Khandakar (2008) order search, run for many series in lock step so that each round's
candidates of *all* series are fitted in one batched program (:mod:`.auto_candidates`).

Stepwise (``forecast::auto.arima``'s defaults for the bounds):

1. Start from :math:`(2,2)(1,1)`, :math:`(0,0)(0,0)`, :math:`(1,0)(1,0)`, :math:`(0,1)(0,1)` with
   a constant where one is allowed (:math:`d + D \le 1`) and :math:`(0,0)(0,0)` without (seasonal
   parts only for a seasonal series).
2. Each round fits every unvisited neighbour of the current best model: :math:`P`, :math:`Q`,
   :math:`p`, :math:`q` one up or down, :math:`(P, Q)` and :math:`(p, q)` both up or down
   together or one up and one down, and the constant toggled, within
   :math:`p \le \bar p`, :math:`q \le \bar q`, :math:`P \le \bar P`, :math:`Q \le \bar Q`
   and :math:`p + q + P + Q \le` ``max_order``. ``max_order`` bounds the stepwise candidates
   too, so under the default ``max_order=5`` the :math:`(2,2)(1,1)` start is left out: on the US
   employment panel of ``benchmarks/auto_models.py`` starting from it (and letting the stepwise
   search past ``max_order``) forecast worse, MASE 0.609 against 0.583.
3. The best model of the round replaces the current one if its criterion is lower; the search
   stops when no neighbour improves or ``max_models`` candidates have been fitted.

``forecast::auto.arima`` moves to the *first* improving neighbour it meets; fitting the round
together and moving to its *best* neighbour is the batched form of the same descent (it may
visit a few more models and may end in a different local minimum).

Exhaustive (``stepwise=False``): every candidate within the bounds, in one batch.
"""

from __future__ import annotations

import itertools

from .auto_candidates import Candidate, criterion_value, fit_candidates

__all__ = ["SearchBounds", "search"]


class SearchBounds:
    """Bounds of the search: ``max_p``, ``max_q``, ``max_P``, ``max_Q``, ``max_order`` (on
    :math:`p + q + P + Q`) and ``max_models`` (stepwise only)."""

    def __init__(self, max_p, max_q, max_P, max_Q, max_order, max_models):
        self.max_p, self.max_q, self.max_P, self.max_Q = max_p, max_q, max_P, max_Q
        self.max_order, self.max_models = max_order, max_models

    def admissible(self, c: Candidate, seasonal: bool, constant_allowed: bool) -> bool:
        """Whether ``c`` lies inside the bounds (no seasonal terms for a non-seasonal series)."""
        if min(c.p, c.q, c.P, c.Q) < 0 or (c.constant and not constant_allowed):
            return False
        if not seasonal and (c.P or c.Q):
            return False
        return (c.p <= self.max_p and c.q <= self.max_q and c.P <= self.max_P and c.Q <= self.max_Q
                and c.p + c.q + c.P + c.Q <= self.max_order)


def _initial(seasonal: bool, constant: bool) -> list[Candidate]:
    S = int(seasonal)
    out = [Candidate(2, 2, S, S, constant), Candidate(0, 0, 0, 0, constant),
           Candidate(1, 0, S, 0, constant), Candidate(0, 1, 0, S, constant)]
    if constant:
        out.append(Candidate(0, 0, 0, 0, False))
    return out


def _neighbours(c: Candidate) -> list[Candidate]:
    steps = [(0, 0, -1, 0), (0, 0, 1, 0), (0, 0, 0, -1), (0, 0, 0, 1), (0, 0, -1, -1), (0, 0, -1, 1),
             (0, 0, 1, -1), (0, 0, 1, 1), (-1, 0, 0, 0), (1, 0, 0, 0), (0, -1, 0, 0), (0, 1, 0, 0),
             (-1, -1, 0, 0), (-1, 1, 0, 0), (1, -1, 0, 0), (1, 1, 0, 0)]
    out = [Candidate(c.p + a, c.q + b, c.P + e, c.Q + f, c.constant) for a, b, e, f in steps]
    out.append(c._replace(constant=not c.constant))
    return out


class _SeriesSearch:
    """The state of one series' search: what it has fitted and where it stands."""

    def __init__(self, seasonal, constant_allowed):
        self.seasonal, self.constant_allowed = seasonal, constant_allowed
        self.fits: dict = {}  # Candidate -> (CandidateFit, criterion)
        self.best = None
        self.done = False

    def record(self, cand, fit, criterion):
        self.fits[cand] = (fit, criterion)
        if self.best is None or criterion < self.fits[self.best][1]:
            self.best = cand
            return True
        return False


def search(series, seasonal_flags, constant_flags, s, bounds, criterion, method, stepwise,
           progress=None):
    """Search the orders of every series.

    Parameters
    ----------
    series : list of ndarray
        Differenced series :math:`w_i` ``(n_i,)`` (leading missing values removed).
    seasonal_flags, constant_flags : list of bool
        Per series: whether seasonal terms are searched, whether a constant is allowed.
    s : int
        Seasonal period.
    bounds : SearchBounds
    criterion : {"aicc", "aic", "bic"}
    method : list of {"css", "ml"}
        Per series, the objective candidates are compared by.
    stepwise : bool
    progress : callable, optional
        Called with the number of series whose search ended in a round.

    Returns
    -------
    list of dict ``Candidate -> (CandidateFit, criterion)``, one per series, every fitted
    candidate with its criterion, and the list of the best candidate of each series.
    """
    states = [_SeriesSearch(a, b) for a, b in zip(seasonal_flags, constant_flags)]
    widest = Candidate(bounds.max_p, bounds.max_q, bounds.max_P if any(seasonal_flags) else 0,
                       bounds.max_Q if any(seasonal_flags) else 0, any(constant_flags))
    condition = widest.p + s * widest.P
    if stepwise:
        proposals = [[c for c in _initial(st.seasonal, st.constant_allowed)
                      if bounds.admissible(c, st.seasonal, st.constant_allowed)] for st in states]
    else:
        grid = itertools.product(range(bounds.max_p + 1), range(bounds.max_q + 1), range(bounds.max_P + 1),
                                 range(bounds.max_Q + 1), (False, True))
        grid = [Candidate(*g) for g in grid]
        proposals = [[c for c in grid if bounds.admissible(c, st.seasonal, st.constant_allowed)] for st in states]
    while any(proposals):
        moved = set()
        for kind in ("css", "ml"):  # one batched program per objective
            jobs = [(i, c) for i, cands in enumerate(proposals) if method[i] == kind for c in cands]
            if not jobs:
                continue
            fits = fit_candidates(series, jobs, s, kind, condition, widest)
            for (i, cand), fit in zip(jobs, fits):
                value = criterion_value(criterion, fit.loglik, cand.num_params, fit.nobs)
                if states[i].record(cand, fit, value):
                    moved.add(i)
        ended = 0
        for i, st in enumerate(states):
            if not proposals[i]:
                continue
            first_round = len(st.fits) == len(proposals[i])
            improved = i in moved or first_round
            if not stepwise or not improved or len(st.fits) >= bounds.max_models:
                proposals[i], st.done = [], True
                ended += 1
                continue
            proposals[i] = [c for c in _neighbours(st.best) if c not in st.fits
                            and bounds.admissible(c, st.seasonal, st.constant_allowed)]
            if not proposals[i]:
                st.done = True
                ended += 1
        if progress is not None and ended:
            progress(ended)
    return [st.fits for st in states], [st.best for st in states]
