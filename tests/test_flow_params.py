"""Configs cross into the compiled kernels typed: ``Flow`` takes one dataclass per C struct
(``rltrader.sim.params``) as keyword arguments and ``EnvKernel`` keyword arguments, and a
misspelled, missing or unknown parameter raises ``TypeError`` instead of being dropped."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from rltrader._env import EnvKernel
from rltrader._flow import Flow
from rltrader.envs import BatchedMarketEnv, EnvConfig
from rltrader.sim.market import Market, preset
from rltrader.sim.params import FlowParams, NoiseParams, SizeParams, flow_params


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(preset("small").replace(close="09:31"), seed=1)


def build(market: Market, **params: Any) -> Flow:
    """A Flow over ``market``'s books with ``params`` in place of its own."""
    typed = flow_params(market.config)
    kwargs = {f.name: getattr(typed, f.name) for f in dataclasses.fields(typed)}
    kwargs.update(params)
    f = market.flow
    return Flow(market.books, f.n_traders, f.rng_state, f.r_bar, f.size_class, 0,
                market.config.dt_ns, 64, **kwargs)


@dataclasses.dataclass(frozen=True)
class MisspelledNoise:
    """NoiseParams with ``p_market`` spelled ``p_markt``."""

    first: int
    count: int
    latency: int
    rate: float
    p_markt: float
    p_cancel: float
    ring: int
    depth_alpha: float
    depth_max: int
    size: SizeParams


def test_flow_params_mirror_the_config(market: Market) -> None:
    typed = flow_params(market.config)
    assert isinstance(typed, FlowParams)
    noise = market.config.noise
    assert typed.noise.count == noise.count and typed.noise.ring == noise.ring
    assert typed.noise.rate == noise.rate_per_s * (market.config.dt_ns / 1e9)
    assert build(market).n_traders == market.n_traders


def test_a_misspelled_field_raises(market: Market) -> None:
    good = flow_params(market.config).noise
    bad = MisspelledNoise(**{("p_markt" if k == "p_market" else k): v
                             for k, v in vars(good).items()})
    with pytest.raises(TypeError, match=r"missing \['p_market'\], unknown \['p_markt'\]"):
        build(market, noise=bad)


def test_a_misspelled_nested_field_raises(market: Market) -> None:
    @dataclasses.dataclass(frozen=True)
    class Sizes:
        min_lots: float
        alpha: float
        max_lot: float

    noise = dataclasses.replace(flow_params(market.config).noise, size=Sizes(1.0, 1.5, 9.0))
    with pytest.raises(TypeError, match=r"noise\.size .*missing \['max_lots'\]"):
        build(market, noise=noise)


def test_an_integer_field_refuses_a_fraction(market: Market) -> None:
    noise = dataclasses.replace(flow_params(market.config).noise, ring=2.5)
    with pytest.raises(TypeError, match=r"noise\.ring must be an integer, got 2\.5"):
        build(market, noise=noise)


def test_a_dict_is_not_a_parameter_struct(market: Market) -> None:
    """The old interface: a dict's extra keys were silently ignored."""
    noise = {**vars(flow_params(market.config).noise), "p_markt": 0.5}
    with pytest.raises(TypeError, match="noise must be a dataclass instance"):
        build(market, noise=noise)


def test_a_missing_struct_or_parent_field_raises(market: Market) -> None:
    typed = flow_params(market.config)
    kwargs = {f.name: getattr(typed, f.name) for f in dataclasses.fields(typed)}
    del kwargs["fundamental"]
    f = market.flow
    with pytest.raises(TypeError, match="fundamental"):
        Flow(market.books, f.n_traders, f.rng_state, f.r_bar, f.size_class, 0,
             market.config.dt_ns, 64, **kwargs)
    with pytest.raises(TypeError, match=r"parents\[0\] .*missing"):
        build(market, parents=[SizeParams(1.0, 1.0, 1.0)])


def test_param_dataclasses_refuse_unknown_fields() -> None:
    with pytest.raises(TypeError):
        NoiseParams(first=0, count=1, latency=0, rate=0.1, p_market=0.1, p_cancel=0.1, ring=2,
                    depth_alpha=1.0, depth_max=5, size=SizeParams(1, 1, 1),
                    p_markt=0.1)  # type: ignore[call-arg]


def kernel_kwargs(env: BatchedMarketEnv) -> tuple[tuple, dict[str, Any]]:
    c, n = env.config, env.num_agents_total
    # order_qty, position_limit, size_class, latency_ns, actions, obs, rewards, terminated,
    # truncated, final_obs
    arrays = (np.ones(n, np.int64), np.ones(n, np.int64), np.ones(n), np.zeros(n, np.int64),
              np.zeros(n, np.int64), np.zeros((n, env.obs_dim), np.float32),
              np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool),
              np.zeros((n, env.obs_dim), np.float32))
    kwargs = dict(n_envs=env.n_envs, n_agents=env.n_agents, first_owner=env.market.n_traders,
                  depth=c.depth, n_slots=c.max_orders, action_mode=0, reward_kind=0,
                  valuation=0, liquidate=False, return_lag=c.return_lag,
                  scan_ticks=c.scan_ticks, horizon=c.horizon, id_base=1 << 40,
                  dt_ns=env.market.config.dt_ns, jitter_ns=0, seed=0, qty_scale=c.qty_scale,
                  price_scale=c.price_scale, pnl_scale=c.pnl_scale, running_penalty=0.0,
                  terminal_penalty=0.0,
                  sharpe_eta=0.01, flow_alpha=0.1,
                  limit_offsets=c.limit_offsets, quote_offsets=c.quote_offsets,
                  quote_sizes=c.quote_sizes)
    return arrays, kwargs


def test_env_kernel_takes_typed_keywords() -> None:
    env = BatchedMarketEnv(EnvConfig(horizon=10, warmup_steps=20), n_envs=2, n_agents=2)
    arrays, kwargs = kernel_kwargs(env)
    assert EnvKernel(env.market.books, *arrays, **kwargs).obs_dim == env.obs_dim
    with pytest.raises(TypeError, match="unexpected keyword argument 'horizn'"):
        EnvKernel(env.market.books, *arrays, **{**kwargs, "horizn": 5})
    del kwargs["sharpe_eta"]
    with pytest.raises(TypeError, match="sharpe_eta"):
        EnvKernel(env.market.books, *arrays, **kwargs)
    with pytest.raises(TypeError):
        EnvKernel(env.market.books, *arrays, **{**kwargs, "sharpe_eta": 0.01, "depth": 2.5})
