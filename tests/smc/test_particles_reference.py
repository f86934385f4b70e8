"""Stochastic volatility on the GBP/USD 1997-98 returns: probssm's bootstrap filter against the
``particles`` library (Chopin) at the same parameters (Pitt & Shephard's values), both
estimating log p(y); the two means of 20 independent estimates must agree within 3.5 combined
Monte Carlo standard errors (two-sided false-alarm rate 0.05 %)."""

import jax
import numpy as np
import pytest

from probssm import smc

particles = pytest.importorskip("particles")
from particles import datasets
from particles import state_space_models as pssm

PARAMS = {"mu": -1.02, "rho": 0.9702, "sigma": 0.178}
RUNS = 20
N = 1000


def test_log_likelihood_agrees_with_particles():
    y = datasets.GBP_vs_USD_9798().data
    fk = pssm.Bootstrap(ssm=pssm.StochVol(**PARAMS), data=y)
    np.random.seed(0)
    theirs = []
    for _ in range(RUNS):
        alg = particles.SMC(fk=fk, N=N, resampling="systematic", ESSrmin=0.5)
        alg.run()
        theirs.append(alg.logLt)
    theirs = np.asarray(theirs)
    ours = np.asarray(smc.filter(smc.stochastic_volatility(**PARAMS), np.broadcast_to(y[:, None], (RUNS, len(y), 1)),
                                 jax.random.PRNGKey(0), N).log_likelihood)
    se = np.sqrt(ours.var(ddof=1) / RUNS + theirs.var(ddof=1) / RUNS)
    assert abs(ours.mean() - theirs.mean()) < 3.5 * se, (ours.mean(), theirs.mean(), se)
    assert se < 0.5                     # both estimators are tight at this N
