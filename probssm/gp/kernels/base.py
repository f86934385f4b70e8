"""The kernel contract: a covariance function that knows its linear SDE, and the sum and product.

A kernel :math:`k(s, t)` here is the covariance of :math:`f(t) = H x(t)`, where the state
:math:`x \\in \\mathbb R^n` solves a linear time-invariant SDE

.. math::

    \\mathrm d x = F x \\, \\mathrm d t + L \\, \\mathrm d \\beta, \\qquad
    \\mathbb E[\\mathrm d \\beta \\, \\mathrm d \\beta^T] = Q_c \\, \\mathrm d t
    \\quad \\text{(Hartikainen \\& Särkkä 2010)}.

Between two time stamps :math:`t` and :math:`t + \\Delta` the state moves by the exact
discretisation

.. math::

    x(t + \\Delta) = A(\\Delta) \\, x(t) + q, \\qquad A(\\Delta) = e^{F \\Delta}, \\qquad
    q \\sim N\\big(0, \\; Q(t, \\Delta)\\big), \\qquad
    Q(t, \\Delta) = P(t + \\Delta) - A P(t) A^T,

with :math:`P(t)` the prior covariance of :math:`x(t)` (:meth:`Kernel.marginal_cov`). For a
stationary kernel :math:`P(t) = P_\\infty` solves :math:`F P_\\infty + P_\\infty F^T + L Q_c L^T
= 0` and :math:`k(s, t) = H A(t - s) P_\\infty H^T` for :math:`s \\le t`. A GP observed at sorted
times :math:`t_0 \\le \\dots \\le t_{T-1}` is therefore the linear-Gaussian state-space model
:math:`x_{k+1} = A(t_{k+1} - t_k) x_k + q_k`, :math:`f(t_k) = H x_k`, :math:`x_0 \\sim N(0,
P(t_0))`, filtered and smoothed by :mod:`probssm.kalman` at :math:`O(T n^3)` cost.

Every kernel is a JAX pytree whose leaves are its hyperparameters (all positive), so a kernel
passes through ``jit``, ``vmap`` and ``grad`` and an optimiser works on
``log(jax.tree_util.tree_leaves(kernel))``. Static settings (an approximation order, an
origin) are pytree metadata: they never change under a transformation.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ...kalman._linalg import matmul

__all__ = ["Kernel", "Sum", "Product", "SDE", "as_times", "register_kernel"]


class SDE(NamedTuple):
    """The continuous-time state-space form of a kernel (arrays; ``n`` the state dimension,
    ``s`` the noise dimension).

    Attributes
    ----------
    feedback : ``(n, n)``
        :math:`F`.
    noise_effect : ``(n, s)``
        :math:`L`.
    spectral_density : ``(s, s)``
        :math:`Q_c`, the diffusion of the driving Wiener process :math:`\\beta`.
    measurement : ``(n,)``
        :math:`H`, so that :math:`f(t) = H x(t)`.
    stationary_cov : ``(n, n)`` or ``None``
        :math:`P_\\infty`; ``None`` for a non-stationary kernel (its prior covariance depends on
        time, see :meth:`Kernel.marginal_cov`).
    """

    feedback: jax.Array
    noise_effect: jax.Array
    spectral_density: jax.Array
    measurement: jax.Array
    stationary_cov: jax.Array | None


def as_times(t, name: str = "t") -> np.ndarray | jax.Array:
    """Time stamps as a one-dimensional float array, checked (finite, real numbers).

    Traced arrays pass through unchecked. A ``(T, 1)`` column (scikit-learn's ``X``) is
    accepted and flattened.
    """
    if isinstance(t, jax.core.Tracer):
        return t.reshape(-1) if t.ndim == 2 and t.shape[-1] == 1 else t
    arr = np.asarray(t)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name}: time stamps must be real numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name}: time stamps must be real numbers, got complex values")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a one-dimensional array of time stamps (T,), got shape {arr.shape}")
    arr = arr.astype(np.result_type(arr.dtype, np.float32) if np.issubdtype(arr.dtype, np.floating) else float)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name}: time stamps must be finite; position {int(bad[0])} is {arr[bad[0]]}")
    return arr


def _is_concrete(value) -> bool:
    return not isinstance(value, jax.core.Tracer)


def _check_positive(kernel_name: str, name: str, value):
    if not _is_concrete(value):
        return value
    arr = np.asarray(value)
    if arr.shape != ():
        raise ValueError(f"{kernel_name}: {name} must be a scalar, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{kernel_name}: {name} must be a real number, got {value!r}")
    if not (np.isfinite(arr) and arr > 0):
        raise ValueError(f"{kernel_name}: {name} must be positive and finite, got {float(arr)}")
    return value


def register_kernel(cls):
    """Register a kernel class as a JAX pytree: leaves are the attributes named in
    ``cls.hyperparameter_names``, metadata those in ``cls.static_names``. Unflattening bypasses
    ``__init__`` (no checks, no order selection), so traced hyperparameters pass through."""

    def flatten(kernel):
        leaves = tuple(getattr(kernel, name) for name in cls.hyperparameter_names)
        static = tuple(getattr(kernel, name) for name in cls.static_names)
        return leaves, static

    def unflatten(static, leaves):
        kernel = object.__new__(cls)
        for name, value in zip(cls.hyperparameter_names, leaves):
            object.__setattr__(kernel, name, value)
        for name, value in zip(cls.static_names, static):
            object.__setattr__(kernel, name, value)
        return kernel

    jax.tree_util.register_pytree_node(cls, flatten, unflatten)
    return cls


class Kernel:
    """Base class of the kernels in :mod:`probssm.gp`.

    A subclass names its positive hyperparameters in ``hyperparameter_names`` and its static
    settings in ``static_names``, and implements

    - ``state_dim`` (int, static) and :meth:`sde`,
    - :meth:`transition` (:math:`A(\\Delta)`, :math:`Q(t, \\Delta)`) and :meth:`marginal_cov`
      (:math:`P(t)`); stationary kernels get both from :meth:`stationary_transition_matrix`
      (default :math:`e^{F\\Delta}`) and the SDE's :math:`P_\\infty`,
    - :meth:`evaluate`, the closed-form covariance on broadcast time arrays (what
      ``kernel(t1, t2)`` returns and the tests compare the state-space form against).
    """

    hyperparameter_names: tuple[str, ...] = ()
    static_names: tuple[str, ...] = ()
    stationary: bool = True

    def _set_hyperparameters(self, **values):
        for name in self.hyperparameter_names:
            value = _check_positive(type(self).__name__, name, values[name])
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; build a new kernel instead")

    # -- the state-space form ---------------------------------------------------------------
    @property
    def state_dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def sde(self) -> SDE:  # pragma: no cover - abstract
        raise NotImplementedError

    def stationary_transition_matrix(self, dt):
        """:math:`A(\\Delta) = e^{F \\Delta}` for a scalar gap ``dt``; shape ``(n, n)``.
        Subclasses override it with a closed form where one exists."""
        return jax.scipy.linalg.expm(self.sde().feedback * dt)

    def marginal_cov(self, t):
        """:math:`P(t)`, the prior covariance of the state at time ``t`` (scalar); ``(n, n)``."""
        return self.sde().stationary_cov

    def transition(self, t, dt):
        """:math:`(A(\\Delta), Q(t, \\Delta))` from time ``t`` to ``t + dt`` (scalars,
        ``dt >= 0``); each ``(n, n)``. For a stationary kernel :math:`Q = P_\\infty - A
        P_\\infty A^T` (plus :math:`16 \\epsilon \\max_i P_{\\infty,ii} I` against round-off)."""
        A = self.stationary_transition_matrix(dt)
        P = self.sde().stationary_cov
        # Elementwise products (kalman._linalg.matmul), not a dot_general: vmapped over 1e6
        # gaps, XLA makes the matrix products and their transposes batched GEMMs of tiny
        # blocks, which on a GPU took 60 ms of the gradient against 0.3 ms this way.
        Q = P - matmul(matmul(A, P), A.T)
        # The subtraction rounds at eps |P|, so over a short gap Q can come out indefinite by
        # that much (an eigenvalue of -9e-18 at unit variance), which the square-root filters
        # cannot factor. Adding 16 eps max(diag P) I keeps it PSD and changes covariances by a
        # relative 4e-15 at most.
        jitter = 16 * jnp.finfo(Q.dtype).eps * jnp.max(jnp.diagonal(P))
        return A, 0.5 * (Q + Q.T) + jitter * jnp.eye(Q.shape[0], dtype=Q.dtype)

    def measurement(self):
        """:math:`H`, shape ``(n,)``."""
        return self.sde().measurement

    @property
    def white_noise_variance(self):
        """Variance added to every observation by :class:`~probssm.gp.WhiteNoise` terms (0 for
        a kernel without one)."""
        return 0.0

    # -- the dense covariance ---------------------------------------------------------------
    def evaluate(self, t1, t2):  # pragma: no cover - abstract
        """Closed-form :math:`k(t_1, t_2)` on broadcast arrays of time stamps."""
        raise NotImplementedError

    def __call__(self, t1, t2=None):
        """Dense covariance matrix :math:`K_{ij} = k(t_{1,i}, t_{2,j})`, shape ``(T1, T2)``;
        ``t2`` defaults to ``t1``. White noise contributes on the diagonal of
        ``kernel(t1)`` only (scikit-learn's ``WhiteKernel`` convention)."""
        a = jnp.asarray(as_times(t1, "t1"))
        b = a if t2 is None else jnp.asarray(as_times(t2, "t2"))
        K = self.evaluate(a[:, None], b[None, :])
        if t2 is None:
            K = K + self.white_noise_variance * jnp.eye(a.shape[0], dtype=K.dtype)
        return K

    # -- algebra ----------------------------------------------------------------------------
    def __add__(self, other):
        if isinstance(other, numbers.Real):
            from .constant import Constant
            other = Constant(variance=other)
        if not isinstance(other, Kernel):
            return NotImplemented
        return Sum(*_terms(self, Sum), *_terms(other, Sum))

    def __radd__(self, other):
        if isinstance(other, numbers.Real):
            return self.__add__(other)
        return NotImplemented

    def __mul__(self, other):
        if isinstance(other, numbers.Real):
            from .constant import Constant
            other = Constant(variance=other)
        if not isinstance(other, Kernel):
            return NotImplemented
        return Product(*_terms(self, Product), *_terms(other, Product))

    def __rmul__(self, other):
        if isinstance(other, numbers.Real):
            from .constant import Constant
            return Product(Constant(variance=other), *_terms(self, Product))
        return NotImplemented

    # -- reading ----------------------------------------------------------------------------
    @property
    def hyperparameters(self) -> dict:
        """The hyperparameters by name (``{"lengthscale": 2.0, ...}``); a sum or product names
        its terms' with prefixes ``k1__``, ``k2__``, ... (scikit-learn's style)."""
        return {name: getattr(self, name) for name in self.hyperparameter_names}

    def to_config(self) -> dict:
        """JSON-ready description (for ``save``): hyperparameter values and static settings."""
        return {
            "hyperparameters": {name: float(getattr(self, name)) for name in self.hyperparameter_names},
            "static": {name: getattr(self, name) for name in self.static_names},
        }

    @classmethod
    def from_config(cls, config: dict) -> "Kernel":
        """Inverse of :meth:`to_config` (the static settings are restored as saved, not chosen
        again)."""
        kernel = object.__new__(cls)
        for name in cls.hyperparameter_names:
            object.__setattr__(kernel, name, config["hyperparameters"][name])
        for name in cls.static_names:
            value = config["static"][name]
            object.__setattr__(kernel, name, tuple(value) if isinstance(value, list) else value)
        return kernel

    def _static_repr(self) -> list[str]:
        return []

    def __repr__(self):
        parts = [f"{name}={_number(getattr(self, name))}" for name in self.hyperparameter_names]
        return f"{type(self).__name__}({', '.join(parts + self._static_repr())})"

    def __eq__(self, other):
        if type(self) is not type(other):
            return False
        mine, my_tree = jax.tree_util.tree_flatten(self)
        theirs, their_tree = jax.tree_util.tree_flatten(other)
        return my_tree == their_tree and all(
            np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(mine, theirs))

    __hash__ = object.__hash__


def _number(value) -> str:
    if not _is_concrete(value):
        return "<traced>"
    return f"{float(value):.6g}"


def _terms(kernel: Kernel, kind) -> tuple:
    return kernel.kernels if type(kernel) is kind else (kernel,)


def _block_diag(*blocks):
    return jax.scipy.linalg.block_diag(*blocks)


class _Composite(Kernel):
    """A kernel built from several: its pytree children are the terms."""

    def __init__(self, *kernels):
        if len(kernels) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two kernels, got {len(kernels)}")
        for position, kernel in enumerate(kernels):
            if not isinstance(kernel, Kernel):
                raise TypeError(f"{type(self).__name__}: term {position} is {type(kernel).__name__}, not a Kernel")
        object.__setattr__(self, "kernels", tuple(kernels))

    @property
    def stationary(self) -> bool:
        return all(k.stationary for k in self.kernels)

    def to_config(self) -> dict:
        return {"kernels": list(self.kernels)}

    @classmethod
    def from_config(cls, config: dict) -> "Kernel":
        return _unflatten_composite(cls, config["kernels"])

    @property
    def hyperparameters(self) -> dict:
        return {f"k{i + 1}__{name}": value for i, k in enumerate(self.kernels)
                for name, value in k.hyperparameters.items()}


def _composite_pytree(cls):
    jax.tree_util.register_pytree_node(
        cls,
        lambda kernel: (kernel.kernels, None),
        lambda _, kernels: _unflatten_composite(cls, kernels),
    )
    return cls


def _unflatten_composite(cls, kernels):
    kernel = object.__new__(cls)
    object.__setattr__(kernel, "kernels", tuple(kernels))
    return kernel


@_composite_pytree
class Sum(_Composite):
    """:math:`k(s, t) = \\sum_i k_i(s, t)`: independent processes added, states stacked.

    :math:`x = (x_1, \\dots, x_p)`, :math:`F = \\operatorname{blockdiag}(F_i)`,
    :math:`H = (H_1, \\dots, H_p)`; state dimension :math:`\\sum_i n_i`.
    :class:`~probssm.gp.WhiteNoise` terms carry no state: their variance is added to each
    observation's noise.
    """

    @property
    def _stateful(self):
        return tuple(k for k in self.kernels if k.state_dim > 0)

    @property
    def state_dim(self) -> int:
        return sum(k.state_dim for k in self.kernels)

    def sde(self) -> SDE:
        parts = [k.sde() for k in self._stateful]
        stationary = (None if any(p.stationary_cov is None for p in parts)
                      else _block_diag(*[p.stationary_cov for p in parts]))
        return SDE(
            _block_diag(*[p.feedback for p in parts]),
            _block_diag(*[p.noise_effect for p in parts]),
            _block_diag(*[p.spectral_density for p in parts]),
            jnp.concatenate([p.measurement for p in parts]),
            stationary,
        )

    def marginal_cov(self, t):
        return _block_diag(*[k.marginal_cov(t) for k in self._stateful])

    def transition(self, t, dt):
        pairs = [k.transition(t, dt) for k in self._stateful]
        return _block_diag(*[A for A, _ in pairs]), _block_diag(*[Q for _, Q in pairs])

    def measurement(self):
        return jnp.concatenate([k.measurement() for k in self._stateful])

    @property
    def white_noise_variance(self):
        return sum(k.white_noise_variance for k in self.kernels)

    def evaluate(self, t1, t2):
        return sum(k.evaluate(t1, t2) for k in self.kernels)

    def __repr__(self):
        return " + ".join(repr(k) for k in self.kernels)


@_composite_pytree
class Product(_Composite):
    """:math:`k(s, t) = \\prod_i k_i(s, t)`: the state is the Kronecker product of the terms'.

    For two terms :math:`A = A_1 \\otimes A_2`, :math:`H = H_1 \\otimes H_2`,
    :math:`P(t) = P_1(t) \\otimes P_2(t)` and, without cancellation,
    :math:`Q = Q_1 \\otimes P_2(t + \\Delta) + A_1 P_1(t) A_1^T \\otimes Q_2`;
    state dimension :math:`\\prod_i n_i` (Solin 2016, sec. 4.2). White noise cannot be a
    factor: it has no state.
    """

    def __init__(self, *kernels):
        super().__init__(*kernels)
        for position, kernel in enumerate(self.kernels):
            if kernel.state_dim == 0:
                raise ValueError(
                    f"Product: term {position} ({kernel!r}) has no state (white noise); a product "
                    "with white noise is not a state-space kernel. Add white noise instead.")

    @property
    def state_dim(self) -> int:
        return int(np.prod([k.state_dim for k in self.kernels]))

    def sde(self) -> SDE:
        """Kronecker sum of the feedbacks, :math:`F = F_1 \\oplus F_2 = F_1 \\otimes I + I
        \\otimes F_2`. The noise of a product is not a Kronecker product of the terms'
        (``noise_effect`` is :math:`I_n` and ``spectral_density`` is :math:`-(F P_\\infty +
        P_\\infty F^T)`, stationary products only)."""
        parts = [k.sde() for k in self.kernels]
        F, H, P = parts[0].feedback, parts[0].measurement, parts[0].stationary_cov
        for part in parts[1:]:
            n1, n2 = F.shape[0], part.feedback.shape[0]
            F = jnp.kron(F, jnp.eye(n2, dtype=F.dtype)) + jnp.kron(jnp.eye(n1, dtype=F.dtype), part.feedback)
            H = jnp.kron(H, part.measurement)
            P = None if P is None or part.stationary_cov is None else jnp.kron(P, part.stationary_cov)
        if P is None:
            raise ValueError(f"{self!r}: the SDE of a product with a non-stationary term has "
                             "time-varying noise; use transition() and marginal_cov()")
        n = F.shape[0]
        return SDE(F, jnp.eye(n, dtype=F.dtype), -(F @ P + P @ F.T), H, P)

    def marginal_cov(self, t):
        P = self.kernels[0].marginal_cov(t)
        for k in self.kernels[1:]:
            P = jnp.kron(P, k.marginal_cov(t))
        return P

    def transition(self, t, dt):
        A, Q = self.kernels[0].transition(t, dt)
        P = self.kernels[0].marginal_cov(t)
        for k in self.kernels[1:]:
            A2, Q2 = k.transition(t, dt)
            P2 = k.marginal_cov(t)
            P2_next = matmul(matmul(A2, P2), A2.T) + Q2
            Q = jnp.kron(Q, P2_next) + jnp.kron(matmul(matmul(A, P), A.T), Q2)
            A, P = jnp.kron(A, A2), jnp.kron(P, P2)
        return A, 0.5 * (Q + Q.T)

    def measurement(self):
        H = self.kernels[0].measurement()
        for k in self.kernels[1:]:
            H = jnp.kron(H, k.measurement())
        return H

    def evaluate(self, t1, t2):
        out = self.kernels[0].evaluate(t1, t2)
        for k in self.kernels[1:]:
            out = out * k.evaluate(t1, t2)
        return out

    def __repr__(self):
        return " * ".join(f"({k!r})" if isinstance(k, Sum) else repr(k) for k in self.kernels)
