"""method="kernel" (fused chunked Pallas filter and smoother) against the sequential recursions and
its own reverse mode, on CPU through the Pallas interpreter, and its lowering to Triton for
CUDA."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from kalman.ops.arrays import max_rel
from kalman.test_parallel import LONG_SERIES_GROUP, check_float32, float32_problems

from probssm import kalman
from probssm.kalman.ops import chunk_scan, filter_kernel


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


@functools.partial(jax.jit, static_argnames=("smooth", "chunk", "block", "group", "top"))
def _kernel_and_log_likelihood(model, y, smooth, chunk=None, block=filter_kernel.DEFAULT_BLOCK,
                               group=chunk_scan.DEFAULT_GROUP, top=None):
    """The kernel smoother (``smooth``) or filter and the log-likelihood kernel of one
    configuration, as one program: XLA compiles the summary and chunk scan they share once
    (compiled as two programs they took a third more compile time, which is most of these
    tests' time)."""
    kw = dict(chunk=chunk, block=block, group=group, top=top)
    out = (filter_kernel.smooth_batch if smooth else filter_kernel.filter_batch)(model, y, **kw)
    return out, filter_kernel.log_likelihood_batch(model, y, **kw)


@pytest.mark.parametrize("n,m,T,chunk,group,diagonal_r,top", [
    (1, 1, 1, 128, 8, True, 0), (2, 1, 37, 8, 2, True, 0), (3, 2, 64, 4, 3, False, 0),
    (4, 3, 50, 7, 8, False, 0), (2, 2, 61, 4, 2, False, 4), (3, 1, 40, 4, 3, True, 16)])
def test_kernel_equals_sequential_float64(n, m, T, chunk, group, diagonal_r, top):
    """Filter and smoother; whole and partly missing rows, diagonal and correlated R
    (decorrelated step by step); one chunk, several, and groups with a partial last one (the
    largest case filters only, to keep the interpreter's time down); chunk scans with a top
    level scanned by recursive doubling (16 -> 8 -> 4 -> 2 -> 1 chunks a series, doubling at
    4; 10 chunks, doubling at the chunks),."""
    rng = np.random.default_rng(n * 100 + T)
    with jax.enable_x64(True):
        model = _model(rng, n, m, diagonal_r=diagonal_r)
        y = _y(rng, (3, T, m))
        ref = kalman.smooth(model, y, method="sequential")
        smooth = n < 4
        out, ll = _kernel_and_log_likelihood(model, jnp.asarray(y), smooth, chunk=chunk, block=4,
                                             group=group, top=top)
    filtered = out.filtered if smooth else out
    for field in ref.filtered._fields:
        if field != "log_likelihood":
            assert max_rel(getattr(filtered, field), getattr(ref.filtered, field)) < 1e-9, field
    assert max_rel(ll, ref.log_likelihood) < 1e-9
    if not smooth:
        return
    assert max_rel(out.smoothed_mean, ref.mean) < 1e-9
    assert max_rel(out.smoothed_cov, ref.cov) < 1e-9
    if T > 1:
        assert max_rel(out.lag_one_cov, ref.lag_one_cov) < 1e-9


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
        out, ll = _kernel_and_log_likelihood(model, jnp.asarray(y), True, chunk=6, block=4,
                                             group=2)
    for field in ref.filtered._fields:
        if field != "log_likelihood":
            assert max_rel(getattr(out.filtered, field), getattr(ref.filtered, field)) < 1e-9, field
    assert max_rel(ll, ref.log_likelihood) < 1e-9
    assert max_rel(out.smoothed_mean, ref.mean) < 1e-9
    assert max_rel(out.smoothed_cov, ref.cov) < 1e-9
    assert max_rel(out.lag_one_cov, ref.lag_one_cov) < 1e-9


def test_kernel_method_through_the_public_api():
    """Filter, log-likelihood and smoother with the kernel's defaults (chunk length, groups and
    the chunk scan's top level, :func:`~probssm.kalman.ops.chunk_scan.default_top`) against the
    sequential recursions, for two batch axes."""
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        model = _model(rng, 3, 2)
        y = _y(rng, (2, 2, 40, 2))
        # The entry points of each method traced into one program (the kernel's filter and
        # smoother then compile their shared forward pass once). The model is a concrete
        # constant, as in an eager call, so the calls take the eager call's route.
        ker, ll, ker_s = jax.jit(lambda y_: (
            kalman.filter(model, y_, method="kernel"),
            kalman.log_likelihood(model, y_, method="kernel"),
            kalman.smooth(model, y_, method="kernel")))(y)
        seq, seq_s = jax.jit(lambda y_: (kalman.filter(model, y_, method="sequential"),
                                         kalman.smooth(model, y_, method="sequential")))(y)
        for field in seq._fields:
            assert max_rel(getattr(ker, field), getattr(seq, field)) < 1e-9, field
        assert ker.log_likelihood.shape == (2, 2)
        assert max_rel(ll, seq.log_likelihood) < 1e-9
        for field in ("mean", "cov", "lag_one_cov"):
            assert max_rel(getattr(ker_s, field), getattr(seq_s, field)) < 1e-9, field
        assert max_rel(ker_s.filtered.cov, seq_s.filtered.cov) < 1e-9


def _filter_objective(theta, model, y, method, predictions):
    m_ = model.replace(transition_matrix=theta[0] * model.transition_matrix,
                       observation_cov=jnp.exp(theta[1]) * model.observation_cov)
    out = kalman.filter(m_, y, method=method, predictions=predictions)
    return out.log_likelihood.sum() + jnp.sum(out.mean ** 2) * 1e-3 + out.cov.sum()


# Jitted: eagerly, a gradient compiles its forward and backward passes (and many small
# operations) as programs of their own.
_filter_objective_gradient = jax.jit(jax.grad(_filter_objective),
                                     static_argnames=("method", "predictions"))


@functools.cache
def _without_predictions_reference():
    """The problem of :func:`test_filter_without_predictions`, its full sequential filter and the
    gradient of its objective through it: computed once a process (its cases share an xdist
    group)."""
    rng = np.random.default_rng(11)
    with jax.enable_x64(True):
        model = _model(rng, 3, 2, diagonal_r=False)
        y = _y(rng, (2, 33, 2))
        ref = kalman.filter(model, y, method="sequential")
        theta = jnp.array([0.9, -0.3])
        grad = _filter_objective_gradient(theta, model, y, method="sequential", predictions=True)
    return model, y, ref, theta, grad


@pytest.mark.xdist_group("filter_without_predictions")
@pytest.mark.parametrize("method", ["sequential", "parallel", "kernel"])
def test_filter_without_predictions(method):
    """``predictions=False``: the five prediction fields are None, the filtered moments and
    log-likelihood those of the full sequential filter, and so is the gradient (the kernel's
    reverse mode then rebuilds the predictions from the filtered moments)."""
    model, y, ref, theta, ref_grad = _without_predictions_reference()
    with jax.enable_x64(True):
        out = kalman.filter(model, y, method=method, predictions=False)
        for field in ("predicted_mean", "predicted_cov", "predicted_diffuse_cov",
                      "observation_mean", "observation_cov"):
            assert getattr(out, field) is None, field
        for field in ("mean", "cov", "log_likelihood_terms", "log_likelihood", "next_mean",
                      "next_cov"):
            assert max_rel(getattr(out, field), getattr(ref, field)) < 1e-9, field
        np.testing.assert_allclose(
            _filter_objective_gradient(theta, model, y, method=method, predictions=False),
            ref_grad, rtol=1e-9)


def test_predictions_from_filtered_moments():
    """The kernel's predictions from the filtered moments equal the sequential filter's."""
    rng = np.random.default_rng(12)
    with jax.enable_x64(True):
        model = _model(rng, 4, 3, diagonal_r=False)
        ref = kalman.filter(model, _y(rng, (2, 25, 3)), method="sequential")
        # Jitted: eagerly, each of its small operations compiled as a program of its own.
        out = jax.jit(filter_kernel.predictions_from_filtered)(model, ref.mean, ref.cov)
        for field, value in out.items():
            assert max_rel(value, getattr(ref, field)) < 1e-12, field


def test_kernel_float32_matches_float64():
    rng = np.random.default_rng(8)
    model64 = _model(rng, 4, 2)
    y = _y(rng, (2, 300, 2))
    with jax.enable_x64(True):
        ref = kalman.filter(model64, y, method="sequential")
    model32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), model64)
    out = kalman.filter(model32, y.astype(np.float32), method="kernel")
    assert out.mean.dtype == jnp.float32
    assert max_rel(out.log_likelihood, ref.log_likelihood) < 1e-4
    assert max_rel(out.mean, ref.mean) < 1e-4
    assert max_rel(out.cov, ref.cov) < 1e-4


@pytest.mark.slow
@pytest.mark.xdist_group(LONG_SERIES_GROUP)
def test_kernel_float32_is_stable_over_long_series():
    """T = 1e5, 20 random stable models (correlated R for half), NaN rows and entries: the kernel
    in float32 stays finite and close to the float64 sequential filter, through both of its
    paths (states written, and the log-likelihood alone)."""
    model, y, ref_ll, ref_mean = float32_problems()
    means, lls, direct = [], [], []
    for s in range(y.shape[0]):
        one = jax.tree_util.tree_map(lambda a: jnp.asarray(a[s], jnp.float32), model)
        y32 = jnp.asarray(y[s:s + 1], jnp.float32)
        out, ll = _kernel_and_log_likelihood(one, y32, False)
        means.append(out.mean[0])
        lls.append(out.log_likelihood_terms[0].sum())
        direct.append(ll[0])
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

        # Jitted, both gradients one program (eager, each compiled its forward and backward
        # passes and many small operations as programs of their own).
        theta = jnp.array([0.2, -0.4])
        kernel, sequential = jax.jit(lambda t: (jax.grad(objective)(t, "kernel"),
                                                jax.grad(objective)(t, "sequential")))(theta)
        np.testing.assert_allclose(kernel, sequential, rtol=1e-9)


@pytest.mark.parametrize("case", ["diffuse", "batched_model", "large_state"])
def test_unsupported_inputs_fall_back_with_the_same_results(case):
    rng = np.random.default_rng(10)
    with jax.enable_x64(True):
        n = 9 if case == "large_state" else 2
        model = _model(rng, n, 2)
        y = _y(rng, (2, 20, 2))
        if case == "diffuse":
            model = model.replace(initial_diffuse_cov=np.eye(n))
        if case == "batched_model":
            model = model.replace(transition_cov=np.stack([model.transition_cov] * 2), time_varying=())
        smoothed = case == "diffuse"
        # One program for the case (the model a concrete constant: routed as an eager call).
        seq, ker, ll, ker_s = jax.jit(lambda y_: (
            kalman.smooth(model, y_, method="sequential"),
            kalman.filter(model, y_, method="kernel"),
            kalman.log_likelihood(model, y_, method="kernel"),
            kalman.smooth(model, y_, method="kernel") if smoothed else None))(y)
        if smoothed:
            assert max_rel(ker_s.mean, seq.mean) < 1e-9
    assert max_rel(ker.mean, seq.filtered.mean) < 1e-9
    assert max_rel(ll, seq.log_likelihood) < 1e-9


def test_kernels_lower_to_triton_for_cuda():
    """The GPU path compiles to Triton IR (checked here without a GPU)."""
    model = kalman.LGSSM(np.eye(4, dtype=np.float32) * 0.9, np.eye(4, dtype=np.float32),
                         np.ones((2, 4), np.float32), np.eye(2, dtype=np.float32),
                         np.zeros(4, np.float32), np.eye(4, dtype=np.float32))
    y = jax.ShapeDtypeStruct((2, 1000, 2), jnp.float32)
    unchecked = [jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
    # summary, the chunk scan's fold and propagation, fix-up; the smoother adds the backward
    # summary, a second chunk scan and the backward pass. Folded up to one group a series
    # (top=0), the chunk scans have three levels (32 -> 8 -> 2 -> 1 chunks a series), all run by
    # one lowered fold and one propagation.
    assert len(chunk_scan.levels(-(-1000 // filter_kernel.default_chunk(1000)))) == 3
    folds = dict(top=0, interpret=False)
    for fn, kernels in ((lambda m_, y_: filter_kernel.filter_batch(m_, y_, **folds), 4),
                        (lambda m_, y_: filter_kernel.log_likelihood_batch(m_, y_, **folds), 4),
                        (lambda m_, y_: filter_kernel.smooth_batch(m_, y_, **folds), 8)):
        exported = jax.export.export(jax.jit(fn), platforms=["cuda"],
                                     disabled_checks=unchecked)(model, y)
        assert exported.mlir_module().count("__gpu$xla.gpu.triton") == kernels
    # With the top level scanned by recursive doubling (eight warps, a barrier between rounds),
    # the 32 chunks a series are that level: no fold, no propagation. At n = 4 that is the
    # default (top=None).
    for top in (256, None):
        for fn, kernels in (
                (lambda m_, y_: filter_kernel.log_likelihood_batch(m_, y_, top=top,
                                                                   interpret=False), 3),
                (lambda m_, y_: filter_kernel.smooth_batch(m_, y_, top=top, interpret=False), 6)):
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
