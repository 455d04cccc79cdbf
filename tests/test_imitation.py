"""Warm-starting PPO from the market maker (rltrader.imitation) and the checkpoint selection
of ``rltrader train`` on validation markets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")

from rltrader.baselines import FixedSpreadMaker  # noqa: E402
from rltrader.imitation import (  # noqa: E402
    WithKeepHead,
    clone,
    demonstrate,
    discounted_returns,
)
from rltrader.train import (  # noqa: E402
    DEFAULT_ENV,
    PPOPolicy,
    PPOSettings,
    TrainConfig,
    make_vec_env,
    train,
)


def test_discounted_returns_restart_at_episode_ends() -> None:
    rewards = np.array([[1.0, 0.0], [2.0, 1.0], [4.0, 1.0]])
    dones = np.array([[False, False], [True, False], [False, False]])
    got = discounted_returns(rewards, dones, 0.5)
    # column 0: the episode ends after step 1, so step 0 sees 1 + 0.5 * 2 and step 2 only 4
    assert got[:, 0].tolist() == [2.0, 2.0, 4.0]
    assert got[:, 1].tolist() == [0.0 + 0.5 * (1 + 0.5 * 1), 1.5, 1.0]


def _small_config(**ppo: object) -> TrainConfig:
    settings = {"keep_head": False, "imitate_steps": 0, **ppo}
    return TrainConfig(total_timesteps=2_048, n_envs=4, n_agents=2, seed=5,
                       eval_episodes=1, checkpoint_every=1_024, validation_seed=7,
                       env=DEFAULT_ENV.replace(horizon=64),
                       ppo=PPOSettings(n_steps=64, batch_size=512, **settings))


def test_a_cloned_policy_acts_like_its_teacher_on_new_markets() -> None:
    from stable_baselines3 import PPO

    config = _small_config(previous_action=True)
    venv, _ = make_vec_env(config)
    model = PPO("MlpPolicy", venv, seed=0, device="cpu", n_steps=64, batch_size=512)
    # a low inventory limit, so that the teacher's withdrawals are part of what is cloned
    teacher = FixedSpreadMaker(config.env, venv.num_envs, offset=0, size=4.0,
                               max_inventory=0.1)
    width = venv.observation_space.shape[0] - 13        # PreviousAction adds 5 + 5 + 3
    demos = demonstrate(venv, teacher, 256, width)
    assert demos.observations.shape == (256, 8, width + 13)
    assert demos.actions.shape == (256, 8, 3)
    # the teacher withdraws a side near the inventory limit: both kinds of action are shown
    assert (demos.actions[..., 0] == 4).any() and (demos.actions[..., 0] == 0).any()

    report = clone(model, venv, demos, epochs=30, batch_size=256)
    assert report.samples == 256 * 8
    assert report.action_accuracy > 0.99 and min(report.head_accuracy) > 0.99
    assert report.teacher_probability > 0.9

    # on markets the demonstrations never saw, the clone's deterministic actions are the
    # teacher's (the previous action is the clone's own, as when it is evaluated)
    import pickle
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        model.save(Path(folder) / "m.zip")
        (Path(folder) / "v.pkl").write_bytes(pickle.dumps(venv))
        student = PPOPolicy(Path(folder) / "m.zip", Path(folder) / "v.pkl")
    from rltrader.envs import BatchedMarketEnv

    env = BatchedMarketEnv(config.env, n_envs=4, n_agents=2, seed=99)
    obs = env.reset(seed=99)
    agree = []
    for _ in range(60):
        mine, theirs = student(obs), teacher(obs).copy()
        agree.append((mine == theirs).all(axis=1))
        obs, *_ = env.step(mine)
    assert np.mean(agree) > 0.97


def test_train_with_imitation_saves_the_clone_and_selects_by_validation(
        tmp_path: Path) -> None:
    report = train(_small_config(imitate_steps=64, imitate_epochs=2), tmp_path,
                   progress=False)
    assert (tmp_path / "checkpoints" / "ppo_0_steps.zip").is_file()
    assert (tmp_path / "checkpoints" / "ppo_vecnormalize_0_steps.pkl").is_file()
    assert report["imitation"]["samples"] == 64 * 8
    # the clone, two checkpoints and the final weights (the same count as the last one)
    assert sorted(int(k) for k in report["validation"]) == [0, 1_024, 2_048]
    best = max(report["validation"].items(), key=lambda kv: kv[1]["mean"])
    assert report["selected_checkpoint"] == int(best[0])
    assert set(report["evaluation"]) == {"ppo", "cloned_maker", "random", "fixed_spread_mm"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["selected_checkpoint"] == report["selected_checkpoint"]


def test_a_teacher_with_a_keep_head_keeps_exactly_when_it_repeats_itself() -> None:
    script = iter([np.array([[0, 0, 2], [4, 0, 2]]), np.array([[0, 0, 2], [0, 0, 2]]),
                   np.array([[1, 0, 2], [0, 0, 2]])])
    teacher = WithKeepHead(lambda obs: next(script))
    obs = np.zeros((2, 3), dtype=np.float32)
    assert teacher(obs).tolist() == [[0, 0, 0, 2], [0, 4, 0, 2]]     # nothing to keep yet
    assert teacher(obs).tolist() == [[1, 0, 0, 2], [0, 0, 0, 2]]
    assert teacher(obs).tolist() == [[0, 1, 0, 2], [1, 0, 0, 2]]


def test_train_clones_into_a_keep_head_policy(tmp_path: Path) -> None:
    report = train(_small_config(imitate_steps=64, imitate_epochs=300, keep_head=True,
                                 previous_action=True), tmp_path, progress=False,
                   evaluate_baselines=False)
    assert report["imitation"]["action_accuracy"] > 0.95
    assert len(report["imitation"]["head_accuracy"]) == 4          # keep + 3 quote heads
