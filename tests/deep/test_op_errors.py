"""Bad input to the operators: each error names the argument and the expected and received
shape or dtype."""

import math

import pytest

torch = pytest.importorskip("torch")

from probssm.deep.ops import selective_scan, ssd  # noqa: E402

B_, D_, N_, L_ = 2, 4, 3, 5


def _valid():
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return {"u": r(B_, D_, L_), "delta": r(B_, D_, L_), "A": -r(D_, N_).abs(),
            "B": r(B_, 2, N_, L_), "C": r(D_, N_)}


def _nan_at(name, index):
    def mutate(kw):
        kw[name] = kw[name].clone()
        kw[name][index] = math.nan
    return mutate


SCAN_ERRORS = [
    # (what is wrong, mutation of the valid inputs, exception, message pattern)
    ("u rank", lambda kw: kw.update(u=kw["u"][0]), ValueError,
     r"u must have shape \(batch, dim, length\) = \(\?, \?, \?\), got \(4, 5\)"),
    ("delta length", lambda kw: kw.update(delta=kw["delta"][..., :4]), ValueError,
     r"delta must have shape \(batch, dim, length\) = \(2, 4, 5\), got \(2, 4, 4\)"),
    ("A dim", lambda kw: kw.update(A=kw["A"][:3]), ValueError,
     r"A must have shape \(dim, state\) = \(4, \?\), got \(3, 3\)"),
    ("B length", lambda kw: kw.update(B=kw["B"][..., :2]), ValueError,
     r"B must have shape \(batch, groups, state, length\) = \(2, \?, 3, 5\), got \(2, 2, 3, 2\)"),
    ("B rank", lambda kw: kw.update(B=kw["B"][None]), ValueError,
     r"B must have shape \(dim, state\) = \(4, 3\) or .* got \(1, 2, 2, 3, 5\)"),
    ("C state", lambda kw: kw.update(C=kw["C"][:, :2]), ValueError,
     r"C must have shape \(dim, state\) = \(4, 3\), got \(4, 2\)"),
    ("groups", lambda kw: kw.update(B=torch.zeros(B_, 3, N_, L_)), ValueError,
     r"the groups of B \(2, 3, 3, 5\) must divide dim = 4, got groups = 3"),
    ("D shape", lambda kw: kw.update(D=torch.ones(D_, 1)), ValueError,
     r"D must have shape \(dim,\) = \(4,\), got \(4, 1\)"),
    ("initial_state shape", lambda kw: kw.update(initial_state=torch.zeros(B_, D_)), ValueError,
     r"initial_state must have shape \(batch, dim, state\) = \(2, 4, 3\), got \(2, 4\)"),
    ("dt shape", lambda kw: kw.update(dt=torch.ones(B_, D_, L_)), ValueError,
     r"dt must have shape \(batch, length\) = \(2, 5\), got \(2, 4, 5\)"),
    ("mask shape", lambda kw: kw.update(mask=torch.ones(B_, L_ + 1, dtype=torch.bool)), ValueError,
     r"mask must have shape \(batch, length\) = \(2, 5\), got \(2, 6\)"),
    ("empty", lambda kw: kw.update(u=kw["u"][..., :0], delta=kw["delta"][..., :0]), ValueError,
     r"u has length 0"),
    ("mask dtype", lambda kw: kw.update(mask=torch.ones(B_, L_)), TypeError,
     r"mask must be a bool tensor \(True = observed\), got torch.float32"),
    ("delta dtype", lambda kw: kw.update(delta=kw["delta"].double()), TypeError,
     r"u, delta, B \(per step\) must share one dtype, got u torch.float32, delta torch.float64"),
    ("B dtype", lambda kw: kw.update(B=kw["B"].half()), TypeError,
     r"u, delta, B \(per step\) must share one dtype, got .*B \(per step\) torch.float16"),
    ("integer u", lambda kw: kw.update(u=kw["u"].long()), TypeError,
     r"u must be a real floating tensor .* got torch.int64"),
    ("complex A", lambda kw: kw.update(A=kw["A"].to(torch.complex64)), TypeError,
     r"A must be a real floating tensor .* got complex"),
    ("half state", lambda kw: kw.update(initial_state=torch.zeros(B_, D_, N_, dtype=torch.half)),
     TypeError, r"initial_state is the scan state and must be float32 or float64, got torch.float16"),
    ("numpy u", lambda kw: kw.update(u=kw["u"].numpy()), TypeError,
     r"u must be a torch.Tensor, got ndarray"),
    ("NaN u", _nan_at("u", (1, 2, 3)), ValueError,
     r"u is NaN at \(batch 1, channel 2, step 3\); mark missing steps with mask=False"),
    ("NaN u observed", lambda kw: (_nan_at("u", (0, 1, 2))(kw),
                                   kw.update(mask=torch.tensor([[True] * 5, [False] * 5]))),
     ValueError, r"u is NaN at \(batch 0, channel 1, step 2\) \(mask marks this step observed\)"),
    ("NaN z", lambda kw: kw.update(z=torch.full((B_, D_, L_), math.nan)), ValueError,
     r"z is NaN at \(batch 0, channel 0, step 0\)"),
    ("NaN C", lambda kw: kw.update(C=torch.full((B_, N_, L_), math.nan),
                                   mask=torch.zeros(B_, L_, dtype=torch.bool)), ValueError,
     r"C is NaN at \(batch 0, state 0, step 0\)"),
    ("negative dt", lambda kw: kw.update(dt=-torch.ones(B_, L_)), ValueError,
     r"dt must be finite and >= 0 at observed steps, got -1.0 at \(batch 0, step 0\)"),
    ("infinite dt", lambda kw: kw.update(dt=torch.full((B_, L_), math.inf)), ValueError,
     r"dt must be finite and >= 0"),
]


@pytest.mark.parametrize("what,mutate,exc,pattern", SCAN_ERRORS, ids=[e[0] for e in SCAN_ERRORS])
def test_selective_scan_rejects(what, mutate, exc, pattern):
    kw = _valid()
    selective_scan(**kw)  # the unmutated inputs are accepted
    mutate(kw)
    with pytest.raises(exc, match=r"^selective_scan: " + pattern):
        selective_scan(**kw)


def test_nan_at_missing_steps_is_accepted():
    kw = _valid()
    kw["u"][1, :, 3] = math.nan
    kw["B"][1, :, :, 3] = math.nan
    mask = torch.ones(B_, L_, dtype=torch.bool)
    mask[1, 3] = False
    y = selective_scan(**kw, mask=mask, dt=torch.where(mask, 1.0, math.nan))
    assert torch.isfinite(y).all()


def _valid_ssd():
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    return {"x": r(2, 6, 4, 3), "dt": r(2, 6, 4).abs(), "A": -r(4).abs(), "B": r(2, 6, 2, 5),
            "C": r(2, 6, 2, 5)}


SSD_ERRORS = [
    ("x rank", lambda kw: kw.update(x=kw["x"][0]), ValueError,
     r"x must have shape \(batch, length, heads, headdim\) = \(\?, \?, \?, \?\), got \(6, 4, 3\)"),
    ("dt heads", lambda kw: kw.update(dt=kw["dt"][..., :3]), ValueError,
     r"dt must have shape \(batch, length, heads\) = \(2, 6, 4\), got \(2, 6, 3\)"),
    ("A heads", lambda kw: kw.update(A=kw["A"][:2]), ValueError,
     r"A must have shape \(heads,\) = \(4,\), got \(2,\)"),
    ("C mismatch", lambda kw: kw.update(C=kw["C"][..., :4]), ValueError,
     r"C must have shape \(batch, length, groups, state\) = \(2, 6, 2, 5\), got \(2, 6, 2, 4\)"),
    ("groups", lambda kw: kw.update(B=kw["B"][:, :, :1].repeat(1, 1, 3, 1),
                                    C=kw["C"][:, :, :1].repeat(1, 1, 3, 1)), ValueError,
     r"groups = 3 \(B \(2, 6, 3, 5\)\) must divide heads = 4"),
    ("dtype", lambda kw: kw.update(B=kw["B"].double()), TypeError,
     r"x, dt, B, C must share one dtype, got .*B torch.float64"),
    ("state", lambda kw: kw.update(initial_state=torch.zeros(2, 4, 3)), ValueError,
     r"initial_state must have shape \(batch, heads, headdim, state\) = \(2, 4, 3, 5\), got \(2, 4, 3\)"),
    ("chunk", lambda kw: kw.update(chunk_size=0), ValueError,
     r"chunk_size must be a positive int, got 0"),
]


@pytest.mark.parametrize("what,mutate,exc,pattern", SSD_ERRORS, ids=[e[0] for e in SSD_ERRORS])
def test_ssd_rejects(what, mutate, exc, pattern):
    kw = _valid_ssd()
    ssd(**kw)
    mutate(kw)
    with pytest.raises(exc, match=r"^ssd: " + pattern):
        ssd(**kw)
