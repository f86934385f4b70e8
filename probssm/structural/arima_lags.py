"""Lag sets of SARIMAX polynomials: additive lag lists as statsmodels accepts them.

An order entry of :func:`~probssm.structural.arima.sarimax_spec` is either an integer ``p``
(every lag ``1..p``) or the lags that carry a coefficient, written as statsmodels writes them:

* a list of lags, ``[1, 4]``: :math:`\\phi(L) = 1 - \\phi_1 L - \\phi_4 L^4`;
* a tuple of 0/1 flags, one per lag, ``(1, 0, 0, 1)``: the same polynomial.

The coefficients of the lags left out are zero and are not parameters. A sequence that holds a 0
or several 1s is read as flags (statsmodels' ``standardize_lag_order``); otherwise as lags.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["dense_tail", "lag_set", "max_inverse_root", "shrink_into_region"]


def lag_set(value, where: str) -> tuple[int, ...]:
    """The lags ``(l_1 < l_2 < ...)`` of a polynomial from an order entry.

    Parameters
    ----------
    value : int or sequence of int
        A maximum order ``p`` (lags ``1..p``), a list of lags, or a sequence of 0/1 flags.
    where : str
        The entry's name, for error messages (e.g. ``"order[0] (p)"``).

    Returns
    -------
    tuple of int
        Positive, increasing, without repeats; ``()`` for order 0.

    Raises
    ------
    TypeError
        A value that is neither an integer nor a sequence of integers.
    ValueError
        A negative order or lag, a repeated lag, flags mixed with lags greater than 1.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: expected a non-negative integer or a list of lags, got {value!r}")
    if isinstance(value, numbers.Integral):
        if value < 0:
            raise ValueError(f"{where}: expected a non-negative integer, got {value}")
        return tuple(range(1, int(value) + 1))
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{where}: expected a non-negative integer or a list of lags, got {value!r}")
    entries = list(value)
    for i, entry in enumerate(entries):
        if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, numbers.Integral):
            raise TypeError(f"{where}[{i}]: expected an integer lag (or a 0/1 flag), got {entry!r}")
        if entry < 0:
            raise ValueError(f"{where}[{i}]: lags cannot be negative, got {entry}")
    entries = [int(e) for e in entries]
    if 0 in entries or entries.count(1) > 1:
        if any(e > 1 for e in entries):
            raise ValueError(
                f"{where}: {value!r} reads as 0/1 flags (it holds a 0 or several 1s) but also holds "
                "lags greater than 1; give either flags such as (1, 0, 0, 1) or lags such as [1, 4]"
            )
        return tuple(i + 1 for i, e in enumerate(entries) if e == 1)
    if len(set(entries)) != len(entries):
        raise ValueError(f"{where}: the lag list {value!r} repeats a lag")
    return tuple(sorted(entries))


def dense_tail(coefs, lags, size: int) -> np.ndarray:
    """``(c_1, ..., c_size)`` with ``c_l`` the coefficient of lag ``l`` (zero where no lag)."""
    tail = np.zeros(size)
    tail[np.asarray(lags, dtype=int) - 1] = coefs
    return tail


def max_inverse_root(tail) -> float:
    """Largest modulus of the inverse roots of ``1 + c_1 z + ... + c_m z^m`` (``tail`` =
    ``(c_1, ..., c_m)``); 0 for an empty or zero tail."""
    tail = np.asarray(tail, dtype=float)
    if tail.size == 0 or not np.any(tail):
        return 0.0
    return float(np.max(np.abs(np.roots(np.concatenate([[1.0], tail])))))


def shrink_into_region(coefs, lags, limit: float, factor: float = 0.9) -> np.ndarray:
    """Coefficients ``c`` on the lags, scaled by ``factor`` until both

    * :math:`1 + \\sum_j c_j L^{l_j}` (the polynomial itself) and
    * :math:`1 + \\sum_j c_j L^{j}` (the coefficients read as consecutive lags, the region the
      Monahan / Jones transforms map onto, as in statsmodels)

    have inverse roots of modulus at most ``limit``. Non-finite input gives zeros.
    """
    coefs = np.asarray(coefs, dtype=float)
    if not np.all(np.isfinite(coefs)):
        return np.zeros_like(coefs)
    lags = tuple(lags)
    size = max(lags, default=0)
    for _ in range(200):
        if max(max_inverse_root(dense_tail(coefs, lags, size)), max_inverse_root(coefs)) <= limit:
            return coefs
        coefs = coefs * factor
    return np.zeros_like(coefs)
