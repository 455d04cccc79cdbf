"""End-to-end training throughput: the fast PPO trainer against the Stable-Baselines3 path.

Workload: the default ``EnvConfig`` (``resilient`` background) in the ``discrete`` and
``market_making`` modes, 64 markets x 64 agents and 1,024 x 4 (4,096 agents either way), a
2 x 64 MLP actor and critic (``--networks``: float32 or bfloat16 autocast, tanh or
ReLU). Each row trains for ``--seconds`` after one untimed update and
reports agent-steps per second of rollouts plus updates, and where the time went (env
step, the policy's share of the rollout, the update). The yardstick is SB3 PPO over
``SB3VecEnv`` (``VecNormalize`` on observations and rewards, ``MlpPolicy`` 2 x 64, the
same rollout length, minibatch and epochs) in the same run.

    python benchmarks/train_throughput.py --seconds 20 --epochs 2,1
    python benchmarks/train_throughput.py --seconds 10 --modes discrete --shapes 64x64 \
        --epochs 1,2 --threads 1,2 --no-sb3
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from rltrader.envs import BatchedMarketEnv, EnvConfig


@dataclass
class Row:
    trainer: str
    mode: str
    shape: str
    epochs: int
    threads: int
    network: str
    agent_steps_per_s: float
    env_share: float = float("nan")
    policy_share: float = float("nan")
    update_share: float = float("nan")


def fast(mode: str, n_envs: int, n_agents: int, seconds: float, epochs: int,
         threads: int, n_steps: int, minibatch: int, network: str) -> Row:
    from rltrader.training.fast_ppo import FastPPO, FastPPOSettings

    env = BatchedMarketEnv(EnvConfig(action_mode=mode), n_envs=n_envs, n_agents=n_agents,
                           seed=0)
    trainer = FastPPO(env, FastPPOSettings(n_steps=n_steps, n_epochs=epochs,
                                           minibatch_size=minibatch, threads=threads,
                                           precision=network.split("-")[0].replace(
                                               "fp32", "float32").replace("bf16",
                                                                          "bfloat16"),
                                           activation=network.split("-")[1],
                                           shared_trunk=network.endswith("-shared"),
                                           progress=False))
    per_update = n_steps * env.num_agents_total
    trainer.learn(per_update)                                   # warm-up
    before, steps = dict(trainer.seconds), trainer.agent_steps
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        trainer.learn(per_update)
    wall = time.perf_counter() - start
    spent = {k: trainer.seconds[k] - before[k] for k in before}
    return Row("fast_ppo", mode, f"{n_envs}x{n_agents}", epochs, threads, network,
               (trainer.agent_steps - steps) / wall, spent["env"] / wall,
               (spent["rollout"] - spent["env"]) / wall, spent["update"] / wall)


def sb3(mode: str, n_envs: int, n_agents: int, seconds: float, epochs: int, threads: int,
        n_steps: int, minibatch: int, network: str = "fp32-tanh") -> Row:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    from rltrader.envs import SB3VecEnv

    torch.set_num_threads(threads)
    env = BatchedMarketEnv(EnvConfig(action_mode=mode), n_envs=n_envs, n_agents=n_agents,
                           seed=0)
    venv = VecNormalize(SB3VecEnv(env), gamma=0.95)
    per_update = n_steps * env.num_agents_total
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=min(minibatch, per_update),
                n_epochs=epochs, gamma=0.95, gae_lambda=0.9, ent_coef=0.003,
                learning_rate=1e-3, policy_kwargs={"net_arch": [64, 64]}, seed=0,
                device="cpu")
    model.learn(per_update)                                     # warm-up
    steps = model.num_timesteps
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.learn(per_update, reset_num_timesteps=False)
    wall = time.perf_counter() - start
    return Row("sb3_ppo", mode, f"{n_envs}x{n_agents}", epochs, threads, network,
               (model.num_timesteps - steps) / wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timed per row")
    parser.add_argument("--modes", default="discrete,market_making")
    parser.add_argument("--shapes", default="64x64,1024x4", help="markets x agents")
    parser.add_argument("--epochs", default="2", help="comma-separated")
    parser.add_argument("--threads", default="1", help="torch threads, comma-separated")
    parser.add_argument("--networks", default="fp32-tanh,bf16-relu",
                        help="fast trainer's precision-activation pairs (fp32 / bf16; "
                             "tanh / relu), a '-shared' suffix for one trunk under the "
                             "policy and value heads, comma-separated; SB3 runs fp32-tanh")
    parser.add_argument("--n-steps", type=int, default=32)
    parser.add_argument("--minibatch", type=int, default=32_768)
    parser.add_argument("--no-sb3", action="store_true", help="skip the SB3 yardstick")
    args = parser.parse_args()
    rows = []
    for mode in args.modes.split(","):
        for shape in args.shapes.split(","):
            n_envs, n_agents = (int(x) for x in shape.split("x"))
            for epochs in (int(x) for x in args.epochs.split(",")):
                for threads in (int(x) for x in args.threads.split(",")):
                    runs = [(fast, network) for network in args.networks.split(",")]
                    if not args.no_sb3:
                        runs.append((sb3, "fp32-tanh"))
                    for run, network in runs:
                        row = run(mode, n_envs, n_agents, args.seconds, epochs, threads,
                                  args.n_steps, args.minibatch, network)
                        rows.append(row)
                        print(_format(row), flush=True)
    print()
    print("| trainer | network | mode | markets x agents | epochs | threads | agent-steps/s "
          "| env | policy (rollout) | update | vs SB3 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        yardstick = next((r for r in rows if r.trainer == "sb3_ppo" and r.mode == row.mode
                          and r.shape == row.shape and r.epochs == row.epochs
                          and r.threads == row.threads), None)
        ratio = (f"{row.agent_steps_per_s / yardstick.agent_steps_per_s:.1f}x"
                 if yardstick and row.trainer != "sb3_ppo" else "")
        print(f"| {row.trainer} | {row.network} | {row.mode} | {row.shape} | {row.epochs} "
              f"| {row.threads} | {row.agent_steps_per_s / 1e3:,.0f} k | {_pct(row.env_share)} | "
              f"{_pct(row.policy_share)} | {_pct(row.update_share)} | {ratio} |")


def _pct(x: float) -> str:
    return "" if x != x else f"{100 * x:.0f} %"


def _format(row: Row) -> str:
    return (f"{row.trainer:9s} {row.network:9s} {row.mode:14s} {row.shape:7s} epochs "
            f"{row.epochs} threads {row.threads}: {row.agent_steps_per_s / 1e3:8.1f} k "
            "agent-steps/s")


if __name__ == "__main__":
    main()
