"""``rltrader train`` end to end on a tiny run: checkpoints, curve, evaluation, a policy that
loads and acts (rltrader.train)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from rltrader.cli import main  # noqa: E402
from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.train import DEFAULT_ENV, PPOPolicy, PPOSettings, TrainConfig  # noqa: E402


def test_a_short_run_writes_checkpoints_that_load_and_act(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 8 agents x 512 steps = 4,096 agent-steps; checkpoints every 1,024; episodes of 100
    code = main(["train", "--timesteps", "4096", "--n-envs", "4", "--n-agents", "2",
                 "--horizon", "100", "--checkpoint-every", "1024", "--eval-episodes", "1",
                 "--seed", "3", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "agent-steps in" in out and "fixed_spread_mm" in out
    checkpoints = sorted((tmp_path / "checkpoints").glob("ppo_*_steps.zip"))
    assert [p.name for p in checkpoints] == [
        f"ppo_{n}_steps.zip" for n in (1024, 2048, 3072, 4096)]
    assert (tmp_path / "checkpoints" / "ppo_vecnormalize_4096_steps.pkl").is_file()
    assert (tmp_path / "learning_curve.png").stat().st_size > 0

    env = BatchedMarketEnv(DEFAULT_ENV.replace(horizon=100), n_envs=4, n_agents=2, seed=9)
    policy = PPOPolicy(checkpoints[1], tmp_path / "checkpoints"
                       / "ppo_vecnormalize_2048_steps.pkl")
    obs = env.reset(seed=9)
    assert policy.model.observation_space == env.single_observation_space
    assert policy.model.action_space == env.single_action_space
    for _ in range(3):
        actions = policy(obs)
        assert actions.shape == (8, 3)
        assert all(env.single_action_space.contains(a) for a in actions)
        obs, *_ = env.step(actions)

    report = json.loads((tmp_path / "results.json").read_text())
    assert report["agent_steps"] == 4096
    assert set(report["evaluation"]) == {"ppo", "random", "fixed_spread_mm"}
    for e in report["evaluation"].values():
        assert e["agent_episodes"] == 8 and np.isfinite(e["mean"])
    assert 0 < report["env_s"] < report["learn_s"]
    rows = (tmp_path / "curve.csv").read_text().splitlines()
    assert rows[0].startswith("agent_steps,wall_s,env_s,step_reward,episodes")
    assert len(rows) == 1 + 4096 // (8 * PPOSettings().n_steps)


@pytest.mark.parametrize(("field", "value"), [("total_timesteps", 0), ("n_envs", 0),
                                              ("checkpoint_every", -1)])
def test_config_rejects_non_positive_counts(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"TrainConfig.{field} must be >= 1"):
        TrainConfig(**{field: value})


def test_one_hot_actions_puts_each_head_side_by_side() -> None:
    from rltrader.train_callbacks import one_hot_actions

    got = one_hot_actions(np.array([[0, 4, 2], [3, 0, 1]]), np.array([5, 5, 3]))
    assert got.dtype == np.float32
    assert got.tolist() == [[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1],
                            [0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0]]
    assert one_hot_actions(np.array([2, 0]), np.array([3])).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_previous_action_appends_the_last_actions() -> None:
    from rltrader.envs import SB3VecEnv
    from rltrader.train_callbacks import PreviousAction, one_hot_actions

    batched = BatchedMarketEnv(DEFAULT_ENV.replace(horizon=3), n_envs=2, n_agents=2, seed=1)
    venv = PreviousAction(SB3VecEnv(batched))
    width = batched.single_observation_space.shape[0]
    assert venv.observation_space.shape == (width + 13,)
    obs = venv.reset()
    assert obs.shape == (4, width + 13) and not obs[:, width:].any()
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(4):               # crosses an episode end (horizon 3)
        actions = rng.integers(0, [5, 5, 3], size=(4, 3))
        obs, _, dones, infos = venv.step(actions)
        expected = one_hot_actions(actions, np.array([5, 5, 3]))
        np.testing.assert_array_equal(obs[:, width:], expected)
        for i in np.flatnonzero(dones):
            np.testing.assert_array_equal(infos[i]["terminal_observation"][width:], expected[i])
            ended += 1
    assert ended == 4
