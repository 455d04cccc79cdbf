"""The fast trainer's warm start (rltrader.training.ppo.imitate): a clone of a scripted
maker acts like it on markets it never saw, the teacher's steps feed the normaliser but
not the step count, its misuse raises, and ``train`` writes the clone."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rltrader.envs import BatchedMarketEnv, EnvConfig  # noqa: E402
from rltrader.training.exploits import FixedSpreadMaker  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings, load_policy, train  # noqa: E402
from rltrader.training.ppo.imitate import clone  # noqa: E402

QUIET = {"progress": False, "threads": 1}
#: a maker whose inventory limit binds often, so that withdrawals are part of the clone
TEACHER = {"offset": 1, "size": 2.0, "max_inventory": 0.2}
CONFIG = EnvConfig(action_mode="market_making", horizon=50)


def _teacher_agreement(policy, config: EnvConfig, seed: int, steps: int = 60) -> float:
    """Share of rows where the policy's action equals the teacher's, the teacher driving
    a fresh env (markets the clone never saw)."""
    env = BatchedMarketEnv(config, n_envs=8, n_agents=2, seed=seed)
    teacher = FixedSpreadMaker(**TEACHER)
    teacher.begin(env)
    agree = []
    for _ in range(steps):
        wanted = teacher.actions(np.asarray(env.episode_step), config.horizon, env, [0, 1])
        mine = np.asarray(policy(env.observations)).reshape(wanted.shape)
        agree.append((mine == wanted).all(-1).ravel())
        env.step(wanted.reshape(16, -1))
    return float(np.concatenate(agree).mean())


def test_a_clone_acts_like_its_teacher_on_unseen_markets() -> None:
    env = BatchedMarketEnv(CONFIG, n_envs=16, n_agents=2, seed=3)
    trainer = FastPPO(env, FastPPOSettings(**QUIET), seed=3)
    stats = clone(trainer, FixedSpreadMaker(**TEACHER), steps=150, epochs=20,
                  minibatch_size=256)
    assert stats["matched"] > 0.97 and stats["agent_steps"] == 150 * 32
    # the teacher withdraws a side at its limit: both kinds of rows were seen and cloned
    assert _teacher_agreement(trainer.policy(), CONFIG, seed=99) > 0.95
    # the teacher's steps are not the run's: PPO's count starts at zero
    assert trainer.agent_steps == 0
    # the normaliser has the teacher's observations (the first reset's plus 150 steps')
    assert float(trainer.model.obs_norm.count) == 151 * 32
    rows = trainer.learn(32 * 8)            # PPO continues from where the teacher left off
    assert np.isfinite(rows[0]["policy_loss"])


def test_smoothing_keeps_exploration() -> None:
    entropies = []
    for smoothing in (0.0, 0.2):
        env = BatchedMarketEnv(CONFIG, n_envs=4, n_agents=2, seed=0)
        trainer = FastPPO(env, FastPPOSettings(**QUIET), seed=0)
        clone(trainer, FixedSpreadMaker(**TEACHER), steps=40, epochs=30, minibatch_size=32,
              smoothing=smoothing)
        z = trainer.model.normalize(torch.from_numpy(env.observations))
        with torch.no_grad():
            logp = trainer.model.head(0, trainer.model.nets[0].actor.mlp(z))
        entropies.append(float(-(logp.exp() * logp).sum((-1, -2)).mean()))
    assert entropies[1] > entropies[0] + 0.5


def test_train_with_a_warm_start_writes_the_clone(tmp_path) -> None:
    settings = FastPPOSettings(n_steps=8, warm_start="hold", warm_start_steps=10,
                               warm_start_epochs=300, **QUIET)
    results = train(EnvConfig(action_mode="discrete", horizon=5), n_envs=2, n_agents=2,
                    total_agent_steps=32, seed=0, out_dir=tmp_path, settings=settings)
    assert (tmp_path / "clone.pt").stat().st_size > 0
    assert results["agent_steps"] == 32
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["warm_start"]["teacher"] == "hold"
    assert saved["warm_start"]["agent_steps"] == 40
    # the clone of holding holds
    policy = load_policy(tmp_path / "clone.pt")
    env = BatchedMarketEnv(EnvConfig(action_mode="discrete", horizon=5), n_envs=2,
                           n_agents=2, seed=7)
    assert (np.asarray(policy(env.observations)) == 0).all()


def test_warm_start_misuse_raises(tmp_path) -> None:
    for bad in ({"warm_start": ""}, {"warm_start_steps": 0}, {"warm_start_epochs": 1.5},
                {"warm_start_smoothing": 1.0}):
        with pytest.raises(ValueError, match="warm_start"):
            FastPPOSettings(**bad)
    with pytest.raises(ValueError, match="unknown baseline"):
        train(EnvConfig(horizon=5), n_envs=1, n_agents=1, total_agent_steps=8,
              out_dir=tmp_path, settings=FastPPOSettings(warm_start="nope", **QUIET))
    box = BatchedMarketEnv(EnvConfig(action_mode="continuous", horizon=5), n_envs=1,
                           n_agents=1, seed=0)
    with pytest.raises(ValueError, match="categorical"):
        clone(FastPPO(box, FastPPOSettings(**QUIET)), FixedSpreadMaker(), steps=2)
    env = BatchedMarketEnv(CONFIG, n_envs=1, n_agents=1, seed=0)
    with pytest.raises(ValueError, match="feed-forward"):
        clone(FastPPO(env, FastPPOSettings(recurrent=True, **QUIET)), FixedSpreadMaker(),
              steps=2)
    with pytest.raises(ValueError, match="smoothing"):
        clone(FastPPO(env, FastPPOSettings(**QUIET)), FixedSpreadMaker(), steps=2,
              smoothing=-0.1)


@pytest.mark.parametrize("gamma, expected", [(1.0, 30), (0.9, 30)])
def test_the_critic_is_fitted_on_every_complete_return(gamma, expected) -> None:
    # episodes of 10 steps end at steps 9, 19, 29: every one of the 30 steps' returns is
    # complete, undiscounted or not (it was one step a column with gamma 1)
    env = BatchedMarketEnv(CONFIG.replace(horizon=10), n_envs=2, n_agents=2, seed=0)
    trainer = FastPPO(env, FastPPOSettings(gamma=gamma, **QUIET))
    stats = clone(trainer, FixedSpreadMaker(**TEACHER), steps=30, epochs=1)
    assert stats["value_samples"] == expected * 4
    # cut mid-episode: undiscounted, the last episode's 5 steps lack their end; with gamma
    # 0.9 (30 steps of discounting kept) only the steps before the last end count
    env = BatchedMarketEnv(CONFIG.replace(horizon=10), n_envs=2, n_agents=2, seed=0)
    trainer = FastPPO(env, FastPPOSettings(gamma=gamma, **QUIET))
    stats = clone(trainer, FixedSpreadMaker(**TEACHER), steps=25, epochs=1)
    assert stats["value_samples"] == 20 * 4
