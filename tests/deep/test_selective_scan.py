"""selective_scan against a plain per-step loop written here: values, final state and the
gradient of every input, for every option and every layout of B and C."""

import math

import pytest

torch = pytest.importorskip("torch")

from probssm.deep.ops import selective_scan  # noqa: E402

from .scan_reference import (  # noqa: E402
    BATCH, DIM, assert_close, loop_scan, make_inputs, run_with_grads)

ALL = ("z", "D", "delta_bias", "softplus", "initial_state", "dt", "mask")
CASES = (
    [((), "dim", "dim"), (ALL, "dim", "dim"), (ALL, "batch", "batch"), (ALL, "groups", "groups"),
     (ALL, "dim", "groups"), (ALL, "groups", "batch")]
    + [((opt,), "groups", "groups") for opt in ALL]
)


@pytest.mark.parametrize("options,layout_b,layout_c", CASES,
                         ids=[f"{'+'.join(o) or 'plain'}-B_{b}-C_{c}" for o, b, c in CASES])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
def test_matches_loop(options, layout_b, layout_c, dtype, tol):
    kw = make_inputs(options, layout_b, layout_c, seed=len(options))
    want_y, want_h, want_g = run_with_grads(loop_scan, kw, torch.float64)
    got_y, got_h, got_g = run_with_grads(selective_scan, kw, dtype, return_final_state=True)
    assert got_y.dtype == dtype and got_h.dtype == dtype
    assert_close(got_y, want_y, tol, "y")
    assert_close(got_h, want_h, tol, "final state")
    assert set(got_g) == set(want_g)
    for name in want_g:
        assert_close(got_g[name], want_g[name], tol, f"gradient of {name}")


def test_missing_steps_ignore_nan_and_get_no_gradient():
    kw = make_inputs(ALL, "groups", "groups", seed=3)
    missing = ~kw["mask"]
    clean_y, clean_h, _ = run_with_grads(loop_scan, kw, torch.float64)
    dirty = dict(kw)
    for name in ("u", "delta"):
        dirty[name] = kw[name].masked_fill(missing[:, None, :], math.nan)
    dirty["B"] = kw["B"].masked_fill(missing[:, None, None, :], math.nan)
    dirty["dt"] = kw["dt"].masked_fill(missing, math.nan)
    y, h, grads = run_with_grads(selective_scan, dirty, torch.float64, return_final_state=True)
    torch.testing.assert_close(y, clean_y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, clean_h, rtol=1e-12, atol=1e-12)
    for name, g in grads.items():
        assert torch.isfinite(g).all(), f"gradient of {name} has NaN"
    assert (grads["u"].masked_select(missing[:, None, :].expand_as(grads["u"])) == 0).all()
    assert (grads["dt"][missing] == 0).all()


def test_a_missing_step_is_removed_from_the_sequence():
    kw = make_inputs(("initial_state", "D", "z"), "dim", "dim", seed=5, length=3)
    mask = torch.tensor([[False, False, False], [True, False, True]])
    y, h = selective_scan(**kw, mask=mask, return_final_state=True)
    assert torch.equal(h[0], kw["initial_state"][0])  # exp(0 A) = 1 and 0 B u = 0 exactly
    kept = {k: (v[..., [0, 2]] if k in ("u", "delta", "z") else v) for k, v in kw.items()}
    y_kept, h_kept = selective_scan(**kept, return_final_state=True)
    torch.testing.assert_close(h[1], h_kept[1], rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(y[1][:, [0, 2]], y_kept[1], rtol=1e-13, atol=1e-13)


def test_time_gap_is_repeated_steps_without_input():
    """dt = 3 decays like three unit steps with zero input in between (plus the input once)."""
    kw = make_inputs(("initial_state",), "dim", "dim", seed=7, length=1)
    _, gap = selective_scan(**kw, dt=torch.full((BATCH, 1), 3.0, dtype=torch.float64),
                            return_final_state=True)
    zeros = torch.zeros(BATCH, DIM, 2, dtype=torch.float64)
    delta3 = kw["delta"].repeat(1, 1, 3)
    # Two steps without input, then the step with input scaled by the full gap of 3.
    _, h = selective_scan(zeros, delta3[..., :2], kw["A"], kw["B"], kw["C"],
                          initial_state=kw["initial_state"], return_final_state=True)
    want = torch.exp(kw["delta"][..., 0, None] * kw["A"]) * h \
        + (3 * kw["delta"][..., 0] * kw["u"][..., 0])[..., None] * kw["B"]
    torch.testing.assert_close(gap, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_keep_a_float32_state(dtype):
    kw = make_inputs(ALL, "groups", "groups", seed=11)
    low = {k: (v.to(dtype) if k in ("u", "delta", "z", "B", "C") else v.float()
               if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
           for k, v in kw.items()}
    y, h = selective_scan(**low, return_final_state=True)
    assert y.dtype == dtype and h.dtype == torch.float32
    rounded = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
               for k, v in low.items()}
    want_y, want_h = loop_scan(**rounded)
    # The error is the output's rounding to the half dtype, the state itself is float32.
    eps = torch.finfo(dtype).eps
    assert_close(y, want_y, 2 * eps, "y")
    assert_close(h, want_h, 1e-5, "final state")
