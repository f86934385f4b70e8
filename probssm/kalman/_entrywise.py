r"""Dense algebra of small matrices written entry by entry: Cholesky factors, triangular solves
and the triangularisation ``tria``, as elementwise operations over leading (batch, time) axes.

Why: the matrices of a state-space model are tiny. On a CPU each LAPACK call (``potrf``,
``geqrf``, ``trsm``) costs a fixed overhead that dwarfs its arithmetic at ``n <= 4`` (a
sequential nonlinear filter step made seven of them); on a GPU a million tiny matrices become
batched solver-library calls (and their transposes under autodiff). Elementwise operations fuse
with their neighbours instead. The unrolled code grows as :math:`k^3` operations, so
:mod:`probssm.kalman._linalg` uses it up to :data:`UNROLL_MAX_DIM` only.

Factors are returned either as arrays ``(..., k, k)`` or, where the caller goes on entry by entry,
as a ``k x k`` list of lists of ``(...)`` arrays (``None`` above the diagonal).
"""

from __future__ import annotations

import jax.numpy as jnp

UNROLL_MAX_DIM = 4
"""Largest matrix dimension that :mod:`probssm.kalman._linalg` factorises entry by entry."""


def cholesky_entries(a):
    r"""Lower Cholesky factor of symmetric positive definite ``a`` ``(..., k, k)`` (its lower
    triangle read) as a list of lists of entries: :math:`L_{jj} = \sqrt{a_{jj} - \sum_{p<j}
    L_{jp}^2}`, :math:`L_{ij} = (a_{ij} - \sum_{p<j} L_{ip} L_{jp}) / L_{jj}`. A matrix that is
    not positive definite gives NaN entries, as ``jnp.linalg.cholesky`` does."""
    k = a.shape[-1]
    L = [[None] * k for _ in range(k)]
    for j in range(k):
        d = a[..., j, j]
        for p in range(j):
            d = d - L[j][p] * L[j][p]
        L[j][j] = jnp.sqrt(d)
        for i in range(j + 1, k):
            s = a[..., i, j]
            for p in range(j):
                s = s - L[i][p] * L[j][p]
            L[i][j] = s / L[j][j]
    return L


def lower_from_entries(L):
    """The ``(..., k, k)`` lower-triangular array of a list-of-lists factor."""
    k = len(L)
    zero = jnp.zeros_like(L[0][0])
    return jnp.stack([jnp.stack([L[i][j] if j <= i else zero for j in range(k)], axis=-1)
                      for i in range(k)], axis=-2)


def cho_solve_entries(L, b):
    r""":math:`(L L^T)^{-1} b` for a list-of-lists factor ``L`` (:func:`cholesky_entries`) and
    ``b`` ``(..., k, c)``: forward then back substitution, row by row."""
    k = len(L)
    z = []
    for i in range(k):
        r = b[..., i, :]
        for p in range(i):
            r = r - L[i][p][..., None] * z[p]
        z.append(r / L[i][i][..., None])
    x = [None] * k
    for i in reversed(range(k)):
        r = z[i]
        for p in range(i + 1, k):
            r = r - L[p][i][..., None] * x[p]
        x[i] = r / L[i][i][..., None]
    return jnp.stack(x, axis=-2)


def solve_lower(L, b):
    r""":math:`L^{-1} b` for lower-triangular ``L`` ``(..., k, k)`` and ``b`` ``(..., k, c)``
    (forward substitution)."""
    k = L.shape[-1]
    x = []
    for i in range(k):
        r = b[..., i, :]
        for p in range(i):
            r = r - L[..., i, p:p + 1] * x[p]
        x.append(r / L[..., i, i:i + 1])
    return jnp.stack(x, axis=-2)


def solve_lower_transposed(L, b):
    r""":math:`L^{-T} b` for lower-triangular ``L`` ``(..., k, k)`` and ``b`` ``(..., k, c)``
    (back substitution with the rows of :math:`L^T`, the columns of ``L``)."""
    k = L.shape[-1]
    x = [None] * k
    for i in reversed(range(k)):
        r = b[..., i, :]
        for p in range(i + 1, k):
            r = r - L[..., p, i:i + 1] * x[p]
        x[i] = r / L[..., i, i:i + 1]
    return jnp.stack(x, axis=-2)


def tria(a):
    r"""Lower-triangular ``L`` ``(..., n, n)`` with :math:`L L^T = a a^T` for ``a``
    ``(..., n, k)``, by modified Gram-Schmidt on the rows of ``a``:

    .. math::

        r_i = a_i - \sum_{j<i} L_{ij} q_j \ \text{(projections taken one at a time)}, \quad
        L_{ij} = \langle r_i^{(j)}, q_j \rangle, \quad L_{ii} = \lVert r_i \rVert, \quad
        q_i = r_i / L_{ii}.

    The triangular factor of modified Gram-Schmidt is as accurate as that of a Householder QR
    (it is Householder QR of ``[0; a^T]`` in exact correspondence, Björck & Paige 1992); only
    the orthogonality of the ``q_i``, which is not used, is lost with the conditioning. A row in
    the span of the earlier ones (a rank-deficient ``a``: a state known exactly, a decoupled
    missing observation) leaves an exactly zero residual: its pivot is 0 and its ``q_i`` is
    zero, with finite gradients. Diagonal entries are non-negative."""
    n = a.shape[-2]
    q, L = [], [[None] * n for _ in range(n)]
    for i in range(n):
        r = a[..., i, :]
        for j in range(i):
            L[i][j] = jnp.sum(r * q[j], axis=-1)
            r = r - L[i][j][..., None] * q[j]
        norm2 = jnp.sum(r * r, axis=-1)
        nonzero = norm2 > 0
        norm = jnp.sqrt(jnp.where(nonzero, norm2, 1.0))
        L[i][i] = jnp.where(nonzero, norm, 0.0)
        q.append(jnp.where(nonzero[..., None], r / norm[..., None], 0.0))
    return lower_from_entries(L)
