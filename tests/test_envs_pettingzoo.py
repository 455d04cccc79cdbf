"""MarketParallelEnv: PettingZoo's own API tests (parallel, and AEC through the converter),
a multi-step determinism rollout, the episode end and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test
from pettingzoo.utils import parallel_to_aec

from rltrader.envs import EnvConfig, MarketParallelEnv, observation_names

CONFIG = EnvConfig(horizon=30, warmup_steps=30)
TIME_LEFT = observation_names(CONFIG.depth).index("time_left")


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("mode", ["discrete", "market_making", "order", "continuous",
                                  "execution"])
def test_parallel_api(mode: str) -> None:
    config = CONFIG.replace(action_mode=mode)
    parallel_api_test(MarketParallelEnv(config, n_agents=3), num_cycles=100)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_aec_api_through_the_converter() -> None:
    api_test(parallel_to_aec(MarketParallelEnv(CONFIG, n_agents=3)), num_cycles=100)


def rollout(env: MarketParallelEnv, seed: int, steps: int) -> list[np.ndarray]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    out = [np.stack(list(obs.values()))]
    for _ in range(steps):
        if not env.agents:
            obs, _ = env.reset()
            out.append(np.stack(list(obs.values())))
        actions = {a: int(rng.integers(0, env.action_space(a).n)) for a in env.agents}
        obs, rewards, terms, truncs, _ = env.step(actions)
        out += [np.stack(list(obs.values())), np.array(list(rewards.values())),
                np.array(list(terms.values()))]
    return out


def test_same_seed_gives_identical_multi_step_rollouts() -> None:
    a = rollout(MarketParallelEnv(CONFIG, n_agents=4, seed=1), seed=5, steps=70)
    b = rollout(MarketParallelEnv(CONFIG, n_agents=4, seed=2), seed=5, steps=70)
    c = rollout(MarketParallelEnv(CONFIG, n_agents=4, seed=1), seed=6, steps=70)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_episode_end_returns_final_observations_and_empties_agents() -> None:
    env = MarketParallelEnv(CONFIG.replace(horizon=3), n_agents=2)
    env.reset(seed=0)
    for _ in range(3):
        obs, _, terms, truncs, _ = env.step(dict.fromkeys(env.agents, 0))
    assert all(terms.values()) and not any(truncs.values()) and env.agents == []
    assert all(o[TIME_LEFT] == 0.0 for o in obs.values())      # the final observation
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})
    obs, _ = env.reset()
    assert env.agents == ["trader_0", "trader_1"] and all(o[TIME_LEFT] == 1.0 for o in obs.values())


def test_returned_dicts_are_the_callers_to_keep() -> None:
    """Each step returns fresh dicts and observation rows: changing or keeping one does not
    touch the env or a later step's results (the flag dicts are copies of shared ones)."""
    env = MarketParallelEnv(CONFIG.replace(horizon=3), n_agents=2)
    env.reset(seed=0)
    obs, _, terms, truncs, infos = env.step(dict.fromkeys(env.agents, 0))
    kept = obs["trader_0"].copy()
    terms["trader_0"] = True
    truncs.clear()
    infos["trader_1"]["note"] = 1
    obs2, _, terms2, truncs2, infos2 = env.step(dict.fromkeys(env.agents, 0))
    assert terms2 == {"trader_0": False, "trader_1": False} and terms2 is not terms
    assert truncs2 == {"trader_0": False, "trader_1": False}
    assert infos2 == {"trader_0": {}, "trader_1": {}}
    assert np.array_equal(obs["trader_0"], kept)
    _, _, terms3, truncs3, _ = env.step(dict.fromkeys(env.agents, 0))
    assert terms3 == {"trader_0": True, "trader_1": True} and not any(truncs3.values())
    terms3["trader_0"] = False
    env.reset()
    _, _, terms4, _, _ = env.step(dict.fromkeys(env.agents, 0))
    assert terms4 == {"trader_0": False, "trader_1": False}


def test_spaces_are_cached_and_bad_actions_raise() -> None:
    env = MarketParallelEnv(CONFIG, n_agents=2)
    assert env.observation_space("trader_0") is env.observation_space("trader_1")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="missing \\['trader_1'\\]"):
        env.step({"trader_0": 0})
    with pytest.raises(ValueError, match="unknown \\['x'\\]"):
        env.step({"trader_0": 0, "trader_1": 0, "x": 0})
    with pytest.raises(ValueError, match="outside Discrete"):
        env.step({"trader_0": 99, "trader_1": 0})
