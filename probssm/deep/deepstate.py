r"""``DeepStateForecaster`` (Rangapuram et al. 2018): a sequence network emits the parameters of a
linear-Gaussian state-space model per series and time step; the likelihood is exact Kalman
filtering (``pyro.distributions.GaussianHMM``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import _data
from . import panel as panels
from . import statespace as ss
from .forecasting import DTYPES, DeepForecaster
from .network import make_layer
from .seeding import seeded, torch_seed
from .training import TrainingSettings
from .windows import calendar_features

__all__ = ["DeepStateForecaster"]

_SEASONS = {"M": 12, "Q": 4, "D": 7, "B": 5, "h": 24, "H": 24}


class ParameterNetwork(nn.Module):
    """Covariates ``(B, T, c)`` and series indices ``(B,)`` -> raw parameters ``(B, T, 5)``: a
    series embedding joined to the covariates, residual sequence layers, a linear read-out."""

    def __init__(self, backbone, n_series, n_covariates, embedding_dim, d_model, n_layers, d_state):
        super().__init__()
        self.embedding = nn.Embedding(n_series, embedding_dim)
        self.embed = nn.Linear(n_covariates + embedding_dim, d_model)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.layers = nn.ModuleList(make_layer(backbone, d_model, d_state) for _ in range(n_layers))
        self.out = nn.Linear(d_model, ss.N_OUTPUTS)
        with torch.no_grad():  # start with small noise: softplus(-3) = 0.05 in normalised units
            self.out.bias.copy_(torch.tensor([-3.0, -3.0, -3.0, -1.0, 0.0]))

    def forward(self, covariates, series):
        emb = self.embedding(series)[:, None, :].expand(-1, covariates.shape[1], -1)
        e = self.embed(torch.cat([covariates, emb], dim=-1))
        for norm, layer in zip(self.norms, self.layers):
            e = e + layer(norm(e))
        return self.out(e)


class DeepStateForecaster(DeepForecaster):
    r"""Deep state-space forecaster: a global network emits a linear-Gaussian model per series.

    For series :math:`b`, normalised by its training mean and standard deviation
    (:math:`\tilde y = (y - \mu_b) / \sigma_b`), the network reads the known covariates
    :math:`c_{t}` (calendar features, regressors) and a learned embedding of :math:`b`, and emits
    the noise scales and the offset :math:`\theta_{b,t}` of a level + slope + seasonal model
    (:mod:`probssm.deep.statespace`):

    .. math::

        x_t = F x_{t-1} + \eta_t,\ \eta_t \sim \mathcal N(0, Q(\theta_{b,t})), \qquad
        \tilde y_t = H x_t + d(\theta_{b,t}) + \varepsilon_t,\
        \varepsilon_t \sim \mathcal N(0, \sigma^2(\theta_{b,t})).

    Training maximises the exact log-likelihood :math:`\sum_b \log p(\tilde y_{b,0:T})`
    (Kalman filtering through ``pyro.distributions.GaussianHMM``, missing values
    marginalised). Forecasts are the model's Gaussian predictive distributions after the data,
    in data units; ``update`` is a Kalman filter step; ``score`` the exact predictive density.

    Parameters
    ----------
    horizon : int
        Steps held out for early stopping (``validation=True``); forecasts may go further.
    season_length : int or None
        Period :math:`s` of the seasonal component (None: 12 for monthly, 4 for quarterly, 7
        for daily, 24 for hourly data, none otherwise; 1: none).
    trend : bool
        Whether the state has a slope.
    backbone, d_model, n_layers, d_state
        The sequence network (as in :class:`MambaForecaster`).
    embedding_dim : int
        Size of the learned series embedding.
    max_epochs, batches_per_epoch, batch_size, learning_rate, weight_decay, patience, grad_clip
        Training (``batch_size`` series per step).
    validation : bool
        Early stopping on :math:`\log p(y_{T-H:T} \mid y_{0:T-H})`.
    prior_scale : float
        Standard deviation of the initial state :math:`m_0 = 0`, :math:`P_0 = \text{prior\_scale}^2 I`
        (normalised units).
    dtype : ``"float32"`` or ``"float64"``
    random_state : None, int or numpy Generator

    Attributes
    ----------
    network_, history_, best_epoch_, series_, training_seconds_
        As in :class:`MambaForecaster`.
    log_likelihood_ : Series
        :math:`\log p(y_{b,0:T})` in data units, per series, at the kept weights.
    """

    def __init__(self, horizon=12, season_length=None, trend=True, backbone="lru", d_model=16,
                 n_layers=1, d_state=16, embedding_dim=4, max_epochs=30, batches_per_epoch=10,
                 batch_size=64, learning_rate=1e-2, weight_decay=1e-4, patience=5, grad_clip=1.0,
                 validation=True, prior_scale=2.0, dtype="float32", random_state=None):
        self.horizon = horizon
        self.season_length = season_length
        self.trend = trend
        self.backbone = backbone
        self.d_model = d_model
        self.n_layers = n_layers
        self.d_state = d_state
        self.embedding_dim = embedding_dim
        self.max_epochs = max_epochs
        self.batches_per_epoch = batches_per_epoch
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.validation = validation
        self.prior_scale = prior_scale
        self.dtype = dtype
        self.random_state = random_state

    # -- configuration ----------------------------------------------------------------------
    def _check_hyper(self, index):
        self._check_network_settings(extra_ints=("embedding_dim",))
        if not float(self.prior_scale) > 0:
            raise ValueError(f"prior_scale must be positive, got {self.prior_scale}")
        season = self.season_length
        if season is None:
            code = (getattr(index, "freqstr", None) or "").lstrip("0123456789")
            season = next((v for k, v in _SEASONS.items() if code.startswith(k) and not code.startswith("min")), 1)
        self._structure = ss.Structure(self.trend, _data.check_int(season, "season_length", 1))

    def _initial(self, B):
        n = self._structure.n
        scale = float(self.prior_scale)
        return torch.distributions.MultivariateNormal(
            torch.zeros(B, n, dtype=DTYPES[self.dtype]),
            scale_tril=scale * torch.eye(n, dtype=DTYPES[self.dtype]).expand(B, n, n))

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, y, X=None):
        """Train on ``y`` in any panel layout (as :meth:`MambaForecaster.fit`); ``X`` regressors
        known in advance. Returns ``self``."""
        panel = panels.read_panel(y)
        self._check_hyper(panel.index)
        values = panel.values
        observed = ~np.isnan(values)
        if (observed.sum(axis=1) < 2).any():
            b = int(np.argmax(observed.sum(axis=1) < 2))
            raise ValueError(f"series {panel.ids[b]!r} has fewer than 2 observed values")
        self._set_data(panel)
        self._loc = np.nanmean(values, axis=1)
        self._scale = np.maximum(np.nanstd(values, axis=1), 1e-8 * np.maximum(np.abs(self._loc), 1.0))
        self._set_exog(X, panel)
        self._n_covariates = self._covariates(0, None).shape[-1]
        self._train(self._loss, self._batches, TrainingSettings(
            int(self.max_epochs), float(self.learning_rate), float(self.weight_decay), int(self.patience),
            float(self.grad_clip)))
        self._refilter()
        self.is_fitted_ = True
        return self

    def _build_network(self):
        return ParameterNetwork(self.backbone, len(self.series_), self._n_covariates, int(self.embedding_dim),
                                int(self.d_model), int(self.n_layers), int(self.d_state))

    def _covariates(self, h: int, future_exog) -> np.ndarray:
        """Covariates ``(B, T + h, c)``: calendar features and standardised regressors over the
        data seen and ``h`` steps after it."""
        index = self._y.index
        B = len(self.series_)
        full = index.append(_data.future_index(index, np.arange(1, h + 1))) if h else index
        cal = calendar_features(full)
        parts = [np.broadcast_to(cal, (B,) + cal.shape)]
        if self._X is not None:
            exog = self._X if not h else np.concatenate([self._X, future_exog], axis=1)
            parts.append((exog - self._exog_mean) / self._exog_std)
        return np.concatenate(parts, axis=-1)

    def _normalised(self, values):
        return (values - self._loc[:, None]) / self._scale[:, None]

    def _params(self, network, covariates, series):
        # The network may run under bf16 autocast; the model's parameters and the Kalman
        # recursions stay in the estimator's dtype.
        raw = network(covariates, series).to(DTYPES[self.dtype])
        with torch.autocast(raw.device.type, enabled=False):
            return ss.time_varying(self._structure, raw)

    def _batches(self, rng):
        z = self._normalised(self._y.values.T)
        B, T = z.shape
        H = int(self.horizon)
        cov = self._covariates(0, None)
        holdout = bool(self.validation) and T - H >= 2
        split = T - H if holdout else T

        def batch(idx, length):
            return {"covariates": self._tensor(cov[idx, :length]), "series": torch.as_tensor(idx),
                    "y": self._tensor(z[idx, :length]),
                    "split": torch.full((len(idx),), split if length == T else length)}

        def train_batches(epoch):
            for _ in range(int(self.batches_per_epoch)):
                yield batch(rng.permutation(B)[:min(int(self.batch_size), B)], split)

        return train_batches, [batch(np.arange(B), T)] if holdout else []

    def _loss(self, network, batch):
        """Negative log-likelihood per observed value: of the whole batch in training, of the
        held-out steps given the earlier ones in validation."""
        Q, sd, d = self._params(network, batch["covariates"], batch["series"])
        y = batch["y"]
        initial = self._initial(y.shape[0])
        initial = torch.distributions.MultivariateNormal(initial.loc.to(y.device),
                                                         scale_tril=initial.scale_tril.to(y.device))
        split = int(batch["split"][0])
        with torch.autocast(y.device.type, enabled=False):
            total = ss.log_likelihood(self._structure, initial, Q, sd, d, y)
            if split == y.shape[1]:
                return -total.sum() / (~torch.isnan(y)).sum()
            head = ss.log_likelihood(self._structure, initial, Q[:, :split], sd[:, :split], d[:, :split],
                                     y[:, :split])
        return -(total - head).sum() / (~torch.isnan(y[:, split:])).sum().clamp(min=1)

    def _loss_weight(self, batch) -> float:
        """What :meth:`_loss` averages over: the observed values (of the held-out steps in
        validation)."""
        y, split = batch["y"], int(batch["split"][0])
        if split == y.shape[1]:
            return float((~torch.isnan(y)).sum())
        return float((~torch.isnan(y[:, split:])).sum())

    # -- the filtered state -------------------------------------------------------------------
    def _all_params(self, h=0, future_exog=None):
        B = len(self.series_)
        with torch.no_grad():
            return self._params(self.network_.eval(), self._tensor(self._covariates(h, future_exog)),
                                torch.arange(B))

    def _refilter(self):
        """Filter all the data: the filtered state at the end and the log-likelihood."""
        z = self._tensor(self._normalised(self._y.values.T))
        Q, sd, d = self._all_params()
        initial = self._initial(z.shape[0])
        with torch.no_grad():
            ll = ss.log_likelihood(self._structure, initial, Q, sd, d, z)
            state = ss.filtered(self._structure, initial, Q, sd, d, z)
        n_obs = (~torch.isnan(z)).sum(-1).double().numpy()
        self.log_likelihood_ = pd.Series(ll.double().numpy() - n_obs * np.log(self._scale),
                                         index=pd.Index(self.series_, name="series_id"), name="log_likelihood")
        self._filtered = (state.loc, state.covariance_matrix)

    def _states(self, smooth: bool):
        from ..base import StateEstimates

        z = self._tensor(self._normalised(self._y.values.T))
        Q, sd, d = self._all_params()
        initial = self._initial(z.shape[0])
        with torch.no_grad():
            mean, cov = ss.filter_smooth(self._structure, initial, Q, sd, d, z, smooth=smooth)
            ll = ss.log_likelihood(self._structure, initial, Q, sd, d, z).double().numpy()
        mean, cov = mean.double().numpy(), cov.double().numpy()
        n_obs = (~np.isnan(self._y.values.T)).sum(axis=1)
        names = ["level"] + (["slope"] if self.trend else []) + \
            [f"season{j}" for j in range(1, self._structure.n - self._structure.season_start + 1)]
        parts = {}
        for b, sid in enumerate(self.series_):
            m = mean[b] * self._scale[b]
            m[:, 0] += self._loc[b]
            parts[sid] = StateEstimates.from_moments(m, cov[b] * self._scale[b] ** 2, self._y.index, names,
                                                     ll[b] - n_obs[b] * np.log(self._scale[b]))
        return StateEstimates.stack(parts)

    def filter(self):
        r"""Filtered states :math:`p(x_t \mid y_{0:t})` of every series over the data seen, in data
        units (the level plus the series' mean, slope and seasonal effects times its scale),
        stacked by series (:meth:`probssm.base.StateEstimates.stack`); the log-likelihood is the
        sum over series."""
        self._check_is_fitted()
        return self._states(smooth=False)

    def smooth(self):
        r"""Smoothed states :math:`p(x_t \mid y_{0:T-1})` (Rauch-Tung-Striebel), as :meth:`filter`."""
        self._check_is_fitted()
        return self._states(smooth=True)

    def _state(self):
        return torch.distributions.MultivariateNormal(*self._filtered)

    def state_space_model(self, series) -> dict:
        """The fitted linear-Gaussian model of one series over the data seen, in
        :mod:`probssm.kalman`'s convention and normalised units (see
        :func:`probssm.deep.statespace.to_kalman`), plus ``loc`` and ``scale``, the normalisation
        :math:`\\tilde y = (y - \\text{loc}) / \\text{scale}`."""
        self._check_is_fitted()
        if series not in self.series_:
            raise ValueError(f"series {series!r} is not among the fitted series")
        b = self.series_.index(series)
        Q, sd, d = self._all_params()
        initial = self._initial(1)
        model = ss.to_kalman(self._structure, initial.loc[0], initial.covariance_matrix[0], Q[b], sd[b], d[b])
        return {**model, "loc": float(self._loc[b]), "scale": float(self._scale[b])}

    # -- forecasting --------------------------------------------------------------------------
    def _future_params(self, h, future_exog):
        T = len(self._y.index)
        Q, sd, d = self._all_params(h, future_exog)
        return Q[:, T:], sd[:, T:], d[:, T:]

    def _moments(self, fh, X):
        self._check_is_fitted()
        steps = _data.forecast_steps(fh, self._y.index)
        h = int(np.max(steps))
        with torch.no_grad():
            mean, var = ss.predictive_moments(self._structure, self._state(),
                                              *self._future_params(h, self._exog_after(X, h)))
        mean = mean.double().numpy()[:, steps - 1] * self._scale[:, None] + self._loc[:, None]
        sd = np.sqrt(var.double().numpy()[:, steps - 1]) * self._scale[:, None]
        return steps, mean, sd, self._future(steps)

    def predict(self, fh, X=None):
        """Predictive means for ``fh``, in the layout of the training data."""
        _, mean, _, index = self._moments(fh, X)
        return panels.write_point(self._panel_info, mean, index)

    def predict_interval(self, fh, X=None, coverage=0.9):
        """Gaussian central intervals (columns as in :meth:`MambaForecaster.predict_interval`)."""
        from scipy import stats

        _, mean, sd, index = self._moments(fh, X)
        cols = {}
        for c in _data.check_coverage(coverage):
            z = stats.norm.ppf(0.5 + c / 2)
            cols[(c, "lower")], cols[(c, "upper")] = mean - z * sd, mean + z * sd
        return panels.write_table(self._panel_info, cols, index)

    def predict_quantiles(self, fh, X=None, alpha=(0.05, 0.5, 0.95)):
        """Gaussian predictive quantiles (columns ``(variable, alpha)``)."""
        from scipy import stats

        _, mean, sd, index = self._moments(fh, X)
        alphas = _data.check_alpha(alpha)
        return panels.write_table(self._panel_info, {(a,): mean + stats.norm.ppf(a) * sd for a in alphas}, index)

    def sample(self, fh, n_samples=100, random_state=None, X=None):
        """Joint sample paths of the state-space model (layout as
        :meth:`MambaForecaster.sample`)."""
        n = _data.check_int(n_samples, "n_samples", 1)
        self._check_is_fitted()
        steps = _data.forecast_steps(fh, self._y.index)
        h = int(np.max(steps))
        params = self._future_params(h, self._exog_after(X, h))
        with seeded(torch_seed(random_state), torch.device("cpu")), torch.no_grad():
            paths = ss.simulate(self._structure, self._state(), *params, n).double().numpy()
        draws = paths[:, :, steps - 1] * self._scale[None, :, None] + self._loc[None, :, None]
        return panels.write_samples(self._panel_info, draws, self._future(steps))

    def _new_data(self, y, X, name, xname):
        new = panels.read_continuation(y, self._panel_info, self._y.index, name)
        exog = self._exog_after(X, new.shape[1], xname)
        with torch.no_grad():
            params = self._future_params(new.shape[1], exog)
        return new, exog, params

    def update(self, y_new, X_new=None):
        """Absorb observations that follow the data (layout of ``fit``): a Kalman filter step
        from the filtered state, with the network's parameters for the new steps. Returns
        ``self``."""
        self._check_is_fitted()
        new, exog, params = self._new_data(y_new, X_new, "y_new", "X_new")
        z = self._tensor(self._normalised(new))
        with torch.no_grad():
            state = ss.filtered(self._structure, self._state(), *params, z)
        self._filtered = (state.loc, state.covariance_matrix)
        self._append(new, exog)
        return self

    def score(self, y, X=None) -> float:
        """Mean log predictive density of held-out ``y`` that follows the data, exact:
        :math:`\\frac1N \\sum_b \\log p(y_{b,T:T+h} \\mid y_{b,0:T})` in data units."""
        self._check_is_fitted()
        new, _, params = self._new_data(y, X, "y", "X")
        z = self._tensor(self._normalised(new))
        with torch.no_grad():
            ll = ss.log_likelihood(self._structure, self._state(), *params, z).double().numpy()
        n_obs = (~np.isnan(new)).sum(axis=1)
        return float((ll - n_obs * np.log(self._scale)).sum() / n_obs.sum())

    def _forecast_bands(self, fh, X, alphas):
        """Point forecasts ``(B, h)``, quantiles ``(B, h, len(alphas))`` and the future index
        (for the plot)."""
        from scipy import stats

        _, mean, sd, index = self._moments(fh, X)
        return mean, mean[..., None] + sd[..., None] * stats.norm.ppf(np.asarray(alphas)), index

    # -- persistence ----------------------------------------------------------------------------
    def _extra_state(self):
        arrays = {"loc": self._loc, "scale": self._scale, "filtered_mean": self._filtered[0].numpy(),
                  "filtered_cov": self._filtered[1].numpy(), "log_likelihood": self.log_likelihood_.to_numpy()}
        return {"n_covariates": int(self._n_covariates)}, arrays

    def _restore_extra_state(self, meta, arrays):
        self._check_hyper(self._y.index)
        self._n_covariates = meta["n_covariates"]
        self._loc, self._scale = arrays["loc"], arrays["scale"]
        self._filtered = (torch.as_tensor(arrays["filtered_mean"]), torch.as_tensor(arrays["filtered_cov"]))
        self.log_likelihood_ = pd.Series(arrays["log_likelihood"], index=pd.Index(self.series_, name="series_id"),
                                         name="log_likelihood")
