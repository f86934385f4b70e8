"""CPU benchmark: bootstrap particle filter on the stochastic-volatility model, probssm against
the ``particles`` library (Chopin), same process, same data.

Model (``particles.state_space_models.StochVol``, ``probssm.smc.stochastic_volatility``) at Pitt
& Shephard's values mu = -1.02, rho = 0.9702, sigma = 0.178; data simulated once (seeded) and
shared. Both run the bootstrap filter with systematic resampling when ESS < N/2, in float64,
single-threaded: the process is pinned to one core (``--no-pin`` to keep all cores; XLA then
splits its loops over a thread per core).

For each particle count ``N`` the script reports the median wall time of one filter pass over
``T`` steps (the libraries timed in turn, one pass each a round, so that load changes hit all
alike), particle-steps per second, peak memory (probssm: XLA's compiled memory analysis of
the program, arguments + outputs + temporaries; particles: ``tracemalloc`` peak of one run,
NumPy's allocations included) and the ratio ``particles time / probssm time`` (> 1: probssm is
faster). Before timing, at every ``N`` up to ``--check-max``, it checks that the two libraries'
log-likelihood estimates agree: the means of ``--check-runs`` independent runs each must differ
by less than 4 combined Monte Carlo standard errors (two-sided false-alarm rate 6e-5); the
process exits with status 1 when they do not.

Usage::

    python benchmarks/particle_filter.py                      # N = 1e3, 1e4, 1e5; T = 1000
    python benchmarks/particle_filter.py --sizes 1000 10000 100000 1000000
    python benchmarks/particle_filter.py --quick              # N = 1e3, T = 200 (smoke test)
    python benchmarks/particle_filter.py --json               # also write results/particle_filter_cpu.json

Conventions (see benchmarks/README.md): the probssm row is the compiled program of
``probssm.smc.filter`` called directly with the data on the device (its compile time reported
separately); with ``--compare-rng``, ``probssm (jit, rng=jax)`` is the same program drawing its
random numbers with ``jax.random`` (Threefry) instead of the default counter-based generator of
``probssm.smc.rng``; ``probssm (API call)`` is ``smc.filter`` itself, input checks included.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from importlib import metadata
from pathlib import Path

SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}
for _var, _value in SINGLE_THREAD_ENV.items():
    os.environ.setdefault(_var, _value)
os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _pin_to_one_core() -> int | None:
    """Restrict this process to one core before JAX starts (``--no-pin`` keeps all): XLA sizes
    its intra-op thread pool from the usable cores and otherwise splits loops over two threads
    whatever the flags above say, which is neither single-threaded nor, on a shared machine,
    faster. Returns the core, or None."""
    if "--no-pin" in sys.argv or not hasattr(os, "sched_setaffinity"):
        return None
    core = sorted(os.sched_getaffinity(0))[-1]
    os.sched_setaffinity(0, {core})
    return core


PINNED_CPU = _pin_to_one_core()

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp
from machine import cpu_machine, load_average
from stochvol_common import PARAMS, agreement, interleaved_times, simulate

from probssm import smc
from probssm.smc import filtering

RESULTS_DEFAULT = Path(__file__).resolve().parent / "results" / "particle_filter_cpu.json"


# ------------------------------------------------------------------------------------------------
# The two libraries
# ------------------------------------------------------------------------------------------------
class Probssm:
    name = "probssm (jit)"
    dtype = jnp.float64
    rng = "splitmix"

    def __init__(self, y, n):
        model = smc.stochastic_volatility(**PARAMS)
        self.model = jax.tree_util.tree_map(lambda a: jnp.asarray(a, self.dtype), model)
        self.y = jnp.asarray(y[:, None], self.dtype)
        self.config = filtering.make_config(n, rng=self.rng)
        t0 = time.perf_counter()
        lowered = filtering._compiled.lower(self.model, self.y, jax.random.PRNGKey(0), self.config)
        self.compiled = lowered.compile()
        self.compile_seconds = time.perf_counter() - t0
        mem = self.compiled.memory_analysis()
        self.peak_bytes = None if mem is None else int(
            mem.argument_size_in_bytes + mem.output_size_in_bytes + mem.temp_size_in_bytes)
        self.counter = 0

    def log_likelihood(self) -> float:
        self.counter += 1
        out = self.compiled(self.model, self.y, jax.random.PRNGKey(self.counter))
        return float(out.log_likelihood)


class ProbssmJaxRandom(Probssm):
    """The same compiled filter drawing with ``jax.random`` (Threefry) instead of the default
    counter-based generator: what the generator is worth."""

    name = "probssm (jit, rng=jax)"
    rng = "jax"


class ProbssmAPI(Probssm):
    name = "probssm (API call)"

    def __init__(self, y, n):
        super().__init__(y, n)
        self.n = n

    def log_likelihood(self) -> float:
        self.counter += 1
        return float(smc.filter(self.model, self.y, jax.random.PRNGKey(self.counter), self.n).log_likelihood)


class Particles:
    name = "particles"

    def __init__(self, y, n):
        import particles
        from particles import state_space_models as pssm

        self.particles = particles
        self.fk = pssm.Bootstrap(ssm=pssm.StochVol(**PARAMS), data=y)
        self.n = n
        t0 = time.perf_counter()
        self.log_likelihood()  # numba compiles its resampling on the first call
        self.compile_seconds = time.perf_counter() - t0
        tracemalloc.start()
        self.log_likelihood()
        self.peak_bytes = int(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()

    def log_likelihood(self) -> float:
        alg = self.particles.SMC(fk=self.fk, N=self.n, resampling="systematic", ESSrmin=0.5,
                                 collect=None, store_history=False, verbose=False)
        alg.run()
        return float(alg.logLt)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--T", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="N = 1e3, T = 200")
    parser.add_argument("--target-seconds", type=float, default=2.0)
    parser.add_argument("--check-runs", type=int, default=20)
    parser.add_argument("--check-max", type=int, default=10_000, help="largest N whose agreement is checked")
    parser.add_argument("--json", nargs="?", const=str(RESULTS_DEFAULT), default=None)
    parser.add_argument("--no-pin", action="store_true",
                        help="do not restrict the process to one core (XLA then uses a thread per core)")
    parser.add_argument("--compare-rng", action="store_true",
                        help="also time the filter with rng='jax' (jax.random) instead of the default generator")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.T, args.target_seconds, args.check_runs = [1000], 200, 0.2, 10

    y = simulate(args.T)
    machine = cpu_machine(load_average_start=load_average(), pinned_cpu=PINNED_CPU)
    print(f"stochastic volatility, T = {args.T}; {machine['cpu_model']} ({machine['cpus_usable']} usable cores, "
          f"pinned to {PINNED_CPU}), load {machine['load_average_start']}")
    rows, checks, ok = [], {}, True
    for n in args.sizes:
        runners = [Probssm(y, n)] + ([ProbssmJaxRandom(y, n)] if args.compare_rng else []) + \
            [ProbssmAPI(y, n), Particles(y, n)]
        if n <= args.check_max:
            check = agreement([runners[0], runners[-1]], args.check_runs)
            a, b = check["probssm (jit)"], check["particles"]
            z = (a["mean"] - b["mean"]) / np.hypot(a["se"], b["se"])
            passed = bool(abs(z) < 4)
            ok &= passed
            checks[n] = {**check, "z": float(z), "passed": passed}
            print(f"N = {n}: log-likelihood probssm {a['mean']:.3f} ± {a['se']:.3f}, particles "
                  f"{b['mean']:.3f} ± {b['se']:.3f}, z = {z:+.2f} {'ok' if passed else 'DISAGREE'}")
        measured = interleaved_times({r.name: r.log_likelihood for r in runners}, args.target_seconds)
        times = {}
        for r in runners:
            seconds, repeats = measured[r.name]
            times[r.name] = seconds
            rows.append({"N": n, "T": args.T, "library": r.name, "seconds": seconds, "repeats": repeats,
                         "particle_steps_per_second": n * args.T / seconds,
                         "compile_seconds": r.compile_seconds, "peak_bytes": r.peak_bytes})
        for row in rows[-len(runners):]:
            row["ratio"] = times["particles"] / row["seconds"]
            peak = "n/a" if row["peak_bytes"] is None else f"{row['peak_bytes'] / 2**20:.1f} MiB"
            print(f"  {row['library']:24s} {row['seconds'] * 1e3:10.2f} ms  {row['particle_steps_per_second']:.3g} "
                  f"particle-steps/s  peak {peak:>10s}  particles/this {row['ratio']:.2f}  "
                  f"(compile {row['compile_seconds']:.1f} s)")
    print("AGREEMENT CHECK PASSED" if ok else "AGREEMENT CHECK FAILED")
    if args.json:
        versions = {p: metadata.version(p) for p in ("jax", "jaxlib", "numpy", "particles", "numba")}
        doc = {"benchmark": "particle_filter_cpu", "machine": {**machine, "load_average_end": load_average()},
               "versions": versions, "params": PARAMS, "results": rows,
               "agreement": {"runs": args.check_runs, "passed": ok, "by_N": {str(k): v for k, v in checks.items()}},
               "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(doc, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
