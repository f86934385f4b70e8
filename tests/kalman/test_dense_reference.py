"""probssm.kalman against an independent dense reference.

The reference stacks all states ``x_{0:K-1}`` and observations ``y_{0:K-1}`` of a linear-Gaussian
state-space model into one joint Gaussian (built in NumPy by propagating the linear recursions
explicitly) and answers every question by dense Gaussian conditioning: the log-likelihood is the
log-density of the observed entries, filtered moments condition ``x_t`` on ``y_{0:t}``, smoothed
moments condition on all observed ``y``, forecasts extend the joint past the data. Exact diffuse
initialisation is checked against statsmodels.

All float64 computations run inside ``with jax.enable_x64(True):``; the global config is never
flipped.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from probssm import kalman

STEP_FIELDS = (
    "transition_matrix", "transition_cov", "observation_matrix", "observation_cov",
    "transition_offset", "observation_offset",
)


# ------------------------------------------------------------------------------------------------
# Random models (NumPy, float64)
# ------------------------------------------------------------------------------------------------
def random_pd(rs, k, jitter=0.2):
    a = rs.randn(k, k)
    return a @ a.T / k + jitter * np.eye(k)


def random_params(seed, n, m, T, varying=(), offsets=True):
    """A dict of LGSSM fields; the fields in ``varying`` get a leading time axis of length T."""
    rs = np.random.RandomState(seed)
    makers = {
        "transition_matrix": lambda: 0.8 * rs.randn(n, n) / np.sqrt(n),
        "transition_cov": lambda: random_pd(rs, n),
        "observation_matrix": lambda: rs.randn(m, n),
        "observation_cov": lambda: random_pd(rs, m),
        "transition_offset": lambda: rs.randn(n),
        "observation_offset": lambda: rs.randn(m),
    }
    p = {}
    for name, make in makers.items():
        if name.endswith("offset") and not offsets:
            continue
        p[name] = np.stack([make() for _ in range(T)]) if name in varying else make()
    p["initial_mean"] = rs.randn(n)
    p["initial_cov"] = random_pd(rs, n)
    return p


def make_model(p, varying=None):
    varying = [k for k in (varying if varying is not None else ()) if k in p]
    return kalman.LGSSM(**p, time_varying=varying)


def per_time(p, name, K, varying):
    """Field ``name`` as an array with a leading time axis of length K (shared if invariant)."""
    n = np.shape(p["initial_mean"])[0]
    m = np.shape(p["observation_matrix"])[-2]
    default = {"transition_offset": np.zeros(n), "observation_offset": np.zeros(m)}
    value = np.asarray(p.get(name, default.get(name)), dtype=float)
    if name in varying:
        assert value.shape[0] >= K, (name, value.shape, K)
        return value[:K]
    return np.broadcast_to(value, (K,) + value.shape)


# ------------------------------------------------------------------------------------------------
# The dense joint Gaussian of (x_0, ..., x_{K-1}, y_0, ..., y_{Ko-1})
# ------------------------------------------------------------------------------------------------
class DenseJoint:
    """Joint N(mean, cov) of stacked states (``K`` steps) and observations (``Ko <= K`` steps).

    Built as ``x = c + A w`` with ``w = (x_0 - m_0, eta_0, ..., eta_{K-2})`` independent, by
    propagating ``x_{t+1} = F_t x_t + b_t + eta_t`` explicitly; then ``y = blkdiag(H) x + d + eps``.
    """

    def __init__(self, p, K, Ko=None, varying=()):
        Ko = K if Ko is None else Ko
        n = np.shape(p["initial_mean"])[0]
        F = per_time(p, "transition_matrix", K - 1, varying) if K > 1 else np.zeros((0, n, n))
        Q = per_time(p, "transition_cov", K - 1, varying) if K > 1 else np.zeros((0, n, n))
        b = per_time(p, "transition_offset", K - 1, varying) if K > 1 else np.zeros((0, n))
        H = per_time(p, "observation_matrix", Ko, varying)
        R = per_time(p, "observation_cov", Ko, varying)
        d = per_time(p, "observation_offset", Ko, varying)
        m = H.shape[1]
        A = np.zeros((K * n, K * n))
        c = np.zeros(K * n)
        A[:n, :n] = np.eye(n)
        c[:n] = p["initial_mean"]
        for t in range(K - 1):
            cur, nxt = slice(t * n, (t + 1) * n), slice((t + 1) * n, (t + 2) * n)
            A[nxt] = F[t] @ A[cur]
            A[nxt, nxt] += np.eye(n)
            c[nxt] = F[t] @ c[cur] + b[t]
        W = scipy.linalg.block_diag(np.asarray(p["initial_cov"], float), *Q)
        Sxx = A @ W @ A.T
        Hb = scipy.linalg.block_diag(*H) if Ko else np.zeros((0, K * n))
        Hb = np.hstack([Hb, np.zeros((Ko * m, (K - Ko) * n))])
        Rb = scipy.linalg.block_diag(*R) if Ko else np.zeros((0, 0))
        Syx = Hb @ Sxx
        Syy = Hb @ Sxx @ Hb.T + Rb
        self.mean = np.concatenate([c, Hb @ c + d.reshape(-1)])
        self.cov = np.block([[Sxx, Syx.T], [Syx, Syy]])
        self.cov = 0.5 * (self.cov + self.cov.T)
        self.n, self.m, self.K, self.Ko = n, m, K, Ko

    def x(self, t):
        return np.arange(t * self.n, (t + 1) * self.n)

    def y(self, t):
        return self.K * self.n + t * self.m + np.arange(self.m)

    def observed(self, y, upto=None):
        """Indices and values of the observed entries of ``y`` at times ``< upto``."""
        y = np.asarray(y)
        upto = y.shape[0] if upto is None else upto
        pairs = [(t, i) for t in range(upto) for i in range(self.m) if not np.isnan(y[t, i])]
        idx = np.array([self.y(t)[i] for t, i in pairs], dtype=int)
        return idx, np.array([y[t, i] for t, i in pairs])

    def condition(self, target, obs_idx, obs_val):
        target = np.asarray(target)
        mu_t, S_tt = self.mean[target], self.cov[np.ix_(target, target)]
        if len(obs_idx) == 0:
            return mu_t, S_tt
        S_oo = self.cov[np.ix_(obs_idx, obs_idx)]
        S_to = self.cov[np.ix_(target, obs_idx)]
        gain = np.linalg.solve(S_oo, S_to.T).T
        return mu_t + gain @ (obs_val - self.mean[obs_idx]), S_tt - gain @ S_to.T

    def logpdf(self, obs_idx, obs_val):
        if len(obs_idx) == 0:
            return 0.0
        dist = scipy.stats.multivariate_normal(
            self.mean[obs_idx], self.cov[np.ix_(obs_idx, obs_idx)]
        )
        return float(dist.logpdf(obs_val))

    def draw(self, rs, size=None):
        w, v = np.linalg.eigh(self.cov)
        root = v * np.sqrt(np.clip(w, 0.0, None))
        shape = (() if size is None else tuple(np.atleast_1d(size))) + (self.mean.size,)
        z = rs.randn(*shape)
        return self.mean + z @ root.T


def assert_close(actual, expected, rtol=1e-8, err_msg=""):
    """Relative to the scale of ``expected`` (so near-zero entries do not dominate)."""
    expected = np.asarray(expected, dtype=float)
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=rtol * scale,
                               err_msg=err_msg)


def apply_mask(rs, y, patterns):
    """Blank entries of ``y`` (T, m): each row is 'full', 'missing' or 'partial'."""
    y = np.array(y, dtype=float)
    m = y.shape[1]
    for t, pattern in enumerate(patterns):
        if pattern == "missing":
            y[t] = np.nan
        elif pattern == "partial":
            k = rs.randint(1, m) if m > 1 else 0  # how many to blank: keep >= 1 observed
            y[t, rs.choice(m, size=k, replace=False)] = np.nan
    return y


@jax.jit
def _filter_smooth_loglik_jit(model, y):
    """The three public entry points traced together: one compilation per shape, and a check
    that they work under an outer ``jit`` (used by the property test to keep it fast)."""
    return kalman.filter(model, y), kalman.smooth(model, y), kalman.log_likelihood(model, y)


def check_against_dense(model, p, y, varying, rtol=1e-8, under_jit=False):
    """Filter, smoother and log-likelihood of ``model`` on ``y`` against dense conditioning."""
    T = y.shape[0]
    with jax.enable_x64(True):
        if under_jit:
            filt, smo, ll = _filter_smooth_loglik_jit(model, jnp.asarray(y))
        else:
            filt = kalman.filter(model, y)
            smo = kalman.smooth(model, y)
            ll = kalman.log_likelihood(model, y)
    filt, smo, ll = jax.tree_util.tree_map(np.asarray, (filt, smo, ll))
    # One extra state (x_T) for next_mean / next_cov; observations only up to T-1.
    joint = DenseJoint(p, T + 1, T, varying)

    obs_idx, obs_val = joint.observed(y)
    ll_dense = joint.logpdf(obs_idx, obs_val)
    assert filt.log_likelihood.dtype == np.float64
    assert_close(filt.log_likelihood, ll_dense, rtol, "log_likelihood")
    assert_close(ll, ll_dense, rtol, "kalman.log_likelihood")
    assert_close(smo.filtered.log_likelihood, ll_dense, rtol, "smooth().filtered.log_likelihood")

    cum = np.cumsum(filt.log_likelihood_terms)
    for t in range(T):
        i, v = joint.observed(y, upto=t + 1)
        assert_close(cum[t], joint.logpdf(i, v), rtol, f"cumulative log-lik terms at t={t}")
        if np.all(np.isnan(y[t])):
            assert filt.log_likelihood_terms[t] == 0.0

        # Prediction p(x_t | y_{<t}) and the one-step predictive of y_t (even if y_t is missing).
        i, v = joint.observed(y, upto=t)
        mean, cov = joint.condition(joint.x(t), i, v)
        assert_close(filt.predicted_mean[t], mean, rtol, f"predicted_mean t={t}")
        assert_close(filt.predicted_cov[t], cov, rtol, f"predicted_cov t={t}")
        mean, cov = joint.condition(joint.y(t), i, v)
        assert_close(filt.observation_mean[t], mean, rtol, f"observation_mean t={t}")
        assert_close(filt.observation_cov[t], cov, rtol, f"observation_cov t={t}")

        # Filtered p(x_t | y_{0:t}).
        i, v = joint.observed(y, upto=t + 1)
        mean, cov = joint.condition(joint.x(t), i, v)
        assert_close(filt.mean[t], mean, rtol, f"filtered mean t={t}")
        assert_close(filt.cov[t], cov, rtol, f"filtered cov t={t}")
        assert_close(smo.filtered.mean[t], mean, rtol, f"smooth().filtered.mean t={t}")

        # Smoothed p(x_t | all y).
        mean, cov = joint.condition(joint.x(t), obs_idx, obs_val)
        assert_close(smo.mean[t], mean, rtol, f"smoothed mean t={t}")
        assert_close(smo.cov[t], cov, rtol, f"smoothed cov t={t}")

    # Next state p(x_T | y_{0:T-1}).
    mean, cov = joint.condition(joint.x(T), obs_idx, obs_val)
    assert_close(filt.next_mean, mean, rtol, "next_mean")
    assert_close(filt.next_cov, cov, rtol, "next_cov")

    # Lag-one cross-covariances Cov(x_{t+1}, x_t | y).
    assert smo.lag_one_cov.shape == (T - 1, joint.n, joint.n)
    both = np.concatenate([joint.x(t) for t in range(T)])
    _, post = joint.condition(both, obs_idx, obs_val)
    n = joint.n
    for t in range(T - 1):
        cross = post[(t + 1) * n:(t + 2) * n, t * n:(t + 1) * n]
        assert_close(smo.lag_one_cov[t], cross, rtol, f"lag_one_cov t={t}")
    return filt, smo


# ------------------------------------------------------------------------------------------------
# 1. Property tests over random small models
# ------------------------------------------------------------------------------------------------
# The shapes the property test draws from: (n, m, T, fields with a time axis). Each new shape
# compiles the filter, smoother and log-likelihood (about a second); values, missing-data
# patterns and offsets are free. Eight shapes: n and m from 1 to 3, T from 1 to 6, every step
# field time-varying in three of them and constant in the others, none and all varying.
CASE_SHAPES = (
    (1, 1, 1, ()),
    (3, 3, 6, tuple(sorted(STEP_FIELDS))),
    (2, 3, 4, ("observation_matrix", "transition_cov")),
    (1, 2, 5, ("observation_cov", "observation_offset", "transition_matrix")),
    (3, 1, 3, ("observation_matrix", "transition_offset")),
    (2, 2, 2, ("observation_offset", "transition_cov", "transition_matrix")),
    (3, 2, 6, ()),
    (2, 1, 1, ("observation_cov", "transition_offset")),
)


@st.composite
def model_cases(draw):
    n, m, T, varying = draw(st.sampled_from(CASE_SHAPES))
    offsets = draw(st.booleans())
    patterns = tuple(draw(st.lists(
        st.sampled_from(["full", "full", "missing", "partial"]), min_size=T, max_size=T
    )))
    seed = draw(st.integers(0, 2**31 - 1))
    return n, m, T, varying, offsets, patterns, seed


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=model_cases())
@example(case=(1, 1, 1, (), False, ("missing",), 0))
@example(case=(3, 3, 6, tuple(sorted(STEP_FIELDS)), True, ("partial", "missing", "full", "partial", "missing",
                                              "partial"), 1))
@example(case=(2, 3, 4, ("observation_matrix", "transition_cov"), True,
               ("missing", "missing", "partial", "full"), 2))
def test_filter_smoother_match_dense_conditioning(case):
    n, m, T, varying, offsets, patterns, seed = case
    p = random_params(seed, n, m, T, varying, offsets)
    varying = [k for k in varying if k in p]
    rs = np.random.RandomState(seed + 1)
    joint = DenseJoint(p, T, T, varying)
    y = joint.draw(rs)[T * n:].reshape(T, m)
    y = apply_mask(rs, y, patterns)
    with jax.enable_x64(True):
        model = make_model(p, varying)
    check_against_dense(model, p, y, varying, under_jit=True)


# ------------------------------------------------------------------------------------------------
# 2. Singular transition covariance, correlated observation noise, partial missing rows
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("singular_prior", [False, True])
def test_singular_transition_cov_correlated_obs_noise(singular_prior):
    rs = np.random.RandomState(7)
    n, m, T = 3, 3, 8
    v = rs.randn(n, 1)
    p = dict(
        transition_matrix=np.array([[0.9, 0.2, 0.0], [0.0, 0.7, 0.3], [0.1, 0.0, 0.5]]),
        transition_cov=v @ v.T,  # rank one: PSD, not PD
        observation_matrix=rs.randn(m, n),
        observation_cov=np.array([[1.0, 0.6, -0.3], [0.6, 0.8, 0.2], [-0.3, 0.2, 0.5]]),
        initial_mean=rs.randn(n),
        initial_cov=(np.outer(v[:, 0], v[:, 0]) + np.diag([0.0, 0.0, 0.5])) if singular_prior
        else random_pd(rs, n),
        transition_offset=rs.randn(n),
        observation_offset=rs.randn(m),
    )
    assert np.linalg.matrix_rank(p["transition_cov"]) == 1
    assert np.all(np.linalg.eigvalsh(p["observation_cov"]) > 0)
    assert np.count_nonzero(p["observation_cov"] - np.diag(np.diag(p["observation_cov"]))) > 0
    joint = DenseJoint(p, T)
    y = joint.draw(rs)[T * n:].reshape(T, m)
    y = apply_mask(rs, y, ["partial", "full", "partial", "missing", "partial", "partial",
                           "full", "partial"])
    y[0] = [np.nan, 0.3, np.nan]
    y[2] = [1.0, np.nan, -0.5]
    with jax.enable_x64(True):
        model = kalman.LGSSM(**p)
    filt, smo = check_against_dense(model, p, y, ())
    # burn: log p(y_{2:T} | y_{0:2}) = log p(y) - log p(y_{0:2})
    joint = DenseJoint(p, T)
    with jax.enable_x64(True):
        ll_burn = kalman.log_likelihood(model, y, burn=2)
    expected = joint.logpdf(*joint.observed(y)) - joint.logpdf(*joint.observed(y, upto=2))
    assert_close(ll_burn, expected, 1e-8, "log_likelihood(burn=2)")
    assert np.all(np.linalg.eigvalsh(smo.cov) > -1e-12)
    assert np.all(np.linalg.eigvalsh(filt.cov) > -1e-12)


# ------------------------------------------------------------------------------------------------
# 3. Gradients of the log-likelihood
# ------------------------------------------------------------------------------------------------
GRAD_Y_T = 25


def _grad_model_params(theta):
    """(log q1, log q2, log r, F[0, 1], b[0]) -> LGSSM fields (NumPy or JAX arrays)."""
    xp = jnp if isinstance(theta, jax.Array) else np
    lq1, lq2, lr, f01, b0 = (theta[i] for i in range(5))
    F = xp.array([[0.7, 0.0], [-0.2, 0.5]]) + f01 * xp.array([[0.0, 1.0], [0.0, 0.0]])
    Q = xp.diag(xp.exp(xp.stack([lq1, lq2])))
    R = xp.exp(lr) * xp.array([[1.0, 0.4], [0.4, 2.0]])
    return dict(
        transition_matrix=F, transition_cov=Q,
        observation_matrix=xp.array([[1.0, 0.0], [0.5, 1.0]]), observation_cov=R,
        initial_mean=xp.array([0.2, -0.1]), initial_cov=xp.eye(2),
        transition_offset=xp.array([1.0, 0.0]) * b0, observation_offset=xp.array([0.3, -0.2]),
    )


def _central_difference(f, theta, h=1e-5):
    grad = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h * max(1.0, abs(theta[i]))
        grad[i] = (f(theta + e) - f(theta - e)) / (2 * e[i])
    return grad


def test_gradient_matches_finite_differences():
    """jax.grad (also under jit) of the log-likelihood w.r.t. log-variances, an entry of F and an
    offset, against central differences of the library and of the dense reference."""
    theta0 = np.array([np.log(0.3), np.log(0.1), np.log(0.5), 0.25, 0.4])
    rs = np.random.RandomState(3)
    p0 = _grad_model_params(theta0)
    joint = DenseJoint(p0, GRAD_Y_T)
    y = joint.draw(rs)[GRAD_Y_T * 2:].reshape(GRAD_Y_T, 2)
    y = apply_mask(rs, y, rs.choice(["full", "full", "missing", "partial"], size=GRAD_Y_T))

    with jax.enable_x64(True):
        y_j = jnp.asarray(y)

        def loglik(theta):
            return kalman.log_likelihood(kalman.LGSSM(**_grad_model_params(theta)), y_j)

        value, grad = jax.jit(jax.value_and_grad(loglik))(jnp.asarray(theta0))
        fd = _central_difference(lambda th: float(loglik(jnp.asarray(th))), theta0)

    def dense_loglik(theta):
        joint = DenseJoint(_grad_model_params(theta), GRAD_Y_T)
        return joint.logpdf(*joint.observed(y))

    fd_dense = _central_difference(dense_loglik, theta0)
    assert_close(value, dense_loglik(theta0), 1e-8)
    scale = np.max(np.abs(fd_dense))
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_allclose(grad, fd_dense, rtol=1e-6, atol=1e-6 * scale)


def test_gradient_exact_diffuse_matches_statsmodels_finite_differences():
    """Gradient through the exact diffuse branch (local linear trend, one missing value) against
    central differences of statsmodels' exact diffuse log-likelihood."""
    sm = pytest.importorskip("statsmodels.api")
    rs = np.random.RandomState(12)
    T = 20
    y = np.cumsum(np.cumsum(0.3 * rs.randn(T))) + rs.randn(T)
    y[5] = np.nan
    mod = sm.tsa.UnobservedComponents(y, "lltrend", use_exact_diffuse=True)
    assert mod.param_names == ["sigma2.irregular", "sigma2.level", "sigma2.trend"]
    theta0 = np.log(np.array([0.8, 0.3, 0.05]))  # log-variances in statsmodels' order

    with jax.enable_x64(True):
        def loglik(theta):
            s = jnp.exp(theta)
            model = kalman.LGSSM(
                jnp.array([[1.0, 1.0], [0.0, 1.0]]), jnp.diag(s[1:]), jnp.array([[1.0, 0.0]]),
                s[:1].reshape(1, 1), jnp.zeros(2), jnp.zeros((2, 2)),
                initial_diffuse_cov=jnp.eye(2),
            )
            return kalman.log_likelihood(model, y[:, None])

        value, grad = jax.jit(jax.value_and_grad(loglik))(jnp.asarray(theta0))
    fd = _central_difference(lambda th: mod.loglike(np.exp(th)), theta0)
    assert_close(value, mod.loglike(np.exp(theta0)), 1e-8)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(fd)))


# ------------------------------------------------------------------------------------------------
# 4. Batching: batched models, batched data, vmap
# ------------------------------------------------------------------------------------------------
def _assert_tree_close(actual, expected, rtol=1e-10):
    for name, a, e in zip(expected._fields, actual, expected):
        if isinstance(e, tuple):
            _assert_tree_close(a, e, rtol)
        else:
            assert_close(a, e, rtol, name)


def _batch_case(B=3, T=5, n=2, m=2, seed=11):
    rs = np.random.RandomState(seed)
    p = random_params(seed, n, m, T, varying=("observation_offset",))
    Fs = np.stack([0.8 * rs.randn(n, n) / np.sqrt(n) for _ in range(B)])
    Y = rs.randn(B, T, m)
    Y[0, 1] = np.nan
    Y[1, 2, 0] = np.nan
    Y[2, 0, 1] = np.nan
    return p, Fs, Y


def test_batched_model_and_data_equal_loop():
    p, Fs, Y = _batch_case()
    B = Fs.shape[0]
    with jax.enable_x64(True):
        tv = ("observation_offset",)
        batched = kalman.LGSSM(**{**p, "transition_matrix": Fs}, time_varying=tv)
        assert batched.batch_shape == (B,)
        out = kalman.filter(batched, Y)
        out_s = kalman.smooth(batched, Y)
        assert out.mean.shape == (B, Y.shape[1], 2)
        for b in range(B):
            single = kalman.LGSSM(**{**p, "transition_matrix": Fs[b]}, time_varying=tv)
            ref = kalman.filter(single, Y[b])
            _assert_tree_close(jax.tree_util.tree_map(lambda a: a[b], out), ref)
            ref_s = kalman.smooth(single, Y[b])
            _assert_tree_close(jax.tree_util.tree_map(lambda a: a[b], out_s), ref_s)
            # and against the dense reference for one member
            if b == 0:
                check_against_dense(single, {**p, "transition_matrix": Fs[b]}, Y[b], tv)


def test_batched_time_varying_model_and_2d_broadcast():
    """F of shape (B1, 1, T, n, n) (time-varying, batch (B1, 1)) against y of shape (B2, T, m)."""
    p, _, Y = _batch_case()
    rs = np.random.RandomState(5)
    B1, B2, T, n = 2, Y.shape[0], Y.shape[1], 2
    Fs = 0.5 * rs.randn(B1, 1, T, n, n)
    tv = ("observation_offset", "transition_matrix")
    with jax.enable_x64(True):
        model = kalman.LGSSM(**{**p, "transition_matrix": Fs}, time_varying=tv)
        assert model.batch_shape == (B1, 1)
        out = kalman.filter(model, Y)
        assert out.log_likelihood.shape == (B1, B2)
        for i in range(B1):
            single = kalman.LGSSM(**{**p, "transition_matrix": Fs[i, 0]}, time_varying=tv)
            for j in range(B2):
                ref = kalman.filter(single, Y[j])
                _assert_tree_close(jax.tree_util.tree_map(lambda a: a[i, j], out), ref)


def test_vmap_and_data_broadcast_equal_loop():
    p, Fs, Y = _batch_case()
    tv = ("observation_offset",)
    with jax.enable_x64(True):
        model = make_model(p, tv)
        loop = [kalman.filter(model, Y[b]) for b in range(Y.shape[0])]
        # y batch with an unbatched model broadcasts
        out = kalman.filter(model, Y)
        # jax.vmap over the data
        out_vmap = jax.vmap(lambda yy: kalman.filter(model, yy))(jnp.asarray(Y))
        for b, ref in enumerate(loop):
            _assert_tree_close(jax.tree_util.tree_map(lambda a: a[b], out), ref)
            _assert_tree_close(jax.tree_util.tree_map(lambda a: a[b], out_vmap), ref)
        # jax.vmap over a model parameter
        lls = jax.vmap(
            lambda F: kalman.log_likelihood(make_model({**p, "transition_matrix": F}, tv), Y[0])
        )(jnp.asarray(Fs))
        for b in range(Fs.shape[0]):
            ref = kalman.log_likelihood(make_model({**p, "transition_matrix": Fs[b]}, tv), Y[0])
            assert_close(lls[b], ref, 1e-10)


# ------------------------------------------------------------------------------------------------
# 5. float32 on a long series
# ------------------------------------------------------------------------------------------------
def test_float32_long_series_stays_accurate():
    # Observed (JAX 0.10.2, CPU): log-lik f64 = -182139.05, |ll32 - ll64| / |ll64| = 1.9e-8,
    # max |filtered mean f32 - f64| = 3.4e-7 (printed with ``pytest -s``).
    T = 100_000
    F = np.array([[0.9, 0.1], [0.0, 0.8]])
    Q = np.diag([0.1, 0.05])
    H = np.array([[1.0, 0.0], [0.5, 1.0]])
    R = np.array([[0.2, 0.05], [0.05, 0.3]])
    m0, P0 = np.zeros(2), np.eye(2)
    rs = np.random.RandomState(0)
    eta = rs.randn(T, 2) @ np.linalg.cholesky(Q).T
    eps = rs.randn(T, 2) @ np.linalg.cholesky(R).T
    x = np.empty((T, 2))
    x[0] = m0 + rs.randn(2)
    for t in range(T - 1):
        x[t + 1] = F @ x[t] + eta[t]
    y = x @ H.T + eps
    y[rs.rand(T) < 0.02] = np.nan
    y[rs.rand(T) < 0.02, 1] = np.nan

    with jax.enable_x64(True):
        f64 = kalman.filter(kalman.LGSSM(F, Q, H, R, m0, P0), y)
        ll64, mean64 = float(f64.log_likelihood), np.asarray(f64.mean)
    f32 = kalman.filter(
        kalman.LGSSM(*(np.asarray(a, np.float32) for a in (F, Q, H, R, m0, P0))),
        y.astype(np.float32),
    )
    assert f32.mean.dtype == jnp.float32 and f32.log_likelihood.dtype == jnp.float32
    for name, value in zip(f32._fields, f32):
        assert np.all(np.isfinite(np.asarray(value))), name
    ll32 = float(f32.log_likelihood)
    rel = abs(ll32 - ll64) / abs(ll64)
    max_mean = float(np.max(np.abs(np.asarray(f32.mean) - mean64)))
    print(f"float32: ll32={ll32:.8g} ll64={ll64:.8g} rel={rel:.3g} max|dmean|={max_mean:.3g}")
    assert rel < 1e-3
    assert max_mean < 1e-2


# ------------------------------------------------------------------------------------------------
# 6. Sampling and forecasting
# ------------------------------------------------------------------------------------------------
def test_sample_moments_match_dense_joint():
    n, m, T, N = 2, 2, 3, 20_000
    varying = ("observation_matrix", "transition_offset")
    p = random_params(21, n, m, T, varying)
    joint = DenseJoint(p, T, T, varying)
    with jax.enable_x64(True):
        states, obs = kalman.sample(make_model(p, varying), jax.random.key(0), T,
                                    sample_shape=(N // 4, 4))
        states, obs = np.asarray(states), np.asarray(obs)
    assert states.shape == (N // 4, 4, T, n) and obs.shape == (N // 4, 4, T, m)
    assert states.dtype == np.float64
    z = np.concatenate([states.reshape(N, T * n), obs.reshape(N, T * m)], axis=1)
    sd = np.sqrt(np.diag(joint.cov))
    mean_err = (z.mean(0) - joint.mean) / (sd / np.sqrt(N))
    print(f"sample: max |z| mean {np.max(np.abs(mean_err)):.2f}")
    assert np.max(np.abs(mean_err)) < 5, np.max(np.abs(mean_err))
    emp_cov = np.cov(z, rowvar=False)
    se_cov = np.sqrt((np.outer(sd**2, sd**2) + joint.cov**2) / N)
    cov_err = (emp_cov - joint.cov) / se_cov
    print(f"sample: max |z| cov {np.max(np.abs(cov_err)):.2f}")
    assert np.max(np.abs(cov_err)) < 5, np.max(np.abs(cov_err))


@functools.cache
def _jitted_psd_sqrt():
    from probssm.kalman._linalg import psd_sqrt

    return jax.jit(psd_sqrt)


@given(k=st.integers(1, 6), rank=st.integers(0, 6), seed=st.integers(0, 2**31 - 1))
@settings(max_examples=40, deadline=None)
def test_psd_square_root_of_any_rank(k, rank, seed):
    """The sampling square root: ``S S^T = a`` for symmetric PSD ``a`` of any rank (zero, singular,
    full) and batch axes, with ``S`` finite; it uses no LAPACK call (a batched ``eigh`` hung
    XLA's CPU thread pool under ``vmap``)."""
    rng = np.random.default_rng(seed)
    b = rng.normal(size=(3, k, min(rank, k))) * rng.uniform(0.1, 10.0)
    a = b @ np.swapaxes(b, -1, -2)
    with jax.enable_x64(True):
        # One jitted program a shape (k), reused by the examples that share it.
        compiled = _jitted_psd_sqrt()
        S = np.asarray(compiled(jnp.asarray(a)))
        lowered = str(compiled.lower(jnp.asarray(a)).as_text())
    assert np.all(np.isfinite(S)) and S.shape == a.shape
    scale = max(np.max(np.abs(a)), 1e-300)
    np.testing.assert_allclose(S @ np.swapaxes(S, -1, -2), a, atol=1e-11 * scale, rtol=0)
    assert "custom_call" not in lowered


@pytest.mark.parametrize("varying", [(), ("transition_matrix", "observation_matrix",
                                          "transition_offset", "observation_cov")])
def test_forecast_matches_dense_conditional(varying):
    n, m, T, h = 2, 2, 6, 4
    p = random_params(31, n, m, T + h, varying)
    joint = DenseJoint(p, T + h, T + h, varying)
    rs = np.random.RandomState(4)
    y = joint.draw(rs)[(T + h) * n:].reshape(T + h, m)[:T]
    y = apply_mask(rs, y, ["full", "partial", "missing", "full", "partial", "full"])

    # The filter sees steps 0..T-1; the forecast model holds, at index k, the transition into
    # x_{T+k} (global F_{T-1+k}) and the observation model at T+k.
    def window(sl_trans, sl_obs):
        q = dict(p)
        for k in varying:
            q[k] = p[k][sl_trans if k.startswith("transition") else sl_obs]
        return q

    with jax.enable_x64(True):
        model = make_model(window(slice(0, T), slice(0, T)), varying)
        fmodel = make_model(window(slice(T - 1, T - 1 + h), slice(T, T + h)), varying)
        filt = kalman.filter(model, y)
        fc = kalman.forecast(fmodel, filt, h)
        fc2 = kalman.forecast(fmodel, filt.final_state, h)
    fc = jax.tree_util.tree_map(np.asarray, fc)
    _assert_tree_close(jax.tree_util.tree_map(np.asarray, fc2), fc, 1e-12)
    assert fc.state_mean.shape == (h, n) and fc.observation_cov.shape == (h, m, m)

    i, v = joint.observed(np.vstack([y, np.full((h, m), np.nan)]))
    for k in range(h):
        mean, cov = joint.condition(joint.x(T + k), i, v)
        assert_close(fc.state_mean[k], mean, 1e-8, f"forecast state mean k={k}")
        assert_close(fc.state_cov[k], cov, 1e-8, f"forecast state cov k={k}")
        mean, cov = joint.condition(joint.y(T + k), i, v)
        assert_close(fc.observation_mean[k], mean, 1e-8, f"forecast obs mean k={k}")
        assert_close(fc.observation_cov[k], cov, 1e-8, f"forecast obs cov k={k}")
    # The whole forecast block (joint over horizons) is not returned; its diagonal blocks are.
    assert_close(fc.state_mean[0], np.asarray(filt.next_mean), 1e-12)


# ------------------------------------------------------------------------------------------------
# 7. Exact diffuse initialisation against statsmodels
# ------------------------------------------------------------------------------------------------
def test_exact_diffuse_local_linear_trend_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    rs = np.random.RandomState(8)
    T = 15
    y = np.cumsum(np.cumsum(0.3 * rs.randn(T))) + rs.randn(T)
    y[4] = np.nan
    params = {"sigma2.irregular": 0.8, "sigma2.level": 0.3, "sigma2.trend": 0.05}

    mod = sm.tsa.UnobservedComponents(y, "lltrend", use_exact_diffuse=True)
    sm_params = np.array([params[name] for name in mod.param_names])
    res = mod.smooth(sm_params)
    with jax.enable_x64(True):
        model = kalman.LGSSM(
            transition_matrix=np.array([[1.0, 1.0], [0.0, 1.0]]),
            transition_cov=np.diag([params["sigma2.level"], params["sigma2.trend"]]),
            observation_matrix=np.array([[1.0, 0.0]]),
            observation_cov=np.array([[params["sigma2.irregular"]]]),
            initial_mean=np.zeros(2),
            initial_cov=np.zeros((2, 2)),
            initial_diffuse_cov=np.eye(2),
        )
        out = kalman.smooth(model, y[:, None])
    assert_close(out.log_likelihood, mod.loglike(sm_params), 1e-8, "exact diffuse loglik")
    assert_close(out.log_likelihood, res.llf, 1e-8)
    assert_close(out.filtered.log_likelihood_terms, res.llf_obs, 1e-8, "loglik terms")
    assert_close(out.filtered.mean, res.filtered_state.T, 1e-8, "filtered state")
    # During the diffuse period both report the finite part P_* of the filtered covariance.
    assert_close(out.filtered.cov, np.moveaxis(res.filtered_state_cov, -1, 0), 1e-8,
                 "filtered cov")
    assert_close(out.filtered.predicted_cov, np.moveaxis(res.predicted_state_cov, -1, 0)[:-1],
                 1e-8, "predicted cov")
    assert_close(out.filtered.predicted_diffuse_cov,
                 np.moveaxis(res.predicted_diffuse_state_cov, -1, 0)[:-1], 1e-8, "P_inf")
    assert_close(out.mean, res.smoothed_state.T, 1e-8, "smoothed state")
    assert_close(out.cov, np.moveaxis(res.smoothed_state_cov, -1, 0), 1e-8, "smoothed cov")


@pytest.mark.filterwarnings("ignore:The univariate filtering approach diagonalized")
@pytest.mark.parametrize("mixed", [False, True], ids=["all-diffuse", "mixed-diffuse"])
def test_exact_diffuse_bivariate_partial_missing_matches_statsmodels(mixed):
    """Correlated bivariate observations with partial NaNs: MLEModel with the matrices set by hand.

    ``mixed``: level and slope diffuse, a stationary AR(1) component with a proper prior;
    otherwise every state is diffuse (``mod.ssm.initialize_diffuse()``).
    """
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.tsa.statespace.initialization import Initialization

    rs = np.random.RandomState(9)
    T, n, m = 12, 3, 2
    F = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.6]])
    Q = np.diag([0.2, 0.05, 0.5])
    H = np.array([[1.0, 0.0, 1.0], [0.5, 1.0, -1.0]])
    R = np.array([[0.6, 0.2], [0.2, 0.4]])
    y = rs.randn(T, m).cumsum(0)
    y[0, 1] = np.nan
    y[1] = np.nan
    y[2, 0] = np.nan
    y[6, 1] = np.nan

    mod = sm.tsa.statespace.MLEModel(y, k_states=n)
    mod.ssm["design"] = H
    mod.ssm["obs_cov"] = R
    mod.ssm["transition"] = F
    mod.ssm["selection"] = np.eye(n)
    mod.ssm["state_cov"] = Q
    if mixed:
        P_inf = np.diag([1.0, 1.0, 0.0])
        P_star = np.diag([0.0, 0.0, 0.5 / (1 - 0.36)])
        init = Initialization(n)
        init.set((0, 2), "diffuse")
        init.set((2, 3), "known", constant=[0.0], stationary_cov=P_star[2:, 2:])
        mod.ssm.initialize(init)
    else:
        P_inf, P_star = np.eye(n), np.zeros((n, n))
        mod.ssm.initialize_diffuse()
    res = mod.ssm.smooth()
    with jax.enable_x64(True):
        model = kalman.LGSSM(F, Q, H, R, np.zeros(n), P_star, initial_diffuse_cov=P_inf)
        out = kalman.smooth(model, y)
    assert_close(out.log_likelihood, res.llf, 1e-8, "exact diffuse loglik")
    assert_close(out.filtered.log_likelihood_terms, res.llf_obs, 1e-8, "loglik terms")
    assert_close(out.filtered.mean, res.filtered_state.T, 1e-8, "filtered state")
    # During the diffuse period both report the finite part P_* of the filtered covariance.
    assert_close(out.filtered.cov, np.moveaxis(res.filtered_state_cov, -1, 0), 1e-8,
                 "filtered cov")
    assert_close(out.filtered.predicted_cov, np.moveaxis(res.predicted_state_cov, -1, 0)[:-1],
                 1e-8, "predicted cov")
    assert_close(out.filtered.predicted_diffuse_cov,
                 np.moveaxis(res.predicted_diffuse_state_cov, -1, 0)[:-1], 1e-8, "P_inf")
    assert_close(out.mean, res.smoothed_state.T, 1e-8, "smoothed state")
    assert_close(out.cov, np.moveaxis(res.smoothed_state_cov, -1, 0), 1e-8, "smoothed cov")
