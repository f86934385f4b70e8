"""Triton programs of the fused selective scan (imported only where Triton is installed).

One program owns one batch row and a block of channels that lie in one group of B and C, and
walks time sequentially with its ``(BLOCK_D, BLOCK_N)`` state in registers, in float32. The
forward pass writes the outputs, the final state and the state at the start of every chunk of
``CHUNK`` steps. The backward pass walks the chunks in reverse: it recomputes a chunk's states
from its checkpoint into a scratch buffer, then runs the adjoint recurrence backwards through
the chunk. Parameter gradients are accumulated in registers and written per batch row (summed
by the caller); gradients of per-step B, C and of the time gaps, shared by several programs, are
added atomically.
"""

import triton
import triton.language as tl


@triton.jit
def _softplus(x):
    # Above 20, softplus(x) = x to float32 precision (and exp would overflow later).
    return tl.where(x <= 20.0, tl.log(1.0 + tl.exp(x)), x)


@triton.jit
def _step_inputs(u_ptr, delta_ptr, bias, B_ptr, C_ptr, dt_ptr, mask_ptr, Bc, Cc,
                 b, t, length, row, d, d_mask, n, n_mask, state, b_group, c_group, groups_b,
                 groups_c, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr, HAS_DT: tl.constexpr,
                 HAS_MASK: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr):
    """Everything step t needs, with missing and padding steps neutralised *before* any
    arithmetic (their inputs may be NaN): returns the in-range and observed flags, the
    pre-softplus value, its softplus, the gap, the step size, u, B_t and C_t. Per-step scalars
    are loaded as (BLOCK_D,) vectors of one value, which keeps every mask a tensor (also under
    the interpreter, where loop indices are Python ints)."""
    valid = (t + 0 * d) < length
    observed = valid
    if HAS_MASK:
        observed = observed & (tl.load(mask_ptr + b * length + t + 0 * d, mask=valid,
                                       other=0) != 0)
    u = tl.load(u_ptr + row + t, mask=d_mask & valid, other=0.0).to(tl.float32)
    raw = tl.load(delta_ptr + row + t, mask=d_mask & valid, other=0.0).to(tl.float32)
    u = tl.where(observed, u, 0.0)
    pre = tl.where(observed, raw, 0.0)
    if HAS_BIAS:
        pre = pre + bias
    if SOFTPLUS:
        sp = _softplus(pre)
    else:
        sp = pre
    tau = tl.zeros_like(u) + 1.0  # a tensor in both branches (a returned constant is not)
    if HAS_DT:
        tau = tl.load(dt_ptr + b * length + t + 0 * d, mask=valid, other=0.0).to(tl.float32)
        tau = tl.where(observed, tau, 0.0)
    step = tl.where(observed, sp * tau, 0.0)
    if B_VAR:
        Bt = tl.load(B_ptr + ((b * groups_b + b_group) * state + n) * length + t,
                     mask=n_mask & ((t + 0 * n) < length), other=0.0).to(tl.float32)
        Bt = tl.where(observed[:, None], Bt[None, :], 0.0)
    else:
        Bt = Bc
    if C_VAR:
        Ct = tl.load(C_ptr + ((b * groups_c + c_group) * state + n) * length + t,
                     mask=n_mask & ((t + 0 * n) < length), other=0.0).to(tl.float32)[None, :]
    else:
        Ct = Cc
    return valid, observed, pre, sp, tau, step, u, Bt, Ct


@triton.jit
def selective_fwd(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr, dt_ptr,
                  mask_ptr, y_ptr, hT_ptr, ckpt_ptr,
                  dim, length, state, n_chunks, per_group_b, per_group_c, groups_b, groups_c,
                  HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                  SOFTPLUS: tl.constexpr, HAS_H0: tl.constexpr, HAS_DT: tl.constexpr,
                  HAS_MASK: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
                  CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0)
    d0 = tl.program_id(1) * BLOCK_D
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    d_mask = d < dim
    n_mask = n < state
    dn = d[:, None] * state + n[None, :]
    dn_mask = d_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + dn, mask=dn_mask, other=0.0).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    Bc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    Cc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if not B_VAR:
        Bc = tl.load(B_ptr + dn, mask=dn_mask, other=0.0).to(tl.float32)
    if not C_VAR:
        Cc = tl.load(C_ptr + dn, mask=dn_mask, other=0.0).to(tl.float32)
    b_group = d0 // per_group_b
    c_group = d0 // per_group_c
    state_off = b * dim * state + dn
    h = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if HAS_H0:
        h = tl.load(h0_ptr + state_off, mask=dn_mask, other=0.0).to(tl.float32)
    row = (b * dim + d) * length
    for c in range(0, n_chunks):
        tl.store(ckpt_ptr + (b * n_chunks + c) * dim * state + dn, h, mask=dn_mask)
        for i in range(0, CHUNK):
            t = c * CHUNK + i
            valid, observed, pre, sp, tau, step, u, Bt, Ct = _step_inputs(
                u_ptr, delta_ptr, bias, B_ptr, C_ptr, dt_ptr, mask_ptr, Bc, Cc, b, t, length,
                row, d, d_mask, n, n_mask, state, b_group, c_group, groups_b, groups_c,
                HAS_BIAS, SOFTPLUS, HAS_DT, HAS_MASK, B_VAR, C_VAR)
            h = tl.exp(step[:, None] * A) * h + (step * u)[:, None] * Bt
            y = tl.sum(h * Ct, axis=1)
            if HAS_D:
                y = y + Dv * u
            if HAS_Z:
                z = tl.load(z_ptr + row + t, mask=d_mask & valid, other=0.0).to(tl.float32)
                y = y * z * tl.sigmoid(z)
            tl.store(y_ptr + row + t, y.to(y_ptr.dtype.element_ty), mask=d_mask & valid)
    tl.store(hT_ptr + state_off, h, mask=dn_mask)


@triton.jit
def selective_bwd(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dt_ptr,
                  mask_ptr, ckpt_ptr, scratch_ptr, gy_ptr, ghT_ptr,
                  gu_ptr, gdelta_ptr, gz_ptr, gA_ptr, gB_ptr, gC_ptr, gD_ptr, gbias_ptr,
                  gh0_ptr, gdt_ptr,
                  dim, length, state, n_chunks, per_group_b, per_group_c, groups_b, groups_c,
                  HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                  SOFTPLUS: tl.constexpr, HAS_GHT: tl.constexpr, HAS_DT: tl.constexpr,
                  HAS_MASK: tl.constexpr, B_VAR: tl.constexpr, C_VAR: tl.constexpr,
                  CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    b = tl.program_id(0)
    blk = tl.program_id(1)
    d0 = blk * BLOCK_D
    d = d0 + tl.arange(0, BLOCK_D)
    n = tl.arange(0, BLOCK_N)
    d_mask = d < dim
    n_mask = n < state
    dn = d[:, None] * state + n[None, :]
    dn_mask = d_mask[:, None] & n_mask[None, :]
    A = tl.load(A_ptr + dn, mask=dn_mask, other=0.0).to(tl.float32)
    Dv = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    bias = tl.zeros([BLOCK_D], dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d, mask=d_mask, other=0.0).to(tl.float32)
    Bc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    Cc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if not B_VAR:
        Bc = tl.load(B_ptr + dn, mask=dn_mask, other=0.0).to(tl.float32)
    if not C_VAR:
        Cc = tl.load(C_ptr + dn, mask=dn_mask, other=0.0).to(tl.float32)
    b_group = d0 // per_group_b
    c_group = d0 // per_group_c
    state_off = b * dim * state + dn
    row = (b * dim + d) * length
    # This program's scratch: CHUNK + 1 states of (BLOCK_D, BLOCK_N), slot 0 the chunk's start
    # and slot i + 1 the state after its step i, so step i reads h_{t-1} and h_t unconditionally.
    local = tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + n[None, :]
    slot = BLOCK_D * BLOCK_N
    scratch = scratch_ptr + (b * tl.num_programs(1) + blk) * (CHUNK + 1) * slot + local

    gh = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    if HAS_GHT:
        gh = tl.load(ghT_ptr + state_off, mask=dn_mask, other=0.0).to(tl.float32)
    gA = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    gBc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    gCc = tl.zeros([BLOCK_D, BLOCK_N], dtype=tl.float32)
    gD = tl.zeros([BLOCK_D], dtype=tl.float32)
    gbias = tl.zeros([BLOCK_D], dtype=tl.float32)
    for k in range(0, n_chunks):
        c = n_chunks - 1 - k
        h_start = tl.load(ckpt_ptr + (b * n_chunks + c) * dim * state + dn, mask=dn_mask,
                          other=0.0)
        h = h_start
        tl.store(scratch, h)
        for i in range(0, CHUNK):
            t = c * CHUNK + i
            valid, observed, pre, sp, tau, step, u, Bt, Ct = _step_inputs(
                u_ptr, delta_ptr, bias, B_ptr, C_ptr, dt_ptr, mask_ptr, Bc, Cc, b, t, length,
                row, d, d_mask, n, n_mask, state, b_group, c_group, groups_b, groups_c,
                HAS_BIAS, SOFTPLUS, HAS_DT, HAS_MASK, B_VAR, C_VAR)
            h = tl.exp(step[:, None] * A) * h + (step * u)[:, None] * Bt
            tl.store(scratch + (i + 1) * slot, h)
        for j in range(0, CHUNK):
            i = CHUNK - 1 - j
            t = c * CHUNK + i
            valid, observed, pre, sp, tau, step, u, Bt, Ct = _step_inputs(
                u_ptr, delta_ptr, bias, B_ptr, C_ptr, dt_ptr, mask_ptr, Bc, Cc, b, t, length,
                row, d, d_mask, n, n_mask, state, b_group, c_group, groups_b, groups_c,
                HAS_BIAS, SOFTPLUS, HAS_DT, HAS_MASK, B_VAR, C_VAR)
            h_t = tl.load(scratch + (i + 1) * slot)
            h_prev = tl.load(scratch + i * slot)
            gy = tl.load(gy_ptr + row + t, mask=d_mask & valid, other=0.0).to(tl.float32)
            # Output y = (C_t . h_t + D u_t) silu(z_t).
            g_pre = gy
            if HAS_Z:
                z = tl.load(z_ptr + row + t, mask=d_mask & valid, other=0.0).to(tl.float32)
                sig = tl.sigmoid(z)
                y_pre = tl.sum(h_t * Ct, axis=1) + Dv * u
                gz = gy * y_pre * sig * (1.0 + z * (1.0 - sig))
                tl.store(gz_ptr + row + t, gz, mask=d_mask & valid)
                g_pre = gy * z * sig
            if HAS_D:
                gD += g_pre * u
            gCt = g_pre[:, None] * h_t
            if C_VAR:
                tl.atomic_add(gC_ptr + ((b * groups_c + c_group) * state + n) * length + t,
                              tl.sum(gCt, axis=0), mask=n_mask & ((t + 0 * n) < length))
            else:
                gCc += gCt
            gh = gh + g_pre[:, None] * Ct
            # State h_t = exp(step A) h_{t-1} + step u B_t.
            dA = tl.exp(step[:, None] * A)
            g_decay = gh * h_prev * dA
            gA += g_decay * step[:, None]
            ghB = tl.sum(gh * Bt, axis=1)
            g_step = tl.sum(g_decay * A, axis=1) + ghB * u
            gu = tl.where(observed, ghB * step + g_pre * Dv, 0.0)
            tl.store(gu_ptr + row + t, gu, mask=d_mask & valid)
            gBt = gh * (step * u)[:, None]
            if B_VAR:
                tl.atomic_add(gB_ptr + ((b * groups_b + b_group) * state + n) * length + t,
                              tl.sum(gBt, axis=0), mask=n_mask & ((t + 0 * n) < length))
            else:
                gBc += gBt
            # step = sp(pre) * tau at observed steps, pre = delta + bias.
            g_sp = tl.where(observed, g_step * tau, 0.0)
            if HAS_DT:
                g_tau = tl.sum(tl.where(observed & d_mask, g_step * sp, 0.0), axis=0)
                # One atomic add per program: the block's first lane carries the block's sum.
                tl.atomic_add(gdt_ptr + b * length + t + 0 * d, tl.where(d == d0, g_tau, 0.0),
                              mask=(d == d0) & valid)
            if SOFTPLUS:
                g_pre_sp = g_sp * tl.sigmoid(pre)
            else:
                g_pre_sp = g_sp
            tl.store(gdelta_ptr + row + t, g_pre_sp, mask=d_mask & valid)
            gbias += g_pre_sp
            gh = gh * dA
    tl.store(gh0_ptr + state_off, gh, mask=dn_mask)
    tl.store(gA_ptr + state_off, gA, mask=dn_mask)
    if not B_VAR:
        tl.store(gB_ptr + state_off, gBc, mask=dn_mask)
    if not C_VAR:
        tl.store(gC_ptr + state_off, gCc, mask=dn_mask)
    if HAS_D:
        tl.store(gD_ptr + b * dim + d, gD, mask=d_mask)
    if HAS_BIAS:
        tl.store(gbias_ptr + b * dim + d, gbias, mask=d_mask)
