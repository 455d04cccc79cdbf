"""Lots queued ahead of agents' orders deep in long queues: hundreds of agents in one book
make levels of hundreds of orders, where the kernel walks whole levels (several at once,
each from both ends) instead of each agent's own neighbourhood. Every agent's
``queue_ahead`` must equal a recomputation from the core's queues after every step."""

from __future__ import annotations

import numpy as np

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names


def test_queue_ahead_deep_in_long_queues_matches_the_book() -> None:
    n_agents = 400
    config = EnvConfig(horizon=1_000, limit_offsets=(0, 0, 1, 2))
    env = BatchedMarketEnv(config, n_envs=1, n_agents=n_agents, seed=9)
    books, first = env.kernel.books, env.market.n_traders
    column = observation_names(config.depth).index("queue_ahead")
    orders_column = observation_names(config.depth).index("orders")
    rng = np.random.default_rng(5)
    deepest = 0
    for _ in range(40):
        actions = rng.choice([1, 2, 3, 5, 6, 7, 9, 10, 0, 0], size=n_agents)
        obs, *_ = env.step(actions)
        arena = books.order_array
        bid, ask = books.best_bid(0), books.best_ask(0)
        live = arena[(arena["state"] == 1) & (arena["book"] == 0)]
        queues: dict[tuple[int, int], tuple[list[int], np.ndarray]] = {}
        for i in range(n_agents):
            mine = live[live["owner"] == first + i]
            assert obs[i, orders_column] == len(mine) / config.max_orders
            if not len(mine):
                assert obs[i, column] == -1
                continue
            distance = np.where(mine["side"] == 1, bid - mine["price"], mine["price"] - ask)
            aheads = []                               # of every order at the least distance
            for order in mine[distance == distance.min()]:
                key = (int(order["side"]), int(order["price"]))
                if key not in queues:
                    queue = books.level_queue(0, *key)
                    queues[key] = (list(queue["order_id"]), np.cumsum(queue["qty"]))
                ids, lots = queues[key]
                position = ids.index(order["order_id"])
                deepest = max(deepest, position)
                aheads.append(np.float32((lots[position - 1] if position else 0)
                                         / config.qty_scale))
            assert obs[i, column] in aheads
    assert deepest > 100                              # long queues were walked
