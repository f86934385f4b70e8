"""method="kernel" (fused chunked Pallas filter and smoother) against the sequential recursions and
the chunk scan's reference, on CPU through the Pallas interpreter, and its lowering to Triton for
CUDA."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kalman.test_parallel import check_float32, float32_problems

from probssm import kalman
from probssm.kalman.ops import chunk_scan, filter_kernel, lane_algebra


def _model(rng, n, m, diagonal_r=True, dtype=np.float64):
    a = rng.normal(size=(n, n))
    b = rng.normal(size=(m, m))
    R = np.diag(rng.uniform(0.2, 1.0, m)) if diagonal_r else b @ b.T / m + 0.2 * np.eye(m)
    fields = [0.6 * rng.normal(size=(n, n)) / np.sqrt(n), a @ a.T / n + 0.1 * np.eye(n),
              rng.normal(size=(m, n)), R, rng.normal(size=n), np.eye(n)]
    return kalman.LGSSM(*[f.astype(dtype) for f in fields],
                        transition_offset=rng.normal(size=n).astype(dtype),
                        observation_offset=rng.normal(size=m).astype(dtype))


def _y(rng, shape, partial=True, dtype=np.float64):
    y = rng.normal(size=shape)
    y[..., min(3, shape[-2] - 1), :] = np.nan if shape[-2] > 1 else y[..., 0, :]
    if partial:
        y[rng.uniform(size=shape) < 0.1] = np.nan
    return y.astype(dtype)


def _max_rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


@pytest.mark.parametrize("n,m,T,chunk,group,diagonal_r,top", [
    (1, 1, 1, 128, 8, True, 0), (2, 1, 37, 8, 2, True, 0), (3, 2, 64, 4, 3, False, 0),
    (4, 3, 50, 7, 8, False, 0), (2, 2, 61, 4, 2, False, 4), (3, 1, 40, 4, 3, True, 16)])
def test_kernel_equals_sequential_float64(n, m, T, chunk, group, diagonal_r, top):
    """Filter and smoother; whole and partly missing rows, diagonal and correlated R
    (decorrelated step by step); one chunk, several, and groups with a partial last one (the
    largest case filters only, to keep the interpreter's time down); chunk scans with a top
    level scanned by recursive doubling (16 -> 8 -> 4 -> 2 -> 1 chunks a series, doubling at
    4; 10 chunks, doubling at the chunks)."""
    rng = np.random.default_rng(n * 100 + T)
    with jax.enable_x64(True):
        model = _model(rng, n, m, diagonal_r=diagonal_r)
        y = _y(rng, (3, T, m))
        ref = kalman.smooth(model, y, method="sequential")
        kw = dict(chunk=chunk, block=4, group=group, top=top)
        smooth = n < 4
        out = (filter_kernel.smooth_batch if smooth else filter_kernel.filter_batch)(model, jnp.asarray(y), **kw)
        ll = filter_kernel.filter_batch(model, jnp.asarray(y), write_states=False, **kw)
    for field in ref.filtered._fields:
        if field != "log_likelihood":
            assert _max_rel(out[field], getattr(ref.filtered, field)) < 1e-9, field
    assert _max_rel(ll["log_likelihood"], ref.log_likelihood) < 1e-9
    if not smooth:
        return
    assert _max_rel(out["smoothed_mean"], ref.mean) < 1e-9
    assert _max_rel(out["smoothed_cov"], ref.cov) < 1e-9
    if T > 1:
        assert _max_rel(out["lag_one_cov"], ref.lag_one_cov) < 1e-9


def test_kernel_with_row_loops_equals_sequential_float64():
    """State dimension above ``lane_algebra.LOOP_ROWS``: matrix products and the RTS
    element's solves run row by row in loops, elements load field by field and the fold takes
    its first element in the loop; filter, log-likelihood and smoother against
    ``"sequential"`` (correlated R, partial rows, several groups with a partial last one)."""
    rng = np.random.default_rng(606)
    with jax.enable_x64(True):
        model = _model(rng, 6, 2, diagonal_r=False)
        y = _y(rng, (2, 40, 2))
        ref = kalman.smooth(model, y, method="sequential")
        kw = dict(chunk=6, block=4, group=2)
        out = filter_kernel.smooth_batch(model, jnp.asarray(y), **kw)
        ll = filter_kernel.filter_batch(model, jnp.asarray(y), write_states=False, **kw)
    for field in ref.filtered._fields:
        if field != "log_likelihood":
            assert _max_rel(out[field], getattr(ref.filtered, field)) < 1e-9, field
    assert _max_rel(ll["log_likelihood"], ref.log_likelihood) < 1e-9
    assert _max_rel(out["smoothed_mean"], ref.mean) < 1e-9
    assert _max_rel(out["smoothed_cov"], ref.cov) < 1e-9
    assert _max_rel(out["lag_one_cov"], ref.lag_one_cov) < 1e-9


def _psd(rng, shape, n, scale=1.0):
    a = rng.normal(size=shape + (n, n))
    return scale * (a @ np.swapaxes(a, -1, -2) / n + 0.1 * np.eye(n))


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
    ka = lane_algebra
    rng = np.random.default_rng(5)
    n = 8
    with jax.enable_x64(True):
        G, W = rng.normal(size=(n, 3)), rng.normal(size=(n, n))
        J, C, M = _lanes(G @ G.T), _lanes(W @ W.T), _lanes(W[:, :3] @ W[:, :3].T)
        eta, mean = _lanes(rng.normal(size=n)), _lanes(rng.normal(size=n))
        affine = (_lanes(rng.normal(size=(n, n))), _lanes(rng.normal(size=n)), _lanes(np.eye(n)))
        eps = float(jnp.finfo(jnp.float64).eps)
        unrolled = ka._absorb(ka._information_rows(J, eta, eps), mean, C, affine)
        looped = ka._split_and_absorb(J, eta, eps, mean, C, affine)
        for a, b in zip(jax.tree.leaves(unrolled), jax.tree.leaves(looped)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
        B = _lanes(rng.normal(size=(n, n)))
        assert np.all(np.isfinite(jax.tree.leaves(ka.solve_psd(M, B, eps))))
        M = _lanes(_psd(rng, (), n))
        L = ka.cholesky(M, eps)
        by_cholesky = ka._solve_upper(ka.transpose(L), ka.solve_lower(L, B))
        for a, b in zip(jax.tree.leaves(by_cholesky), jax.tree.leaves(ka.solve_psd(M, B, eps))):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def _stacked_rows(fields, shapes):
    """Fields ``(N, *shape)`` as the kernels' lane-minor rows ``(R, N)`` (a symmetric field's
    upper triangle, row by row)."""
    rows = []
    for f, shape in zip(fields, shapes):
        if shape[0] == "symmetric":
            i, j = np.triu_indices(shape[1])
            rows.append(f[:, i, j].T)
        else:
            rows.append(f.reshape(len(f), -1).T)
    return np.concatenate(rows)


def _scan_inputs(rng, n, N):
    """``N`` random elements of each algebra as the kernels' lane-minor rows: ``(algebra,
    elements)`` for the filtering and the backward algebra (under ``jax.enable_x64``)."""
    filtering = [0.5 * rng.normal(size=(N, n, n)), rng.normal(size=(N, n)), _psd(rng, (N,), n),
                 rng.normal(size=(N, n)), _psd(rng, (N,), n, 0.3)]
    backward = [0.5 * rng.normal(size=(N, n, n)), rng.normal(size=(N, n)), _psd(rng, (N,), n)]
    return [(alg, jnp.asarray(_stacked_rows(fields, alg.element_shapes)))
            for alg, fields in ((chunk_scan.filter_algebra(n), filtering),
                                (chunk_scan.backward_algebra(n), backward))]


@pytest.mark.parametrize("reverse,group", [(False, 3), (True, 3), (False, 2), (True, 2), (True, 7)])
def test_chunk_scan_kernels_equal_the_reference(reverse, group):
    """The scan kernels (folds up the levels, propagations down) against the sequential
    reference, for both element algebras and several series: 7 -> 3 -> 1 groups (partial last
    groups), 7 -> 4 -> 2 -> 1 (three levels) and one group a series (no fold)."""
    rng = np.random.default_rng(12 + reverse)
    n, series, chunks, N = 3, 2, 7, 16
    with jax.enable_x64(True):
        for alg, elements in _scan_inputs(rng, n, N):
            ref = chunk_scan.chunk_scan_reference(alg, elements, series, chunks, reverse=reverse)
            out = chunk_scan.chunk_scan(alg, elements, series, chunks, reverse=reverse,
                                         group=group, block=2, interpret=True)
            lanes = series * chunks
            first = np.arange(lanes) % chunks == (chunks - 1 if reverse else 0)
            # The first chunk's state is "nothing yet"; the algebras ignore it. The states come
            # back with their rows padded to a power of two.
            assert out.shape[0] == chunk_scan.pow2(ref.shape[0])
            assert _max_rel(out[:ref.shape[0], :lanes][:, ~first], ref[:, ~first]) < 1e-12


def test_kernel_method_through_the_public_api():
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        model = _model(rng, 3, 2)
        y = _y(rng, (2, 2, 40, 2))
        seq = kalman.filter(model, y, method="sequential")
        ker = kalman.filter(model, y, method="kernel")
        for field in seq._fields:
            assert _max_rel(getattr(ker, field), getattr(seq, field)) < 1e-9, field
        assert ker.log_likelihood.shape == (2, 2)
        ll = kalman.log_likelihood(model, y, method="kernel")
        assert _max_rel(ll, seq.log_likelihood) < 1e-9
        ker_s = kalman.smooth(model, y, method="kernel")
        seq_s = kalman.smooth(model, y, method="sequential")
        for field in ("mean", "cov", "lag_one_cov"):
            assert _max_rel(getattr(ker_s, field), getattr(seq_s, field)) < 1e-9, field
        assert _max_rel(ker_s.filtered.cov, seq_s.filtered.cov) < 1e-9


@pytest.mark.parametrize("method", ["sequential", "parallel", "kernel"])
def test_filter_without_predictions(method):
    """``predictions=False``: the five prediction fields are None, the filtered moments and
    log-likelihood those of the full sequential filter, and so is the gradient (the kernel's
    reverse mode then rebuilds the predictions from the filtered moments)."""
    rng = np.random.default_rng(11)
    with jax.enable_x64(True):
        model = _model(rng, 3, 2, diagonal_r=False)
        y = _y(rng, (2, 33, 2))
        ref = kalman.filter(model, y, method="sequential")
        out = kalman.filter(model, y, method=method, predictions=False)
        for field in ("predicted_mean", "predicted_cov", "predicted_diffuse_cov",
                      "observation_mean", "observation_cov"):
            assert getattr(out, field) is None, field
        for field in ("mean", "cov", "log_likelihood_terms", "log_likelihood", "next_mean",
                      "next_cov"):
            assert _max_rel(getattr(out, field), getattr(ref, field)) < 1e-9, field

        def objective(theta, method, predictions):
            m_ = model.replace(transition_matrix=theta[0] * model.transition_matrix,
                               observation_cov=jnp.exp(theta[1]) * model.observation_cov)
            out = kalman.filter(m_, y, method=method, predictions=predictions)
            return out.log_likelihood.sum() + jnp.sum(out.mean ** 2) * 1e-3 + out.cov.sum()

        theta = jnp.array([0.9, -0.3])
        np.testing.assert_allclose(jax.grad(objective)(theta, method, False),
                                   jax.grad(objective)(theta, "sequential", True), rtol=1e-9)


def test_predictions_from_filtered_moments():
    """The kernel's predictions from the filtered moments equal the sequential filter's."""
    rng = np.random.default_rng(12)
    with jax.enable_x64(True):
        model = _model(rng, 4, 3, diagonal_r=False)
        ref = kalman.filter(model, _y(rng, (2, 25, 3)), method="sequential")
        out = filter_kernel.predictions_from_filtered(model, ref.mean, ref.cov)
        for field, value in out.items():
            assert _max_rel(value, getattr(ref, field)) < 1e-12, field


def test_kernel_float32_matches_float64():
    rng = np.random.default_rng(8)
    model64 = _model(rng, 4, 2)
    y = _y(rng, (2, 300, 2))
    with jax.enable_x64(True):
        ref = kalman.filter(model64, y, method="sequential")
    model32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), model64)
    out = kalman.filter(model32, y.astype(np.float32), method="kernel")
    assert out.mean.dtype == jnp.float32
    assert _max_rel(out.log_likelihood, ref.log_likelihood) < 1e-4
    assert _max_rel(out.mean, ref.mean) < 1e-4
    assert _max_rel(out.cov, ref.cov) < 1e-4


def test_kernel_float32_is_stable_over_long_series():
    """T = 1e5, 20 random stable models (correlated R for half), NaN rows and entries: the kernel
    in float32 stays finite and close to the float64 sequential filter, through both of its
    paths (states written, and the log-likelihood alone)."""
    model, y, ref_ll, ref_mean = float32_problems()
    means, lls, direct = [], [], []
    for s in range(y.shape[0]):
        one = jax.tree_util.tree_map(lambda a: jnp.asarray(a[s], jnp.float32), model)
        y32 = jnp.asarray(y[s:s + 1], jnp.float32)
        out = filter_kernel.filter_batch(one, y32)
        means.append(out["mean"][0])
        lls.append(out["log_likelihood_terms"][0].sum())
        direct.append(filter_kernel.filter_batch(one, y32, write_states=False)["log_likelihood"][0])
    check_float32(np.stack(means), np.stack(lls), ref_mean, ref_ll)
    check_float32(np.stack(means), np.stack(direct), ref_mean, ref_ll)


def test_kernel_gradients_equal_sequential():
    rng = np.random.default_rng(9)
    with jax.enable_x64(True):
        model = _model(rng, 2, 2)
        y = _y(rng, (2, 30, 2))

        def objective(theta, method):
            m_ = model.replace(transition_cov=jnp.exp(theta[0]) * model.transition_cov,
                               observation_cov=jnp.exp(theta[1]) * model.observation_cov)
            return (kalman.log_likelihood(m_, y, method=method).sum()
                    + jnp.sum(kalman.filter(m_, y, method=method).mean ** 2) * 1e-3)

        theta = jnp.array([0.2, -0.4])
        np.testing.assert_allclose(jax.grad(objective)(theta, "kernel"),
                                   jax.grad(objective)(theta, "sequential"), rtol=1e-9)


@pytest.mark.parametrize("case", ["diffuse", "time_varying", "batched_model", "large_state"])
def test_unsupported_inputs_fall_back_with_the_same_results(case):
    rng = np.random.default_rng(10)
    with jax.enable_x64(True):
        n = 9 if case == "large_state" else 2
        model = _model(rng, n, 2)
        y = _y(rng, (2, 20, 2))
        if case == "diffuse":
            model = model.replace(initial_diffuse_cov=np.eye(n))
        if case == "time_varying":
            model = model.replace(transition_matrix=np.stack([model.transition_matrix] * 20))
        if case == "batched_model":
            model = model.replace(transition_cov=np.stack([model.transition_cov] * 2), time_varying=())
        seq = kalman.smooth(model, y, method="sequential")
        ker = kalman.filter(model, y, method="kernel")
        ll = kalman.log_likelihood(model, y, method="kernel")
        if case in ("diffuse", "time_varying"):
            assert _max_rel(kalman.smooth(model, y, method="kernel").mean, seq.mean) < 1e-9
    assert _max_rel(ker.mean, seq.filtered.mean) < 1e-9
    assert _max_rel(ll, seq.log_likelihood) < 1e-9


def test_kernels_lower_to_triton_for_cuda():
    """The GPU path compiles to Triton IR (checked here without a GPU)."""
    model = kalman.LGSSM(np.eye(4, dtype=np.float32) * 0.9, np.eye(4, dtype=np.float32),
                         np.ones((2, 4), np.float32), np.eye(2, dtype=np.float32),
                         np.zeros(4, np.float32), np.eye(4, dtype=np.float32))
    y = jax.ShapeDtypeStruct((2, 1000, 2), jnp.float32)
    unchecked = [jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
    # summary, the chunk scan's fold and propagation, fix-up; the smoother adds the backward
    # summary, a second chunk scan and the backward pass. The chunk scans have three levels
    # (32 -> 8 -> 2 -> 1 chunks a series), all run by one lowered fold and one propagation.
    assert len(chunk_scan.levels(-(-1000 // filter_kernel.default_chunk(1000)))) == 3
    for fn, kernels in ((lambda m_, y_: filter_kernel.filter_batch(m_, y_, interpret=False), 4),
                        (lambda m_, y_: filter_kernel.filter_batch(m_, y_, write_states=False,
                                                            interpret=False), 4),
                        (lambda m_, y_: filter_kernel.smooth_batch(m_, y_, interpret=False), 8)):
        exported = jax.export.export(jax.jit(fn), platforms=["cuda"], disabled_checks=unchecked)(model, y)
        assert exported.mlir_module().count("__gpu$xla.gpu.triton") == kernels
    # With the top level scanned by recursive doubling (eight warps, a barrier between rounds),
    # the 32 chunks a series are that level: no fold, no propagation.
    for fn, kernels in ((lambda m_, y_: filter_kernel.filter_batch(m_, y_, write_states=False, top=256,
                                                            interpret=False), 3),
                        (lambda m_, y_: filter_kernel.smooth_batch(m_, y_, top=256, interpret=False), 6)):
        exported = jax.export.export(jax.jit(fn), platforms=["cuda"],
                                     disabled_checks=unchecked)(model, y)
        assert exported.mlir_module().count("__gpu$xla.gpu.triton") == kernels


_COUNT_TT_IMPORTS = """
import collections, importlib._bootstrap as bootstrap
import jax, jax.numpy as jnp, numpy as np
from probssm import kalman
from probssm.kalman.ops import filter_kernel
tries = collections.Counter()
find_and_load = bootstrap._find_and_load
def counting(name, import_):
    tries[name] += 1
    return find_and_load(name, import_)
bootstrap._find_and_load = counting
eye = np.eye(2, dtype=np.float32)
model = kalman.LGSSM(eye, eye, np.ones((1, 2), np.float32), np.eye(1, dtype=np.float32),
                     np.zeros(2, np.float32), eye)
unchecked = [jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
jax.export.export(jax.jit(lambda m_, y_: filter_kernel.filter_batch(m_, y_, interpret=False)),
                  platforms=["cuda"], disabled_checks=unchecked)(
    model, jax.ShapeDtypeStruct((1, 300, 1), jnp.float32))
print(max(count for name, count in tries.items() if name.endswith(".tt")))
"""


def test_lowering_looks_up_the_triton_dialect_module_once():
    """MLIR's bindings import a dialect's Python module before wrapping one of its values and
    retry after every failure; with :mod:`probssm.kalman.ops._jaxlib_triton_compat` registered the Triton
    dialect's module is found on the first lookup (without it: three failing imports per
    Triton pointer value, thousands per kernel). A fresh interpreter, so that no earlier
    lowering has registered it."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _COUNT_TT_IMPORTS], capture_output=True,
                         text=True, check=True)
    assert int(out.stdout.split()[-1]) == 1, out.stdout


def test_concrete_inputs_inside_an_outer_jit():
    """Value checks on concrete closure constants work under an enclosing jit too."""
    rng = np.random.default_rng(11)
    with jax.enable_x64(True):
        model = _model(rng, 2, 1)
        y = _y(rng, (1, 12, 1))
        outer = jax.jit(lambda s: s * kalman.log_likelihood(model, y, method="kernel"))
        direct = kalman.log_likelihood(model, y, method="sequential")
        np.testing.assert_allclose(outer(2.0), 2.0 * np.asarray(direct), rtol=1e-9)


@pytest.mark.parametrize("reverse", [False, True])
def test_deep_chunk_scan_equals_the_reference(reverse):
    """Five levels with partial groups at every level (21 -> 11 -> 6 -> 3 -> 2 -> 1 chunks a
    series in groups of 2), three series, the filtering algebra."""
    rng = np.random.default_rng(21 + reverse)
    n, series, chunks = 2, 3, 21
    N = series * chunks
    assert len(chunk_scan.levels(chunks, 2)) == 5
    with jax.enable_x64(True):
        fields = [0.5 * rng.normal(size=(N, n, n)), rng.normal(size=(N, n)), _psd(rng, (N,), n),
                  rng.normal(size=(N, n)), _psd(rng, (N,), n, 0.3)]
        alg = chunk_scan.filter_algebra(n)
        elements = jnp.asarray(_stacked_rows(fields, alg.element_shapes))
        ref = chunk_scan.chunk_scan_reference(alg, elements, series, chunks, reverse=reverse)
        out = chunk_scan.chunk_scan(alg, elements, series, chunks, reverse=reverse, group=2,
                                     block=4, interpret=True)
    first = np.arange(N) % chunks == (chunks - 1 if reverse else 0)
    assert _max_rel(out[:ref.shape[0], :N][:, ~first], ref[:, ~first]) < 1e-12


@pytest.mark.parametrize("top,reverse", [(4, False), (8, True), (32, False), (32, True),
                                         (64, False), (64, True)])
def test_top_level_scan_equals_the_reference(top, reverse):
    """Folds up to the first level of at most ``top`` elements a series, recursive doubling
    there, propagations down (21 -> 11 -> 6 -> 3 -> 2 -> 1 chunks a series in groups of 2):
    the doubling at the fourth level (``top = 4``), the third (8) or the chunks themselves (32:
    one series a program; 64: two series a program, the second program half empty), both
    algebras, three series."""
    rng = np.random.default_rng(31 + top + reverse)
    n, series, chunks = 2, 3, 21
    N = series * chunks
    hierarchy = chunk_scan.levels(chunks, 2)
    assert chunk_scan._top_level(hierarchy, top) == {4: 3, 8: 2, 32: 0, 64: 0}[top]
    with jax.enable_x64(True):
        for alg, elements in _scan_inputs(rng, n, N):
            ref = chunk_scan.chunk_scan_reference(alg, elements, series, chunks, reverse=reverse)
            out = chunk_scan.chunk_scan(alg, elements, series, chunks, reverse=reverse, group=2,
                                         block=4, top=top, interpret=True)
            first = np.arange(N) % chunks == (chunks - 1 if reverse else 0)
            assert _max_rel(out[:ref.shape[0], :N][:, ~first], ref[:, ~first]) < 1e-12
            # The first chunk's state is the zero state ("nothing yet"), written by the scan.
            np.testing.assert_array_equal(out[:ref.shape[0], :N][:, first], 0.0)


def test_top_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="top must be 0 or a power of two"):
        chunk_scan._top_level(chunk_scan.levels(21, 2), 12)


def test_chunk_scan_levels():
    """The hierarchy: counts shrink by the group size up to one group a series; a group below
    2 is refused."""
    assert chunk_scan.levels(7813, 8) == [(7813, 977, 8), (977, 123, 8), (123, 16, 8),
                                           (16, 2, 8), (2, 1, 2)]
    assert chunk_scan.levels(1, 8) == [(1, 1, 1)]
    with pytest.raises(ValueError, match="group must be at least 2"):
        chunk_scan.levels(10, 1)


@given(st.integers(1, 10**6), st.integers(2, 64))
def test_chunk_scan_levels_cover_every_element(chunks, group):
    """For any count and group size: each level's groups hold all of its elements
    (``G (groups - 1) < count <= G groups``), the next level counts those groups, the last
    level is one group, and the depth is about ``2 G log_G(chunks)`` (at most one level more
    than the ceiling of the logarithm)."""
    hierarchy = chunk_scan.levels(chunks, group)
    assert hierarchy[0][0] == chunks and hierarchy[-1][1] == 1
    for (count, groups, G), above in zip(hierarchy, hierarchy[1:] + [None]):
        assert G == min(group, count) and G * (groups - 1) < count <= G * groups
        if above is not None:
            assert above[0] == groups
    assert len(hierarchy) <= max(1, int(np.ceil(np.log(chunks) / np.log(group) - 1e-9)) + 1)


_FIELD_SHAPES = st.one_of(
    st.integers(1, 8).map(lambda n: (n,)),
    st.tuples(st.integers(1, 8), st.integers(1, 8)),
    st.integers(1, 8).map(lane_algebra.symmetric))


@given(st.lists(_FIELD_SHAPES, min_size=1, max_size=5))
def test_stacked_rows_round_trip(shapes):
    """For any fields: ``unpack`` cuts ``rows(shapes)`` stacked rows into vectors, matrices
    and symmetric matrices (upper triangle row by row, mirrored), and ``pack`` restores the
    rows exactly; a symmetric field's rows are ``np.triu_indices`` of the matrix."""
    flat = list(range(chunk_scan.rows(shapes)))
    fields = lane_algebra.unpack(flat, shapes)
    assert lane_algebra.pack(fields, shapes) == flat
    pos = 0
    for field, shape in zip(fields, shapes):
        if shape[0] == "symmetric":
            n = shape[1]
            M = np.asarray(field)
            np.testing.assert_array_equal(M, M.T)
            np.testing.assert_array_equal(M[np.triu_indices(n)],
                                          np.arange(pos, pos + n * (n + 1) // 2))
        else:
            np.testing.assert_array_equal(np.ravel(field),
                                          np.arange(pos, pos + int(np.prod(shape))))
        pos += lane_algebra.field_rows(shape)
