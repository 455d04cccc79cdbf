"""Pinned digests of the background flow's output: what a seed produces must not change.

A performance change of the flow (``rltrader/_flow.pyx``) or of the core keeps every
message the populations send, every event the core answers, the books, the accounts and
the flow's own state (generators, fundamentals, averages, rings) bit-identical. A change
that means to alter what the flow computes updates these digests in the same commit and
says why (a new seed stream documented with its statistics). Each case runs a
``Market`` for ``STEPS`` steps after its warm-up, recording, and hashes the logs and the
state. The cases cover every preset and, beyond them, what no preset has: execution
parents (TWAP and POV), correlated symbols and many copies.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from rltrader.sim.market import (
    FundamentalConfig,
    Market,
    MarketConfig,
    ParentOrderConfig,
    RecordConfig,
    preset,
    preset_names,
)

STEPS = 300

#: the flow's arrays that are state (not scratch) and go into the digest
_STATE = ("rng_state", "shuffle_state", "common_state", "common_z", "meta_left",
          "meta_side", "next_id", "fundamental", "r_bar", "ema", "size_class", "live",
          "ring_pos", "maker_mid", "counter_array")


def _config(name: str) -> MarketConfig:
    if name in preset_names():
        return preset(name)
    base = name.split("+")[0]
    config = preset(base)
    if name.endswith("+copies"):
        return config.replace(copies=16)
    if name.endswith("+parents"):
        return config.replace(copies=3, parents=(
            ParentOrderConfig(side="buy", qty=400, start_s=5.0, end_s=25.0, interval_s=0.5),
            ParentOrderConfig(side="sell", qty=300, start_s=1.0, end_s=40.0,
                              strategy="pov", participation=0.2, interval_s=0.3,
                              latency_ns=200_000_000)))
    if name.endswith("+correlated"):
        f = config.fundamental
        return config.replace(symbols=("A", "B", "C"), copies=2, fundamental=FundamentalConfig(
            r_bar=f.r_bar, kappa_per_s=f.kappa_per_s, sigma=max(f.sigma, 0.3),
            jump_rate_per_s=0.05, jump_mean=3.0, jump_sd=1.0, correlation=0.6))
    raise KeyError(name)


CASES: dict[str, str] = {
    "informed": "be40e46d7ab75d7783501d88f7f625c550356eb8de7ff2005c1ddec247eb4416",
    "realistic": "f755d7d0b055b187cd801b1d3c07743dd8d4e19b0e07a9fdc7ebfa8da5733128",
    "resilient": "88a7de06a55bb019f26a9f627f39238e79f85e21dca79a9c2abc3fd87eb38319",
    "rmsc04": "01dcb5610b9cffdb7c9793d2c97a4e1ff25f32454f5259edf4727cdf211c126b",
    "small": "9555713143a5d7a635d84762a64f0b88a8232afa3d29ac1ad0e32ea8276c928c",
    "thin": "6e0899576c89f016fcfa62f1fa93be75ce66b290e3dd3490b7e590deb7a9c6a8",
    "wide": "9a586adfa4db410a787db038ebf675d9501b1758da28053acc69672dcae44a61",
    "resilient+copies":
        "d44a99343c5f39fb4441e6cebedcbca34ae7bca3e4aa03d2f5d4a4a426cc1d73",
    "small+parents":
        "2ae2384a2b9fd3041c7adafa97091c4c470dc0026554257553d88017ff097d76",
    "small+correlated":
        "34efd241829966ae95abaf2bce383b01d20ed6a55b4cab570a14edf2b3d26887",
}


def run_digest(name: str) -> str:
    market = Market(_config(name).replace(record=RecordConfig(messages=True)), seed=11)
    market.step(STEPS)
    flow = market.flow
    h = hashlib.sha256()
    for records in (flow.message_log, flow.event_log):
        for field in records.dtype.names:         # field by field: no padding bytes
            h.update(np.ascontiguousarray(records[field]).tobytes())
    for array in (market.books.account_array, market.books.book_array,
                  market.books.level_array):
        for field in array.dtype.names:
            h.update(np.ascontiguousarray(array[field]).tobytes())
    for attr in _STATE:
        h.update(np.ascontiguousarray(getattr(flow, attr)).tobytes())
    h.update(np.ascontiguousarray(flow.parent_progress).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", list(CASES))
def test_flow_outputs_are_pinned(name: str) -> None:
    assert run_digest(name) == CASES[name]


@pytest.mark.parametrize("look_ahead", [2, 4, 12, 100])
def test_the_core_look_ahead_of_the_flow_changes_no_output(look_ahead: int) -> None:
    """``Flow.look_ahead`` (how far ahead the core starts loading what a message will
    touch) is a speed knob: any value (out-of-range ones are clamped) gives the same
    outputs as the default, for the flow alone (here) and for the env, whose merged
    batches run through it (the next test). 128 books: their levels and live orders
    (some 50,000) outgrow the 1 MiB below which the core skips the look-ahead."""
    config = preset("resilient").replace(copies=128, record=RecordConfig(messages=True))
    default = Market(config, seed=11)
    other = Market(config, seed=11)
    other.flow.look_ahead = look_ahead
    for market in (default, other):
        market.step(STEPS)
    for a, b in ((default.flow.message_log, other.flow.message_log),
                 (default.flow.event_log, other.flow.event_log),
                 (default.books.account_array, other.books.account_array)):
        assert all(np.array_equal(a[f], b[f]) for f in a.dtype.names)


@pytest.mark.parametrize("look_ahead", [2, 12])
def test_the_env_steps_the_same_under_any_look_ahead(look_ahead: int) -> None:
    """The batched env's merged batches (agents' and background orders) run through the
    flow's look-ahead: 128 markets with agents trading step the same under any value."""
    from rltrader.envs import BatchedMarketEnv, EnvConfig

    envs = [BatchedMarketEnv(EnvConfig(), n_envs=128, n_agents=4, seed=3) for _ in range(2)]
    envs[1].market.flow.look_ahead = look_ahead
    actions = np.random.default_rng(0).integers(
        0, envs[0].single_action_space.n, (60, 128 * 4)).astype(np.int64)
    for env in envs:
        env.reset(seed=3)
    for step in actions:
        for env in envs:
            env.step(step)
        assert np.array_equal(envs[0].observations, envs[1].observations)
        assert np.array_equal(envs[0].rewards, envs[1].rewards)
