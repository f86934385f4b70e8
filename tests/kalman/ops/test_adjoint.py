"""The filter's reverse mode and the exact score from the filtered moments (probssm.kalman.ops.adjoint)
against reverse-mode autodiff of the sequential filter, and the kernel gradients that use them."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm import kalman
from probssm.kalman import sequential
from probssm.kalman.ops import adjoint
from probssm.kalman.ops.states import FilterStates, SmootherStates
from probssm.kalman.model import FIELD_NAMES

N, M, B, T = 3, 2, 2, 24


def _problem(seed, singular_q, correlated_r, zero_p0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(N, N))
    q = np.outer(a[0], a[0]) if singular_q else a @ a.T / N + 0.1 * np.eye(N)
    b = rng.normal(size=(M, M))
    r = b @ b.T / M + 0.2 * np.eye(M) if correlated_r else np.diag(rng.uniform(0.2, 1.0, M))
    p0 = np.zeros((N, N)) if zero_p0 else np.eye(N) + 0.1 * np.ones((N, N))
    model = kalman.LGSSM(0.6 * rng.normal(size=(N, N)) / np.sqrt(N), q, rng.normal(size=(M, N)),
                         r, rng.normal(size=N), p0, transition_offset=rng.normal(size=N),
                         observation_offset=rng.normal(size=M))
    y = rng.normal(size=(B, T, M))
    y[:, 3] = np.nan
    y[rng.uniform(size=y.shape) < 0.15] = np.nan
    return model, jnp.asarray(y), jnp.asarray(rng.normal(size=B))


def _weighted_log_likelihood(model, y, w):
    ll = jax.vmap(lambda yy: sequential.filter_single(model, yy)["log_likelihood_terms"].sum())(y)
    return jnp.sum(w * ll)


@jax.jit
def _autodiff(model, y, w):
    return jax.grad(_weighted_log_likelihood, argnums=(0, 1))(model, y, w)


@jax.jit
def _closed_form(model, y, w):
    states = jax.vmap(lambda yy: sequential.filter_single(model, yy))(y)
    return adjoint.log_likelihood_vjp(model, y, FilterStates.from_mapping(states), w)


def _sym(g):
    return 0.5 * (g + np.swapaxes(g, -1, -2))


def _assert_gradients_equal(got, want, y):
    """``(model, y)`` gradients: every field to 1e-9 of its largest entry (covariances along
    symmetric directions), ``y`` to 1e-9 where observed."""
    (got_model, got_y), (want_model, want_y) = got, want
    for name in FIELD_NAMES:
        w, g = np.asarray(getattr(want_model, name)), np.asarray(getattr(got_model, name))
        if name.endswith("_cov"):
            w = _sym(w)
        scale = max(np.max(np.abs(w)), 1.0)
        np.testing.assert_allclose(g, w, atol=1e-9 * scale, rtol=0, err_msg=name)
    observed = ~np.isnan(np.asarray(y))
    np.testing.assert_allclose(np.asarray(got_y)[observed], np.asarray(want_y)[observed],
                               atol=1e-9)


def _every_series(single, model, y):
    return jax.vmap(lambda yy: single(model, yy))(y)


# Module-level jitted functions, so that the parametrised tests of one recursion (``single`` a
# static argument) share one compiled program for its outputs and one for their autodiff.
_outputs = jax.jit(_every_series, static_argnums=0)


@functools.partial(jax.jit, static_argnums=0)
def _autodiff_vjp(single, model, y, cotangents):
    """Reverse-mode autodiff of ``single`` over the series of ``y``: the ``(model, y)``
    gradient of the pairing of its outputs with ``cotangents`` (one for every output)."""
    _, pullback = jax.vjp(functools.partial(_every_series, single), model, y)
    return pullback(cotangents)


def _check_reverse_mode(single, vjp, outputs, seed, problem_seed):
    """``vjp`` against reverse-mode autodiff of ``single`` (a sequential filter or smoother of
    one series) for random cotangents on ``outputs``. The reference pairs every output with a
    cotangent, zero on those not in ``outputs`` (the same gradient as a pairing of ``outputs``
    alone, and one program for all choices of ``outputs``); ``vjp`` gets ``None`` for them."""
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        model, y, _ = _problem(problem_seed, False, True, False)
        # Jitted: eager, every small operation would be a program of its own for XLA to compile.
        states = _outputs(single, model, y)
        cotangents = {k: jnp.asarray(rng.normal(size=states[k].shape)) for k in outputs}
        every = {k: cotangents.get(k, jnp.zeros_like(v)) for k, v in states.items()}
        want = _autodiff_vjp(single, model, y, every)
        got = jax.jit(vjp)(model, y, *_typed(states, cotangents))
    _assert_gradients_equal(got, want, y)


def _typed(states, cotangents):
    """A sequential filter's or smoother's dict of outputs and a dict of cotangents on some of
    them as the kernel's typed states (absent cotangents ``None``)."""
    filtered = FilterStates(**{k: v for k, v in cotangents.items() if k in FilterStates._fields})
    if "smoothed_mean" not in states:
        return FilterStates.from_mapping(states), filtered
    smoothed = {k: v for k, v in cotangents.items() if k in SmootherStates._fields}
    return SmootherStates.from_mapping(states), SmootherStates(filtered, **smoothed)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), singular_q=st.booleans(), correlated_r=st.booleans(),
       zero_p0=st.booleans())
def test_score_equals_autodiff_of_the_sequential_filter(seed, singular_q, correlated_r, zero_p0):
    """Every field and the observations, weighted series, whole and partly missing rows; also with
    a singular Q (rank one) and a zero prior covariance, where Fisher's identity in terms of
    Q^-1 or P0^-1 would not apply. Covariance gradients compared along symmetric directions."""
    with jax.enable_x64(True):
        model, y, w = _problem(seed, singular_q, correlated_r, zero_p0)
        want, got = _autodiff(model, y, w), _closed_form(model, y, w)
    _assert_gradients_equal(got, want, y)
    missing = np.isnan(np.asarray(y))
    assert np.all(np.asarray(got[1])[missing] == 0.0)


def test_kernel_log_likelihood_gradient_in_every_field():
    """``jax.grad`` of ``log_likelihood(method="kernel")`` (the score as its custom VJP) equals
    that of ``"sequential"``: 1e-9 in float64; float32 within 1e-4 of the float64 gradient."""
    def objective(model, y, method):
        return jnp.sum(w.astype(y.dtype) * kalman.log_likelihood(model, y, method=method))

    with jax.enable_x64(True):
        model, y, w = _problem(5, False, True, False)
        gradient = jax.jit(jax.grad(objective, argnums=(0, 1)), static_argnums=2)
        want_model, want_y = gradient(model, y, "sequential")
        got_model, got_y = gradient(model, y, "kernel")
        model32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), model)
        f32_model, _ = gradient(model32, y.astype(jnp.float32), "kernel")
    for name in FIELD_NAMES[:-1]:
        want = np.asarray(getattr(want_model, name))
        if name.endswith("_cov"):
            want = _sym(want)
        scale = max(np.max(np.abs(want)), 1.0)
        np.testing.assert_allclose(getattr(got_model, name), want, atol=1e-9 * scale, err_msg=name)
        np.testing.assert_allclose(getattr(f32_model, name), want, atol=1e-4 * scale, err_msg=name)
    observed = ~np.isnan(np.asarray(y))
    np.testing.assert_allclose(np.asarray(got_y)[observed], np.asarray(want_y)[observed],
                               atol=1e-9)


# Jitted: eagerly, each of its small operations compiled as a program of its own (some 30 a
# length).
_suffix_compositions = jax.jit(adjoint._suffix_compositions, static_argnums=1,
                               static_argnames="chunk")


def test_suffix_compositions_across_chunks_equal_the_recursion():
    """The chunked scan (sequential in chunks, doubling across them) against the backward maps
    run step by step, :math:`\\lambda_t = A_t^T \\lambda_{t+1} + c_t`, :math:`\\Lambda_t =
    A_t^T \\Lambda_{t+1} A_t + \\mathrm{sym}(h_t (A_t^T \\lambda_{t+1})^T) + W_t`, from a
    terminal element (``A = 0``): one step, a partial chunk, whole chunks, a partial last one."""
    rng = np.random.default_rng(3)
    for T in (1, 5, 8, 9, 37):
        A = 0.6 * rng.normal(size=(2, T, 3, 3))
        A[:, -1] = 0.0
        c, h = rng.normal(size=(2, T, 3)), rng.normal(size=(2, T, 3))
        W = rng.normal(size=(2, T, 3, 3))
        lam, Lam = np.zeros((2, 3)), np.zeros((2, 3, 3))
        want_lam, want_Lam = np.zeros_like(c), np.zeros_like(W)
        for t in reversed(range(T)):
            x = np.einsum("bji,bj->bi", A[:, t], lam)
            coupling = h[:, t, :, None] * x[:, None, :]
            Lam = (np.einsum("bji,bjk,bkl->bil", A[:, t], Lam, A[:, t]) + W[:, t]
                   + 0.5 * (coupling + np.swapaxes(coupling, 1, 2)))
            lam = x + c[:, t]
            want_lam[:, t], want_Lam[:, t] = lam, Lam
        with jax.enable_x64(True):
            _, got_lam, _, got_Lam = _suffix_compositions(
                tuple(map(jnp.asarray, (A, c, h, W))), adjoint._ADJOINTS, chunk=8)
        np.testing.assert_allclose(got_lam, want_lam, rtol=1e-12, atol=1e-12, err_msg=f"T={T}")
        np.testing.assert_allclose(got_Lam, want_Lam, rtol=1e-12, atol=1e-12, err_msg=f"T={T}")


_FILTER_OUTPUTS = ("mean", "cov", "predicted_mean", "predicted_cov", "observation_mean",
                   "observation_cov", "log_likelihood_terms", "next_mean", "next_cov")


# Each test function's cases on one worker (--dist loadgroup), where they share the compiled
# outputs and autodiff of their recursion.
@pytest.mark.xdist_group("filter_reverse_mode")
@pytest.mark.parametrize("outputs", [_FILTER_OUTPUTS, ("mean",), ("cov", "next_cov"),
                                     ("predicted_cov", "observation_cov")])
def test_filter_vjp_equals_autodiff_of_the_sequential_filter(outputs):
    """Random cotangents on the filter's outputs (all, or a few with the others absent): the
    gradient in every field and in ``y`` equals reverse-mode autodiff of the sequential filter."""
    _check_reverse_mode(sequential.filter_single, adjoint.filter_vjp, outputs, len(outputs), 11)


@pytest.mark.xdist_group("smoother_reverse_mode")
@pytest.mark.parametrize("outputs", [("smoothed_mean",), ("smoothed_cov",), ("lag_one_cov",),
                                     ("smoothed_mean", "smoothed_cov", "mean", "cov",
                                      "log_likelihood_terms")])
def test_smoother_vjp_equals_autodiff_of_the_sequential_smoother(outputs):
    """Random cotangents on the smoothed means, covariances and lag-one covariances (and the
    filter's outputs): every field and ``y`` as reverse-mode autodiff of the sequential
    smoother (the RTS pass's adjoint written out, then the filter's)."""
    _check_reverse_mode(sequential.smooth_single, adjoint.smoother_vjp, outputs,
                        len(outputs) + 7, 13)


def test_kernel_smoother_gradient_through_the_public_api():
    """``jax.grad`` through ``smooth(method="kernel")`` (its custom VJP) equals ``"sequential"``."""
    with jax.enable_x64(True):
        model, y, _ = _problem(17, False, False, False)

        def objective(theta, method):
            m_ = model.replace(transition_matrix=theta[0] * model.transition_matrix,
                               transition_cov=jnp.exp(theta[1]) * model.transition_cov,
                               observation_cov=jnp.exp(theta[2]) * model.observation_cov)
            res = kalman.smooth(m_, y, method=method)
            return (jnp.sum(res.mean ** 2) + jnp.sum(res.cov) + jnp.sum(res.lag_one_cov)
                    + jnp.sum(res.filtered.log_likelihood))

        theta = jnp.array([0.9, 0.2, -0.3])
        gradient = jax.jit(jax.grad(objective), static_argnums=1)
        np.testing.assert_allclose(gradient(theta, "kernel"), gradient(theta, "sequential"),
                                   rtol=1e-9)
