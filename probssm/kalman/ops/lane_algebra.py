"""Small dense algebra unrolled over *lanes*, shared by the Pallas kernels and their references.

A matrix is a list of rows, each entry a lane vector (``(block,)`` array: one value per lane, i.e.
per chunk or series a kernel program handles); a vector is a list of lane vectors. Everything is
unrolled at trace time for the static sizes ``n, m <= 8``, so a kernel holds its matrices in
registers; for more than :data:`LOOP_ROWS` rows, matrix products run row by row in a
``fori_loop`` instead (:func:`by_rows`), the LDL split of an information matrix pivot by pivot
in the loop that absorbs its factors (:func:`_split_and_absorb`) and the RTS element's solve by
Gauss-Jordan elimination (:func:`solve_psd`): each loop body is compiled once, straight-line
code of :math:`O(n^2)` instead of :math:`O(n^3)` operations, which Triton compiles much faster
(its coalescing pass takes time quadratic in the size of a kernel). The same functions run on
whole arrays in plain JAX (the pure references).

The arithmetic binds ``jax.lax`` primitives directly (:func:`dot`, :func:`where`, ...): a
``jnp`` function or operator on a tracer goes through a ``jit``-wrapped, type-promoting
function and costs several times as much to trace, and a kernel at ``n = 8`` traces tens
of thousands of them. Entries may be lane vectors or 0-d values (the model's parameters) of
one dtype; Python numbers are converted with :func:`const`.

The element algebras of the chunk scan, built on these functions, are in
:mod:`.scan_elements`.
"""

from __future__ import annotations

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

LOOP_ROWS = 4


_ZERO = []


@contextlib.contextmanager
def opaque_zero(zero):
    """Inside, the row loops (:func:`by_rows`, :func:`_substitute`, :func:`_absorb`,
    :func:`_split_and_absorb`, :func:`solve_psd` and the kernels' loop over a step's
    observation rows, for more than :data:`LOOP_ROWS` rows) run from
    0 to ``k + zero``, ``zero`` a traced int32 scalar that is 0 at run time but unknown to the
    compiler (loaded from memory): with a constant trip count LLVM unrolls the loops again into
    :math:`O(n^3)` straight-line code, whose code generation for the GPU takes seconds."""
    _ZERO.append(zero)
    try:
        yield
    finally:
        _ZERO.pop()


def trips(k):
    """Upper bound of a row loop of ``k`` iterations (:func:`opaque_zero`)."""
    return k + _ZERO[-1] if _ZERO else k


def const(value, like):
    """The Python number ``value`` as a constant of ``like``'s dtype (``lax`` does not
    promote)."""
    return np.asarray(value, like.dtype)


def dot(xs, ys):
    r""":math:`\sum_k x_k y_k` of two equally long lists of entries (left to right)."""
    total = lax.mul(xs[0], ys[0])
    for x, y in zip(xs[1:], ys[1:]):
        total = lax.add(total, lax.mul(x, y))
    return total


def minus_dot(c, xs, ys):
    r""":math:`c - \sum_k x_k y_k` (``c`` for empty lists)."""
    return lax.sub(c, dot(xs, ys)) if len(xs) else c


def plus(xs, ys):
    """Entry-wise sum of two lists."""
    return [lax.add(x, y) for x, y in zip(xs, ys)]


def recip(x):
    """:math:`1 / x`."""
    return lax.div(const(1.0, x), x)


def where(pred, x, y):
    """``x`` where ``pred`` else ``y``, entry by entry; ``x``, ``y`` may be Python numbers or
    0-d values (broadcast to the lanes of ``pred``)."""
    like = x if hasattr(x, "dtype") else y
    shape = np.broadcast_shapes(jnp.shape(pred), jnp.shape(x), jnp.shape(y))
    x, y = (v if jnp.shape(v) == shape
            else lax.broadcast_in_dim(v if hasattr(v, "dtype") else const(v, like), shape, ())
            for v in (x, y))
    return lax.select(pred, x, y)


def by_rows(compute, *rows):
    """``[compute(*(r[i] for r in rows)) for i in range(k)]`` for lists ``rows`` of ``k``
    rows each (a row a list of lane vectors or scalars; ``compute`` returns a list of lane
    vectors).

    Unrolled for ``k <=`` :data:`LOOP_ROWS`; otherwise a ``fori_loop`` over ``i`` whose body
    is one call of ``compute``: the input lists rotate by one row an iteration (the head is row
    ``i``) and every result is appended to a list that drops its head, so no index is dynamic
    and after ``k`` iterations the results stand in order. ``compute`` may close over any
    matrix (the same in every iteration).
    """
    k = len(rows[0])
    if k <= LOOP_ROWS:
        return [compute(*(r[i] for r in rows)) for i in range(k)]
    shapes = jax.eval_shape(compute, *(r[0] for r in rows))

    def body(_, carry):
        queues, out = carry
        new = compute(*(q[0] for q in queues))
        return [q[1:] + [q[0]] for q in queues], out[1:] + [list(new)]

    # One zero per distinct shape serves as every result slot's initial value (thousands of
    # slots at n = 8: a traced broadcast each would be a tenth of the kernels' operations).
    zero = {(x.shape, x.dtype): jnp.zeros(x.shape, x.dtype) for x in shapes}
    init = ([list(map(list, r)) for r in rows],
            [[zero[x.shape, x.dtype] for x in shapes] for _ in range(k)])
    return jax.lax.fori_loop(0, trips(k), body, init)[1]


def eye(n, like):
    """The ``n x n`` identity with entries shaped like the lane vector ``like``."""
    one, zero = jnp.ones_like(like), jnp.zeros_like(like)
    return [[one if i == j else zero for j in range(n)] for i in range(n)]


def zeros(rows, cols, like):
    """A ``rows x cols`` zero matrix with entries shaped like ``like``."""
    zero = jnp.zeros_like(like)
    return [[zero] * cols for _ in range(rows)]


def transpose(M):
    """:math:`M^T`."""
    return [list(col) for col in zip(*M)]


def matmul(A, B):
    """:math:`A B` (``(r, k) x (k, c)``; row by row, :func:`by_rows`)."""
    columns = transpose(B)
    return by_rows(lambda a: [dot(a, c) for c in columns], A)


def matvec(M, x):
    """:math:`M x`."""
    return [dot(row, x) for row in M]


def sym(M):
    """Mirror the upper triangle onto the lower one (a symmetric result of round-off-asymmetric
    arithmetic)."""
    n = len(M)
    return [[M[min(i, j)][max(i, j)] for j in range(n)] for i in range(n)]


def upper(M):
    """The upper triangle of a symmetric ``M``, row by row: :math:`n (n + 1) / 2` entries.

    Loops carry and kernels store symmetric matrices in this form: a ``fori_loop`` carries
    every entry of its lists as its own loop-carried value, and a mirrored entry would be a
    second register (at ``n = 8``, 28 of a covariance's 64)."""
    return [x for i, row in enumerate(M) for x in row[i:]]


def from_upper(flat, n):
    """Inverse of :func:`upper`: the symmetric ``n x n`` matrix (list of rows)."""
    rows, pos = [], 0
    for i in range(n):
        rows.append(flat[pos:pos + n - i])
        pos += n - i
    return [[rows[min(i, j)][abs(j - i)] for j in range(n)] for i in range(n)]


def symmetric(n):
    """Field shape of a symmetric ``n x n`` matrix, stored as its upper triangle
    (:func:`upper`, :math:`n (n + 1) / 2` rows)."""
    return ("symmetric", n)


def field_rows(shape):
    """Rows of one field: ``(n,)`` a vector, ``(r, c)`` a matrix, :func:`symmetric`."""
    if shape[0] == "symmetric":
        return shape[1] * (shape[1] + 1) // 2
    return math.prod(shape)


def unpack(flat, shapes):
    """Stacked rows (a list of lane vectors) -> tuple of vectors / matrices (lists; a
    :func:`symmetric` field whole, its lower triangle mirrored)."""
    out, pos = [], 0
    for s in shapes:
        part = list(flat[pos:pos + field_rows(s)])
        if s[0] == "symmetric":
            out.append(from_upper(part, s[1]))
        elif len(s) == 1:
            out.append(part)
        else:
            out.append([part[i * s[1]:(i + 1) * s[1]] for i in range(s[0])])
        pos += field_rows(s)
    return tuple(out)


def pack(fields, shapes):
    """Inverse of :func:`unpack` (of a :func:`symmetric` field the upper triangle)."""
    flat = []
    for f, s in zip(fields, shapes):
        if s[0] == "symmetric":
            flat.extend(upper(f))
        else:
            flat.extend(f if len(s) == 1 else [x for row in f for x in row])
    return flat


def congruence(A, M, plus=None):
    """:math:`A M A^T (+ \\text{plus})` for symmetric ``M``, symmetric by construction (upper
    triangle computed, mirrored)."""
    return gram_with(matmul(A, M), A, plus)


def gram_with(AB, A, plus=None):
    r""":math:`(A B) A^T (+ \text{plus})` (``AB`` ``(n, k)``, ``A`` ``(n, k)``, ``plus``
    ``(n, n)``) from the product ``AB`` (symmetric ``B``), upper triangle kept and mirrored.
    Unrolled only the upper triangle is computed; row by row (:func:`by_rows`), whole rows."""
    n = len(AB)

    def row(ab, p, cols):
        return [dot(ab, A[j]) if p is None else lax.add(dot(ab, A[j]), p[j]) for j in cols]

    if n <= LOOP_ROWS:
        full = [[None] * i + row(AB[i], None if plus is None else plus[i], range(i, n))
                for i in range(n)]
    elif plus is None:
        full = by_rows(lambda ab: row(ab, None, range(n)), AB)
    else:
        full = by_rows(lambda ab, p: row(ab, p, range(n)), AB, plus)
    return [[full[min(i, j)][max(i, j)] for j in range(n)] for i in range(n)]


def cholesky(M, eps=None):
    """Lower Cholesky factor of a symmetric PSD ``M``.

    With ``eps`` (the dtype's machine epsilon) the diagonal is first raised by
    :math:`\\delta = 16\\,\\epsilon\\,\\max(\\mathrm{tr} M / n, \\sqrt{\\epsilon})` (as
    :func:`probssm.kalman._linalg.chol_psd`), and every pivot is kept at least :math:`\\delta`,
    so a singular ``M`` (a zero-variance direction, the zero covariance of a first chunk's
    element) gives a finite factor. Without ``eps`` ``M`` must be positive definite.
    """
    n = len(M)
    if eps is not None:
        delta = _jitter(M, eps)
        M = [[lax.add(M[i][j], delta) if i == j else M[i][j] for j in range(n)] for i in range(n)]
    L = [[None] * n for _ in range(n)]
    for j in range(n):
        d = minus_dot(M[j][j], L[j][:j], L[j][:j])
        if eps is not None:
            d = lax.max(d, delta)
        ljj = lax.sqrt(d)
        inv = recip(ljj)
        L[j][j] = ljj
        for i in range(j + 1, n):
            L[i][j] = lax.mul(minus_dot(M[i][j], L[i][:j], L[j][:j]), inv)
        for i in range(j):
            L[i][j] = jnp.zeros_like(ljj)
    return L


def _jitter(M, eps):
    r""":math:`\delta = 16\,\epsilon\,\max(\mathrm{tr} M / n, \sqrt{\epsilon})` of
    :func:`cholesky`."""
    like = M[0][0]
    trace = M[0][0]
    for i in range(1, len(M)):
        trace = lax.add(trace, M[i][i])
    mean = lax.div(trace, const(len(M), like))
    return lax.mul(const(16 * eps, like), lax.max(mean, const(eps ** 0.5, like)))


def solve_psd(M, B, eps):
    r""":math:`M^{-1} B` for symmetric PSD ``M`` ``(n, n)`` and ``B`` ``(n, c)``, regularised as
    :func:`cholesky` with ``eps`` (diagonal raised by :math:`\delta`, pivots at least
    :math:`\delta`): the same as :math:`L^{-T} L^{-1} B` with that factor ``L``.

    Gauss-Jordan elimination in a ``fori_loop`` of ``n`` iterations (its body compiled once,
    :math:`O(n (n + c))` operations, against the unrolled :math:`O(n^3)` factor): the pivot is
    the Schur complement's diagonal entry, as Cholesky's. The rows of ``[M | B]`` turn one place
    an iteration (the pivot row, scaled, goes last) and the eliminated column of ``M`` is dropped
    (a zero column appended), so the pivot is always entry ``(0, 0)`` and after ``n``
    iterations the rows of the solution stand in order."""
    n = len(M)
    delta = _jitter(M, eps)
    zero = jnp.zeros_like(delta)
    M = [[lax.add(M[i][j], delta) if i == j else M[i][j] for j in range(n)] for i in range(n)]

    def body(_, rows):
        inverse = recip(lax.max(rows[0][0], delta))
        pivot = [lax.mul(x, inverse) for x in rows[0][1:]]
        eliminated = [[lax.sub(x, lax.mul(row[0], p)) for x, p in zip(row[1:], pivot)]
                      for row in rows[1:]]
        out = eliminated + [pivot]
        return [row[:n - 1] + [zero] + row[n - 1:] for row in out]

    rows = jax.lax.fori_loop(0, trips(n), body, [list(m) + list(b) for m, b in zip(M, B)])
    return [row[n:] for row in rows]


def _substitute(coefficients, diagonal, B):
    r"""Triangular substitution in a ``fori_loop`` over the rows of ``B`` ``(k, c)`` (in the
    order given): :math:`X_i = (B_i - \sum_p w_{ip} Z_p) / D_i` with ``Z`` the list of results
    so far, ``k - i`` zero rows followed by :math:`X_0, \dots, X_{i-1}` (row ``i`` of
    ``coefficients`` gives :math:`w_{ip}`, position by position; ``diagonal`` gives
    :math:`D_i`). Returns :math:`X_0, \dots, X_{k-1}`."""
    k, cols = len(B), len(B[0])
    zero = jnp.zeros_like(B[0][0])

    def body(_, carry):
        (w, d, b), out = carry
        inv = recip(d[0][0])
        new = [lax.mul(minus_dot(b[0][c], w[0], [row[c] for row in out]), inv)
               for c in range(cols)]
        return (w[1:] + w[:1], d[1:] + d[:1], b[1:] + b[:1]), out[1:] + [new]

    init = ((list(coefficients), [[x] for x in diagonal], [list(r) for r in B]),
            [[zero] * cols for _ in range(k)])
    return jax.lax.fori_loop(0, trips(k), body, init)[1]


def solve_lower(L, B):
    """:math:`L^{-1} B` for lower-triangular ``L`` (forward substitution; row by row in a
    ``fori_loop`` for more than :data:`LOOP_ROWS` rows, :func:`_substitute`)."""
    n, cols = len(L), len(B[0])
    if n > LOOP_ROWS:
        zero = jnp.zeros_like(L[0][0])
        # Before row i the results are n - i zero rows, then X_0..X_{i-1}: X_k at n - i + k.
        w = [[L[i][p - n + i] if p >= n - i else zero for p in range(n)] for i in range(n)]
        return _substitute(w, [L[i][i] for i in range(n)], B)
    X = [[None] * cols for _ in range(n)]
    for i in range(n):
        inv = recip(L[i][i])
        for c in range(cols):
            X[i][c] = lax.mul(minus_dot(B[i][c], L[i][:i], [X[k][c] for k in range(i)]), inv)
    return X


def solve_upper(Ut, B):
    """:math:`U^{-1} B` for upper-triangular ``U`` (back substitution, unrolled)."""
    n, cols = len(Ut), len(B[0])
    X = [[None] * cols for _ in range(n)]
    for i in reversed(range(n)):
        inv = recip(Ut[i][i])
        for c in range(cols):
            X[i][c] = lax.mul(minus_dot(B[i][c], Ut[i][i + 1:], [X[k][c] for k in range(i + 1, n)]),
                              inv)
    return X
