"""The core's look-ahead in the background flow's batches (``Flow.look_ahead``), A/B in
one process: the batched env at 1,024 x 4 (its merged batches run through the flow's
core call), its background alone (a ``Market`` of the env's config) and, with
``--one-book``, the env at 1 x 4,096.

    python benchmarks/flow_look_ahead.py [--values 4,8] [--rounds 30] [--steps 20]
                                         [--one-book]

Every value runs on the same objects, round after round, alternating the order, so that
each sees the same memory and the same machine state: between two processes of one build
the step time differs by 1-3 % by where each got its memory, as much as the effect.
The knob changes no output (``tests/test_flow_digest.py``). Times are thread CPU time per
book-step. Prints, per workload and value, the median, its ratio to the first value's
median and the median over pairs of consecutive rounds (one in each order) of the
geometric-mean ratio.

Workload: the default ``EnvConfig`` (``resilient``, discrete actions), uniformly random
actions (16 arrays drawn once from a fixed generator, cycled) after 100 untimed steps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _env(n_envs: int, n_agents: int) -> list[Any]:
    from rltrader.envs import BatchedMarketEnv

    env = BatchedMarketEnv(n_envs=n_envs, n_agents=n_agents, seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, env.single_action_space.n, env.num_agents_total)
               for _ in range(16)]
    for t in range(100):
        env.step(actions[t % 16])
    return [env, actions, 100]


def run(values: list[int], rounds: int, steps: int, one_book: bool) -> None:
    from rltrader.sim import Market

    envs = {"env 1,024 x 4": _env(1024, 4)}
    if one_book:
        envs["env 1 x 4,096"] = _env(1, 4096)
    background = Market(envs["env 1,024 x 4"][0].market.config, seed=0).flow
    background.run(100)
    cases = [*envs, "background 1,024"]
    times: dict[tuple[str, int], list[float]] = {(c, v): [] for c in cases for v in values}
    for r in range(rounds + 1):
        for case in cases:
            for v in (values if r % 2 == 0 else values[::-1]):
                if case.startswith("background"):
                    background.look_ahead = v
                    start = time.thread_time_ns()
                    background.run(steps)
                    spent = (time.thread_time_ns() - start) / steps / 1024
                else:
                    entry = envs[case]
                    env, actions, t = entry
                    env.market.flow.look_ahead = v
                    start = time.thread_time_ns()
                    for k in range(steps):
                        env.step(actions[(t + k) % 16])
                    spent = (time.thread_time_ns() - start) / steps / env.n_envs
                    entry[2] = t + steps
                if r:                   # round 0 warms up
                    times[(case, v)].append(spent)
    print(f"{rounds} rounds of {steps} steps, thread CPU time, ns per book-step")
    for case in cases:
        base = times[(case, values[0])]
        for v in values:
            x = times[(case, v)]
            paired = [(a1 * a2 / (b1 * b2)) ** 0.5 for a1, a2, b1, b2
                      in zip(x[0::2], x[1::2], base[0::2], base[1::2], strict=False)]
            print(f"  {case:17s} look_ahead {v:2d}: {statistics.median(x):10.1f}  "
                  f"/ first {statistics.median(x) / statistics.median(base):.3f}  "
                  f"paired {statistics.median(paired):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--values", default="4,8",
                        help="comma-separated look-ahead distances, the first the reference")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--one-book", action="store_true", help="also the env at 1 x 4,096")
    args = parser.parse_args(argv)
    values = [int(v) for v in args.values.split(",")]
    if args.rounds < 2 or args.steps < 1 or not values:
        parser.error("--rounds must be >= 2, --steps >= 1, --values not empty")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rltrader.tools.bench import machine

    print("machine:", machine())
    run(values, args.rounds, args.steps, args.one_book)
    return 0


if __name__ == "__main__":
    sys.exit(main())
