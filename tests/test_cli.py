"""The ``rltrader`` command end to end, through ``main(argv)`` as the console script runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rltrader.data import lobster
from rltrader.data.replay import lobster_rows
from rltrader.data.samples import AAPL_PAIR_MESSAGE, AAPL_PAIR_ORDERBOOK, sample_path
from rltrader.tools.bench import LATENCY_KIB
from rltrader.tools.cli import build_parser, main

LOBSTER_DIR = sample_path(AAPL_PAIR_MESSAGE).parent


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"demo", "bench", "profile", "replay"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
        assert "usage: rltrader" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["frobnicate"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bench_quick_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    expected = ["W1 batched", "W1 per call", "W2 crossing inserts"]
    if LOBSTER_DIR is not None:
        expected += ["W3 LOBSTER AAPL", "W3 x 512 books"]
    assert [r["name"] for r in report["results"]] == expected
    for row in report["results"]:
        assert row["median_ns"] > 0 and row["messages"] > 0
        assert row["messages_per_second"] == pytest.approx(1e9 / row["median_ns"])
        if row["name"] != "W1 per call":    # the batched rows time thread CPU too
            assert row["extra"]["cpu_median_ns"] > 0
    assert report["memory"]["per_order_slot"] == 64.0
    assert report["machine"]["cores"] >= 1
    latency = report["machine"]["latency_ns"]
    assert [int(kib) for kib in latency] == list(LATENCY_KIB)
    assert all(ns > 0 for ns in latency.values())
    assert [r["name"] for r in report["env"]] == ["env 1,024 x 4", "env 1 x 4,096"]
    for row in report["env"]:
        assert row["agent_steps_per_second"] == pytest.approx(
            row["n_envs"] * row["n_agents"] / row["median_us_per_step"] * 1e6)
    table = capsys.readouterr().out
    assert "W1 batched" in table and "ns/msg" in table
    assert "| env 1,024 x 4 |" in table and "agent-steps/s" in table
    assert "memory latency (ns per dependent load, by working set): 256 KiB" in table


def test_profile_quick_reports_every_operation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--quick", "--workload", "W1"]) == 0
    text = capsys.readouterr().out
    assert "| LIMIT |" in text and "| CANCEL |" in text and "| all |" in text


def test_replay_lobster_dump_matches_the_core(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert LOBSTER_DIR is not None
    path = LOBSTER_DIR / "AAPL_2012-06-21_34200000_57600000_message_10_first999.csv"
    dump = tmp_path / "l2.csv"
    assert main(["replay", "lobster", str(path), "--levels", "3", "--dump-l2", str(dump)]) == 0
    text = capsys.readouterr().out
    assert "M messages/s" in text and "0 rejected" in text
    rows = np.loadtxt(dump, delimiter=",", dtype=np.int64)
    prices, qtys = lobster.replay_depth(lobster.read_messages(path), 3)
    assert np.array_equal(rows, lobster_rows(prices, qtys, tick_size=100))
    # known answer: LOBSTER's own book after the last row, at the touch
    real = np.loadtxt(str(path).replace("message", "orderbook"), delimiter=",", dtype=np.int64)
    assert rows.shape == (len(real), 12)
    assert np.array_equal(rows[-1, :4], real[-1, :4])


def test_replay_rejects_a_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "lobster", "/nonexistent/messages.csv"]) == 2
    assert capsys.readouterr().err == (
        "replay: /nonexistent/messages.csv: No such file or directory\n")


def _pair_replay(orderbook: Path, *extra: str) -> int:
    return main(["replay", "lobster", str(sample_path(AAPL_PAIR_MESSAGE)), str(orderbook),
                 *extra])


def test_replay_lobster_pair_checks_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert _pair_replay(sample_path(AAPL_PAIR_ORDERBOOK)) == 0
    text = capsys.readouterr().out
    assert "orderbook check: 999 rows x 10 levels checked" in text and ", 0 differ" in text
    assert "0 rejected" in text


def test_replay_lobster_pair_dump_is_the_orderbook_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--levels`` defaults to the file's 10; the dump equals LOBSTER's file byte for byte,
    but for a final newline, which the dump always writes and this sample lacks."""
    original = sample_path(AAPL_PAIR_ORDERBOOK)
    dump = tmp_path / "orderbook.csv"
    assert _pair_replay(original, "--dump-l2", str(dump)) == 0
    assert "wrote 999 rows of 10 levels" in capsys.readouterr().out
    assert dump.read_bytes() == original.read_bytes().rstrip(b"\n") + b"\n"
    three = tmp_path / "three.csv"
    assert _pair_replay(original, "--levels", "3", "--dump-l2", str(three)) == 0
    rows = np.loadtxt(three, delimiter=",", dtype=np.int64)
    assert np.array_equal(rows, np.loadtxt(original, delimiter=",", dtype=np.int64)[:, :12])


def test_replay_lobster_pair_names_the_first_bad_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = sample_path(AAPL_PAIR_ORDERBOOK).read_text().splitlines()
    cells = lines[499].split(",")
    cells[7] = str(int(cells[7]) + 1)  # line 500: bid level 2 size
    lines[499] = ",".join(cells)
    bad = tmp_path / "orderbook.csv"
    bad.write_text("\n".join(lines) + "\n")
    assert _pair_replay(bad) == 1
    text = capsys.readouterr().out
    assert "999 rows x 10 levels checked" in text and ", 1 differ" in text
    assert (f"first bad row: line 500 of both files: bid level 2 is {cells[7]} @ {cells[6]} "
            f"in the orderbook file, rebuilt {int(cells[7]) - 1} @ {cells[6]}") in text


def test_replay_lobster_pair_of_different_lengths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "orderbook.csv"
    short.write_text("\n".join(sample_path(AAPL_PAIR_ORDERBOOK).read_text().splitlines()[:998]))
    assert _pair_replay(short) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"replay: {short}: 998 rows") and err.count("\n") == 1
    assert _pair_replay(sample_path(AAPL_PAIR_ORDERBOOK), "--levels", "11") == 2
    assert "--levels 11" in capsys.readouterr().err


def test_demo_runs_every_part_and_writes_its_reports(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    pngs = ["market/price.png", "market/impact.png", "market/sign_acf.png"]
    if LOBSTER_DIR is not None:
        pngs.append("real_flow.png")
        assert "999 of 999 orderbook rows rebuilt exactly" in text
        assert "trimmed" in text
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert (out / "market" / "report.md").is_file()
    assert "square-root impact exponent delta" in text
    assert "batched core on" in text and "ns/message" in text
