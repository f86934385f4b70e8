"""The Dask backend (``set_config(backend="dask")``): panel fits on a 2-worker ``LocalCluster``
equal in-process fits, in the input's order, also when a worker dies mid-fit; a failing series
is reported by id while the others keep their fits; the settings are checked and survive
``clone`` and save/load; ``probssm.backtest`` and ``probssm.Forecaster`` honour them."""

from __future__ import annotations

import os
import sys
import warnings

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone as sklearn_clone

import probssm
from probssm.datasets import load_us_employment
from probssm.distributed import dask as dask_backend
from probssm.frontend_fit import clone as frontend_clone
from probssm.structural import LocalLevel

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.xdist_group("dask")

TOL = 1e-10


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    dask_client = distributed.Client(cluster, set_as_default=False)
    yield dask_client
    dask_client.close()
    cluster.close()


@pytest.fixture(scope="module")
def panel():
    """Six real series, the last 48 months, columns in a shuffled (non-sorted) order."""
    wide = load_us_employment().iloc[-48:, :6]
    return wide[list(wide.columns[[3, 0, 5, 1, 4, 2]])]


@pytest.fixture(scope="module")
def local_fit(panel):
    return LocalLevel().fit(panel)


def _assert_same_fit(fit, reference, ids):
    assert list(fit.params_.index) == list(ids)
    np.testing.assert_allclose(fit.params_.to_numpy(), reference.params_.loc[ids].to_numpy(), rtol=TOL)
    ours, theirs = fit.predict(6), reference.predict(6)
    theirs = pd.concat({sid: theirs.loc[sid] for sid in ids}, names=["series_id"])
    pd.testing.assert_index_equal(ours.index, theirs.index)
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=TOL)
    bands = fit.predict_interval(6, coverage=0.9)
    np.testing.assert_allclose(bands.loc[ids[0]].to_numpy(),
                               reference.estimators_[ids[0]].predict_interval(6, coverage=0.9).to_numpy(),
                               rtol=TOL)


def test_dask_fit_equals_local_fit_in_input_order(client, panel, local_fit):
    fit = LocalLevel().set_config(backend="dask", client=client).fit(panel)
    assert list(fit.estimators_) == list(panel.columns)
    assert fit.failures_ == {}
    _assert_same_fit(fit, local_fit, list(panel.columns))
    # one series per chunk: each chunk is the series twice (never a batch of one)
    again = LocalLevel().set_config(backend="dask", client=client, chunk_size=1).fit(panel)
    _assert_same_fit(again, local_fit, list(panel.columns))


class DiesOnce(LocalLevel):
    """A LocalLevel whose first chunk on a worker kills that worker's process (the file
    ``marker`` says it has happened)."""

    def __init__(self, marker=None):
        super().__init__()
        self.marker = marker

    def _fit_panel(self, panel):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super()._fit_panel(panel)


def test_a_worker_killed_mid_fit_has_its_chunks_rescheduled(client, panel, local_fit, tmp_path):
    marker = str(tmp_path / "died")
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # the class travels, whatever the workers import
    try:
        fit = DiesOnce(marker).set_config(backend="dask", client=client).fit(panel)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert os.path.exists(marker)  # a worker did die
    assert fit.failures_ == {}
    _assert_same_fit(fit, local_fit, list(panel.columns))
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_a_failing_series_is_named_and_the_others_keep_their_fits(client, panel):
    bad = panel.copy()
    bad.insert(3, "broken", np.nan)  # in the second chunk of two, beside a good series
    bad.iloc[-1, 3] = 1.0  # one observation: too few to fit
    with pytest.warns(RuntimeWarning, match="'broken'"):
        fit = LocalLevel().set_config(backend="dask", client=client, chunk_size=2).fit(bad)
    assert list(fit.failures_) == ["broken"]
    assert "observed" in fit.failures_["broken"]
    good = list(panel.columns)
    assert list(fit.estimators_) == good
    # the series that shared the failing chunk equal an in-process fit
    _assert_same_fit(fit, LocalLevel().fit(panel), good)
    with pytest.raises(ValueError, match="'broken'"):
        LocalLevel().fit(bad)  # in process, a fit raises naming the series
    with pytest.raises(ValueError, match="every series"):
        LocalLevel().set_config(backend="dask", client=client).fit(bad[["broken"]].assign(b2=bad["broken"]))


def test_settings_are_checked():
    with pytest.raises(ValueError, match="backend must be one of"):
        LocalLevel().set_config(backend="ray")
    with pytest.raises(ValueError, match="chunk_size"):
        LocalLevel().set_config(chunk_size=0)
    with pytest.raises(ValueError, match="client"):
        LocalLevel().set_config(client="tcp://localhost:8786")
    with pytest.raises(ValueError, match="unknown configuration"):  # no panels, no backend
        probssm.GaussianProcess(probssm.gp.Matern12(1.0)).set_config(backend="dask")
    assert LocalLevel().get_config()["backend"] == "local"


def test_missing_dask_raises_an_import_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "probssm\[dask\]"'):
        dask_backend.get_client(None)


def test_chunks_have_equal_sizes_and_cover_the_panel_in_order():
    chunks = dask_backend.chunk_rows(7, 2)
    assert [len(c) for c in chunks] == [2, 2, 2, 2]
    assert [len(c) for c in dask_backend.chunk_rows(3, 2, 1)] == [2, 2, 2]  # never a batch of one
    assert list(dict.fromkeys(np.concatenate(chunks))) == list(range(7))
    assert [len(c) for c in dask_backend.chunk_rows(2000, 2, 500)] == [500] * 4


def test_settings_survive_clone_and_save_load(client, panel, tmp_path):
    est = LocalLevel().set_config(backend="dask", client=client, chunk_size=2, progress=False)
    for copy in (sklearn_clone(est), frontend_clone(est)):
        assert copy.get_config() == est.get_config()
    fit = est.fit(panel)
    loaded = probssm.load(fit.save(tmp_path / "ll"))
    assert loaded.get_config() == {**est.get_config(), "client": None}
    assert loaded.failures_ == {}
    np.testing.assert_allclose(loaded.predict(3).to_numpy(), fit.predict(3).to_numpy(), rtol=TOL)


def test_backtest_and_forecaster_honour_the_backend(client, panel):
    y = panel.iloc[:, 0]
    local = probssm.backtest(LocalLevel(), y, h=3, n_windows=3, verbose=False)
    remote = probssm.backtest(LocalLevel().set_config(backend="dask", client=client), y, h=3,
                              n_windows=3, verbose=False)
    pd.testing.assert_frame_equal(remote.forecasts, local.forecasts, rtol=TOL)
    pd.testing.assert_frame_equal(remote.metrics, local.metrics, rtol=TOL)

    long = panel.iloc[:, :4].rename_axis("ds").reset_index().melt("ds", var_name="unique_id", value_name="y")
    expected = probssm.Forecaster([LocalLevel()]).cross_validation(long, h=2, n_windows=2, level=[80])
    fc = probssm.Forecaster([LocalLevel()]).set_config(backend="dask", client=client)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        got = fc.cross_validation(long, h=2, n_windows=2, level=[80])
    pd.testing.assert_frame_equal(got, expected, rtol=TOL)


def test_client_none_takes_the_current_client_else_one_shared_local_cluster(client, monkeypatch):
    with client.as_current():
        assert dask_backend.get_client(None) is client
    monkeypatch.setattr(dask_backend, "_cores", lambda: 1)
    try:
        shared = dask_backend.get_client(None)
        assert dask_backend.get_client(None) is shared  # started once, then reused
        assert sum(shared.nthreads().values()) == 1
    finally:
        dask_backend.close_default_client()
    assert dask_backend._default is None
