"""The estimator contract (probssm.base): hyper-parameters, nested parameters, panels."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import probssm
from probssm import KalmanFilter
from probssm.base import StateEstimates
from probssm.datasets import load_nile
from probssm.structural import LocalLevel, UnobservedComponents
from probssm.structural.components import Level, TrigSeasonal


def test_every_fit_setting_is_a_hyper_parameter():
    est = LocalLevel(method="nuts", num_warmup=10, num_samples=5, num_chains=1, random_state=3)
    params = est.get_params()
    for name, value in {"method": "nuts", "num_warmup": 10, "num_samples": 5, "num_chains": 1,
                        "random_state": 3, "priors": None, "initialization": "exact_diffuse"}.items():
        assert params[name] == value
    assert clone(est).get_params() == params


def test_nested_parameters_follow_scikit_learn():
    est = UnobservedComponents(terms=TrigSeasonal(12, harmonics=2))
    deep = est.get_params(deep=True)
    assert deep["terms__period"] == 12 and deep["terms__harmonics"] == 2
    assert "terms__period" not in est.get_params(deep=False)
    est.set_params(terms__harmonics=3, irregular=False)
    assert est.terms.harmonics == 3 and est.irregular is False
    copy = clone(est)
    assert copy.terms is not est.terms and copy.terms == est.terms
    with pytest.raises(ValueError, match="invalid parameter 'bogus'"):
        est.set_params(bogus__x=1)
    with pytest.raises(ValueError, match="has no parameters to set"):
        est.set_params(irregular__x=1)
    assert UnobservedComponents(terms=Level()).get_params()["terms__stochastic"] is True


def _panel(n=3, T=40, seed=0):
    rng = np.random.default_rng(seed)
    index = pd.period_range("2001-01", periods=T, freq="M")
    return pd.DataFrame({f"s{i}": 5 + np.cumsum(rng.normal(size=T)) + rng.normal(size=T)
                         for i in range(n)}, index=index)


@pytest.fixture(scope="module")
def panel_fit():
    wide = _panel()
    return wide, LocalLevel().fit(wide)


def test_panel_states_are_one_result_indexed_by_series(panel_fit):
    wide, fit = panel_fit
    for method in ("filter", "smooth"):
        res = getattr(fit, method)()
        assert isinstance(res, StateEstimates)
        assert res.mean.index.names == ["series_id", wide.index.name]
        assert res.cov.shape == (wide.size, 1, 1)
        parts = {sid: getattr(est, method)() for sid, est in fit.estimators_.items()}
        for sid, part in parts.items():
            np.testing.assert_array_equal(res.mean.loc[sid].to_numpy(), part.mean.to_numpy())
        assert res.log_likelihood == pytest.approx(sum(p.log_likelihood for p in parts.values()), rel=1e-12)
    assert fit.smooth().log_likelihood == pytest.approx(fit.loglik_.sum(), rel=1e-9)


def test_panel_fit_saves_and_loads(panel_fit, tmp_path):
    wide, fit = panel_fit
    loaded = probssm.load(fit.save(tmp_path / "panel"))
    pd.testing.assert_frame_equal(loaded.params_, fit.params_)
    pd.testing.assert_series_equal(loaded.loglik_, fit.loglik_)
    pd.testing.assert_series_equal(loaded.predict(4), fit.predict(4))
    pd.testing.assert_frame_equal(loaded.predict_interval(2, coverage=0.8), fit.predict_interval(2, coverage=0.8))
    assert list(loaded.estimators_) == list(wide.columns)


def test_single_series_methods_refuse_a_panel_fit(panel_fit):
    wide, fit = panel_fit
    for call in (lambda: fit.plot(), lambda: fit.summary(), lambda: fit.score(wide.iloc[:2])):
        with pytest.raises(ValueError, match="fitted on a panel: call it on estimators_"):
            call()
    with pytest.raises(ValueError, match="panel fits take no X"):
        LocalLevel().fit(wide, X=np.ones((len(wide), 1)))
    with pytest.raises(ValueError, match="panel fits use method='mle'"):
        LocalLevel(method="nuts").fit(wide)


def test_panel_samples_share_one_generator(panel_fit):
    _, fit = panel_fit
    a = fit.sample(3, n_samples=4, random_state=np.random.default_rng(1))
    b = fit.sample(3, n_samples=4, random_state=1)
    pd.testing.assert_frame_equal(a, b)
    first = a.loc["s0"].to_numpy()
    assert not np.allclose(first, a.loc["s1"].to_numpy() - a.loc["s1"].to_numpy().mean() + first.mean())


@pytest.fixture(scope="module")
def nile():
    return load_nile()


def test_clone_and_params_round_trip():
    estimators = [
        LocalLevel(initialization="approximate_diffuse"),
        KalmanFilter(np.eye(2), np.eye(2), [[1.0, 0.0]], [[1.0]], estimate=("transition_cov",), method="em"),
    ]
    for est in estimators:
        twin = clone(est)
        assert type(twin) is type(est)
        for k, v in est.get_params().items():
            assert np.array_equal(np.asarray(twin.get_params()[k]), np.asarray(v))
        twin.set_params(max_iter=3) if isinstance(est, KalmanFilter) else twin.set_params(initialization="exact_diffuse")
        with pytest.raises(ValueError, match="invalid parameter"):
            twin.set_params(nonsense=1)
    assert "approximate_diffuse" in repr(estimators[0])


def test_save_load_is_bit_exact(tmp_path, nile):
    model = LocalLevel().fit(nile.iloc[:90])
    model.update(nile.iloc[90:])
    path = model.save(tmp_path / "ll")
    assert sorted(p.name for p in path.iterdir()) == ["arrays.npz", "estimator.json"]
    loaded = probssm.load(path)
    assert type(loaded) is LocalLevel
    pd.testing.assert_series_equal(loaded.params_, model.params_, check_exact=True)
    pd.testing.assert_series_equal(loaded.predict(7), model.predict(7), check_exact=True)
    pd.testing.assert_frame_equal(loaded.predict_interval(7), model.predict_interval(7), check_exact=True)
    pd.testing.assert_frame_equal(loaded.smooth().mean, model.smooth().mean, check_exact=True)
    assert loaded.loglik_ == model.loglik_ and loaded.cutoff_ == model.cutoff_

    kf = KalmanFilter([[0.8]], [[1.0]], [[1.0]], [[0.5]], initial_cov=[[2.0]],
                      estimate=("transition_matrix",)).fit(np.sin(np.arange(50.0)))
    again = probssm.load(kf.save(tmp_path / "kf"))
    pd.testing.assert_series_equal(again.predict(4), kf.predict(4), check_exact=True)


def test_a_generator_hyper_parameter_saves_and_loads_with_its_state(tmp_path, nile):
    rng = np.random.default_rng(7)
    rng.normal(size=3)
    est = LocalLevel(random_state=rng).fit(nile)
    loaded = probssm.load(est.save(tmp_path / "g"))
    restored = loaded.get_params()["random_state"]
    assert isinstance(restored, np.random.Generator)
    np.testing.assert_array_equal(restored.normal(size=5), rng.normal(size=5))


def test_fitted_params_given_back_as_a_series_fix_the_fit(nile):
    """``fit(y, params=est.params_)`` (a Series named by parameter) reproduces the fit."""
    est = LocalLevel().fit(nile)
    assert isinstance(est.params_, pd.Series)
    again = LocalLevel().fit(nile, params=est.params_)
    np.testing.assert_allclose(again.params_.to_numpy(), est.params_.to_numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(again.loglik_, est.loglik_, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown"):
        LocalLevel().fit(nile, params=pd.Series({**est.params_.to_dict(), "phi": 0.5}))


def test_progress_bars_only_on_a_terminal(monkeypatch):
    """``set_config(progress=...)`` switches the progress bars of long operations; they never
    show where standard error is not a terminal."""
    est = LocalLevel()
    assert est.get_config()["progress"] is True

    class Terminal:
        def isatty(self):
            return True

    assert not est._show_progress()  # pytest captures stderr: not a terminal
    monkeypatch.setattr("sys.stderr", Terminal())
    assert est._show_progress()
    assert not est.set_config(progress=False)._show_progress()
    with pytest.raises(ValueError, match="unknown configuration"):
        est.set_config(bar=True)
