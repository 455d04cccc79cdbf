"""Correlated fundamentals across a market's symbols (issue 14, item 4): the diffusion
shocks of one copy's symbols share a common factor; copies stay independent; without a
correlation nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.sim.config import FundamentalConfig, MarketConfig
from rltrader.sim.market import Market


def shocks(correlation: float, steps: int = 3000) -> np.ndarray:
    """Per step and book, the change of the fundamental (3 symbols x 4 copies, no mean
    reversion, no traders)."""
    config = MarketConfig(symbols=("A", "B", "C"), copies=4, close="10:00",
                          fundamental=FundamentalConfig(r_bar=10_000.0, sigma=1.0,
                                                        correlation=correlation))
    market = Market(config, seed=3)
    values = [market.flow.fundamental.copy()]
    for _ in range(steps):
        market.flow.run(1)
        values.append(market.flow.fundamental.copy())
    return np.diff(np.array(values), axis=0)


def test_the_symbols_of_a_copy_move_together_and_copies_do_not() -> None:
    d = shocks(0.81)
    corr = np.corrcoef(d.T)                 # books: symbol * 4 + copy
    same_copy = [corr[s * 4 + c, t * 4 + c] for c in range(4) for s in range(3)
                 for t in range(s + 1, 3)]
    other_copy = [corr[s * 4 + c, t * 4 + (c + 1) % 4] for c in range(4) for s in range(3)
                  for t in range(3)]
    assert np.mean(same_copy) == pytest.approx(0.81, abs=0.04)
    assert abs(np.mean(other_copy)) < 0.04


def test_no_correlation_changes_nothing() -> None:
    d = shocks(0.0, 500)
    corr = np.corrcoef(d.T)
    assert np.abs(corr[~np.eye(12, dtype=bool)]).max() < 0.2
    with pytest.raises(ValueError, match="correlation"):
        FundamentalConfig(correlation=1.5)
