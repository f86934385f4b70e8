"""linear_scan against the sequential recurrence, real and complex, across chunk levels."""

import pytest

torch = pytest.importorskip("torch")

from probssm.deep.ops import linear_scan  # noqa: E402


def _loop(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[-1]):
        h = a[..., t] * h + b[..., t]
        out.append(h)
    return torch.stack(out, -1)


@pytest.mark.parametrize("length,chunk", [(1, 16), (7, 16), (16, 16), (37, 2), (70, 4)])
@pytest.mark.parametrize("complex_", [False, True])
def test_values_and_gradients_match_the_loop(length, chunk, complex_):
    g = torch.Generator().manual_seed(length)
    dtype = torch.complex128 if complex_ else torch.float64
    shape = (2, 3, length)
    a = torch.rand(*shape, generator=g, dtype=torch.float64) * 1.2 - 0.1  # some |a| > 1, some < 0
    b = torch.randn(*shape, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    if complex_:
        a = a * torch.exp(1j * torch.rand(*shape, generator=g, dtype=torch.float64))
        b, h0 = b.to(dtype) * (1 + 0.5j), h0.to(dtype) * (1 - 0.3j)
    args = [t.clone().requires_grad_() for t in (a, b, h0)]
    got = linear_scan(*args, chunk_size=chunk)
    ref_args = [t.clone().requires_grad_() for t in (a, b, h0)]
    want = _loop(*ref_args)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    cot = torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)
    grads = torch.autograd.grad((got * cot.conj()).real.sum(), args)
    ref = torch.autograd.grad((want * cot.conj()).real.sum(), ref_args)
    for name, x, y in zip("a b h0".split(), grads, ref):
        torch.testing.assert_close(x, y, rtol=1e-11, atol=1e-11, msg=f"gradient of {name}")


def test_broadcasting_and_zero_initial_state():
    a = torch.full((4, 1, 5), 0.5, dtype=torch.float64)  # broadcast over the middle axis
    b = torch.arange(15, dtype=torch.float64).reshape(1, 3, 5).expand(4, 3, 5)
    got = linear_scan(a, b)
    torch.testing.assert_close(got, _loop(a.expand(4, 3, 5), b, torch.zeros(4, 3, dtype=torch.float64)))
    # h_1 = 0.5 * b_0 + b_1 for the first row: 0.5 * 0 + 1
    assert got[0, 0, 1].item() == 1.0


def test_bad_input():
    with pytest.raises(ValueError, match="chunk_size must be >= 2, got 1"):
        linear_scan(torch.ones(3), torch.ones(3), chunk_size=1)
    with pytest.raises(ValueError, match="length 0"):
        linear_scan(torch.ones(2, 0), torch.ones(2, 0))
