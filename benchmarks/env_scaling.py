"""Per agent-step cost of the batched env against the number of books, paired A/B runs
of two checkouts, and this machine's memory latency against the working-set size: the
tools behind the tables of docs/envs.md, "Performance".

    python benchmarks/env_scaling.py scale [--rounds 11] [--hold 0.0] [--books 16,64,...]
    python benchmarks/env_scaling.py pair A_DIR B_DIR [--envs 1024] [--agents 4]
                                     [--pairs 21] [--steps 20] [--hold 0.0]
    python benchmarks/env_scaling.py memory [--loads 2000000]

``scale`` builds 16, 64, 256 and 1,024 books of 4 agents and one book of 4,096 agents in
one process and steps them in turn, round after round, so that every configuration sees
the same machine state (this VM's speed drifts by up to 2x between minutes); it prints
the median time per step and per agent-step. ``pair`` runs the same workload from two
checkouts (each with its compiled modules built in place) in two processes that step
``--steps`` steps in turn, alternating which goes first, and prints the median of the
per-pair ratios B/A with its interquartile range. Pin with ``taskset -c 1`` to keep both
on one core. ``--books`` replaces the default configurations by books of 4 agents each.
``memory`` prints ``rltrader._probe.memory_latency_ns`` for working sets of 16 KiB to
64 MiB: where the latency jumps, a many-book step whose data outgrows that size slows.

Workload: the default ``EnvConfig``, uniformly random discrete actions (16 arrays drawn
once, cycled) after 100 untimed steps; ``--hold`` sets that share of the actions to 0
(hold), as a trained policy that mostly keeps its quotes does.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
import time
from typing import Any

import numpy as np

SCALE_CONFIGS = [(16, 4), (64, 4), (256, 4), (1024, 4), (1, 4096)]
MEMORY_SIZES_KIB = [16, 64, 256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 16384, 65536]


def _workload(n_envs: int, n_agents: int, hold: float, market: str | None = None,
              mode: str = "discrete") -> tuple[Any, list[np.ndarray]]:
    """A warmed-up env (the default config in action ``mode``, or its background
    ``market`` preset) and its 16 action arrays (uniform over the space; ``hold`` of the
    agents' actions 0, which holds in every integer mode)."""
    from rltrader.envs import BatchedMarketEnv, EnvConfig

    config = EnvConfig(action_mode=mode)
    config = config if market is None else config.replace(market=market)
    env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=0)
    rng = np.random.default_rng(0)
    high = np.asarray(env.action_high)
    actions = [np.stack([rng.integers(0, h, env.num_agents_total) for h in high], axis=1)
               for _ in range(16)]
    actions = [a[:, 0].copy() if high.size == 1 else a for a in actions]
    for a in actions:
        a[rng.random(a.shape[0]) < hold] = 0
    for t in range(100):
        env.step(actions[t % 16])
    return env, actions


def scale(rounds: int, hold: float, configs: list[tuple[int, int]]) -> None:
    runs = [_workload(n_envs, n_agents, hold) for n_envs, n_agents in configs]
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for (env, actions), out in zip(runs, times, strict=True):
            steps = max(5, 81920 // env.num_agents_total)
            start = time.perf_counter()
            for t in range(steps):
                env.step(actions[t % 16])
            out.append((time.perf_counter() - start) / steps)
    print(f"hold {hold:.0%}, median of {rounds} rounds")
    for (n_envs, n_agents), out in zip(configs, times, strict=True):
        per_step = statistics.median(out)
        agents = n_envs * n_agents
        print(f"{n_envs:5d} x {n_agents:<5d} {per_step * 1e3:8.3f} ms/step "
              f"{per_step / agents * 1e9:6.0f} ns/agent-step "
              f"{agents / per_step / 1e6:6.2f} M agent-steps/s")


_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
from env_scaling import _workload
env, actions = _workload({n_envs}, {n_agents}, {hold}, sys.argv[3] or None, "{mode}")
t = 0
for _ in sys.stdin:
    start = time.perf_counter()
    for _ in range({steps}):
        env.step(actions[t % 16])
        t += 1
    print((time.perf_counter() - start) / {steps}, flush=True)
"""


def pair(a_dir: str, b_dir: str, n_envs: int, n_agents: int, pairs: int, steps: int,
         hold: float, markets: tuple[str, str] = ("", ""), mode: str = "discrete") -> None:
    here = str(__import__("pathlib").Path(__file__).resolve().parent)
    child = textwrap.dedent(_CHILD.format(n_envs=n_envs, n_agents=n_agents, hold=hold,
                                          steps=steps, mode=mode))
    procs = [subprocess.Popen([sys.executable, "-c", child, d, here, market], cwd=d,
                              text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for d, market in zip((a_dir, b_dir), markets, strict=True)]
    times: tuple[list[float], list[float]] = ([], [])
    try:
        for k in range(pairs):
            for j in ((0, 1) if k % 2 == 0 else (1, 0)):
                stdin, stdout = procs[j].stdin, procs[j].stdout
                assert stdin is not None and stdout is not None
                stdin.write("go\n")
                stdin.flush()
                line = stdout.readline()
                if not line:
                    raise RuntimeError(f"the run from {(a_dir, b_dir)[j]} exited")
                times[j].append(float(line))
    finally:
        for p in procs:
            if p.stdin is not None:
                p.stdin.close()
            p.wait()
    ratios = [b / a for a, b in zip(*times, strict=True)]
    low, _, high = statistics.quantiles(ratios, n=4)
    print(f"{mode}, {n_envs} x {n_agents}, hold {hold:.0%}: "
          f"A {statistics.median(times[0]) * 1e3:.3f} ms/step, "
          f"B {statistics.median(times[1]) * 1e3:.3f} ms/step; B/A median "
          f"{statistics.median(ratios):.3f} (IQR {low:.3f}-{high:.3f}, {pairs} pairs)")


def memory(loads: int) -> None:
    from rltrader._probe import memory_latency_ns

    print("working set   ns per dependent load")
    for kib in MEMORY_SIZES_KIB:
        print(f"{kib:8d} KiB  {memory_latency_ns(kib * 1024, loads):8.1f}")


def _books(text: str) -> list[tuple[int, int]]:
    try:
        books = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--books takes comma-separated integers, got {text!r}") from None
    if not books or min(books) < 1:
        raise argparse.ArgumentTypeError(f"--books must be positive, got {text!r}")
    return [(n, 4) for n in books]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_scale = sub.add_parser("scale", help="per agent-step cost against the number of books")
    p_scale.add_argument("--rounds", type=int, default=11)
    p_scale.add_argument("--hold", type=float, default=0.0)
    p_scale.add_argument("--books", type=_books, default=SCALE_CONFIGS,
                         help="comma-separated book counts, 4 agents each")
    p_pair = sub.add_parser("pair", help="paired A/B of two checkouts")
    p_pair.add_argument("a_dir")
    p_pair.add_argument("b_dir")
    p_pair.add_argument("--envs", type=int, default=1024)
    p_pair.add_argument("--agents", type=int, default=4)
    p_pair.add_argument("--pairs", type=int, default=21)
    p_pair.add_argument("--steps", type=int, default=20)
    p_pair.add_argument("--hold", type=float, default=0.0)
    p_pair.add_argument("--market-a", default="", help="A's background preset (default: "
                        "its EnvConfig's); the same market under an old name, say")
    p_pair.add_argument("--market-b", default="", help="B's background preset")
    p_pair.add_argument("--mode", default="discrete",
                        choices=["discrete", "market_making", "order", "execution"],
                        help="the action mode of both (uniformly random integer actions)")
    p_memory = sub.add_parser("memory", help="memory latency against the working-set size")
    p_memory.add_argument("--loads", type=int, default=2_000_000)
    args = parser.parse_args(argv)
    if args.command == "memory":
        if args.loads < 1:
            parser.error("--loads must be >= 1")
        memory(args.loads)
        return 0
    if not 0.0 <= args.hold <= 1.0:
        parser.error("--hold must be in [0, 1]")
    if args.command == "scale":
        scale(args.rounds, args.hold, args.books)
    else:
        pair(args.a_dir, args.b_dir, args.envs, args.agents, args.pairs, args.steps,
             args.hold, (args.market_a, args.market_b), args.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
