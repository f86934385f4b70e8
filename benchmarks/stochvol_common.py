"""What both particle-filter benchmarks (``particle_filter.py`` on the CPU,
``particle_filter_gpu.py`` on a GPU) share: the stochastic-volatility parameters and data, the
timing loop and the log-likelihood agreement statistics. Import it after the caller has set its
JAX platform and precision."""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np

from probssm import smc

PARAMS = {"mu": -1.02, "rho": 0.9702, "sigma": 0.178}
"""Pitt & Shephard's values (Chopin & Papaspiliopoulos 2020, the GBP/USD example)."""


def simulate(T: int, seed: int = 0) -> np.ndarray:
    """Returns ``(T,)`` from the model (probssm's simulator, seeded)."""
    _, y = smc.stochastic_volatility(**PARAMS).sample(jax.random.PRNGKey(seed), T)
    return np.asarray(y)[:, 0]


def median_time(fn, target_seconds: float, min_repeats: int = 3, max_repeats: int = 50) -> tuple[float, int]:
    """Median wall time of ``fn()`` (which blocks) over repeats taking about ``target_seconds``
    in all, and the number of repeats."""
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < target_seconds and len(times) < max_repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def interleaved_times(fns: dict, target_seconds: float, min_repeats: int = 3,
                      max_repeats: int = 50) -> dict:
    """Median wall time of each ``fns[name]()`` (which blocks), the callables run in turn, one
    call each a round, so that a change of the machine's load hits them alike; rounds go on
    until about ``target_seconds`` per callable. Returns ``{name: (seconds, repeats)}``."""
    times = {name: [] for name in fns}
    start = time.perf_counter()
    rounds = 0
    while rounds < min_repeats or (time.perf_counter() - start < target_seconds * len(fns)
                                   and rounds < max_repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        rounds += 1
    return {name: (statistics.median(ts), len(ts)) for name, ts in times.items()}


def agreement(runners, runs: int) -> dict:
    """Means and standard errors of ``runs`` log-likelihood estimates of each library."""
    out = {}
    for r in runners:
        lls = np.array([r.log_likelihood() for _ in range(runs)])
        out[r.name] = {"mean": float(lls.mean()), "se": float(lls.std(ddof=1) / np.sqrt(runs))}
    return out
