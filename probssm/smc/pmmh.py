"""Particle marginal Metropolis-Hastings (Andrieu, Doucet & Holenstein 2010).

The target is the posterior :math:`p(\\psi \\mid y) \\propto p(y \\mid \\psi)\\, \\pi(\\psi)` of
named model parameters :math:`\\psi` with NumPyro priors :math:`\\pi`. The chain moves on the
unconstrained :math:`\\theta` with :math:`\\psi = g(\\theta)`, :math:`g` = ``biject_to(prior.support)``
for each parameter, so the density it targets is

.. math::

    \\log \\tilde p(\\theta) = \\log \\hat p_N(y \\mid g(\\theta)) + \\log \\pi(g(\\theta))
    + \\log \\lvert \\det \\partial g / \\partial \\theta \\rvert,

with :math:`\\hat p_N` the particle filter's unbiased likelihood estimate, drawn afresh at each
proposal and kept with the state; this makes the chain exact (its stationary law of
:math:`\\theta` is the posterior) for any ``N``, at a mixing cost that grows with the variance of
:math:`\\log \\hat p_N` (about 1-2 at the usual optimum, Doucet et al. 2015).

Proposal: Gaussian random walk :math:`\\theta' = \\theta + \\lambda L \\varepsilon` with
:math:`L L^T = \\Sigma`. During warm-up :math:`\\log \\lambda` follows a Robbins-Monro
recursion toward the acceptance rate ``target_accept`` (Andrieu & Thoms 2008), and in its
second half :math:`\\Sigma` becomes the running covariance of the chain's history there
(Haario, Saksman & Tamminen 2001; the first half, still travelling from the start, is left
out); both are frozen after warm-up, so the kept draws come from a fixed kernel.
Chains run in parallel (``vmap``), each with its own particle filters.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .filtering import check_functions, check_model, check_y, make_config, run

__all__ = ["PMMHResult", "PriorSpace", "pmmh"]


class PriorSpace:
    """Named model parameters with NumPyro priors and the unconstrained vector
    :math:`\\theta` PMMH moves.

    Parameters
    ----------
    model : StateSpaceModel
        Gives the structure and the starting values: keys of ``model.params`` (a dict) and, for
        :class:`~probssm.ssm.AdditiveGaussianSSM`, ``"Q"``, ``"R"``, ``"m0"``, ``"P0"``.
    priors : dict
        ``{name: numpyro Distribution}`` whose ``log_prob`` of the parameter's value (summed) is
        its log prior density; the support sets the transform ``biject_to(prior.support)``.
    """

    def __init__(self, model, priors):
        from numpyro.distributions import Distribution
        from numpyro.distributions.transforms import biject_to

        from ..fit.parameters import ParameterSpace

        if not isinstance(priors, dict) or not priors:
            raise ValueError(f"priors must be a non-empty dict {{name: numpyro distribution}}, got {priors!r}")
        available = ParameterSpace._available(model)
        self.model, self.priors, self.transforms, self.shapes, self.sizes = model, dict(priors), {}, {}, {}
        theta0 = []
        for name, prior in priors.items():
            if name not in available:
                raise ValueError(f"priors: unknown parameter {name!r}; the model has {sorted(available)}")
            if not isinstance(prior, Distribution):
                raise TypeError(f"priors[{name!r}] must be a numpyro Distribution, got {type(prior).__name__}")
            value = jnp.asarray(available[name])
            transform = biject_to(prior.support)
            inside = bool(jnp.all(prior.support(value)))
            if not inside or not bool(jnp.all(jnp.isfinite(prior.log_prob(value)))):
                raise ValueError(f"priors[{name!r}]: the model's starting value {np.asarray(value)} is outside "
                                 f"the prior's support or has zero density")
            u = transform.inv(value)
            self.transforms[name], self.shapes[name], self.sizes[name] = transform, value.shape, u.shape
            theta0.append(np.asarray(u, dtype=np.float64).reshape(-1))
        self.theta0 = np.concatenate(theta0)

    @property
    def names(self) -> list[str]:
        """One label per natural scalar (``"phi"``, ``"Q[0,1]"``, ...)."""
        labels = []
        for name, shape in self.shapes.items():
            labels += [name] if shape == () else [f"{name}[{','.join(map(str, ix))}]" for ix in np.ndindex(*shape)]
        return labels

    def values(self, theta) -> tuple[dict, jax.Array]:
        """``({name: natural value}, log |det dg/dtheta|)`` of ``theta`` ``(k,)`` (traceable)."""
        out, log_jac, offset = {}, 0.0, 0
        for name, transform in self.transforms.items():
            size = int(np.prod(self.sizes[name], dtype=int))
            u = jnp.reshape(theta[offset:offset + size], self.sizes[name])
            offset += size
            value = transform(u)
            out[name] = value
            log_jac = log_jac + jnp.sum(transform.log_abs_det_jacobian(u, value))
        return out, log_jac

    def log_prior(self, values) -> jax.Array:
        """:math:`\\sum \\log \\pi(\\psi)` (``-inf`` outside a support)."""
        total = 0.0
        for name, prior in self.priors.items():
            total = total + jnp.sum(prior.log_prob(values[name]))
        return jnp.where(jnp.isfinite(total), total, -jnp.inf)

    def build(self, values):
        """The model with the given natural values."""
        from ..fit.parameters import replace_parameters
        return replace_parameters(self.model, values)

    def natural(self, theta) -> np.ndarray:
        """Natural values flattened in the order of :attr:`names` for ``theta`` ``(..., k)``."""
        theta = jnp.asarray(theta)
        flat = theta.reshape(-1, theta.shape[-1])
        def one(th):
            values, _ = self.values(th)
            return jnp.concatenate([jnp.reshape(v, (-1,)) for v in values.values()])
        return np.asarray(jax.vmap(one)(flat)).reshape(theta.shape[:-1] + (-1,))


class PMMHResult(NamedTuple):
    """Outcome of :func:`probssm.smc.pmmh`.

    Attributes
    ----------
    samples : dict
        ``{name: (chains, draws, *shape)}`` natural parameter draws.
    draws : DataFrame ``(chains * draws, k)``
        The same flattened, one column per scalar (``"phi"``, ``"Q[0,1]"``), rows chain-major.
    theta : ``(chains, draws, k)``
        Unconstrained draws.
    log_likelihood : ``(chains, draws)``
        The particle estimate :math:`\\log \\hat p_N(y \\mid \\psi)` kept with each draw.
    acceptance_rate : ``(chains,)``
        After warm-up.
    step_size : ``(chains,)``
        The adapted scale :math:`\\lambda`.
    proposal_cov : ``(chains, k, k)``
        The adapted :math:`\\Sigma`.
    summary : DataFrame
        Mean, sd, 5 % / 95 % quantiles, split-:math:`\\hat R` and effective sample size per scalar
        (NumPyro's estimators).
    """

    samples: dict
    draws: pd.DataFrame
    theta: np.ndarray
    log_likelihood: np.ndarray
    acceptance_rate: np.ndarray
    step_size: np.ndarray
    proposal_cov: np.ndarray
    summary: pd.DataFrame


class _Chain(NamedTuple):
    theta: jax.Array       # (k,)
    log_target: jax.Array  # ()
    log_lik: jax.Array     # ()
    hist_mean: jax.Array   # (k,) running mean of the chain's history (warm-up)
    hist_cov: jax.Array    # (k, k) its running covariance
    count: jax.Array       # () warm-up iterations so far
    collected: jax.Array   # () draws in the history's moments
    prop_cov: jax.Array    # (k, k) Sigma of the proposal
    log_scale: jax.Array   # () log lambda
    accepted: jax.Array    # () acceptances after warm-up


def _log_target(space: PriorSpace, config, y, theta, key):
    values, log_jac = space.values(theta)
    log_prior = space.log_prior(values)
    log_lik = run(space.build(values), y, key, config).log_likelihood
    log_lik = jnp.where(jnp.isfinite(log_lik), log_lik, -jnp.inf)
    total = jnp.where(jnp.isfinite(log_prior), log_lik + log_prior + log_jac, -jnp.inf)
    return jnp.where(jnp.isnan(total), -jnp.inf, total), log_lik


def _mh_step(space, config, y, target_accept, chain: _Chain, key, adapt, collect, keep, active):
    """One Metropolis-Hastings step of one chain. Boolean scalars: ``adapt`` (warm-up: tune
    :math:`\\lambda`), ``collect`` (second half of warm-up: also accumulate the history's moments
    for :math:`\\Sigma`), ``keep`` (a kept draw) and ``active`` (a real iteration, not padding)."""
    k = chain.theta.shape[0]
    dtype = chain.prop_cov.dtype
    k_prop, k_pf, k_acc = jax.random.split(key, 3)
    L = jnp.linalg.cholesky(chain.prop_cov + 1e-10 * jnp.eye(k, dtype=dtype))
    proposal = chain.theta + jnp.exp(chain.log_scale) * (L @ jax.random.normal(k_prop, (k,), dtype))
    log_target, log_lik = _log_target(space, config, y, proposal, k_pf)
    log_ratio = log_target - chain.log_target
    accept_prob = jnp.exp(jnp.minimum(0.0, jnp.where(jnp.isnan(log_ratio), -jnp.inf, log_ratio)))
    accept = jax.random.uniform(k_acc, (), dtype) < accept_prob
    theta = jnp.where(accept, proposal, chain.theta)
    moved = chain._replace(theta=theta, log_target=jnp.where(accept, log_target, chain.log_target),
                           log_lik=jnp.where(accept, log_lik, chain.log_lik),
                           accepted=chain.accepted + (accept & keep & active))
    # warm-up: Robbins-Monro on log lambda toward target_accept, with gain (i + 1)^-0.6 / 2 over
    # the warm-up iterations i; in its second half also Welford moments of the history, whose
    # covariance becomes Sigma once there are 10 k of them (the first half, where the chain is
    # still travelling from its start, would inflate it)
    i = chain.count + 1.0
    log_scale = chain.log_scale + 0.5 * i ** -0.6 * (accept_prob - target_accept)
    n = chain.collected + 1.0
    delta = theta - chain.hist_mean
    mean = chain.hist_mean + delta / jnp.maximum(n, 1.0)
    cov = chain.hist_cov + (jnp.outer(delta, theta - mean) - chain.hist_cov) / jnp.maximum(n, 1.0)
    cov = 0.5 * (cov + cov.T)
    mean = jnp.where(collect, mean, chain.hist_mean)
    cov = jnp.where(collect, cov, chain.hist_cov)
    ready = collect & (n >= 10 * k)
    # when Sigma first comes from the history, lambda restarts at Haario's 2.38 / sqrt(k)
    log_scale = jnp.where(collect & (n == 10 * k), math.log(2.38 / math.sqrt(k)), log_scale)
    adapted = moved._replace(hist_mean=mean, hist_cov=cov, count=i, log_scale=log_scale,
                             collected=jnp.where(collect, n, chain.collected),
                             prop_cov=jnp.where(ready, cov + 1e-8 * jnp.eye(k, dtype=dtype), chain.prop_cov))
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(adapt, a, b), adapted, moved)
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, chain)
    return new, (new.theta, new.log_lik, accept & active)


def pmmh(model, y, key, priors, n_particles=256, num_samples=1000, num_warmup=1000, num_chains=4, *,
         proposal="bootstrap", resampling="systematic", ess_threshold=0.5, proposal_cov=None,
         init_jitter=0.05, target_accept=0.15, progress_bar=False) -> PMMHResult:
    r"""Particle marginal Metropolis-Hastings of the parameters named in ``priors``.

    Parameters
    ----------
    model : StateSpaceModel
        The specification; its parameter values start the chains.
    y : array ``(T, m)`` (or ``(T,)`` for ``m = 1``); NaN entries missing.
    key : jax.random key
    priors : dict
        ``{name: numpyro Distribution}`` over keys of ``model.params`` and, for an
        :class:`~probssm.ssm.AdditiveGaussianSSM`, ``"Q"``, ``"R"``, ``"m0"``, ``"P0"`` (see
        :class:`PriorSpace`).
    n_particles : int
        Particles of each likelihood estimate.
    num_samples, num_warmup, num_chains : int
        Kept draws per chain, adaptation iterations per chain (discarded), chains (run at once).
    proposal, resampling, ess_threshold
        Of the particle filter (:func:`probssm.smc.filter`).
    proposal_cov : array ``(k, k)``, optional
        Initial :math:`\Sigma` on the unconstrained scale (default :math:`0.1^2 I`); with
        ``num_warmup = 0`` the random walk's fixed covariance (times :math:`\lambda^2`,
        :math:`\lambda = 2.38 / \sqrt k`).
    init_jitter : float
        Standard deviation of the chains' Gaussian offsets from the starting values (unconstrained).
    target_accept : float
        Acceptance rate the warm-up aims for (about 0.07-0.25 is efficient for PMMH).
    progress_bar : bool
        A tqdm bar over blocks of iterations (each block one compiled scan).

    Returns
    -------
    PMMHResult
    """
    from ..fit.bayes import posterior_summary

    check_model(model)
    y = check_y(model, y)
    if y.ndim != 2:
        raise ValueError(f"y: pmmh takes one series of shape (T, m), got {tuple(y.shape)}")
    config = make_config(n_particles, proposal, resampling, ess_threshold, summaries=False)
    check_functions(model, config, y)
    for name, value in (("num_samples", num_samples), ("num_chains", num_chains)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(num_warmup, bool) or not isinstance(num_warmup, (int, np.integer)) or num_warmup < 0:
        raise ValueError(f"num_warmup must be a non-negative integer, got {num_warmup!r}")
    if not 0.0 < float(target_accept) < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    space = PriorSpace(model, priors)
    k = space.theta0.shape[0]
    dtype = y.dtype
    if proposal_cov is None:
        cov0 = 0.01 * np.eye(k)
    else:
        cov0 = np.asarray(proposal_cov, dtype=float)
        if cov0.shape != (k, k):
            raise ValueError(f"proposal_cov: expected shape ({k}, {k}) for {space.names}, got {cov0.shape}")
        if not np.all(np.isfinite(cov0)) or np.linalg.eigvalsh(0.5 * (cov0 + cov0.T))[0] <= 0:
            raise ValueError("proposal_cov must be finite, symmetric and positive definite")
    num_chains, num_samples, num_warmup = int(num_chains), int(num_samples), int(num_warmup)

    k_init, k_start, k_run = jax.random.split(key, 3)
    theta0 = jnp.asarray(space.theta0, dtype) + float(init_jitter) * jax.random.normal(k_init, (num_chains, k), dtype)
    start_keys = jax.random.split(k_start, num_chains)
    log_target0, log_lik0 = jax.jit(jax.vmap(lambda th, kk: _log_target(space, config, y, th, kk)))(theta0, start_keys)
    if not np.all(np.isfinite(np.asarray(log_target0))):
        bad = int(np.argmax(~np.isfinite(np.asarray(log_target0))))
        raise ValueError(f"pmmh: chain {bad} starts where the log posterior estimate is -inf (log-likelihood "
                         f"estimate {float(log_lik0[bad])}); start the model at plausible parameter values, "
                         "reduce init_jitter or use more particles")
    chains = _Chain(theta=theta0, log_target=log_target0, log_lik=log_lik0,
                    hist_mean=theta0, hist_cov=jnp.zeros((num_chains, k, k), dtype),
                    count=jnp.zeros(num_chains, dtype), collected=jnp.zeros(num_chains, dtype),
                    prop_cov=jnp.broadcast_to(jnp.asarray(cov0, dtype), (num_chains, k, k)),
                    log_scale=jnp.full(num_chains, math.log(2.38 / math.sqrt(k)), dtype),
                    accepted=jnp.zeros(num_chains, jnp.int32))

    total = num_warmup + num_samples
    block = max(1, math.ceil(total / 20)) if progress_bar else total
    n_blocks = math.ceil(total / block)

    def run_block(chains, keys, adapt, collect, keep, active):
        def body(ch, inputs):
            kk, a, co, kp, ac = inputs
            return jax.vmap(lambda c, k_: _mh_step(space, config, y, float(target_accept), c, k_, a, co, kp, ac))(
                ch, kk)
        return jax.lax.scan(body, chains, (keys, adapt, collect, keep, active))

    run_block = jax.jit(run_block)
    iteration = np.arange(n_blocks * block)
    keys = jax.random.split(k_run, (n_blocks * block, num_chains))
    adapt, keep, active = iteration < num_warmup, iteration >= num_warmup, iteration < total
    collect = adapt & (iteration >= num_warmup // 2)
    thetas, lliks, accepts = [], [], []
    blocks = range(n_blocks)
    if progress_bar:
        from tqdm.auto import tqdm
        blocks = tqdm(blocks, desc="pmmh", unit="block")
    for b in blocks:
        sl = slice(b * block, (b + 1) * block)
        chains, (th, ll, acc) = run_block(chains, keys[sl], jnp.asarray(adapt[sl]), jnp.asarray(collect[sl]),
                                          jnp.asarray(keep[sl]), jnp.asarray(active[sl]))
        thetas.append(np.asarray(th))
        lliks.append(np.asarray(ll))
        accepts.append(np.asarray(acc))
    theta = np.concatenate(thetas)[num_warmup:total].swapaxes(0, 1)        # (chains, draws, k)
    log_lik = np.concatenate(lliks)[num_warmup:total].swapaxes(0, 1)
    natural = space.natural(theta)                                           # (chains, draws, p)
    names = space.names
    samples, offset = {}, 0
    for name, shape in space.shapes.items():
        size = int(np.prod(shape, dtype=int))
        samples[name] = natural[..., offset:offset + size].reshape(natural.shape[:2] + tuple(shape))
        offset += size
    draws = pd.DataFrame(natural.reshape(-1, natural.shape[-1]), columns=names)
    draws.index = pd.MultiIndex.from_product([range(num_chains), range(num_samples)], names=["chain", "draw"])
    return PMMHResult(
        samples=samples, draws=draws, theta=theta, log_likelihood=log_lik,
        acceptance_rate=np.asarray(chains.accepted) / num_samples,
        step_size=np.exp(np.asarray(chains.log_scale)), proposal_cov=np.asarray(chains.prop_cov),
        summary=posterior_summary(natural, names))
