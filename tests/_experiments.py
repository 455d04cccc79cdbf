"""A small execution experiment for the mixed-env tests (``tests/test_envs_mixed*.py``):
the file's task, trainer and evaluation sections, which they share, around each test's
own settings and ``[[markets]]``; and a quiet training run of the loaded experiment."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


def execution_toml(settings: str, markets: str, *, warm_start_steps: int) -> str:
    """The experiment file: ``settings`` (top-level lines) and ``markets`` (its
    ``[[markets]]`` tables) inside the shared sections."""
    return f"""
task = "execution"
seeds = [0]
n_agents = 1
{settings}{markets}[env]
horizon = 30
[trainer]
n_steps = 16
minibatch_size = 64
warm_start = "twap_passive"
warm_start_steps = {warm_start_steps}
threads = 1
[evaluate]
baselines = ["twap_passive"]
markets = ["thin"]
"""


def train_quietly(experiment: Any, out: Path, *, n_envs: int, agent_steps: int) -> dict:
    """``fast_ppo.train`` on the experiment's mix, one agent a market, seed 0, no progress
    bar, into ``out / "run"``."""
    from rltrader.training.fast_ppo import train

    return train(experiment.mixed, n_envs=n_envs, n_agents=1, total_agent_steps=agent_steps,
                 seed=0, out_dir=out / "run",
                 settings=dataclasses.replace(experiment.settings, progress=False))
