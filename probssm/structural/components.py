"""Components of structural time-series models; each builds one block of a linear-Gaussian model.

A component owns ``k`` states and describes

- its transition block :math:`F_c` ``(k, k)`` and state-noise covariance :math:`Q_c` ``(k, k)``,
- its loading :math:`z_c` ``(k,)`` (or ``(T, k)`` when it varies with time), the row through
  which its states enter the observation, and an observation offset ``(T,)`` if it has one,
- how its states start: diffuse (non-stationary) or with their stationary covariance.

:func:`~probssm.structural.unobserved.uc_model` stacks the blocks,

.. math::

    y_t = \\sum_c z_{c,t}^T x_{c,t} + d_t + \\varepsilon_t, \\quad
    x_{c,t+1} = F_c x_{c,t} + \\eta_{c,t}, \\quad \\eta_{c,t} \\sim N(0, Q_c),

with :math:`\\varepsilon_t \\sim N(0, \\sigma^2_\\varepsilon)` from :class:`Irregular`. The
blocks and parameter names follow statsmodels' ``UnobservedComponents`` (Harvey 1989; Durbin &
Koopman 2012, ch. 3), so fitted parameters compare one to one.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..base import BaseEstimator
from ..kalman._linalg import solve_discrete_lyapunov

__all__ = [
    "Component", "Level", "LocalLinearTrend", "SmoothTrend", "Seasonal", "TrigSeasonal",
    "Cycle", "Autoregressive", "Regression", "Irregular",
]

# Parameter kinds, each with its own map to the real line (see ``structural.unobserved``).
VARIANCE, FREQUENCY, DAMPING, AR, FREE = "variance", "frequency", "damping", "ar", "free"
# statsmodels orders parameters by group: observation variance, state variances, transition
# parameters, regression coefficients.
_GROUP = {"obs_var": 0, "state_var": 1, "transition": 2, "regression": 3}


@dataclass(frozen=True)
class ParamSpec:
    """One scalar parameter: its name, kind (how it is constrained) and statsmodels group."""

    name: str
    kind: str
    group: int


@dataclass(frozen=True)
class Context:
    """What components need to know about the data: exogenous column names, the index's
    frequency (``"A"``, ``"Q"``, ``"M"`` or ``""``), and the label used in parameter names."""

    exog_names: tuple = ()
    freq: str = ""
    label: str = ""


@dataclass
class Block:
    """A component's part of the model (arrays are JAX arrays).

    ``transition`` and ``state_cov`` are ``(k, k)``; ``loading`` is ``(k,)`` or ``(T, k)``;
    ``offset`` is ``(T,)`` or ``None``; ``obs_var`` a scalar or ``None``; ``stationary`` says
    whether the states start at their stationary distribution (else diffuse).
    """

    transition: object
    state_cov: object
    loading: object
    offset: object = None
    obs_var: object = None
    stationary: bool = False


class Component(BaseEstimator):
    """Base class of structural components (hyper-parameters only; see the module docstring)."""

    label = "component"

    def n_states(self, ctx: Context) -> int:
        """Number of states ``k`` of the block."""
        raise NotImplementedError

    def params(self, ctx: Context) -> list[ParamSpec]:
        """The block's parameters, named as in statsmodels."""
        raise NotImplementedError

    def block(self, p: dict, ctx: Context, exog) -> Block:
        """The block at parameter values ``p`` (name -> scalar); ``exog`` ``(T, k_exog)`` or None."""
        raise NotImplementedError

    #: Starting value of the block's variances as a share of the noise scale (see ``start``).
    noise_share = 1.0

    def unit_roots(self, ctx: Context) -> np.ndarray:
        """Coefficients :math:`(c_0, c_1, \\dots)` of the lag polynomial
        :math:`c(L) = \\sum_j c_j L^j` that makes the block stationary (its unit roots; ``[1.]``
        for a stationary block): :math:`1 - L` for a level, :math:`S(L) = 1 + L + \\dots + L^{s-1}`
        for a seasonal of period :math:`s`."""
        return np.ones(1)

    def start(self, ctx: Context, resid: np.ndarray, exog, noise: float) -> dict:
        """Starting values (name -> float) from ``resid``, the observed data less fixed regression
        effects, and ``noise``, the scale of one-step variation: the variance of ``resid`` after
        removing all components' unit roots, divided by the squared norm of that differencing
        polynomial (so that white noise of variance :math:`\\sigma^2` gives :math:`\\sigma^2`).

        Variances start at ``noise_share * noise``: slowly moving components (slope, seasonal)
        get small shares, as their disturbances are typically orders of magnitude smaller than
        the irregular's; a start of the right order saves the optimiser about half its work."""
        return {s.name: self.noise_share * noise for s in self.params(ctx) if s.kind == VARIANCE}

    def state_names(self, ctx: Context) -> list[str]:
        """Names of the block's states."""
        raise NotImplementedError

    def outputs(self, ctx: Context) -> list[tuple[str, object]]:
        """``(name, row)`` pairs: series reported by ``components()``, each the contribution
        ``row @ x_c`` of the block's states (``row`` ``(k,)``, or ``"loading"`` for the block's
        own loading)."""
        return [(ctx.label or self.label, "loading")]

    def __eq__(self, other):
        return type(self) is type(other) and self.get_params(deep=False) == other.get_params(deep=False)

    def __hash__(self):
        return hash((type(self).__name__, tuple(sorted(self.get_params(deep=False).items()))))


def _one(dtype):
    return jnp.ones((1, 1), dtype)


def _check_int(value, name, minimum):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class Level(Component):
    """A level :math:`\\mu_{t+1} = \\mu_t + \\eta_t`, :math:`\\eta_t \\sim N(0, \\sigma^2_{level})`.

    ``stochastic=False`` gives a fixed (but unknown, diffuse) intercept. One state, loading 1.
    Parameter: ``sigma2.level``.
    """

    label = "level"

    def __init__(self, stochastic=True):
        self.stochastic = stochastic

    def n_states(self, ctx):
        return 1

    def params(self, ctx):
        return [ParamSpec("sigma2.level", VARIANCE, _GROUP["state_var"])] if self.stochastic else []

    def block(self, p, ctx, exog):
        dtype = _dtype(p)
        q = p["sigma2.level"] * _one(dtype) if self.stochastic else jnp.zeros((1, 1), dtype)
        return Block(_one(dtype), q, jnp.ones(1, dtype))

    def state_names(self, ctx):
        return ["level"]

    noise_share = 0.1

    def unit_roots(self, ctx):
        return np.array([1.0, -1.0])


class LocalLinearTrend(Component):
    """Level and slope: :math:`\\mu_{t+1} = \\mu_t + \\beta_t + \\eta_t`,
    :math:`\\beta_{t+1} = \\beta_t + \\zeta_t`.

    :math:`F_c = \\begin{pmatrix}1 & 1\\\\ 0 & 1\\end{pmatrix}`, :math:`z_c = (1, 0)`,
    :math:`Q_c = \\mathrm{diag}(\\sigma^2_{level}, \\sigma^2_{trend})`. Either noise can be switched
    off: no level noise is the smooth trend, no slope noise a random walk with drift, neither a
    deterministic linear trend. Parameters: ``sigma2.level``, ``sigma2.trend`` (statsmodels' names).
    """

    label = "trend"

    def __init__(self, stochastic_level=True, stochastic_slope=True):
        self.stochastic_level = stochastic_level
        self.stochastic_slope = stochastic_slope

    def n_states(self, ctx):
        return 2

    def params(self, ctx):
        out = []
        if self.stochastic_level:
            out.append(ParamSpec("sigma2.level", VARIANCE, _GROUP["state_var"]))
        if self.stochastic_slope:
            out.append(ParamSpec("sigma2.trend", VARIANCE, _GROUP["state_var"]))
        return out

    def block(self, p, ctx, exog):
        dtype = _dtype(p)
        zero = jnp.zeros((), dtype)
        q = jnp.stack([
            p["sigma2.level"] if self.stochastic_level else zero,
            p["sigma2.trend"] if self.stochastic_slope else zero,
        ])
        F = jnp.array([[1.0, 1.0], [0.0, 1.0]], dtype)
        return Block(F, jnp.diag(q), jnp.array([1.0, 0.0], dtype))

    def state_names(self, ctx):
        return ["level", "slope"]

    def outputs(self, ctx):
        return [("level", np.array([1.0, 0.0])), ("slope", np.array([0.0, 1.0]))]

    def unit_roots(self, ctx):
        return np.array([1.0, -2.0, 1.0])

    def start(self, ctx, resid, exog, noise):
        # the level moves by a tenth, the slope by a thousandth of the noise scale
        shares = {"sigma2.level": 0.1, "sigma2.trend": 1e-3}
        return {s.name: shares[s.name] * noise for s in self.params(ctx)}


class SmoothTrend(LocalLinearTrend):
    """The smooth (integrated random walk) trend: :class:`LocalLinearTrend` without level noise,
    :math:`\\Delta^2 \\mu_{t+2} = \\zeta_t`. Parameter: ``sigma2.trend``."""

    def __init__(self):
        super().__init__(stochastic_level=False, stochastic_slope=True)

    def get_params(self, deep=True):
        return {}


class Seasonal(Component):
    """Dummy-variable seasonal of period :math:`s`:
    :math:`\\gamma_{t+1} = -\\sum_{j=1}^{s-1} \\gamma_{t+1-j} + \\omega_t`.

    ``s - 1`` states, :math:`F_c` with a first row of :math:`-1` and ones below the diagonal,
    loading :math:`e_1`, noise :math:`\\omega_t \\sim N(0, \\sigma^2_{seasonal})` on the first state
    (none with ``stochastic=False``: a fixed seasonal pattern). Parameter: ``sigma2.seasonal``.
    """

    label = "seasonal"

    def __init__(self, period, stochastic=True):
        self.period = period
        self.stochastic = stochastic

    def _period(self):
        return _check_int(self.period, "Seasonal period", 2)

    def n_states(self, ctx):
        return self._period() - 1

    def params(self, ctx):
        name = f"sigma2.{ctx.label or self.label}"
        return [ParamSpec(name, VARIANCE, _GROUP["state_var"])] if self.stochastic else []

    def block(self, p, ctx, exog):
        dtype = _dtype(p)
        k = self._period() - 1
        F = jnp.zeros((k, k), dtype).at[0, :].set(-1.0).at[jnp.arange(1, k), jnp.arange(k - 1)].set(1.0)
        q = jnp.zeros((k, k), dtype)
        if self.stochastic:
            q = q.at[0, 0].set(p[f"sigma2.{ctx.label or self.label}"])
        return Block(F, q, jnp.zeros(k, dtype).at[0].set(1.0))

    def state_names(self, ctx):
        base = ctx.label or self.label
        return [base] + [f"{base}.L{i}" for i in range(1, self._period() - 1)]

    noise_share = 0.01

    def unit_roots(self, ctx):
        return np.ones(self._period())


class TrigSeasonal(Component):
    """Trigonometric (frequency-domain) seasonal of period :math:`s` with :math:`h` harmonics.

    Harmonic :math:`j` has frequency :math:`\\lambda_j = 2\\pi j / s` and two states rotating by
    :math:`\\begin{pmatrix}\\cos\\lambda_j & \\sin\\lambda_j\\\\ -\\sin\\lambda_j & \\cos\\lambda_j
    \\end{pmatrix}`; the first of each pair loads on :math:`y`. ``2h`` states; noise
    :math:`N(0, \\sigma^2 I_{2h})` unless ``stochastic=False``. ``harmonics`` defaults to
    :math:`\\lfloor s/2 \\rfloor` (a full seasonal pattern). Parameter:
    ``sigma2.freq_seasonal_{s}({h})`` (statsmodels' name). Several periods at once: one component each.
    """

    label = "freq_seasonal"

    def __init__(self, period, harmonics=None, stochastic=True):
        self.period = period
        self.harmonics = harmonics
        self.stochastic = stochastic

    def _dims(self):
        period = self.period
        if isinstance(period, (bool, np.bool_)) or not isinstance(period, (int, float, np.integer, np.floating)):
            raise TypeError(f"TrigSeasonal period must be a number, got {period!r}")
        if period < 2:
            raise ValueError(f"TrigSeasonal period must be >= 2, got {period}")
        h = int(np.floor(period / 2)) if self.harmonics is None else _check_int(self.harmonics, "harmonics", 1)
        return float(period), h

    def _name(self):
        period, h = self._dims()
        shown = int(period) if float(period).is_integer() else period
        return f"freq_seasonal_{shown}({h})"

    def n_states(self, ctx):
        return 2 * self._dims()[1]

    def params(self, ctx):
        return [ParamSpec(f"sigma2.{self._name()}", VARIANCE, _GROUP["state_var"])] if self.stochastic else []

    def block(self, p, ctx, exog):
        dtype = _dtype(p)
        period, h = self._dims()
        lam = 2 * np.pi * np.arange(1, h + 1) / period
        F = np.zeros((2 * h, 2 * h))
        for j, lj in enumerate(lam):
            F[2 * j:2 * j + 2, 2 * j:2 * j + 2] = [[np.cos(lj), np.sin(lj)], [-np.sin(lj), np.cos(lj)]]
        q = (p[f"sigma2.{self._name()}"] if self.stochastic else 0.0) * jnp.eye(2 * h, dtype=dtype)
        loading = np.zeros(2 * h)
        loading[::2] = 1.0
        return Block(jnp.asarray(F, dtype), q, jnp.asarray(loading, dtype))

    def state_names(self, ctx):
        return [f"{self._name()}.{i}" for i in range(self.n_states(ctx))]

    noise_share = 0.01

    def unit_roots(self, ctx):
        # one factor 1 - 2 cos(lambda_j) L + L^2 per harmonic (1 + L at lambda_j = pi)
        period, h = self._dims()
        poly = np.ones(1)
        for j in range(1, h + 1):
            lam = 2 * np.pi * j / period
            factor = [1.0, 1.0] if np.isclose(lam, np.pi) else [1.0, -2.0 * np.cos(lam), 1.0]
            poly = np.convolve(poly, factor)
        return poly

    def outputs(self, ctx):
        return [(self._name(), "loading")]


# Cycle periods the frequency is confined to, by the data's frequency (statsmodels' defaults):
# 1.5 to 12 years.
_CYCLE_PERIOD_BOUNDS = {"A": (1.5, 12), "Y": (1.5, 12), "Q": (6, 48), "M": (18, 144)}


class Cycle(Component):
    """Stochastic cycle (Harvey 1989): two states rotating at frequency :math:`\\lambda_c`, damped by
    :math:`\\rho \\in (0, 1)`,

    .. math::

        \\begin{pmatrix}c_{t+1}\\\\ c^*_{t+1}\\end{pmatrix} = \\rho
        \\begin{pmatrix}\\cos\\lambda_c & \\sin\\lambda_c\\\\ -\\sin\\lambda_c & \\cos\\lambda_c\\end{pmatrix}
        \\begin{pmatrix}c_t\\\\ c^*_t\\end{pmatrix} + \\kappa_t,
        \\quad \\kappa_t \\sim N(0, \\sigma^2_{cycle} I_2).

    ``damped=False`` fixes :math:`\\rho = 1`; ``stochastic=False`` drops the noise.
    :math:`\\lambda_c` is confined to :math:`2\\pi / (\\text{period bounds})`; ``period_bounds``
    defaults to 1.5-12 years for annual, quarterly and monthly data (statsmodels' rule) and to
    periods of 2 or more otherwise. Parameters: ``sigma2.cycle``, ``frequency.cycle``, ``damping.cycle``.
    """

    label = "cycle"

    def __init__(self, damped=True, stochastic=True, period_bounds=None):
        self.damped = damped
        self.stochastic = stochastic
        self.period_bounds = period_bounds

    def frequency_bounds(self, ctx) -> tuple[float, float]:
        """``(low, high)`` bounds of :math:`\\lambda_c` in radians per step."""
        bounds = self.period_bounds or _CYCLE_PERIOD_BOUNDS.get(ctx.freq, (2, np.inf))
        lo_period, hi_period = float(bounds[0]), float(bounds[1])
        if not 0 < lo_period < hi_period:
            raise ValueError(f"Cycle period_bounds must be 0 < low < high, got {bounds}")
        return 2 * np.pi / hi_period, 2 * np.pi / lo_period

    def n_states(self, ctx):
        return 2

    def params(self, ctx):
        out = [ParamSpec("sigma2.cycle", VARIANCE, _GROUP["state_var"])] if self.stochastic else []
        out.append(ParamSpec("frequency.cycle", FREQUENCY, _GROUP["transition"]))
        if self.damped:
            out.append(ParamSpec("damping.cycle", DAMPING, _GROUP["transition"]))
        return out

    def block(self, p, ctx, exog):
        dtype = _dtype(p)
        lam = p["frequency.cycle"]
        c, s = jnp.cos(lam), jnp.sin(lam)
        F = jnp.stack([jnp.stack([c, s]), jnp.stack([-s, c])])
        if self.damped:
            F = p["damping.cycle"] * F
        q = (p["sigma2.cycle"] if self.stochastic else 0.0) * jnp.eye(2, dtype=dtype)
        return Block(F, q, jnp.array([1.0, 0.0], dtype))

    noise_share = 0.1

    def start(self, ctx, resid, exog, noise):
        out = super().start(ctx, resid, exog, noise)
        lo, hi = self.frequency_bounds(ctx)
        period_guess = {"A": 3, "Y": 3, "Q": 12, "M": 36}.get(ctx.freq)
        freq = 2 * np.pi / period_guess if period_guess else (lo + hi) / 2 if np.isfinite(hi) else lo
        out["frequency.cycle"] = float(np.clip(freq, lo + 1e-3 * (hi - lo), hi - 1e-3 * (hi - lo)))
        if self.damped:
            x = resid - resid.mean()
            rho = float(x[1:] @ x[:-1] / max(x[:-1] @ x[:-1], 1e-300))
            out["damping.cycle"] = float(np.clip(rho, 0.05, 0.95))
        return out

    def state_names(self, ctx):
        return ["cycle", "cycle.auxiliary"]

    def outputs(self, ctx):
        return [("cycle", np.array([1.0, 0.0]))]


class Autoregressive(Component):
    """A stationary AR(p) component :math:`a_{t} = \\phi_1 a_{t-1} + \\dots + \\phi_p a_{t-p} + \\xi_t`,
    :math:`\\xi_t \\sim N(0, \\sigma^2_{ar})`, in companion form (``p`` states, loading :math:`e_1`),
    started at its stationary covariance. :math:`\\phi` is kept stationary by the Monahan (1984)
    transform. Parameters: ``sigma2.ar``, ``ar.L1`` ... ``ar.Lp``.
    """

    label = "autoregressive"

    def __init__(self, order=1):
        self.order = order

    def _p(self):
        return _check_int(self.order, "Autoregressive order", 1)

    def n_states(self, ctx):
        return self._p()

    def params(self, ctx):
        return [ParamSpec("sigma2.ar", VARIANCE, _GROUP["state_var"])] + [
            ParamSpec(f"ar.L{i}", AR, _GROUP["transition"]) for i in range(1, self._p() + 1)
        ]

    def block(self, p, ctx, exog):
        dtype = _dtype(p)
        order = self._p()
        phi = jnp.stack([p[f"ar.L{i}"] for i in range(1, order + 1)])
        F = jnp.zeros((order, order), dtype).at[0, :].set(phi)
        F = F.at[jnp.arange(1, order), jnp.arange(order - 1)].set(1.0)
        q = jnp.zeros((order, order), dtype).at[0, 0].set(p["sigma2.ar"])
        return Block(F, q, jnp.zeros(order, dtype).at[0].set(1.0), stationary=True)

    def start(self, ctx, resid, exog, noise):
        order = self._p()
        x = resid - resid.mean()
        lags = np.column_stack([x[order - i - 1:len(x) - i - 1] for i in range(order)])
        phi, *_ = np.linalg.lstsq(lags, x[order:], rcond=None)
        # Shrink towards zero until stationary (roots of the AR polynomial outside the unit circle).
        while np.any(np.abs(np.roots(np.r_[1.0, -phi])) >= 0.98):
            phi = 0.8 * phi
        out = {f"ar.L{i}": float(phi[i - 1]) for i in range(1, order + 1)}
        out["sigma2.ar"] = float(np.var(x[order:] - lags @ phi))
        return out

    def state_names(self, ctx):
        return [f"ar.L{i}" for i in range(1, self._p() + 1)]

    def outputs(self, ctx):
        return [("autoregressive", np.eye(self._p())[0])]


class Regression(Component):
    """Regression on the exogenous columns ``X`` passed to ``fit``.

    Fixed coefficients (default): :math:`d_t = x_t^T \\beta`, no states; parameters
    ``beta.{column}`` (statsmodels' ``mle_regression=True``). ``in_state=True``: the
    coefficients are constant states :math:`\\beta_{t+1} = \\beta_t`, loading :math:`x_t`, started
    diffuse, so the filter and smoother estimate them and they are not parameters (statsmodels'
    ``mle_regression=False``). ``time_varying=True``: each coefficient is a random walk state,
    :math:`\\beta_{t+1} = \\beta_t + \\nu_t`, :math:`\\nu_{t,j} \\sim N(0, \\sigma^2_{\\beta_j})`,
    loading :math:`x_t` (time-varying), started diffuse; parameters ``sigma2.beta.{column}``.
    """

    label = "regression"

    def __init__(self, time_varying=False, in_state=False):
        self.time_varying = time_varying
        self.in_state = in_state

    @property
    def has_states(self) -> bool:
        """Whether the coefficients are states (constant or random walks) rather than parameters."""
        return bool(self.time_varying or self.in_state)

    def n_states(self, ctx):
        return len(ctx.exog_names) if self.has_states else 0

    def params(self, ctx):
        if self.time_varying:
            return [ParamSpec(f"sigma2.beta.{c}", VARIANCE, _GROUP["state_var"]) for c in ctx.exog_names]
        if self.in_state:
            return []
        return [ParamSpec(f"beta.{c}", FREE, _GROUP["regression"]) for c in ctx.exog_names]

    def block(self, p, ctx, exog):
        dtype = _dtype(p)
        k = len(ctx.exog_names)
        X = jnp.asarray(exog, dtype)
        if self.time_varying:
            q = jnp.diag(jnp.stack([p[f"sigma2.beta.{c}"] for c in ctx.exog_names]))
            return Block(jnp.eye(k, dtype=dtype), q, X)
        if self.in_state:
            return Block(jnp.eye(k, dtype=dtype), jnp.zeros((k, k), dtype), X)
        beta = jnp.stack([p[f"beta.{c}"] for c in ctx.exog_names])
        empty = jnp.zeros((0, 0), dtype)
        return Block(empty, empty, jnp.zeros((X.shape[0], 0), dtype), offset=X @ beta)

    def start(self, ctx, resid, exog, noise):
        if self.time_varying:
            return {f"sigma2.beta.{c}": 1e-3 * float(np.var(resid)) for c in ctx.exog_names}
        return {}  # unobserved.start_params starts fixed coefficients by least squares

    def state_names(self, ctx):
        return [f"beta.{c}" for c in ctx.exog_names] if self.has_states else []

    def outputs(self, ctx):
        return [("regression", "loading" if self.has_states else "offset")]


class Irregular(Component):
    """Observation noise :math:`\\varepsilon_t \\sim N(0, \\sigma^2_{irregular})`; no states.
    Parameter: ``sigma2.irregular``."""

    label = "irregular"

    def n_states(self, ctx):
        return 0

    def params(self, ctx):
        return [ParamSpec("sigma2.irregular", VARIANCE, _GROUP["obs_var"])]

    def block(self, p, ctx, exog):
        dtype = _dtype(p)
        empty = jnp.zeros((0, 0), dtype)
        return Block(empty, empty, jnp.zeros(0, dtype), obs_var=p["sigma2.irregular"])

    def state_names(self, ctx):
        return []

    def outputs(self, ctx):
        return []


def _dtype(p: dict):
    for v in p.values():
        return jnp.asarray(v).dtype
    return jnp.zeros(()).dtype


def stationary_block_cov(block: Block):
    """Initial covariance of a block: stationary (discrete Lyapunov) or zero (diffuse part)."""
    if block.stationary:
        return solve_discrete_lyapunov(block.transition, block.state_cov)
    return jnp.zeros_like(block.transition)
