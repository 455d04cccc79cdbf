"""The order-level action mode: (op, price offset, size, time in force, slot) becomes
exactly the core messages a caller would send by hand, and the core treats them as it
treats any order (IOC never rests, post-only never crosses, FOK all or nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader._env import OrderOp
from rltrader.core.constants import CANCEL, GTC, IOC, LIMIT, POST_ONLY, REPLACE
from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names

CONFIG = EnvConfig(action_mode="order", horizon=100_000, warmup_steps=60,
                   size_classes=(1.0, 3.0))


def random_actions(env: BatchedMarketEnv, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.integers(0, h, env.num_agents_total) for h in env.action_high],
                    axis=1)


def expected_messages(env: BatchedMarketEnv, actions: np.ndarray) -> list[list[tuple]]:
    """Per agent, the messages its action must produce, derived from the book and the
    agent's slots before the step (no latency: all reach the book in this step): a new
    order cancels its slot's order first; a replace keeps the side; the lots are cut to
    the limit on the real account (position plus open orders of that side)."""
    c, books = env.config, env.kernel.books
    arrays = env.kernel.agent_arrays
    out = []
    position = env.accounts()["position"].ravel()
    for row, (op, offset, size, tif, slot) in enumerate(actions):
        e, i = divmod(row, env.n_agents)
        k = slot
        order_id = int(arrays["slot_id"][row, k])
        msgs: list[tuple] = []
        out.append(msgs)
        if op == OrderOp.ORDER_HOLD:
            continue
        if op == OrderOp.ORDER_CANCEL:
            if order_id:
                msgs.append((CANCEL, order_id))
            continue
        if op == OrderOp.ORDER_REPLACE:
            if not order_id:
                continue
            side = int(arrays["slot_side"][row, k])
        else:
            side = 1 if op == OrderOp.ORDER_BUY else -1
        lots = max(1, int(np.floor(c.quote_sizes[size] * env.order_qty[row] + 0.5)))
        room = (env.position_limit[row] - side * position[row]
                - arrays["resting"][row, 0 if side == 1 else 1])
        qty = min(lots, room)
        if qty <= 0:
            if op == OrderOp.ORDER_REPLACE:
                msgs.append((CANCEL, order_id))
            continue
        touch = books.best_bid(e) if side == 1 else books.best_ask(e)
        price = max(1, touch - side * c.order_offsets[offset])
        if op == OrderOp.ORDER_REPLACE:
            msgs.append((REPLACE, order_id, side, price, qty, tif))
        else:
            if order_id:
                msgs.append((CANCEL, order_id))
            msgs.append((LIMIT, side, price, qty, tif))
    return out


def sent_messages(env: BatchedMarketEnv, timestamp: int) -> list[list[tuple]]:
    """Per agent, its messages in the step's merged batch, in order."""
    batch = env.kernel.messages
    batch = batch[(batch["timestamp"] == timestamp) & (batch["owner"] >= env.market.n_traders)]
    out: list[list[tuple]] = [[] for _ in range(env.num_agents_total)]
    for m in batch:
        row = int(m["book"]) * env.n_agents + int(m["owner"]) - env.market.n_traders
        if m["op"] == CANCEL:
            out[row].append((CANCEL, int(m["order_id"])))
        elif m["op"] == REPLACE:
            out[row].append((REPLACE, int(m["order_id"]), int(m["side"]), int(m["price"]),
                             int(m["qty"]), int(m["tif"])))
        else:
            out[row].append((int(m["op"]), int(m["side"]), int(m["price"]), int(m["qty"]),
                             int(m["tif"])))
    return out


def test_actions_become_exactly_the_messages_a_caller_would_send() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=6, n_agents=2, seed=3)
    rng = np.random.default_rng(1)
    compared = 0
    for _ in range(150):
        actions = random_actions(env, rng)
        books = env.kernel.books
        if any(books.best_bid(e) <= 0 or books.best_ask(e) >= 2**40 for e in range(6)):
            env.step(np.zeros_like(actions))          # a side is empty: not this test's
            continue
        expected = expected_messages(env, actions)
        timestamp = env._timestamp()
        env.step(actions)
        assert sent_messages(env, timestamp) == expected
        compared += sum(len(m) for m in expected)
        books.check_integrity()
    assert compared > 500


def test_time_in_force_behaves_as_in_the_core() -> None:
    """From one book state: an IOC or FOK buy through the ask never rests; a post-only buy
    through the ask is rejected (never rests, never trades); a GTC buy below the bid
    rests at the price asked for."""
    through, behind = CONFIG.order_offsets.index(-2), CONFIG.order_offsets.index(2)
    for tif, offset, rests in ((IOC, through, False), (2, through, False),
                               (POST_ONLY, through, False), (GTC, behind, True)):
        env = BatchedMarketEnv(CONFIG.replace(size_classes=(1.0,)), n_envs=8, n_agents=1,
                               seed=5)
        books = env.kernel.books
        bids = np.array([books.best_bid(e) for e in range(8)])
        asks = np.array([books.best_ask(e) for e in range(8)])
        before = env.accounts()["position"].ravel().copy()
        action = np.array([[OrderOp.ORDER_BUY, offset, 0, tif, 0]] * 8)
        obs, *_ = env.step(action)
        resting = obs[:, observation_names(5, "order", 4).index("orders")] > 0
        bought = env.accounts()["position"].ravel() - before
        crossing = bids + 2 >= asks             # the price asked for reaches the ask
        assert crossing.sum() >= 4
        if rests:
            assert resting.all()
            prices = env.kernel.agent_arrays["slot_price"][:, 0]
            np.testing.assert_array_equal(prices, bids - 2)
            assert (bought == 0).all()
        elif tif == POST_ONLY:                  # rejected where it would cross, else rests
            assert (bought == 0).all()
            np.testing.assert_array_equal(resting, ~crossing)
        else:                                   # IOC, FOK: one lot taken where it crosses
            assert not resting.any()
            np.testing.assert_array_equal(bought, crossing.astype(np.int64))


def test_slot_features_show_the_agent_s_orders() -> None:
    env = BatchedMarketEnv(CONFIG.replace(size_classes=(1.0,)), n_envs=2, n_agents=1,
                           seed=2)
    names = observation_names(5, "order", 4)
    deep = CONFIG.order_offsets.index(4)
    obs, *_ = env.step(np.array([[OrderOp.ORDER_SELL, deep, 1, GTC, 2]] * 2))
    mid = env.kernel.book_arrays["mid"]
    price = env.kernel.agent_arrays["slot_price"][:, 2]
    np.testing.assert_allclose(obs[:, names.index("slot_2_price")],
                               ((price - mid) / CONFIG.price_scale).astype(np.float32))
    np.testing.assert_array_equal(obs[:, names.index("slot_2_qty")],
                                  np.float32(-2 / CONFIG.qty_scale))
    for other in (0, 1, 3):
        assert (obs[:, names.index(f"slot_{other}_qty")] == 0).all()
    obs, *_ = env.step(np.array([[OrderOp.ORDER_CANCEL, 0, 0, 0, 2]] * 2))
    assert (obs[:, names.index("slot_2_qty")] == 0).all()


@pytest.mark.parametrize("changes", [{}, {"latency_ns": 120_000_000, "end_of_episode": "carry"}])
def test_a_thousand_order_mode_steps_are_bit_identical(changes) -> None:
    def rollout() -> list[np.ndarray]:
        env = BatchedMarketEnv(CONFIG.replace(horizon=150, **changes), n_envs=3, n_agents=2,
                               seed=4)
        rng = np.random.default_rng(0)
        out = []
        for _ in range(1000):
            obs, rewards, *_ = env.step(random_actions(env, rng))
            out += [obs.copy(), rewards.copy()]
            assert np.all(np.abs(env.accounts()["position"].ravel()) <= env.position_limit)
        return out

    assert all(np.array_equal(a, b) for a, b in zip(rollout(), rollout(), strict=True))


def test_every_slot_shows_the_lots_queued_ahead_of_its_order() -> None:
    """``slot_j_queue``: the lots ahead of the slot's resting order in its level's FIFO,
    checked against the core's own queue (``Books.level_queue``) after random order-mode
    steps; -1 for an empty slot or an order in flight."""
    config = CONFIG.replace(latency_ns=60_000_000, size_classes=(1.0, 2.0, 5.0))  # some fly
    env = BatchedMarketEnv(config, n_envs=4, n_agents=3, seed=9)
    names = observation_names(5, "order", config.max_orders)
    rng = np.random.default_rng(1)
    books = env.kernel.books
    seen = {"resting": 0, "deep": 0, "flying": 0}
    for _ in range(300):
        actions = random_actions(env, rng)
        actions[:, 0] = np.where(rng.random(len(actions)) < 0.5, OrderOp.ORDER_HOLD,
                                 actions[:, 0])
        actions[:, 3] = GTC
        obs, *_ = env.step(actions)
        arrays = env.kernel.agent_arrays
        for row in range(env.num_agents_total):
            e = row // env.n_agents
            for j in range(config.max_orders):
                got = obs[row, names.index(f"slot_{j}_queue")]
                order_id = int(arrays["slot_id"][row, j])
                info = books.order(e, order_id) if order_id else None
                if info is None or arrays["slot_arena"][row, j] < 0:
                    assert got == -1.0
                    seen["flying"] += int(arrays["slot_arena"][row, j] == -2)
                    continue
                queue = books.level_queue(e, int(info["side"]), int(info["price"]))
                ids = queue["order_id"].tolist()
                ahead = int(queue["qty"][: ids.index(order_id)].sum())
                assert got == np.float32(ahead / config.qty_scale), (row, j)
                seen["resting"] += 1
                seen["deep"] += int(ahead > 0)
    assert seen["resting"] > 500 and seen["deep"] > 100 and seen["flying"] > 20, seen
