"""method="kernel" on time-varying models (per-step F_t, Q_t, b_t, H_t, R_t, d_t) against the
sequential recursions: filter, smoother, log-likelihood and the gradient with respect to every
time-varying field, on CPU through the Pallas interpreter; a GP on irregular times through the
kernel."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from kalman.ops.arrays import max_rel, psd

from probssm import gp, kalman
from probssm.kalman.model import FIELD_NAMES
from probssm.kalman.ops import filter_kernel, filter_programs

# (n, m, T, time-varying fields): every field varying with correlated R, and the fields a GP
# varies (F, Q, R) beside time-invariant H, b, d.
CASES = {
    "n3_m2_all": (3, 2, 45, ("transition_matrix", "transition_cov", "transition_offset",
                              "observation_matrix", "observation_cov", "observation_offset")),
    "n1_m1_gp_like": (1, 1, 61, ("transition_matrix", "transition_cov", "observation_cov")),
}


@functools.cache
def _problem(case):
    """A model whose fields ``varying`` have one value a step, and a batch of 2 series with a
    whole missing row and missing entries."""
    n, m, T, varying = CASES[case]
    rng = np.random.default_rng(n * 10 + m)
    steps = (T,)
    fields = dict(
        transition_matrix=0.7 * rng.normal(size=steps + (n, n)) / np.sqrt(n),
        transition_cov=psd(rng, steps, n),
        observation_matrix=rng.normal(size=steps + (m, n)),
        observation_cov=psd(rng, steps, m, 0.5),
        transition_offset=rng.normal(size=steps + (n,)),
        observation_offset=rng.normal(size=steps + (m,)))
    fields = {k: v if k in varying else v[0] for k, v in fields.items()}
    with jax.enable_x64(True):
        model = kalman.LGSSM(initial_mean=rng.normal(size=n), initial_cov=psd(rng, (), n),
                             time_varying=varying, **fields)
    y = rng.normal(size=(2, T, m))
    y[:, 5] = np.nan
    y[rng.uniform(size=y.shape) < 0.15] = np.nan
    return model, y


@functools.partial(jax.jit, static_argnames=("chunk", "group"))
def _kernel(model, y, chunk, group):
    """The kernel smoother (with the filter's fields) and log-likelihood, one program: they
    compile the summary and chunk scan they share once."""
    kw = dict(chunk=chunk, block=4, group=group)
    return (filter_kernel.smooth_batch(model, y, **kw),
            filter_kernel.log_likelihood_batch(model, y, **kw))


def _check_outputs(smoothed, ll, ref):
    """Filter (every field), smoother (means, covariances, lag-one covariances) and
    log-likelihood of each series to 1e-9 of the sequential ``ref``."""
    for field in ref.filtered._fields:
        if field != "log_likelihood":
            assert max_rel(getattr(smoothed.filtered, field),
                           getattr(ref.filtered, field)) < 1e-9, field
    assert max_rel(ll, ref.log_likelihood) < 1e-9
    assert max_rel(smoothed.mean, ref.mean) < 1e-9
    assert max_rel(smoothed.cov, ref.cov) < 1e-9
    assert max_rel(smoothed.lag_one_cov, ref.lag_one_cov) < 1e-9


def test_time_varying_kernel_equals_sequential():
    """Chunks of 7 steps (9 chunks a series, the last partial; chunk scans in groups of 3 over
    two levels), so that many chunks start from the transition of the step before them; the
    log-likelihood also from the fix-up that writes no states."""
    model, y = _problem("n1_m1_gp_like")
    assert filter_kernel.supported(model, y)
    with jax.enable_x64(True):
        ref = kalman.smooth(model, y, method="sequential")
        out, ll = _kernel(model, jnp.asarray(y), 7, 3)
        _check_outputs(kalman.SmoothResult(out.smoothed_mean, out.smoothed_cov,
                                           out.lag_one_cov, out.filtered), ll, ref)


def _objective(model, y, method):
    """Log-likelihood, filtered and smoothed moments through the public API (every reverse mode
    of the kernel: the score, the filter's and the smoother's adjoints), and the outputs."""
    ll = kalman.log_likelihood(model, y, method=method)
    s = kalman.smooth(model, y, method=method)
    value = (jnp.sum(jnp.asarray([1.0, -0.7]) * ll) + 0.1 * jnp.sum(s.mean ** 2)
             + 0.1 * jnp.sum(s.cov) + 0.05 * jnp.sum(s.lag_one_cov)
             + 0.1 * jnp.sum(s.filtered.mean * s.filtered.predicted_mean))
    return value, (s, ll)


# Both methods one program, the model traced (every field an input; the prior is proper by
# construction, so the kernel's route is settled statically).
_value_and_gradients = jax.jit(lambda model, y: tuple(
    jax.value_and_grad(_objective, has_aux=True)(model, y, method)
    for method in ("kernel", "sequential")))


def test_time_varying_outputs_and_gradients_equal_sequential():
    """Every field varying (correlated R_t, n = 3, m = 2), two chunks of the default length:
    the outputs, and the gradient with respect to every field, per step, to 1e-9 of its largest
    entry (covariances along symmetric directions)."""
    model, y = _problem("n3_m2_all")
    assert filter_kernel.supported(model, y)
    with jax.enable_x64(True):
        ((_, (smoothed, ll)), kernel), ((_, (ref, _)), sequential) = _value_and_gradients(
            model, jnp.asarray(y))
        _check_outputs(smoothed, ll, ref)
    for name in FIELD_NAMES:
        got, want = np.asarray(getattr(kernel, name)), np.asarray(getattr(sequential, name))
        assert got.shape == np.shape(getattr(model, name)), name
        if name.endswith("_cov"):
            want = 0.5 * (want + np.swapaxes(want, -1, -2))
        assert max_rel(got, want) < 1e-9 or np.max(np.abs(want)) == 0, name
        if name in model.time_varying and name.startswith("transition"):
            assert np.all(got[-1] == 0), name  # F, Q, b of the last step only predict past the data


def test_gp_on_irregular_times_runs_the_kernel():
    """A GP on irregular times (a time-varying LGSSM with per-gap F_t, Q_t and per-point R_t,
    n = m = 1), two series with missing values: ``gp.log_marginal_likelihood`` and
    ``gp.posterior`` (the smoother, over training and new times, one new time repeating a
    training time: a zero gap) with ``method="kernel"`` take the kernel, and their values and
    gradients in the hyperparameters equal the sequential filter's."""
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.exponential(1.0, size=50))
    y = np.stack([np.sin(t / 5), np.cos(t / 7)], axis=1) + 0.3 * rng.normal(size=(50, 2))
    y[7] = np.nan
    y[20, 1] = np.nan
    noise = rng.uniform(0.05, 0.2, size=50)
    t_new = np.array([t[10], 0.5 * (t[30] + t[31]), t[-1] + 2.0])

    def objective(theta, method):
        kernel = gp.Matern12(jnp.exp(theta[0]), variance=jnp.exp(theta[1]))
        noise_ = noise * jnp.exp(theta[2])
        post = gp.posterior(kernel, t, y, t_new, noise_, method=method)
        value = jnp.sum(gp.log_marginal_likelihood(kernel, t, y, noise_, method=method))
        return value + jnp.sum(post.mean) + jnp.sum(post.variance), value

    with jax.enable_x64(True):
        theta = jnp.log(jnp.array([3.0, 1.2, 1.0]))
        model = gp.state_space_model(gp.Matern12(3.0), jnp.asarray(t), jnp.asarray(noise))
        assert filter_programs.varying_keys(model) == ("F", "Q", "R")
        assert filter_kernel.supported(model, y.T[..., None])
        assert "pallas_call" in str(jax.make_jaxpr(lambda th: objective(th, "kernel"))(theta))
        ((_, v_k), g_k), ((_, v_s), g_s) = jax.jit(lambda th: tuple(
            jax.value_and_grad(objective, has_aux=True)(th, method)
            for method in ("kernel", "sequential")))(theta)
        assert float(abs(v_k - v_s)) < 1e-9 * float(abs(v_s))
        assert max_rel(g_k, g_s) < 1e-9


def test_time_varying_kernels_lower_to_triton_for_cuda():
    """The time-varying programs compile to Triton IR (checked here without a GPU), one
    launch for each of the time-invariant model's."""
    T = 1000
    eye = np.eye(2, dtype=np.float32)

    def steps(a):
        return np.broadcast_to(a, (T,) + a.shape)

    fixed = kalman.LGSSM(0.9 * eye, eye, np.ones((1, 2), np.float32), np.eye(1, dtype=np.float32),
                         np.zeros(2, np.float32), eye)
    varying = fixed.replace(transition_matrix=steps(0.9 * eye), transition_cov=steps(eye),
                            observation_cov=steps(np.eye(1, dtype=np.float32)))
    y = jax.ShapeDtypeStruct((2, T, 1), jnp.float32)
    unchecked = [jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")]
    for fn in (filter_kernel.filter_batch, filter_kernel.log_likelihood_batch,
               filter_kernel.smooth_batch):
        counts = [jax.export.export(jax.jit(functools.partial(fn, interpret=False)),
                                    platforms=["cuda"], disabled_checks=unchecked)(model, y)
                  .mlir_module().count("__gpu$xla.gpu.triton") for model in (fixed, varying)]
        assert counts[0] == counts[1] > 0, (fn.__name__, counts)
