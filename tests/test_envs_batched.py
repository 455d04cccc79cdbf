"""BatchedMarketEnv: spaces, layout, actions, rewards, episodes, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader._env import copy_actions
from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names

CONFIG = EnvConfig(horizon=50, warmup_steps=50)


def column(env: BatchedMarketEnv, name: str) -> int:
    return observation_names(env.config.depth).index(name)


def act(env: BatchedMarketEnv, name: str, offset: int = 0) -> int:
    """The discrete action index of ``name`` (docs/envs.md)."""
    n_off = len(env.config.limit_offsets)
    return {"hold": 0, "buy": 1 + offset, "sell": 1 + n_off + offset, "market_buy": 2 * n_off + 1,
            "market_sell": 2 * n_off + 2, "cancel": 2 * n_off + 3}[name]


def rollout(env: BatchedMarketEnv, steps: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        actions = rng.integers(0, env.single_action_space.n, env.num_agents_total)
        obs, rewards, terminated, truncated = env.step(actions)
        out += [obs.copy(), rewards.copy(), terminated.copy(), env.final_observations.copy()]
    return out


def identical(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ---- spaces and the first observation ---------------------------------------------------

def test_spaces_and_first_observation() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=3, n_agents=2, seed=1)
    assert env.num_agents_total == 6
    assert env.single_action_space.n == 2 * 4 + 4
    assert env.single_observation_space.shape == (4 * 5 + 18,)
    assert len(observation_names(5)) == env.obs_dim
    obs = env.reset()
    assert obs.shape == (6, env.obs_dim) and obs.dtype == np.float32
    assert env.single_observation_space.contains(obs[0])
    for name, value in (("time_left", 1.0), ("inventory", 0.0), ("pnl", 0.0), ("orders", 0.0),
                        ("in_flight", 0.0), ("queue_ahead", -1.0), ("limited", 0.0)):
        assert np.all(obs[:, column(env, name)] == value), name
    # a two-sided book after warm-up: bids below the mid, asks above
    assert np.all(obs[:, column(env, "bid_price_0")] < 0)
    assert np.all(obs[:, column(env, "ask_price_0")] > 0)
    spread = obs[:, column(env, "ask_price_0")] - obs[:, column(env, "bid_price_0")]
    np.testing.assert_allclose(spread, obs[:, column(env, "spread")])


@pytest.mark.parametrize(("price_scale", "qty_scale"), [(10.0, 10.0), (4.0, 2.5)])
def test_market_features_match_the_book(price_scale: float, qty_scale: float) -> None:
    """Levels, spread and returns in units of ``price_scale`` ticks, sizes in units of
    ``qty_scale`` lots (docs/envs.md, "Observation")."""
    config = CONFIG.replace(price_scale=price_scale, qty_scale=qty_scale)
    env = BatchedMarketEnv(config, n_envs=4, n_agents=1, seed=3)
    books = env.kernel.books
    lag = config.return_lag
    mids = []
    rng = np.random.default_rng(0)
    for step in range(40):                          # within the first episode
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, 4))
        prices, qtys, _ = books.top_levels(config.depth)
        bid = np.array([books.best_bid(e) for e in range(4)])
        ask = np.array([books.best_ask(e) for e in range(4)])
        mid = 0.5 * (bid + ask)
        mids.append(mid)
        for e in range(4):
            for k in range(config.depth):
                # top_levels: [book, side (0 bid, 1 ask), level]
                for side, name in ((0, "bid"), (1, "ask")):
                    assert obs[e, column(env, f"{name}_price_{k}")] == np.float32(
                        (prices[e, side, k] - mid[e]) / price_scale)
                    assert obs[e, column(env, f"{name}_qty_{k}")] == np.float32(
                        qtys[e, side, k] / qty_scale)
        np.testing.assert_array_equal(obs[:, column(env, "spread")],
                                      ((ask - bid) / price_scale).astype(np.float32))
        if step >= 1:
            np.testing.assert_array_equal(obs[:, column(env, "return_1")],
                                          ((mid - mids[-2]) / price_scale).astype(np.float32))
        if step >= lag:
            np.testing.assert_array_equal(obs[:, column(env, "return_lag")],
                                          ((mid - mids[-1 - lag]) / price_scale)
                                          .astype(np.float32))
    moved = np.array(mids)
    assert np.any(moved[1:] != moved[:-1])          # the returns were not all 0


# ---- actions ------------------------------------------------------------------------------

def test_limit_order_rests_at_the_touch_with_its_queue_position() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=1, n_agents=2, seed=2)
    books = env.kernel.books
    bid = books.best_bid(0)
    obs, *_ = env.step([act(env, "buy", offset=1), act(env, "hold")])  # limit_offsets[1] = 0
    ids = [int(i) for i in env.kernel.agent_arrays["slot_id"][0] if i]
    assert len(ids) == 1
    order = books.order(0, ids[0])
    assert order["price"] == bid == books.best_bid(0) and order["qty"] == env.order_qty[0]
    queue = books.level_queue(0, 1, bid)
    position = list(queue["order_id"]).index(ids[0])
    assert position == len(queue) - 1 > 0                  # joined the tail of the queue
    assert obs[0, column(env, "queue_ahead")] == np.float32(queue["qty"][:position].sum() / 10)
    assert obs[0, column(env, "orders")] == 1 / env.config.max_orders
    assert obs[1, column(env, "orders")] == 0 and obs[1, column(env, "queue_ahead")] == -1


def test_cancel_all_and_the_order_cap() -> None:
    config = CONFIG.replace(limit_offsets=(5, 6, 7, 8))   # deep: never filled here
    env = BatchedMarketEnv(config, n_envs=1, n_agents=1, seed=4)
    for k in range(6):
        obs, *_ = env.step([act(env, "buy", offset=k % 4)])
    assert obs[0, column(env, "orders")] == 1.0          # max_orders = 4, oldest replaced
    ids = [int(i) for i in env.kernel.agent_arrays["slot_id"][0]]
    assert all(env.kernel.books.order(0, i) is not None for i in ids)
    obs, *_ = env.step([act(env, "cancel")])
    assert obs[0, column(env, "orders")] == 0.0
    assert all(env.kernel.books.order(0, i) is None for i in ids)


def test_market_orders_respect_the_position_limit_and_pay_fees() -> None:
    config = CONFIG.replace(size_classes=(3.0,), horizon=200)
    env = BatchedMarketEnv(config, n_envs=2, n_agents=1, seed=5)
    assert env.order_qty.tolist() == [3, 3] and env.position_limit.tolist() == [60, 60]
    start = env.accounts()
    for _ in range(30):
        obs, *_ = env.step([act(env, "market_buy")] * 2)
    acc = env.accounts()
    assert np.all(acc["position"] - start["position"] == 60)    # 20 orders, then refused
    np.testing.assert_allclose(obs[:, column(env, "inventory")], acc["position"].ravel() / 60)
    assert np.all(obs[:, column(env, "limited")] == 1.0)
    assert np.all(acc["fees"] > start["fees"])           # 100 ppm of ~10,000 ticks per lot


def test_limits_count_open_orders_and_the_cut_is_observed() -> None:
    """``side x position + open lots of that side <= position_limit`` on the account, the
    open lots counting resting limit orders and those in flight, market orders in flight
    too; ``limited`` is the share of the decision's lots cut (docs/envs.md, "Limits")."""
    config = CONFIG.replace(size_classes=(1.0,), base_qty=5, base_position_limit=7,
                            limit_offsets=(5, 6, 7, 8), horizon=200)   # deep: never filled
    env = BatchedMarketEnv(config, n_envs=1, n_agents=1, seed=7)
    buy, sell = act(env, "buy"), act(env, "sell")
    market_buy, market_sell = act(env, "market_buy"), act(env, "market_sell")
    for action, position, orders, limited in (
            (buy, 0, 1, 0.0),               # 5 lots resting: 2 left to buy
            (market_buy, 2, 1, 0.6),        # 5 wanted, 2 bought: 3 / 5 cut
            (buy, 2, 1, 1.0),               # no room: refused, the order kept
            (sell, 2, 2, 0.0),              # selling room: 7 + 2 lots
            (market_sell, -2, 2, 0.2),      # 9 - 5 resting: 4 sold, 1 / 5 cut
            (market_sell, -2, 2, 1.0),      # 2 short + 5 resting = 7: refused
            (act(env, "hold"), -2, 2, 0.0)):
        obs, *_ = env.step([action])
        row = obs[0]
        assert env.accounts()["position"][0, 0] == position
        assert row[column(env, "inventory")] == np.float32(position / 7)
        assert row[column(env, "orders")] == orders / config.max_orders
        assert row[column(env, "limited")] == np.float32(limited)


def test_the_position_limit_holds_on_the_account_after_every_step() -> None:
    """``side x position + open lots of that side <= position_limit`` for the real
    account (docs/envs.md, "Limits"); with no latency nothing is in flight at a step's
    end, so the open lots are the agent's orders resting in the book. Two resting buys
    fill the limit; a third replaces the oldest, whose lots must not be reused: the
    background's decisions that arrive first in the step may fill it before its cancel
    arrives (before cad5eff this reached a position of 15 against a limit of 10)."""
    config = CONFIG.replace(horizon=10_000, size_classes=(1.0,), base_qty=5,
                            base_position_limit=10, max_orders=2, limit_offsets=(-1, 0, 0, 0))
    env = BatchedMarketEnv(config, n_envs=64, n_agents=1, seed=1)
    books, first = env.kernel.books, env.market.n_traders
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.step(rng.choice([act(env, "buy", 0), act(env, "buy", 1), act(env, "cancel"),
                             act(env, "hold")], p=[1 / 3, 1 / 3, 1 / 6, 1 / 6], size=64))
        arena = books.order_array
        mine = (arena["state"] == 1) & (arena["owner"] == first)
        for side in (1, -1):
            open_lots = np.bincount(arena["book"][mine & (arena["side"] == side)],
                                    weights=arena["qty"][mine & (arena["side"] == side)],
                                    minlength=64)
            exposure = side * env.accounts()["position"].ravel() + open_lots
            assert exposure.max() <= 10, f"side {side}: {exposure.max():g} lots against 10"


def test_an_unchanged_quote_within_the_limit_is_kept() -> None:
    """A quote whose price is unchanged keeps its order and its queue position (docs/envs.md,
    "Action spaces") as long as it fits the limit: 0 + 4 lots <= 6."""
    config = CONFIG.replace(action_mode="market_making", size_classes=(1.0,),
                            base_position_limit=6, horizon=200)
    env = BatchedMarketEnv(config, n_envs=1, n_agents=1, seed=3)
    no_quote, size_4 = len(config.quote_offsets), config.quote_sizes.index(4.0)
    quote = [[3, no_quote, size_4]]                 # a 4-lot bid 4 ticks back, no ask
    obs, *_ = env.step(quote)
    first = int(env.kernel.agent_arrays["slot_id"][0, 0])
    assert env.kernel.books.order(0, first)["qty"] == 4
    for _ in range(3):
        obs, *_ = env.step(quote)
        assert env.accounts()["position"][0, 0] == 0
        assert obs[0, column(env, "limited")] == 0.0
        assert int(env.kernel.agent_arrays["slot_id"][0, 0]) == first


def test_orders_in_flight_count_against_the_limit_until_they_arrive() -> None:
    """With a latency of 2.5 steps an order sent in step t arrives in step t + 2 or t + 3:
    until then it is ``in_flight``, not ``orders``, and its lots already count against the
    limit (a market order's until it is filled)."""
    config = CONFIG.replace(size_classes=(1.0,), base_qty=5, base_position_limit=7,
                            limit_offsets=(5, 6, 7, 8), horizon=200, latency_ns=250_000_000)
    env = BatchedMarketEnv(config, n_envs=1, n_agents=1, seed=7)
    assert env.market.config.dt_ns == 100_000_000
    hold = act(env, "hold")
    seen = []
    for action in (act(env, "buy"), act(env, "market_buy"), act(env, "market_buy"), hold,
                   hold, hold):
        obs, *_ = env.step([action])
        seen.append((obs[0, column(env, "in_flight")] * config.max_orders,
                     obs[0, column(env, "orders")] * config.max_orders,
                     obs[0, column(env, "limited")], env.accounts()["position"][0, 0]))
    in_flight, orders, limited, position = map(list, zip(*seen, strict=True))
    assert limited == [0.0, np.float32(0.6), 1.0, 0.0, 0.0, 0.0]
    assert in_flight[:2] == [1, 1] and orders[:2] == [0, 0] and position[:2] == [0, 0]
    assert in_flight[-1] == 0 and orders[-1] == 1 and position[-1] == 2
    arrived = in_flight.index(0)
    assert arrived in (2, 3) and orders[arrived] == 1     # rests from its arrival step on
    assert position.index(2) in (3, 4)                     # the market order sent at step 1


def liquidation_value(env: BatchedMarketEnv, e: int, i: int, position: int, *,
                      own: bool = False) -> tuple[float, int]:
    """What agent ``i`` of env ``e`` would get for ``position`` now (docs/envs.md,
    "Valuation"), read from the book's queues: sold into the bids (bought back from the
    asks, a negative value) tick by tick from the touch, the lots of the agent's own
    resting orders skipped (counted with ``own``), within ``scan_ticks`` of the touch and
    the dense window; lots left over valued ``scan_ticks`` beyond the touch; net of the
    taker fee. Returns the value and the lots left over."""
    if position == 0:
        return 0.0, 0
    books, cfg = env.kernel.books, env.config
    owner = env.market.n_traders + i
    side = 1 if position > 0 else -1                # the side the position trades against
    touch = books.best_bid(e) if side == 1 else books.best_ask(e)
    assert 0 < touch < 2**40, "a side is empty"     # the default market keeps both
    base = int(books.book_array[e]["base"])
    left, notional = abs(position), 0.0
    for ticks in range(cfg.scan_ticks + 1):
        price = touch - side * ticks
        if left == 0 or price < 1 or not 0 <= price - base < books.window:
            break
        queue = books.level_queue(e, side, price)
        lots = int(queue["qty"][(queue["owner"] != owner) | own].sum())
        notional += min(lots, left) * price
        left -= min(lots, left)
    notional += left * max(touch - side * cfg.scan_ticks, 0)
    return side * notional - notional * cfg.taker_fee_ppm * 1e-6, left


@pytest.mark.parametrize(("valuation", "end", "scan_ticks", "sizes", "latency_ns"), [
    ("liquidation", "liquidate", 64, (2.0, 1.0), 0),
    ("liquidation", "carry", 64, (6.0, 1.0), 0),
    ("liquidation", "carry", 1, (6.0, 1.0), 0),    # positions larger than the levels scanned
    ("mid", "carry", 64, (2.0, 1.0), 0),
    ("liquidation", "liquidate", 64, (2.0, 1.0), 150_000_000),     # orders in flight
    ("liquidation", "carry", 64, (6.0, 1.0), 150_000_000),  # cancels in flight: ghosts
])
def test_reward_is_the_change_of_the_account_value_per_lot(
        valuation: str, end: str, scan_ticks: int, sizes: tuple[float, float],
        latency_ns: int) -> None:
    """``R_t = (V_t - V_{t-1}) / order_qty``, ``V_t = (cash_t - cash_0) + value(position_t)
    - value(position_0)`` on the real account, the value recomputed from the book (the
    liquidation walk above, or position x mid); ``pnl`` observes ``V_t / order_qty /
    price_scale``. A new episode's baseline is the account at its start: a carried
    position is valued there, never hidden."""
    config = CONFIG.replace(horizon=15, size_classes=sizes, valuation=valuation,
                            end_of_episode=end, scan_ticks=scan_ticks, latency_ns=latency_ns,
                            latency_jitter_ns=latency_ns // 2)
    env = BatchedMarketEnv(config, n_envs=2, n_agents=2, seed=6)
    books, q = env.kernel.books, env.order_qty

    def values(own: bool = False) -> tuple[np.ndarray, int]:
        out, beyond = np.zeros(4), 0
        for row, position in enumerate(env.accounts()["position"].ravel()):
            e, i = divmod(row, 2)
            if valuation == "mid":
                out[row] = position * 0.5 * (books.best_bid(e) + books.best_ask(e))
            else:
                out[row], lots = liquidation_value(env, e, i, int(position), own=own)
                beyond += lots
        return out, beyond

    base_cash = env.accounts()["cash"].ravel().copy()
    base_value = values()[0]
    previous = np.zeros(4)
    rng = np.random.default_rng(0)
    choices = [act(env, name, offset) for name, offset in (
        ("market_buy", 0), ("market_sell", 0), ("buy", 0), ("buy", 1), ("sell", 1),
        ("hold", 0))]
    excluded = beyond = carried = 0
    for _ in range(45):
        # the last step of an episode withdraws the agents' orders first, so that the
        # book after the step is the book the kernel valued
        last = env.episode_step[0] == config.horizon - 1
        actions = np.full(4, act(env, "cancel")) if last else rng.choice(choices, 4)
        obs, rewards, terminated, _ = env.step(actions)
        value, lots = values()
        beyond += lots
        excluded += int(np.sum(value != values(own=True)[0]))
        pnl = (env.accounts()["cash"].ravel() - base_cash).astype(np.float64) + value \
            - base_value
        np.testing.assert_allclose(rewards, (pnl - previous) / q, rtol=1e-6, atol=1e-5)
        rows = env.final_observations if terminated[0] else obs
        np.testing.assert_allclose(rows[:, column(env, "pnl")],
                                   pnl / q / config.pnl_scale, rtol=1e-6, atol=1e-6)
        previous = pnl
        if terminated[0]:
            assert terminated.all()
            base_cash = env.accounts()["cash"].ravel().copy()
            base_value = value
            previous = np.zeros(4)
            carried += int(np.count_nonzero(env.accounts()["position"]))
            assert np.all(obs[:, column(env, "pnl")] == 0.0)
    if valuation == "liquidation":
        assert excluded > 0             # the agent's own orders made a difference
    if scan_ticks == 1:
        assert beyond > 0               # lots valued scan_ticks beyond the touch
    assert (carried > 0) == (end == "carry")


@pytest.mark.parametrize("end", ["carry", "liquidate"])
def test_inventory_penalties_are_exactly_the_difference_of_rewards(end: str) -> None:
    """Two envs seeded alike, one with penalties: the markets and observations are the
    same, and the rewards differ by ``running x (position / order_qty)^2`` every step plus
    ``terminal x (position / order_qty)^2`` at an episode's last step, with the account's
    position after the step (after the liquidation, with ``"liquidate"``)."""
    running, terminal = 0.5, 3.0
    config = CONFIG.replace(horizon=10, size_classes=(1.0, 4.0), end_of_episode=end)
    plain = BatchedMarketEnv(config, n_envs=2, n_agents=2, seed=8)
    penal = BatchedMarketEnv(config.replace(running_inventory_penalty=running,
                                            terminal_inventory_penalty=terminal),
                             n_envs=2, n_agents=2, seed=8)
    rng = np.random.default_rng(1)
    charged = np.zeros(2)
    buy, sell = act(plain, "market_buy"), act(plain, "market_sell")
    for _ in range(30):
        actions = rng.choice([buy, buy, sell, 0, 1, 5], 4)
        obs, r_plain, done, _ = plain.step(actions)
        obs_penal, r_penal, *_ = penal.step(actions)
        np.testing.assert_array_equal(obs, obs_penal)
        x = penal.accounts()["position"].ravel() / penal.order_qty
        np.testing.assert_array_equal(x, plain.accounts()["position"].ravel() / plain.order_qty)
        expected = running * x**2 + np.where(done, terminal * x**2, 0.0)
        np.testing.assert_allclose(r_plain.astype(np.float64) - r_penal, expected,
                                   rtol=1e-5, atol=1e-5)
        charged += [np.sum(running * x**2), np.sum(np.where(done, terminal * x**2, 0.0))]
    assert charged[0] > 0
    assert (charged[1] > 0) == (end == "carry")     # liquidated positions cost nothing


def test_differential_sharpe_reward_follows_moody_and_saffell() -> None:
    """D_t = (B dA - A dB / 2) / (B - A^2)^(3/2) over the PnL rewards R_t, with A, B the
    EMAs (rate eta) of R and R^2 before the update; 0 while the variance is 0."""
    eta = 0.1
    plain = BatchedMarketEnv(CONFIG.replace(horizon=500), n_envs=2, n_agents=2, seed=9)
    sharpe = BatchedMarketEnv(CONFIG.replace(horizon=500, reward="sharpe", sharpe_eta=eta),
                              n_envs=2, n_agents=2, seed=9)
    rng = np.random.default_rng(2)
    a = np.zeros(4)
    b = np.zeros(4)
    nonzero = 0
    for _ in range(60):
        actions = rng.integers(0, plain.single_action_space.n, 4)
        _, r, *_ = plain.step(actions)
        _, d, *_ = sharpe.step(actions)
        r = r.astype(np.float64)
        da, db, var = r - a, r * r - b, b - a * a
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = np.where(var > 1e-12, (b * da - 0.5 * a * db) / var ** 1.5, 0.0)
        np.testing.assert_allclose(d, expected, rtol=2e-3, atol=1e-4)
        nonzero += int(np.count_nonzero(d))
        a, b = a + eta * da, b + eta * db
    assert nonzero > 20


def test_market_making_quotes_keep_priority_and_withdraw() -> None:
    env = BatchedMarketEnv(CONFIG.replace(action_mode="market_making"), n_envs=1, n_agents=1,
                           seed=10)
    assert env.single_action_space.nvec.tolist() == [5, 5, 3]
    env.step([[3, 3, 0]])                               # 4 ticks behind each touch
    ids = env.kernel.agent_arrays["slot_id"][0, :2].copy()
    assert np.all(ids > 0)
    books = env.kernel.books
    touch = books.best_bid(0), books.best_ask(0)
    assert [books.order(0, int(i))["price"] for i in ids] == [touch[0] - 4, touch[1] + 4]
    env.step([[3, 3, 0]])                               # same prices: quotes stay in place
    assert (books.best_bid(0), books.best_ask(0)) == touch
    assert env.kernel.agent_arrays["slot_id"][0, :2].tolist() == ids.tolist()
    env.step([[0, 0, 1]])                               # at the touch, twice the size
    moved = env.kernel.agent_arrays["slot_id"][0, :2]
    assert np.all(moved != ids) and all(books.order(0, int(i)) is None for i in ids)
    assert [books.order(0, int(i))["qty"] for i in moved] == [2 * env.order_qty[0]] * 2
    ids = moved.copy()
    obs, *_ = env.step([[4, 4, 0]])                     # index n_quotes: no quote
    assert obs[0, column(env, "orders")] == 0.0
    assert all(books.order(0, int(i)) is None for i in ids)


# ---- market share ---------------------------------------------------------------------------

def test_size_classes_are_heavy_tailed_and_scale_orders() -> None:
    env = BatchedMarketEnv(CONFIG.replace(size_alpha=1.2, size_max=1000.0), n_envs=64,
                           n_agents=32, seed=11)
    s = env.size_class
    assert s.min() >= 1.0 and np.median(s) < 2.0 and s.max() > 50.0
    np.testing.assert_array_equal(env.order_qty, np.maximum(1, np.rint(s)))
    assert np.all(env.position_limit >= env.order_qty)
    np.testing.assert_allclose(env.observations[:, column(env, "log_size_class")], np.log(s),
                               rtol=1e-6)


def test_larger_agents_move_prices_more() -> None:
    moves = {}
    for size in (1.0, 25.0):
        config = CONFIG.replace(size_classes=(size,), horizon=500)
        env = BatchedMarketEnv(config, n_envs=16, n_agents=1, seed=12)
        books = env.kernel.books
        before = np.array([books.best_bid(e) + books.best_ask(e) for e in range(16)]) / 2
        for _ in range(5):
            env.step([act(env, "market_buy")] * 16)
        after = np.array([books.best_bid(e) + books.best_ask(e) for e in range(16)]) / 2
        moves[size] = float(np.mean(after - before))
    assert moves[25.0] > moves[1.0] + 1.0


# ---- episodes ---------------------------------------------------------------------------------

def test_horizon_terminates_and_resets_in_the_same_step() -> None:
    """With ``"carry"`` the account is never reset: the next episode's first observation
    shows the position it carries, with its own clock and a PnL of 0."""
    env = BatchedMarketEnv(CONFIG.replace(horizon=10, end_of_episode="carry"), n_envs=2,
                           n_agents=2, seed=13)
    for step in range(1, 11):
        action = act(env, "market_buy") if step < 10 else act(env, "buy", offset=3)
        obs, _, terminated, truncated = env.step([action] * 4)
        assert terminated.all() == (step == 10) and not truncated.any()
    inventory = env.accounts()["position"].ravel() / env.position_limit
    assert np.all(inventory > 0)
    final = env.final_observations
    assert np.all(final[:, column(env, "time_left")] == 0.0)
    # the last step's orders were withdrawn before its observation (so that a carried
    # position's final value is the next episode's baseline, exactly)
    assert np.all(final[:, column(env, "orders")] == 0.0)
    np.testing.assert_array_equal(final[:, column(env, "inventory")],
                                  inventory.astype(np.float32))
    assert np.all(obs[:, column(env, "time_left")] == 1.0)
    np.testing.assert_array_equal(obs[:, column(env, "inventory")], inventory.astype(np.float32))
    assert np.all(obs[:, column(env, "pnl")] == 0.0)
    assert np.all(obs[:, column(env, "orders")] == 0.0)     # withdrawn at the episode's end
    arena = env.kernel.books.order_array
    assert not np.any((arena["state"] == 1) & (arena["owner"] >= env.market.n_traders))
    assert env.episode_step.tolist() == [0, 0]


def test_liquidation_flattens_the_position_at_the_end() -> None:
    env = BatchedMarketEnv(CONFIG.replace(horizon=5, end_of_episode="liquidate"), n_envs=2,
                           n_agents=2, seed=14)
    start = env.accounts()["position"]
    for _ in range(5):
        env.step([act(env, "market_buy")] * 4)
    np.testing.assert_array_equal(env.accounts()["position"], start)
    assert np.all(env.final_observations[:, column(env, "inventory")] == 0.0)


def test_same_seed_is_bit_identical_and_reset_seed_replays() -> None:
    config = CONFIG.replace(horizon=30, reward="sharpe", end_of_episode="liquidate")
    a = BatchedMarketEnv(config, n_envs=3, n_agents=4, seed=21)
    b = BatchedMarketEnv(config, n_envs=3, n_agents=4, seed=21)
    first = rollout(a, 70)
    assert identical(first, rollout(b, 70))
    a.reset(seed=21)
    assert identical(first, rollout(a, 70))
    c = BatchedMarketEnv(config, n_envs=3, n_agents=4, seed=22)
    assert not identical(first, rollout(c, 70))


def test_books_stay_consistent() -> None:
    env = BatchedMarketEnv(CONFIG.replace(horizon=25, end_of_episode="liquidate"), n_envs=4,
                           n_agents=8, seed=15)
    rollout(env, 60)
    books = env.kernel.books
    books.check_integrity()
    assert np.all(books.account_array["position"][:4].sum(axis=1) == 0)


# ---- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize("actions, error, match", [
    (np.full(4, 12), ValueError, "agent 0 is 12, outside Discrete"),
    (np.array([0, 0, -1, 0]), ValueError, "agent 2"),
    (np.array([0.0, np.nan, 0.0, 0.0]), ValueError, "agent 1 are NaN"),
    (np.array([0.0, 0.5, 0.0, 0.0]), ValueError, "not whole numbers"),
    (np.zeros(5, dtype=np.int64), ValueError, "shape"),
    (np.array(["a"] * 4), TypeError, "integers"),
])
def test_bad_actions_raise(actions: np.ndarray, error: type, match: str) -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=2, seed=0)
    with pytest.raises(error, match=match):
        env.step(actions)


def test_bad_actions_leave_the_action_buffer_and_the_books_as_they_were() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=2, seed=0)
    env.step(np.array([1, 2, 3, 4]))
    before = env.kernel.books.order_array.copy()
    for bad in (np.array([1, 2, 3, 12]), np.array([[1, 2], [-5, 4]]),
                np.array([1, 2, 3, 99], dtype=np.int32)):
        with pytest.raises(ValueError, match="outside Discrete"):
            env.step(bad)
        assert env.actions.tolist() == [1, 2, 3, 4]
    assert np.array_equal(env.kernel.books.order_array, before)


def test_copy_actions_checks_each_column_against_its_bound() -> None:
    out = np.zeros((3, 3), dtype=np.int64)
    high = np.array([5, 5, 3], dtype=np.int64)
    good = np.array([[0, 4, 2], [4, 0, 0], [1, 1, 1]], dtype=np.int64)
    assert copy_actions(good, out, high) == -1 and np.array_equal(out, good)
    bad = good.copy()
    bad[1, 2] = 3                                   # within column 0's bound, not column 2's
    bad[2, 0] = -1
    assert copy_actions(bad, out, high) == 1 and np.array_equal(out, good)
    with pytest.raises(ValueError, match="int64"):
        copy_actions(good.astype(np.int32), out, high)
    with pytest.raises(ValueError, match="int64"):
        copy_actions(good[:2], out, high)


def test_bad_market_making_actions_raise() -> None:
    env = BatchedMarketEnv(CONFIG.replace(action_mode="market_making"), n_envs=1, n_agents=2)
    with pytest.raises(ValueError, match="agent 1"):
        env.step([[0, 0, 0], [0, 5, 0]])
    with pytest.raises(ValueError, match="shape"):
        env.step([0, 0])
    env.step(np.zeros((1, 2, 3), dtype=np.int32))       # (n_envs, n_agents, 3) is fine


@pytest.mark.parametrize("change, match", [
    (dict(horizon=0), "horizon"), (dict(action_mode="x"), "action_mode"),
    (dict(reward="x"), "reward"), (dict(max_orders=1), "max_orders"),
    (dict(quote_sizes=(1.0, float("nan"))), "quote_sizes"),
    (dict(limit_offsets=tuple(range(9))), "limit_offsets"), (dict(end_of_episode="x"), "end"),
])
def test_bad_config_raises(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EnvConfig(**change)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="n_agents"):
        BatchedMarketEnv(CONFIG, n_envs=1, n_agents=0)
    with pytest.raises(TypeError, match="EnvConfig"):
        BatchedMarketEnv({"horizon": 5})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size_classes"):
        BatchedMarketEnv(CONFIG.replace(size_classes=(1.0, 2.0)), n_agents=3)


@pytest.mark.parametrize("hold", [0.0, 0.8])
def test_order_observations_match_the_arena_every_step(hold: float) -> None:
    """The kernel caches slots between trades and queue positions while their level
    loses no order: its counts and queue positions must equal a recomputation from the
    core's order arena after every step, also when most agents hold (most are cached)."""
    env = BatchedMarketEnv(CONFIG.replace(horizon=25, limit_offsets=(-1, 0, 0, 1)),
                           n_envs=2, n_agents=6, seed=16)
    books, first = env.kernel.books, env.market.n_traders
    rng = np.random.default_rng(3)
    for _ in range(60 if hold == 0.0 else 150):
        actions = rng.choice([1, 2, 3, 5, 6, 7, 9, 10, 11, 0, 0], size=12)
        actions[rng.random(12) < hold] = 0
        obs, *_ = env.step(actions)
        arena = books.order_array
        for e in range(2):
            bid, ask = books.best_bid(e), books.best_ask(e)
            for i in range(6):
                mine = arena[(arena["state"] == 1) & (arena["book"] == e)
                             & (arena["owner"] == first + i)]
                row = obs[e * 6 + i]
                assert row[column(env, "orders")] == len(mine) / env.config.max_orders
                if not len(mine):
                    assert row[column(env, "queue_ahead")] == -1
                    continue
                distance = np.where(mine["side"] == 1, bid - mine["price"], mine["price"] - ask)
                aheads = []                               # of every order at the least distance
                for order in mine[distance == distance.min()]:
                    queue = books.level_queue(e, int(order["side"]), int(order["price"]))
                    ids = list(queue["order_id"])
                    aheads.append(np.float32(queue["qty"][: ids.index(order["order_id"])].sum()
                                             / 10))
                assert row[column(env, "queue_ahead")] in aheads


def reference_levels(env: BatchedMarketEnv, e: int) -> np.ndarray:
    """The book part of the observation's level features, walked tick by tick from each
    best price over the dense levels, prices relative to the mid in units of
    ``price_scale``, sizes in units of ``qty_scale`` (the definition in docs/envs.md)."""
    books, cfg = env.kernel.books, env.config
    book, levels = books.book_array[e], books.level_array[e]
    out = np.zeros(4 * cfg.depth, dtype=np.float32)
    bid, ask = int(book["best_bid"]), int(book["best_ask"])
    mid = 0.5 * (bid + ask)
    for side_i, (start, step) in enumerate(((bid, -1), (ask, 1))):
        found = 0
        for ticks in range(cfg.scan_ticks + 1):
            price = start + step * ticks
            idx = price - int(book["base"])
            if found == cfg.depth or price < 1 or not 0 <= idx < len(levels):
                break
            if levels[idx]["count"] > 0:
                out[2 * cfg.depth * side_i + found] = (price - mid) / cfg.price_scale
                out[2 * cfg.depth * side_i + cfg.depth + found] = levels[idx]["qty"] / cfg.qty_scale
                found += 1
    return out


@pytest.mark.parametrize(("depth", "scan_ticks"), [(1, 1), (5, 1), (5, 3), (10, 64), (8, 200)])
def test_level_features_match_a_tick_by_tick_walk(depth: int, scan_ticks: int) -> None:
    """Every step, every book: the bitmap search of the kernel gives the levels a walk
    tick by tick gives, including sparse books where ``scan_ticks`` cuts the search and
    searches that would leave the dense window."""
    config = EnvConfig(depth=depth, scan_ticks=scan_ticks, horizon=40, price_scale=4.0,
                       qty_scale=2.5)
    env = BatchedMarketEnv(config, n_envs=6, n_agents=3, seed=5)
    rng = np.random.default_rng(2)
    for _ in range(60):
        obs, *_ = env.step(rng.integers(0, env.single_action_space.n, env.num_agents_total))
        for e in range(env.n_envs):
            if env.terminated[e * env.n_agents]:
                continue            # the row already holds the next episode's first one
            np.testing.assert_array_equal(obs[e * env.n_agents, :4 * depth],
                                          reference_levels(env, e))
