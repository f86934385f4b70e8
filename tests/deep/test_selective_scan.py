"""selective_scan against a plain per-step loop written here: values, final state and the
gradient of every input, for every option and every layout of B and C."""

import math

import pytest

torch = pytest.importorskip("torch")

from probssm.deep.ops import selective_scan  # noqa: E402

BATCH, DIM, STATE, LENGTH = 2, 4, 3, 37  # 37 steps: three chunks of the scan, one ragged


def _at(M, b, t, dim):
    """Row b, step t of B or C as (dim, state), whatever its layout."""
    if M.dim() == 2:
        return M
    if M.dim() == 3:
        return M[b, :, t].expand(dim, -1)
    return M[b, :, :, t].repeat_interleave(dim // M.shape[1], dim=0)


def loop_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
              initial_state=None, dt=None, mask=None):
    """One batch row and one step at a time; a missing step is skipped (the state is kept)."""
    batch, dim, length = u.shape
    ys, finals = [], []
    for b in range(batch):
        h = torch.zeros(dim, A.shape[1], dtype=u.dtype) if initial_state is None else initial_state[b]
        row = []
        for t in range(length):
            observed = mask is None or bool(mask[b, t])
            if observed:
                d = delta[b, :, t] + (0 if delta_bias is None else delta_bias)
                if delta_softplus:
                    d = torch.log1p(torch.exp(d))
                if dt is not None:
                    d = d * dt[b, t]
                h = torch.exp(d[:, None] * A) * h + (d * u[b, :, t])[:, None] * _at(B, b, t, dim)
            y = (h * _at(C, b, t, dim)).sum(-1)
            if D is not None and observed:
                y = y + D * u[b, :, t]
            if z is not None:
                y = y * z[b, :, t] / (1 + torch.exp(-z[b, :, t]))
            row.append(y)
        ys.append(torch.stack(row, -1))
        finals.append(h)
    return torch.stack(ys), torch.stack(finals)


def make_inputs(options, layout_b, layout_c, seed=0, length=LENGTH):
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def layout(kind):
        return {"dim": rnd(DIM, STATE), "batch": rnd(BATCH, STATE, length),
                "groups": rnd(BATCH, 2, STATE, length)}[kind]

    softplus = "softplus" in options
    kw = {
        "u": rnd(BATCH, DIM, length),
        # Without softplus delta is used as the step size directly, so keep it positive.
        "delta": rnd(BATCH, DIM, length) if softplus
        else torch.rand(BATCH, DIM, length, generator=g, dtype=torch.float64) * 0.6,
        "A": -(torch.rand(DIM, STATE, generator=g, dtype=torch.float64) + 0.3),
        "B": layout(layout_b), "C": layout(layout_c),
        "delta_softplus": softplus,
    }
    if "z" in options:
        kw["z"] = rnd(BATCH, DIM, length)
    if "D" in options:
        kw["D"] = rnd(DIM)
    if "delta_bias" in options:
        kw["delta_bias"] = rnd(DIM) * 0.3 + (0.0 if softplus else 0.5)
    if "initial_state" in options:
        kw["initial_state"] = rnd(BATCH, DIM, STATE)
    if "dt" in options:
        kw["dt"] = torch.rand(BATCH, length, generator=g, dtype=torch.float64) * 2.5
    if "mask" in options:
        mask = torch.rand(BATCH, length, generator=g) > 0.3
        mask[:, 0] = False  # a missing first step reads out the initial state
        kw["mask"] = mask
    return kw


ALL = ("z", "D", "delta_bias", "softplus", "initial_state", "dt", "mask")
CASES = (
    [((), "dim", "dim"), (ALL, "dim", "dim"), (ALL, "batch", "batch"), (ALL, "groups", "groups"),
     (ALL, "dim", "groups"), (ALL, "groups", "batch")]
    + [((opt,), "groups", "groups") for opt in ALL]
)


def _differentiable(kw):
    return {k: v for k, v in kw.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}


def _run(fn, kw, dtype):
    leaves = {k: v.to(dtype).requires_grad_() for k, v in _differentiable(kw).items()}
    y, final = fn(**{**kw, **leaves}, **({"return_final_state": True} if fn is selective_scan else {}))
    g = torch.Generator().manual_seed(99)
    cot_y = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.dtype)
    cot_h = torch.randn(final.shape, generator=g, dtype=torch.float64).to(final.dtype)
    loss = (y * cot_y).sum() + (final * cot_h).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return y, final, dict(zip(leaves, grads))


def _assert_close(got, want, tol, what):
    got = got.double()
    err = (got - want).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol} x {scale:.3g}"


@pytest.mark.parametrize("options,layout_b,layout_c", CASES,
                         ids=[f"{'+'.join(o) or 'plain'}-B_{b}-C_{c}" for o, b, c in CASES])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
def test_matches_loop(options, layout_b, layout_c, dtype, tol):
    kw = make_inputs(options, layout_b, layout_c, seed=len(options))
    want_y, want_h, want_g = _run(loop_scan, kw, torch.float64)
    got_y, got_h, got_g = _run(selective_scan, kw, dtype)
    assert got_y.dtype == dtype and got_h.dtype == dtype
    _assert_close(got_y, want_y, tol, "y")
    _assert_close(got_h, want_h, tol, "final state")
    assert set(got_g) == set(want_g)
    for name in want_g:
        _assert_close(got_g[name], want_g[name], tol, f"gradient of {name}")


def test_missing_steps_ignore_nan_and_get_no_gradient():
    kw = make_inputs(ALL, "groups", "groups", seed=3)
    missing = ~kw["mask"]
    clean_y, clean_h, _ = _run(loop_scan, kw, torch.float64)
    dirty = dict(kw)
    for name in ("u", "delta"):
        dirty[name] = kw[name].masked_fill(missing[:, None, :], math.nan)
    dirty["B"] = kw["B"].masked_fill(missing[:, None, None, :], math.nan)
    dirty["dt"] = kw["dt"].masked_fill(missing, math.nan)
    y, h, grads = _run(selective_scan, dirty, torch.float64)
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
    _assert_close(y, want_y, 2 * eps, "y")
    _assert_close(h, want_h, 1e-5, "final state")
