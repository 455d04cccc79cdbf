"""The RLlib adapter (rltrader.envs.rllib): PettingZoo's parallel env under RLlib's
``ParallelPettingZooEnv``, registered with Ray Tune, trained one PPO iteration.

RLlib pins its own Gymnasium, so the ``rllib`` extra lives in an environment of its own
(docs/scale.md): without ``ray.rllib`` importable this module is skipped.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray.rllib", reason="RLlib is the 'rllib' extra, installed in an "
                    "environment of its own (it pins gymnasium==1.2.2): docs/scale.md")

import _ray_cluster  # noqa: E402

from rltrader.envs import EnvConfig, MarketParallelEnv  # noqa: E402
from rltrader.envs.rllib import ENV_NAME, make_env, ppo_config, register  # noqa: E402

#: the module's local Ray instance (two CPUs)
ray_cluster = _ray_cluster.ray_cluster
FIELDS = {"horizon": 10, "warmup_steps": 20}


def test_the_wrapped_env_is_the_pettingzoo_env_step_for_step() -> None:
    env = make_env({"n_agents": 3, "seed": 4, "env": FIELDS})
    direct = MarketParallelEnv(EnvConfig(**FIELDS), n_agents=3, seed=4)
    obs, _ = env.reset(seed=9)
    expected, _ = direct.reset(seed=9)
    assert sorted(obs) == ["trader_0", "trader_1", "trader_2"]
    rng = np.random.default_rng(0)
    for t in range(FIELDS["horizon"]):
        actions = {a: int(rng.integers(0, 12)) for a in direct.agents}
        obs, rewards, terminated, truncated, _ = env.step(actions)
        expected, expected_rewards, _, _, _ = direct.step(actions)
        for agent in expected:
            np.testing.assert_array_equal(obs[agent], expected[agent])
            assert rewards[agent] == expected_rewards[agent]
        assert terminated["__all__"] == (t == FIELDS["horizon"] - 1)
        assert not truncated["__all__"]


def test_runners_get_their_own_seeds() -> None:
    class Context(dict):                  # RLlib's EnvContext: a dict with indices
        worker_index, vector_index = 1, 2

    env = make_env(Context(n_agents=1, seed=4, env=FIELDS))
    direct = MarketParallelEnv(EnvConfig(**FIELDS), n_agents=1, seed=1_006)
    np.testing.assert_array_equal(env.par_env.batched.observations,
                                  direct.batched.observations)


@pytest.mark.parametrize(("config", "error"), [
    ({"n_agent": 2}, ValueError), ({"seed": -1}, ValueError), ({"seed": 1.5}, ValueError),
    ({"env": [("horizon", 5)]}, TypeError), ({"env": {"horizon": 0}}, ValueError)])
def test_bad_env_config_raises(config, error) -> None:
    with pytest.raises(error):
        make_env(config)


def test_ppo_trains_an_iteration_with_one_shared_policy(ray_cluster) -> None:
    assert register() == ENV_NAME
    algo = ppo_config({"n_agents": 2, "env": FIELDS}).training(
        train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1).build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    runners = result["env_runners"]
    assert runners["num_agent_steps_sampled_lifetime"] == {"trader_0": 200, "trader_1": 200}
    assert runners["num_episodes"] >= 200 // FIELDS["horizon"] - 1
    assert np.isfinite(runners["episode_return_mean"])
    assert "shared" in result["learners"]
