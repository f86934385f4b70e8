"""Float32 stability of probssm's Kalman filters on long series, against float64 (GPU).

For each of ``--seeds`` random stable models (time-invariant, ``n`` states, ``m`` observations)
one series of ``T`` steps is simulated in float64, with about 5 % of the rows missing (NaN) and
about 5 % of the single entries missing too (partly missing rows). Even seeds have a diagonal
observation noise ``R``, odd seeds a correlated one. The spectral radius of ``F`` is drawn from
``[0.5, 0.99]``; ``Q`` and ``R`` are random positive definite with random scales, ``x_0`` has the
stationary distribution, and both offsets are non-zero.

The reference is probssm's ``"sequential"`` filter in float64 on JAX's CPU backend (one
compiled program, the seeds in parallel threads). Every method in ``--methods`` then filters the float32 data on the default
device (the GPU, where there is one), one seed at a time through the public API with concrete
arrays (``kalman.filter`` and, for the log-likelihood without per-step outputs,
``kalman.log_likelihood``); ``"sequential"`` runs all seeds in one batched call.

Errors, per seed and method (``ref`` the float64 reference, ``max`` over all steps and entries):

* ``ll``: ``|ll32 - ll64| / |ll64|`` for ``filter(...).log_likelihood``; ``ll_direct`` the same
  for ``log_likelihood(...)`` (for ``"kernel"`` a separate code path that writes no states);
* ``mean``: ``max |m32 - m64| / max |m64|`` (the norm-wise relative error of the filtered means);
* ``mean_rms``: ``rms(m32 - m64) / rms(m64)``;
* ``cov``: ``max |P32 - P64| / max |P64|`` for the filtered covariances;
* ``finite``: no NaN or inf in the means, covariances and log-likelihood.

A seed passes when it is finite, ``ll`` and ``ll_direct < 1e-4`` and ``mean < 1e-3`` (the
issue's tolerances). The script prints the device name and a table (worst and median over seeds)
and exits with status 1 if any seed fails; ``--json`` writes every number.

Usage::

    python benchmarks/float32_stability.py                       # T = 1e6, 20 seeds
    python benchmarks/float32_stability.py --T 100000 --methods parallel kernel --json out.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from probssm import kalman  # noqa: E402

LL_TOL, MEAN_TOL = 1e-4, 1e-3


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", type=float, default=1e6, help="series length (default 1e6)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=4, help="state dimension")
    ap.add_argument("--m", type=int, default=2, help="observation dimension")
    ap.add_argument("--methods", nargs="+", default=["kernel", "parallel", "sequential"],
                    choices=["kernel", "parallel", "sequential", "auto"])
    ap.add_argument("--json", metavar="PATH", default=None)
    args = ap.parse_args(argv)
    args.T = int(args.T)
    return args


def make_model(seed: int, n: int, m: int):
    """Random stable model (numpy float64) for one seed."""
    rng = np.random.default_rng([seed, n, m, 2026])
    G = rng.normal(size=(n, n))
    rho = rng.uniform(0.5, 0.99)
    F = rho * G / np.max(np.abs(np.linalg.eigvals(G)))

    def pd(k, scale):
        a = rng.normal(size=(k, k))
        return scale * (a @ a.T / k + 0.1 * np.eye(k))

    Q = pd(n, rng.uniform(0.1, 1.0))
    H = rng.normal(size=(m, n))
    R = np.diag(rng.uniform(0.1, 1.0, size=m)) if seed % 2 == 0 else pd(m, rng.uniform(0.1, 1.0))
    u = 0.1 * rng.normal(size=n)
    d = rng.normal(size=m)
    P0 = scipy.linalg.solve_discrete_lyapunov(F, Q)
    P0 = 0.5 * (P0 + P0.T)
    m0 = np.linalg.solve(np.eye(n) - F, u)  # stationary mean
    return dict(F=F, Q=Q, H=H, R=R, u=u, d=d, m0=m0, P0=P0, rho=rho)


def to_lgssm(p, dtype):
    c = lambda a: jnp.asarray(a, dtype)  # noqa: E731
    return kalman.LGSSM(c(p["F"]), c(p["Q"]), c(p["H"]), c(p["R"]), c(p["m0"]), c(p["P0"]),
                        transition_offset=c(p["u"]), observation_offset=c(p["d"]))


def simulate(p, seed: int, T: int):
    """Observations ``(T, m)`` in float64 with NaN rows (5 %) and NaN entries (5 %)."""
    n, m = p["F"].shape[0], p["H"].shape[0]
    rng = np.random.default_rng([seed, 7])
    cpu = jax.devices("cpu")[0]
    with jax.enable_x64(True), jax.default_device(cpu):
        x0 = p["m0"] + np.linalg.cholesky(p["P0"]) @ rng.normal(size=n)
        eta = rng.normal(size=(T, n)) @ np.linalg.cholesky(p["Q"]).T
        eps = rng.normal(size=(T, m)) @ np.linalg.cholesky(p["R"]).T
        F, u = jnp.asarray(p["F"]), jnp.asarray(p["u"])

        def step(x, e):
            return F @ x + u + e, x

        _, states = jax.lax.scan(step, jnp.asarray(x0), jnp.asarray(eta))
        y = np.asarray(states) @ p["H"].T + p["d"] + eps
    y[rng.uniform(size=T) < 0.05] = np.nan
    y[rng.uniform(size=(T, m)) < 0.05] = np.nan
    return y


def reference(params, ys):
    """float64 sequential filter of every seed on the CPU: means, covariances, log-likelihoods."""
    from concurrent.futures import ThreadPoolExecutor

    cpu = jax.devices("cpu")[0]
    with jax.enable_x64(True), jax.default_device(cpu):
        models = [to_lgssm(p, jnp.float64) for p in params]
        y64 = [jnp.asarray(y, jnp.float64) for y in ys]
        fn = jax.jit(lambda mo, y: (lambda r: (r.mean, r.cov, r.log_likelihood))(
            kalman.filter(mo, y, method="sequential")))
        t0 = time.perf_counter()
        compiled = fn.lower(models[0], y64[0]).compile()  # no retracing in the worker threads

    def one(i):
        with jax.enable_x64(True):
            return [np.asarray(a) for a in jax.block_until_ready(compiled(models[i], y64[i]))]

    with ThreadPoolExecutor(max_workers=max(1, min(len(ys), os.cpu_count() or 1))) as ex:
        outs = list(ex.map(one, range(len(ys))))
    seconds = time.perf_counter() - t0
    mean, cov, ll = (np.stack([o[k] for o in outs]) for k in range(3))
    return mean, cov, ll, seconds


def errors(mean, cov, ll, ll_direct, ref_mean, ref_cov, ref_ll):
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    finite = bool(np.all(np.isfinite(mean)) and np.all(np.isfinite(cov)) and np.isfinite(ll)
                  and np.isfinite(ll_direct))
    dm = mean - ref_mean
    out = dict(
        finite=finite,
        ll=float(abs(ll - ref_ll) / abs(ref_ll)),
        ll_direct=float(abs(ll_direct - ref_ll) / abs(ref_ll)),
        mean=float(np.max(np.abs(dm)) / np.max(np.abs(ref_mean))),
        mean_rms=float(np.sqrt(np.mean(dm ** 2) / np.mean(ref_mean ** 2))),
        cov=float(np.max(np.abs(cov - ref_cov)) / np.max(np.abs(ref_cov))),
    )
    out["passed"] = bool(finite and out["ll"] < LL_TOL and out["ll_direct"] < LL_TOL
                         and out["mean"] < MEAN_TOL)
    return out


def device_name():
    dev = jax.devices()[0]
    return f"{dev.device_kind} ({dev.platform})"


def main(argv=None):
    args = parse_args(argv)
    T, n, m = args.T, args.n, args.m
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(f"device: {device_name()}; jax {jax.__version__}; T={T} n={n} m={m} seeds={len(seeds)}",
          flush=True)
    t0 = time.perf_counter()
    params = [make_model(s, n, m) for s in seeds]
    ys = [simulate(p, s, T) for p, s in zip(params, seeds)]
    print(f"simulated in {time.perf_counter() - t0:.1f} s; missing entries "
          f"{np.mean([np.mean(np.isnan(y)) for y in ys]):.3f}", flush=True)
    ref_mean, ref_cov, ref_ll, ref_s = reference(params, ys)
    print(f"float64 sequential reference on the CPU: {ref_s:.1f} s", flush=True)

    results, summary, timing = {}, {}, {}
    header = (f"{'method':<11} {'pass':>5} {'finite':>6} {'ll worst':>9} {'ll median':>9} "
              f"{'ll_direct worst':>15} {'mean worst':>10} {'mean median':>11} "
              f"{'mean_rms worst':>14} {'cov worst':>9}")

    def line(meth):
        s_ = summary[meth]
        return (f"{meth:<11} {s_['passed']:>2}/{s_['seeds']:<2} {s_['finite']:>6} "
                f"{s_['ll_worst']:>9.1e} {s_['ll_median']:>9.1e} {s_['ll_direct_worst']:>15.1e} "
                f"{s_['mean_worst']:>10.1e} {s_['mean_median']:>11.1e} "
                f"{s_['mean_rms_worst']:>14.1e} {s_['cov_worst']:>9.1e}")

    def write_json():
        if not args.json:
            return
        payload = dict(
            date=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            command=" ".join(sys.argv), device=device_name(), platform=platform.platform(),
            jax=jax.__version__, T=T, n=n, m=m, seeds=seeds, reference_seconds=ref_s,
            models=[dict(seed=s, spectral_radius=p["rho"], diagonal_R=(s % 2 == 0))
                    for s, p in zip(seeds, params)],
            summary=summary, results=results, tolerances=dict(ll=LL_TOL, mean=MEAN_TOL),
        )
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)

    for meth in args.methods:
        rows = results[meth] = []
        t_start = time.perf_counter()
        if meth == "sequential":
            models = [to_lgssm(p, jnp.float32) for p in params]
            batched = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *models)
            y32 = jnp.asarray(np.stack(ys), jnp.float32)
            fn = jax.jit(lambda mo, y: (lambda r: (r.mean, r.cov, r.log_likelihood))(
                kalman.filter(mo, y, method="sequential")))
            mean, cov, ll = (np.asarray(a) for a in jax.block_until_ready(fn(batched, y32)))
            for i, s in enumerate(seeds):
                rows.append(dict(seed=s, **errors(mean[i], cov[i], float(ll[i]), float(ll[i]),
                                                  ref_mean[i], ref_cov[i], ref_ll[i])))
        else:
            for i, (p, s) in enumerate(zip(params, seeds)):
                model = to_lgssm(p, jnp.float32)
                y32 = jnp.asarray(ys[i], jnp.float32)
                res = kalman.filter(model, y32, method=meth)
                ll_direct = kalman.log_likelihood(model, y32, method=meth)
                rows.append(dict(seed=s, **errors(res.mean, res.cov, float(res.log_likelihood),
                                                  float(ll_direct), ref_mean[i], ref_cov[i],
                                                  ref_ll[i])))
                del res
        timing[meth] = time.perf_counter() - t_start
        col = lambda k: [r[k] for r in rows]  # noqa: E731
        summary[meth] = dict(
            passed=sum(col("passed")), finite=sum(col("finite")), seeds=len(rows),
            ll_worst=max(col("ll")), ll_median=statistics.median(col("ll")),
            ll_direct_worst=max(col("ll_direct")), mean_worst=max(col("mean")),
            mean_median=statistics.median(col("mean")), mean_rms_worst=max(col("mean_rms")),
            cov_worst=max(col("cov")), seconds=timing[meth],
        )
        print(f"{meth}: {timing[meth]:.1f} s (compilation included)", flush=True)
        print(header + "\n" + line(meth), flush=True)
        write_json()

    print()
    print(f"float32 vs float64 sequential, T={T}, n={n}, m={m}, {len(seeds)} seeds, "
          f"device {device_name()}")
    print(header)
    ok = True
    for meth in summary:
        ok &= summary[meth]["passed"] == summary[meth]["seeds"]
        print(line(meth))
    print(f"tolerances: ll < {LL_TOL:g} relative, mean < {MEAN_TOL:g} (max |error| / max |reference|)")
    if args.json:
        print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
