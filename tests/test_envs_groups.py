"""Agent groups (issue 14, item 1): scripted market makers, learning executors and
directional traders of different sizes in one market, each group with its own action
mode, reward, sizes, latency and buffers; one arrival order for all of them."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.envs import EnvConfig
from rltrader.envs.groups import AgentGroup, GroupedMarketEnv

BASE = EnvConfig(horizon=50, warmup_steps=40)


def quote_at_touch(obs: np.ndarray) -> np.ndarray:
    return np.tile([0, 0, 0], (len(obs), 1))


def mixed(seed: int = 1) -> GroupedMarketEnv:
    return GroupedMarketEnv([
        AgentGroup("makers", 2, BASE.replace(action_mode="market_making",
                                             size_classes=(5.0, 5.0)), policy=quote_at_touch),
        AgentGroup("executors", 1, BASE.replace(action_mode="execution", size_classes=(3.0,),
                                                latency_ns=20_000_000)),
        AgentGroup("traders", 3, BASE.replace(size_classes=(1.0, 2.0, 10.0))),
    ], n_envs=4, seed=seed)


def run(env: GroupedMarketEnv, steps: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        result = env.step({"executors": rng.integers(0, 9, 4),
                           "traders": rng.integers(0, 12, 12)})
        for obs, rewards, terminated, _ in result.values():
            out += [obs.copy(), rewards.copy(), terminated.copy()]
    return out


def test_mixed_groups_keep_their_own_buffers_accounts_and_limits() -> None:
    env = mixed()
    shapes = {name: e.observations.shape for name, e in env.envs.items()}
    assert shapes == {"makers": (8, 38), "executors": (4, 41), "traders": (12, 38)}
    first = env.market.n_traders
    rng = np.random.default_rng(0)
    for _ in range(150):
        env.step({"executors": rng.integers(0, 9, 4), "traders": rng.integers(0, 12, 12)})
        env.market.books.check_integrity()
        owner = first
        for e in env.envs.values():          # each group's accounts are its own owners
            accounts = env.market.books.account_array[:, owner: owner + e.n_agents]
            np.testing.assert_array_equal(e.accounts(), accounts)
            assert np.all(np.abs(accounts["position"]).ravel() <= e.position_limit)
            owner += e.n_agents
    assert (env.envs["makers"].accounts()["volume"] > 0).all()
    assert (env.envs["executors"].kernel.agent_arrays["parent_lots"] == 30).all()


def test_the_same_seed_gives_the_same_run() -> None:
    a, b = run(mixed(3), 120), run(mixed(3), 120)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_identical_groups_earn_the_same_whatever_their_place_in_the_list() -> None:
    maker = BASE.replace(action_mode="market_making", size_classes=(2.0,), horizon=200)
    env = GroupedMarketEnv([AgentGroup("first", 1, maker, policy=quote_at_touch),
                            AgentGroup("second", 1, maker, policy=quote_at_touch)],
                           n_envs=128, seed=4)
    totals = {"first": np.zeros(128), "second": np.zeros(128)}
    for _ in range(400):
        for name, (_, rewards, _, _) in env.step().items():
            totals[name] += rewards
    difference = totals["first"] - totals["second"]
    se = difference.std() / np.sqrt(len(difference))
    assert abs(difference.mean()) < 3.5 * se and se < 2.0


def test_bad_groupings_are_refused() -> None:
    maker = AgentGroup("m", 1, BASE.replace(action_mode="market_making"),
                       policy=quote_at_touch)
    with pytest.raises(ValueError, match="horizon"):
        GroupedMarketEnv([maker, AgentGroup("t", 1, BASE.replace(horizon=10))])
    with pytest.raises(ValueError, match="distinct"):
        GroupedMarketEnv([maker, maker])
    env = GroupedMarketEnv([maker, AgentGroup("t", 1, BASE)])
    with pytest.raises(ValueError, match="learning group 't'"):
        env.step()
    with pytest.raises(ValueError, match="scripted"):
        env.step({"m": [[0, 0, 0]], "t": [0]})


def test_pettingzoo_sees_every_learning_agent_with_its_group_s_spaces() -> None:
    from pettingzoo.test import parallel_api_test

    from rltrader.envs import GroupedParallelEnv

    groups = [AgentGroup("makers", 1, BASE.replace(action_mode="market_making",
                                                   size_classes=(3.0,)), policy=quote_at_touch),
              AgentGroup("exec", 1, BASE.replace(action_mode="execution", size_classes=(2.0,))),
              AgentGroup("orders", 2, BASE.replace(action_mode="order",
                                                   size_classes=(1.0, 2.0)))]
    env = GroupedParallelEnv(groups, seed=2)
    assert env.possible_agents == ["exec_0", "orders_0", "orders_1"]
    assert env.action_space("exec_0").n == 9
    assert env.action_space("orders_1").shape == (5,)
    assert env.observation_space("exec_0").shape == (41,)
    parallel_api_test(env, num_cycles=60)

    # the dicts are the grouped env's buffers, agent by agent, through an episode's end
    plain = GroupedMarketEnv(groups, n_envs=1, seed=3)
    env = GroupedParallelEnv(groups, seed=3)
    env.reset()
    plain.reset()
    rng = np.random.default_rng(0)
    for _ in range(60):
        if not env.agents:
            env.reset()
            plain.reset()
        actions = {"exec": rng.integers(0, 9, 1),
                   "orders": np.stack([rng.integers(0, h, 2) for h in (5, 4, 3, 4, 4)], 1)}
        result = plain.step(actions)
        obs, rewards, terminated, truncated, _ = env.step(
            {"exec_0": int(actions["exec"][0]), "orders_0": actions["orders"][0],
             "orders_1": actions["orders"][1]})
        for agent, (group, i) in env._where.items():
            rows, r, term, trunc = result[group]
            done = bool(term[0] or trunc[0])
            want = plain.envs[group].final_observations[i] if done else rows[i]
            np.testing.assert_array_equal(obs[agent], want)
            assert (rewards[agent], terminated[agent], truncated[agent]) == (
                float(r[i]), bool(term[i]), bool(trunc[i]))


def test_groups_trade_several_correlated_symbols() -> None:
    """Groups in a multi-asset market: every group's agents have a row per symbol; the
    symbols' fundamentals share a common factor."""
    from rltrader.sim.config import preset

    market = preset("resilient")
    market = market.replace(fundamental=dataclass_replace(market.fundamental,
                                                          correlation=0.8))
    base = BASE.replace(market=market, symbols=2)
    env = GroupedMarketEnv([
        AgentGroup("makers", 1, base.replace(action_mode="market_making",
                                             size_classes=(5.0,)), policy=quote_at_touch),
        AgentGroup("traders", 2, base.replace(size_classes=(1.0, 10.0)))], n_envs=3, seed=5)
    assert env.market.config.symbols == ("XYZ0", "XYZ1")
    assert env.envs["traders"].observations.shape == (2 * 3 * 2, 38)
    rng = np.random.default_rng(0)
    for _ in range(60):
        env.step({"traders": rng.integers(0, 12, 12)})
        env.market.books.check_integrity()
    assert env.envs["makers"].accounts().shape == (6, 1)


def dataclass_replace(obj: object, **changes: object) -> object:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_gymnasium_and_sb3_serve_one_learning_group_among_scripted_ones() -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from rltrader.envs import GroupGymEnv, GroupLearner, SB3VecEnv

    groups = [AgentGroup("makers", 2, BASE.replace(action_mode="market_making",
                                                   size_classes=(5.0, 5.0)),
                         policy=quote_at_touch),
              AgentGroup("trader", 1, BASE.replace(action_mode="order", size_classes=(2.0,)))]
    env = GroupGymEnv(groups, "trader", seed=1)
    check_env(env, skip_render_check=True)
    sb3_check_env(GroupGymEnv(groups, "trader", seed=1))
    grouped = GroupedMarketEnv(groups, n_envs=4, seed=2)
    venv = SB3VecEnv(GroupLearner(grouped, "trader"))
    assert venv.num_envs == 4 and venv.action_space.shape == (5,)
    venv.reset()
    venv.action_space.seed(0)
    for _ in range(55):                    # through an episode's end (horizon 50)
        obs, rewards, dones, infos = venv.step(
            np.stack([venv.action_space.sample() for _ in range(4)]))
    assert obs.shape == (4, 54) and len(infos) == 4
    with pytest.raises(ValueError, match="scripted"):
        GroupLearner(GroupedMarketEnv([groups[1], AgentGroup(
            "other", 1, BASE.replace(size_classes=(1.0,)))], seed=0), "trader")


def test_each_group_pays_its_own_fees() -> None:
    """A fee tier per group: two identical groups of market buyers, one paying 0 and one
    300 ppm as takers, in the same books."""
    buyer = BASE.replace(size_classes=(1.0,), taker_fee_ppm=0)
    env = GroupedMarketEnv([AgentGroup("cheap", 1, buyer),
                            AgentGroup("dear", 1, buyer.replace(taker_fee_ppm=300))],
                           n_envs=4, seed=6)
    for _ in range(10):
        env.step({"cheap": np.full(4, 9), "dear": np.full(4, 9)})
    cheap, dear = env.envs["cheap"].accounts(), env.envs["dear"].accounts()
    assert (cheap["fees"] == 0).all() and (cheap["volume"] > 0).all()
    notional = -(dear["cash"] + dear["fees"])           # what the lots cost
    # 300 ppm of each fill, truncated fill by fill (less than a tick x lot each)
    assert (dear["fees"] <= notional * 300 // 10**6).all()
    assert (dear["fees"] > notional * 300 / 10**6 - dear["volume"]).all()
    assert (env.market.books.book_array["taker_fee_ppm"] == 0).all()   # the first group's


def test_a_groups_view_cannot_step_or_reset_on_its_own() -> None:
    """Episodes of all groups run in step (one liquidation, one arrival order): resetting
    or stepping one group's view alone would carry a position past its episode's end or
    liquidate another group mid-episode."""
    env = mixed()
    view = env.envs["traders"]
    with pytest.raises(RuntimeError, match="GroupedMarketEnv"):
        view.reset()
    with pytest.raises(RuntimeError, match="GroupedMarketEnv"):
        view.step(np.zeros(12, dtype=np.int64))
    env.step({"executors": np.zeros(4, dtype=np.int64), "traders": np.zeros(12, dtype=np.int64)})


def test_reset_mid_episode_values_every_group_on_a_book_without_agent_orders() -> None:
    """``reset()`` with orders resting: every group withdraws before any group values its
    start, so whatever the order of the groups, recomputing the start changes nothing."""
    base = EnvConfig(market="thin", horizon=100, warmup_steps=20, size_classes=(5.0,),
                     end_of_episode="carry")
    env = GroupedMarketEnv([AgentGroup("a", 1, base),
                            AgentGroup("m", 1, base.replace(action_mode="market_making"))],
                           n_envs=8, seed=2)
    for _ in range(20):
        env.step({"a": np.full(8, 9), "m": np.tile([0, 0, 2], (8, 1))})
    env.reset()
    kernels = [e.kernel for e in env.envs.values()]
    before = [k.agent_arrays["base_value"].copy() for k in kernels]
    assert any(np.any(e.accounts()["position"] != 0) for e in env.envs.values())
    for k in kernels:
        k.begin(True)
    for k, value in zip(kernels, before, strict=True):
        np.testing.assert_array_equal(k.agent_arrays["base_value"], value)
