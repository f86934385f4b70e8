"""Tests for probssm.metrics against hand computations and independent references."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate
from scipy.stats import norm

from probssm import metrics

from probssm.metrics import (
    crps_gaussian,
    crps_samples,
    interval_coverage,
    mase,
    pinball_loss,
    smape,
)

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-2, max_value=1e2, allow_nan=False, allow_infinity=False)


def vec(n_min=1, n_max=30, elements=finite):
    return st.integers(n_min, n_max).flatmap(
        lambda n: hnp.arrays(np.float64, n, elements=elements)
    )


def test_public_api():
    assert sorted(metrics.__all__) == sorted(
        ["mase", "smape", "crps_gaussian", "crps_samples", "pinball_loss", "interval_coverage"]
    )
    for name in metrics.__all__:
        doc = getattr(metrics, name).__doc__
        assert doc and "Parameters" in doc and "Returns" in doc


def test_no_jax_or_torch_import():
    src = Path(metrics.__file__).read_text()
    assert "import jax" not in src and "import torch" not in src


# --------------------------------------------------------------------------- #
# Hand-computed values
# --------------------------------------------------------------------------- #
def test_mase_hand():
    y_train = [1.0, 3.0, 2.0, 5.0]
    y_true = [4.0, 6.0]
    y_pred = [5.0, 3.0]
    # MAE = (|4-5| + |6-3|) / 2 = (1 + 3) / 2 = 2
    # sp=1: scale = (|3-1| + |2-3| + |5-2|) / 3 = (2 + 1 + 3) / 3 = 2  -> 2 / 2 = 1
    assert mase(y_true, y_pred, y_train) == pytest.approx(1.0)
    # sp=2: scale = (|2-1| + |5-3|) / 2 = (1 + 2) / 2 = 1.5 -> 2 / 1.5 = 4/3
    assert mase(y_true, y_pred, y_train, sp=2) == pytest.approx(4.0 / 3.0)


def test_mase_hand_multiseries():
    # column 0: train [0, 1, 3] -> scale (1 + 2)/2 = 1.5; errors |1-2|, |2-2| -> MAE 0.5
    #           MASE_0 = 0.5 / 1.5 = 1/3
    # column 1: train [0, 2, 0] -> scale (2 + 2)/2 = 2; errors |0-4|, |0-0| -> MAE 2
    #           MASE_1 = 2 / 2 = 1
    # uniform average: (1/3 + 1) / 2 = 2/3
    y_train = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 0.0]])
    y_true = np.array([[1.0, 0.0], [2.0, 0.0]])
    y_pred = np.array([[2.0, 4.0], [2.0, 0.0]])
    assert mase(y_true, y_pred, y_train) == pytest.approx(2.0 / 3.0)


def test_smape_hand():
    # terms: |1-3|/(1+3) = 0.5,  |2-2|/(2+2) = 0,  0/0 -> 0
    # sMAPE = 200/3 * (0.5 + 0 + 0) = 33.333...
    assert smape([1.0, 2.0, 0.0], [3.0, 2.0, 0.0]) == pytest.approx(100.0 / 3.0)
    # opposite signs hit the upper bound: 200 * |(-1) - 1| / (1 + 1) = 200
    assert smape([-1.0], [1.0]) == pytest.approx(200.0)
    # one of the pair zero: 200 * |5 - 0| / (5 + 0) = 200
    assert smape([0.0], [5.0]) == pytest.approx(200.0)
    assert smape([0.0, 0.0], [0.0, 0.0]) == 0.0


def test_crps_gaussian_hand():
    # z = 0: CRPS = std * (0 + 2 phi(0) - 1/sqrt(pi)) = std * (2/sqrt(2 pi) - 1/sqrt(pi))
    #            = std * (sqrt(2) - 1) / sqrt(pi) ~= 0.2336949 * std
    c0 = (math.sqrt(2.0) - 1.0) / math.sqrt(math.pi)
    assert crps_gaussian(0.0, 0.0, 1.0) == pytest.approx(c0)
    assert crps_gaussian(3.0, 3.0, 2.0) == pytest.approx(2 * c0)
    # z = 1: 1*(2*Phi(1)-1) + 2*phi(1) - 1/sqrt(pi)
    expected = (2 * norm.cdf(1.0) - 1) + 2 * norm.pdf(1.0) - 1 / math.sqrt(math.pi)
    assert crps_gaussian(1.0, 0.0, 1.0) == pytest.approx(expected)
    per_point = crps_gaussian([0.0, 1.0], 0.0, 1.0, reduce=False)
    np.testing.assert_allclose(per_point, [c0, expected])
    assert crps_gaussian([0.0, 1.0], 0.0, 1.0) == pytest.approx((c0 + expected) / 2)


def test_crps_samples_hand():
    # samples {0, 1}, y = 0: E|X - y| = (0 + 1)/2 = 0.5
    # E|X - X'| = (|0-0| + |0-1| + |1-0| + |1-1|) / 4 = 0.5
    # CRPS = 0.5 - 0.5 * 0.5 = 0.25  (= int_0^1 (0.5 - 1)^2 dx for the ECDF)
    assert crps_samples(0.0, [0.0, 1.0]) == pytest.approx(0.25)
    # single sample: CRPS = |x - y| = |2 - (-1)| = 3
    assert crps_samples(-1.0, [2.0]) == pytest.approx(3.0)
    # samples {0, 1, 2}, y = 1: E|X-y| = (1+0+1)/3 = 2/3;
    # E|X-X'| = (0+1+2 + 1+0+1 + 2+1+0)/9 = 8/9; CRPS = 2/3 - 4/9 = 2/9
    assert crps_samples(1.0, [0.0, 1.0, 2.0]) == pytest.approx(2.0 / 9.0)


def test_pinball_hand():
    # alpha = 0.9, y - q = [-1, 0, 1]
    # rho = [(1-0.9)*1, 0, 0.9*1] = [0.1, 0, 0.9] -> mean = 1.0/3
    assert pinball_loss([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], 0.9) == pytest.approx(1.0 / 3.0)
    # several alphas: alpha=0.1 -> [0.9, 0, 0.1] mean 1/3; alpha=0.5 -> [0.5, 0, 0.5] mean 1/3
    q = np.full((3, 3), 2.0)
    out = pinball_loss([1.0, 2.0, 3.0], q, [0.1, 0.5, 0.9])
    assert isinstance(out, np.ndarray) and out.shape == (3,)
    np.testing.assert_allclose(out, [1 / 3, 1 / 3, 1 / 3])
    # asymmetric case: y=0, q=1 (u=-1): alpha=0.25 -> 0.75; alpha=0.75 -> 0.25
    np.testing.assert_allclose(pinball_loss([0.0], [[1.0, 1.0]], [0.25, 0.75]), [0.75, 0.25])


def test_coverage_hand():
    # 1 in [0,2] yes; 2 in [2,3] yes (closed); 3 in [4,5] no; 4 in [0,3] no -> 2/4
    assert interval_coverage([1, 2, 3, 4], [0, 2, 4, 0], [2, 3, 5, 3]) == pytest.approx(0.5)
    assert interval_coverage([1.0, 5.0], 0.0, 2.0) == pytest.approx(0.5)


# --------------------------------------------------------------------------- #
# sktime / sklearn / utilsforecast references
# --------------------------------------------------------------------------- #
@pytest.fixture(scope="module")
def sk():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sktime.performance_metrics.forecasting import (
            MeanAbsoluteScaledError,
            mean_absolute_percentage_error,
            mean_absolute_scaled_error,
        )
        from sktime.performance_metrics.forecasting.probabilistic import PinballLoss
    return {
        "MASE": MeanAbsoluteScaledError,
        "mase": mean_absolute_scaled_error,
        "mape": mean_absolute_percentage_error,
        "Pinball": PinballLoss,
    }


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sp", [1, 4, 7])
def test_mase_vs_sktime(sk, seed, sp):
    rng = np.random.default_rng(seed)
    y_train = rng.normal(10, 3, size=40)
    y_true = rng.normal(10, 3, size=12)
    y_pred = y_true + rng.normal(0, 1, size=12)
    ours = mase(y_true, y_pred, y_train, sp=sp)
    assert ours == pytest.approx(sk["mase"](y_true, y_pred, y_train=y_train, sp=sp), rel=1e-12)
    assert ours == pytest.approx(sk["MASE"](sp=sp)(y_true, y_pred, y_train=y_train), rel=1e-12)
    # multi-series: ours = uniform mean of per-column MASE = mean of sktime's raw_values
    # (sktime's "uniform_average" is mean(MAE) / mean(scale), a different quantity)
    Y_train = rng.normal(size=(30, 3)) * np.array([1.0, 5.0, 0.2])
    Y_true = rng.normal(size=(8, 3))
    Y_pred = rng.normal(size=(8, 3))
    raw = sk["mase"](Y_true, Y_pred, y_train=Y_train, sp=sp, multioutput="raw_values")
    assert raw.shape == (3,)
    ref = float(np.mean(raw))
    assert mase(Y_true, Y_pred, Y_train, sp=sp) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_smape_vs_sktime(sk, seed):
    # sktime symmetric MAPE = mean |y - yhat| / ((|y| + |yhat|) / 2): a fraction in [0, 2].
    # Ours is percent on 0-200, so ours / 100 must equal sktime's exactly.
    rng = np.random.default_rng(seed)
    y_true = rng.normal(0, 2, size=25)
    y_pred = y_true + rng.normal(0, 1, size=25)
    ref = sk["mape"](y_true, y_pred, symmetric=True)
    assert smape(y_true, y_pred) / 100.0 == pytest.approx(ref, rel=1e-12)
    Y_true = rng.normal(size=(10, 3))
    Y_pred = rng.normal(size=(10, 3))
    ref2 = sk["mape"](Y_true, Y_pred, symmetric=True)
    assert smape(Y_true, Y_pred) / 100.0 == pytest.approx(ref2, rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_pinball_vs_sklearn_and_sktime(sk, seed):
    from sklearn.metrics import mean_pinball_loss

    rng = np.random.default_rng(seed)
    n = 20
    y = rng.normal(size=n)
    alphas = [0.05, 0.3, 0.5, 0.9]
    q = rng.normal(size=(n, len(alphas)))
    for j, a in enumerate(alphas):
        ref = mean_pinball_loss(y, q[:, j], alpha=a)
        assert pinball_loss(y, q[:, j], a) == pytest.approx(ref, rel=1e-12)
    y_pd = pd.Series(y)
    q_pd = pd.DataFrame(q, columns=pd.MultiIndex.from_product([[0], alphas]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_vec = sk["Pinball"](score_average=False)(y_pd, q_pd).to_numpy()
    np.testing.assert_allclose(pinball_loss(y, q, alphas), ref_vec, rtol=1e-12)
    # pandas inputs, aligned by position (shuffled index labels are ignored)
    q_df = pd.DataFrame(q, index=rng.permutation(n))
    np.testing.assert_allclose(pinball_loss(y_pd, q_df, alphas), ref_vec, rtol=1e-12)


def _uf_frames(rng, n_series, n_train, h):
    train, test = [], []
    for i in range(n_series):
        uid = f"s{i}"
        ytr = rng.normal(5, 2, size=n_train)
        yte = rng.normal(5, 2, size=h)
        train.append(pd.DataFrame({"unique_id": uid, "ds": np.arange(n_train), "y": ytr}))
        test.append(
            pd.DataFrame(
                {
                    "unique_id": uid,
                    "ds": np.arange(n_train, n_train + h),
                    "y": yte,
                    "model": yte + rng.normal(0, 1, size=h),
                }
            )
        )
    return pd.concat(train, ignore_index=True), pd.concat(test, ignore_index=True)


@pytest.mark.parametrize("sp", [1, 3])
def test_mase_smape_vs_utilsforecast(sp):
    from utilsforecast import losses as ufl

    rng = np.random.default_rng(123 + sp)
    train, test = _uf_frames(rng, n_series=3, n_train=25, h=6)
    uf_mase = ufl.mase(test, ["model"], seasonality=sp, train_df=train).set_index("unique_id")
    # utilsforecast.smape = mean |y - yhat| / (|y| + |yhat|): a fraction in [0, 1];
    # ours (0-200 percent) = 200 * theirs.
    uf_smape = ufl.smape(test, ["model"]).set_index("unique_id")
    for uid, g in test.groupby("unique_id"):
        ytr = train.loc[train.unique_id == uid, "y"]
        ours = mase(g["y"], g["model"], ytr, sp=sp)
        assert ours == pytest.approx(uf_mase.loc[uid, "model"], rel=1e-10)
        assert smape(g["y"], g["model"]) == pytest.approx(
            200.0 * uf_smape.loc[uid, "model"], rel=1e-10
        )


# --------------------------------------------------------------------------- #
# CRPS references
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "y,mu,sigma", [(0.0, 0.0, 1.0), (1.3, -0.4, 0.7), (-5.0, 2.0, 3.0), (10.0, 10.5, 0.05)]
)
def test_crps_gaussian_vs_quad(y, mu, sigma):
    F = norm(mu, sigma).cdf
    left, _ = integrate.quad(lambda x: F(x) ** 2, -np.inf, y, epsabs=1e-12, epsrel=1e-10)
    right, _ = integrate.quad(lambda x: (1 - F(x)) ** 2, y, np.inf, epsabs=1e-12, epsrel=1e-10)
    assert crps_gaussian(y, mu, sigma) == pytest.approx(left + right, rel=1e-7, abs=1e-10)


def _crps_samples_quadratic(y, samples):
    """Direct O(n^2) energy form: E|X - y| - 0.5 E|X - X'| (1/m^2 normalisation)."""
    x = np.asarray(samples, dtype=float)
    term1 = np.mean(np.abs(x - y), axis=0)
    term2 = np.mean(np.abs(x[:, None, ...] - x[None, :, ...]), axis=(0, 1))
    return term1 - 0.5 * term2


@pytest.mark.parametrize("seed", range(3))
def test_crps_samples_vs_quadratic(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(3, 4))
    samples = rng.standard_t(3, size=(57, 3, 4)) + 0.5
    ref = _crps_samples_quadratic(y, samples)
    np.testing.assert_allclose(crps_samples(y, samples, reduce=False), ref, rtol=1e-10, atol=1e-12)
    assert crps_samples(y, samples) == pytest.approx(ref.mean(), rel=1e-10)
    # scalar y with 1-D samples, and ties
    s = np.array([1.0, 1.0, 2.0, 2.0, 2.0, -3.0])
    assert crps_samples(0.5, s) == pytest.approx(float(_crps_samples_quadratic(0.5, s)))


def test_crps_samples_converges_to_gaussian():
    rng = np.random.default_rng(2024)
    y = np.array([-1.0, 0.0, 0.3, 2.5])
    mu, sigma = 0.2, 1.3
    samples = rng.normal(mu, sigma, size=(200_000, y.size))
    emp = crps_samples(y, samples, reduce=False)
    exact = crps_gaussian(y, mu, sigma, reduce=False)
    np.testing.assert_allclose(emp, exact, rtol=1e-2)


# --------------------------------------------------------------------------- #
# Hypothesis properties
# --------------------------------------------------------------------------- #
@PROPS
@given(y=vec(), mu=finite, sigma=positive)
def test_prop_crps_gaussian_nonnegative(y, mu, sigma):
    out = crps_gaussian(y, mu, sigma, reduce=False)
    assert np.all(out >= 0)
    assert crps_gaussian(y, mu, sigma) >= 0


@PROPS
@given(
    data=st.tuples(st.integers(1, 8), st.integers(1, 40)).flatmap(
        lambda nm: st.tuples(
            hnp.arrays(np.float64, nm[0], elements=finite),
            hnp.arrays(np.float64, (nm[1], nm[0]), elements=finite),
        )
    )
)
def test_prop_crps_samples_nonnegative(data):
    y, samples = data
    out = crps_samples(y, samples, reduce=False)
    assert out.shape == y.shape
    assert np.all(out >= 0)


@PROPS
@given(mu=finite, sigma=positive, dz=st.floats(1e-3, 10.0), sign=st.sampled_from([-1.0, 1.0]))
def test_prop_crps_gaussian_minimised_at_mean(mu, sigma, dz, sign):
    at_mean = crps_gaussian(mu, mu, sigma)
    off = crps_gaussian(mu + sign * dz * sigma, mu, sigma)
    assert off > at_mean
    # symmetric in y around the mean
    assert crps_gaussian(mu - dz * sigma, mu, sigma) == pytest.approx(
        crps_gaussian(mu + dz * sigma, mu, sigma), rel=1e-9, abs=1e-12
    )


@PROPS
@given(
    data=st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, n, elements=finite), hnp.arrays(np.float64, n, elements=finite)
        )
    )
)
def test_prop_pinball_half_mae(data):
    y, q = data
    mae = np.mean(np.abs(y - q))
    assert pinball_loss(y, q, 0.5) == pytest.approx(0.5 * mae, rel=1e-12, abs=1e-12)
    assert pinball_loss(y, q[:, None], [0.5])[0] == pytest.approx(0.5 * mae, rel=1e-12, abs=1e-12)


@PROPS
@given(
    data=st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, n, elements=finite),
            hnp.arrays(np.float64, n, elements=finite),
            hnp.arrays(np.float64, n, elements=st.floats(0.0, 100.0)),
        )
    )
)
def test_prop_coverage_in_unit_interval(data):
    y, lo, width = data
    c = interval_coverage(y, lo, lo + width)
    assert 0.0 <= c <= 1.0
    # n * coverage is an integer count
    assert c * y.size == pytest.approx(round(c * y.size))


@PROPS
@given(
    data=st.integers(5, 20).flatmap(
        lambda n: st.tuples(
            hnp.arrays(np.float64, n, elements=finite),
            hnp.arrays(np.float64, n, elements=finite),
            hnp.arrays(np.float64, n, elements=positive),
        )
    )
)
def test_prop_inputs_not_mutated(data):
    a, b, c = data
    a_pd = pd.Series(a.copy())
    b_df = pd.DataFrame({"x": b.copy()})
    samples = np.stack([a, b, c, a + c])
    snaps = [x.copy() for x in (a, b, c, samples)]
    pd_snaps = (a_pd.copy(), b_df.copy())
    y_train = np.concatenate([c, c[::-1] + 1.0])  # scale > 0: not constant at lag 1
    mase(a, b, y_train)
    mase(list(a), b_df["x"], pd.Series(y_train), sp=2)
    smape(a_pd, b)
    crps_gaussian(a, b, c)
    crps_gaussian(a_pd, b, c, reduce=False)
    crps_samples(a, samples)
    crps_samples(a, samples, reduce=False)
    pinball_loss(a, b, 0.3)
    pinball_loss(a, np.stack([b, c], axis=-1), [0.2, 0.8])
    interval_coverage(a, np.minimum(b, c), np.maximum(b, c))
    for x, s in zip((a, b, c, samples), snaps):
        np.testing.assert_array_equal(x, s)
    pd.testing.assert_series_equal(a_pd, pd_snaps[0])
    pd.testing.assert_frame_equal(b_df, pd_snaps[1])


@PROPS
@given(y=vec(2, 20))
def test_prop_perfect_forecast_zero(y):
    assert smape(y, y) == 0.0
    assert pinball_loss(y, y, 0.7) == 0.0
    assert interval_coverage(y, y, y) == 1.0


# --------------------------------------------------------------------------- #
# Input types
# --------------------------------------------------------------------------- #
def test_input_types_equivalent():
    y = [1.0, 2.0, 3.0, 4.0]
    p = [1.5, 1.5, 3.5, 5.0]
    tr = [0.0, 2.0, 1.0, 4.0, 3.0]
    ref = smape(np.array(y), np.array(p))
    assert smape(y, p) == ref
    assert smape(pd.Series(y, index=[9, 8, 7, 6]), pd.Series(p)) == ref  # positional
    assert smape(pd.DataFrame({"a": y}), pd.DataFrame({"b": p})) == ref
    ref_m = mase(np.array(y), np.array(p), np.array(tr))
    assert mase(pd.Series(y), p, pd.Series(tr)) == ref_m
    # nullable pandas dtypes
    assert smape(pd.Series(y, dtype="Float64"), p) == ref


# --------------------------------------------------------------------------- #
# Error cases
# --------------------------------------------------------------------------- #
def test_shape_mismatch_messages():
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        smape(np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, 1\)"):
        smape(np.ones(4), np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        mase(np.ones(3), np.ones(2), np.arange(5.0))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        mase(np.ones((3, 3)), np.ones((3, 3)), np.arange(10.0).reshape(5, 2))
    with pytest.raises(ValueError, match=r"\(2, 2\).*\(3,\)"):
        crps_gaussian(np.ones((2, 2)), np.ones(3), 1.0)
    with pytest.raises(ValueError, match=r"\(3,\).*\(10, 4\)"):
        crps_samples(np.ones(3), np.ones((10, 4)))
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 3\)"):
        pinball_loss(np.ones(3), np.ones((3, 3)), [0.1, 0.9])
    with pytest.raises(ValueError, match=r"\(3,\).*\(3, 1\)"):
        pinball_loss(np.ones(3), np.ones((3, 1)), 0.5)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        interval_coverage(np.ones(3), np.zeros(2), 2.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_position_named(bad):
    y = np.array([1.0, 2.0, 3.0, 4.0])
    p = y.copy()
    p[2] = bad
    with pytest.raises(ValueError, match=r"y_pred.*position 2"):
        smape(y, p)
    with pytest.raises(ValueError, match=r"y_pred.*position 2"):
        mase(y, p, np.arange(6.0))
    with pytest.raises(ValueError, match=r"mean.*position 2"):
        crps_gaussian(y, p, 1.0)
    with pytest.raises(ValueError, match=r"y_quantile.*position 2"):
        pinball_loss(y, p, 0.5)
    with pytest.raises(ValueError, match=r"upper.*position 2"):
        interval_coverage(y, 0.0, p)
    tr = np.arange(6.0)
    tr[4] = bad
    with pytest.raises(ValueError, match=r"y_train.*position 4"):
        mase(y, y, tr)
    Y = np.zeros((2, 3))
    Y[1, 2] = bad
    with pytest.raises(ValueError, match=r"y_true.*position \(1, 2\)"):
        smape(Y, np.zeros((2, 3)))
    S = np.zeros((5, 2, 3))
    S[3, 0, 1] = bad
    with pytest.raises(ValueError, match=r"samples.*position \(3, 0, 1\)"):
        crps_samples(np.zeros((2, 3)), S)
    with pytest.raises(ValueError, match=r"y_true.*position 1"):
        smape(pd.Series([1.0, None, 2.0]), [1.0, 1.0, 1.0])


def test_std_must_be_positive():
    with pytest.raises(ValueError, match="std"):
        crps_gaussian(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"std.*position 1"):
        crps_gaussian([0.0, 1.0], 0.0, [1.0, -2.0])


def test_mase_errors():
    with pytest.raises(ValueError, match="sp=4"):
        mase([1.0, 2.0], [1.0, 2.0], [1.0, 2.0, 3.0, 4.0], sp=4)
    with pytest.raises(ValueError, match="scale is zero"):
        mase([1.0, 2.0], [1.0, 2.0], [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="scale is zero"):
        mase([1.0], [2.0], [1.0, 2.0, 1.0, 2.0], sp=2)  # exactly 2-periodic
    with pytest.raises(ValueError, match="sp"):
        mase([1.0], [2.0], [1.0, 2.0, 3.0], sp=0)
    with pytest.raises(TypeError, match="sp must be an integer"):  # a wrong type, as in diagnostics
        mase([1.0], [2.0], [1.0, 2.0, 3.0], sp=1.5)


def test_other_errors():
    for a in (0.0, 1.0, -0.1, 1.5, np.nan):
        with pytest.raises(ValueError, match="alpha"):
            pinball_loss([1.0], [1.0], a)
    with pytest.raises(ValueError, match="alpha"):
        pinball_loss([1.0], [[1.0, 1.0]], [0.5, 1.0])
    with pytest.raises(ValueError, match="lower"):
        interval_coverage([1.0, 2.0], [0.0, 3.0], [2.0, 2.5])
    with pytest.raises(ValueError, match="empty"):
        smape([], [])
    with pytest.raises(TypeError, match="y_true could not be converted to a float array"):
        smape(["a", "b"], [1.0, 2.0])
