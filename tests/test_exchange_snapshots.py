"""Journal snapshots: every ``snapshot_every`` batches the exchange's state is written next
to the journal, and recovery replays only the batches after the newest good one."""

from __future__ import annotations

import random
import time
import warnings
from pathlib import Path

import pytest
from test_exchange_journal import _accounts, _drive, _exchange, _state

from rltrader.exchange import journal as jr


def _journaled(tmp_path: Path, n: int = 2500, every: int = 200):  # type: ignore[no-untyped-def]
    directory = tmp_path / "journal"
    live = _exchange(seed=7)
    jr.open_journal(live, directory, segment_bytes=4096, snapshot_every=every)
    ts, _ = _drive(live, random.Random(11), n, 34_200 * 10**9)
    live.journal.close()
    live.journal = None
    return directory, live, ts


def _full_replay(directory: Path):  # type: ignore[no-untyped-def]
    ex = _exchange(seed=7)
    n = jr.replay(ex, directory, repair=False, snapshots=False)
    assert n == ex.batches
    return ex


def test_recovery_from_a_snapshot_is_exact(tmp_path: Path) -> None:
    directory, live, ts = _journaled(tmp_path)
    files = jr.snapshot_files(directory)
    # every 200 batches, the newest SNAPSHOTS_KEPT kept
    assert [b for b, _ in files] == [2200, 2400]
    assert len(jr.segments(directory)) > 2

    start = time.perf_counter()
    full = _full_replay(directory)
    full_s = time.perf_counter() - start
    start = time.perf_counter()
    rebuilt = jr.recover(directory, _accounts(), snapshot_every=200)
    snap_s = time.perf_counter() - start
    print(f"\nrecovery of {live.batches} batches: full replay {full_s * 1e3:.0f} ms, "
          f"snapshot at 2400 + {live.batches - 2400} batches {snap_s * 1e3:.0f} ms")
    assert rebuilt.journal.snapshot_batches == 2400
    assert rebuilt.journal.replayed == live.batches - 2400
    assert _state(rebuilt) == _state(full) == _state(live)
    # the flows too: the same draws to come
    assert rebuilt.market.flow.state()["struct"] == live.market.flow.state()["struct"]

    # all three go on alike; the rebuilt one keeps journaling and snapshotting
    _, out_live = _drive(live, random.Random(12), 500, ts)
    _, out_full = _drive(full, random.Random(12), 500, ts)
    _, out_rebuilt = _drive(rebuilt, random.Random(12), 500, ts)
    assert out_live == out_rebuilt == out_full
    assert _state(rebuilt) == _state(live) == _state(full)
    rebuilt.journal.close()
    assert [b for b, _ in jr.snapshot_files(directory)] == [2800, 3000]
    again = jr.recover(directory, _accounts())
    assert again.journal.snapshot_batches == 3000
    assert _state(again) == _state(live)
    # and the journal alone still says the same (snapshots are only a shortcut)
    assert _state(_full_replay(directory)) == _state(live)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "segment"])
def test_a_bad_newest_snapshot_falls_back(tmp_path: Path, damage: str) -> None:
    directory, live, _ = _journaled(tmp_path, n=1100)
    (b_old, _), (b_new, newest) = jr.snapshot_files(directory)
    assert (b_old, b_new) == (800, 1000)
    data = bytearray(newest.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x40                  # the CRC catches it
        newest.write_bytes(bytes(data))
    elif damage == "truncate":
        newest.write_bytes(bytes(data[:len(data) // 3]))
    elif damage == "garbage":                         # checks, but does not unpickle
        meta, _ = jr.read_snapshot(newest)
        jr.write_snapshot(directory, meta, b"\x80\x05not a pickle")
    else:                                             # its journal position is gone
        meta, payload = jr.read_snapshot(newest)
        jr.write_snapshot(directory, dict(meta, segment="segment-999999.log"), payload)
    with pytest.warns(RuntimeWarning, match="snapshot-1000.pkl ignored"):
        rebuilt = jr.recover(directory, _accounts())
    assert rebuilt.journal.snapshot_batches == 800
    assert rebuilt.journal.replayed == live.batches - 800
    assert _state(rebuilt) == _state(live)


def test_no_good_snapshot_means_the_full_replay(tmp_path: Path) -> None:
    directory, live, _ = _journaled(tmp_path, n=700)
    for _, path in jr.snapshot_files(directory):
        path.write_bytes(b"RLTJSNP1")
    with pytest.warns(RuntimeWarning, match="ignored"):
        rebuilt = jr.recover(directory, _accounts())
    assert rebuilt.journal.snapshot_batches == 0
    assert rebuilt.journal.replayed == live.batches
    assert _state(rebuilt) == _state(live)


def test_a_snapshot_of_another_market_is_ignored(tmp_path: Path) -> None:
    directory, live, _ = _journaled(tmp_path, n=500)
    other = tmp_path / "other"
    ex = _exchange(seed=8)
    jr.open_journal(ex, other, snapshot_every=100)
    _drive(ex, random.Random(1), 100, 34_200 * 10**9)
    ex.journal.close()
    (_, theirs), = jr.snapshot_files(other)
    meta, payload = jr.read_snapshot(theirs)
    jr.write_snapshot(directory, dict(meta, batches=100_000), payload)
    with pytest.warns(RuntimeWarning, match="another market"):
        rebuilt = jr.recover(directory, _accounts())
    assert rebuilt.journal.snapshot_batches == 400
    assert _state(rebuilt) == _state(live)
    # the exchange checks it too, before changing anything
    fresh = _exchange(seed=7)
    with pytest.raises(ValueError, match="another market"):
        fresh.restore_state(payload)
    assert fresh.batches == 0


def test_old_journals_without_snapshots_recover(tmp_path: Path) -> None:
    directory, live, _ = _journaled(tmp_path, n=300, every=0)
    assert jr.snapshot_files(directory) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rebuilt = jr.recover(directory, _accounts())
    assert rebuilt.journal.snapshot_batches == 0
    assert rebuilt.journal.replayed == live.batches
    assert _state(rebuilt) == _state(live)


def test_snapshot_names_accounts_without_their_secrets(tmp_path: Path) -> None:
    directory, live, _ = _journaled(tmp_path, n=200)
    (_, path), = jr.snapshot_files(directory)
    _, payload = jr.read_snapshot(path)
    assert b"alice-secret" not in payload and b"alice" in payload
    ex = _exchange(seed=7)
    ex.restore_state(live.snapshot_state())
    assert _state(ex) == _state(live)
    assert ex.orders and all(o.account in ex.accounts for o in ex.orders.values())
    # all or nothing: a snapshot of other accounts leaves the exchange untouched
    from rltrader.exchange.accounts import Account

    strangers = [Account("carol", "k", "s", balances={"USDT": 1}),
                 Account("dave", "k2", "s2", balances={"USDT": 1})]
    other = _exchange(seed=7, accounts=strangers)
    before = other.books
    with pytest.raises(ValueError, match="unknown account"):
        other.restore_state(live.snapshot_state())
    assert other.books is before and other.batches == 0


def test_a_snapshot_keeps_every_attribute_but_the_listed_ones() -> None:
    """New state of the sequencer is saved unless it is named as not state."""
    ex = _exchange()
    fields = set(ex._snapshot_fields())
    assert {"orders", "open_orders", "client_ids", "locked", "trades", "my_trades", "bars",
            "next_order_id", "next_trade_id", "update_id", "batches", "steps", "last_ns",
            "last_batch"} <= fields
    assert ex.NOT_SNAPSHOTTED <= set(vars(ex))          # no stale names in the list
    assert not fields & ex.NOT_SNAPSHOTTED
