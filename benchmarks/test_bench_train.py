"""The fast PPO trainer: one rollout and update of 64 markets x 64 agents (discrete mode,
2 x 64 MLP, float32, one torch thread), after one untimed update.
``extra_info["agent_steps_per_second"]`` is at the median; ``benchmarks/train_throughput.py``
has the full table with the Stable-Baselines3 yardstick."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("rltrader._env", reason="the compiled core is not built")
pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv, EnvConfig  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings  # noqa: E402


@pytest.mark.parametrize("network", [("float32", "tanh", 2), ("bfloat16", "relu", 1)],
                         ids=["fp32-tanh-2epochs", "bf16-relu-1epoch"])
def test_fast_ppo_update(benchmark: Any, network: tuple[str, str, int]) -> None:
    precision, activation, epochs = network
    env = BatchedMarketEnv(EnvConfig(), n_envs=64, n_agents=64, seed=0)
    trainer = FastPPO(env, FastPPOSettings(n_steps=32, n_epochs=epochs, threads=1,
                                           precision=precision, activation=activation,
                                           progress=False))
    per_update = 32 * env.num_agents_total
    trainer.learn(per_update)
    benchmark.pedantic(trainer.learn, args=(per_update,), rounds=5, iterations=1)
    benchmark.extra_info["agent_steps_per_second"] = per_update / benchmark.stats["median"]
