"""MixedMarketEnv: lanes of markets as one batched env, and restarts at the open.

Each lane is checked against a plain BatchedMarketEnv of its market and seed stepped with
the same actions (bit-identical buffers), before and after a restart; the restarts are
reproducible by seed, spread over the lanes and drawn within the range; the evaluation's
real data cannot be a training lane; the training config takes the markets; a warm start
clones the teacher lane by lane.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv
from rltrader.envs.mixed import Lane, MixedConfig, MixedMarketEnv, lanes_from
from rltrader.training.evaluate import TASKS
from tests._experiments import execution_toml, train_quietly

BASE = TASKS["execution"].replace(horizon=15)


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 9, n).astype(np.int64)


def _first_seeds(seed: int, n_lanes: int) -> list[np.random.Generator]:
    """Each lane's generator, as the env draws from it."""
    return [np.random.default_rng(c) for c in np.random.SeedSequence(seed).spawn(n_lanes)]


def test_each_lane_is_its_market_bit_for_bit() -> None:
    config = MixedConfig(BASE, (Lane("thin", 3), Lane("resilient", 2)))
    env = MixedMarketEnv(config, n_agents=2, seed=7)
    rngs = _first_seeds(7, 2)
    plain = [BatchedMarketEnv(BASE.replace(market=lane.market), n_envs=lane.n_envs,
                              n_agents=2, seed=int(r.integers(2**63)))
             for lane, r in zip(config.lanes, rngs, strict=True)]
    assert env.num_agents_total == 10 and env.observations.shape[0] == 10
    np.testing.assert_array_equal(env.observations[:6], plain[0].observations)
    np.testing.assert_array_equal(env.observations[6:], plain[1].observations)
    rng = np.random.default_rng(0)
    for _ in range(40):                      # past two episode ends
        a = _actions(rng, 10)
        obs, rew, term, trunc = env.step(a)
        for rows, p in ((slice(0, 6), plain[0]), (slice(6, 10), plain[1])):
            o, r, t, u = p.step(a[rows])
            np.testing.assert_array_equal(obs[rows], o)
            np.testing.assert_array_equal(rew[rows], r)
            np.testing.assert_array_equal(term[rows], t)
            np.testing.assert_array_equal(trunc[rows], u)
            if t.any():
                np.testing.assert_array_equal(env.final_observations[rows],
                                              p.final_observations)
    np.testing.assert_array_equal(env.episode_step, np.concatenate(
        [p.episode_step for p in plain]))


def test_a_restart_rebuilds_the_lane_at_the_open_and_keeps_the_ended_episode() -> None:
    horizon = BASE.horizon
    config = MixedConfig(BASE, (Lane("thin", 2),), restart_episodes=(2, 2))
    env = MixedMarketEnv(config, n_agents=1, seed=3)
    rng_lane = _first_seeds(3, 1)[0]
    plain = BatchedMarketEnv(BASE.replace(market="thin"), n_envs=2, n_agents=1,
                             seed=int(rng_lane.integers(2**63)))
    assert int(rng_lane.integers(2, 3)) == 2              # the first day's length
    rng = np.random.default_rng(1)
    for _ in range(2 * horizon):                         # two episodes: the restart
        a = _actions(rng, 2)
        obs, rew, term, _ = env.step(a)
        o, r, t, _ = plain.step(a)
        np.testing.assert_array_equal(rew, r)            # the ended episode's last reward
        np.testing.assert_array_equal(term, t)
    assert term.all() and env.restarts == [1]
    np.testing.assert_array_equal(env.final_observations, plain.final_observations)
    # the new market: what a fresh env of the drawn seed shows at its open
    fresh = BatchedMarketEnv(BASE.replace(market="thin"), n_envs=2, n_agents=1,
                             seed=int(rng_lane.integers(2**63)))
    np.testing.assert_array_equal(obs, fresh.observations)
    assert not np.array_equal(obs, o)                    # not the market that ran on
    for _ in range(horizon + 3):
        a = _actions(rng, 2)
        obs, rew, *_ = env.step(a)
        o, r, *_ = fresh.step(a)
        np.testing.assert_array_equal(obs, o)
        np.testing.assert_array_equal(rew, r)


def _run(seed: int, restart: tuple[int, int], steps: int) -> tuple[np.ndarray, list[int]]:
    config = MixedConfig(BASE, lanes_from([{"market": "thin", "n_envs": 4, "lanes": 4}]),
                         restart_episodes=restart)
    env = MixedMarketEnv(config, n_agents=1, seed=seed)
    rng = np.random.default_rng(5)
    seen = []
    for _ in range(steps):
        obs, *_ = env.step(_actions(rng, 4))
        seen.append(obs.copy())
    return np.array(seen), env.restarts


def test_restarts_are_reproducible_by_seed_and_spread_over_lanes() -> None:
    a, restarts_a = _run(11, (1, 4), 20 * BASE.horizon)
    b, restarts_b = _run(11, (1, 4), 20 * BASE.horizon)
    np.testing.assert_array_equal(a, b)
    assert restarts_a == restarts_b
    c, restarts_c = _run(12, (1, 4), 20 * BASE.horizon)
    assert not np.array_equal(a, c)
    # days of 1-4 episodes (mean 2.5) over 20 episodes: 4-20 restarts a lane, not in step
    assert all(4 <= r <= 20 for r in restarts_a + restarts_c)
    assert len(set(restarts_a)) > 1 or len(set(restarts_c)) > 1


def test_day_lengths_cover_the_range() -> None:
    config = MixedConfig(BASE, (Lane("thin", 1),), restart_episodes=(1, 3))
    env = MixedMarketEnv(config, n_agents=1, seed=0)
    draws = [env._day(np.random.default_rng(k)) for k in range(200)]
    assert set(draws) == {1, 2, 3}


def test_without_restarts_a_lane_runs_on() -> None:
    config = MixedConfig(BASE, (Lane("thin", 2),))
    env = MixedMarketEnv(config, n_agents=1, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5 * BASE.horizon):
        env.step(_actions(rng, 2))
    assert env.restarts == [0]


def test_reset_with_a_seed_is_a_new_run() -> None:
    config = MixedConfig(BASE, (Lane("thin", 2), Lane("resilient", 1)), (1, 2))
    env = MixedMarketEnv(config, n_agents=1, seed=4)
    first = env.observations.copy()
    rng = np.random.default_rng(0)
    for _ in range(3 * BASE.horizon):
        env.step(_actions(rng, 3))
    np.testing.assert_array_equal(env.reset(seed=4), first)
    assert env.restarts == [0, 0]


def test_bad_lanes_and_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="held out"):
        Lane("lobster", 4)
    with pytest.raises(ValueError, match="n_envs"):
        Lane("thin", 0)
    with pytest.raises(ValueError, match="restart_episodes"):
        MixedConfig(BASE, (Lane("thin", 1),), restart_episodes=(3, 2))
    with pytest.raises(ValueError, match="restart_episodes"):
        MixedConfig(BASE, (Lane("thin", 1),), restart_episodes=(0, 2))
    with pytest.raises(ValueError, match="lanes"):
        MixedConfig(BASE, ())
    with pytest.raises(ValueError, match="unknown keys"):
        lanes_from([{"market": "thin", "n_envs": 2, "seed": 1}])
    with pytest.raises(ValueError, match="n_envs"):
        lanes_from([{"market": "thin", "n_envs": 2, "lanes": 3}])
    env = MixedMarketEnv(MixedConfig(BASE, (Lane("thin", 2),)), n_agents=1)
    with pytest.raises(ValueError, match="rows"):
        env.step(np.zeros(3, np.int64))


def test_lanes_split_evenly() -> None:
    lanes = lanes_from([{"market": "thin", "n_envs": 10, "lanes": 3},
                        {"market": "resilient", "n_envs": 2}])
    assert [(x.market, x.n_envs) for x in lanes] == [
        ("thin", 4), ("thin", 3), ("thin", 3), ("resilient", 2)]


def test_a_real_record_lane_replays_it() -> None:
    config = MixedConfig(BASE, (Lane("thin", 1), Lane("coinbase", 2)), (1, 1))
    env = MixedMarketEnv(config, n_agents=1, seed=0)
    replay = env.lanes[1]
    assert replay.source is not None and env.config.lane_config(Lane("coinbase", 1)) \
        .base_qty == 100_000
    rng = np.random.default_rng(0)
    for _ in range(2 * BASE.horizon):
        obs, rew, term, trunc = env.step(_actions(rng, 3))
        assert np.isfinite(obs).all() and np.isfinite(rew).all()
    assert env.restarts == [2, 0]           # the simulated lane restarts, the replay runs on


def test_the_config_takes_markets_and_the_warm_start_clones_each_lane(tmp_path: Path
                                                                        ) -> None:
    pytest.importorskip("torch")
    from rltrader.training import experiment

    text = execution_toml("agent_steps = 2048\nrestart_episodes = [1, 2]\n",
                          '[[markets]]\nmarket = "thin"\nn_envs = 6\nlanes = 2\n'
                          '[[markets]]\nmarket = "resilient"\nn_envs = 2\n',
                          warm_start_steps=40)
    path = tmp_path / "mixed.toml"
    path.write_text(text)
    e = experiment.load(path)
    assert e.n_envs == 8 and e.mixed.restart_episodes == (1, 2)
    assert [x.n_envs for x in e.mixed.lanes] == [3, 3, 2]
    result = train_quietly(e, tmp_path, n_envs=8, agent_steps=2048)
    assert result["warm_start"]["agent_steps"] == 40 * 8
    # the passive-TWAP teacher at the open: a resting child or a wait, never a market order
    assert result["agent_steps"] >= 2048
    path.write_text(text.replace('n_agents = 1', 'n_agents = 1\nn_envs = 9'))
    with pytest.raises(ValueError, match="differs from the"):
        experiment.load(path)
    path.write_text(text.replace('market = "resilient"', 'market = "lobster"'))
    with pytest.raises(ValueError, match="held out"):
        experiment.load(path)


def test_the_example_config_parses() -> None:
    from rltrader.training import experiment

    path = Path(__file__).resolve().parent.parent / "examples" / "train" / "execution_mixed.toml"
    e = experiment.load(path)
    assert e.n_envs == 1024 and e.mixed.restart_episodes == (1, 20)
    assert {x.market for x in e.mixed.lanes} == {"realistic", "resilient", "thin",
                                                  "binance_perp", "coinbase"}


def test_the_teacher_rollout_acts_lane_by_lane_as_in_each_plain_market() -> None:
    pytest.importorskip("torch")
    from rltrader.training.evaluate import candidate
    from rltrader.training.fast_ppo import FastPPO, FastPPOSettings
    from rltrader.training.ppo.imitate import teacher_rollout

    config = MixedConfig(BASE, (Lane("thin", 3), Lane("resilient", 2)))
    env = MixedMarketEnv(config, n_agents=1, seed=9)
    trainer = FastPPO(env, FastPPOSettings(n_steps=8, threads=1, progress=False), seed=9)
    trainer.start()
    data = teacher_rollout(trainer, candidate("baseline:almgren_chriss"), 2 * BASE.horizon)
    rngs = _first_seeds(9, 2)
    start = 0
    for lane, r in zip(config.lanes, rngs, strict=True):
        plain = BatchedMarketEnv(BASE.replace(market=lane.market), n_envs=lane.n_envs,
                                 n_agents=1, seed=int(r.integers(2**63)))
        teacher = candidate("baseline:almgren_chriss")   # fitted to its own market
        teacher.begin(plain)
        rows = slice(start, start + lane.n_envs)
        for t in range(2 * BASE.horizon):
            np.testing.assert_array_equal(data["obs"][t, rows].numpy(), plain.observations)
            a = teacher.actions(np.asarray(plain.episode_step, dtype=np.int64),
                                BASE.horizon, plain, [0]).reshape(-1)
            np.testing.assert_array_equal(data["actions"][t, rows, 0].numpy(), a)
            _, reward, *_ = plain.step(a)
            np.testing.assert_array_equal(data["rewards"][t, rows].numpy(), reward)
        start += lane.n_envs


def test_the_restarts_example_config_parses() -> None:
    from rltrader.training import experiment

    path = (Path(__file__).resolve().parent.parent / "examples" / "train"
            / "execution_restarts.toml")
    e = experiment.load(path)
    assert e.n_envs == 1024 and e.mixed.restart_episodes == (1, 20)
    assert [(x.market, x.n_envs) for x in e.mixed.lanes] == [("realistic", 256)] * 4
    assert e.mixed.reward_scaling is None and e.seeds == (0, 1, 2, 3, 4)


def test_the_directional_mix_example_config_parses() -> None:
    from rltrader.training import experiment

    path = (Path(__file__).resolve().parent.parent / "examples" / "train"
            / "directional_mixed.toml")
    e = experiment.load(path)
    assert e.task == "directional" and e.n_envs == 1024 and e.seeds == (0, 1, 2, 3, 4)
    assert e.mixed.restart_episodes == (1, 20) and e.mixed.reward_scaling is None
    assert {(x.market, x.n_envs) for x in e.mixed.lanes} == {
        ("realistic", 128), ("resilient", 64), ("thin", 64)}             # 4 lanes each
    assert not {x.market for x in e.mixed.lanes} & {"lobster", "lobster_windows"}
    assert "lobster_windows" in e.evaluation.markets
    assert not set(e.seeds) & set(e.evaluation.seeds)
