"""Linearisation rules against closed forms: exact for affine functions (every rule), Gaussian
moments of polynomials (Gauss-Hermite of order p up to degree 2p - 1, the unscented and cubature
rules up to degree 3), the extended rule's Jacobian, posterior linearisation of a Poisson
emission (log-normal moments), and the unscented points against filterpy's."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probssm.nonlinear import Cubature, Extended, GaussHermite, Unscented
from probssm.nonlinear.rules import linearise, resolve_rule

SIGMA_RULES = [Unscented(), Unscented(alpha=0.5, beta=2.0, kappa=1.0), Cubature(), GaussHermite(2),
               GaussHermite(3)]
ALL_RULES = [Extended()] + SIGMA_RULES


@functools.cache
def _compiled(rule, moments, additive):
    """``(mean, chol, params) -> (A, b, Omega, finite)`` of ``moments(x, params)``, one program
    per rule and function."""
    return jax.jit(lambda mean, chol, p: linearise(rule, lambda x: moments(x, p), mean, chol, additive))


def _affine(x, p):
    return p["A"] @ x + p["b"], p["S"]


def _random_gaussian(rng, n):
    a = rng.normal(size=(n, n))
    P = a @ a.T / n + 0.1 * np.eye(n)
    return rng.normal(size=n), P, np.linalg.cholesky(P)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rule=st.sampled_from(ALL_RULES), additive=st.booleans())
def test_every_rule_is_exact_for_affine_functions(seed, rule, additive):
    rng = np.random.default_rng(seed)
    mean, _, chol = _random_gaussian(rng, 3)
    S = np.cov(rng.normal(size=(2, 5)))
    p = {"A": rng.normal(size=(2, 3)), "b": rng.normal(size=2), "S": S}
    with jax.enable_x64(True):
        A, b, omega, finite = _compiled(rule, _affine, additive)(mean, chol, p)
    assert bool(finite)
    np.testing.assert_allclose(A, p["A"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b, p["b"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(omega, S, rtol=1e-11, atol=1e-12)


def test_extended_rule_is_the_first_order_taylor_expansion():
    def moments(x, p):
        return jnp.stack([jnp.sin(x[0]) * x[1], jnp.exp(0.3 * x[1])]), p

    mean = np.array([0.4, -1.1])
    S = np.array([[2.0, 0.3], [0.3, 1.0]])
    with jax.enable_x64(True):
        A, b, omega, finite = _compiled(Extended(), moments, True)(mean, np.eye(2), S)
    jac = np.array([[np.cos(0.4) * -1.1, np.sin(0.4)], [0.0, 0.3 * np.exp(0.3 * -1.1)]])
    np.testing.assert_allclose(A, jac, rtol=1e-14)
    np.testing.assert_allclose(b, [np.sin(0.4) * -1.1, np.exp(-0.33)] - jac @ mean, rtol=1e-14)
    np.testing.assert_allclose(omega, S)
    assert bool(finite)


# ---------------------------------------------------------------------------------------------
# Gaussian moments of polynomials


def _raw_moment(mu, var, k):
    """:math:`E[z^k]`, :math:`z \\sim N(\\mu, \\sigma^2)`."""
    return sum(math.comb(k, j) * mu ** (k - j) * var ** (j // 2) * _double_factorial(j - 1)
               for j in range(0, k + 1, 2))


def _double_factorial(k):
    return 1 if k <= 0 else k * _double_factorial(k - 2)


def _powers(x, p):
    """``[(c_i^T x)^k]`` for the rows ``c_i`` of ``p["C"]`` and each ``k`` in ``p["k"]``."""
    z = p["C"] @ x
    return (z[:, None] ** p["k"][None, :]).ravel(), jnp.zeros((z.size * p["k"].size,) * 2)


@pytest.fixture(scope="module")
def gaussian():
    rng = np.random.default_rng(11)
    mean, P, chol = _random_gaussian(rng, 2)
    return mean, P, chol, rng.normal(size=(3, 2))


def _directional(mean, P, C, ks):
    """Closed forms for each direction c and power k: E[z^k], Var[z^k], Cov[x, z^k] (Stein)."""
    out = {"mean": [], "var": [], "cross": []}
    for c in C:
        mu, var = c @ mean, c @ P @ c
        for k in ks:
            e_k = _raw_moment(mu, var, k)
            out["mean"].append(e_k)
            out["var"].append(_raw_moment(mu, var, 2 * k) - e_k ** 2)
            out["cross"].append(P @ c * k * _raw_moment(mu, var, k - 1))
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_gauss_hermite_of_order_p_is_exact_up_to_degree_2p_minus_1(gaussian, order):
    mean, P, chol, C = gaussian
    ks = np.arange(1, 2 * order + 1)  # up to 2p: the last one is not exact
    with jax.enable_x64(True):
        A, b, omega, _ = _compiled(GaussHermite(order), _powers, False)(mean, chol, {"C": C, "k": ks})
    ref = _directional(mean, P, C, ks)
    approx_mean = np.asarray(A @ mean + b)
    exact = np.tile(ks <= 2 * order - 1, len(C))
    np.testing.assert_allclose(approx_mean[exact], ref["mean"][exact], rtol=1e-11)
    assert np.all(np.abs(approx_mean[~exact] - ref["mean"][~exact]) > 1e-6 * np.abs(ref["mean"][~exact]))
    # covariances of z^k (degree 2k) and cross-covariances with x (degree k + 1)
    var_exact = np.tile(2 * ks <= 2 * order - 1, len(C))
    approx_var = np.diagonal(np.asarray(A @ P @ A.T + omega))
    np.testing.assert_allclose(approx_var[var_exact], ref["var"][var_exact], rtol=1e-11)
    cross_exact = np.tile(ks + 1 <= 2 * order - 1, len(C))
    np.testing.assert_allclose(np.asarray(P @ A.T).T[cross_exact], ref["cross"][cross_exact],
                               rtol=1e-11, atol=1e-12)


def test_gauss_hermite_is_a_tensor_product_rule():
    """Order p integrates x1^a x2^b with a, b <= 2p - 1 each (total degree up to 4p - 2)."""
    def monomial(x, p):
        d = x - p["mean"]
        return jnp.stack([d[0] ** 4 * d[1] ** 4, d[0] ** 5 * d[1] ** 2]), jnp.zeros((2, 2))

    mean, sd = np.array([0.3, -0.2]), np.array([0.7, 1.3])
    with jax.enable_x64(True):
        A, b, _, _ = _compiled(GaussHermite(3), monomial, False)(mean, np.diag(sd), {"mean": mean})
    np.testing.assert_allclose(A @ mean + b, [3 * sd[0] ** 4 * 3 * sd[1] ** 4, 0.0], atol=1e-12)


@pytest.mark.parametrize("rule", [Unscented(), Unscented(alpha=0.5, beta=2.0, kappa=1.0),
                                  Unscented(alpha=1e-2, beta=2.0, kappa=0.0), Cubature()], ids=repr)
def test_unscented_and_cubature_rules_are_exact_up_to_degree_3(gaussian, rule):
    mean, P, chol, C = gaussian
    ks = np.arange(1, 4)
    with jax.enable_x64(True):
        A, b, _, _ = _compiled(rule, _powers, False)(mean, chol, {"C": C, "k": ks})
    ref = _directional(mean, P, C, ks)
    np.testing.assert_allclose(A @ mean + b, ref["mean"], rtol=1e-9)
    cross_exact = np.tile(ks <= 2, len(C))  # Cov[x, z^k] has degree k + 1
    np.testing.assert_allclose(np.asarray(P @ A.T).T[cross_exact], ref["cross"][cross_exact], rtol=1e-9)


def test_unscented_points_and_weights_are_filterpys():
    pytest.importorskip("filterpy")
    from filterpy.kalman import MerweScaledSigmaPoints

    mean, P = np.array([0.5, -1.0, 2.0]), np.array([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]])
    for alpha, beta, kappa in [(1.0, 0.0, 0.0), (0.1, 2.0, 1.0), (0.5, 2.0, -1.0)]:
        theirs = MerweScaledSigmaPoints(3, alpha, beta, kappa)
        xi, wm, wc = Unscented(alpha, beta, kappa).unit_points(3)
        np.testing.assert_allclose(mean + xi @ np.linalg.cholesky(P).T, theirs.sigma_points(mean, P),
                                   rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(wm, theirs.Wm, rtol=1e-13)
        np.testing.assert_allclose(wc, theirs.Wc, rtol=1e-13)


def test_posterior_linearisation_of_a_poisson_emission():
    """``y | x ~ Poisson(exp(x))`` under ``x ~ N(mu, s^2)``: the rule's moments are the
    log-normal's, :math:`E y = e = \\exp(\\mu + s^2/2)`, :math:`\\mathrm{Var}\\, y = e + (e^{s^2}
    - 1) e^2`, :math:`\\mathrm{Cov}(x, y) = s^2 e`."""
    def poisson(x, p):
        rate = jnp.exp(x)
        return rate, jnp.diag(rate)

    mu, s = 0.4, 0.5
    with jax.enable_x64(True):
        A, b, omega, _ = _compiled(GaussHermite(20), poisson, False)(np.array([mu]), np.array([[s]]), None)
    e = math.exp(mu + s ** 2 / 2)
    np.testing.assert_allclose(A @ np.array([mu]) + b, [e], rtol=1e-12)
    np.testing.assert_allclose(s ** 2 * A[0, 0], s ** 2 * e, rtol=1e-12)
    np.testing.assert_allclose(A[0, 0] ** 2 * s ** 2 + omega[0, 0], e + math.expm1(s ** 2) * e ** 2,
                               rtol=1e-12)


@pytest.mark.parametrize("rule", SIGMA_RULES, ids=repr)
def test_degenerate_directions_keep_the_regression_exact(rule):
    """A singular covariance: no spread along the second coordinate, where the regression has
    no slope (and needs none: the mean and covariance of the output are still exact); and a
    vanishing one (the factor of a zero covariance, pivots ~1e-85, points that do not move in
    floating point): no slope at all, not rounding error divided by the pivots."""
    rng = np.random.default_rng(2)
    p = {"A": rng.normal(size=(2, 3)), "b": rng.normal(size=2), "S": np.eye(2)}
    mean = rng.normal(size=3)
    for chol in (np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.8]]), 7e-85 * np.eye(3)):
        with jax.enable_x64(True):
            A, b, omega, finite = _compiled(rule, _affine, True)(mean, chol, p)
        assert bool(finite) and np.all(np.isfinite(A)) and np.all(np.isfinite(omega))
        P = chol @ chol.T
        np.testing.assert_allclose(A @ mean + b, p["A"] @ mean + p["b"], rtol=1e-12)
        np.testing.assert_allclose(A @ P @ A.T + omega, p["A"] @ P @ p["A"].T + p["S"], rtol=1e-12, atol=1e-14)
        moving = np.abs(np.diagonal(chol)) > 1e-20
        np.testing.assert_allclose(A[:, moving], p["A"][:, moving], rtol=1e-12)
        np.testing.assert_allclose(A[:, ~moving], 0.0, atol=1e-12)


def test_rule_arguments_are_checked():
    with pytest.raises(ValueError, match="alpha"):
        Unscented(alpha=0.0)
    with pytest.raises(ValueError, match="n \\+ lambda"):
        Unscented(alpha=1.0, kappa=-3.0).unit_points(2)
    with pytest.raises(ValueError, match="order"):
        GaussHermite(0)
    with pytest.raises(ValueError, match="order"):
        GaussHermite(2.5)
    with pytest.raises(ValueError, match="rule must be one of"):
        resolve_rule("particle")
    assert resolve_rule("gauss_hermite") == GaussHermite(3)
