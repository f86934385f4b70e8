"""The linear-Gaussian state-space model container.

The model, with time index ``t = 0, ..., T-1``, state dimension ``n`` and observation dimension
``m``:

.. math::

    x_0 &\\sim \\mathcal N(\\mu_0,\\; P_0 + \\kappa P_\\infty), \\quad \\kappa \\to \\infty \\\\
    y_t &= H_t x_t + d_t + \\varepsilon_t, \\qquad \\varepsilon_t \\sim \\mathcal N(0, R_t) \\\\
    x_{t+1} &= F_t x_t + b_t + \\eta_t, \\qquad \\eta_t \\sim \\mathcal N(0, Q_t)

``F_t`` maps the state at ``t`` to ``t + 1`` (the statsmodels / Durbin-Koopman convention), so a
time-varying ``F`` of length ``T`` has its last entry used only to predict past the data.
``P_inf`` (``initial_diffuse_cov``) marks the diffuse part of the prior (Koopman 1997); it is zero
for a proper prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["LGSSM", "approximate_diffuse", "diffuse_rank", "add_inputs"]


@dataclass(frozen=True)
class _Field:
    name: str
    core_shape: str  # letters: n = state dim, m = observation dim
    may_vary: bool


_FIELDS = (
    _Field("transition_matrix", "nn", True),
    _Field("transition_cov", "nn", True),
    _Field("observation_matrix", "mn", True),
    _Field("observation_cov", "mm", True),
    _Field("initial_mean", "n", False),
    _Field("initial_cov", "nn", False),
    _Field("transition_offset", "n", True),
    _Field("observation_offset", "m", True),
    _Field("initial_diffuse_cov", "nn", False),
)
FIELD_NAMES = tuple(f.name for f in _FIELDS)
_COVARIANCES = ("transition_cov", "observation_cov", "initial_cov", "initial_diffuse_cov")


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _as_float_array(value, name):
    if isinstance(value, jax.core.Tracer):
        return value
    arr = jnp.asarray(value)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        if not (jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == bool):
            raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
        arr = arr.astype(jnp.result_type(float))
    return arr


@jax.tree_util.register_pytree_node_class
class LGSSM:
    """Linear-Gaussian state-space model (a JAX pytree).

    Parameters
    ----------
    transition_matrix : array, shape ``(*batch, [T,] n, n)``
        :math:`F_t`, maps :math:`x_t` to :math:`x_{t+1}`.
    transition_cov : array, shape ``(*batch, [T,] n, n)``
        :math:`Q_t`, positive semi-definite.
    observation_matrix : array, shape ``(*batch, [T,] m, n)``
        :math:`H_t`.
    observation_cov : array, shape ``(*batch, [T,] m, m)``
        :math:`R_t`, positive semi-definite.
    initial_mean : array, shape ``(*batch, n)``
        :math:`\\mu_0`, prior mean of :math:`x_0`.
    initial_cov : array, shape ``(*batch, n, n)``
        :math:`P_0`, the proper part of the prior covariance of :math:`x_0`.
    transition_offset : array, shape ``(*batch, [T,] n)``, optional
        :math:`b_t` (state intercept, or :math:`B u_t` for control inputs); zero by default.
    observation_offset : array, shape ``(*batch, [T,] m)``, optional
        :math:`d_t` (observation intercept, or :math:`D u_t`); zero by default.
    initial_diffuse_cov : array, shape ``(*batch, n, n)``, optional
        :math:`P_\\infty`: the prior of :math:`x_0` is :math:`N(\\mu_0, P_0 + \\kappa P_\\infty)`
        with :math:`\\kappa \\to \\infty` (exact diffuse initialisation, Koopman 1997). Zero by
        default (a proper prior).
    time_varying : iterable of str, optional
        Names of the fields that carry a time axis just before their core dimensions. By default
        a field is time-varying when it has exactly one axis more than its core shape; give the
        names explicitly when fields also carry leading batch axes.

    Attributes
    ----------
    proper_prior : bool
        Static: ``True`` when the model was built without a diffuse part (``initial_diffuse_cov``
        omitted or a concrete zero array, e.g. by :func:`approximate_diffuse`). The sequential
        filter then compiles without the exact diffuse recursions. ``False`` says nothing: the
        values decide.

    Notes
    -----
    Leading batch axes of every field and of the observations broadcast against each other (NumPy
    rules, right-aligned), so one model can filter many series, and many models one series.
    When all inputs are concrete arrays the constructor checks shapes, finiteness, symmetry and
    positive semi-definiteness of the covariances; under ``jit``/``vmap``/``grad`` tracing only
    the shape checks run.
    """

    def __init__(
        self,
        transition_matrix,
        transition_cov,
        observation_matrix,
        observation_cov,
        initial_mean,
        initial_cov,
        transition_offset=None,
        observation_offset=None,
        initial_diffuse_cov=None,
        *,
        time_varying=None,
    ):
        values = {
            "transition_matrix": _as_float_array(transition_matrix, "transition_matrix"),
            "transition_cov": _as_float_array(transition_cov, "transition_cov"),
            "observation_matrix": _as_float_array(observation_matrix, "observation_matrix"),
            "observation_cov": _as_float_array(observation_cov, "observation_cov"),
            "initial_mean": _as_float_array(initial_mean, "initial_mean"),
            "initial_cov": _as_float_array(initial_cov, "initial_cov"),
        }
        for name in FIELD_NAMES:
            if name in values and jnp.ndim(values[name]) < len(_field(name).core_shape):
                raise ValueError(
                    f"{name}: expected at least {len(_field(name).core_shape)} dimensions "
                    f"{_describe(name)}, got shape {jnp.shape(values[name])}"
                )
        n = jnp.shape(values["transition_matrix"])[-1]
        m = jnp.shape(values["observation_matrix"])[-2]
        dtype = jnp.result_type(*values.values())
        values["transition_offset"] = (
            jnp.zeros(n, dtype) if transition_offset is None
            else _as_float_array(transition_offset, "transition_offset")
        )
        values["observation_offset"] = (
            jnp.zeros(m, dtype) if observation_offset is None
            else _as_float_array(observation_offset, "observation_offset")
        )
        values["initial_diffuse_cov"] = (
            jnp.zeros((n, n), dtype) if initial_diffuse_cov is None
            else _as_float_array(initial_diffuse_cov, "initial_diffuse_cov")
        )
        # Whether the prior is known to be proper when the model is built (no diffuse part given,
        # or a concrete zero one). A static flag, so it survives jit/vmap and lets the
        # sequential filter leave out its diffuse machinery from the compiled program.
        proper = initial_diffuse_cov is None or (
            _is_concrete(values["initial_diffuse_cov"])
            and not np.any(np.asarray(values["initial_diffuse_cov"]) != 0)
        )
        if time_varying is None:
            time_varying = [
                f.name for f in _FIELDS
                if f.may_vary and jnp.ndim(values[f.name]) == len(f.core_shape) + 1
            ]
        time_varying = frozenset(time_varying)
        for name in time_varying:
            if name not in FIELD_NAMES or not _field(name).may_vary:
                raise ValueError(
                    f"time_varying: {name!r} cannot vary over time; choose among "
                    f"{[f.name for f in _FIELDS if f.may_vary]}"
                )
        for name, value in values.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "time_varying", time_varying)
        object.__setattr__(self, "proper_prior", proper)
        self._check_shapes()
        if all(_is_concrete(v) for v in values.values()):
            self._check_values()

    # -- pytree protocol -------------------------------------------------------------------
    def tree_flatten(self):
        return tuple(getattr(self, k) for k in FIELD_NAMES), (self.time_varying, self.proper_prior)

    @classmethod
    def tree_unflatten(cls, static, children):
        obj = object.__new__(cls)
        for name, value in zip(FIELD_NAMES, children):
            object.__setattr__(obj, name, value)
        object.__setattr__(obj, "time_varying", static[0])
        object.__setattr__(obj, "proper_prior", static[1])
        return obj

    def __setattr__(self, name, value):
        raise AttributeError("LGSSM is immutable; use .replace(...)")

    # -- shape information ----------------------------------------------------------------
    @property
    def state_dim(self) -> int:
        """``n``, the state dimension."""
        return int(jnp.shape(self.transition_matrix)[-1])

    @property
    def observation_dim(self) -> int:
        """``m``, the observation dimension."""
        return int(jnp.shape(self.observation_matrix)[-2])

    def core_ndim(self, name: str) -> int:
        """Number of trailing non-batch axes of field ``name`` (core axes plus a time axis)."""
        return len(_field(name).core_shape) + (name in self.time_varying)

    def batch_shape_of(self, name: str) -> tuple[int, ...]:
        """Leading batch shape of field ``name``."""
        shape = jnp.shape(getattr(self, name))
        return tuple(shape[: len(shape) - self.core_ndim(name)])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Broadcast batch shape of all fields."""
        return tuple(np.broadcast_shapes(*(self.batch_shape_of(k) for k in FIELD_NAMES)))

    @property
    def num_timesteps(self) -> int | None:
        """Length of the time axis shared by the time-varying fields, or ``None``."""
        lengths = {
            jnp.shape(getattr(self, k))[-len(_field(k).core_shape) - 1] for k in self.time_varying
        }
        return lengths.pop() if lengths else None

    def replace(self, **changes) -> "LGSSM":
        """A copy with some fields replaced (validated like the constructor)."""
        unknown = set(changes) - set(FIELD_NAMES) - {"time_varying"}
        if unknown:
            raise TypeError(f"LGSSM.replace: unknown fields {sorted(unknown)}")
        kwargs = {k: getattr(self, k) for k in FIELD_NAMES}
        if self.proper_prior:
            kwargs["initial_diffuse_cov"] = None  # stays statically proper
        kwargs.update({k: v for k, v in changes.items() if k != "time_varying"})
        tv = set(changes.get("time_varying", self.time_varying))
        if "time_varying" not in changes:
            # A replaced field keeps its role unless its rank says otherwise.
            for k in set(changes) & set(FIELD_NAMES):
                tv.discard(k)
                if _field(k).may_vary and jnp.ndim(changes[k]) == len(_field(k).core_shape) + 1:
                    tv.add(k)
        return LGSSM(**kwargs, time_varying=tv)

    def __repr__(self):
        tv = f", time_varying={sorted(self.time_varying)}" if self.time_varying else ""
        return (
            f"LGSSM(state_dim={self.state_dim}, observation_dim={self.observation_dim}, "
            f"batch_shape={self.batch_shape}, num_timesteps={self.num_timesteps}{tv})"
        )

    # -- validation -------------------------------------------------------------------------
    def _check_shapes(self):
        n, m = self.state_dim, self.observation_dim
        dims = {"n": n, "m": m}
        lengths = {}
        for f in _FIELDS:
            shape = tuple(jnp.shape(getattr(self, f.name)))
            core = tuple(dims[c] for c in f.core_shape)
            need = len(core) + (f.name in self.time_varying)
            if len(shape) < need or shape[len(shape) - len(core):] != core:
                raise ValueError(
                    f"{f.name}: expected trailing shape {('(T, ' if f.name in self.time_varying else '(') + ', '.join(map(str, core)) + ')'} "
                    f"{_describe(f.name)} with n={n} (from transition_matrix) and m={m} "
                    f"(from observation_matrix), got shape {shape}"
                )
            if f.name in self.time_varying:
                lengths[f.name] = shape[len(shape) - need]
        if len(set(lengths.values())) > 1:
            raise ValueError(f"time-varying fields disagree on the number of time steps: {lengths}")
        try:
            self.batch_shape
        except ValueError:
            shapes = {k: self.batch_shape_of(k) for k in FIELD_NAMES}
            raise ValueError(f"batch shapes of the model's fields do not broadcast: {shapes}") from None

    def _check_values(self):
        for name in FIELD_NAMES:
            value = np.asarray(getattr(self, name))
            if not np.all(np.isfinite(value)):
                pos = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise ValueError(f"{name}: non-finite value {value[pos]} at index {pos}")
        for name in _COVARIANCES:
            check_covariance(np.asarray(getattr(self, name)), name)


def check_covariance(cov: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless every trailing ``(k, k)`` matrix of ``cov`` is symmetric PSD."""
    if cov.size == 0:
        return
    scale = np.maximum(np.max(np.abs(cov), axis=(-2, -1), keepdims=True), np.finfo(cov.dtype).tiny)
    tol = 1e3 * np.finfo(cov.dtype).eps
    asym = np.abs(cov - np.swapaxes(cov, -1, -2)) / scale
    if np.any(asym > tol):
        pos = tuple(int(i) for i in np.argwhere(asym > tol)[0])
        raise ValueError(
            f"{name} is not symmetric: entry {pos} differs from its transpose "
            f"(relative difference {asym[pos]:.3g})"
        )
    eig = np.linalg.eigvalsh(cov)
    bad = eig < -tol * scale[..., 0]
    if np.any(bad):
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} is not positive semi-definite: eigenvalue {eig[pos]:.6g} < 0 in the matrix "
            f"at batch/time index {pos[:-1]}"
        )


def _field(name: str) -> _Field:
    return _FIELDS[FIELD_NAMES.index(name)]


def _describe(name: str) -> str:
    return f"'({', '.join(_field(name).core_shape)})'"


INITIALIZATIONS = ("exact_diffuse", "approximate_diffuse")
"""How a model's diffuse (non-stationary) states start.

``"exact_diffuse"``: :math:`P_\\infty` marks them (Koopman 1997; statsmodels'
``use_exact_diffuse=True``); the log-likelihood uses every observation.
``"approximate_diffuse"``: :func:`approximate_diffuse` with variance
:data:`APPROXIMATE_DIFFUSE_VARIANCE`, and the first :func:`diffuse_rank` log-likelihood terms left
out (statsmodels' default).
"""

APPROXIMATE_DIFFUSE_VARIANCE = 1e6
"""Prior variance of the diffuse states under ``"approximate_diffuse"``: statsmodels' default
``initial_variance``."""


def check_initialization(initialization) -> str:
    """``initialization`` if it is one of :data:`INITIALIZATIONS`, else ``ValueError``."""
    if initialization not in INITIALIZATIONS:
        raise ValueError(f"initialization must be one of {INITIALIZATIONS}, got {initialization!r}")
    return initialization


def approximate_diffuse(model: LGSSM, variance: float = APPROXIMATE_DIFFUSE_VARIANCE) -> LGSSM:
    """Replace the exact diffuse prior by a large finite variance.

    Returns the model with :math:`P_0 \\leftarrow P_0 + \\kappa P_\\infty` (``kappa = variance``)
    and :math:`P_\\infty = 0`. Pair it with ``burn=diffuse_rank(model)`` in :func:`filter` to
    leave out the first, prior-dominated log-likelihood terms (statsmodels' convention).
    Works under ``jit``.
    """
    return model.replace(
        initial_cov=model.initial_cov + variance * model.initial_diffuse_cov,
        initial_diffuse_cov=None,
    )


def diffuse_rank(model: LGSSM) -> int:
    """Rank of :math:`P_\\infty` (the number of diffuse state directions); needs concrete values."""
    p_inf = np.asarray(model.initial_diffuse_cov)
    return int(np.max(np.linalg.matrix_rank(p_inf))) if p_inf.size else 0


def add_inputs(model: LGSSM, inputs, transition_input_matrix=None, observation_input_matrix=None) -> LGSSM:
    """Add control inputs :math:`u_t` to the offsets: :math:`b_t \\mathrel{+}= B u_t`, :math:`d_t \\mathrel{+}= D u_t`.

    Parameters
    ----------
    inputs : array, shape ``(*batch, T, k)``
    transition_input_matrix : array, shape ``(n, k)`` or ``(T, n, k)``, optional (``B``)
    observation_input_matrix : array, shape ``(m, k)`` or ``(T, m, k)``, optional (``D``)

    Returns
    -------
    LGSSM
        The model with time-varying offsets of length ``T``.
    """
    u = jnp.asarray(inputs)
    if u.ndim < 2:
        raise ValueError(f"inputs: expected shape (*batch, T, k), got {u.shape}")
    changes = {}
    for name, mat, dim in (
        ("transition_offset", transition_input_matrix, model.state_dim),
        ("observation_offset", observation_input_matrix, model.observation_dim),
    ):
        if mat is None:
            continue
        mat = jnp.asarray(mat)
        if mat.ndim not in (2, 3) or mat.shape[-2:] != (dim, u.shape[-1]):
            raise ValueError(
                f"{name.replace('offset', 'input_matrix')}: expected shape ({dim}, {u.shape[-1]}) "
                f"or (T, {dim}, {u.shape[-1]}), got {mat.shape}"
            )
        offset = getattr(model, name)
        if name not in model.time_varying:
            offset = offset[..., None, :]
        spec = "ij,...tj->...ti" if mat.ndim == 2 else "tij,...tj->...ti"
        changes[name] = offset + jnp.einsum(spec, mat, u)
    if not changes:
        return model
    tv = set(model.time_varying) | set(changes)
    return model.replace(**changes, time_varying=tv)
