"""fit(fixed=...) against statsmodels' fix_params: estimates of the free parameters, the
log-likelihood, standard errors (NaN for fixed ones), information criteria counting free
parameters only, and the errors for names and values that cannot be held.

statsmodels fits with tight L-BFGS tolerances; both optimisers then stop within a few 1e-6 of
the same maximum in log-likelihood (statsmodels' numerical gradients stop it 2e-6 short on the
airline model), so estimates compare at 1e-3 relative (a flat likelihood), ours must reach at
least statsmodels' maximum, and at the same parameters the log-likelihoods agree at 1e-8. statsmodels' standard errors are its numerical Hessian's
(``cov_type="approx"``), ours the exact Hessian's: 1e-3 relative."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from probssm import SARIMAX, LocalLevel


def _fixed_fit(mod, fixed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mod.fix_params(fixed):
            return mod.fit(disp=False, method="lbfgs", maxiter=2000, pgtol=1e-12, factr=1, cov_type="approx")


@pytest.fixture(scope="module")
def local_level(nile):
    fixed = {"sigma2.irregular": 15000.0}
    mod = sm.tsa.UnobservedComponents(nile.to_numpy(), "llevel", use_exact_diffuse=True)
    return LocalLevel().fit(nile, fixed=fixed), _fixed_fit(mod, fixed), mod


@pytest.fixture(scope="module")
def airline(log_air):
    fixed = {"ma.S.L12": -0.5}
    mod = sm.tsa.SARIMAX(log_air.to_numpy(), order=(0, 1, 1), seasonal_order=(0, 1, 1, 12), use_exact_diffuse=True)
    return SARIMAX((0, 1, 1), (0, 1, 1, 12)).fit(log_air, fixed=fixed), _fixed_fit(mod, fixed), mod


@pytest.mark.parametrize("case", ["local_level", "airline"])
def test_fixed_fit_matches_statsmodels(case, request):
    est, ref, mod = request.getfixturevalue(case)
    fixed = est.fixed_params_
    assert est.params_[fixed.index].tolist() == fixed.tolist()  # held exactly
    np.testing.assert_allclose(est.params_.to_numpy(), ref.params, rtol=1e-3)
    assert abs(est.loglik_ - ref.llf) < 1e-5
    assert est.loglik_ >= ref.llf - 1e-8  # at least as high a maximum
    mod.ssm.tolerance = 0  # no steady-state switch: about 1e-10 relative otherwise
    assert abs(est.loglik_ - mod.loglike(est.params_.to_numpy())) < 1e-8
    bse = est.bse_
    assert bse[fixed.index].isna().all() and np.isnan(ref.bse[list(est.params_.index).index(fixed.index[0])])
    free = ~est.params_.index.isin(fixed.index)
    np.testing.assert_allclose(bse[free].to_numpy(), ref.bse[free], rtol=1e-3)
    # statsmodels' df_model: free parameters plus exact diffuse states, not the fixed ones
    k = ref.df_model
    for ours, formula in ((est.aic_, -2 * est.loglik_ + 2 * k), (est.bic_, -2 * est.loglik_ + k * np.log(ref.nobs_effective))):
        assert ours == pytest.approx(formula, abs=1e-9)
    assert est.aic_ == pytest.approx(ref.aic, abs=1e-5)
    assert est.bic_ == pytest.approx(ref.bic, abs=1e-5)
    assert est.hqic_ == pytest.approx(ref.hqic, abs=1e-5)


def test_fixed_values_survive_save_and_load(local_level, tmp_path):
    from probssm import load

    est = local_level[0]
    back = load(est.save(tmp_path / "fixed"))
    pd.testing.assert_series_equal(back.fixed_params_, est.fixed_params_)
    pd.testing.assert_series_equal(back.bse_, est.bse_)
    assert back.aic_ == est.aic_


def test_a_plain_fit_holds_nothing(nile):
    est = LocalLevel().fit(nile, params={"sigma2.irregular": 15099.0, "sigma2.level": 1469.1})
    assert est.fixed_params_.empty


@pytest.mark.parametrize("fixed, error, match", [
    ({"sigma2.noise": 1.0}, ValueError, "unknown parameters"),
    ({"sigma2.level": -1.0}, ValueError, "admissible range"),
    ({"sigma2.level": float("nan")}, ValueError, "finite numbers"),
    ({"sigma2.level": "1"}, ValueError, "finite numbers"),
    ({"sigma2.level": 1.0, "sigma2.irregular": 1.0}, ValueError, "every parameter is fixed"),
    ([("sigma2.level", 1.0)], TypeError, "mapping"),
])
def test_bad_fixed_values_raise(nile, fixed, error, match):
    with pytest.raises(error, match=match):
        LocalLevel().fit(nile, fixed=fixed)


def test_jointly_transformed_parameters_are_fixed_together_or_not_at_all(log_air):
    """statsmodels refuses this too ("Cannot fix individual autoregressive parameters")."""
    with pytest.raises(ValueError, match="transformed jointly"):
        SARIMAX((2, 1, 0)).fit(log_air, fixed={"ar.L1": 0.1})


def test_fixed_with_other_settings_raises(nile):
    with pytest.raises(ValueError, match="not both"):
        LocalLevel().fit(nile, params=[1.0, 1.0], fixed={"sigma2.level": 1.0})
    with pytest.raises(ValueError, match="method='mle'"):
        LocalLevel(method="nuts").fit(nile, fixed={"sigma2.level": 1.0})
    panel = pd.DataFrame({"a": nile.to_numpy(), "b": nile.to_numpy()[::-1].copy()}, index=nile.index)
    with pytest.raises(ValueError, match="panel"):
        LocalLevel().fit(panel, fixed={"sigma2.level": 1.0})


@pytest.mark.parametrize("setting", ["simple_differencing", "concentrate_scale"])
def test_fixed_with_another_objective_raises(log_air, setting):
    with pytest.raises(ValueError, match=setting):
        SARIMAX((0, 1, 1), **{setting: True}).fit(log_air, fixed={"ma.L1": -0.4})
