"""The plain per-step loop the scan implementations are tested against, and its inputs."""

import torch

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


def make_inputs(options, layout_b, layout_c, seed=0, length=LENGTH, batch=BATCH, dim=DIM,
                state=STATE):
    """Random inputs of ``selective_scan`` with the named ``options`` on and B, C in the named
    layouts (``"dim"``, ``"batch"`` or ``"groups"``, two groups)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def layout(kind):
        return {"dim": rnd(dim, state), "batch": rnd(batch, state, length),
                "groups": rnd(batch, 2, state, length)}[kind]

    softplus = "softplus" in options
    kw = {
        "u": rnd(batch, dim, length),
        # Without softplus delta is used as the step size directly, so keep it positive.
        "delta": rnd(batch, dim, length) if softplus
        else torch.rand(batch, dim, length, generator=g, dtype=torch.float64) * 0.6,
        "A": -(torch.rand(dim, state, generator=g, dtype=torch.float64) + 0.3),
        "B": layout(layout_b), "C": layout(layout_c),
        "delta_softplus": softplus,
    }
    if "z" in options:
        kw["z"] = rnd(batch, dim, length)
    if "D" in options:
        kw["D"] = rnd(dim)
    if "delta_bias" in options:
        kw["delta_bias"] = rnd(dim) * 0.3 + (0.0 if softplus else 0.5)
    if "initial_state" in options:
        kw["initial_state"] = rnd(batch, dim, state)
    if "dt" in options:
        kw["dt"] = torch.rand(batch, length, generator=g, dtype=torch.float64) * 2.5
    if "mask" in options:
        mask = torch.rand(batch, length, generator=g) > 0.3
        mask[:, 0] = False  # a missing first step reads out the initial state
        kw["mask"] = mask
    return kw


def differentiable(kw):
    return {k: v for k, v in kw.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}


def run_with_grads(fn, kw, dtype, **options):
    """Outputs, final state and the gradient of every float input of a random linear loss of
    both, with the float inputs cast to ``dtype``."""
    leaves = {k: v.to(dtype).requires_grad_() for k, v in differentiable(kw).items()}
    y, final = fn(**{**kw, **leaves}, **options)
    g = torch.Generator().manual_seed(99)
    cot_y = torch.randn(y.shape, generator=g, dtype=torch.float64).to(y.device, y.dtype)
    cot_h = torch.randn(final.shape, generator=g, dtype=torch.float64).to(final.device, final.dtype)
    loss = (y * cot_y).sum() + (final * cot_h).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return y, final, dict(zip(leaves, grads))


def assert_close(got, want, tol, what):
    got = got.double()
    err = (got - want).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol} x {scale:.3g}"


