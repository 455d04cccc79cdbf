"""Synthetic records with known answers, shared by the analytics and report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rltrader.analysis import facts as an
from rltrader.data.samples import AAPL_HOUR, sample_path

INTERVAL_NS = 100_000_000   # a 100 ms clock


def quotes_from_returns(r: np.ndarray, level: float = 1e6) -> an.Quotes:
    """A clocked top of book whose mid follows exp(cumsum(r)) (ticks, spread of 2)."""
    mid = np.rint(level * np.exp(np.concatenate([[0.0], np.cumsum(r)]))).astype(np.int64)
    n = mid.size
    return an.Quotes(np.arange(n, dtype=np.int64) * INTERVAL_NS, mid - 1, mid + 1,
                     np.full(n, 5), np.full(n, 7))





def fgn(n: int, hurst: float, rng: np.random.Generator) -> np.ndarray:
    """Fractional Gaussian noise by circulant embedding (Davies-Harte), exact."""
    k = np.arange(n + 1, dtype=np.float64)
    cov = 0.5 * ((k + 1) ** (2 * hurst) - 2 * k ** (2 * hurst) + np.abs(k - 1) ** (2 * hurst))
    eig = np.fft.fft(np.r_[cov, cov[-2:0:-1]]).real
    w = rng.normal(size=2 * n) + 1j * rng.normal(size=2 * n)
    return np.fft.fft(np.sqrt(np.maximum(eig, 0) / (2 * n)) * w)[:n].real


def trades_of(signs: np.ndarray) -> an.Trades:
    n = signs.size
    return an.Trades(np.arange(n), np.full(n, 100), np.ones(n, np.int64), signs)


def parents(delta: float, n: int, seed: int, noise: float = 0.5) -> an.ParentOrders:
    rng = np.random.default_rng(seed)
    volume = np.full(n, 1e7)
    sigma = np.full(n, 0.02)
    q = np.rint(volume * 10 ** rng.uniform(-4, -1, n)).astype(np.int64)
    side = rng.choice(np.array([-1, 1], dtype=np.int8), n)
    impact = sigma * (0.8 * (q / volume) ** delta + noise * (q / volume) ** 0.5
                      * rng.normal(size=n))
    arrival = np.full(n, 10_000.0)
    end = arrival * (1 + side * impact)
    return an.ParentOrders(side, q, np.zeros(n, np.int64), np.ones(n, np.int64), arrival, end,
                           0.5 * (arrival + end), volume, sigma)


def lobster_file() -> Path:
    """The AAPL 09:30-10:30 message file (packaged; ``$RLTRADER_DATA`` first when set)."""
    return sample_path(AAPL_HOUR)
