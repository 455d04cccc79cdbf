"""The residual market maker (rltrader.training.ppo.residual): the corrections against a
per-row reference; "keep" everywhere is the teacher, step for step, on a plain env and on
a mix of lanes (bit-identical observations and rewards); a residual checkpoint evaluates
with its teacher beside it (always keep: the teacher's row exactly) and is guarded by
"no quotes"; bad settings are refused, and without ``residual`` the trainer trains the
env it is given."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.envs.mixed import Lane, MixedConfig, MixedMarketEnv  # noqa: E402
from rltrader.training.evaluate import TASKS, CheckpointStrategy, evaluate  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings, train  # noqa: E402
from rltrader.training.ppo.guard import guard_checkpoint  # noqa: E402
from rltrader.training.ppo.residual import (  # noqa: E402
    CORRECTIONS,
    STAND_ASIDE,
    ResidualEnv,
    correct,
    teacher_of,
)

CONFIG = TASKS["market_making"].replace(market="thin", horizon=30)
QUIET = {"progress": False, "threads": 1}


def _reference(action: list[int], c: int, n: int) -> list[int]:
    bid, ask, size = action
    name = CORRECTIONS[c]
    if name in ("no_bid", "no_quotes"):
        bid = n
    if name in ("no_ask", "no_quotes"):
        ask = n
    if name == "bid_back" and bid < n - 1:
        bid += 1
    if name == "ask_back" and ask < n - 1:
        ask += 1
    return [bid, ask, size]


def test_corrections_match_a_per_row_reference() -> None:
    rng = np.random.default_rng(0)
    n = 4                                       # quote offsets; index 4 is no quote
    teacher = np.stack([rng.integers(0, n + 1, 500), rng.integers(0, n + 1, 500),
                        rng.integers(0, 3, 500)], 1)
    c = rng.integers(0, len(CORRECTIONS), 500)
    expected = [_reference(list(a), int(k), n) for a, k in zip(teacher, c, strict=True)]
    np.testing.assert_array_equal(correct(teacher, c, n), expected)
    assert (correct(teacher, np.zeros(500, np.int64), n) == teacher).all()
    with pytest.raises(ValueError, match="corrections must lie"):
        correct(teacher, np.full(500, len(CORRECTIONS)), n)
    with pytest.raises(ValueError, match="same rows"):
        correct(teacher, c[:3], n)


def _teacher_run(env, teacher, steps: int) -> tuple[list, list]:
    teacher.begin(env)
    obs, rewards = [], []
    for _ in range(steps):
        a = teacher.actions(np.asarray(env.episode_step, dtype=np.int64), env.config.horizon,
                            env, range(env.n_agents))
        o, r, _, _ = env.step(np.asarray(a).reshape(-1, 3))
        obs.append(o.copy())
        rewards.append(r.copy())
    return obs, rewards


@pytest.mark.parametrize("teacher", ["best_fixed_spread", "best_flow_maker"])
def test_keep_everywhere_is_the_teacher_step_for_step(teacher) -> None:
    steps = 70                                          # past two episode ends
    plain = BatchedMarketEnv(CONFIG, n_envs=4, n_agents=2, seed=3)
    obs, rewards = _teacher_run(plain, teacher_of(teacher), steps)
    residual = ResidualEnv(BatchedMarketEnv(CONFIG, n_envs=4, n_agents=2, seed=3), teacher)
    assert residual.single_action_space.n == len(CORRECTIONS)
    for t in range(steps):
        o, r, _, _ = residual.step(np.zeros(8, np.int64))
        np.testing.assert_array_equal(o, obs[t])
        np.testing.assert_array_equal(r, rewards[t])
    with pytest.raises(ValueError, match="one per row"):
        residual.step(np.zeros(3, np.int64))


def test_keep_everywhere_is_the_teacher_on_a_mix_of_lanes() -> None:
    """One copy of the teacher per lane, each on its own market (the tuned maker differs
    between thin and resilient), through a lane's restart at the open."""
    mixed = MixedConfig(CONFIG, (Lane("thin", 2), Lane("resilient", 2)),
                        restart_episodes=(1, 1))
    env = MixedMarketEnv(mixed, n_agents=1, seed=4)
    residual = ResidualEnv(env, "best_fixed_spread")
    reference = MixedMarketEnv(mixed, n_agents=1, seed=4)
    teachers = [teacher_of("best_fixed_spread") for _ in reference.lanes]
    for t, lane in zip(teachers, reference.lanes, strict=True):
        t.begin(lane)
    for _ in range(65):
        actions = np.concatenate([
            np.asarray(t.actions(np.asarray(lane.episode_step, dtype=np.int64),
                                 lane.config.horizon, lane, [0])).reshape(-1, 3)
            for t, lane in zip(teachers, reference.lanes, strict=True)])
        o_ref, r_ref, _, _ = reference.step(actions)
        o, r, _, _ = residual.step(np.zeros(4, np.int64))
        np.testing.assert_array_equal(o, o_ref)
        np.testing.assert_array_equal(r, r_ref)
    assert env.restarts == reference.restarts and min(env.restarts) >= 1


def test_a_residual_checkpoint_evaluates_with_its_teacher_and_stands_aside_guarded(
        tmp_path) -> None:
    result = train(CONFIG, n_envs=4, n_agents=1, total_agent_steps=256, seed=0,
                   out_dir=tmp_path / "run",
                   settings=FastPPOSettings(n_steps=32, residual="fixed_spread",
                                            warm_start_steps=40, **QUIET))
    assert result["warm_start"]["teacher"] == "keep (fixed_spread's quotes)"
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["settings"]["residual"] == "fixed_spread"
    assert state["action_space"]["nvec"] == [len(CORRECTIONS)]
    # always keep: a policy head that prefers correction 0 whatever it sees
    state["model"]["nets.0.policy_head.weight"].zero_()
    state["model"]["nets.0.policy_head.bias"].copy_(torch.tensor(
        [5.0] + [0.0] * (len(CORRECTIONS) - 1)))
    torch.save(state, tmp_path / "keep.pt")
    # a tuned teacher is tuned with the agents a market of training (1), whatever the
    # evaluation's --n-agents
    tuned = dict(state, settings=dict(state["settings"], residual="best_flow_maker"))
    torch.save(tuned, tmp_path / "tuned.pt")
    assert CheckpointStrategy(tmp_path / "tuned.pt").residual.teacher.tune_agents == 1
    # always stand aside: the guard fires on every row
    guarded = guard_checkpoint(tmp_path / "keep.pt", tmp_path / "aside.pt", clip=1e-9)
    assert torch.load(guarded, weights_only=True)["guard"]["action"] == STAND_ASIDE
    out = evaluate(["baseline:fixed_spread", "baseline:hold", str(tmp_path / "keep.pt"),
                    str(guarded)], task="market_making", markets=["thin"], seeds=[11],
                   n_envs=4, n_agents=1, episodes=2, horizon=30)
    rows = out["markets"]["thin"]["rows"]
    assert rows["keep"]["per_market"] == rows["fixed_spread"]["per_market"]
    assert rows["aside"]["per_market"] == rows["hold"]["per_market"]
    assert any(x != 0 for x in rows["fixed_spread"]["per_market"])


def test_bad_residual_settings_are_refused_and_the_default_trains_the_env_given() -> None:
    with pytest.raises(ValueError, match="warm_start must be None"):
        FastPPOSettings(residual="best_flow_maker", warm_start="best_flow_maker")
    with pytest.raises(ValueError, match="residual must be None or"):
        FastPPOSettings(residual="")
    with pytest.raises(ValueError, match="feed-forward"):
        FastPPOSettings(residual="best_flow_maker", recurrent=True)
    with pytest.raises(ValueError, match="action mode"):
        ResidualEnv(BatchedMarketEnv(TASKS["directional"], n_envs=1, n_agents=1),
                    "best_flow_maker")
    env = BatchedMarketEnv(CONFIG, n_envs=2, n_agents=1)
    trainer = FastPPO(env, FastPPOSettings(n_steps=4, **QUIET))
    assert trainer.env is env and trainer.spec.kind == "multi_discrete"
    assert FastPPOSettings().residual is None
