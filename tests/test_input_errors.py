"""Bad input gets a clear error naming the problem; the caller's data is never modified."""

import jax
import numpy as np
import pandas as pd
import pytest

from probssm import KalmanFilter, LocalLevel, NotFittedError, kalman
from probssm.datasets import load_nile


@pytest.fixture(scope="module")
def nile():
    return load_nile()


def test_inf_in_y_names_the_position(nile):
    y = nile.copy()
    y.iloc[7] = np.inf
    with pytest.raises(ValueError, match=r"infinite value at position 7 \(index Period\('1878'"):
        LocalLevel().fit(y)
    with pytest.raises(ValueError, match=r"infinite value at index \(3, 0\)"):
        kalman.filter(kalman.LGSSM([[1.0]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]]),
                      np.array([[1.0], [2.0], [3.0], [-np.inf]]))


def test_wrong_matrix_shapes_name_expected_and_got():
    with pytest.raises(ValueError, match=r"observation_cov: expected trailing shape \(2, 2\).*got shape \(3, 3\)"):
        kalman.LGSSM(np.eye(2), np.eye(2), np.ones((2, 2)), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"initial_mean: expected trailing shape \(2\).*got shape \(3,\)"):
        kalman.LGSSM(np.eye(2), np.eye(2), np.ones((1, 2)), np.eye(1), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match=r"observation_matrix: expected shape \(1, 2\).*got \(2, 2\)"):
        KalmanFilter(np.eye(2), np.eye(2), np.eye(2), np.eye(1)).fit(np.arange(10.0))
    model = kalman.LGSSM(np.eye(2), np.eye(2), np.ones((1, 2)), np.eye(1), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match=r"expected last axis m=1.*got shape \(5, 2\)"):
        kalman.filter(model, np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"expected shape \(\*batch, T, m\)"):
        kalman.filter(model, np.zeros(5))
    tv = model.replace(transition_matrix=np.stack([np.eye(2)] * 4))
    with pytest.raises(ValueError, match="y has 5 time steps but the model's time-varying fields"):
        kalman.filter(tv, np.zeros((5, 1)))


def test_covariances_must_be_symmetric_psd():
    with pytest.raises(ValueError, match=r"transition_cov is not symmetric: entry \(0, 1\)"):
        kalman.LGSSM(np.eye(2), [[1.0, 0.5], [0.0, 1.0]], np.ones((1, 2)), np.eye(1), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="observation_cov is not positive semi-definite: eigenvalue -1"):
        kalman.LGSSM(np.eye(2), np.eye(2), np.ones((1, 2)), [[-1.0]], np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="initial_cov is not positive semi-definite"):
        KalmanFilter([[1.0]], [[1.0]], [[1.0]], [[1.0]], initial_cov=[[-2.0]]).fit(np.arange(5.0))
    with pytest.raises(ValueError, match=r"transition_matrix: non-finite value nan at index \(0, 0\)"):
        kalman.LGSSM([[np.nan]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]])
    # PSD but singular covariances are valid (e.g. a noise-free state component)
    kalman.LGSSM(np.eye(2), np.diag([1.0, 0.0]), np.ones((1, 2)), [[0.0]], np.zeros(2), np.eye(2))


def test_all_nan_and_too_few_observations(nile):
    with pytest.raises(ValueError, match="no observed values"):
        LocalLevel().fit(pd.Series([np.nan] * 10))
    with pytest.raises(ValueError, match="2 observed time steps; at least 3 are needed"):
        LocalLevel().fit(pd.Series([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="is empty"):
        LocalLevel().fit(pd.Series([], dtype=float))
    with pytest.raises(ValueError, match="y is constant"):
        LocalLevel().fit(pd.Series(np.ones(20)))


def test_time_index_must_be_sorted_and_unique(nile):
    shuffled = nile.iloc[[0, 2, 1] + list(range(3, 100))]
    with pytest.raises(ValueError, match="not sorted increasingly"):
        LocalLevel().fit(shuffled)
    duplicated = nile.iloc[[0, 1, 1] + list(range(3, 100))]
    with pytest.raises(ValueError, match=r"duplicated label Period\('1872'"):
        LocalLevel().fit(duplicated)


def test_non_numeric_and_wrong_types():
    with pytest.raises(TypeError, match="column 'y' has non-numeric dtype (object|str)"):
        LocalLevel().fit(pd.Series(["a", "b", "c", "d"], name="y"))
    with pytest.raises(TypeError, match="expected a pandas Series/DataFrame or a NumPy array"):
        LocalLevel().fit({"a": 1})
    panel = pd.Series(np.arange(4.0), index=pd.MultiIndex.from_product([["a", "b"], [0, 1]]))
    with pytest.raises(ValueError, match="2 observed time steps; at least 3"):
        LocalLevel().fit(panel)  # a panel of two series too short to fit
    with pytest.raises(ValueError, match="panel input"):
        KalmanFilter([[1.0]], [[1.0]], [[1.0]], [[1.0]]).fit(panel)
    with pytest.raises(ValueError, match="takes no exogenous data"):
        LocalLevel().fit(np.arange(10.0), X=np.ones((10, 1)))


def test_predict_before_fit_and_bad_horizons(nile):
    model = LocalLevel()
    for call in (lambda: model.predict(3), lambda: model.predict_interval(3), lambda: model.smooth(),
                 lambda: model.sample(3), lambda: model.update(nile), lambda: model.save("x")):
        with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
            call()
    model.fit(nile)
    with pytest.raises(ValueError, match="fh must be a positive integer"):
        model.predict(0)
    with pytest.raises(ValueError, match="forecast steps must be >= 1"):
        model.predict([0, 1])
    with pytest.raises(ValueError, match="coverage must be in"):
        model.predict_interval(3, coverage=1.5)
    with pytest.raises(ValueError, match="alpha"):
        model.predict_quantiles(3, alpha=[0.0, 0.5])
    with pytest.raises(ValueError, match="initialization must be one of"):
        LocalLevel(initialization="diffuse").fit(nile)
    with pytest.raises(ValueError, match="method must be 'auto' or one of"):
        kalman.filter(kalman.LGSSM([[1.0]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]]), np.ones((3, 1)),
                      method="fast")


def test_datetime_index_without_frequency_is_explained():
    idx = pd.DatetimeIndex(["2020-01-01", "2020-01-02", "2020-01-05", "2020-01-09"])
    # Decided at fit, not at the first forecast: the model could not be continued.
    with pytest.raises(ValueError, match=r"without a frequency.*y.asfreq\('D'\)"):
        LocalLevel().fit(pd.Series([1.0, 2.0, 1.5, 3.0], index=idx))
    regular = LocalLevel().fit(pd.Series([1.0, 2.0, 1.5, 3.0], index=idx).asfreq("D"))
    assert regular.predict(1).index[0] == pd.Timestamp("2020-01-10")


def test_callers_data_is_not_modified(nile):
    y = nile.copy()
    y.iloc[[3, 4]] = np.nan
    before = y.copy()
    model = LocalLevel().fit(y)
    model.update(pd.Series([800.0, np.nan], index=pd.PeriodIndex(["1971", "1972"], freq="Y")))
    model.smooth()
    model.score(pd.Series([700.0], index=pd.PeriodIndex(["1973"], freq="Y")))
    pd.testing.assert_series_equal(y, before)
    arr = np.array([[1.0], [np.nan], [2.0]])
    arr_before = arr.copy()
    with jax.enable_x64(True):
        kalman.smooth(kalman.LGSSM([[1.0]], [[1.0]], [[1.0]], [[1.0]], [0.0], [[1.0]]), arr)
    np.testing.assert_array_equal(arr, arr_before)
    F = np.eye(2)
    KalmanFilter(F, np.eye(2), [[1.0, 0.0]], [[1.0]], initial_cov=np.eye(2),
                 estimate=("transition_matrix",)).fit(np.sin(np.arange(30.0)))
    np.testing.assert_array_equal(F, np.eye(2))


def test_em_refuses_what_it_cannot_do():
    y = np.column_stack([np.arange(10.0), np.arange(10.0)])
    y[3, 0] = np.nan
    with pytest.raises(ValueError, match="row 3 is partly missing"):
        KalmanFilter(np.eye(2), np.eye(2), np.eye(2), np.eye(2), initial_cov=np.eye(2),
                     estimate=("observation_cov",), method="em").fit(y)
    with pytest.raises(ValueError, match="needs a proper prior"):
        KalmanFilter(np.eye(2), np.eye(2), np.eye(2), np.eye(2), estimate=("transition_cov",),
                     method="em").fit(y)
    with pytest.raises(ValueError, match="estimate: unknown names"):
        KalmanFilter(np.eye(2), np.eye(2), np.eye(2), np.eye(2), estimate=("F",)).fit(y)


def test_metrics_and_diagnostics_check_arrays_the_same_way():
    """One input-check path (probssm._data): the same bad input, the same exception and wording."""
    from probssm import diagnostics, metrics

    resid = np.random.default_rng(0).normal(size=20)
    words = ["a"] * 20
    with pytest.raises(TypeError, match="y_true could not be converted to a float array"):
        metrics.smape(words, resid)
    with pytest.raises(TypeError, match="resid could not be converted to a float array"):
        diagnostics.ljung_box(words)
    bad = resid.copy()
    bad[3] = np.inf
    with pytest.raises(ValueError, match=r"y_true contains inf at position 3"):
        metrics.smape(bad, resid)
    with pytest.raises(ValueError, match=r"resid contains inf at position 3"):
        diagnostics.jarque_bera(bad)
    with pytest.raises(TypeError, match="sp must be an integer, got 1.5"):
        metrics.mase(resid, resid, resid, sp=1.5)
    with pytest.raises(TypeError, match="lags must be an integer, got 1.5"):
        diagnostics.ljung_box(resid, lags=1.5)
    with pytest.raises(ValueError, match="sp must be >= 1, got 0"):
        metrics.mase(resid, resid, resid, sp=0)
    with pytest.raises(ValueError, match="lags must be >= 1, got 0"):
        diagnostics.ljung_box(resid, lags=0)
