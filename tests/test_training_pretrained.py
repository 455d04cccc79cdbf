"""The shipped checkpoints load, act in their task's env and take part in ``rltrader
evaluate`` as ``pretrained:NAME``; each has a model card."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.training.evaluate import (  # noqa: E402
    PRETRAINED,
    TASKS,
    CheckpointStrategy,
    evaluate,
)

SHIPPED = sorted(p.stem for p in PRETRAINED.glob("*.pt"))
#: a baseline of each task, to evaluate a shipped checkpoint beside
REFERENCE = {"execution": "twap", "directional": "hold", "market_making": "fixed_spread"}


def test_something_ships_with_a_model_card() -> None:
    assert SHIPPED
    for name in SHIPPED:
        card = (PRETRAINED / f"{name}.md").read_text()
        assert "Evaluation" in card and "rltrader evaluate" in card


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_policy_acts_in_its_task(name: str) -> None:
    env = BatchedMarketEnv(TASKS[name].replace(horizon=300), n_envs=2, n_agents=3, seed=9)
    env.reset(seed=9)
    # as rltrader evaluate plays it (a residual maker: its teacher's quotes, corrected)
    strategy = CheckpointStrategy(PRETRAINED / f"{name}.pt")
    strategy.begin(env)
    for _ in range(20):
        step = np.asarray(env.episode_step, dtype=np.int64)
        actions = np.asarray(strategy.actions(step, env.config.horizon, env, range(3)))
        flat = actions.reshape((6,) + actions.shape[2:])
        for row in flat:
            assert env.single_action_space.contains(row.item() if row.ndim == 0 else row)
        env.step(flat)
    result = evaluate([f"pretrained:{name}", f"baseline:{REFERENCE[name]}"], task=name,
                      markets=["thin"], seeds=[7], n_envs=2, n_agents=2, episodes=1,
                      horizon=300)
    assert set(result["markets"]["thin"]["rows"]) == {f"pretrained:{name}", REFERENCE[name]}
