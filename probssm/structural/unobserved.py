"""Unobserved-components models as linear-Gaussian state-space models: the functional core.

A structural time-series model is a sum of components (:mod:`probssm.structural.components`),
each a block of :math:`k_c` states,

.. math::

    y_t = \\sum_c z_{c,t}^T x_{c,t} + d_t + \\varepsilon_t, \\qquad
    x_{c,t+1} = F_c x_{c,t} + \\eta_{c,t}, \\quad \\eta_{c,t} \\sim N(0, Q_c),

with the irregular :math:`\\varepsilon_t \\sim N(0, \\sigma^2_{irregular})` and the offset
:math:`d_t = x_t^T \\beta` of fixed-coefficient regression. :func:`uc_spec` resolves a list of
terms (components or statsmodels' trend names) into a :class:`UCSpec`; :func:`uc_model` stacks
the blocks into an :class:`~probssm.kalman.LGSSM` with block-diagonal :math:`F` and :math:`Q`,
the loadings side by side in :math:`H`, diffuse non-stationary blocks and stationary ones started
at their stationary covariance, as statsmodels' ``UnobservedComponents`` does; so
log-likelihoods, states and forecasts agree with statsmodels at identical parameters.

The parameter vector (natural space, :attr:`UCSpec.param_names`) is ordered as statsmodels
orders it: the irregular variance, the state variances (in component order), the transition
parameters (cycle frequency and damping, AR coefficients), the regression coefficients.
:func:`to_natural` / :func:`to_unconstrained` map it to and from :math:`\\mathbb R^k`;
:func:`start_params` gives starting values; :func:`component_moments` turns smoothed states into
the components' means and standard deviations.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..fit.transforms import constrain_stationary, unconstrain_stationary
from ..kalman.model import LGSSM
from .components import (
    AR, DAMPING, FREE, FREQUENCY, VARIANCE, Block, Component, Context, Cycle, Irregular, Level,
    LocalLinearTrend, ParamSpec, Regression, Seasonal, SmoothTrend, stationary_block_cov,
)

__all__ = [
    "TREND_SPECS",
    "UCSpec",
    "component_blocks",
    "component_moments",
    "freq_code",
    "noise_scale",
    "param_kind",
    "start_params",
    "state_names",
    "to_natural",
    "to_unconstrained",
    "uc_model",
    "uc_spec",
]

TREND_SPECS = {
    "local level": lambda: Level(),
    "fixed level": lambda: Level(stochastic=False),
    "local linear trend": lambda: LocalLinearTrend(),
    "smooth trend": lambda: SmoothTrend(),
    "random walk with drift": lambda: LocalLinearTrend(stochastic_slope=False),
    "deterministic trend": lambda: LocalLinearTrend(stochastic_level=False, stochastic_slope=False),
}
"""statsmodels' names of the common trend specifications, each a factory of its component
(without the irregular, which ``uc_spec(irregular=True)`` adds)."""


# --------------------------------------------------------------------------------------------
# Specification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UCSpec:
    """The structure of an unobserved-components model; build it with :func:`uc_spec`.

    Hashable (components compare by type and hyper-parameters), so it can key compile caches
    and be a static argument of ``jax.jit``.

    Attributes
    ----------
    components : tuple of Component
        The resolved components in state order (trend names replaced, regression and irregular
        added).
    contexts : tuple of Context
        One per component: the regressors' names, the data's frequency code and the label used
        in parameter and output names.
    params : tuple of ParamSpec
        The scalar parameters in statsmodels' order, each with its kind (how it is constrained).
    """

    components: tuple[Component, ...]
    contexts: tuple[Context, ...]
    params: tuple[ParamSpec, ...]

    @property
    def param_names(self) -> tuple[str, ...]:
        """statsmodels' parameter names in statsmodels' order, e.g. ``('sigma2.irregular',
        'sigma2.level', 'sigma2.trend', 'frequency.cycle', 'damping.cycle', 'beta.x')``."""
        return tuple(s.name for s in self.params)

    @property
    def k_params(self) -> int:
        """Length of the parameter vector."""
        return len(self.params)

    @property
    def num_states(self) -> int:
        """Number of states :math:`\\sum_c k_c` of the components (0 for an irregular alone,
        whose model carries one inert state)."""
        return sum(c.n_states(ctx) for c, ctx in self._pairs())

    @property
    def exog_names(self) -> tuple[str, ...]:
        """Names of the regressors, one per column of ``exog``."""
        return self.contexts[0].exog_names

    def _pairs(self):
        return zip(self.components, self.contexts)


def _component(term, position: int) -> Component:
    if isinstance(term, str):
        key = term.strip().lower()
        if key not in TREND_SPECS:
            raise ValueError(
                f"terms[{position}]: unknown trend {term!r}; choose among {sorted(TREND_SPECS)} "
                "or pass Component objects"
            )
        return TREND_SPECS[key]()
    if not isinstance(term, Component):
        raise TypeError(f"terms[{position}]: expected a Component or a trend name, got {type(term).__name__}")
    return term


def _with_regression_and_irregular(comps: list, exog_names: tuple, irregular: bool,
                                   mle_regression: bool = True) -> list:
    has_regression = any(isinstance(c, Regression) for c in comps)
    if has_regression and not exog_names:
        raise ValueError("a Regression component needs exogenous data: pass X to fit")
    if exog_names and not has_regression:
        comps = comps + [Regression(in_state=not mle_regression)]
    if irregular:
        comps = comps + [Irregular()]
    if not comps:
        raise ValueError("the model has no components")
    return comps


def _contexts(comps: list, exog_names: tuple, freq: str) -> list[Context]:
    # Several seasonals would all be "seasonal": each is then named by its period instead.
    n_seasonal = sum(isinstance(c, Seasonal) for c in comps)
    return [
        Context(exog_names, freq, f"seasonal_{c.period}" if isinstance(c, Seasonal) and n_seasonal > 1 else c.label)
        for c in comps
    ]


def _ordered_params(comps: list, contexts: list) -> tuple[ParamSpec, ...]:
    specs = [s for c, ctx in zip(comps, contexts) for s in c.params(ctx)]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"components repeat the parameters {dup}; combine them into one component")
    if not any(s.kind == VARIANCE for s in specs):
        raise ValueError("the model has no stochastic component; add irregular=True or a stochastic component")
    return tuple(sorted(specs, key=lambda s: s.group))  # stable: component order within a group


def uc_spec(terms=("local level",), irregular: bool = True, exog_names=(), freq: str = "",
            mle_regression: bool = True) -> UCSpec:
    """Resolve the terms of an unobserved-components model (``UnobservedComponents``' arguments).

    Parameters
    ----------
    terms : Component, str, or a sequence of them
        The components in state order; strings name trends as statsmodels does (the keys of
        :data:`TREND_SPECS`: ``"local level"``, ``"local linear trend"``, ...).
    irregular : bool, default True
        Append an :class:`~probssm.structural.components.Irregular`.
    exog_names : sequence of str
        Names of the regressors; a fixed-coefficient
        :class:`~probssm.structural.components.Regression` is appended when there are some and
        ``terms`` lists none.
    freq : {"A", "Q", "M", ""}
        The data's frequency code (:func:`freq_code`); it sets a cycle's default period bounds.
    mle_regression : bool, default True
        Whether the regression appended for ``exog_names`` has its coefficients as parameters
        (``beta.{column}``) or, with ``False``, as constant diffuse states
        (``Regression(in_state=True)``, statsmodels' ``mle_regression=False``).

    Returns
    -------
    UCSpec
        Several dummy seasonals are labelled ``seasonal_{period}``; parameters are sorted into
        statsmodels' groups (irregular, state variances, transition, regression), keeping the
        component order within each group.

    Raises
    ------
    TypeError
        A term that is neither a Component nor a string.
    ValueError
        An unknown trend name, a Regression without regressors, no components, two components
        with the same parameter (e.g. a level and a local linear trend), no variance at all.
    """
    items = [terms] if isinstance(terms, (str, Component)) else list(terms)
    exog_names = tuple(exog_names)
    comps = [_component(term, i) for i, term in enumerate(items)]
    comps = _with_regression_and_irregular(comps, exog_names, irregular, mle_regression)
    contexts = _contexts(comps, exog_names, freq)
    return UCSpec(tuple(comps), tuple(contexts), _ordered_params(comps, contexts))


def freq_code(index: pd.Index) -> str:
    """``"A"``, ``"Q"``, ``"M"`` or ``""`` from a Period/Datetime index's frequency (inferred
    for a DatetimeIndex of more than two stamps without one)."""
    freq = getattr(index, "freqstr", None) or ""
    if isinstance(index, pd.DatetimeIndex) and not freq and len(index) > 2:
        freq = pd.infer_freq(index) or ""
    head = freq.upper().lstrip("0123456789")[:1]
    return {"Y": "A", "A": "A", "Q": "Q", "M": "M"}.get(head, "")


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def param_kind(spec: UCSpec, name: str) -> str:
    """How the parameter ``name`` is constrained, in the words posterior summaries use:
    ``"variance"`` (:math:`\\ge 0`), ``"location"`` (free: regression coefficients) or
    ``"bounded"`` (cycle frequency and damping, AR coefficients)."""
    kind = next(s.kind for s in spec.params if s.name == name)
    return {VARIANCE: "variance", FREE: "location"}.get(kind, "bounded")


def _frequency_bounds(spec: UCSpec, param: ParamSpec) -> tuple[float, float]:
    for c, ctx in spec._pairs():
        if isinstance(c, Cycle) and param.name in {s.name for s in c.params(ctx)}:
            return c.frequency_bounds(ctx)
    raise KeyError(param.name)


def _map(spec: UCSpec, x, natural: bool):
    x = jnp.asarray(x)
    out = [None] * spec.k_params
    for i, s in enumerate(spec.params):
        v = x[i]
        if s.kind == VARIANCE:
            # squares, not exponentials: a variance can reach zero at a finite value
            out[i] = v * v if natural else jnp.sqrt(v)
        elif s.kind == FREQUENCY:
            lo, hi = _frequency_bounds(spec, s)
            out[i] = lo + (hi - lo) * jax.nn.sigmoid(v) if natural else jnp.log((v - lo) / (hi - v))
        elif s.kind == DAMPING:
            out[i] = jax.nn.sigmoid(v) if natural else jnp.log(v / (1 - v))
        elif s.kind == FREE:
            out[i] = v
    ar_idx = [i for i, s in enumerate(spec.params) if s.kind == AR]
    if ar_idx:  # the AR coefficients are constrained jointly
        ar = x[jnp.asarray(ar_idx)]
        ar = constrain_stationary(ar) if natural else unconstrain_stationary(ar)
        for j, i in enumerate(ar_idx):
            out[i] = ar[j]
    return jnp.stack(out)


def to_natural(spec: UCSpec, theta):
    """Map unconstrained parameters :math:`\\vartheta \\in \\mathbb R^k` ``(k,)`` to natural ones ``(k,)``.

    Variances :math:`\\sigma^2 = \\vartheta^2`; the cycle frequency
    :math:`\\lambda = \\lambda_{lo} + (\\lambda_{hi} - \\lambda_{lo})\\,\\mathrm{logistic}(\\vartheta)`
    within its bounds; the damping :math:`\\rho = \\mathrm{logistic}(\\vartheta)`; AR coefficients
    through the Monahan (1984) stationarity transform; regression coefficients unchanged.
    Differentiable; ``vmap`` it for batches.
    """
    return _map(spec, theta, natural=True)


def to_unconstrained(spec: UCSpec, params):
    """The inverse of :func:`to_natural`: natural parameters ``(k,)`` (variances :math:`\\ge 0`,
    frequency and damping strictly inside their bounds, stationary AR) to :math:`\\mathbb R^k`
    ``(k,)``. A variance maps to its non-negative square root."""
    return _map(spec, params, natural=False)


def noise_scale(spec: UCSpec, resid) -> float:
    """The scale of one-step variation of ``resid`` ``(T,)``: the variance of ``resid`` filtered
    by the product :math:`c(L) = \\sum_j c_j L^j` of all components' unit-root polynomials, over
    :math:`\\sum_j c_j^2`, which is the variance of white noise that, so differenced, varies as
    much. Falls back to the variance of ``resid`` when the series is too short for the
    differencing (or the differenced series is constant)."""
    poly = np.ones(1)
    for c, ctx in spec._pairs():
        poly = np.convolve(poly, c.unit_roots(ctx))
    if len(resid) > len(poly) + 1:
        noise = float(np.var(np.convolve(resid, poly, mode="valid"))) / float(poly @ poly)
    else:
        noise = float(np.var(resid))
    return noise if noise > 0 else float(np.var(resid))


def _has_fixed_regression(spec: UCSpec) -> bool:
    return any(isinstance(c, Regression) and not c.has_states for c in spec.components)


def start_params(spec: UCSpec, y, exog=None) -> np.ndarray:
    """Starting values for maximum likelihood (natural parameters, NumPy float64).

    1. Fixed regression coefficients :math:`\\beta` by least squares of the observed
       :math:`y_t` on :math:`x_t`, a constant and :math:`t`; the residual ``resid`` is
       :math:`y_t - x_t^T\\beta` (:math:`y_t` itself without fixed regression).
    2. Each component proposes its values from ``resid`` and :func:`noise_scale` (``resid``):
       its variances a share of the noise scale, a cycle's frequency from the data's frequency
       and its damping from the lag-one autocorrelation, AR coefficients by least squares.
    3. Parameters no component proposes start at the noise scale; variances are floored at
       :math:`\\max(10^{-6}\\,\\text{noise}, 10^{-12})`.

    Parameters
    ----------
    spec : UCSpec
    y : array, shape ``(T,)``
        NaN marks a missing observation.
    exog : array, shape ``(T, k_exog)``, optional
        The regressors (finite).

    Returns
    -------
    ndarray, shape ``(k_params,)``

    Raises
    ------
    ValueError
        A constant series (its variances are not identified).
    """
    y = np.asarray(y, dtype=np.float64)
    mask = ~np.isnan(y)
    resid = y[mask]
    if np.ptp(resid) == 0:
        raise ValueError("y is constant; the variances of an unobserved-components model are not identified")
    start = {}
    if exog is not None and _has_fixed_regression(spec):
        X = exog[mask]
        design = np.column_stack([X, np.ones(len(resid)), np.arange(len(resid))])
        coef, *_ = np.linalg.lstsq(design, resid, rcond=None)
        beta = coef[:X.shape[1]]
        start.update({f"beta.{c}": float(b) for c, b in zip(spec.exog_names, beta)})
        resid = resid - X @ beta
    noise = noise_scale(spec, resid)
    for c, ctx in spec._pairs():
        start.update(c.start(ctx, resid, exog, noise))
    out = []
    for s in spec.params:
        v = start.get(s.name, noise)
        if s.kind == VARIANCE:
            v = max(v, 1e-6 * noise, 1e-12)
        out.append(v)
    return np.asarray(out, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# State-space form
# --------------------------------------------------------------------------------------------


def component_blocks(spec: UCSpec, params, exog=None) -> list[Block]:
    """Each component's :class:`~probssm.structural.components.Block` at natural parameters
    ``params`` ``(k,)``: transition :math:`F_c` ``(k_c, k_c)``, noise covariance :math:`Q_c`,
    loading :math:`z_c` ``(k_c,)`` (``(T, k_c)`` for time-varying regression), offset ``(T,)``
    and observation variance where the component has them. ``exog`` ``(T, k_exog)`` is needed
    when the spec has regressors. One block per component, in :attr:`UCSpec.components` order
    (the irregular's and fixed regression's have no states)."""
    p = dict(zip(spec.param_names, jnp.asarray(params)))
    return [c.block(p, ctx, exog) for c, ctx in spec._pairs()]


def _inert_block(dtype) -> Block:
    # A model without states (an irregular, maybe fixed regression) keeps one state, known to be 0.
    zero = jnp.zeros((1, 1), dtype)
    return Block(zero, zero, jnp.zeros(1, dtype), stationary=True)


def _observation_matrix(blocks: list[Block]):
    """``H`` ``(1, n)``, or ``(T, 1, n)`` when a loading varies with time."""
    timed = [b.loading for b in blocks if jnp.ndim(b.loading) == 2]
    if not timed:
        return jnp.concatenate([b.loading for b in blocks])[None, :], False
    T = timed[0].shape[0]
    rows = [jnp.broadcast_to(b.loading, (T, b.transition.shape[-1])) for b in blocks]
    return jnp.concatenate(rows, axis=1)[:, None, :], True


def uc_model(spec: UCSpec, params, exog=None) -> LGSSM:
    """The unobserved-components model at natural parameters ``params`` ``(k,)`` as an
    :class:`~probssm.kalman.LGSSM` with ``n`` = :attr:`UCSpec.num_states` states (at least one).

    .. math::

        F = \\mathrm{diag}(F_c), \\quad Q = \\mathrm{diag}(Q_c), \\quad
        H_t = (z_{1,t}^T, \\dots, z_{C,t}^T), \\quad R = \\sigma^2_{irregular}, \\quad
        d_t = x_t^T\\beta,

    initial mean 0, the stationary blocks (AR) started at their stationary covariance
    (:math:`P = F_c P F_c^T + Q_c`), every other state diffuse (``initial_diffuse_cov`` 1 on its
    diagonal; :func:`probssm.kalman.approximate_diffuse` turns that into statsmodels' default
    prior). ``observation_matrix`` ``(T, 1, n)`` and ``observation_offset`` ``(T, 1)`` vary with
    time when the spec has time-varying or fixed regression, whose ``exog`` ``(T, k_exog)``
    then sets ``T``. Differentiable, ``jit``-able with ``spec`` static.
    """
    params = jnp.asarray(params)
    dtype = params.dtype
    every = component_blocks(spec, params, exog)
    blocks = [b for b in every if b.transition.shape[-1] > 0] or [_inert_block(dtype)]
    obs_var = sum((b.obs_var for b in every if b.obs_var is not None), jnp.zeros((), dtype))
    offsets = [b.offset for b in every if b.offset is not None]
    H, loading_varies = _observation_matrix(blocks)
    time_varying = ["observation_matrix"] if loading_varies else []
    if offsets:
        d = sum(offsets)[:, None]
        time_varying.append("observation_offset")
    else:
        d = jnp.zeros(1, dtype)
    diffuse = np.concatenate([np.full(b.transition.shape[-1], 0.0 if b.stationary else 1.0) for b in blocks])
    F = jax.scipy.linalg.block_diag(*[b.transition for b in blocks])
    return LGSSM(
        transition_matrix=F,
        transition_cov=jax.scipy.linalg.block_diag(*[b.state_cov for b in blocks]),
        observation_matrix=H,
        observation_cov=obs_var * jnp.ones((1, 1), dtype),
        initial_mean=jnp.zeros(F.shape[-1], dtype),
        initial_cov=jax.scipy.linalg.block_diag(*[stationary_block_cov(b) for b in blocks]),
        observation_offset=d,
        initial_diffuse_cov=jnp.diag(jnp.asarray(diffuse, dtype)),
        time_varying=time_varying,
    )


def state_names(spec: UCSpec) -> list[str]:
    """Names of the ``n`` states of :func:`uc_model` in order (``["dummy"]`` for the inert
    state of a model without states)."""
    names = [n for c, ctx in spec._pairs() for n in c.state_names(ctx)]
    return names or ["dummy"]


# --------------------------------------------------------------------------------------------
# Components from state moments
# --------------------------------------------------------------------------------------------


def component_moments(spec: UCSpec, params, mean, cov, exog=None) -> dict:
    """Each component's contribution to :math:`y_t` from state moments (smoothed or filtered).

    For an output row :math:`w` (a component's loading :math:`z_{c,t}`, or a selector such as
    a local linear trend's :math:`(0, 1)` for its slope) over the component's states
    :math:`x_{c,t}` with moments :math:`m_{c,t}`, :math:`P_{c,t}`,

    .. math::

        \\text{mean}_t = w_t^T m_{c,t}, \\qquad \\text{std}_t = \\sqrt{w_t^T P_{c,t}\\, w_t};

    fixed regression reports :math:`x_t^T\\beta` with standard deviation 0.

    Parameters
    ----------
    spec : UCSpec
    params : array, shape ``(k,)``
        Natural parameters.
    mean : array, shape ``(T, n)``
    cov : array, shape ``(T, n, n)``
        State means and covariances of :func:`uc_model`'s states.
    exog : array, shape ``(T, k_exog)``, optional
        Required when the spec has regressors.

    Returns
    -------
    dict
        ``{(name, "mean"): (T,), (name, "std"): (T,)}`` NumPy arrays in component order, names
        as ``Component.outputs`` gives them (``"level"``, ``"slope"``, ``"cycle"``, ...).
    """
    mean, cov = np.asarray(mean), np.asarray(cov)
    T = mean.shape[0]
    cols, offset = {}, 0
    for c, ctx, b in zip(spec.components, spec.contexts, component_blocks(spec, params, exog)):
        k = b.transition.shape[-1]
        states = slice(offset, offset + k)
        for name, row in c.outputs(ctx):
            if isinstance(row, str) and row == "offset":
                m, s = np.asarray(b.offset), np.zeros(T)
            else:
                w = np.broadcast_to(np.asarray(b.loading) if isinstance(row, str) else row, (T, k))
                m = np.einsum("tk,tk->t", w, mean[:, states])
                s = np.sqrt(np.clip(np.einsum("tk,tkl,tl->t", w, cov[:, states, states], w), 0, None))
            cols[(name, "mean")], cols[(name, "std")] = m, s
        offset += k
    return cols
