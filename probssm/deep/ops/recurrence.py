"""The diagonal linear recurrence h_t = a_t * h_{t-1} + b_t, evaluated in parallel over time.

Every layer of :mod:`probssm.deep` reduces to this recurrence once its inputs are discretised,
so it is written once, for real and complex tensors, with autograd providing the backward pass.
"""

from __future__ import annotations

import torch

__all__ = ["linear_scan"]

# Steps scanned together by recursive doubling. Small chunks keep the doubling's extra work
# (log2(chunk) passes over the sequence) low; the chunk carries are scanned by the same
# function, so the depth stays logarithmic in the length.
DEFAULT_CHUNK = 16


def linear_scan(a: torch.Tensor, b: torch.Tensor, initial_state: torch.Tensor | None = None,
                *, chunk_size: int = DEFAULT_CHUNK) -> torch.Tensor:
    r"""All states of the elementwise linear recurrence along the last axis.

    .. math::

        h_t = a_t \odot h_{t-1} + b_t, \qquad t = 0, \dots, L - 1, \qquad h_{-1} = h_0,

    where :math:`h_0` is ``initial_state`` (zero when ``None``).

    Parameters
    ----------
    a, b : Tensor, broadcastable to a common shape ``(..., L)``
        Decays and inputs, real or complex, time on the last axis.
    initial_state : Tensor ``(...)``, optional
        The state before the first step (broadcastable to the leading axes).
    chunk_size : int
        Steps combined by recursive doubling inside one chunk (a power of two is best).

    Returns
    -------
    Tensor ``(..., L)``
        :math:`h_0, \dots, h_{L-1}`; the final state is ``h[..., -1]``.

    Notes
    -----
    Chunked scan-then-fix-up (Blelloch 1990): inside each chunk of ``chunk_size`` steps the pairs
    :math:`(a, b)` are composed by recursive doubling, :math:`(a_2, b_2) \circ (a_1, b_1) =
    (a_2 a_1, a_2 b_1 + b_2)`, which gives every step's decay and state from the chunk start;
    the chunks' end states are the same recurrence over chunks (scanned recursively), and each
    chunk's states are then fixed up by its cumulative decay times its start state. Only
    products of decays appear (no division), so it is as stable as the sequential loop.
    Differentiable by autograd in every argument.
    """
    if chunk_size < 2:
        raise ValueError(f"linear_scan: chunk_size must be >= 2, got {chunk_size}")
    a, b = torch.broadcast_tensors(a, b)
    if a.dim() == 0:
        raise ValueError("linear_scan: a and b need a time axis (the last one); got scalars")
    length = a.shape[-1]
    if length == 0:
        raise ValueError("linear_scan: the time axis (last) has length 0")
    lead = a.shape[:-1]
    h0 = None if initial_state is None else torch.broadcast_to(initial_state, lead)

    chunk = min(chunk_size, length)
    pad = (-length) % chunk
    if pad:
        # Identity steps (a = 1, b = 0) at the end leave every real step unchanged.
        a = torch.cat([a, a.new_ones(*lead, pad)], dim=-1)
        b = torch.cat([b, b.new_zeros(*lead, pad)], dim=-1)
    n_chunks = a.shape[-1] // chunk
    a = a.unflatten(-1, (n_chunks, chunk))
    b = b.unflatten(-1, (n_chunks, chunk))

    # Inclusive scan inside every chunk: afterwards a holds the decay from the chunk start and b
    # the state reached from a zero start.
    step = 1
    while step < chunk:
        b = torch.cat([b[..., :step], a[..., step:] * b[..., :-step] + b[..., step:]], dim=-1)
        a = torch.cat([a[..., :step], a[..., step:] * a[..., :-step]], dim=-1)
        step *= 2

    if n_chunks == 1:
        starts = None if h0 is None else h0[..., None, None]
    else:
        ends = linear_scan(a[..., -1], b[..., -1], h0, chunk_size=chunk_size)
        first = (ends.new_zeros(*lead, 1) if h0 is None else h0[..., None].to(ends.dtype))
        starts = torch.cat([first, ends[..., :-1]], dim=-1)[..., None]
    h = b if starts is None else b + a * starts
    return h.flatten(-2)[..., :length]
