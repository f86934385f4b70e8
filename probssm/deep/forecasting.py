"""What the deep forecasters share: panel data and regressors, seeded training on the configured
device, appending new observations, the forecast plot, and saving the network with the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import _data, _persistence
from ..base import BaseForecaster
from . import distributed
from . import panel as panels
from .distributed import STRATEGIES
from .network import BACKBONES
from .seeding import seeded, torch_seed
from .training import TrainingSettings, resolve_device, train

__all__ = ["DTYPES", "DeepForecaster"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class DeepForecaster(BaseForecaster):
    """Base of :class:`~probssm.deep.MambaForecaster` and
    :class:`~probssm.deep.DeepStateForecaster`: global models of a panel.

    The data seen are ``_y``, a :class:`probssm._data.SeriesData` whose values are ``(T, B)`` (one
    column per series), and ``_X`` ``(B, T, k)`` regressors (``None`` without); ``_panel_info``
    keeps the layout forecasts are written in. Subclasses build ``network_`` in
    ``_build_network`` and store what else they need in ``_extra_state`` /
    ``_restore_extra_state``.
    """

    _accepts_exog = True
    _config_defaults: dict = {"device": "auto", "progress": True, "checkpoint_dir": None,  # noqa: RUF012
                              "strategy": "single"}

    # -- configuration --------------------------------------------------------------------------
    _POSITIVE_INTS = ("horizon", "d_model", "n_layers", "d_state", "max_epochs", "batches_per_epoch",
                      "batch_size", "patience")

    def _check_network_settings(self, extra_ints=()):
        """The settings both forecasters share: sizes and training lengths positive integers,
        a known backbone and dtype, a positive learning rate and clipping norm."""
        for name in (*self._POSITIVE_INTS, *extra_ints):
            _data.check_int(getattr(self, name), name, 1)
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        for name in ("learning_rate", "grad_clip"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    # -- data -----------------------------------------------------------------------------------
    def _set_data(self, panel: panels.Panel) -> None:
        self._panel_info = panel
        self.series_ = list(panel.ids)
        self._y = _data.SeriesData(panel.values.T.copy(), panel.index, list(panel.ids), panel.layout == "series")
        self.cutoff_ = panel.index[-1]

    def _set_exog(self, X, panel: panels.Panel) -> None:
        """Regressors ``(B, T, k)`` and their standardisation (mean and deviation per column)."""
        self._X, self._exog_columns = None, None
        if X is not None:
            self._X, self._exog_columns = panels.read_exog(X, panel.index, panel.ids, None)
            self._exog_mean = self._X.mean(axis=(0, 1))
            self._exog_std = np.maximum(self._X.std(axis=(0, 1)), 1e-8)

    def _exog_after(self, X, h: int, name: str = "X"):
        """Regressors ``(B, h, k)`` for the ``h`` steps after the data (``None`` without)."""
        if self._exog_columns is None:
            if X is not None:
                raise ValueError(f"{name} was given but the model was fitted without regressors")
            return None
        future = _data.future_index(self._y.index, np.arange(1, h + 1))
        if X is None:
            raise ValueError(f"{name} is required: the model was fitted with regressors "
                             f"{self._exog_columns}; pass their values for {future[0]!r} .. {future[-1]!r}")
        return panels.read_exog(X, future, self.series_, self._exog_columns, name)[0]

    def _append(self, new: np.ndarray, exog) -> None:
        """Add observations ``(B, n)`` (and their regressors) after the data."""
        labels = _data.future_index(self._y.index, np.arange(1, new.shape[1] + 1))
        if exog is not None:
            self._X = np.concatenate([self._X, exog], axis=1)
        self._y = self._y.append(_data.SeriesData(new.T.copy(), labels, self._y.columns, self._y.is_series))
        self.cutoff_ = labels[-1]

    def _tensor(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=DTYPES[self.dtype])

    # -- training -----------------------------------------------------------------------------------
    def _train(self, loss, make_batches, settings: TrainingSettings) -> None:
        """Build ``network_`` and train it (seeded by ``random_state`` on the configured device,
        or data-parallel over the processes of a ``torchrun`` launch with ``strategy="ddp"``);
        ``make_batches(rng)`` returns the training batches' generator and the validation
        batches."""
        config = self.get_config()
        strategy = config["strategy"]
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        group = distributed.setup(config["device"]) if strategy == "ddp" else None
        device = resolve_device(config["device"]) if group is None else group.device
        seed = torch_seed(self.random_state)
        if group is not None and not isinstance(self.random_state, (int, np.integer)):
            # one seed for all processes (the same weights and batches): process 0's, in 52 bits
            seed = int(group.sum([seed % 2**52 if group.main else 0])[0])
        checkpoint = None if config["checkpoint_dir"] is None else Path(config["checkpoint_dir"]) / "best_weights.pt"
        with seeded(seed, device):
            self.network_ = self._build_network().to(DTYPES[self.dtype])
            train_batches, val_batches = make_batches(np.random.default_rng(seed))
            result = train(self.network_, loss, train_batches, val_batches, settings, device,
                           progress=bool(config["progress"]), checkpoint=checkpoint, group=group,
                           weight=self._loss_weight)
        self.network_.to("cpu")
        self.history_, self.best_epoch_ = result.history, result.best_epoch
        self.training_seconds_ = float(result.history["seconds"].sum())

    def _loss_weight(self, batch) -> float:
        """The number of terms the loss of ``batch`` averages over (its observed targets): the
        weight of a process's share of a global batch in data-parallel training."""
        return float(batch["target_mask"].sum())

    # -- shared methods -------------------------------------------------------------------------------
    def filter(self):
        """Not available for a network without a probabilistic latent state
        (:class:`~probssm.deep.MambaForecaster`); :class:`~probssm.deep.DeepStateForecaster`
        overrides it."""
        raise NotImplementedError(f"{type(self).__name__} has no filter() / smooth()")

    smooth = filter

    def plot(self, series=None, fh=None, coverage=(0.8, 0.95), ax=None, X=None, history=None):
        """History (its last ``history`` steps; all by default) and forecasts with nested central
        bands at ``coverage`` of one series (``series``: an id; the first by default), for ``fh``
        (default: ``horizon`` steps). Returns the matplotlib Axes."""
        from .plotting import plot_series_forecast

        self._check_is_fitted()
        return plot_series_forecast(self, series, int(self.horizon) if fh is None else fh, coverage, ax, X, history)

    # -- persistence ----------------------------------------------------------------------------------
    def _fitted_state(self):
        meta = {"series": _persistence.encode(self.series_), "layout": self._panel_info.layout,
                "name": self._panel_info.name, "best_epoch": int(self.best_epoch_),
                "history": self.history_.to_dict(orient="list"), "training_seconds": self.training_seconds_}
        arrays = {f"weight:{k}": v.detach().cpu().numpy() for k, v in self.network_.state_dict().items()}
        if self._X is not None:
            arrays.update(exog_mean=self._exog_mean, exog_std=self._exog_std)
        extra_meta, extra_arrays = self._extra_state()
        return {**meta, **extra_meta}, {**arrays, **extra_arrays}

    def _restore_fitted_state(self, meta, arrays):
        ids = _persistence.decode(meta["series"])
        self._set_data(panels.Panel(self._y.values.T.copy(), ids, self._y.index, meta["name"], meta["layout"]))
        if "exog_mean" in arrays:
            self._exog_mean, self._exog_std = arrays["exog_mean"], arrays["exog_std"]
        self._restore_extra_state(meta, arrays)
        with seeded(0, torch.device("cpu")):  # the initial weights are overwritten just below
            self.network_ = self._build_network().to(DTYPES[self.dtype])
        self.network_.load_state_dict({k[len("weight:"):]: torch.as_tensor(v)
                                       for k, v in arrays.items() if k.startswith("weight:")})
        self.network_.eval()
        self.history_ = pd.DataFrame(meta["history"]).rename_axis("epoch")
        self.best_epoch_, self.training_seconds_ = meta["best_epoch"], meta["training_seconds"]

    def _extra_state(self) -> tuple[dict, dict]:
        """Fitted values of the subclass to save: JSON scalars and arrays."""
        return {}, {}

    def _restore_extra_state(self, meta: dict, arrays: dict) -> None:
        """Restore them (the data are restored before; the network after)."""
