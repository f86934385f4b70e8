"""The general state-space model specification, shared by :mod:`probssm.nonlinear` and the
particle filters.

A model over time steps ``t = 0, ..., T-1`` with state :math:`x_t \\in \\mathbb R^n` and
observation :math:`y_t \\in \\mathbb R^m`:

.. math::

    x_0 \\sim p_\\theta(x_0), \\qquad
    x_{t+1} \\mid x_t \\sim p_\\theta(x_{t+1} \\mid x_t, t), \\qquad
    y_t \\mid x_t \\sim p_\\theta(y_t \\mid x_t, t).

:class:`StateSpaceModel` takes the three as functions returning NumPyro distributions (so any
NumPyro likelihood works: Poisson counts, Student-t noise, ...). :class:`AdditiveGaussianSSM` is
the common special case :math:`x_{t+1} = f(x_t, t) + q_t`, :math:`y_t = h(x_t, t) + r_t` with
Gaussian :math:`q_t \\sim N(0, Q)`, :math:`r_t \\sim N(0, R)` and
:math:`x_0 \\sim N(m_0, P_0)`.

Both are JAX pytrees whose leaves are the parameters (``params`` and, for the additive form,
``Q, R, m0, P0``); the functions are static. So a model passes through ``jit``, ``vmap`` and
``grad`` as an argument, and a log-likelihood is differentiable in its parameters.

Parameters and inputs: a model built with ``params=None`` calls ``f(x, t)``; with a pytree
``params`` it calls ``f(x, t, params)``. ``t`` is the integer time step (a traced integer under
``jit``), so inputs ``u_t`` are a time-indexed array inside ``params``, read as
``params["u"][t]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["AdditiveGaussianSSM", "StateSpaceModel", "conditional_moments"]


def _call(fn, args, params):
    return fn(*args) if params is None else fn(*args, params)


def _vector(value):
    return jnp.reshape(value, (-1,)) if jnp.ndim(value) == 0 else value


def conditional_moments(distribution):
    """Mean ``(d,)`` and covariance ``(d, d)`` of a NumPyro distribution over a vector.

    A distribution with a ``covariance_matrix`` (multivariate normal) gives it; any other gives
    ``diag(variance)`` (independent components: a batch of univariate distributions, or one
    wrapped by ``to_event(1)``). A scalar distribution is a vector of length one.
    """
    mean = _vector(distribution.mean)
    try:
        cov = distribution.covariance_matrix
    except (AttributeError, NotImplementedError):
        cov = jnp.diag(_vector(distribution.variance))
    return mean, cov


def _sum_log_prob(distribution, value):
    """``log p(value)`` over the observed (non-NaN) entries: a factorised distribution (a batch
    of univariate ones) drops missing entries one by one; a joint one (event shape ``(m,)``)
    counts a row only when all of it is observed (partly missing rows need a factorised or an
    additive-Gaussian emission)."""
    mean = distribution.mean
    value = jnp.reshape(value, jnp.shape(mean))
    observed = ~jnp.isnan(value)
    # a missing entry is filled by a point of the support (the mean of a count distribution is
    # not one) and left out of the sum
    filler = jax.lax.stop_gradient(distribution.support.feasible_like(value))
    terms = distribution.log_prob(jnp.where(observed, value, filler))
    if jnp.ndim(terms) == jnp.ndim(value) and jnp.ndim(value) > 0:
        return jnp.sum(jnp.where(observed, terms, 0.0))
    return jnp.where(jnp.all(observed), jnp.sum(terms), 0.0)


@jax.tree_util.register_pytree_node_class
class StateSpaceModel:
    """A state-space model given by its three distributions (a JAX pytree over ``params``).

    Parameters
    ----------
    initial : callable
        ``initial()`` or ``initial(params)`` -> distribution of :math:`x_0`, event shape ``(n,)``.
    transition : callable
        ``transition(x, t)`` or ``transition(x, t, params)`` -> distribution of
        :math:`x_{t+1}` given :math:`x_t` = ``x`` ``(n,)``, event shape ``(n,)``.
    emission : callable
        ``emission(x, t)`` or ``emission(x, t, params)`` -> distribution of :math:`y_t` given
        :math:`x_t`, over a vector of length ``m`` (a multivariate distribution, a batch of ``m``
        univariate ones, or a scalar one for ``m = 1``).
    params : pytree, optional
        Parameters passed to the three functions as their last argument.

    Notes
    -----
    The Gaussian filters of :mod:`probssm.nonlinear` use the conditional means and covariances of
    the transition and emission (:func:`conditional_moments`); particle filters use samples and
    log-densities.
    """

    additive = False

    def __init__(self, initial: Callable, transition: Callable, emission: Callable, params=None):
        self.initial = initial
        self.transition = transition
        self.emission = emission
        self.params = params
        _check_distributions(self)

    # pytree: parameters are leaves, functions static
    def tree_flatten(self):
        return (self.params,), (self.initial, self.transition, self.emission)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.initial, obj.transition, obj.emission = aux
        (obj.params,) = children
        return obj

    def replace(self, params) -> StateSpaceModel:
        """The same model with other parameters (a pytree of the same structure, leaves of the
        same shapes; anything else raises ``ValueError``)."""
        _check_params_like(self.params, params)
        return self._with_params(params)

    def _with_params(self, params) -> StateSpaceModel:
        children, aux = self.tree_flatten()
        return type(self).tree_unflatten(aux, (params, *children[1:]))

    # distributions
    def initial_distribution(self):
        return self.initial() if self.params is None else self.initial(self.params)

    def transition_distribution(self, x, t):
        return _call(self.transition, (x, t), self.params)

    def emission_distribution(self, x, t):
        return _call(self.emission, (x, t), self.params)

    # moments, as the Gaussian filters use them
    def initial_moments(self):
        """Mean ``(n,)`` and covariance ``(n, n)`` of :math:`x_0`."""
        return conditional_moments(self.initial_distribution())

    def transition_moments(self, x, t):
        """:math:`E[x_{t+1} \\mid x_t]` ``(n,)`` and :math:`\\mathrm{Cov}[x_{t+1} \\mid x_t]`
        ``(n, n)``."""
        return conditional_moments(self.transition_distribution(x, t))

    def emission_moments(self, x, t):
        """:math:`E[y_t \\mid x_t]` ``(m,)`` and :math:`\\mathrm{Cov}[y_t \\mid x_t]` ``(m, m)``."""
        return conditional_moments(self.emission_distribution(x, t))

    def emission_log_prob(self, x, y, t):
        """:math:`\\log p(y_t \\mid x_t)` over the observed entries of ``y``, a scalar."""
        return _sum_log_prob(self.emission_distribution(x, t), y)

    @property
    def state_dim(self) -> int:
        """``n``, from the initial distribution's shape."""
        return int(jax.eval_shape(lambda m: m.initial_moments()[0], self).shape[0])

    @property
    def observation_dim(self) -> int:
        """``m``, from the emission's shape at the initial mean."""
        def mean(model):
            return model.emission_moments(model.initial_moments()[0], 0)[0]
        return int(jax.eval_shape(mean, self).shape[0])

    # simulation
    def _sample_initial(self, key):
        return _vector(self.initial_distribution().sample(key))

    def _sample_transition(self, key, x, t):
        return _vector(self.transition_distribution(x, t).sample(key))

    def _sample_emission(self, key, x, t):
        return _vector(self.emission_distribution(x, t).sample(key))

    def sample(self, key, num_timesteps: int, *, sample_shape: tuple[int, ...] = ()):
        """Simulate states and observations.

        Parameters
        ----------
        key : jax.random key
        num_timesteps : int
            ``T``.
        sample_shape : tuple of int
            Leading axes of independent paths.

        Returns
        -------
        states : ``(*sample_shape, T, n)``
        observations : ``(*sample_shape, T, m)``
        """
        num_timesteps = int(num_timesteps)
        if num_timesteps < 1:
            raise ValueError(f"num_timesteps must be a positive integer, got {num_timesteps}")
        count = math.prod(sample_shape)
        keys = jax.random.split(key, max(count, 1))
        xs, ys = _sample_paths(self, keys, num_timesteps)
        if not sample_shape:
            return xs[0], ys[0]
        return (xs.reshape(*sample_shape, *xs.shape[1:]), ys.reshape(*sample_shape, *ys.shape[1:]))

    def _sampler(self):
        """The object whose ``_sample_initial/_transition/_emission`` draw the paths (the
        additive form precomputes its square roots once)."""
        return self


@partial(jax.jit, static_argnames=("num_timesteps",))
def _sample_paths(model, keys, num_timesteps):
    """Paths ``(len(keys), T, n)``, ``(len(keys), T, m)``: one compiled program per model
    structure and shape (the model is an argument, its functions static)."""
    sampler = model._sampler()

    def one(key):
        key0, key_obs0, key_path = jax.random.split(key, 3)
        x0 = sampler._sample_initial(key0)
        y0 = sampler._sample_emission(key_obs0, x0, 0)

        def step(x, inputs):
            t, key_t = inputs
            k_state, k_obs = jax.random.split(key_t)
            x_next = sampler._sample_transition(k_state, x, t - 1)
            return x_next, (x_next, sampler._sample_emission(k_obs, x_next, t))

        steps = jnp.arange(1, num_timesteps)
        _, (xs, ys) = jax.lax.scan(step, x0, (steps, jax.random.split(key_path, num_timesteps - 1)))
        return jnp.concatenate([x0[None], xs]), jnp.concatenate([y0[None], ys])

    return jax.vmap(one)(keys)


def _check_square(name, value, size=None):
    if value.ndim != 2 or value.shape[0] != value.shape[1]:
        raise ValueError(f"{name}: expected a square matrix, got shape {value.shape}")
    if size is not None and value.shape[0] != size:
        raise ValueError(f"{name}: expected shape ({size}, {size}), got {value.shape}")


def _check_covariance(name, value):
    """Symmetric positive semi-definite, checked on concrete values."""
    if isinstance(value, jax.core.Tracer):
        return
    a = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    scale = max(float(np.max(np.abs(a))), 1e-300)
    if not np.allclose(a, a.T, rtol=1e-8, atol=1e-10 * scale):
        raise ValueError(f"{name} is not symmetric (max |{name} - {name}^T| = "
                         f"{float(np.max(np.abs(a - a.T))):.3g})")
    smallest = float(np.linalg.eigvalsh(0.5 * (a + a.T))[0])
    if smallest < -1e-8 * scale:
        raise ValueError(f"{name} is not positive semi-definite (smallest eigenvalue {smallest:.3g})")


def _reraise(error, message):
    """Raise ``error``'s type with ``message`` (a ``TypeError`` where that type does not take a
    message alone), chained to ``error``."""
    try:
        new = type(error)(message)
    except Exception:  # noqa: BLE001 (a type that does not take a message alone)
        new = TypeError(message)
    raise new from error


def _check_params_like(old, new):
    """``new`` has the pytree structure and leaf shapes of ``old``."""
    old_def, new_def = jax.tree_util.tree_structure(old), jax.tree_util.tree_structure(new)
    if old_def != new_def:
        raise ValueError(f"params: expected a pytree of structure {old_def} (the model's), got {new_def}")
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(old)[0], jax.tree_util.tree_leaves(new)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(f"params{jax.tree_util.keystr(path)}: expected shape {jnp.shape(a)} "
                             f"(the model's), got {jnp.shape(b)}")


def _event_shape(distribution):
    return tuple(distribution.batch_shape) + tuple(distribution.event_shape)


def _check_distributions(model: StateSpaceModel):
    """Shapes of the three distributions of a generic model (abstract evaluation): ``x_0`` and
    the transition over ``(n,)`` (or a scalar for ``n = 1``), the emission over ``(m,)`` (or a
    scalar); the error names the function and the shapes."""
    params = model.params
    with_params = params is not None

    def evaluate(signature, fn, *args):
        try:
            return jax.eval_shape(fn, *args).shape
        except Exception as error:  # noqa: BLE001 (the user's function failed: say which one)
            structure = jax.tree_util.tree_structure(params)
            _reraise(error, f"{signature} raised {type(error).__name__}: {error} (params {structure})")

    initial = evaluate("initial(params)" if with_params else "initial()",
                       lambda p: jnp.zeros(_event_shape(model._with_params(p).initial_distribution())),
                       params)
    if len(initial) > 1:
        raise ValueError(f"initial{'(params)' if with_params else '()'} must be a distribution over a "
                         f"vector (n,) or a scalar, got shape {initial}")
    n = initial[0] if initial else 1
    x = jax.ShapeDtypeStruct((n,), jnp.result_type(float))
    signature = "(x, t, params)" if with_params else "(x, t)"
    trans = evaluate("transition" + signature, lambda x_, p: jnp.zeros(
        _event_shape(model._with_params(p).transition_distribution(x_, 0))), x, params)
    if trans != (n,) and not (n == 1 and trans == ()):
        raise ValueError(f"transition{signature} returned a distribution of shape {trans}, expected "
                         f"({n},) (the shape of the initial distribution)")
    emit = evaluate("emission" + signature, lambda x_, p: jnp.zeros(
        _event_shape(model._with_params(p).emission_distribution(x_, 0))), x, params)
    if len(emit) > 1:
        raise ValueError(f"emission{signature} must return a distribution over a vector (m,) or a "
                         f"scalar, got shape {emit}")


def _check_function(name, fn, x, params, expected: int, what: str):
    """Evaluate the shape of ``fn(x, 0[, params])`` and name the function when it is wrong."""
    signature = f"{name}(x, t)" if params is None else f"{name}(x, t, params)"
    try:
        out = jax.eval_shape(lambda x_, p_: _call(fn, (x_, 0), p_), x, params)
    except Exception as error:  # noqa: BLE001 (the user's function failed: say which one)
        structure = jax.tree_util.tree_structure(params)
        _reraise(error, f"{signature} raised {type(error).__name__}: {error} (called with x of shape "
                        f"{tuple(jnp.shape(x))} and params {structure})")
    if not hasattr(out, "shape"):
        raise TypeError(f"{signature} must return an array, got {type(out).__name__}")
    if tuple(out.shape) != (expected,):
        raise ValueError(f"{signature} returned shape {tuple(out.shape)}, expected ({expected},) "
                         f"({what})")


@jax.tree_util.register_pytree_node_class
class AdditiveGaussianSSM(StateSpaceModel):
    """:math:`x_{t+1} = f(x_t, t) + q_t`, :math:`y_t = h(x_t, t) + r_t`,
    :math:`q_t \\sim N(0, Q)`, :math:`r_t \\sim N(0, R)`, :math:`x_0 \\sim N(m_0, P_0)`.

    Parameters
    ----------
    f : callable
        ``f(x, t)`` (or ``f(x, t, params)``): ``(n,)`` -> ``(n,)``, ``t`` the integer time step.
    h : callable
        ``h(x, t)`` (or ``h(x, t, params)``): ``(n,)`` -> ``(m,)``.
    Q : array ``(n, n)``
        Transition noise covariance, positive semi-definite.
    R : array ``(m, m)``
        Observation noise covariance, positive semi-definite.
    m0 : array ``(n,)``
        Mean of :math:`x_0`.
    P0 : array ``(n, n)``
        Covariance of :math:`x_0`, positive semi-definite.
    params : pytree, optional
        Extra parameters passed to ``f`` and ``h`` as their last argument (inputs as
        time-indexed arrays in it).

    Notes
    -----
    ``Q, R, m0, P0`` and ``params`` are the pytree's leaves. On concrete values the constructor
    checks the shapes, that the covariances are symmetric positive semi-definite, and the output
    shapes of ``f`` and ``h`` (the error names the function and the shapes).
    """

    additive = True

    def __init__(self, f: Callable, h: Callable, Q, R, m0, P0, params=None):
        arrays = {}
        for name, value in (("Q", Q), ("R", R), ("m0", m0), ("P0", P0)):
            arr = value if isinstance(value, jax.core.Tracer) else jnp.asarray(value)
            if not jnp.issubdtype(arr.dtype, jnp.floating):
                arr = arr.astype(jnp.result_type(float))
            arrays[name] = arr
        m0_ = arrays["m0"]
        if m0_.ndim != 1:
            raise ValueError(f"m0: expected shape (n,), got {m0_.shape}")
        n = m0_.shape[0]
        _check_square("Q", arrays["Q"], n)
        _check_square("P0", arrays["P0"], n)
        _check_square("R", arrays["R"])
        for name in ("Q", "R", "P0"):
            _check_covariance(name, arrays[name])
        _check_function("f", f, m0_, params, n, "the state dimension of m0")
        _check_function("h", h, m0_, params, arrays["R"].shape[0], "the observation dimension of R")
        self.f, self.h = f, h
        self.Q, self.R, self.m0, self.P0 = arrays["Q"], arrays["R"], m0_, arrays["P0"]
        self.params = params

    def tree_flatten(self):
        return (self.params, self.Q, self.R, self.m0, self.P0), (self.f, self.h)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.f, obj.h = aux
        obj.params, obj.Q, obj.R, obj.m0, obj.P0 = children
        return obj

    def transition_mean(self, x, t):
        """:math:`f(x, t)` ``(n,)``."""
        return _call(self.f, (x, t), self.params)

    def emission_mean(self, x, t):
        """:math:`h(x, t)` ``(m,)``."""
        return _call(self.h, (x, t), self.params)

    def initial_moments(self):
        return self.m0, self.P0

    def transition_moments(self, x, t):
        return self.transition_mean(x, t), self.Q

    def emission_moments(self, x, t):
        return self.emission_mean(x, t), self.R

    def initial_distribution(self):
        import numpyro.distributions as dist
        return dist.MultivariateNormal(self.m0, self.P0)

    def transition_distribution(self, x, t):
        import numpyro.distributions as dist
        return dist.MultivariateNormal(self.transition_mean(x, t), self.Q)

    def emission_distribution(self, x, t):
        import numpyro.distributions as dist
        return dist.MultivariateNormal(self.emission_mean(x, t), self.R)

    def emission_log_prob(self, x, y, t):
        """:math:`\\log N(y; h(x, t), R)` over the observed (non-NaN) entries of ``y``."""
        from .kalman.parallel import _masked_observation  # the one NaN convention
        mean = self.emission_mean(x, t)
        observed, _, R, base = _masked_observation(y, jnp.eye(mean.shape[0], dtype=mean.dtype), self.R,
                                                   jnp.zeros_like(mean))
        resid = jnp.where(observed, base - mean, 0.0)
        L = jnp.linalg.cholesky(R)
        white = jax.scipy.linalg.solve_triangular(L, resid, lower=True)
        k = jnp.sum(observed)
        return -0.5 * (k * math.log(2 * math.pi) + 2 * jnp.sum(jnp.log(jnp.diagonal(L))) + white @ white)

    # simulation by square roots, so singular covariances (noise-free components) sample too
    def _gaussian(self, key, mean, cov):
        from .kalman._linalg import psd_sqrt
        return mean + psd_sqrt(cov) @ jax.random.normal(key, mean.shape, mean.dtype)

    def _sample_initial(self, key):
        return self._gaussian(key, self.m0, self.P0)

    def _sample_transition(self, key, x, t):
        return self._gaussian(key, self.transition_mean(x, t), self.Q)

    def _sample_emission(self, key, x, t):
        return self._gaussian(key, self.emission_mean(x, t), self.R)

    def _sampler(self):
        return _AdditiveSampler(self)


class _AdditiveSampler:
    """Draws of an :class:`AdditiveGaussianSSM` with the square roots of ``P0, Q, R`` taken once
    (the same numbers as the model's own ``_sample_*``)."""

    def __init__(self, model: AdditiveGaussianSSM):
        from .kalman._linalg import psd_sqrt
        self.model = model
        self.roots = {name: psd_sqrt(getattr(model, name)) for name in ("P0", "Q", "R")}

    def _draw(self, key, mean, name):
        return mean + self.roots[name] @ jax.random.normal(key, mean.shape, mean.dtype)

    def _sample_initial(self, key):
        return self._draw(key, self.model.m0, "P0")

    def _sample_transition(self, key, x, t):
        return self._draw(key, self.model.transition_mean(x, t), "Q")

    def _sample_emission(self, key, x, t):
        return self._draw(key, self.model.emission_mean(x, t), "R")
