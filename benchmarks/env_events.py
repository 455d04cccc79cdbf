"""What the core's events of one batched-env step hold, for the question of issue 20, third
round: could the env keep its agents' queue positions from them instead of walking the
levels (docs/envs.md, "Issue 20, third round")?

    python benchmarks/env_events.py [--envs 1] [--agents 4096] [--steps 20] [--warm 100]

Workload as ``benchmarks/env_pair.py``: the default ``EnvConfig`` (``resilient``), random
discrete actions from ``numpy.random.default_rng(0)`` (16 arrays, cycled), ``seed=0``,
``--warm`` untimed steps. Then the flow is rebuilt from its state with recording on (the
same books, so the env's fused step runs through it and logs every message and event of
its merged batches), and ``--steps`` steps are logged. Prints per step: messages, events
by kind, cancels by whose order, agents with a nearest order in the book; and, for the
levels holding the most agents' nearest orders (book 0, the last steps), the orders
resting there, the agents' nearest orders there, fills, cancels and new orders accepted
at that price. Not a timing.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np

from rltrader._flow import Flow
from rltrader.core.constants import EventKind
from rltrader.envs import BatchedMarketEnv, EnvConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, default=1)
    ap.add_argument("--agents", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warm", type=int, default=100)
    ap.add_argument("--levels", type=int, default=6)
    args = ap.parse_args()
    env = BatchedMarketEnv(EnvConfig(), n_envs=args.envs, n_agents=args.agents, seed=0)
    rng = np.random.default_rng(0)
    high = np.asarray(env.action_high)
    actions = [rng.integers(0, high[0], env.num_agents_total) for _ in range(16)]
    for t in range(args.warm):
        env.step(actions[t % 16])
    state = env.market.flow.state()
    state["record"] = True
    flow = Flow.from_state(state)
    if flow.books is not env.market.flow.books:
        raise RuntimeError("the rebuilt flow does not share the env's books")
    env.market.flow = flow
    kernel = env.kernel
    first = env.market.n_traders            # the agents are owners first .. first + agents
    best = kernel.agent_arrays["best_slot"]
    totals = collections.Counter()
    per_level = []
    n_msgs = n_events = 0
    for t in range(args.steps):
        env.step(actions[t % 16])
        msgs = flow.message_log[n_msgs:]
        events = flow.event_log[n_events:]
        n_msgs += len(msgs)
        n_events += len(events)
        kind = events["kind"]
        totals["messages"] += len(msgs)
        totals["events"] += len(events)
        for k in (EventKind.ACCEPTED, EventKind.FILL, EventKind.CANCELLED, EventKind.REJECTED):
            totals[k.name] += int((kind == k).sum())
        cancels = events[kind == EventKind.CANCELLED]
        agents = (cancels["owner"] >= first) & (cancels["owner"] < first + args.agents)
        totals["cancels of agents' orders"] += int(agents.sum())
        totals["cancels of other orders"] += int((~agents).sum())
        held = best[best >= 0]
        totals["agents with a nearest order"] += len(held)
        if t >= args.steps - 3:
            orders = flow.books.order_array     # read now: a growing arena replaces it
            book0 = held[orders["book"][held] == 0]
            count = collections.Counter(orders["price"][book0].tolist())
            fills = events[(kind == EventKind.FILL) & (events["book"] == 0)]
            cancelled = cancels[cancels["book"] == 0]
            accepted = events[(kind == EventKind.ACCEPTED) & (events["book"] == 0)]
            base = int(flow.books.book_array["base"][0])
            levels = flow.books.level_array[0]
            per_level.append([(price, int(levels["count"][price - base])
                               if 0 <= price - base < levels.shape[0] else -1, n,
                               int((fills["price"] == price).sum()),
                               int((cancelled["price"] == price).sum()),
                               int((accepted["price"] == price).sum()))
                              for price, n in count.most_common(args.levels)])
    print(f"{args.envs} x {args.agents}, per step over {args.steps} steps "
          f"(after {args.warm}):")
    for name, value in totals.items():
        print(f"  {name}: {value / args.steps:,.1f}")
    print("book 0, the levels with most agents' nearest orders (price: orders resting, "
          "agents' nearest orders, fills, cancels, accepted there), last steps:")
    for row in per_level:
        print("  " + "; ".join(f"{p}: {o}, {n}, {f}, {c}, {a}" for p, o, n, f, c, a in row))


if __name__ == "__main__":
    main()
