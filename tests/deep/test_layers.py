"""Every layer: step() token by token equals the full-sequence forward, a sequence cut in two
with the state carried equals it in one piece, missing steps keep the state, and bad input is
rejected with the argument named."""

import math

import pytest

torch = pytest.importorskip("torch")

from probssm.deep.layers import LRU, S4D, Mamba, Mamba2, Mamba2State, MambaState  # noqa: E402

BATCH, LENGTH, D_MODEL = 2, 19, 8
LAYERS = {
    "Mamba": lambda: Mamba(D_MODEL, d_state=4, d_conv=3, bias=True),
    "Mamba2": lambda: Mamba2(D_MODEL, d_state=4, headdim=4, ngroups=2, chunk_size=8, bias=True),
    "S4D": lambda: S4D(D_MODEL, d_state=5),
    "LRU": lambda: LRU(D_MODEL, d_state=6, r_min=0.5, r_max=0.95),
}


def _layer(name, dtype=torch.float32):
    torch.manual_seed(0)
    return LAYERS[name]().to(dtype)


def _flat(state):
    parts = state if isinstance(state, tuple) else (state,)
    return torch.cat([torch.view_as_real(p).flatten() if p.is_complex() else p.flatten()
                      for p in parts])


def _gaps(seed=1):
    g = torch.Generator().manual_seed(seed)
    dt = torch.rand(BATCH, LENGTH, generator=g) * 2
    mask = torch.rand(BATCH, LENGTH, generator=g) > 0.3
    return dt, mask


def _stream(layer, x, **per_step):
    state = layer.initial_state(x.shape[0])
    outs = []
    for t in range(x.shape[1]):
        y, state = layer.step(x[:, t], state, **{k: v[:, t] for k, v in per_step.items()})
        outs.append(y)
    return torch.stack(outs, 1), state


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("irregular", [False, True], ids=["regular", "dt+mask"])
def test_step_equals_forward(name, irregular):
    layer = _layer(name)
    x = torch.randn(BATCH, LENGTH, D_MODEL, generator=torch.Generator().manual_seed(2))
    kw = dict(zip(("dt", "mask"), _gaps())) if irregular else {}
    with torch.no_grad():
        y, final = layer(x, return_state=True, **kw)
        y_steps, final_steps = _stream(layer, x, **kw)
    assert y.shape == (BATCH, LENGTH, D_MODEL) and y.abs().max() > 1e-3
    torch.testing.assert_close(y_steps, y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(_flat(final_steps), _flat(final), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", LAYERS)
def test_forward_continues_from_a_state(name):
    """Two halves with the state carried across equal one pass, values and gradients."""
    layer = _layer(name, torch.float64)
    x = torch.randn(BATCH, LENGTH, D_MODEL, generator=torch.Generator().manual_seed(3),
                    dtype=torch.float64)
    dt, mask = (v.double() if v.is_floating_point() else v for v in _gaps(4))
    y = layer(x, dt=dt, mask=mask)
    cut = 7
    y1, state = layer(x[:, :cut], dt=dt[:, :cut], mask=mask[:, :cut], return_state=True)
    y2 = layer(x[:, cut:], dt=dt[:, cut:], mask=mask[:, cut:], state=state)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, rtol=1e-10, atol=1e-10)
    params = [p for p in layer.parameters()]
    g_one = torch.autograd.grad(y.square().sum(), params)
    g_two = torch.autograd.grad(torch.cat([y1, y2], 1).square().sum(), params)
    for p, a, b in zip(layer.state_dict(), g_one, g_two):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9, msg=f"gradient of {p}")
    assert all(torch.isfinite(g).all() for g in g_one)
    assert sum(g.abs().sum() for g in g_one) > 0


@pytest.mark.parametrize("name", LAYERS)
def test_missing_steps_are_ignored(name):
    """NaN at missing steps changes nothing; an all-missing stretch leaves the scan state as it
    was (the convolution history of the Mamba blocks does move on)."""
    layer = _layer(name, torch.float64)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(BATCH, LENGTH, D_MODEL, generator=g, dtype=torch.float64)
    dt, mask = _gaps(6)
    dt = dt.double()
    clean = layer(x, dt=dt, mask=mask)
    dirty_x = x.masked_fill(~mask[..., None], math.nan)
    dirty_dt = dt.masked_fill(~mask, math.nan)
    torch.testing.assert_close(layer(dirty_x, dt=dirty_dt, mask=mask), clean, rtol=0, atol=0)

    _, state = layer(x[:, :5], return_state=True)
    gap = torch.zeros(BATCH, 4, dtype=torch.bool)
    _, after = layer(x[:, 5:9], mask=gap, state=state, return_state=True)
    ssm = (lambda s: s.ssm) if isinstance(state, tuple) else (lambda s: s)
    torch.testing.assert_close(ssm(after), ssm(state), rtol=0, atol=0)


def test_s4d_convolution_equals_its_recurrence():
    """The FFT path (no gaps) and the scan path (unit gaps) compute the same model."""
    layer = _layer("S4D", torch.float64)
    x = torch.randn(BATCH, LENGTH, D_MODEL, generator=torch.Generator().manual_seed(7),
                    dtype=torch.float64)
    h0 = torch.randn(BATCH, D_MODEL, 5, dtype=torch.complex128,
                     generator=torch.Generator().manual_seed(8))
    y_fft, h_fft = layer(x, state=h0, return_state=True)
    y_rec, h_rec = layer(x, dt=torch.ones(BATCH, LENGTH, dtype=torch.float64), state=h0,
                         return_state=True)
    torch.testing.assert_close(y_fft, y_rec, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(h_fft, h_rec, rtol=1e-11, atol=1e-11)


def test_lru_is_stable_for_any_parameters():
    layer = _layer("LRU")
    with torch.no_grad():
        layer.nu_log.copy_(torch.linspace(-30, 5, 6))
        layer.theta_log.copy_(torch.linspace(-5, 5, 6))
        modulus = torch.exp(layer._parts()[0]).abs()
    assert (modulus <= 1).all() and (modulus > 0.999).any()


LAYER_ERRORS = [
    ("rank", lambda n: dict(x=torch.randn(BATCH, D_MODEL)), ValueError,
     r"x must have shape \(batch, length, d_model\) = \(\?, \?, 8\), got \(2, 8\)"),
    ("d_model", lambda n: dict(x=torch.randn(BATCH, LENGTH, 3)), ValueError,
     r"x must have shape \(batch, length, d_model\) = \(\?, \?, 8\), got \(2, 19, 3\)"),
    ("dtype", lambda n: dict(x=torch.randn(BATCH, LENGTH, D_MODEL, dtype=torch.float64)),
     TypeError, r"x is torch.float64 but the layer's parameters are torch.float32"),
    ("NaN", lambda n: dict(x=torch.full((BATCH, LENGTH, D_MODEL), math.nan)), ValueError,
     r"x is NaN at \(batch 0, step 0, channel 0\); mark missing steps with mask=False"),
    ("mask length", lambda n: dict(mask=torch.ones(BATCH, LENGTH - 1, dtype=torch.bool)),
     ValueError, r"mask must have shape \(batch, length\) = \(2, 19\), got \(2, 18\)"),
    ("dt negative", lambda n: dict(dt=-torch.ones(BATCH, LENGTH)), ValueError,
     r"dt must be finite and >= 0 at observed steps, got -1.0 at \(batch 0, step 0\)"),
    ("state", lambda n: dict(state=_layer(n).initial_state(BATCH + 1)), ValueError,
     r"state.* must have shape \(batch, .*\) = \(2, .*\), got \(3, "),
]


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("what,bad,exc,pattern", LAYER_ERRORS, ids=[e[0] for e in LAYER_ERRORS])
def test_forward_rejects(name, what, bad, exc, pattern):
    layer = _layer(name)
    kw = {"x": torch.randn(BATCH, LENGTH, D_MODEL), **bad(name)}
    prefix = name if what == "state" else f"{name}.forward"
    with pytest.raises(exc, match=f"^{prefix}: " + pattern):
        layer(**kw)


@pytest.mark.parametrize("name", LAYERS)
def test_step_rejects(name):
    layer = _layer(name)
    state = layer.initial_state(BATCH)
    with pytest.raises(ValueError, match=rf"^{name}.step: x must have shape \(batch, d_model\) = "
                                         r"\(\?, 8\), got \(2, 1, 8\)"):
        layer.step(torch.randn(BATCH, 1, D_MODEL), state)
    with pytest.raises(ValueError, match=rf"^{name}.step: dt must have shape \(batch,\) = \(2,\)"):
        layer.step(torch.randn(BATCH, D_MODEL), state, dt=torch.ones(BATCH, 1))


def test_constructor_errors_and_state_types():
    with pytest.raises(ValueError, match="headdim = 5 must divide d_inner = expand \\* d_model = 16"):
        Mamba2(8, headdim=5)
    with pytest.raises(ValueError, match="ngroups = 3 must divide nheads = 4"):
        Mamba2(8, headdim=4, ngroups=3)
    with pytest.raises(ValueError, match="r_min < r_max"):
        LRU(8, r_min=0.9, r_max=0.5)
    assert isinstance(_layer("Mamba").initial_state(1), MambaState)
    assert isinstance(_layer("Mamba2").initial_state(1), Mamba2State)
    assert _layer("Mamba").initial_state(3).ssm.shape == (3, 16, 4)


def test_time_gaps_of_s4d_and_lru_are_repeated_steps():
    """S4D's gap of 2 is exact zero-order hold: two unit steps with the input held. LRU's gap of
    3 decays like three steps: two steps without input before the observed one."""
    g = torch.Generator().manual_seed(9)
    x = torch.randn(BATCH, 2, D_MODEL, generator=g, dtype=torch.float64)
    s4d, lru = _layer("S4D", torch.float64), _layer("LRU", torch.float64)
    gap2 = torch.tensor([[1.0, 2.0]] * BATCH, dtype=torch.float64)
    _, h_gap = s4d(x, dt=gap2, return_state=True)
    _, h_held = s4d(x[:, [0, 1, 1]], return_state=True)
    torch.testing.assert_close(h_gap, h_held, rtol=1e-12, atol=1e-12)

    gap3 = torch.tensor([[1.0, 3.0]] * BATCH, dtype=torch.float64)
    _, h_gap = lru(x, dt=gap3, return_state=True)
    padded = torch.stack([x[:, 0], 0 * x[:, 0], 0 * x[:, 0], x[:, 1]], 1)
    _, h_steps = lru(padded, return_state=True)
    torch.testing.assert_close(h_gap, h_steps, rtol=1e-12, atol=1e-12)
