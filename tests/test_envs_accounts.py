"""The env's accounts are the truth: limits hold for the real position plus open orders,
episode boundaries never hide inventory, and a position is worth what liquidating it
would fetch (checked against an independent walk of the book)."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.core.constants import EMPTY_ASK, EMPTY_BID
from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names

NAMES = observation_names(5)
BUY_MARKET = 2 * 4 + 1          # discrete: market buy with the default four limit offsets


def column(name: str) -> int:
    return NAMES.index(name)


def open_lots(env: BatchedMarketEnv) -> np.ndarray:
    """Per agent and side (0 buy, 1 sell): lots of its orders resting in the book, read
    from the core's level queues (independent of the kernel's slot cache), plus its limit
    and market orders in flight."""
    books, first = env.kernel.books, env.market.n_traders
    lots = np.zeros((env.num_agents_total, 2), dtype=np.int64)
    prices, _, _ = books.top_levels(books.window)
    for e in range(env.n_envs):
        for j, side in ((0, 1), (1, -1)):
            for price in prices[e, j][prices[e, j] > 0]:
                queue = books.level_queue(e, side, int(price))
                owner = queue["owner"] - first
                mine = (owner >= 0) & (owner < env.n_agents)
                np.add.at(lots[:, j], e * env.n_agents + owner[mine], queue["qty"][mine])
    arrays = env.kernel.agent_arrays
    flying = (arrays["slot_id"] != 0) & (arrays["slot_arena"] == -2)
    for side, j in ((1, 0), (-1, 1)):
        lots[:, j] += (arrays["slot_leaves"] * (flying & (arrays["slot_side"] == side))).sum(1)
    return lots + arrays["inflight_ioc"]


@pytest.mark.parametrize("changes", [
    dict(),
    dict(end_of_episode="carry"),
    dict(end_of_episode="carry", latency_ns=170_000_000, latency_jitter_ns=90_000_000),
    dict(action_mode="market_making", end_of_episode="carry", latency_ns=40_000_000),
], ids=["liquidate", "carry", "carry-latency", "making-latency"])
def test_real_positions_and_open_orders_never_pass_the_limit(changes) -> None:
    config = EnvConfig(horizon=30, warmup_steps=50, size_classes=(1.0, 3.0, 1.0), **changes)
    env = BatchedMarketEnv(config, n_envs=6, n_agents=3, seed=11)
    rng = np.random.default_rng(2)
    limit = env.position_limit
    for _ in range(240):
        high = env.action_high
        actions = np.stack([rng.integers(0, h, env.num_agents_total) for h in high], axis=1)
        env.step(actions.reshape(env.actions.shape))
        position = env.accounts()["position"].ravel()
        assert np.all(np.abs(position) <= limit)
        lots = open_lots(env)
        assert np.all(position + lots[:, 0] <= limit)       # buys
        assert np.all(-position + lots[:, 1] <= limit)      # sells
        inventory = env.observations[:, column("inventory")]
        np.testing.assert_array_equal(inventory, (position / limit).astype(np.float32))


def test_buying_every_step_for_ten_episodes_stops_at_the_limit_and_shows_it() -> None:
    config = EnvConfig(horizon=20, warmup_steps=50, end_of_episode="carry",
                       size_classes=(1.0,))
    env = BatchedMarketEnv(config, n_envs=8, n_agents=1, seed=3)
    limit = int(env.position_limit[0])
    for _ in range(10):
        for t in range(20):
            obs, _, terminated, _ = env.step(np.full(8, BUY_MARKET))
            position = env.accounts()["position"].ravel()
            assert np.all(position <= limit)
            if t < 19:
                np.testing.assert_array_equal(obs[:, column("inventory")],
                                              (position / limit).astype(np.float32))
        assert terminated.all()
        # the next episode's first observation shows the carried position, not zero
        np.testing.assert_array_equal(env.observations[:, column("inventory")],
                                      (position / limit).astype(np.float32))
    assert np.all(position == limit)
    obs, *_ = env.step(np.full(8, BUY_MARKET))        # at the limit: refused, and seen
    assert np.all(obs[:, column("limited")] == 1.0)
    assert np.all(env.accounts()["position"] == limit)


def test_an_order_cut_by_the_limit_is_trimmed_and_the_cut_is_observed() -> None:
    config = EnvConfig(horizon=500, warmup_steps=50, size_classes=(7.0,),
                       base_position_limit=2)           # order 7 lots, limit 14 lots
    env = BatchedMarketEnv(config, n_envs=4, n_agents=1, seed=5)
    env.step(np.full(4, BUY_MARKET))
    env.step(np.full(4, BUY_MARKET))
    assert np.all(env.accounts()["position"] == 14)
    obs, *_ = env.step(np.full(4, BUY_MARKET))
    assert np.all(obs[:, column("limited")] == 1.0)
    obs, *_ = env.step(np.full(4, 2 * 4 + 2))         # a market sell: not limited
    assert np.all(obs[:, column("limited")] == 0.0)


def reference_value(env: BatchedMarketEnv, e: int, i: int) -> float:
    """What agent ``i`` of env ``e``'s position would fetch: the other side's levels walked
    from the touch within ``scan_ticks`` (prices >= 1), the agent's own orders excluded
    (read from the level queues), the rest valued ``scan_ticks`` beyond the touch, minus
    the taker fee (100 ppm)."""
    books, c = env.kernel.books, env.config
    owner = env.market.n_traders + i
    position = int(env.accounts()["position"][e, i])
    if position == 0:
        return 0.0
    side = 1 if position > 0 else -1                   # the side it sells into / buys from
    bid, ask = books.best_bid(e), books.best_ask(e)
    bid = None if bid == EMPTY_BID else bid
    ask = None if ask == EMPTY_ASK else ask
    if side == 1:
        touch = bid if bid is not None else (ask - 1 if ask is not None else None)
    else:
        touch = ask if ask is not None else (bid + 1 if bid is not None else None)
    if touch is None:
        pytest.skip("both sides empty")
    prices, qtys, _ = books.top_levels(books.window)
    left, notional = abs(position), 0.0
    j = 0 if side == 1 else 1
    for price, qty in zip(prices[e, j], qtys[e, j], strict=True):
        if qty == 0 or abs(price - touch) > c.scan_ticks or price < 1 or left == 0:
            continue
        queue = books.level_queue(e, side, int(price))
        lots = int(queue["qty"][queue["owner"] != owner].sum())
        take = min(lots, left)
        notional += take * float(price)
        left -= take
    if left:
        notional += left * max(0, touch - side * c.scan_ticks)
    return side * notional - notional * 100e-6


@pytest.mark.parametrize("market", ["resilient", "thin"])
def test_the_value_of_a_position_is_what_liquidating_it_would_fetch(market) -> None:
    config = EnvConfig(market=market, horizon=1000, warmup_steps=60, end_of_episode="carry",
                       size_classes=(1.0, 8.0, 30.0))
    env = BatchedMarketEnv(config, n_envs=5, n_agents=3, seed=4)
    rng = np.random.default_rng(1)
    arrays = env.kernel.agent_arrays
    checked = 0
    for _ in range(60):
        env.step(rng.integers(0, env.single_action_space.n, env.num_agents_total))
        acc = env.accounts()
        for e in range(5):
            for i in range(3):
                a = e * 3 + i
                # prev_pnl = (cash - cash_0) + value(position) - value(position_0)
                value = (arrays["prev_pnl"][a] - (acc["cash"][e, i] - arrays["base_cash"][a])
                         + arrays["base_value"][a])
                assert value == pytest.approx(reference_value(env, e, i), rel=1e-12,
                                              abs=1e-6)
                checked += acc["position"][e, i] != 0
    assert checked > 100


def test_with_liquidation_an_episode_s_rewards_add_up_to_its_cash() -> None:
    """Sum of an episode's rewards x order size = the account's cash change (the position
    is flat at both ends): nothing is paid for a price the agent pushed."""
    config = EnvConfig(horizon=40, warmup_steps=60, size_classes=(2.0, 5.0))
    env = BatchedMarketEnv(config, n_envs=6, n_agents=2, seed=8)
    rng = np.random.default_rng(4)
    start = env.accounts()["cash"].ravel().astype(float)
    total = np.zeros(12)
    for _ in range(40):
        _, rewards, terminated, _ = env.step(
            rng.integers(0, env.single_action_space.n, env.num_agents_total))
        total += rewards
    assert terminated.all()
    acc = env.accounts()
    flat = acc["position"].ravel() == 0
    assert flat.sum() >= 10
    cash = acc["cash"].ravel() - start
    np.testing.assert_allclose((total * env.order_qty)[flat], cash[flat], rtol=1e-5, atol=0.5)


def test_inventory_penalties_are_exact_quadratic_differences() -> None:
    base = EnvConfig(horizon=25, warmup_steps=40, size_classes=(1.0, 4.0),
                     end_of_episode="carry")
    plain = BatchedMarketEnv(base, n_envs=3, n_agents=2, seed=6)
    penal = BatchedMarketEnv(base.replace(running_inventory_penalty=0.25,
                                          terminal_inventory_penalty=3.0),
                             n_envs=3, n_agents=2, seed=6)
    rng = np.random.default_rng(0)
    for _ in range(60):
        actions = rng.integers(0, plain.single_action_space.n, plain.num_agents_total)
        _, r0, terminated, _ = plain.step(actions)
        _, r1, _, _ = penal.step(actions)
        x = penal.accounts()["position"].ravel() / penal.order_qty
        expected = 0.25 * x**2 + np.where(terminated, 3.0 * x**2, 0.0)
        np.testing.assert_allclose(r0 - r1, expected, rtol=1e-5, atol=1e-4)
