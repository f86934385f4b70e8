"""The covariance a kernel's state-space form implies, for comparison with its closed form."""

import jax
import numpy as np


def implied_covariance(kernel, t) -> np.ndarray:
    """:math:`\\mathrm{Cov}[f(t_i), f(t_j)] = H A(t_i \\leftarrow t_j) P(t_j) H^T` for
    :math:`t_j \\le t_i`, from the kernel's ``marginal_cov``, ``transition`` and
    ``measurement``; ``t`` is sorted internally, the result is in the caller's order.
    ``(T, T)``, float64."""
    with jax.enable_x64(True):
        t = np.asarray(t, dtype=np.float64)
        order = np.argsort(t, kind="stable")
        ts = t[order]
        H = np.asarray(kernel.measurement())
        T = len(ts)
        out = np.zeros((T, T))
        transitions = [np.asarray(kernel.transition(ts[k], ts[k + 1] - ts[k])[0]) for k in range(T - 1)]
        for i in range(T):
            cross = np.asarray(kernel.marginal_cov(ts[i]))  # Cov[x(t_j), x(t_i)] for j = i
            out[i, i] = H @ cross @ H
            for j in range(i + 1, T):
                cross = transitions[j - 1] @ cross
                out[i, j] = out[j, i] = H @ cross @ H
        inverse = np.empty(T, dtype=int)
        inverse[order] = np.arange(T)
        return out[np.ix_(inverse, inverse)]


def implied_noise(kernel, t) -> np.ndarray:
    """The process noise covariances :math:`Q(t_k, t_{k+1} - t_k)` on sorted ``t``, checked to
    be symmetric; ``(T - 1, n, n)``."""
    with jax.enable_x64(True):
        ts = np.sort(np.asarray(t, dtype=np.float64))
        return np.stack([np.asarray(kernel.transition(ts[k], ts[k + 1] - ts[k])[1])
                         for k in range(len(ts) - 1)])
