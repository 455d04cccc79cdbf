"""The kernel's per-agent slot mask (bit j: slot j holds an order) always equals
``slot_id != 0``: the slot loops of the step visit the mask's bits only, so a bit out of
step would hide an order from the limits, the valuation and the observations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rltrader.envs import AgentGroup, BatchedMarketEnv, EnvConfig, GroupedMarketEnv


def packed(slot_id: np.ndarray) -> np.ndarray:
    """``slot_id != 0`` per agent as bits (slot j: bit j)."""
    bits = (slot_id != 0).astype(np.uint64) << np.arange(slot_id.shape[1], dtype=np.uint64)
    return bits.sum(axis=1).astype(np.uint32)


def assert_mask(kernel: Any) -> None:
    arrays = kernel.agent_arrays
    np.testing.assert_array_equal(arrays["slot_mask"], packed(arrays["slot_id"]))


@pytest.mark.parametrize("fields", [
    {},
    {"max_orders": 3, "horizon": 30},
    {"action_mode": "market_making", "latency_ns": 30_000_000, "latency_jitter_ns": 20_000_000,
     "horizon": 40},
    {"action_mode": "order", "horizon": 25},
    {"action_mode": "continuous", "horizon": 35},
    {"action_mode": "execution", "horizon": 20},
    {"end_of_episode": "carry", "market": "thin", "horizon": 30},
], ids=["discrete", "few_slots", "market_making_latency", "order", "continuous", "execution",
        "carry"])
def test_slot_mask_matches_the_slots(fields: dict[str, Any]) -> None:
    env = BatchedMarketEnv(EnvConfig(**fields), n_envs=4, n_agents=8, seed=1)
    space = env.single_action_space
    space.seed(2)
    assert_mask(env.kernel)
    held = 0
    for _ in range(120):
        env.step(np.stack([space.sample() for _ in range(env.num_agents_total)]))
        assert_mask(env.kernel)
        held += int(env.kernel.agent_arrays["slot_mask"].any())
    assert held > 0                             # orders were held, and then withdrawn:
    env.reset()
    assert_mask(env.kernel)
    assert not env.kernel.agent_arrays["slot_mask"].any()


def test_slot_mask_in_a_grouped_market() -> None:
    base = EnvConfig(horizon=30)
    env = GroupedMarketEnv([
        AgentGroup("makers", 2, base.replace(action_mode="market_making"),
                   policy=lambda obs: np.zeros((len(obs), 3), dtype=np.int64)),
        AgentGroup("traders", 3, base)], n_envs=3, seed=4)
    rng = np.random.default_rng(0)
    for _ in range(90):
        env.step({"traders": rng.integers(0, 12, 9)})
        for view in env.envs.values():
            assert_mask(view.kernel)
