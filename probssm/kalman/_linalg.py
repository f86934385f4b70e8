"""Small dense linear-algebra helpers shared by the Kalman recursions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from . import _entrywise
from ._entrywise import UNROLL_MAX_DIM


def matmul(a, b):
    """``a @ b`` over the last two axes, batch axes broadcast: ``(..., i, j) x (..., j, k) ->
    (..., i, k)``, as :math:`\\sum_j a_{:, j} b_{j, :}`, a sum of ``j`` outer products of
    broadcast elementwise operations.

    For the small matrices of a state-space model over long batch axes (time steps, chunks) XLA
    fuses this into one elementwise loop. A ``dot_general`` would be a batched GEMM of tiny
    blocks, for which XLA on a GPU compiles and times cuBLAS and Triton configurations while
    compiling (autotuning, seconds of the kernel programs' compile time at ``n = 8``), and a
    ``sum`` over a broadcast product a reduction fusion that XLA compiles more slowly still.
    The products are plain float32 (never TF32), with no precision flag. Columns and rows are
    sliced keeping their axis (``j:j + 1``): an indexed slice would add a reshape and a
    broadcast per operand (79 HLO operations for an ``8 x 8`` product instead of 47), and XLA's
    HLO passes take time with the operation count. Compile times:
    ``benchmarks/README.md``.
    """
    out = a[..., :, 0:1] * b[..., 0:1, :]
    for j in range(1, a.shape[-1]):
        out = out + a[..., :, j:j + 1] * b[..., j:j + 1, :]
    return out


def matvec(a, x):
    """``a @ x``: ``a`` ``(..., i, j)``, ``x`` ``(..., j)`` -> ``(..., i)``, as a sum of the
    columns of ``a`` scaled by the entries of ``x`` (see :func:`matmul`: no ``dot_general``)."""
    out = a[..., :, 0] * x[..., 0:1]
    for j in range(1, a.shape[-1]):
        out = out + a[..., :, j] * x[..., j:j + 1]
    return out


def unfolded(y):
    """``y`` behind an optimisation barrier (a no-op at run time). Where ``y`` is a constant of
    the program, e.g. closed over by a jitted objective for maximum likelihood, XLA would
    otherwise evaluate its layout changes and NaN masks on the CPU at compile time (constant
    folding, which grows with ``T``).
    The kernel path reads ``y`` only through it: :func:`probssm.kalman.ops.filter_kernel.filter_batch` and
    friends, and their gradients (:func:`probssm.kalman.ops.adjoint.filter_vjp`)."""
    return jax.lax.optimization_barrier(y)


def symmetrize(a):
    """``(a + a^T) / 2`` over the last two axes; removes round-off asymmetry."""
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def ldl(a):
    """Unit-lower-triangular ``L`` and diagonal ``D >= 0`` with ``a = L diag(D) L^T``.

    ``a``: ``(m, m)`` symmetric positive semi-definite. Unlike a Cholesky factor this exists for
    singular ``a`` (noise-free observation components): a pivot that is zero up to round-off gives
    ``D_j = 0`` and a zero column below it. ``det(L) = 1``, so ``y -> L^{-1} y`` keeps densities.
    """
    m = a.shape[-1]
    scale = jnp.max(jnp.abs(jnp.diagonal(a)))
    tiny = 100 * m * jnp.finfo(a.dtype).eps * jnp.where(scale > 0, scale, 1.0)
    rows = jnp.arange(m)

    def column(j, carry):
        lower, d = carry
        lj = lower[j]
        dj = a[j, j] - jnp.sum(lj * lj * d)
        positive = dj > tiny
        col = (a[:, j] - lower @ (d * lj)) / jnp.where(positive, dj, 1.0)
        col = jnp.where((rows > j) & positive, col, 0.0)
        return lower.at[:, j].set(col), d.at[j].set(jnp.where(positive, dj, 0.0))

    lower, d = jax.lax.fori_loop(0, m, column, (jnp.zeros_like(a), jnp.zeros(m, a.dtype)))
    return lower + jnp.eye(m, dtype=a.dtype), d


def psd_sqrt(a):
    r"""A matrix ``S`` with ``S S^T = a`` for symmetric PSD ``a`` ``(..., k, k)`` of any rank.

    Outer-product elimination with diagonal pivoting: step ``j`` takes the largest diagonal
    entry :math:`d = C_{pp}` of the remaining Schur complement :math:`C` (initially ``a``), sets
    column ``j`` of ``S`` to :math:`c = C_{:,p} / \sqrt d` and continues with
    :math:`C - c c^T`, so that :math:`a = \sum_j c_j c_j^T = S S^T`. Pivoting keeps every
    division by the largest remaining pivot: once that is zero up to round-off, so is all of
    :math:`C` (:math:`|C_{ik}| \le \sqrt{C_{ii} C_{kk}}`), and the remaining columns are zero. An
    unpivoted factorisation of a singular ``a`` divides by a pivot that is zero only up to
    round-off, amplifying it.

    Plain JAX operations, no LAPACK call: under ``vmap`` (sample paths over posterior draws) a
    batched ``eigh`` on the CPU hung for good now and then: jaxlib's LAPACK kernels split a batch
    over XLA's CPU thread pool and wait for it from a thread of that pool, and with two such
    calls in flight on a 2-core machine no thread was left to run the work (gdb)."""
    return jnp.vectorize(_pivoted_sqrt, signature="(k,k)->(k,k)")(symmetrize(a))


def _pivoted_sqrt(a):
    k = a.shape[-1]
    scale = jnp.max(jnp.abs(jnp.diagonal(a)))
    tiny = 100 * k * jnp.finfo(a.dtype).eps * jnp.where(scale > 0, scale, 1.0)

    def column(j, carry):
        schur, factor = carry
        diag = jnp.diagonal(schur)
        p = jnp.argmax(diag)
        positive = diag[p] > tiny
        col = jnp.where(positive, schur[:, p] / jnp.sqrt(jnp.where(positive, diag[p], 1.0)), 0.0)
        return schur - jnp.outer(col, col), factor.at[:, j].set(col)

    return jax.lax.fori_loop(0, k, column, (a, jnp.zeros_like(a)))[1]


def psd_shifted(a):
    r"""Symmetric PSD ``a`` ``(..., k, k)`` symmetrised and shifted by :math:`\delta I`,
    :math:`\delta = 16\,\epsilon \max(\mathrm{tr}(a)/k, \sqrt{\text{tiny}})`: positive
    definite, and within a relative ``~16 eps`` of ``a``."""
    k = a.shape[-1]
    finfo = jnp.finfo(a.dtype)
    scale = jnp.maximum(jnp.trace(a, axis1=-2, axis2=-1) / k, jnp.sqrt(finfo.tiny))
    delta = 16 * finfo.eps * scale
    return symmetrize(a) + delta[..., None, None] * jnp.eye(k, dtype=a.dtype)


def chol_psd(a):
    r"""Lower Cholesky factor of a symmetric PSD ``a`` ``(..., k, k)`` after the shift of
    :func:`psd_shifted`.

    The shift changes covariances by a relative ``~16 eps`` only, and keeps the factor and its
    gradient finite for singular ``a`` (where an eigendecomposition's gradient is not, at repeated
    eigenvalues such as ``q I``).
    """
    return cholesky(psd_shifted(a))


def _entry_by_entry(k, unrolled):
    return k <= UNROLL_MAX_DIM if unrolled is None else unrolled


def cholesky(a, unrolled=None):
    """Lower Cholesky factor of symmetric positive definite ``a`` ``(..., k, k)``: entry by entry
    (:mod:`._entrywise`) up to ``k = 4``, LAPACK / the GPU solver library above.

    ``unrolled``: ``None`` chooses by size as above; ``False`` always calls the library, as the
    parallel scans' combination steps do: XLA traces those once per level of the scan, and the
    unrolled operations of every level add to the compile time (36 -> 69 s for a parallel
    smoother at ``n = 4`` on a 2-core CPU)."""
    if _entry_by_entry(a.shape[-1], unrolled):
        return _entrywise.lower_from_entries(_entrywise.cholesky_entries(a))
    return jnp.linalg.cholesky(a)


def tria(a, unrolled=None):
    """Lower-triangular square factor ``L`` (``(..., n, n)``) with ``L L^T = a a^T`` for ``a``
    ``(..., n, k)``: modified Gram-Schmidt entry by entry (:func:`._entrywise.tria`) up to
    ``n = 4``, above through a QR decomposition of ``a^T`` (``unrolled`` as in
    :func:`cholesky`). The diagonal's signs are not fixed (QR's convention); callers use
    ``|L_ii|`` in determinants."""
    if _entry_by_entry(a.shape[-2], unrolled):
        return _entrywise.tria(a)
    return jnp.linalg.qr(a.mT, mode="r").mT


def solve_lower(L, b, unrolled=None):
    """:math:`L^{-1} b` for lower-triangular ``L`` ``(..., k, k)``; ``b`` ``(..., k)`` (a vector,
    when it has one axis fewer than ``L``) or ``(..., k, c)``. Entry by entry up to ``k = 4``
    (``unrolled`` as in :func:`cholesky`)."""
    return _solve(L, b, False, unrolled)


def solve_lower_transposed(L, b, unrolled=None):
    """:math:`L^{-T} b` for lower-triangular ``L`` ``(..., k, k)``; ``b`` as in
    :func:`solve_lower`."""
    return _solve(L, b, True, unrolled)


def _solve(L, b, transposed, unrolled):
    vector = b.ndim == L.ndim - 1
    if not _entry_by_entry(L.shape[-1], unrolled):
        return solve_triangular(L, b, lower=True, trans=1 if transposed else 0)
    rhs = b[..., None] if vector else b
    x = (_entrywise.solve_lower_transposed if transposed else _entrywise.solve_lower)(L, rhs)
    return x[..., 0] if vector else x


# Above this size the Kronecker system (k^2 unknowns) is slower than doubling; 64 doubling steps
# sum A^i Q A^iT for i < 2^64, converged for any stable A.
_KRONECKER_MAX_DIM = 10
_DOUBLING_STEPS = 64


def solve_discrete_lyapunov(F, Q):
    r"""The stationary covariance :math:`P = F P F^T + Q` of :math:`x_{t+1} = F x_t + \eta_t`.

    ``F``, ``Q``: ``(k, k)`` with the eigenvalues of ``F`` inside the unit circle. Up to
    ``k = 10`` solved as the linear system :math:`(I - F \otimes F)\,\mathrm{vec}\,P =
    \mathrm{vec}\,Q`; above, by doubling, :math:`P_{j+1} = P_j + F_j P_j F_j^T`,
    :math:`F_{j+1} = F_j^2` (64 steps). Differentiable in ``F`` and ``Q``.
    """
    k = F.shape[-1]
    if k <= _KRONECKER_MAX_DIM:
        system = jnp.eye(k * k, dtype=F.dtype) - jnp.kron(F, F)
        return symmetrize(jnp.linalg.solve(system, Q.reshape(k * k)).reshape(k, k))

    def step(_, carry):
        Fj, P = carry
        return Fj @ Fj, P + Fj @ P @ Fj.T

    _, P = jax.lax.fori_loop(0, _DOUBLING_STEPS, step, (F, Q))
    return symmetrize(P)
