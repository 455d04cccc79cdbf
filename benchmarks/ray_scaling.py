"""Scaling over Ray actors: agent-steps per second of the env alone and of the fast trainer
end to end, with the markets stepped in this process (the yardstick), by 1 and 2 (or
``--workers``) ShardedMarketEnv processes and by as many RayMarketEnv actors; the table of
docs/scale.md.

    python benchmarks/ray_scaling.py [--shapes 1024x4,4096x4] [--workers 1,2] [--rounds 7]
                                     [--train-shapes 1024x4] [--train-rounds 5]
                                     [--address auto]

Workload: the default ``EnvConfig`` (``discrete``, ``resilient`` background), uniformly
random actions (16 arrays drawn once, cycled) after 20 untimed steps. Every configuration
is built first, then they step in turn, round after round, so that each sees the same
machine state (this VM's speed drifts by up to 2x between minutes); a round of the env
is ``max(10, 400_000 // agents)`` steps, a round of the trainer one PPO update
(``n_steps=32``, 2 epochs, minibatch 32,768, one torch thread in the learner). Printed:
median agent-steps/s over the rounds and the ratio to the in-process run of the same
round. The local Ray instance gets as many logical CPUs as there are actors (idle actors
cost nothing: only one configuration steps at a time); ``--address`` joins a running
cluster instead.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

import numpy as np


def machine_line() -> str:
    import ray
    import torch

    from rltrader.tools.bench import machine

    m = machine()
    return (f"machine: {m['cpu']}, {m['cores']} cores; Python {platform.python_version()}, "
            f"numpy {np.__version__}, torch {torch.__version__}, ray {ray.__version__}; "
            f"commit {m['commit']}")


def build(backend: str, n_envs: int, n_agents: int, n_workers: int) -> Any:
    from rltrader.envs import EnvConfig
    from rltrader.envs.backends import make_env

    return make_env(EnvConfig(), n_envs=n_envs, n_agents=n_agents, seed=0, backend=backend,
                    n_workers=n_workers)


def random_actions(env: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, int(env.action_high[0]), env.num_agents_total) for _ in range(16)]


def configurations(workers: list[int]) -> list[tuple[str, str, int]]:
    """(label, backend, n_workers), the yardstick first."""
    rows = [("in process", "batched", 1)]
    rows += [(f"sharded x{k}", "sharded", k) for k in workers]
    rows += [(f"ray x{k}", "ray", k) for k in workers]
    return rows


def env_rows(shape: tuple[int, int], workers: list[int], rounds: int) -> list[dict]:
    n_envs, n_agents = shape
    configs = configurations(workers)
    envs = [build(backend, n_envs, n_agents, k) for _, backend, k in configs]
    try:
        actions = random_actions(envs[0])
        for env in envs:
            for t in range(20):
                env.step(actions[t % 16])
        steps = max(10, 400_000 // envs[0].num_agents_total)
        rates: list[list[float]] = [[] for _ in envs]
        for _ in range(rounds):
            for env, out in zip(envs, rates, strict=True):
                start = time.perf_counter()
                for t in range(steps):
                    env.step(actions[t % 16])
                out.append(steps * env.num_agents_total / (time.perf_counter() - start))
    finally:
        for env in envs:
            getattr(env, "close", lambda: None)()
    return [{"what": "env", "shape": f"{n_envs} x {n_agents}", "config": label,
             "agent_steps_per_s": statistics.median(r),
             "ratio": statistics.median(a / b for a, b in zip(r, rates[0], strict=True))}
            for (label, _, _), r in zip(configs, rates, strict=True)]


def train_rows(shape: tuple[int, int], workers: list[int], rounds: int) -> list[dict]:
    from rltrader.training.fast_ppo import FastPPO, FastPPOSettings

    n_envs, n_agents = shape
    settings = FastPPOSettings(n_steps=32, n_epochs=2, minibatch_size=32_768, threads=1,
                               progress=False)
    configs = configurations(workers)
    envs = [build(backend, n_envs, n_agents, k) for _, backend, k in configs]
    try:
        trainers = [FastPPO(env, settings, seed=0) for env in envs]
        per_update = settings.n_steps * envs[0].num_agents_total
        for trainer in trainers:
            trainer.learn(per_update)                           # warm-up
        rates: list[list[float]] = [[] for _ in trainers]
        shares: list[list[float]] = [[] for _ in trainers]
        for _ in range(rounds):
            for trainer, out, share in zip(trainers, rates, shares, strict=True):
                env_before = trainer.seconds["env"]
                start = time.perf_counter()
                trainer.learn(per_update)
                wall = time.perf_counter() - start
                out.append(per_update / wall)
                share.append((trainer.seconds["env"] - env_before) / wall)
    finally:
        for env in envs:
            getattr(env, "close", lambda: None)()
    return [{"what": "trainer", "shape": f"{n_envs} x {n_agents}", "config": label,
             "agent_steps_per_s": statistics.median(r),
             "ratio": statistics.median(a / b for a, b in zip(r, rates[0], strict=True)),
             "env_share": statistics.median(s)}
            for (label, _, _), r, s in zip(configs, rates, shares, strict=True)]


def format_table(rows: list[dict]) -> str:
    lines = ["| measured | markets x agents | stepped by | agent-steps/s (median) | "
             "vs in process | env share of the update |",
             "|---|---|---|---:|---:|---:|"]
    for r in rows:
        share = f"{r['env_share']:.0%}" if "env_share" in r else ""
        lines.append(f"| {r['what']} | {r['shape']} | {r['config']} | "
                     f"{r['agent_steps_per_s'] / 1e6:.2f} M | {r['ratio']:.2f}x | {share} |")
    return "\n".join(lines)


def _shapes(text: str) -> list[tuple[int, int]]:
    try:
        shapes = [tuple(int(x) for x in part.split("x")) for part in text.split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"shapes are ENVSxAGENTS,..., got {text!r}") from None
    if any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise argparse.ArgumentTypeError(f"shapes are ENVSxAGENTS,..., got {text!r}")
    return shapes  # type: ignore[return-value]


def _ints(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"positive integers, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", type=_shapes, default=[(1024, 4), (4096, 4)],
                        help="env-alone workloads, ENVSxAGENTS,...")
    parser.add_argument("--workers", type=_ints, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--train-shapes", type=_shapes, default=[(1024, 4)],
                        help="trainer workloads ('' for none)")
    parser.add_argument("--train-rounds", type=int, default=5)
    parser.add_argument("--address", default=None, help="a running Ray cluster")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.train_rounds < 1:
        parser.error("--rounds and --train-rounds must be >= 1")
    import ray

    if args.address is None:
        ray.init(num_cpus=max(os.cpu_count() or 1, 2 * sum(args.workers)),
                 include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=args.address)
    try:
        print(machine_line())
        rows = []
        for shape in args.shapes:
            rows += env_rows(shape, args.workers, args.rounds)
        for shape in args.train_shapes:
            rows += train_rows(shape, args.workers, args.train_rounds)
        print(f"median of {args.rounds} rounds (env), {args.train_rounds} updates (trainer)")
        print(format_table(rows))
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
