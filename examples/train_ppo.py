"""Train one PPO policy shared by 1,024 market-making agents, then compare it with the
baselines (docs/training.md). Run from the repository root (needs the ``rl`` extra)::

    python examples/train_ppo.py --timesteps 2000000 --out ppo-run

Every one of the 256 markets x 4 agents is a sub-env of one Stable-Baselines3 ``VecEnv``;
the run writes checkpoints, ``curve.csv``, ``learning_curve.png`` and ``results.json`` to
``--out`` and prints the mean episode return ± s.e. of PPO, a random policy and a
fixed-spread market maker on the same seeded evaluation markets. Afterwards the saved
policy drives one fresh market here, step by step.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rltrader.envs import BatchedMarketEnv
from rltrader.training.train import PPOPolicy, TrainConfig, format_report, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=2_000_000, help="agent-steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="ppo-run")
    args = parser.parse_args()

    config = TrainConfig(total_timesteps=args.timesteps, seed=args.seed)
    report = train(config, args.out)
    print(format_report(report))

    out = Path(args.out)
    policy = PPOPolicy(out / "ppo_final.zip", out / "vecnormalize.pkl")
    env = BatchedMarketEnv(config.env, n_envs=1, n_agents=config.n_agents, seed=123)
    obs, total = env.reset(seed=123), np.zeros(config.n_agents)
    for _ in range(config.env.horizon):
        obs, rewards, terminated, truncated = env.step(policy(obs))
        total += rewards
    print(f"one fresh market, {config.env.horizon} steps: returns per agent "
          f"{np.round(total, 2).tolist()} (ticks per lot of each agent's order size)")


if __name__ == "__main__":
    main()
