"""``rltrader train`` end to end on a tiny run: checkpoints, curve, evaluation, a policy that
loads and acts (rltrader.training.train)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.tools.cli import main  # noqa: E402
from rltrader.training.train import DEFAULT_ENV, PPOPolicy, PPOSettings, TrainConfig  # noqa: E402


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
        f"ppo_{n}_steps.zip" for n in (0, 1024, 2048, 3072, 4096)]   # 0: the clone
    assert (tmp_path / "checkpoints" / "ppo_vecnormalize_4096_steps.pkl").is_file()
    assert (tmp_path / "learning_curve.png").stat().st_size > 0

    env = BatchedMarketEnv(DEFAULT_ENV.replace(horizon=100), n_envs=4, n_agents=2, seed=9)
    policy = PPOPolicy(checkpoints[2], tmp_path / "checkpoints"
                       / "ppo_vecnormalize_2048_steps.pkl")
    assert policy.keep_head            # recorded in the saved model
    obs = env.reset(seed=9)
    # defaults: the previous action in the observation, a keep head before the env's heads
    assert policy.model.observation_space.shape == (obs.shape[1] + 13,)
    assert list(policy.model.action_space.nvec) == [2, 5, 5, 3]
    for _ in range(3):
        actions = policy(obs)
        assert actions.shape == (8, 3)
        assert all(env.single_action_space.contains(a) for a in actions)
        obs, *_ = env.step(actions)

    report = json.loads((tmp_path / "results.json").read_text())
    assert report["agent_steps"] == 4096
    assert set(report["evaluation"]) == {"ppo", "cloned_maker", "random", "fixed_spread_mm"}
    assert report["imitation"]["samples"] == 500 * 8
    assert set(report["ppo_minus"]) == {"cloned_maker", "random", "fixed_spread_mm"}
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
    from rltrader.training.callbacks import one_hot_actions

    got = one_hot_actions(np.array([[0, 4, 2], [3, 0, 1]]), np.array([5, 5, 3]))
    assert got.dtype == np.float32
    assert got.tolist() == [[1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1],
                            [0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0]]
    assert one_hot_actions(np.array([2, 0]), np.array([3])).tolist() == [[0, 0, 1], [1, 0, 0]]


def test_previous_action_appends_the_last_actions() -> None:
    from rltrader.envs import SB3VecEnv
    from rltrader.training.callbacks import PreviousAction, one_hot_actions

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


def test_keep_action_repeats_the_previous_action_when_its_head_says_so() -> None:
    from rltrader.envs import SB3VecEnv
    from rltrader.training.callbacks import KeepAction, PreviousAction, one_hot_actions

    batched = BatchedMarketEnv(DEFAULT_ENV.replace(horizon=5), n_envs=1, n_agents=3, seed=1)
    venv = KeepAction(PreviousAction(SB3VecEnv(batched)))
    assert list(venv.action_space.nvec) == [2, 5, 5, 3]
    width = batched.single_observation_space.shape[0]
    venv.reset()
    # agent 0 keeps from the start (the all-zero action), 1 acts then keeps, 2 always acts
    script = [np.array([[1, 4, 4, 2], [0, 2, 3, 1], [0, 1, 0, 2]]),
              np.array([[1, 3, 3, 1], [1, 0, 0, 0], [0, 4, 1, 0]])]
    expected = [np.array([[0, 0, 0], [2, 3, 1], [1, 0, 2]]),
                np.array([[0, 0, 0], [2, 3, 1], [4, 1, 0]])]
    for actions, env_actions in zip(script, expected, strict=True):
        obs, *_ = venv.step(actions)
        np.testing.assert_array_equal(venv.previous, env_actions)
        # the previous-action columns show what the env received
        np.testing.assert_array_equal(obs[:, width:],
                                      one_hot_actions(env_actions, np.array([5, 5, 3])))
    # after a reset there is no previous action: keeping sends the all-zero action
    obs = venv.reset()
    assert not venv.previous.any() and not obs[:, width:].any()
    venv.step(np.array([[1, 4, 4, 2]] * 3))
    assert not venv.previous.any()


def test_a_keep_head_policy_acts_through_its_own_previous_action(tmp_path: Path) -> None:
    config = TrainConfig(total_timesteps=512, n_envs=2, n_agents=2, seed=2, eval_episodes=1,
                         checkpoint_every=512, validation_seed=None,
                         env=DEFAULT_ENV.replace(horizon=50),
                         ppo=PPOSettings(n_steps=64, batch_size=256, previous_action=True,
                                         keep_head=True))
    from rltrader.training.callbacks import one_hot_actions
    from rltrader.training.train import train

    report = train(config, tmp_path, progress=False, evaluate_baselines=False)
    assert np.isfinite(report["evaluation"]["ppo"]["mean"])
    policy = PPOPolicy(tmp_path / "ppo_final.zip", tmp_path / "vecnormalize.pkl")
    assert policy.keep_head
    env = BatchedMarketEnv(config.env, n_envs=2, n_agents=2, seed=4)
    obs = env.reset(seed=4)
    assert policy(obs).shape == (4, 3)
    # the model's raw actions, scripted: its keep head repeats the row's last env action
    seen: list[np.ndarray] = []
    script = iter([np.array([[0, 1, 2, 0], [0, 0, 0, 2], [1, 4, 4, 1], [0, 3, 3, 1]]),
                   np.array([[1, 0, 0, 0], [0, 4, 1, 1], [1, 2, 2, 2], [1, 0, 4, 0]])])

    def scripted(model_obs: np.ndarray, deterministic: bool = True):
        seen.append(model_obs)
        return next(script), None

    first = policy.last.copy()
    policy.model.predict = scripted
    a1 = policy(obs).copy()
    np.testing.assert_array_equal(a1, [[1, 2, 0], [0, 0, 2], first[2], [3, 3, 1]])
    a2 = policy(obs)
    np.testing.assert_array_equal(a2, [[1, 2, 0], [4, 1, 1], first[2], [3, 3, 1]])
    # the second call's observations carry the first call's env actions (normalised)
    raw = np.concatenate([obs, one_hot_actions(a1, np.array([5, 5, 3]))], axis=1)
    np.testing.assert_allclose(seen[1], policy.normalizer.normalize_obs(raw), rtol=1e-6)
