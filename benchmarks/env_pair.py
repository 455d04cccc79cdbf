"""Paired A/B runs of the batched env's step from two checkouts: ns per book-step and
agent-steps per second at 1,024 markets x 4 agents and 1 market x 4,096 agents.

    python benchmarks/env_pair.py A_DIR B_DIR [--pairs 31] [--steps 10]
                                  [--shapes 1024x4,1x4096] [--mode discrete]

Workload, as ``rltrader bench`` and ``benchmarks/test_bench_env.py`` run it: the default
``EnvConfig`` (``resilient`` background), ``BatchedMarketEnv(n_envs, n_agents, seed=0)``,
uniformly random actions of its space (16 arrays drawn once from
``numpy.random.default_rng(0)``, cycled), 100 untimed steps. Each checkout (its compiled
modules built in place) runs in a process of its own that builds every shape once; then,
pair after pair, the two processes step each shape ``--steps`` steps in turn, alternating
which goes first (``_pairing.alternate``; pair 0 warms up and is not counted). An env
goes on from where its last round left it, so that the two checkouts step the same
states when their outputs are bit-identical (the worker reports a digest of its
observations and rewards with every answer, and the pairing stops when they differ).
Times are the thread's CPU time (``time.thread_time_ns``): on a VM shared with other
jobs, wall time also counts the time the thread waits for a core; CPU time does not
(cache sharing still moves it). Pin with ``taskset -c 1`` to keep both on one core.

Prints each checkout's median ns per book-step (a step's time over its books) and
agent-steps per second per shape, and the median of the per-pair ratios B/A of the step
time with its interquartile range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import textwrap
from pathlib import Path

from _pairing import offered_cases

_CHILD = """
import hashlib, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import rltrader
from rltrader.envs import BatchedMarketEnv, EnvConfig

assert rltrader.__file__.startswith(sys.argv[1]), rltrader.__file__
envs = {{}}
for shape in {shapes}:
    n_envs, n_agents = (int(x) for x in shape.split("x"))
    env = BatchedMarketEnv(EnvConfig(action_mode="{mode}"), n_envs=n_envs,
                           n_agents=n_agents, seed=0)
    rng = np.random.default_rng(0)
    high = np.asarray(env.action_high)
    actions = [np.stack([rng.integers(0, h, env.num_agents_total) for h in high], axis=1)
               for _ in range(16)]
    actions = [a[:, 0].copy() if high.size == 1 else a for a in actions]
    for t in range(100):
        env.step(actions[t % 16])
    envs[shape] = [env, actions, 100]
print(" ".join(envs), flush=True)
for line in sys.stdin:
    env, actions, t = envs[line.strip()]
    step = env.step
    start = time.thread_time_ns()
    for k in range(t, t + {steps}):
        step(actions[k % 16])
    spent = time.thread_time_ns() - start
    envs[line.strip()][2] = t + {steps}
    h = hashlib.sha256(env.observations.tobytes())
    h.update(env.rewards.tobytes())
    print(spent / {steps}, h.hexdigest()[:16], flush=True)
"""


def pair(a_dir: str, b_dir: str, pairs: int, steps: int, shapes: list[str],
         mode: str) -> None:
    child = textwrap.dedent(_CHILD.format(shapes=tuple(shapes), steps=steps, mode=mode))
    answers = offered_cases(child, (a_dir, b_dir), (), pairs, "shapes")
    print(f"A = {a_dir}, B = {b_dir}; {mode} actions, {pairs} pairs of {steps} steps, "
          "thread CPU time")
    for shape, (a_lines, b_lines) in answers.items():
        n_envs, n_agents = (int(x) for x in shape.split("x"))
        a = [float(x.split()[0]) for x in a_lines]
        b = [float(x.split()[0]) for x in b_lines]
        same = all(x.split()[1] == y.split()[1]
                   for x, y in zip(a_lines, b_lines, strict=True))
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        low, _, high = statistics.quantiles(ratios, n=4)
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"  {n_envs:,} x {n_agents:,}: A {ma / n_envs:7.0f} ns/book-step "
              f"{n_envs * n_agents / ma * 1e3:5.2f} M agent-steps/s;  B {mb / n_envs:7.0f} "
              f"ns/book-step {n_envs * n_agents / mb * 1e3:5.2f} M agent-steps/s;  B/A median "
              f"{statistics.median(ratios):.3f} (IQR {low:.3f}-{high:.3f}); outputs "
              f"{'identical' if same else 'DIFFER'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a_dir")
    parser.add_argument("b_dir")
    parser.add_argument("--pairs", type=int, default=31)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--shapes", default="1024x4,1x4096",
                        help="comma-separated MARKETSxAGENTS")
    parser.add_argument("--mode", default="discrete",
                        choices=["discrete", "market_making", "order", "execution"],
                        help="the action mode of both (uniformly random integer actions)")
    args = parser.parse_args(argv)
    shapes = args.shapes.split(",")
    for shape in shapes:
        parts = shape.split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            parser.error(f"--shapes takes MARKETSxAGENTS, got {shape!r}")
    if args.pairs < 2 or args.steps < 1:
        parser.error("--pairs must be >= 2 and --steps >= 1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from rltrader.tools.bench import machine

    print("machine:", machine())
    pair(args.a_dir, args.b_dir, args.pairs, args.steps, shapes, args.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
