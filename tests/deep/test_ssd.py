"""ssd (Mamba-2's chunked state-space duality) against a per-step loop and against the selective
scan with a decay shared by a head's channels."""

import pytest

torch = pytest.importorskip("torch")

from probssm.deep.ops import selective_scan, ssd  # noqa: E402

BATCH, LENGTH, HEADS, HEADDIM, GROUPS, STATE = 2, 21, 4, 3, 2, 5


def loop_ssd(x, dt, A, B, C, D=None, initial_state=None):
    batch, length, heads, headdim = x.shape
    per_group = heads // B.shape[2]
    h = torch.zeros(batch, heads, headdim, B.shape[3], dtype=x.dtype) \
        if initial_state is None else initial_state
    ys = []
    for t in range(length):
        Bt = B[:, t].repeat_interleave(per_group, dim=1)  # (batch, heads, state)
        Ct = C[:, t].repeat_interleave(per_group, dim=1)
        decay = torch.exp(dt[:, t] * A)[..., None, None]
        h = decay * h + dt[:, t, :, None, None] * x[:, t, :, :, None] * Bt[:, :, None, :]
        y = (h * Ct[:, :, None, :]).sum(-1)
        if D is not None:
            y = y + D[:, None] * x[:, t]
        ys.append(y)
    return torch.stack(ys, 1), h


def _inputs(seed, with_optional):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    kw = {"x": r(BATCH, LENGTH, HEADS, HEADDIM),
          "dt": torch.rand(BATCH, LENGTH, HEADS, generator=g, dtype=torch.float64),
          "A": -(torch.rand(HEADS, generator=g, dtype=torch.float64) * 2 + 0.2),
          "B": r(BATCH, LENGTH, GROUPS, STATE), "C": r(BATCH, LENGTH, GROUPS, STATE)}
    kw["dt"][:, 5] = 0.0  # a step that keeps the state
    if with_optional:
        kw["D"] = r(HEADS)
        kw["initial_state"] = r(BATCH, HEADS, HEADDIM, STATE)
    return kw


def _value_and_grads(fn, kw, dtype, **extra):
    leaves = {k: v.to(dtype).requires_grad_() for k, v in kw.items()}
    if fn is ssd:
        y, h = fn(**leaves, return_final_state=True, **extra)
    else:
        y, h = fn(**leaves)
    g = torch.Generator().manual_seed(5)
    loss = (y * torch.randn(y.shape, generator=g, dtype=torch.float64).to(dtype)).sum() \
        + (h * torch.randn(h.shape, generator=g, dtype=torch.float64).to(h.dtype)).sum()
    return y, h, dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))


@pytest.mark.parametrize("chunk_size", [1, 4, 8, 64])
@pytest.mark.parametrize("with_optional", [False, True], ids=["plain", "D+initial_state"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 1e-5)],
                         ids=["float64", "float32"])
def test_matches_loop(chunk_size, with_optional, dtype, tol):
    kw = _inputs(chunk_size, with_optional)
    want_y, want_h, want_g = _value_and_grads(loop_ssd, kw, torch.float64)
    got_y, got_h, got_g = _value_and_grads(ssd, kw, dtype, chunk_size=chunk_size)
    assert got_y.dtype == dtype
    for what, got, want in [("y", got_y, want_y), ("final state", got_h, want_h),
                            *[(f"gradient of {k}", got_g[k], want_g[k]) for k in want_g]]:
        err = (got.double() - want).abs().max().item()
        scale = max(1.0, want.abs().max().item())
        assert err <= tol * scale, f"{what}: {err:.3g} > {tol} x {scale:.3g}"


def test_equals_selective_scan_with_a_shared_decay_per_head():
    """SSD is the selective scan whose A is one scalar per head, repeated over its channels and
    state, and whose step size is shared by the head's channels."""
    kw = _inputs(0, True)
    y, h = ssd(**kw, chunk_size=8, return_final_state=True)
    dim = HEADS * HEADDIM
    u = kw["x"].reshape(BATCH, LENGTH, dim).transpose(1, 2)
    delta = kw["dt"].repeat_interleave(HEADDIM, dim=2).transpose(1, 2)
    A = kw["A"].repeat_interleave(HEADDIM)[:, None].expand(dim, STATE)
    y_s, h_s = selective_scan(
        u, delta, A, kw["B"].permute(0, 2, 3, 1), kw["C"].permute(0, 2, 3, 1),
        D=kw["D"].repeat_interleave(HEADDIM),
        initial_state=kw["initial_state"].reshape(BATCH, dim, STATE), return_final_state=True)
    torch.testing.assert_close(y.reshape(BATCH, LENGTH, dim), y_s.transpose(1, 2),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h.reshape(BATCH, dim, STATE), h_s, rtol=1e-12, atol=1e-12)
