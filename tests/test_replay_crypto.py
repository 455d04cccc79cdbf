"""``rltrader replay coinbase|binance|tardis``: argument shapes, the report, the L2 dump."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rltrader._book", reason="the compiled core is not built")

from _data import crypto_file  # noqa: E402

from rltrader.tools import cli  # noqa: E402

SNAPSHOT_25 = crypto_file("tardis", "binance-futures_book_snapshot_25_BTCUSDT.csv")


def test_tardis_replay_and_dump(tmp_path, capsys):
    out = tmp_path / "l2.csv"
    assert cli.main(["replay", "tardis", str(SNAPSHOT_25), "--levels", "3",
                     "--dump-l2", str(out)]) == 0
    text = capsys.readouterr().out
    assert "binance-futures BTCUSDT: 10 rows, 10 events, 10 full-book resets" in text
    assert "11657.07" in text and "11657.08" in text
    header, *rows = out.read_text().splitlines()
    assert header.startswith("tag,timestamp,ask_price_1,ask_size_1,bid_price_1,bid_size_1,")
    table = np.array([row.split(",") for row in rows], dtype=np.int64)
    assert table.shape == (10, 2 + 4 * 3)
    # first row of the file: asks[0] 11657.08 x 1.714, bids[0] 11657.07 x 10.896
    assert table[0, :6].tolist() == [2, 1598918403696000000, 1165708, 1714, 1165707, 10896]


def test_coinbase_needs_a_snapshot(tmp_path, capsys):
    assert cli.main(["replay", "coinbase", str(tmp_path / "feed.json")]) == 2
    assert "--snapshot FILE" in capsys.readouterr().err


def test_reader_errors_become_a_clear_exit(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
                   "deribit,X,1,2,true,bid,1.5,oops\n")
    assert cli.main(["replay", "tardis", str(bad), "--tick-size", "0.5", "--lot-size",
                     "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"replay: {bad}: line 2"), err


def test_lobster_rejects_crypto_options(tmp_path, capsys):
    assert cli.main(["replay", "lobster", "a.csv", "b.csv", "c.csv"]) == 2
    assert cli.main(["replay", "lobster", "a.csv", "--snapshot", "s.json"]) == 2
    assert cli.main(["replay", "itch", "a.itch", "b.itch"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all("do not apply" in line for line in err)
