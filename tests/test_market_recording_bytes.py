"""Same seed, same bytes: two recordings of one market in one process are byte-identical,
padding included, in memory and in their saved files (bug 7: ``ndarray.copy()`` of the
padded message and event dtypes left the padding uninitialised)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rltrader.core.messages import EVENT_DTYPE, MESSAGE_DTYPE
from rltrader.envs import BatchedMarketEnv, EnvConfig
from rltrader.sim.market import Market, RecordConfig, preset
from rltrader.sim.record import Recording, copy_records


def recorded(seed: int) -> Recording:
    config = preset("small").replace(record=RecordConfig(messages=True, sample_every=50))
    market = Market(config, seed=seed)
    market.step(300)
    return market.recording


def test_padded_dtypes_are_what_this_test_is_about() -> None:
    for dtype in (MESSAGE_DTYPE, EVENT_DTYPE):
        assert sum(dtype.fields[n][0].itemsize for n in dtype.names) < dtype.itemsize


def test_two_same_seed_recordings_are_the_same_bytes(tmp_path: Path) -> None:
    first, second = recorded(5), recorded(5)
    for name in ("messages", "events"):
        a, b = getattr(first, name), getattr(second, name)
        assert len(a) > 100
        assert a.tobytes() == b.tobytes(), name
    first.save_npz(tmp_path / "first.npz")
    second.save_npz(tmp_path / "second.npz")
    assert (tmp_path / "first.npz").read_bytes() == (tmp_path / "second.npz").read_bytes()


def test_copy_records_zeroes_the_padding() -> None:
    garbage = np.frombuffer(np.full(4 * MESSAGE_DTYPE.itemsize, 0xAB, np.uint8).tobytes(),
                            dtype=MESSAGE_DTYPE)
    copy = copy_records(garbage)
    raw = np.frombuffer(copy.tobytes(), np.uint8).reshape(4, -1)
    assert not raw[:, 59:].any()                    # padding after the last field (tif)
    assert np.array_equal(copy, garbage)            # every field kept


def test_env_message_batches_are_the_same_bytes() -> None:
    runs = []
    for _ in range(2):
        env = BatchedMarketEnv(EnvConfig(horizon=20, warmup_steps=30), n_envs=2, n_agents=4,
                               seed=9)
        env.reset()
        rng = np.random.default_rng(0)
        for _ in range(25):
            env.step(rng.integers(0, env.action_high[0], env.num_agents_total))
        runs.append(env.kernel.messages.tobytes())
    assert runs[0] == runs[1]
