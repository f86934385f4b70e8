r"""``MambaForecaster``: one deep selective state-space network trained on a whole panel, on the
forecasting contract of :mod:`probssm.base`."""

from __future__ import annotations

import numpy as np
import torch

from .. import _data
from . import panel as panels
from .forecasting import DTYPES, DeepForecaster
from .heads import make_head
from .network import ChannelNetwork, VariateNetwork
from .seeding import seeded, torch_seed
from .training import TrainingSettings
from .windows import calendar_features, gather_windows

__all__ = ["MambaForecaster"]

MODES = ("channel", "variate")


class MambaForecaster(DeepForecaster):
    r"""Global deep state-space forecaster over a panel: one network for all series.

    Every forecast origin :math:`t` of every series gives a window: the ``lookback`` values
    :math:`y_{t-L:t}` (normalised per window, :mod:`probssm.deep.windows`), calendar features and
    regressors go in; the predictive distribution of the ``horizon`` values
    :math:`y_{t:t+H}` comes out of a head (:mod:`probssm.deep.heads`), each step's distribution
    read from the network's last state (:mod:`probssm.deep.network`):

    .. math::

        p(y_{t+k} \mid y_{t-L:t}, c) = \text{head}\big(r_k(y_{t-L:t}, c)\big),
        \qquad k = 1, \dots, H,

    trained by the mean negative log-likelihood (pinball loss for ``likelihood="quantile"``)
    of all windows, with AdamW, gradient clipping and early stopping on the windows whose
    targets are the last ``horizon`` steps (:mod:`probssm.deep.training`).

    Parameters
    ----------
    lookback : int
        Input window :math:`L`. Every series needs at least ``lookback + 1`` steps from its
        first observation to the end of the data.
    horizon : int
        Steps :math:`H` forecast at once; forecasts go up to ``horizon`` steps ahead.
    backbone : ``"mamba2"``, ``"mamba"``, ``"s4d"`` or ``"lru"``
        The sequence layer (:mod:`probssm.deep.layers`). The default, the Mamba-2 block, computes
        its scan as matrix products and trains fast on a CPU as well as on a GPU; ``"mamba"``'s
        selective scan runs fused Triton kernels on CUDA but the slower reference scan on a CPU
        (about 15x the time of ``"mamba2"`` per training step on the employment panel).
    mode : ``"channel"`` or ``"variate"``
        ``"channel"``: each series is a sequence over time (channel independence), encoded
        recurrently. ``"variate"``: the series of the panel are the tokens (S-Mamba), read in
        both directions, so that series inform each other; the panel's series must be the same
        at fit and forecast time.
    likelihood : ``"normal"``, ``"studentt"``, ``"negbinomial"`` or ``"quantile"``
        The head. ``"negbinomial"`` needs non-negative integer data.
    quantile_levels : tuple of float, optional
        Levels of the quantile head (default 0.025 ... 0.975, nine levels).
    revin : bool
        Normalise each window by its mean and standard deviation (reversible instance
        normalisation); the count head always scales by the window's mean level.
    calendar : bool
        Add calendar features of the time index (month of year for monthly data, ...).
    d_model, n_layers, d_state : int
        Width, depth and state size of the backbone.
    max_epochs, batches_per_epoch, batch_size : int
        Training length: ``batches_per_epoch`` random batches of ``batch_size`` windows per epoch
        (in variate mode, ``batch_size // n_series`` origins, at least one, per batch).
    learning_rate, weight_decay, grad_clip : float
        AdamW and gradient-norm clipping.
    patience : int
        Epochs without a better validation loss before training stops.
    validation : bool
        Hold out the last ``horizon`` steps of every series as validation targets for early
        stopping (their values still enter the lookback at forecast time).
    dtype : ``"float32"`` or ``"float64"``
        The network's dtype.
    random_state : None, int or numpy Generator
        Seeds the weights' initialisation, the batches and the draws of ``sample``; the same
        int gives the same model on the CPU.

    Attributes
    ----------
    network_ : torch.nn.Module
        The trained network.
    history_ : DataFrame
        Training and validation loss per epoch.
    best_epoch_ : int
        The epoch whose weights were kept.
    series_ : list
        The series identifiers, in the order of the panel.
    training_seconds_ : float

    Notes
    -----
    Missing values (NaN) are allowed in ``y``: in the lookback they are masked (the scan carries
    its state over them and the network sees an observed flag), as targets they are left out of
    the loss. Regressors ``X`` must be complete.

    Execution settings that do not change the result go through ``set_config``: ``device``
    (``"auto"``: CUDA when available), ``progress`` (a tqdm bar with the losses),
    ``checkpoint_dir`` (the best weights written there during training) and ``strategy``
    (``"single"``, the default, or ``"ddp"``: data-parallel training over the processes of a
    ``torchrun`` launch, one per GPU with NCCL or CPU processes with gloo, each on its share
    of every global batch, with the loss curve of one process; see
    :mod:`probssm.deep.distributed` and the entry point ``torchrun -m probssm.deep.train``).
    """

    def __init__(self, lookback=36, horizon=12, backbone="mamba2", mode="channel", likelihood="normal",
                 quantile_levels=None, revin=True, calendar=True, d_model=32, n_layers=2, d_state=16,
                 max_epochs=20, batches_per_epoch=30, batch_size=128, learning_rate=3e-3,
                 weight_decay=1e-4, patience=5, grad_clip=1.0, validation=True, dtype="float32",
                 random_state=None):
        self.lookback = lookback
        self.horizon = horizon
        self.backbone = backbone
        self.mode = mode
        self.likelihood = likelihood
        self.quantile_levels = quantile_levels
        self.revin = revin
        self.calendar = calendar
        self.d_model = d_model
        self.n_layers = n_layers
        self.d_state = d_state
        self.max_epochs = max_epochs
        self.batches_per_epoch = batches_per_epoch
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.validation = validation
        self.dtype = dtype
        self.random_state = random_state

    # -- configuration ----------------------------------------------------------------------
    def _check_hyper(self):
        self._check_network_settings(extra_ints=("lookback",))
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self._head = make_head(self.likelihood, self.quantile_levels)

    def _norm_mode(self) -> str:
        if not self._head.location_scale:
            return "mean"
        return "revin" if self.revin else "none"

    def _settings(self) -> TrainingSettings:
        return TrainingSettings(int(self.max_epochs), float(self.learning_rate),
                                float(self.weight_decay), int(self.patience), float(self.grad_clip))

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, y, X=None):
        """Train on ``y``: one series (Series, 1-D array), a wide panel (DataFrame or 2-D array
        ``(T, B)``, one column per series), a ``(series_id, time)``-indexed Series/DataFrame, or
        a ``unique_id``/``ds``/``y`` frame. ``X``: regressors known in advance, shared by all
        series (indexed by time, or an array ``(T, k)``) or per series (indexed by
        ``(series_id, time)``). Returns ``self``."""
        self._check_hyper()
        panel = panels.read_panel(y)
        self._check_data(panel.values, panel.ids, panel.index)
        self._set_data(panel)
        self._set_exog(X, panel)
        self._origin = len(panel.index)
        self._n_covariates = self._covariates(None).shape[-1]
        self._train(self._loss, self._batches, self._settings())
        self._state = None
        self.is_fitted_ = True
        return self

    def _check_data(self, values, ids, index):
        L = int(self.lookback)
        observed = ~np.isnan(values)
        first = np.argmax(observed, axis=1)
        length = values.shape[1] - first
        short = np.flatnonzero(length < L + 1)
        if short.size:
            b = int(short[0])
            raise ValueError(
                f"series {ids[b]!r} has {int(length[b])} time steps from its first observation "
                f"({index[first[b]]!r}) to the end; lookback={L} needs at least {L + 1} "
                f"({short.size} series too short): lower lookback or drop the series")
        if self.likelihood == "negbinomial":
            _check_counts(values, ids, index)

    def _build_network(self):
        args = (self._n_covariates, int(self.horizon), self._head.n_params, int(self.d_model),
                int(self.n_layers), int(self.d_state))
        if self.mode == "variate":
            return VariateNetwork(self.backbone, int(self.lookback), *args)
        return ChannelNetwork(self.backbone, 2 + self._n_covariates, *args)

    def _covariates(self, future_exog) -> np.ndarray:
        """Covariates ``(B, T + H, c)`` over the data seen and the ``horizon`` steps after it:
        calendar features, then the standardised regressors (``future_exog`` ``(B, h, k)`` for
        the first ``h`` future steps; zeros past them, where nothing is read)."""
        index = self._y.index
        B, T, H = len(self.series_), len(index), int(self.horizon)
        parts = []
        if self.calendar:
            cal = calendar_features(index.append(_data.future_index(index, np.arange(1, H + 1))))
            parts.append(np.broadcast_to(cal, (B,) + cal.shape))
        if self._X is not None:
            exog = np.zeros((B, T + H, self._X.shape[-1]))
            exog[:, :T] = self._X
            known = T
            if future_exog is not None:
                known += future_exog.shape[1]
                exog[:, T:known] = future_exog
            exog[:, :known] = (exog[:, :known] - self._exog_mean) / self._exog_std
            parts.append(exog)
        return np.concatenate(parts, axis=-1) if parts else np.zeros((B, T + H, 0))

    def _origins(self, values, last_origin: int) -> tuple[np.ndarray, np.ndarray]:
        """All (series, origin) pairs with an origin ``<= last_origin``, a full lookback after the
        series' first observation, an observed lookback value and an observed target."""
        L, H = int(self.lookback), int(self.horizon)
        B, T = values.shape
        observed = ~np.isnan(values)
        csum = np.concatenate([np.zeros((B, 1)), np.cumsum(observed, axis=1)], axis=1)
        first = np.argmax(observed, axis=1)
        t = np.arange(L, last_origin + 1)
        ok = (t[None, :] - L >= first[:, None]) & (csum[:, t] - csum[:, t - L] > 0) \
            & (csum[:, np.minimum(t + H, T)] - csum[:, t] > 0)
        if self.mode == "variate":
            keep = ok.any(axis=0)
            return np.zeros(int(keep.sum()), dtype=int), t[keep]
        b, j = np.nonzero(ok)
        return b, t[j]

    def _batches(self, rng):
        values = self._y.values.T
        T = values.shape[1]
        H, L = int(self.horizon), int(self.lookback)
        cov = self._covariates(None)
        val_series, val_origins = np.zeros(0, int), np.zeros(0, int)
        train_values = values
        if self.validation and T - H >= L:
            train_values = values.copy()
            train_values[:, T - H:] = np.nan  # validation targets never reach the training loss
            val_series, val_origins = self._origins(values, T - H)
            keep = val_origins == T - H
            val_series, val_origins = val_series[keep], val_origins[keep]
        series, origins = self._origins(train_values, T - 1)
        if origins.size == 0:
            raise ValueError(f"no training window: with lookback={L}, horizon={H} and validation="
                             f"{self.validation} the {T} time steps leave no origin with observed "
                             "targets; lower lookback or set validation=False")
        gather = self._gather(train_values, cov)
        per_batch = self._per_batch()

        def train_batches(epoch):
            picks = rng.integers(0, origins.size, size=(int(self.batches_per_epoch), per_batch))
            for pick in picks:
                yield gather(series[pick], origins[pick])

        vals = [self._gather(values, cov)(val_series, val_origins)] if val_origins.size else []
        return train_batches, vals

    def _per_batch(self) -> int:
        if self.mode == "variate":
            return max(1, int(self.batch_size) // len(self.series_))
        return int(self.batch_size)

    def _gather(self, values, cov):
        L, H, mode, dtype = int(self.lookback), int(self.horizon), self._norm_mode(), DTYPES[self.dtype]
        if self.mode == "channel":
            return lambda s, o: gather_windows(values, cov, s, o, L, H, mode, dtype)
        B = values.shape[0]

        def variate(_, origins):  # every series at each origin: (origins, B, ...)
            batch = gather_windows(values, cov, np.tile(np.arange(B), len(origins)),
                                   np.repeat(origins, B), L, H, mode, dtype)
            return {k: v.reshape((len(origins), B) + tuple(v.shape[1:])) for k, v in batch.items()}

        return variate

    def _loss(self, network, batch):
        if self.mode == "channel":
            raw = network(batch["inputs"], batch["mask"], batch["future"])
            return self._head.loss(raw.float() if raw.dtype == torch.bfloat16 else raw, batch["target"],
                                   batch["loc"], batch["scale"], batch["target_mask"])
        losses = [self._head.loss(network(batch["inputs"][i], batch["mask"][i], batch["future"][i]).to(
                  batch["target"].dtype), batch["target"][i], batch["loc"][i], batch["scale"][i],
                  batch["target_mask"][i]) for i in range(batch["inputs"].shape[0])]
        return torch.stack(losses).mean()

    def _loss_weight(self, batch) -> float:
        """What :meth:`_loss` averages over: observed targets (channel mode), origins (variate
        mode, a mean of per-origin losses)."""
        if self.mode == "variate":
            return float(batch["inputs"].shape[0])
        return float(batch["target_mask"].sum())

    # -- the state after the data -------------------------------------------------------------
    def _encoded(self, future_exog):
        """Raw head outputs ``(B, H, n_params)``, location and scale ``(B,)`` for the forecast
        after the data seen."""
        values = self._y.values.T
        B, T = values.shape
        cov = self._covariates(future_exog)
        dtype = DTYPES[self.dtype]
        future = torch.as_tensor(cov[:, T:], dtype=dtype)
        network = self.network_.eval()
        with torch.no_grad():
            if self.mode == "variate":
                batch = gather_windows(values, cov, np.arange(B), np.full(B, T), int(self.lookback),
                                       int(self.horizon), self._norm_mode(), dtype)
                self._check_window(batch["mask"])
                return network(batch["inputs"], batch["mask"], future), batch["loc"], batch["scale"]
            features, loc, scale = self._advanced_state(values, cov)
            return network.decoder(features, future), loc, scale

    def _advanced_state(self, values, cov):
        """The encoder's features after the data: the window before the fit's cutoff encoded
        once, then one recurrent step per observation absorbed by ``update`` (cached)."""
        if self._state is None:
            origin = self._origin
            B = values.shape[0]
            batch = gather_windows(values, cov, np.arange(B), np.full(B, origin), int(self.lookback),
                                   int(self.horizon), self._norm_mode(), DTYPES[self.dtype])
            self._check_window(batch["mask"])
            features, states = self.network_.encode(batch["inputs"], batch["mask"])
            self._state = (features, states, batch["loc"], batch["scale"], origin)
        features, states, loc, scale, position = self._state
        for s in range(position, values.shape[1]):
            y = torch.as_tensor(values[:, s], dtype=loc.dtype)
            observed = ~torch.isnan(y)
            z = torch.where(observed, (torch.nan_to_num(y) - loc) / scale, 0.0)
            inputs = torch.cat([z[:, None], observed[:, None].to(z.dtype),
                                torch.as_tensor(cov[:, s], dtype=z.dtype)], dim=-1)
            features, states = self.network_.advance(inputs, observed, states)
        self._state = (features, states, loc, scale, values.shape[1])
        return features, loc, scale

    def _check_window(self, mask):
        empty = torch.nonzero(~mask.any(dim=1)).flatten()
        if empty.numel():
            raise ValueError(f"series {self.series_[int(empty[0])]!r} has no observation in the last "
                             f"lookback={self.lookback} steps; there is nothing to forecast from")

    # -- forecasting --------------------------------------------------------------------------
    def _steps(self, fh):
        self._check_is_fitted()
        steps = _data.forecast_steps(fh, self._y.index)
        if int(np.max(steps)) > int(self.horizon):
            raise ValueError(f"the model forecasts up to horizon={self.horizon} steps ahead; step "
                             f"{int(np.max(steps))} was asked for: refit with a longer horizon")
        return steps

    def _forecast(self, fh, X):
        steps = self._steps(fh)
        raw, loc, scale = self._encoded(self._exog_after(X, int(np.max(steps))))
        return steps, raw, loc, scale, self._future(steps)

    def _forecast_bands(self, fh, X, alphas):
        """Point forecasts ``(B, h)``, quantiles ``(B, h, len(alphas))`` and the future index
        (for the plot)."""
        steps, raw, loc, scale, index = self._forecast(fh, X)
        return (self._head.mean(raw, loc, scale)[:, steps - 1],
                self._head.quantiles(raw, loc, scale, alphas)[:, steps - 1], index)

    def predict(self, fh, X=None):
        """Point forecasts (predictive means; medians for the quantile head) for ``fh`` (an int
        ``h`` for steps ``1..h``, a list of steps, or future labels), in the layout of the
        training data."""
        steps, raw, loc, scale, index = self._forecast(fh, X)
        return panels.write_point(self._panel_info, self._head.mean(raw, loc, scale)[:, steps - 1], index)

    def predict_interval(self, fh, X=None, coverage=0.9):
        """Central prediction intervals: columns ``(variable, coverage, "lower"|"upper")``, the
        variable a series for one series or a wide panel (rows by time), the value name for
        stacked and long panels (rows by ``(series_id, time)``)."""
        steps, raw, loc, scale, index = self._forecast(fh, X)
        coverages = _data.check_coverage(coverage)
        alphas = sorted({a for c in coverages for a in (0.5 - c / 2, 0.5 + c / 2)})
        q = self._head.quantiles(raw, loc, scale, alphas)[:, steps - 1]
        cols = {}
        for c in coverages:
            cols[(c, "lower")] = q[..., alphas.index(0.5 - c / 2)]
            cols[(c, "upper")] = q[..., alphas.index(0.5 + c / 2)]
        return panels.write_table(self._panel_info, cols, index)

    def predict_quantiles(self, fh, X=None, alpha=(0.05, 0.5, 0.95)):
        """Predictive quantiles: columns ``(variable, alpha)`` (rows as in
        :meth:`predict_interval`)."""
        steps, raw, loc, scale, index = self._forecast(fh, X)
        alphas = _data.check_alpha(alpha)
        q = self._head.quantiles(raw, loc, scale, alphas)[:, steps - 1]
        return panels.write_table(self._panel_info, {(a,): q[..., k] for k, a in enumerate(alphas)}, index)

    def sample(self, fh, n_samples=100, random_state=None, X=None):
        """Sample paths ``(n_samples, B, h)`` as a frame: rows ``(sample, time)`` and a column per
        series (one series, wide panels) or rows ``(series_id, sample, time)`` (stacked and long
        panels). Steps are independent given the window."""
        n = _data.check_int(n_samples, "n_samples", 1)
        steps, raw, loc, scale, index = self._forecast(fh, X)
        with seeded(torch_seed(random_state), torch.device("cpu")):
            draws = self._head.sample(raw, loc, scale, n)[:, :, steps - 1]
        return panels.write_samples(self._panel_info, draws, index)

    def update(self, y_new, X_new=None):
        """Absorb observations that follow the data, in the layout of ``fit``, without
        retraining: in channel mode the encoder's recurrent state advances one ``step`` per new
        time step (normalised with the statistics of the window the state started from); in
        variate mode the next forecast reads the latest ``lookback`` steps. Returns ``self``."""
        self._check_is_fitted()
        new = panels.read_continuation(y_new, self._panel_info, self._y.index, "y_new")
        if self.likelihood == "negbinomial":
            _check_counts(new, self.series_, _data.future_index(self._y.index, np.arange(1, new.shape[1] + 1)))
        self._append(new, self._exog_after(X_new, new.shape[1], "X_new"))
        return self

    def score(self, y, X=None) -> float:
        """Mean log predictive density of held-out ``y`` (at most ``horizon`` steps following the
        data, the layout of ``fit``): :math:`\\frac1N \\sum \\log p(y_{b,T+k} \\mid \\text{window})`
        over the ``N`` observed values."""
        self._check_is_fitted()
        new = panels.read_continuation(y, self._panel_info, self._y.index, "y")
        steps = np.arange(1, new.shape[1] + 1)
        self._steps(steps)
        raw, loc, scale = self._encoded(self._exog_after(X, new.shape[1]))
        target = torch.as_tensor(np.nan_to_num(new), dtype=raw.dtype)
        observed = ~np.isnan(new)
        with torch.no_grad():
            logp = self._head.log_prob(raw[:, :new.shape[1]], loc, scale, target).double().numpy()
        return float(logp[observed].mean())

    # -- persistence ----------------------------------------------------------------------------
    def _extra_state(self):
        return {"origin": int(self._origin), "n_covariates": int(self._n_covariates)}, {}

    def _restore_extra_state(self, meta, arrays):
        self._check_hyper()
        self._origin, self._n_covariates = meta["origin"], meta["n_covariates"]
        self._state = None


def _check_counts(values, ids, index):
    with np.errstate(invalid="ignore"):
        bad = ((values < 0) | (values != np.round(values))) & ~np.isnan(values)
    if bad.any():
        b, t = np.argwhere(bad)[0]
        raise ValueError(f"likelihood='negbinomial' needs non-negative integer counts; series "
                         f"{ids[b]!r} has {values[b, t]} at {index[t]!r}")

