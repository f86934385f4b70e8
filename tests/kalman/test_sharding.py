"""Batched filtering and panel fits spread over several devices equal one device.

JAX fixes its device count when it starts, so the comparison runs in a fresh interpreter with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``: four CPU devices. There every result is
computed twice, sharded (the default) and on one device (``jax.default_device``).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from probssm.kalman import sharding

# one worker runs them all: the four-device interpreter (the fixture) starts once
pytestmark = pytest.mark.xdist_group("sharding")

SCRIPT = textwrap.dedent(r"""
    import json
    import jax, jax.numpy as jnp, numpy as np
    from probssm import LocalLevel, kalman
    from probssm.datasets import load_us_employment
    from probssm.fit import batched
    from probssm.kalman import sharding

    out = {"devices": len(jax.devices()), "sharding_devices": len(sharding.devices())}

    def devices_of(a):
        return sorted(d.id for d in a.sharding.device_set)

    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        y = np.cumsum(rng.normal(size=(10, 40, 2)), axis=1)
        y[3, 5, 0] = np.nan
        y[7, 11] = np.nan
        F = jnp.array([[1.0, 0.1], [0.0, 0.9]])
        model = kalman.LGSSM(F, 0.3 * jnp.eye(2), jnp.eye(2), jnp.diag(jnp.array([1.0, 0.5])),
                             jnp.zeros(2), 10.0 * jnp.eye(2))
        # a batched model field too: per-series initial means (10, 2)
        model = model.replace(initial_mean=jnp.asarray(rng.normal(size=(10, 2))))

        def compute():
            f = kalman.filter(model, y)
            s = kalman.smooth(model.replace(initial_mean=model.initial_mean[:8]), y[:8])  # 8 series: 2 a device, the output stays sharded
            ll = kalman.log_likelihood(model, y)
            g = jax.grad(lambda q: kalman.log_likelihood(
                model.replace(transition_cov=q * jnp.eye(2)), y).sum())(0.3)
            return f, s, ll, g

        f, s, ll, g = compute()
        out["filter_devices"] = devices_of(f.mean)
        out["smooth_spec"] = list(s.mean.sharding.spec)
        out["smooth_devices"] = devices_of(s.mean)
        out["smooth_shard_rows"] = sorted({sh.data.shape[0] for sh in s.mean.addressable_shards})
        with jax.default_device(jax.devices()[0]):
            f1, s1, ll1, g1 = compute()
            out["one_device"] = devices_of(f1.mean)
        diff = lambda a, b: float(np.nanmax(np.abs(np.asarray(a) - np.asarray(b))))
        out["filter_diff"] = max(diff(f.mean, f1.mean), diff(f.cov, f1.cov))
        out["smooth_diff"] = max(diff(s.mean, s1.mean), diff(s.cov, s1.cov))
        out["loglik_diff"] = diff(ll, ll1)
        out["grad_rel"] = abs(float(g - g1)) / abs(float(g1))

        # the fused kernel's path (the default on a GPU; a shared model): series spread too
        shared = model.replace(initial_mean=jnp.zeros(2))
        kf = kalman.filter(shared, y, method="kernel")
        kll = kalman.log_likelihood(shared, y, method="kernel")
        out["kernel_devices"] = devices_of(kf.mean)
        with jax.default_device(jax.devices()[0]):
            kf1 = kalman.filter(shared, y, method="kernel")
        out["kernel_diff"] = max(diff(kf.mean, kf1.mean), diff(kf.cov, kf1.cov))
        out["kernel_loglik_diff"] = diff(kll, kalman.log_likelihood(shared, y, method="sequential"))

    # a panel fit: the work queues go one to a device
    used = set()
    run_queue = batched._run_queue
    def spy(programs, theta0, args, *options):
        used.update(d.id for d in theta0.sharding.device_set)
        return run_queue(programs, theta0, args, *options)
    batched._run_queue = spy
    panel = load_us_employment().iloc[-72:, :8]
    est = LocalLevel().fit(panel)
    out["queue_devices"] = sorted(used)
    with jax.default_device(jax.devices()[0]):
        used.clear()
        ref = LocalLevel().fit(panel)
        out["queue_devices_one"] = sorted(used)
    out["params_rel"] = float(np.max(np.abs(est.params_.values / ref.params_.values - 1)))
    out["loglik_fit_diff"] = float(np.max(np.abs(est.loglik_.values - ref.loglik_.values)))
    out["forecast_diff"] = float(np.max(np.abs(est.predict(6).values - ref.predict(6).values)))
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def four_devices():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    env.pop(sharding.ENV_VAR, None)
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_programs_run_on_all_four_devices(four_devices):
    out = four_devices
    assert out["devices"] == 4 and out["sharding_devices"] == 4
    assert out["filter_devices"] == [0, 1, 2, 3]
    assert out["kernel_devices"] == [0, 1, 2, 3]
    # 8 series over 4 devices: the smoothed means stay split, 2 series a device
    assert out["smooth_spec"] == ["series"]
    assert out["smooth_devices"] == [0, 1, 2, 3] and out["smooth_shard_rows"] == [2]
    assert out["one_device"] == [0]
    assert out["queue_devices"] == [0, 1, 2, 3]
    assert out["queue_devices_one"] == [0]


def test_sharded_results_equal_one_device(four_devices):
    out = four_devices
    assert out["filter_diff"] <= 1e-10
    assert out["smooth_diff"] <= 1e-10
    assert out["loglik_diff"] <= 1e-10
    assert out["grad_rel"] <= 1e-10
    assert out["kernel_diff"] <= 1e-10
    assert out["kernel_loglik_diff"] <= 1e-8


def test_sharded_panel_fit_equals_one_device(four_devices):
    out = four_devices
    assert out["params_rel"] <= 1e-10
    assert out["loglik_fit_diff"] <= 1e-10
    assert out["forecast_diff"] <= 1e-10


def test_one_device_leaves_programs_alone():
    import jax
    import jax.numpy as jnp

    if len(jax.devices()) > 1:
        pytest.skip("this process has several devices")
    assert sharding.devices() == ()
    assert sharding.mesh(8) is None and sharding.series_sharding() is None
    x = jnp.arange(6.0)
    assert sharding.map_series(lambda a: a * 2, (x,), (0,), 6) is not None


def test_environment_variable_turns_it_off(monkeypatch):
    monkeypatch.setenv(sharding.ENV_VAR, "0")
    assert sharding.devices() == ()


def test_sharding_module_is_documented():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "test_docs.py"
    spec = importlib.util.spec_from_file_location("probssm_docs_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.check_modules(("probssm.kalman.sharding",))
