"""Several symbols per market (issue 14, item 4): every agent has one row per symbol, on
that symbol's own book with its own account; trading one symbol leaves the others'
books and accounts alone."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig, MarketEnv
from rltrader.sim.config import preset

CONFIG = EnvConfig(symbols=3, horizon=1_000, warmup_steps=50, size_classes=(1.0, 2.0))
BUY = 2 * 4 + 1


def test_rows_are_agents_by_symbol_on_their_own_books() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=2, seed=1)
    assert env.n_books == 6 and env.num_agents_total == 12
    assert env.market.config.symbols == ("XYZ0", "XYZ1", "XYZ2")
    # an agent keeps its size class on every symbol: rows (symbol * 2 + market) * 2 + i
    np.testing.assert_array_equal(env.order_qty.reshape(3, 2, 2), [[[1, 2], [1, 2]]] * 3)
    books = env.kernel.books
    before = [books.volume(b) for b in range(6)]
    # agent 1 of market 0 buys symbol 2 only (book 2 * 2 + 0 = 4, row 4 * 2 + 1 = 9)
    actions = np.zeros(12, dtype=np.int64)
    actions[9] = BUY
    quiet = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=2, seed=1)
    env.step(actions)
    quiet.step(np.zeros(12, dtype=np.int64))
    position = env.accounts()["position"]
    assert position.shape == (6, 2)
    assert position[4, 1] == 2 and np.count_nonzero(position) == 1
    for b in range(6):          # every other book moved exactly as without the order
        if b != 4:
            assert books.best_bid(b) == quiet.kernel.books.best_bid(b)
            assert books.volume(b) == quiet.kernel.books.volume(b)
    assert books.volume(4) > before[4]


def test_a_preset_with_several_symbols_keeps_their_names() -> None:
    market = preset("resilient").replace(symbols=("AAA", "BBB"))
    env = BatchedMarketEnv(CONFIG.replace(market=market, symbols=2), n_envs=1, n_agents=2)
    assert env.market.config.symbols == ("AAA", "BBB")


def test_single_symbol_adapters_refuse_several() -> None:
    with pytest.raises(ValueError, match="one symbol"):
        MarketEnv(CONFIG.replace(size_classes=None))
    with pytest.raises(ValueError, match="EnvConfig.symbols"):
        EnvConfig(symbols=0)
