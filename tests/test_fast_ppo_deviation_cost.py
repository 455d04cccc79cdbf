"""A residual maker's training-only cost for leaving "keep" (``FastPPOSettings.
deviation_cost``, round 12): against the same trainer without it (same seed, same env),
the actions of a rollout are identical and the training rewards differ by exactly the
cost on the agent-steps whose correction is not 0, and by nothing on the others; the
logged rewards, the env's own reward buffer and a checkpoint's evaluation are the raw
rewards; bad values are refused."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.training.evaluate import TASKS, evaluate  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings, train  # noqa: E402
from rltrader.training.ppo.residual import ResidualEnv  # noqa: E402

CONFIG = TASKS["market_making"].replace(market="thin", horizon=300)
QUIET = {"progress": False, "threads": 1}


class _Recorded(ResidualEnv):
    """A residual env that keeps a copy of every step's raw rewards."""

    def __init__(self, env, teacher):
        super().__init__(env, teacher)
        self.recorded = []

    def step(self, corrections):
        out = super().step(corrections)
        self.recorded.append(out[1].copy())
        return out


def _rollout(cost: float, *, mirror: bool = False):
    env = _Recorded(BatchedMarketEnv(CONFIG, n_envs=8, n_agents=2, seed=5), "fixed_spread")
    settings = FastPPOSettings(n_steps=24, residual="fixed_spread", mirror=mirror,
                               deviation_cost=cost, scale_rewards=False, **QUIET)
    trainer = FastPPO(env, settings, seed=3)
    trainer.start()
    episodes = trainer.collect()
    return trainer, env, episodes


@pytest.mark.parametrize("mirror", [False, True])
def test_the_cost_is_charged_on_every_step_that_leaves_keep_and_on_no_other(mirror) -> None:
    cost = 0.375                                    # exact in float32
    plain, plain_env, plain_episodes = _rollout(0.0, mirror=mirror)
    charged, charged_env, episodes = _rollout(cost, mirror=mirror)
    actions = charged.rollout.actions[..., 0]
    # the same seed acts alike: the cost changes the training rewards only
    assert torch.equal(actions, plain.rollout.actions[..., 0])
    left = actions != 0
    assert 0.3 < float(left.float().mean()) < 0.95      # an untrained policy explores
    raw = torch.from_numpy(np.stack(charged_env.recorded))
    assert torch.equal(raw, torch.from_numpy(np.stack(plain_env.recorded)))
    assert torch.equal(plain.rollout.rewards, raw)      # no cost: the raw rewards
    assert torch.equal(charged.rollout.rewards[~left], raw[~left])
    assert torch.equal(charged.rollout.rewards[left], raw[left] - cost)
    # the env's own buffer holds the raw rewards of the last step
    np.testing.assert_array_equal(charged_env.env.rewards, charged_env.recorded[-1])
    # logged: the raw mean reward, and the share of steps that left keep
    assert episodes["mean_reward"] == plain_episodes["mean_reward"]
    assert episodes["deviations"] == pytest.approx(float(left.float().mean()))
    assert "deviations" not in plain_episodes


def test_a_checkpoint_trained_with_the_cost_evaluates_on_raw_rewards(tmp_path) -> None:
    config = CONFIG.replace(horizon=30)
    settings = dict(n_steps=32, residual="fixed_spread", warm_start_steps=40, **QUIET)
    result = train(config, n_envs=4, n_agents=1, total_agent_steps=512, seed=0,
                   out_dir=tmp_path / "cost",
                   settings=FastPPOSettings(deviation_cost=0.5, **settings))
    assert result["settings"]["deviation_cost"] == 0.5
    state = torch.load(tmp_path / "cost" / "checkpoint.pt", weights_only=True)
    # the same weights with the setting stripped evaluate alike: the cost is not read
    torch.save(dict(state, settings=dict(state["settings"], deviation_cost=0.0)),
               tmp_path / "stripped.pt")
    out = evaluate(["baseline:fixed_spread", str(tmp_path / "cost" / "checkpoint.pt"),
                    str(tmp_path / "stripped.pt")], task="market_making", markets=["thin"],
                   seeds=[11], n_envs=4, n_agents=1, episodes=2, horizon=30)
    rows = out["markets"]["thin"]["rows"]
    assert rows["cost"]["per_market"] == rows["stripped"]["per_market"]
    assert any(x != 0 for x in rows["cost"]["per_market"])


def test_bad_deviation_costs_are_refused() -> None:
    for bad in (-0.01, float("nan"), float("inf"), True, "0.1"):
        with pytest.raises(ValueError, match="deviation_cost must be a finite number"):
            FastPPOSettings(residual="best_flow_maker", deviation_cost=bad)
    with pytest.raises(ValueError, match="needs residual"):
        FastPPOSettings(deviation_cost=0.1)
    assert FastPPOSettings().deviation_cost == 0.0
    assert FastPPOSettings(residual="best_flow_maker", deviation_cost=0).deviation_cost == 0


def test_the_example_config_loads_with_the_cost() -> None:
    from pathlib import Path

    from rltrader.training import experiment

    path = Path(__file__).resolve().parent.parent / "examples" / "train"
    parsed = experiment.load(path / "market_making_keep_cost.toml")
    assert parsed.task == "market_making" and len(parsed.seeds) >= 5
    s = parsed.settings
    assert s.residual == "best_flow_maker" and s.mirror and s.deviation_cost > 0


def test_the_lanes_example_charges_every_market_but_realistic() -> None:
    """Round 13's recipe is round 12's keep-cost file with the cost on the informed, thin
    and resilient lanes only: the same mix, seeds and settings otherwise."""
    import dataclasses
    from pathlib import Path

    from rltrader.training import experiment

    path = Path(__file__).resolve().parent.parent / "examples" / "train"
    lanes = experiment.load(path / "market_making_keep_cost_lanes.toml")
    keep = experiment.load(path / "market_making_keep_cost.toml")
    assert lanes.settings.deviation_markets == ("informed", "thin", "resilient")
    assert keep.settings.deviation_markets is None
    assert dataclasses.replace(lanes.settings, deviation_markets=None) == keep.settings
    assert lanes.mixed == keep.mixed and lanes.seeds == keep.seeds
    assert lanes.agent_steps == keep.agent_steps and lanes.evaluation == keep.evaluation
    markets = {lane.market for lane in lanes.mixed.lanes}
    assert markets - set(lanes.settings.deviation_markets) == {"realistic"}


def test_the_cost_can_be_charged_on_some_markets_of_a_mix_only() -> None:
    from rltrader.envs.mixed import Lane, MixedConfig, MixedMarketEnv

    mixed = MixedConfig(CONFIG, (Lane("thin", 3), Lane("resilient", 2), Lane("thin", 1)))
    cost, out = 0.25, []
    for settings in ({}, {"deviation_cost": cost, "deviation_markets": ("thin",)}):
        env = _Recorded(MixedMarketEnv(mixed, n_agents=2, seed=6), "fixed_spread")
        trainer = FastPPO(env, FastPPOSettings(n_steps=16, residual="fixed_spread",
                                               scale_rewards=False, **settings, **QUIET),
                          seed=4)
        trainer.start()
        trainer.collect()
        out.append((trainer.rollout, np.stack(env.recorded)))
    (plain, raw), (charged, raw2) = out
    np.testing.assert_array_equal(raw, raw2)
    actions = charged.actions[..., 0]
    assert torch.equal(actions, plain.actions[..., 0])
    thin = torch.zeros(12, dtype=torch.bool)
    thin[:6] = thin[10:] = True                         # rows of the thin lanes
    left = actions != 0
    assert left[:, thin].any() and left[:, ~thin].any()
    expected = torch.from_numpy(raw) - cost * (left & thin).float()
    assert torch.equal(charged.rewards, expected)
    assert torch.equal(charged.rewards[:, ~thin], plain.rewards[:, ~thin])
    # refused: a market not in the mix, a plain env, markets without a cost
    env = ResidualEnv(MixedMarketEnv(mixed, n_agents=1, seed=6), "fixed_spread")
    with pytest.raises(ValueError, match="not markets of this mix"):
        FastPPO(env, FastPPOSettings(residual="fixed_spread", deviation_cost=0.1,
                                     deviation_markets=("informed",), **QUIET))
    env = ResidualEnv(BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1), "fixed_spread")
    with pytest.raises(ValueError, match="has none"):
        FastPPO(env, FastPPOSettings(residual="fixed_spread", deviation_cost=0.1,
                                     deviation_markets=("thin",), **QUIET))
    with pytest.raises(ValueError, match="needs deviation_cost > 0"):
        FastPPOSettings(residual="fixed_spread", deviation_markets=("thin",))
    with pytest.raises(ValueError, match="non-empty tuple"):
        FastPPOSettings(residual="fixed_spread", deviation_cost=0.1, deviation_markets=())
