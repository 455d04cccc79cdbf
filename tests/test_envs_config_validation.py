"""EnvConfig refuses values that used to pass its checks and fail later (or never): NaN
and non-integer counts, float fees, orders beyond the core's MAX_QTY, position limits
beyond int64, scales that make observations or rewards infinite. And the adapters' small
misuse cases: ``reset(seed=[])``, out-of-range SB3 indices, a fractional ``n_others``; the
Gymnasium and PettingZoo adapters check the actions once per step and copy the
observation once."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import rltrader.envs.batched as batched_module
import rltrader.envs.gym as gym_module
import rltrader.envs.pettingzoo as pettingzoo_module
from rltrader import MAX_QTY
from rltrader.core.constants import MAX_FEE_PPM
from rltrader.envs import BatchedMarketEnv, EnvConfig, MarketEnv, MarketParallelEnv, MarketVectorEnv
from rltrader.envs.sb3 import SB3VecEnv

NAN = float("nan")
SMALL = EnvConfig(horizon=20, warmup_steps=30)

INT_FIELDS = ("horizon", "return_lag", "max_orders", "scan_ticks", "warmup_steps", "depth",
              "replay_step_ns", "base_qty", "base_position_limit")


@pytest.mark.parametrize("name", INT_FIELDS)
@pytest.mark.parametrize("value", [NAN, 1.5, 4.0, math.inf, True, "4", None])
def test_integer_fields_must_be_ints(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"EnvConfig.{name} must be an int"):
        EnvConfig(**{name: value})


def test_the_message_names_the_field_and_the_value() -> None:
    with pytest.raises(ValueError, match=r"^EnvConfig.horizon must be an int >= 1, got 1.5$"):
        EnvConfig(horizon=1.5)


@pytest.mark.parametrize("name", INT_FIELDS)
def test_numpy_integers_are_ints(name: str) -> None:
    EnvConfig(**{name: np.int64(getattr(EnvConfig(), name))})


@pytest.mark.parametrize(("name", "value"), [
    ("depth", 2**31), ("max_orders", 2**40), ("return_lag", 2**31), ("scan_ticks", 2**31)])
def test_int32_fields_have_an_upper_bound(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"EnvConfig.{name} must be an int in"):
        EnvConfig(**{name: value})


@pytest.mark.parametrize("name", ["maker_fee_ppm", "taker_fee_ppm"])
@pytest.mark.parametrize("value", [1.5, 100.0, NAN, MAX_FEE_PPM + 1, -MAX_FEE_PPM - 1, True])
def test_fees_are_integer_ppm_within_max_fee(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"EnvConfig.{name} must be an int in"):
        EnvConfig(**{name: value})
    EnvConfig(**{name: -MAX_FEE_PPM})
    EnvConfig(**{name: MAX_FEE_PPM})


@pytest.mark.parametrize(("name", "value"), [
    ("limit_offsets", (0, 1.5)), ("quote_offsets", (NAN,)), ("limit_offsets", "01"),
    ("quote_sizes", (1.0, NAN)), ("quote_sizes", (True,)), ("size_classes", ()),
    ("size_classes", (1.0, NAN)), ("qty_scale", NAN), ("qty_scale", True),
    ("price_scale", NAN), ("price_scale", 0.0), ("pnl_scale", NAN), ("pnl_scale", -1.0),
    ("running_inventory_penalty", NAN),
    ("running_inventory_penalty", -0.5), ("terminal_inventory_penalty", math.inf),
    ("action_mode", None), ("reward", "pnl_inventory"), ("end_of_episode", "mark"),
    ("valuation", "marked"), ("latency_ns", -1), ("latency_ns", ()), ("latency_ns", (0, 1.5)),
    ("latency_ns", 3_600 * 10**9 + 1), ("latency_jitter_ns", 1.5)])
def test_bad_sequences_and_floats(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"EnvConfig.{name} must be"):
        EnvConfig(**{name: value})


@pytest.mark.parametrize("name", ["inventory_penalty", "base_capital"])
def test_removed_fields_are_refused(name: str) -> None:
    """The old linear penalty and the cash scale are gone (docs/envs.md, "Rewards",
    "Observation"): passing them is an error, not silently ignored."""
    with pytest.raises(TypeError, match=name):
        EnvConfig(**{name: 1.0})


def test_an_agent_order_beyond_max_qty_is_refused() -> None:
    with pytest.raises(ValueError, match=r"EnvConfig.base_qty .* at most MAX_QTY"):
        EnvConfig(base_qty=2**40, base_position_limit=2**40, size_max=1.0)
    with pytest.raises(ValueError, match=r"EnvConfig.base_qty .* at most MAX_QTY"):
        EnvConfig(base_qty=2**35, base_position_limit=2**36)   # size class 50
    with pytest.raises(ValueError, match=r"EnvConfig.base_qty .* at most MAX_QTY"):
        EnvConfig(base_qty=2**39, base_position_limit=2**40, size_classes=(1.0, 3.0))
    with pytest.raises(ValueError, match=r"EnvConfig.quote_sizes .* at most MAX_QTY"):
        EnvConfig(action_mode="market_making", quote_sizes=(1.0, 4.0), base_qty=2**38,
                  base_position_limit=2**40, size_max=1.0)
    # the largest order that fits: every agent's order_qty is at most MAX_QTY
    config = EnvConfig(base_qty=MAX_QTY, base_position_limit=MAX_QTY, size_max=1.0,
                       warmup_steps=0, horizon=5)
    env = BatchedMarketEnv(config, n_envs=1, n_agents=2)
    assert env.order_qty.max() <= MAX_QTY


def test_a_position_limit_beyond_int64_arithmetic_is_refused() -> None:
    with pytest.raises(ValueError, match=r"EnvConfig.base_position_limit .* at most 2\*\*62"):
        EnvConfig(base_position_limit=2**62)
    with pytest.raises(ValueError, match=r"EnvConfig.base_position_limit .* at most 2\*\*62"):
        EnvConfig(base_position_limit=2**60, size_max=8.0)
    env = BatchedMarketEnv(EnvConfig(base_position_limit=2**56, size_max=8.0, warmup_steps=0),
                           n_envs=1, n_agents=4)
    assert (env.position_limit >= env.order_qty).all() and (env.position_limit > 2**55).all()


def test_observations_and_rewards_stay_finite() -> None:
    with pytest.raises(ValueError, match="EnvConfig.qty_scale must be >="):
        EnvConfig(qty_scale=1e-300)
    with pytest.raises(ValueError, match="EnvConfig.price_scale must be >="):
        EnvConfig(price_scale=1e-300)
    with pytest.raises(ValueError, match="EnvConfig.pnl_scale must be >="):
        EnvConfig(pnl_scale=1e-300)
    for name in ("running_inventory_penalty", "terminal_inventory_penalty"):
        with pytest.raises(ValueError, match=f"EnvConfig.{name} must be <="):
            EnvConfig(**{name: 1e308})
        # (position / order size)^2 is at most (base_position_limit / base_qty)^2 = 400
        # with the default classes: 1e36 x 400 overflows float32, 1e35 x 400 does not
        with pytest.raises(ValueError, match=f"EnvConfig.{name} must be <="):
            EnvConfig(**{name: 1e36})
        EnvConfig(**{name: 1e35})
    config = SMALL.replace(qty_scale=1e-19, price_scale=1e-19, pnl_scale=1e-19,
                           running_inventory_penalty=1e30,
                           terminal_inventory_penalty=1e30, end_of_episode="carry")
    env = BatchedMarketEnv(config, n_envs=1, n_agents=2)
    for _ in range(25):                                   # past the horizon (20)
        obs, rewards, _, _ = env.step(np.array([9, 2]))   # a market buy, a limit buy
        assert np.isfinite(obs).all() and np.isfinite(rewards).all()
    assert np.abs(rewards).max() > 1e30                   # the penalty was applied


# ---- adapters ------------------------------------------------------------------------


def test_vector_env_reset_with_an_empty_seed_list() -> None:
    venv = MarketVectorEnv(BatchedMarketEnv(SMALL, n_envs=1, n_agents=2))
    with pytest.raises(ValueError, match="non-empty list"):
        venv.reset(seed=[])
    obs, _ = venv.reset(seed=[3, None])
    assert obs.shape[0] == 2


def test_sb3_indices_out_of_range_are_refused() -> None:
    venv = SB3VecEnv(BatchedMarketEnv(SMALL, n_envs=1, n_agents=2))
    with pytest.raises(IndexError, match="sub-env index 5"):
        venv.get_attr("n_envs", indices=[5])
    with pytest.raises(IndexError, match="sub-env index 2"):
        venv.env_method("accounts", indices=2)
    with pytest.raises(IndexError, match="sub-env index -3"):
        venv.env_is_wrapped(object, indices=[0, -3])
    with pytest.raises(TypeError, match="must be ints"):
        venv.get_attr("n_envs", indices=[0.5])
    assert venv.get_attr("n_envs", indices=[0, 1]) == [1, 1]
    assert venv.get_attr("n_envs", indices=np.int64(1)) == [1]


@pytest.mark.parametrize("n_others", [1.5, -1, True, "1"])
def test_market_env_names_n_others(n_others: Any) -> None:
    with pytest.raises(ValueError, match="n_others must be an int >= 0"):
        MarketEnv(SMALL, n_others=n_others)


def _count_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = batched_module.write_actions

    def counted(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real(*args, **kwargs)

    for module in (batched_module, gym_module, pettingzoo_module):
        monkeypatch.setattr(module, "write_actions", counted)
    return calls


def test_gymnasium_env_checks_the_actions_once(monkeypatch: pytest.MonkeyPatch) -> None:
    env = MarketEnv(SMALL)
    env.reset(seed=1)
    calls = _count_checks(monkeypatch)
    env.step(2)
    assert len(calls) == 1 and env._actions[0] == 2


def test_pettingzoo_env_checks_the_actions_once(monkeypatch: pytest.MonkeyPatch) -> None:
    env = MarketParallelEnv(SMALL, n_agents=2)
    env.reset(seed=1)
    calls = _count_checks(monkeypatch)
    env.step({"trader_0": 2, "trader_1": 3})
    assert len(calls) == 1 and env.batched.actions.tolist() == [2, 3]


def test_gymnasium_env_copies_the_observation_once_and_it_stays_valid() -> None:
    env = MarketEnv(SMALL, render_mode="rgb_array")
    first, _ = env.reset(seed=1)
    kept = first.copy()
    obs, *_ = env.step(1)
    assert obs is env._obs                      # the one copy is what step returns
    after = obs.copy()
    for _ in range(3):
        env.step(11)
    np.testing.assert_array_equal(first, kept)  # earlier results are not overwritten
    np.testing.assert_array_equal(obs, after)
    assert env.render() is not None


def test_a_latency_whose_outbox_would_not_fit_is_refused_with_a_message() -> None:
    """The outbox grows with the square of the latency in steps: 10 s of latency in 100 ms
    steps for 4 x 16 agents would need about 1 GiB; refused before anything is allocated."""
    with pytest.raises(ValueError, match="GiB outbox"):
        BatchedMarketEnv(EnvConfig(latency_ns=10_000_000_000, max_orders=16), n_envs=4,
                         n_agents=16)
    BatchedMarketEnv(EnvConfig(latency_ns=1_000_000_000), n_envs=4, n_agents=16)
