"""External conformance: rltrader against tracebook-conformance 0.6.0's reference oracle.

The CLI drives ``tests/conformance/tracebook_adapter.py`` (one process per trace) over the
``tracebook.conformance`` v1 NDJSON protocol. ``qualify`` runs the profile's fixed suite
cases plus a 25 x 200 generated campaign; a short extra campaign uses another seed. Every
run passes ``--check-integrity``, so a core invariant violation surfaces as an adapter
error. Skipped only when tracebook-conformance is not installed; otherwise any divergence
or protocol failure fails the test with the harness's own diagnosis.

The full-size run (200 traces x 500 events per profile) is ``.ci/conformance.sh``.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ADAPTER = HERE / "tracebook_adapter.py"
PROFILES = ("fifo-full-v1", "fifo-partial-fill-v1")


def _tracebook_cli() -> list[str] | None:
    if importlib.util.find_spec("tracebook") is not None:
        if importlib.util.find_spec("tracebook.conformance.cli") is not None:
            return [sys.executable, "-m", "tracebook.conformance.cli"]
    script = shutil.which("tracebook-conformance")
    return [script] if script else None


CLI = _tracebook_cli()
needs_cli = pytest.mark.skipif(
    CLI is None,
    reason="tracebook-conformance is not installed (pip install tracebook-conformance==0.6.0)",
)
CANDIDATE = f"{sys.executable} {ADAPTER} --check-integrity"


def _harness(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    assert CLI is not None
    return subprocess.run(
        [*CLI, *args, "--timeout", "30", "--candidate-cmd", CANDIDATE],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _first_divergence(report: dict) -> dict | None:
    """The first divergence anywhere in a qualification / campaign / run artifact."""
    suite = report.get("suite", {}).get("report", {})
    for case in suite.get("cases", ()):
        if case["report"].get("divergence"):
            return {"case": case["name"], **case["report"]["divergence"]}
    campaign = report.get("campaign", report)
    for trace in campaign.get("traces", ()):
        if trace.get("divergence"):
            return {"trace": trace["index"], "trace_seed": trace["seed"], **trace["divergence"]}
    return report.get("divergence")


def _explain(proc: subprocess.CompletedProcess, report_path: Path) -> str:
    lines = [f"exit code {proc.returncode}", proc.stdout.strip(), proc.stderr.strip()[-4000:]]
    if report_path.is_file():
        divergence = _first_divergence(json.loads(report_path.read_text()))
        lines.append("first divergence: " + json.dumps(divergence, indent=2, sort_keys=True))
    reduced = report_path.parent / "reduced.jsonl"
    if reduced.is_file():
        lines.append("reduced reproducer:\n" + reduced.read_text())
    return "\n".join(line for line in lines if line)


# ---------------------------------------------------------------------------------------
# the harness
# ---------------------------------------------------------------------------------------


@needs_cli
@pytest.mark.parametrize("profile", PROFILES)
def test_qualify(profile: str, tmp_path: Path) -> None:
    out = tmp_path / "qualification"
    proc = _harness("qualify", "--profile", profile, "--output-dir", str(out))
    report_path = out / "qualification.json"
    assert proc.returncode == 0, _explain(proc, report_path)
    assert "Qualification: PASS" in proc.stdout, _explain(proc, report_path)
    report = json.loads(report_path.read_text())
    checks = report["checks"]
    assert report["qualified"] is True
    assert checks["fixed_cases"]["passed"] == checks["fixed_cases"]["total"] >= 3
    assert checks["generated_campaign"]["completed_traces"] == 25
    assert checks["semantic_coverage"]["complete"] is True
    assert report["candidate_engine"]["name"] == "rltrader"


@needs_cli
@pytest.mark.parametrize("profile", PROFILES)
def test_short_campaign(profile: str, tmp_path: Path) -> None:
    out = tmp_path / "campaign"
    proc = _harness(
        "campaign",
        "--profile",
        profile,
        "--seed",
        "20240601",
        "--traces",
        "8",
        "--events-per-trace",
        "300",
        "--stop-after-first",
        "--output-dir",
        str(out),
    )
    report_path = out / "campaign.json"
    assert proc.returncode == 0, _explain(proc, report_path)
    report = json.loads(report_path.read_text())
    assert report["conformant"] is True
    assert report["completed_traces"] == 8
    assert report["generated_events"] == 8 * 300


def _trace(tmp_path: Path, name: str, events: list[dict]) -> Path:
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def _new(oid, side, price, qty, owner, ts, symbol="T", order_type="LIMIT"):
    event = {
        "op": "new",
        "symbol": symbol,
        "order_id": oid,
        "side": side,
        "order_type": order_type,
        "quantity": qty,
        "owner": owner,
        "timestamp_ns": ts,
    }
    if price is not None:
        event["price"] = price
    return event


EDGE_TRACES = {
    # A reduction larger than the open quantity is rejected by the protocol (rltrader's
    # REDUCE would cancel): bridged by the adapter. Lifecycle ops on unknown symbols.
    "over-reduction": [
        _new(1, "BUY", 100, 2, 1, 1),
        _new(2, "BUY", 100, 2, 2, 2),
        {"op": "reduce", "symbol": "T", "order_id": 1, "quantity": 3, "timestamp_ns": 3},
        {"op": "reduce", "symbol": "T", "order_id": 1, "quantity": 2, "timestamp_ns": 4},
        {"op": "reduce", "symbol": "T", "order_id": 2, "quantity": 0.5, "timestamp_ns": 5},
        {"op": "reduce", "symbol": "U", "order_id": 1, "quantity": 1, "timestamp_ns": 6},
        {"op": "replace", "symbol": "U", "order_id": 1, "price": 5, "timestamp_ns": 7},
        {"op": "cancel", "symbol": "U", "order_id": 1, "timestamp_ns": 8},
        {"op": "clear", "symbol": "V", "timestamp_ns": 9},
    ],
    # Duplicate ids win over bad numbers; negative owners; off-grid and sub-tick prices;
    # market orders on one side / an empty side; FOK exact fill across two makers.
    "rejections-and-instructions": [
        _new(1, "SELL", 100, 2, -7, 1),
        _new(1, "SELL", -1, 2, 1, 2),
        _new(1, "SELL", 0.001, 2, 1, 3),
        _new(1, "SELL", 100, 2, 1, 4, order_type="IOC"),
        _new(3, "SELL", 0.001, 2, 1, 5),
        _new(3, "SELL", 100, 0, 1, 6),
        _new(4, "BUY", None, 3, 9, 7, order_type="MARKET"),
        _new(5, "BUY", None, 3, 9, 8, order_type="MARKET"),
        _new(6, "SELL", 1, 3, 9, 9, order_type="FOK"),
        _new(7, "BUY", 99.504, 1.5, 9, 10),
        _new(8, "BUY", 99.5, 1.25, 10, 11),
        _new(9, "SELL", 99.5, 2.75, 11, 12, order_type="FOK"),
    ],
    # Replacement: price-only and quantity-only forms, invalid values, unknown ids, and a
    # replacement that crosses and trades at once.
    "replacement": [
        _new(1, "SELL", 100, 2, 1, 1),
        _new(2, "SELL", 101, 2, 2, 2),
        _new(3, "BUY", 99, 2, 3, 3),
        {"op": "replace", "symbol": "T", "order_id": 3, "price": 101, "timestamp_ns": 4},
        {"op": "replace", "symbol": "T", "order_id": 2, "quantity": 7, "timestamp_ns": 5},
        {"op": "replace", "symbol": "T", "order_id": 2, "quantity": 0, "timestamp_ns": 6},
        {"op": "replace", "symbol": "T", "order_id": 2, "price": -3, "timestamp_ns": 7},
        {
            "op": "replace",
            "symbol": "T",
            "order_id": 99,
            "price": 100,
            "quantity": 1,
            "timestamp_ns": 8,
        },
        _new(4, "BUY", 98, 1, 3, 9),
        {
            "op": "replace",
            "symbol": "T",
            "order_id": 4,
            "price": 102,
            "quantity": 10,
            "timestamp_ns": 10,
        },
    ],
}


@needs_cli
@pytest.mark.parametrize("name", sorted(EDGE_TRACES))
def test_edge_trace(name: str, tmp_path: Path) -> None:
    """Paths the generator rarely or never takes (and that minimization may create)."""
    trace = _trace(tmp_path, name, EDGE_TRACES[name])
    report_path = tmp_path / "report.json"
    proc = _harness("run", str(trace), "--output", str(report_path), timeout=120)
    assert proc.returncode == 0, _explain(proc, report_path)
    assert json.loads(report_path.read_text())["conformant"] is True


@needs_cli
def test_known_reference_quirk_failed_replacement_requeues(tmp_path: Path) -> None:
    """tracebook 0.6.0: a replacement whose price snaps to a non-positive tick is rejected
    (INVALID_REPLACEMENT, both agree) but the reference re-rests the original order at the
    *tail* of its level. rltrader rejects before touching the order, so it keeps its place.
    This pins the one known divergence so that a change on either side is noticed."""
    trace = _trace(
        tmp_path,
        "replace-snap0",
        [
            _new(1, "BUY", 1, 2, 1, 1),
            _new(2, "BUY", 1, 2, 2, 2),
            {"op": "replace", "symbol": "T", "order_id": 1, "price": 0.004, "timestamp_ns": 3},
        ],
    )
    report_path = tmp_path / "report.json"
    proc = _harness("run", str(trace), "--output", str(report_path), timeout=120)
    assert proc.returncode == 1, _explain(proc, report_path)
    divergence = json.loads(report_path.read_text())["divergence"]
    assert divergence["event_index"] == 3
    assert divergence["category"] == "book_state"
    assert divergence["path"] == "$.state.books[0].bids[0].order_id"
    assert (divergence["reference"], divergence["candidate"]) == (2, 1)


# ---------------------------------------------------------------------------------------
# the adapter's own framing (no tracebook needed)
# ---------------------------------------------------------------------------------------


def _load_adapter():
    spec = importlib.util.spec_from_file_location("tracebook_adapter", ADAPTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _session(lines: list[dict]) -> tuple[int, list[dict]]:
    adapter = _load_adapter()
    args = adapter.argparse.Namespace(
        lot_size=adapter.DEFAULT_LOT_SIZE, max_owners=16, check_integrity=True
    )
    source = io.StringIO("".join(json.dumps(line) + "\n" for line in lines))
    sink = io.StringIO()
    rc = adapter.serve(args, source, sink)
    return rc, [json.loads(line) for line in sink.getvalue().splitlines()]


HELLO = {
    "type": "hello",
    "protocol": "tracebook.conformance",
    "protocol_version": 1,
    "config": {
        "matching_algorithm": "fifo",
        "tick_size": "0.01",
        "self_trade_policy": "NONE",
        "quantity_decimal_places": 12,
    },
}


def test_adapter_framing_and_reporting() -> None:
    rc, out = _session(
        [
            HELLO,
            {"type": "event", "index": 1, "event": _new(7, "SELL", 100.004, 1.5, 3, 1)},
            {"type": "event", "index": 2, "event": _new(8, "BUY", 100.01, 2, 4, 2)},
            {"type": "snapshot", "index": 2},
            {"type": "finish", "event_count": 2},
        ]
    )
    assert rc == 0
    assert [m["type"] for m in out] == [
        "ready",
        "observation",
        "observation",
        "snapshot",
        "complete",
    ]
    assert out[0]["engine"]["name"] == "rltrader"
    assert out[2]["trades"] == [
        {"symbol": "T", "buy_order_id": 8, "sell_order_id": 7, "price": "100", "quantity": "1.5"}
    ]
    assert out[3]["state"] == {
        "books": [
            {
                "symbol": "T",
                "asks": [],
                "bids": [
                    {
                        "order_id": 8,
                        "price": "100.01",
                        "remaining_quantity": "0.5",
                        "owner": 4,
                        "order_type": "LIMIT",
                    }
                ],
            }
        ]
    }
    assert out[2]["resting_order_count"] == 1
    assert out[4] == {"type": "complete", "event_count": 2}


def test_adapter_refuses_what_it_cannot_represent() -> None:
    rc, out = _session(
        [HELLO, {"type": "event", "index": 1, "event": _new(1, "BUY", 1, 0.1, 1, 1)}]
    )
    assert rc == 2
    assert out[-1]["type"] == "error" and out[-1]["code"] == "ADAPTER_ERROR"
    assert "lots" in out[-1]["message"]

    pro_rata = json.loads(json.dumps(HELLO))
    pro_rata["config"]["matching_algorithm"] = "pro_rata"
    rc, out = _session(
        [pro_rata, {"type": "event", "index": 1, "event": _new(1, "BUY", 1, 1, 1, 1)}]
    )
    assert rc == 2 and out[0]["type"] == "ready"
    assert out[-1]["code"] == "ADAPTER_ERROR" and "pro_rata" in out[-1]["message"]

    rc, out = _session([HELLO, {"type": "event", "index": 2, "event": _new(1, "BUY", 1, 1, 1, 1)}])
    assert rc == 2 and out[-1]["code"] == "PROTOCOL_ERROR"
