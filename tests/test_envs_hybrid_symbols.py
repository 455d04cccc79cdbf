"""The batched env on several symbols' real records (``EnvConfig(symbols=S)`` with one
``HybridReplay`` per book, book ``symbol x n_envs + market``): each symbol's rows are what
the one-symbol env gives for that record, a market's records share one clock and start
over together, and wrong source counts are refused."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._env")
from test_data_lobster import MESSAGE_999, ORDERBOOK_999  # noqa: E402

from rltrader.data import lobster  # noqa: E402
from rltrader.data.hybrid import HybridReplay  # noqa: E402
from rltrader.data.lobster_exact import exact_messages  # noqa: E402
from rltrader.envs import BatchedMarketEnv, EnvConfig  # noqa: E402
from rltrader.sim.config import preset  # noqa: E402

# 999 messages over 49 s: 100 ms steps, 1 s of warm-up; fixed size classes, so that a
# symbol's rows and a one-symbol env's rows have the same agents
CONFIG = EnvConfig(horizon=100, warmup_steps=10, replay_step_ns=100_000_000,
                   size_classes=(1.0, 3.0))
BUY, SELL, REST = 2 * 4 + 1, 2 * 4 + 2, 2


@pytest.fixture(scope="module")
def record() -> np.ndarray:
    feed = exact_messages(lobster.read_raw(MESSAGE_999), lobster.read_orderbook(ORDERBOOK_999))
    return np.ascontiguousarray(feed.feed.messages).copy()


def shifted(record: np.ndarray, ticks: int = 0, ns: int = 0) -> np.ndarray:
    """Another record: prices moved by ``ticks``, times by ``ns``."""
    other = record.copy()
    other["price"] += ticks
    other["timestamp"] += ns
    return other


def replays(records: list[np.ndarray], n_agents: int = 2, **kwargs) -> list[HybridReplay]:
    return [HybridReplay(r, n_agents, taker_fee_ppm=100, **kwargs) for r in records]


def actions(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(np.array([0, BUY, SELL, REST, 3, 10]), size=n)


def run(env: BatchedMarketEnv, moves: list[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    out = []
    for a in moves:
        obs, reward, terminated, truncated = env.step(a)
        out.append((obs.copy(), reward.copy(), terminated.copy(), truncated.copy(),
                    env.final_observations.copy()))
    return out


@pytest.mark.parametrize("n_envs", [1, 2])
def test_rows_are_the_one_symbol_env_over_the_same_replays(record, n_envs) -> None:
    """S symbols x n_envs markets give, row for row, what the one-symbol env gives over
    the same n_envs x S replays in the same order (the same seeds per book), past the
    records' end (truncation and the restart included)."""
    s = 2
    records = [shifted(record, ticks=50 * b) for b in range(s * n_envs)]
    multi = BatchedMarketEnv(CONFIG.replace(symbols=s), n_envs=n_envs, n_agents=2, seed=3,
                             source=replays(records))
    single = BatchedMarketEnv(CONFIG, n_envs=s * n_envs, n_agents=2, seed=3,
                              source=replays(records))
    assert multi.num_agents_total == single.num_agents_total == s * n_envs * 2
    np.testing.assert_array_equal(multi.observations, single.observations)
    rng = np.random.default_rng(0)
    moves = [actions(rng, multi.num_agents_total) for _ in range(520)]
    got, want = run(multi, moves), run(single, moves)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            np.testing.assert_array_equal(a, b)
    assert any(w[3].all() for w in want)                  # the records ran out: truncation
    np.testing.assert_array_equal(multi.accounts(), single.accounts())
    np.testing.assert_array_equal(multi.episode_step, single.episode_step)


def test_the_first_symbol_is_the_one_symbol_env_of_its_record(record) -> None:
    """Book ``b`` draws its seeds (simulated traders, arrival times) from child ``b`` of
    the root seed's spawn, so symbol 0 of market ``m`` is exactly the one-symbol env of
    ``n_envs`` markets on the first symbol's records alone: adding symbols changes
    nothing in the others."""
    config = CONFIG.replace(size_classes=(2.0,))
    records = [record, shifted(record, ticks=-300), shifted(record, ticks=40),
               shifted(record, ticks=90)]
    multi = BatchedMarketEnv(config.replace(symbols=2), n_envs=2, n_agents=1, seed=1,
                             source=replays(records, 1))
    alone = BatchedMarketEnv(config, n_envs=2, n_agents=1, seed=1,
                             source=replays(records[:2], 1))
    rng = np.random.default_rng(5)
    moves = [actions(rng, 4) for _ in range(300)]
    got, want = run(multi, moves), run(alone, [a[:2] for a in moves])
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            np.testing.assert_array_equal(a[:2], b)


def test_a_markets_records_share_one_clock(record) -> None:
    """Records that begin 1.05 s apart: the earlier one is replayed up to the later one's
    start; every step the market's replays are at the same time; when the shorter record
    ends, both symbols are truncated and start over together."""
    later = shifted(record, ticks=7, ns=1_050_000_000)
    sources = replays([record, later], 1)
    env = BatchedMarketEnv(CONFIG.replace(symbols=2, size_classes=(1.0,), horizon=10_000),
                           n_envs=1, n_agents=1, seed=0, source=sources)
    assert sources[0].timestamp == sources[1].timestamp
    truncations = 0
    for _ in range(520):
        _, _, terminated, truncated = env.step([BUY, SELL])
        assert sources[0].timestamp == sources[1].timestamp
        assert truncated[0] == truncated[1] and not terminated.any()
        truncations += int(truncated[0])
    assert truncations == 1
    assert env.episode_step[0] == env.episode_step[1]


def test_simulated_traders_on_each_record_draw_per_book(record) -> None:
    """Replays with simulated traders: symbol books of one market draw different days."""
    background = preset("resilient").replace(copies=1)
    sources = replays([record, record.copy()], 1, background=background)
    env = BatchedMarketEnv(CONFIG.replace(symbols=2, size_classes=(1.0,)), n_envs=1,
                           n_agents=1, seed=0, source=sources)
    for _ in range(30):
        obs, *_ = env.step([0, 0])
    assert not np.array_equal(obs[0], obs[1])


def test_wrong_replay_counts_are_refused(record) -> None:
    config = CONFIG.replace(symbols=2, size_classes=(1.0,))
    with pytest.raises(ValueError, match=r"one distinct replay per book: n_envs x symbols "
                                         r"= 2 x 2.*got 2 \(2 distinct\)"):
        BatchedMarketEnv(config, n_envs=2, n_agents=1, source=replays([record] * 2, 1))
    same = HybridReplay(record, 1)
    with pytest.raises(ValueError, match=r"got 2 \(1 distinct\)"):
        BatchedMarketEnv(config, n_envs=1, n_agents=1, source=[same, same])
    with pytest.raises(ValueError, match="one distinct replay per book"):
        BatchedMarketEnv(config, n_envs=1, n_agents=1, source=same)
    with pytest.raises(ValueError, match="n_agents >= 2"):
        BatchedMarketEnv(config.replace(size_classes=(1.0, 1.0)), n_envs=1, n_agents=2,
                         source=replays([record] * 2, 1))
