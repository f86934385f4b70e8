"""Dense GP algebra (Cholesky on the full covariance): the reference the state-space results
are compared against."""

import numpy as np
from scipy import linalg


def _parts(kernel, t, y, noise):
    observed = ~np.isnan(y)
    K = np.asarray(kernel(t), dtype=np.float64) + np.diag(np.broadcast_to(noise, t.shape))
    return observed, K[np.ix_(observed, observed)], y[observed]


def log_marginal_likelihood(kernel, t, y, noise):
    observed, K, yo = _parts(kernel, t, y, noise)
    L = linalg.cholesky(K, lower=True)
    alpha = linalg.cho_solve((L, True), yo)
    return -0.5 * yo @ alpha - np.log(np.diag(L)).sum() - 0.5 * yo.size * np.log(2 * np.pi)


def posterior(kernel, t, y, t_new, noise):
    """Mean ``(T*,)`` and covariance ``(T*, T*)`` of f(t_new) given y."""
    observed, K, yo = _parts(kernel, t, y, noise)
    cross = np.asarray(kernel.evaluate(np.asarray(t_new)[:, None], t[observed][None, :]))
    prior = np.asarray(kernel.evaluate(np.asarray(t_new)[:, None], np.asarray(t_new)[None, :]))
    factor = linalg.cho_factor(K, lower=True)
    mean = cross @ linalg.cho_solve(factor, yo)
    cov = prior - cross @ linalg.cho_solve(factor, cross.T)
    return mean, cov


def laplace(kernel, t, y, gradient_curvature, log_prob, iterations=100, start=None):
    """Newton's method on log p(y | f) + log N(f; 0, K) (Rasmussen & Williams, algorithm 3.1)
    from ``start`` (default 0), and the Laplace log marginal likelihood (their eq. 3.32):
    ``(mode, log q(y))``."""
    K = np.asarray(kernel(t), dtype=np.float64)
    f = np.zeros(len(t)) if start is None else np.asarray(start, dtype=np.float64)
    for _ in range(iterations):
        g, W = gradient_curvature(y, f)
        sw = np.sqrt(W)
        B = np.eye(len(t)) + sw[:, None] * K * sw[None, :]
        L = linalg.cholesky(B, lower=True)
        b = W * f + g
        a = b - sw * linalg.cho_solve((L, True), sw * (K @ b))
        f_new = K @ a
        if np.max(np.abs(f_new - f)) < 1e-13:
            f = f_new
            break
        f = f_new
    g, W = gradient_curvature(y, f)
    sw = np.sqrt(W)
    L = linalg.cholesky(np.eye(len(t)) + sw[:, None] * K * sw[None, :], lower=True)
    a = np.linalg.solve(K, f)
    return f, -0.5 * a @ f + np.sum(log_prob(y, f)) - np.log(np.diag(L)).sum()
