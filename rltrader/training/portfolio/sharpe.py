"""The differential Sharpe ratio (Moody & Saffell 1998, "Reinforcement learning for
trading"), batched over markets.

With ``A`` and ``B`` exponential moving averages (rate ``eta``) of the returns ``R`` and of
``R^2``, the first-order change of the moving Sharpe ratio ``A / sqrt(B - A^2)`` when ``R_t``
arrives is ``eta x D_t`` with

    D_t = (B_{t-1} dA_t - A_{t-1} dB_t / 2) / (B_{t-1} - A_{t-1}^2)^(3/2),
    dA_t = R_t - A_{t-1},   dB_t = R_t^2 - B_{t-1},

then ``A_t = A_{t-1} + eta dA_t``, ``B_t = B_{t-1} + eta dB_t``. ``D_t`` is 0 while the
variance ``B - A^2`` is at most ``min_var`` (at the start, or after only flat returns):
without that floor a first tiny nonzero return makes the next ``D`` arbitrarily large.

``guard`` (opt-in) drops the variance term ``- A dB / 2`` while ``A <= 0``: the Sharpe ratio
of a losing stream rises with its variance, so without it a policy whose averages restart
from a small prior learns to lose money in large swings for a positive ``D``
(docs/portfolio.md, "Standing aside").
"""

from __future__ import annotations

import math

import numpy as np


def differential_sharpe(returns: np.ndarray, eta: float, *, min_var: float = 0.0,
                        a0: float = 0.0, b0: float = 0.0, guard: bool = False) -> np.ndarray:
    """``D_t`` of a sequence of returns (the reference: one step at a time, in float64)."""
    a, b = float(a0), float(b0)
    out = np.zeros(len(returns))
    for t, r in enumerate(np.asarray(returns, dtype=np.float64)):
        da, db = r - a, r * r - b
        var = b - a * a
        variance_term = 0.0 if guard and a <= 0 else 0.5 * a * db
        out[t] = (b * da - variance_term) / var ** 1.5 if var > min_var else 0.0
        a, b = a + eta * da, b + eta * db
    return out


class DifferentialSharpe:
    """``D_t`` of ``n`` return streams at once (one per market); ``A`` and ``B`` persist
    across calls (an investor's running statistics, not reset between episodes).

    Parameters
    ----------
    n : int
        Streams.
    eta : float
        Adaptation rate, in (0, 1).
    min_var : float
        ``D`` is 0 where ``B - A^2 <= min_var`` (in squared return units).
    guard : bool
        Drop the variance term while ``A <= 0`` (module docstring).
    """

    def __init__(self, n: int, eta: float, min_var: float = 0.0, guard: bool = False
                 ) -> None:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        if not isinstance(eta, (int, float)) or not 0.0 < eta < 1.0:
            raise ValueError(f"eta must be in (0, 1), got {eta!r}")
        if not isinstance(min_var, (int, float)) or not 0.0 <= min_var < math.inf:
            raise ValueError(f"min_var must be finite and >= 0, got {min_var!r}")
        if not isinstance(guard, bool):
            raise TypeError(f"guard must be a bool, got {guard!r}")
        self.eta, self.min_var, self.guard = float(eta), float(min_var), guard
        self.a = np.zeros(int(n))
        self.b = np.zeros(int(n))

    def reset(self) -> None:
        self.a[:] = 0.0
        self.b[:] = 0.0

    def restart(self, rows: np.ndarray, b0: float) -> None:
        """Streams ``rows`` (a boolean mask) start again from ``A = 0``, ``B = b0``."""
        self.a[rows] = 0.0
        self.b[rows] = float(b0)

    def update(self, returns: np.ndarray) -> np.ndarray:
        """``D_t`` for this step's returns ``(n,)``; then the averages move on."""
        r = np.asarray(returns, dtype=np.float64)
        if r.shape != self.a.shape:
            raise ValueError(f"returns must have shape {self.a.shape}, got {r.shape}")
        if not np.isfinite(r).all():
            raise ValueError("returns must be finite")
        da, db = r - self.a, r * r - self.b
        var = self.b - self.a * self.a
        ok = var > self.min_var
        d = np.zeros_like(r)
        a = np.maximum(self.a, 0.0) if self.guard else self.a
        d[ok] = (self.b[ok] * da[ok] - 0.5 * a[ok] * db[ok]) / var[ok] ** 1.5
        self.a += self.eta * da
        self.b += self.eta * db
        return d
