"""GPU benchmark: bootstrap particle filter on the stochastic-volatility model, probssm against
cuthbert's particle filter on the same GPU, same process, same data; and the wall time of
particle marginal Metropolis-Hastings.

Model: ``probssm.smc.stochastic_volatility`` at Pitt & Shephard's values mu = -1.02,
rho = 0.9702, sigma = 0.178 (the model of ``particles_filter.py``), ``T = 1000`` returns simulated
once (seeded); float32 (``--dtype``). Both libraries run the bootstrap filter with systematic
resampling when ESS < N/2.

============================  ==============================================================
row                           what is called
============================  ==============================================================
probssm (jit)                 the compiled program of ``probssm.smc.filter`` (log-likelihood
                              and filtering means), data on the device, compile reported apart
probssm (log-lik only)        the same program without the filtering summaries
                              (``make_config(n, summaries=False)``): cuthbert's output
cuthbert                      ``cuthbert.filter(smc.particle_filter.build_filter(...),
                              inputs, init_state, key=key).log_normalizing_constant[-1]``
                              under ``jax.jit``, resampling
                              ``ess_decorator(systematic.resampling, 0.5)``. cuthbert weights
                              no observation at its initial state, so its first step draws
                              from the stationary law (a flag in the inputs) and every step
                              ``t = 0..T-1`` weights ``y_t``: the same Feynman-Kac model.
============================  ==============================================================

For each particle count ``N`` it reports the median time of one filter pass, particle-steps per
second, peak device memory of the compiled program (XLA's memory analysis: arguments + outputs
+ temporaries) and the ratio ``cuthbert time / probssm time`` (> 1: probssm is faster). Before
timing, at every ``N`` up to ``--check-max``, the means of ``--check-runs`` log-likelihood
estimates of the two libraries must agree within 4 combined standard errors (exit status 1
otherwise).

``--pmmh``: ``probssm.smc.pmmh`` on the same model with ``T = 500`` (the first 500 returns),
1000 particles, 4 chains, ``num_warmup + num_samples = 10 000`` iterations per chain, priors
mu ~ N(0, 2), rho ~ U(-1, 1), sigma ~ HalfNormal(1); wall time of the first call (compile
included) and of a second call with another key.

Usage (GPU machine, peers from ``.whl/`` as in ``gpu_env.md``)::

    python benchmarks/particle_filter_gpu.py --sizes 1000 10000 100000 1000000 --pmmh --json $OUT/pf_gpu.json
    python benchmarks/particle_filter_gpu.py --quick     # tiny sizes, any device (smoke test)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from importlib import metadata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from stochvol_common import PARAMS, agreement, median_time, simulate

from probssm import smc
from probssm.smc import filtering


def peak_bytes(compiled) -> int | None:
    mem = compiled.memory_analysis()
    if mem is None:
        return None
    return int(mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes)


class Probssm:
    name = "probssm (jit)"
    summaries = True

    def __init__(self, y, n, dtype):
        model = smc.stochastic_volatility(**PARAMS)
        self.model = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), model)
        self.y = jnp.asarray(y[:, None], dtype)
        config = filtering.make_config(n, summaries=self.summaries)
        t0 = time.perf_counter()
        self.compiled = filtering._compiled.lower(self.model, self.y, jax.random.PRNGKey(0), config).compile()
        self.compile_seconds = time.perf_counter() - t0
        self.peak_bytes = peak_bytes(self.compiled)
        self.counter = 0

    def log_likelihood(self) -> float:
        self.counter += 1
        return float(self.compiled(self.model, self.y, jax.random.PRNGKey(self.counter)).log_likelihood)


class ProbssmLogLik(Probssm):
    name = "probssm (log-lik only)"
    summaries = False


def import_cuthbert(notes: list):
    try:
        import numba  # noqa: F401
    except ImportError:  # cuthbertlib imports numba for its CPU resampling branch, unused on a GPU
        stub = types.ModuleType("numba")
        stub.njit = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))
        sys.modules["numba"] = stub
        notes.append("numba not installed: stand-in numba.njit used to import cuthbertlib "
                     "(its CPU resampling branch; the GPU branch is JAX)")
    import cuthbert
    from cuthbert.smc import particle_filter
    from cuthbertlib.resampling import ess_decorator, systematic

    return cuthbert, particle_filter, ess_decorator, systematic


class Cuthbert:
    name = "cuthbert"

    def __init__(self, y, n, dtype, notes):
        cuthbert, particle_filter, ess_decorator, systematic = import_cuthbert(notes)
        mu, rho, sigma = (jnp.asarray(PARAMS[k], dtype) for k in ("mu", "rho", "sigma"))
        stationary_sd = sigma / jnp.sqrt(1 - rho**2)

        def init_sample(key):
            return jnp.zeros((), dtype)  # replaced by the first step's draw from the stationary law

        def propagate_sample(key, x, inputs):
            eps = jax.random.normal(key, (), dtype)
            return jnp.where(inputs["first"], mu + stationary_sd * eps, mu + rho * (x - mu) + sigma * eps)

        def log_potential(x_prev, x, inputs):
            return -0.5 * (jnp.log(2 * jnp.pi) + x + inputs["y"] ** 2 * jnp.exp(-x))

        filter_obj = particle_filter.build_filter(init_sample, propagate_sample, log_potential, n,
                                                  ess_decorator(systematic.resampling, 0.5))
        self.inputs = {"y": jnp.asarray(y, dtype), "first": jnp.arange(len(y)) == 0}

        def run(inputs, key):
            k0, k1 = jax.random.split(key)
            init_state = filter_obj.init_prepare(key=k0)
            return cuthbert.filter(filter_obj, inputs, init_state, key=k1).log_normalizing_constant[-1]

        t0 = time.perf_counter()
        self.compiled = jax.jit(run).lower(self.inputs, jax.random.PRNGKey(0)).compile()
        self.compile_seconds = time.perf_counter() - t0
        self.peak_bytes = peak_bytes(self.compiled)
        self.counter = 0

    def log_likelihood(self) -> float:
        self.counter += 1
        return float(self.compiled(self.inputs, jax.random.PRNGKey(10_000 + self.counter)))


def run_pmmh(y, dtype, n_particles, warmup, samples, chains) -> dict:
    import numpyro.distributions as dist

    model = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), smc.stochastic_volatility(**PARAMS))
    priors = {"mu": dist.Normal(0.0, 2.0), "rho": dist.Uniform(-1.0, 1.0), "sigma": dist.HalfNormal(1.0)}
    data = jnp.asarray(y[:, None], dtype)
    walls = []
    for seed in (0, 1):
        t0 = time.perf_counter()
        res = smc.pmmh(model, data, jax.random.PRNGKey(seed), priors, n_particles=n_particles,
                       num_samples=samples, num_warmup=warmup, num_chains=chains)
        jax.block_until_ready(res.theta)
        walls.append(time.perf_counter() - t0)
    summary = res.summary
    return {"T": int(len(y)), "n_particles": n_particles, "chains": chains, "iterations": warmup + samples,
            "num_warmup": warmup, "seconds_first_call": walls[0], "seconds_second_call": walls[1],
            "acceptance_rate": [float(a) for a in np.asarray(res.acceptance_rate)],
            "summary": json.loads(summary.to_json(orient="index"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--target-seconds", type=float, default=2.0)
    parser.add_argument("--check-runs", type=int, default=20)
    parser.add_argument("--check-max", type=int, default=100_000)
    parser.add_argument("--pmmh", action="store_true")
    parser.add_argument("--pmmh-iterations", type=int, nargs=2, default=[2000, 8000], metavar=("WARMUP", "SAMPLES"))
    parser.add_argument("--quick", action="store_true", help="N = 1e3, T = 100, short PMMH")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.T, args.target_seconds, args.check_runs = [1000], 100, 0.2, 10
        args.pmmh_iterations = [20, 20]
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.dtype(args.dtype)

    device = jax.devices()[0]
    notes = []
    rows, checks, pmmh = [], {}, None

    def write():
        if not args.json:
            return
        versions = {}
        for pkg in ("jax", "jaxlib", "numpyro", "cuthbert", "cuthbertlib"):
            try:
                versions[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                versions[pkg] = None
        out = {"device": device.device_kind, "platform": device.platform, "dtype": args.dtype,
               "command": " ".join(sys.argv), "versions": versions, "notes": notes,
               "rows": rows, "checks": {str(k): v for k, v in checks.items()}, "pmmh": pmmh,
               "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))

    y = simulate(args.T)
    print(f"stochastic volatility, T = {args.T}, {args.dtype}; device {device.device_kind}")
    ok = True
    for n in args.sizes:
        runners = [Probssm(y, n, dtype), ProbssmLogLik(y, n, dtype), Cuthbert(y, n, dtype, notes)]
        if n <= args.check_max:
            check = agreement([runners[1], runners[2]], args.check_runs)
            a, b = check["probssm (log-lik only)"], check["cuthbert"]
            z = (a["mean"] - b["mean"]) / np.hypot(a["se"], b["se"])
            passed = bool(abs(z) < 4)
            ok &= passed
            checks[n] = {**check, "z": float(z), "passed": passed}
            print(f"N = {n}: log-likelihood probssm {a['mean']:.3f} ± {a['se']:.3f}, cuthbert "
                  f"{b['mean']:.3f} ± {b['se']:.3f}, z = {z:+.2f} {'ok' if passed else 'DISAGREE'}", flush=True)
        times = {}
        for r in runners:
            seconds, repeats = median_time(r.log_likelihood, args.target_seconds)
            times[r.name] = seconds
            rows.append({"N": n, "T": args.T, "library": r.name, "seconds": seconds, "repeats": repeats,
                         "particle_steps_per_second": n * args.T / seconds,
                         "compile_seconds": r.compile_seconds, "peak_bytes": r.peak_bytes})
        for row in rows[-len(runners):]:
            row["ratio"] = times["cuthbert"] / row["seconds"]
            peak = "n/a" if row["peak_bytes"] is None else f"{row['peak_bytes'] / 2**20:.1f} MiB"
            print(f"  {row['library']:24s} {row['seconds'] * 1e3:10.2f} ms  {row['particle_steps_per_second']:.3g} "
                  f"particle-steps/s  peak {peak:>11s}  cuthbert/this {row['ratio']:.2f}  "
                  f"(compile {row['compile_seconds']:.1f} s)", flush=True)
        write()
    if args.pmmh:
        warmup, samples = args.pmmh_iterations
        pmmh = run_pmmh(y[: min(500, args.T)], dtype, 1000 if not args.quick else 100, warmup, samples, 4)
        print(f"PMMH: T = {pmmh['T']}, {pmmh['n_particles']} particles, {pmmh['chains']} chains x "
              f"{pmmh['iterations']} iterations: {pmmh['seconds_first_call']:.1f} s first call, "
              f"{pmmh['seconds_second_call']:.1f} s second call; acceptance {pmmh['acceptance_rate']}")
        write()
    print("AGREEMENT CHECK PASSED" if ok else "AGREEMENT CHECK FAILED")
    for note in notes:
        print("note:", note)
    write()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
