"""The element algebras of the chunk scan (:mod:`.chunk_scan`) on lane vectors
(:mod:`.lane_algebra`), each a ``combine`` of an earlier and a later element and an ``apply`` of
an element to a state, in scan order, with its field shapes (:class:`Algebra`):


* **Filtering elements** :math:`(A, b, C, \\eta, J)`: :math:`p(x_k \\mid x_j, y_{j+1:k}) =
  N(A x_j + b, C)`, :math:`p(y_{j+1:k} \\mid x_j) \\propto N_I(x_j; \\eta, J)` (Särkkä &
  García-Fernández 2021). Combining an earlier ``i`` with a later ``j`` conditions ``i``'s end
  state on ``j``'s likelihood and carries it through ``j``'s transition: with
  :math:`J_j = L\\,\\mathrm{diag}(d)\\,L^T` the likelihood is a product of ``n`` scalar
  factors, absorbed one at a time by rank-one updates (:func:`_absorb`,
  :func:`_split_and_absorb`; one division by
  :math:`1 + d_l h_l^T C h_l \\ge 1` each, no Cholesky factor, no square root), then
  :math:`A = A_j A_i'`, :math:`b = A_j b_i' + b_j`, :math:`C = A_j C_i' A_j^T + C_j` while
  :math:`\\eta_i, J_i` gather the factors' likelihood of the start state. This equals the
  matrix form :math:`A = A_j (I + C_i J_j)^{-1} A_i`, ... of :mod:`probssm.kalman.parallel`.
  Applied to a filtered state :math:`N(m, P)` the same absorption gives the state at the
  element's end.
* **Backward (smoothing) elements** :math:`(E, g, L)`: :math:`p(x_j \\mid x_k, y_{0:j'}) =
  N(E x_k + g, L)`; composition and application are affine: :math:`(E_j E_i, E_j g_i + g_j,
  E_j L_i E_j^T + L_j)` and :math:`(E m + g, E P E^T + L)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

from .lane_algebra import (
    LOOP_ROWS, by_rows, cholesky, congruence, const, dot, eye, from_upper, gram_with, matmul,
    matvec, minus_dot, pack, plus, recip, solve_lower, solve_psd, solve_upper, sym, symmetric,
    transpose, trips, unpack, upper, where, zeros,
)


@dataclass(frozen=True)
class Algebra:
    """An element algebra: field shapes (``(n,)`` vectors, ``(n, n)`` matrices,
    :func:`~probssm.kalman.ops.lane_algebra.symmetric` matrices) of elements and states, the two
    operations on lists of lane vectors, and the identity element (first field the identity
    matrix, the others zero): combined after an element or applied to a state it leaves it
    unchanged exactly (every product with it is a sum of products with exact zeros and ones,
    and no factor of its zero likelihood is absorbed)."""

    element_shapes: tuple
    state_shapes: tuple
    combine: Callable
    apply: Callable


def filter_algebra(n):
    """Filtering elements :math:`(A, b, C, \\eta, J)` on filtered states :math:`(m, P)`."""
    mat, vec, sym = (n, n), (n,), symmetric(n)
    return Algebra((mat, vec, sym, vec, sym), (vec, sym), filter_combine, filter_apply)


def backward_algebra(n):
    """Backward elements :math:`(E, g, L)` on smoothed states :math:`(m, P)`."""
    mat, vec, sym = (n, n), (n,), symmetric(n)
    return Algebra((mat, vec, sym), (vec, sym), backward_combine, backward_apply)


def identity(alg, like):
    """The identity element of ``alg`` (:class:`Algebra`) with entries shaped like ``like``."""
    zero = jnp.zeros_like(like)

    def field(shape):
        if len(shape) == 1:
            return [zero] * shape[0]
        return zeros(*((shape[1],) * 2 if shape[0] == "symmetric" else shape), like)

    return (eye(alg.element_shapes[0][0], like),) + tuple(map(field, alg.element_shapes[1:]))


# -- filtering elements: (A, b, C, eta, J) ------------------------------------------------------
def _pivot_threshold(J, eps):
    r"""Pivots of ``J``'s LDL split at most :math:`100 n \epsilon \max_i J_{ii}` count as zero."""
    scale = J[0][0]
    for i in range(1, len(J)):
        scale = lax.max(scale, J[i][i])
    return lax.mul(const(100 * len(J) * eps, scale), scale)


def _information_rows(J, eta, eps):
    r"""Split the likelihood :math:`N_I(x; \eta, J)` into ``n`` scalar factors.

    :math:`J = L\,\mathrm{diag}(d)\,L^T` (unit lower ``L``; a pivot below
    :math:`100 n \epsilon \max_i J_{ii}` is zero, with a zero column below it, so a rank-deficient
    ``J`` is fine) and :math:`e = L^{-1} \eta` give
    :math:`\exp(-\tfrac12 x^T J x + \eta^T x) = \prod_l \exp(-\tfrac12 d_l s_l^2 + e_l s_l)`
    with :math:`s_l = h_l^T x`, :math:`h_l` column ``l`` of ``L``. Returns ``(h_l, d_l, e_l)``
    for every ``l``."""
    n = len(J)
    threshold = _pivot_threshold(J, eps)
    L = [[None] * n for _ in range(n)]
    d = [None] * n
    for j in range(n):
        dj = minus_dot(J[j][j], [lax.mul(L[j][k], L[j][k]) for k in range(j)], d[:j])
        positive = lax.gt(dj, threshold)
        inverse = where(positive, recip(where(positive, dj, 1.0)), 0.0)
        for i in range(j + 1, n):
            LL = [lax.mul(L[i][k], L[j][k]) for k in range(j)]
            L[i][j] = lax.mul(minus_dot(J[i][j], LL, d[:j]), inverse)
        d[j] = where(positive, dj, 0.0)
    e = []
    for i in range(n):
        e.append(minus_dot(eta[i], L[i][:i], e))
    one, zero = jnp.ones_like(d[0]), jnp.zeros_like(d[0])
    columns = [[one if k == l else (zero if k < l else L[k][l]) for k in range(n)] for l in range(n)]
    return [(columns[l], d[l], e[l]) for l in range(n)]


def _select(hits, options):
    """``options[index]`` (nested lists of equal structure) for a traced scalar ``index`` given
    as ``hits``, the list of ``index == i`` for ``i = 1, 2, ...``."""
    if isinstance(options[0], (list, tuple)):
        return [_select(hits, [o[i] for o in options]) for i in range(len(options[0]))]
    out = options[0]
    for hit, option in zip(hits, options[1:]):
        out = lax.select(hit, option, out)
    return out


def _absorb(rows, mean, cov, affine=None):
    r"""Condition :math:`N(\mu, C)` on the scalar factors of :func:`_information_rows`, one
    after another in a ``fori_loop`` (its body, one rank-one update, is compiled once).

    Factor :math:`(h, d, e)` with :math:`c = h^T C h` and :math:`\gamma = 1 / (1 + d c)`
    (at most one, so no division is ill-conditioned): :math:`C \leftarrow C - \gamma d\,
    (C h)(C h)^T`, :math:`\mu \leftarrow \mu + \gamma (e - d\, h^T \mu)\, C h`. With
    ``affine = (A, eta, J)`` the mean is :math:`A x + b` (``mean`` is ``b``) and the factor's
    likelihood of ``x`` is accumulated: :math:`A \leftarrow A - \gamma d\,(C h)(h^T A)`,
    :math:`\eta \leftarrow \eta + \gamma (e - d\, h^T b)\, A^T h`, :math:`J \leftarrow J
    + \gamma d\,(A^T h)(A^T h)^T` (with the ``A`` before the update).
    """
    n = len(mean)

    def body(l, carry):
        hits = [l == i for i in range(1, len(rows))]
        h, d, e = (_select(hits, [r[k] for r in rows]) for k in range(3))
        return pack(_absorb_factor(h, d, e, unpack(carry, shapes)), shapes)

    carry = (mean, cov) if affine is None else (mean, cov) + tuple(affine)
    shapes = _absorption_shapes(n, affine is not None)
    count = trips(n) if n > LOOP_ROWS else n
    return unpack(jax.lax.fori_loop(0, count, body, pack(carry, shapes)), shapes)


def _absorption_shapes(n, affine):
    """Field shapes of an absorption's ``(mean, cov[, A, eta, J])``, as its loops carry them."""
    state = ((n,), symmetric(n))
    return state + (((n, n), (n,), symmetric(n)) if affine else ())


def _absorb_factor(h, d, e, carry):
    """One rank-one update of :func:`_absorb`: ``carry`` is ``(mean, cov)`` or ``(mean, cov,
    A, eta, J)``, returned updated."""
    mean, cov = carry[:2]
    n = len(mean)
    Ch = matvec(cov, h)
    gamma = recip(lax.add(const(1.0, d), lax.mul(d, dot(h, Ch))))
    nu = lax.mul(gamma, lax.sub(e, lax.mul(d, dot(h, mean))))
    dg = lax.mul(d, gamma)
    dgCh = [lax.mul(dg, x) for x in Ch]
    mean = [lax.add(x, lax.mul(y, nu)) for x, y in zip(mean, Ch)]
    cov = sym([[lax.sub(cov[i][j], lax.mul(dgCh[i], Ch[j])) if j >= i else None
                for j in range(n)] for i in range(n)])
    if len(carry) == 2:
        return mean, cov
    A, eta, J = carry[2:]
    hA = [dot(h, column) for column in transpose(A)]
    dghA = [lax.mul(dg, x) for x in hA]
    A = [[lax.sub(A[i][j], lax.mul(dgCh[i], hA[j])) for j in range(n)] for i in range(n)]
    eta = [lax.add(x, lax.mul(nu, y)) for x, y in zip(eta, hA)]
    J = sym([[lax.add(J[i][j], lax.mul(dghA[i], hA[j])) if j >= i else None
              for j in range(n)] for i in range(n)])
    return mean, cov, A, eta, J


def _rotate(v):
    """``v`` moved up one place, its head last."""
    return v[1:] + v[:1]


def _split_and_absorb(J, eta, eps, mean, cov, affine=None):
    r""":func:`_absorb` of :func:`_information_rows` for more than :data:`LOOP_ROWS` rows, the
    split computed in the same ``fori_loop`` (no unrolled :math:`O(n^3)` code).

    Iteration ``l`` pivots on the Schur complement ``S`` of ``J``'s first ``l`` rows and
    columns (right-looking LDL): :math:`d_l = S_{ll}` (0 below :func:`_pivot_threshold`),
    :math:`h_l = S_{:,l} / d_l` (column ``l`` of ``L``), :math:`e_l = r_l` with
    :math:`r = \eta` at the start and :math:`r \leftarrow r - e_l h_l` after, and
    :math:`S \leftarrow S - d_l h_l h_l^T` (pivot row and column then zero); the factor
    :math:`(h_l, d_l, e_l)` is absorbed at once (:func:`_absorb_factor`). Everything indexed by
    the split's coordinates (``S``, ``r``, the mean, both sides of the covariance, the rows of
    ``A``) turns one place each iteration (:func:`_rotate`), so the pivot is always entry 0, no
    index is dynamic, and after ``n`` iterations the coordinates are back in order.
    """
    n = len(mean)
    threshold = _pivot_threshold(J, eps)

    def body(_, carry):
        (S, r), state = carry
        S, state = from_upper(S, n), unpack(state, shapes)
        pivot = S[0][0]
        positive = lax.gt(pivot, threshold)
        inverse = where(positive, recip(where(positive, pivot, 1.0)), 0.0)
        h = [jnp.ones_like(pivot)] + [lax.mul(S[i][0], inverse) for i in range(1, n)]
        e = r[0]
        state = _absorb_factor(h, where(positive, pivot, 0.0), e, state)
        zero = jnp.zeros_like(pivot)
        # S_ik - d h_i h_k = S_ik - S_i0 h_k (also for a zero pivot: h_k = 0 below it).
        S = sym([[lax.sub(S[i][k], lax.mul(S[i][0], h[k])) if k >= i else None
                  for k in range(1, n)] + [zero] for i in range(1, n)] + [[zero] * n])
        r = [lax.sub(r[i], lax.mul(e, h[i])) for i in range(1, n)] + [zero]
        mean, cov = state[:2]
        state = (_rotate(mean), [_rotate(row) for row in _rotate(cov)]) + (
            (_rotate(state[2]),) + tuple(state[3:]) if len(state) > 2 else ())
        return (upper(S), r), pack(state, shapes)

    state = (mean, cov) if affine is None else (mean, cov) + tuple(affine)
    shapes = _absorption_shapes(n, affine is not None)
    init = ((upper(J), list(eta)), pack(state, shapes))
    return unpack(jax.lax.fori_loop(0, trips(n), body, init)[1], shapes)


def _condition(J, eta, eps, mean, cov, affine=None):
    r"""``mean, cov`` (and ``affine``) conditioned on the likelihood :math:`N_I(x; \eta, J)`:
    :func:`_absorb` of :func:`_information_rows`, fused for more than :data:`LOOP_ROWS` rows
    (:func:`_split_and_absorb`)."""
    if len(mean) > LOOP_ROWS:
        return _split_and_absorb(J, eta, eps, mean, cov, affine)
    return _absorb(_information_rows(J, eta, eps), mean, cov, affine)


def filter_combine(earlier, later, eps):
    """Combination of filtering elements: element ``i`` conditioned on ``j``'s likelihood of
    its end state (:func:`_absorb`), then carried through ``j``'s transition."""
    A_i, b_i, C_i, eta_i, J_i = earlier
    A_j, b_j, C_j, eta_j, J_j = later
    b, C, A, eta, J = _condition(J_j, eta_j, eps, b_i, C_i, (A_i, eta_i, J_i))
    return matmul(A_j, A), plus(matvec(A_j, b), b_j), congruence(A_j, C, plus=C_j), list(eta), J


def filter_apply(state, element, eps):
    """The filtered state after an element: ``state = (m, P)`` at its start, the result at its end."""
    A, b, C, eta, J = element
    m, P = _condition(J, eta, eps, *state)
    return plus(matvec(A, m), b), congruence(A, P, plus=C)


# -- backward (smoothing) elements: (E, g, L) ---------------------------------------------------
def backward_combine(earlier, later, eps=None):
    """Composition in scan order (the scan runs backward in time: ``earlier`` is later in time)."""
    E_i, g_i, L_i = earlier
    E_j, g_j, L_j = later
    return matmul(E_j, E_i), plus(matvec(E_j, g_i), g_j), congruence(E_j, L_i, plus=L_j)


def backward_apply(state, element, eps=None):
    """Smoothed state ``(m, P)`` of the element's later end mapped to its earlier end."""
    m, P = state
    E, g, L = element
    return plus(matvec(E, m), g), congruence(E, P, plus=L)


def rts_element(mean, cov, F, Q, u, eps):
    r"""Backward element of one step from its filtered moments: :math:`x_t \mid x_{t+1}, y_{0:t}
    \sim N(E x_{t+1} + g, L)` with the prediction :math:`a = F m + u`, :math:`P^- = F P F^T + Q`,
    :math:`E = P F^T (P^-)^{-1}` (two triangular solves with the Cholesky factor of
    :math:`P^-`; for more than :data:`LOOP_ROWS` rows Gauss-Jordan elimination in a loop,
    :func:`solve_psd`), :math:`g = m - E a` and :math:`L = P - E F P` (upper triangle,
    mirrored). Also returns the prediction."""
    a = plus(matvec(F, mean), u)
    FP = matmul(F, cov)
    P_pred = gram_with(FP, F, Q)
    if len(mean) > LOOP_ROWS:
        E = transpose(solve_psd(P_pred, FP, eps))
    else:
        Lp = cholesky(P_pred, eps)
        E = transpose(solve_upper(transpose(Lp), solve_lower(Lp, FP)))
    g = [lax.sub(x, y) for x, y in zip(mean, matvec(E, a))]
    n = len(mean)
    FP_columns = transpose(FP)

    def row(e, c, cols):
        return [minus_dot(c[j], e, FP_columns[j]) for j in cols]

    if n <= LOOP_ROWS:
        EFP = [[None] * i + row(E[i], cov[i], range(i, n)) for i in range(n)]
    else:
        EFP = by_rows(lambda e, c: row(e, c, range(n)), E, cov)
    EFP = [[EFP[min(i, j)][max(i, j)] for j in range(n)] for i in range(n)]
    return (E, g, EFP), (a, P_pred)
