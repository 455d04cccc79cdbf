"""Pinned digests of the background flow's output: what a seed produces must not change.

A performance change of the flow (``rltrader/_flow.pyx``) or of the core keeps every
message the populations send, every event the core answers, the books, the accounts and
the flow's own state (generators, fundamentals, averages, rings) bit-identical. A change
that means to alter what the flow computes updates these digests in the same commit and
says why (a new seed stream documented with its statistics). Each case runs a
``Market`` for ``STEPS`` steps after its warm-up, recording, and hashes the logs and the
state. The cases cover every preset and, beyond them, what no preset has: execution
parents (TWAP and POV), correlated symbols and many copies.

The digests hold on any x86-64 machine: the traders' size classes go through the C
library's ``pow`` (``pareto_multipliers``). With numpy's ``**`` they did not: on a CPU
with AVX-512 numpy's SIMD power differs from the C library's in the last bits, and the
presets with size classes had one set of digests there and another elsewhere (these were
first pinned on such a CPU and failed on an AMD EPYC without AVX-512).
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
    "informed": "284e7ff18904eb03f3f7634564dbeaab2e9ebdd1256c4acc28f1af64b3aec589",
    "realistic": "f755d7d0b055b187cd801b1d3c07743dd8d4e19b0e07a9fdc7ebfa8da5733128",
    "resilient": "ca36883d9a82da71c1f4a6a16244826d75baa44b2608587561fb34c4621f06aa",
    "rmsc04": "01dcb5610b9cffdb7c9793d2c97a4e1ff25f32454f5259edf4727cdf211c126b",
    "small": "ee60338754169a06be968db25352ba3c120e6ea4ddc56837906925f471bfb959",
    "thin": "0977a3d8a0aab56f629f8989b227d6283101b8d8882be68d4ad4982f28d33c2b",
    "wide": "8c0ce1a919a244d8a7e6d9044a96162b27371d3f7d3af65057d4b5000f93dd4b",
    "resilient+copies":
        "132694fc372b17bf9a225742fed07bca7bfb0ecc762133e55d76e1a5e2b2744a",
    "small+parents":
        "f3bf7e0a0676d3d018ca6d985c2ea1e1472c0a7c3e72805f042173766e852d59",
    "small+correlated":
        "eeaed10c429bdd58af215c4e429bf4fa2ecb01f769c42cd4478e818ea368c575",
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


def test_size_classes_are_the_c_librarys_pow() -> None:
    """Size classes element by element through ``math.pow`` (the C library's, which the
    flow's order sizes use too), capped; the same on every machine."""
    import math

    from rltrader.sim.market import pareto_multipliers

    u = np.random.default_rng(5).random((3, 1000))
    u[0, :3] = (0.0, 0.5, 1.0 - 2.0**-53)         # 1, 2 ** (1 / alpha), far in the tail
    for alpha, cap in ((1.5, 50.0), (2.0, 20.0), (2.5, 1e300)):
        got = pareto_multipliers(u, alpha, cap)
        want = [[min(cap, math.pow(1.0 - x, -1.0 / alpha)) for x in row] for row in u]
        assert got.shape == u.shape and got.dtype == np.float64
        assert np.array_equal(got, np.array(want))
    assert pareto_multipliers(np.array([1.0 - 2.0**-53]), 1.0, 100.0)[0] == 100.0
