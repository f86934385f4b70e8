"""The element algebras' row loops (probssm.kalman.ops.scan_elements, above
``lane_algebra.LOOP_ROWS``) against their unrolled forms."""

import jax
import jax.numpy as jnp
import numpy as np
from kalman.ops.arrays import psd

from probssm.kalman.ops import lane_algebra, scan_elements


def _lanes(a):
    """An array as nested lists of one-lane vectors (lane_algebra's layout)."""
    a = jnp.asarray(a)
    if a.ndim == 1:
        return [x[None] for x in a]
    return [_lanes(row) for row in a]


def test_looped_split_and_solve_equal_the_unrolled_ones():
    """Above ``LOOP_ROWS``: the LDL split fused with the absorption (rank-deficient ``J``) and
    the Gauss-Jordan solve against the unrolled split and Cholesky solves (and finite for a
    singular matrix)."""
    ka, el = lane_algebra, scan_elements
    rng = np.random.default_rng(5)
    n = 8
    with jax.enable_x64(True):
        G, W = rng.normal(size=(n, 3)), rng.normal(size=(n, n))
        J, C, M = _lanes(G @ G.T), _lanes(W @ W.T), _lanes(W[:, :3] @ W[:, :3].T)
        eta, mean = _lanes(rng.normal(size=n)), _lanes(rng.normal(size=n))
        affine = (_lanes(rng.normal(size=(n, n))), _lanes(rng.normal(size=n)), _lanes(np.eye(n)))
        eps = float(jnp.finfo(jnp.float64).eps)
        unrolled = el._absorb(el._information_rows(J, eta, eps), mean, C, affine)
        looped = el._split_and_absorb(J, eta, eps, mean, C, affine)
        for a, b in zip(jax.tree.leaves(unrolled), jax.tree.leaves(looped)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
        B = _lanes(rng.normal(size=(n, n)))
        assert np.all(np.isfinite(jax.tree.leaves(ka.solve_psd(M, B, eps))))
        M = _lanes(psd(rng, (), n))
        L = ka.cholesky(M, eps)
        by_cholesky = ka.solve_upper(ka.transpose(L), ka.solve_lower(L, B))
        for a, b in zip(jax.tree.leaves(by_cholesky), jax.tree.leaves(ka.solve_psd(M, B, eps))):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
