"""MixedMarketEnv lanes of changed markets: ``Lane(market, n_envs, sim=..., env=...)``.

A changed lane is checked against a plain BatchedMarketEnv built from the changed configs
and the lane's seed, stepped with the same actions (bit-identical buffers); a lane whose
changes restate the preset is bit-identical to the plain lane; a lane without changes is
built exactly as before; the fees of a changed lane are charged (its cash pays them, its
rewards are that cash); bad changes are refused with the field named; the config file
takes ``sim`` and ``env`` tables (examples/train/directional_wide.toml).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv
from rltrader.envs.mixed import Lane, MixedConfig, MixedMarketEnv, changed_market, lanes_from
from rltrader.sim.config import preset
from rltrader.training.evaluate import TASKS

BASE = TASKS["directional"].replace(horizon=15)
WIDE = {"fundamental": {"sigma": 15.0}, "makers": {"half_spread": 8.0, "spacing": 2}}
FEES = {"maker_fee_ppm": 500, "taker_fee_ppm": 700}


def _lane_seeds(seed: int, n_lanes: int) -> list[int]:
    """Each lane's first market seed, as the env draws it."""
    return [int(np.random.default_rng(c).integers(2**63))
            for c in np.random.SeedSequence(seed).spawn(n_lanes)]


def _same_run(env: MixedMarketEnv, plain: list[BatchedMarketEnv], steps: int) -> None:
    """Step ``env`` and the plain envs of its lanes with the same random actions."""
    rng = np.random.default_rng(1)
    np.testing.assert_array_equal(env.observations, np.concatenate(
        [p.observations for p in plain]))
    for _ in range(steps):
        a = rng.integers(0, env.single_action_space.n, env.num_agents_total).astype(np.int64)
        obs, rew, term, trunc = env.step(a)
        for rows, p in zip(env.rows, plain, strict=True):
            o, r, t, u = p.step(a[rows])
            np.testing.assert_array_equal(obs[rows], o)
            np.testing.assert_array_equal(rew[rows], r)
            np.testing.assert_array_equal(term[rows], t)
            np.testing.assert_array_equal(trunc[rows], u)


def test_a_changed_lane_is_its_changed_market_bit_for_bit() -> None:
    lanes = (Lane("realistic", 2), Lane("realistic", 3, sim=WIDE, env=FEES))
    env = MixedMarketEnv(MixedConfig(BASE, lanes), n_agents=1, seed=3)
    market = preset("realistic")
    wide = market.replace(
        fundamental=dataclasses.replace(market.fundamental, sigma=15.0),
        makers=dataclasses.replace(market.makers, half_spread=8.0, spacing=2))
    seeds = _lane_seeds(3, 2)
    plain = [BatchedMarketEnv(BASE.replace(market="realistic"), n_envs=2, n_agents=1,
                              seed=seeds[0]),
             BatchedMarketEnv(BASE.replace(market=wide, **FEES), n_envs=3, n_agents=1,
                              seed=seeds[1])]
    assert env.lanes[1].config.taker_fee_ppm == 700 and env.lanes[1].config.maker_fee_ppm == 500
    assert env.lanes[0].config == BASE.replace(market="realistic")
    _same_run(env, plain, 40)


def test_changes_that_restate_the_preset_change_nothing() -> None:
    market = preset("thin")
    same = {"fundamental": {"sigma": market.fundamental.sigma}, "name": market.name}
    a = MixedMarketEnv(MixedConfig(BASE, (Lane("thin", 3),)), n_agents=2, seed=5)
    b = MixedMarketEnv(MixedConfig(BASE, (Lane("thin", 3, sim=same,
                                                   env={"taker_fee_ppm": 100}),)),
                       n_agents=2, seed=5)
    assert Lane("thin", 3).market_config() == "thin"
    assert changed_market(market, same) == market
    rng = np.random.default_rng(2)
    np.testing.assert_array_equal(a.observations, b.observations)
    for _ in range(40):
        actions = rng.integers(0, a.single_action_space.n, 6).astype(np.int64)
        a.step(actions)
        b.step(actions)
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.rewards, b.rewards)


def test_a_changed_lane_charges_its_fees_and_its_rewards_are_cash() -> None:
    """Agents that trade every step (random actions) in a lane with fees of 500 / 700 ppm:
    the fees are charged, and the rewards summed over an episode are the cash change over
    the order size, the fees included (the position is flat at the episode's end)."""
    lanes = (Lane("realistic", 4, env=FEES),)
    env = MixedMarketEnv(MixedConfig(BASE, lanes), n_agents=1, seed=11)
    lane = env.lanes[0]
    start = lane.accounts().reshape(-1).copy()
    qty = lane.order_qty.astype(float).reshape(-1)
    rng = np.random.default_rng(4)
    total = np.zeros(4)
    for _ in range(BASE.horizon):
        env.step(rng.integers(1, env.single_action_space.n, 4).astype(np.int64))
        total += env.rewards
    assert env.terminated.all() or env.truncated.all()
    end = lane.accounts().reshape(-1)
    fees = (end["fees"] - start["fees"]).astype(float)
    assert (fees > 0).all()
    assert (end["position"] == 0).all()
    np.testing.assert_allclose(total, (end["cash"] - start["cash"]) / qty, atol=1e-4)


def test_bad_changes_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="no field 'sigma'"):
        Lane("thin", 1, sim={"sigma": 3.0})
    with pytest.raises(ValueError, match=r"no field\(s\) \['width'\]"):
        Lane("thin", 1, sim={"makers": {"width": 3.0}})
    with pytest.raises(ValueError, match="sigma"):
        Lane("thin", 1, sim={"fundamental": {"sigma": -1.0}})
    with pytest.raises(ValueError, match="not a table"):
        Lane("thin", 1, sim={"name": {"x": 1}})
    with pytest.raises(ValueError, match="real record"):
        Lane("coinbase", 1, sim={"name": "x"})
    with pytest.raises(ValueError, match="non-empty table"):
        Lane("thin", 1, sim={})
    with pytest.raises(ValueError, match="non-empty table"):
        Lane("thin", 1, env=[("taker_fee_ppm", 5)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"may change only .*got \['market'\]"):
        Lane("thin", 1, env={"market": "resilient"})
    with pytest.raises(ValueError, match=r"got \['price_scale'\]"):
        Lane("thin", 1, env={"price_scale": 2.0, "taker_fee_ppm": 5})
    with pytest.raises(ValueError, match="unknown preset"):
        Lane("nowhere", 1, sim={"name": "x"})
    with pytest.raises(ValueError, match="lane 'thin'.*taker_fee_ppm"):
        MixedConfig(BASE, (Lane("thin", 1, env={"taker_fee_ppm": 2.5}),))
    with pytest.raises(ValueError, match=r"got \['fee'\]"):
        Lane("thin", 1, env={"fee": 5})
    with pytest.raises(ValueError, match="held out"):
        Lane("lobster", 1, env={"taker_fee_ppm": 5})


def test_a_lane_keeps_its_own_copy_of_its_changes() -> None:
    """Changing the caller's tables after a lane was checked changes nothing in it, and
    lanes built from one table hold one copy each."""
    sim, env = {"makers": {"half_spread": 8.0}}, {"taker_fee_ppm": 500}
    lane, other = Lane("realistic", 2, sim=sim, env=env), Lane("realistic", 2, sim=sim)
    before = lane.market_config()
    sim["makers"]["half_spread"] = -5.0
    env["taker_fee_ppm"] = -1
    assert lane.market_config() == before == other.market_config()
    assert lane.env == {"taker_fee_ppm": 500}
    assert lane.sim is not other.sim and lane.sim["makers"] is not other.sim["makers"]


def test_the_config_file_takes_sim_and_env_tables() -> None:
    from rltrader.training.experiment import load

    lanes = lanes_from([{"market": "realistic", "n_envs": 4, "lanes": 2, "sim": WIDE,
                         "env": FEES}, {"market": "thin", "n_envs": 1}])
    assert [(x.n_envs, x.sim, x.env) for x in lanes] == [(2, WIDE, FEES), (2, WIDE, FEES),
                                                        (1, None, None)]
    path = Path(__file__).resolve().parents[1] / "examples/train/directional_wide.toml"
    mixed = load(path).mixed
    changed = [lane for lane in mixed.lanes if lane.sim is not None]
    assert mixed.n_envs == 1024 and len(changed) == 4
    assert all(lane.market == "realistic" and lane.env["maker_fee_ppm"] >= 300
               for lane in changed)
    assert {mixed.lane_config(lane).market.makers.half_spread for lane in changed} == {4.0, 8.0}
