"""Pinned digests of the batched env's outputs: what a seed produces must not change.

A performance change of the env kernel, the flow or the core keeps every observation,
reward, flag, final observation and account bit-identical; a change that means to alter
what the env computes updates these digests in the same commit and says why (a new seed
stream documented with its statistics). Each case runs ``STEPS`` steps of uniformly random
actions (the action space seeded) in one configuration and hashes every step's buffers,
then the agents' accounts.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from rltrader.envs import AgentGroup, BatchedMarketEnv, EnvConfig, GroupedMarketEnv

STEPS = 200

#: name: (EnvConfig fields, n_envs, n_agents, SHA-256 of the run)
CASES: dict[str, tuple[dict[str, Any], int, int, str]] = {
    "discrete_16x4": (
        {}, 16, 4, "2741306a01d1a319a795c90073a61764c250fd6c69e93e3026669b844142680b"),
    "discrete_1x64": (
        {}, 1, 64, "c8000dc96921c7478592f0203af74c65d408c4c4b64931457a04cefd22a6188d"),
    "discrete_1x1024": (
        {"horizon": 120}, 1, 1024,
        "8ebd609f46bfb54757d085479f262074f18302f8027c9be2b49c7c253d1be988"),
    "discrete_96x4": (
        {}, 96, 4, "943d9f9c708165b20c837ace25f2f60ca8e52997a27de3550e753766d46cfe6e"),
    "thin_short": (
        {"market": "thin", "horizon": 50}, 8, 4,
        "585317453be278894e40f68ec551ae29e0eedb41c4742cd93cde7b50c2b85bb8"),
    "market_making_latency": (
        {"action_mode": "market_making", "latency_ns": (0, 3_000_000, 40_000_000, 0),
         "latency_jitter_ns": 5_000_000, "horizon": 70}, 8, 4,
        "9d4c3e76935495a83cbfba4cb546fbb6a176b4388f2adb71a965fdabc329793b"),
    "order": (
        {"action_mode": "order", "horizon": 60}, 8, 4,
        "4101547bb7f1208c96b9f14463d72c684d09a9a2871564877040f2453052b0fa"),
    "continuous_sharpe": (
        {"action_mode": "continuous", "reward": "sharpe", "horizon": 80}, 4, 8,
        "df0a46d2d0397307c9113ed47e1c8553c9ebe57161a98f46fdcf25dec6ad5206"),
    "execution": (
        {"action_mode": "execution", "horizon": 40}, 8, 4,
        "85f2dc60eb111b98d3ec40d61605c90ed432825810723723c6a9b646127c3cd9"),
    "carry_mid_informed": (
        {"end_of_episode": "carry", "valuation": "mid", "horizon": 45, "market": "informed"},
        8, 4, "2f9112a047ac2eeb703a5ef60e4b93c5bb763da92f9879463c1abf6ad6d2d4f6"),
    "realistic_two_symbols": (
        {"market": "realistic", "symbols": 2, "horizon": 55}, 4, 4,
        "260b19a6b35216a5c143efd58f89011b083d815aedd191723f22353fecc86065"),
}

GROUPED = "d96fc09a7cd660aba92425fe3d48fb4ea34d2a1162ae6dfe535cfc39d166e507"


def _feed(h: Any, x: Any) -> None:
    """Hash ``x``: arrays by their bytes, dicts by sorted key, tuples and lists in order."""
    if isinstance(x, dict):
        for k in sorted(x):
            _feed(h, x[k])
    elif isinstance(x, (tuple, list)):
        for y in x:
            _feed(h, y)
    else:
        h.update(np.ascontiguousarray(x).tobytes())


@pytest.mark.parametrize("name", list(CASES))
def test_batched_env_outputs_are_pinned(name: str) -> None:
    fields, n_envs, n_agents, digest = CASES[name]
    env = BatchedMarketEnv(EnvConfig(**fields), n_envs=n_envs, n_agents=n_agents, seed=7)
    h = hashlib.sha256()
    h.update(env.observations.tobytes())
    space = env.single_action_space
    space.seed(3)
    for _ in range(STEPS):
        env.step(np.stack([space.sample() for _ in range(env.num_agents_total)]))
        _feed(h, (env.observations, env.rewards, env.terminated, env.truncated,
                  env.final_observations))
    h.update(env.accounts().tobytes())
    assert h.hexdigest() == digest


def test_grouped_env_outputs_are_pinned() -> None:
    base = EnvConfig(horizon=60)
    env = GroupedMarketEnv([
        AgentGroup("makers", 2, base.replace(action_mode="market_making"),
                   policy=lambda obs: np.zeros((len(obs), 3), dtype=np.int64)),
        AgentGroup("executors", 2, base.replace(action_mode="execution")),
        AgentGroup("traders", 3, base)], n_envs=6, seed=5)
    rng = np.random.default_rng(1)
    h = hashlib.sha256()
    for _ in range(150):
        _feed(h, env.step({"executors": rng.integers(0, 9, 12),
                           "traders": rng.integers(0, 12, 18)}))
    assert h.hexdigest() == GROUPED
