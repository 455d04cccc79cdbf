"""``write_report`` writes every figure the record allows, a Markdown table and facts.json;
``rltrader facts`` prints the table for a LOBSTER file."""

from __future__ import annotations

import json

import numpy as np
from _synthetic import fgn, lobster_file, parents, quotes_from_returns, trades_of

from rltrader.analysis import facts as an
from rltrader.analysis.report import write_report
from rltrader.tools.cli import main

EVERY_FIGURE = {"price.png", "spread.png", "depth.png", "returns.png", "acf.png",
                "sign_acf.png", "impact.png"}


def _full_market() -> an.MarketData:
    rng = np.random.default_rng(0)
    q = quotes_from_returns(1e-3 * rng.standard_t(4, 20_000))
    depth = rng.integers(1, 100, size=(q.t_ns.size, 2, 5))
    quotes = an.Quotes(q.t_ns, q.bid, q.ask, q.bid_qty, q.ask_qty, depth)
    signs = np.sign(fgn(1 << 12, 0.75, rng)).astype(np.int8)
    return an.MarketData(quotes, trades_of(signs), parents(0.5, 300, seed=1), name="synthetic",
                     tick_size=0.01)


def test_full_report(tmp_path):
    market = _full_market()
    facts = an.stylized_facts(market, horizons_s=(0.1, 1.0, 10.0))
    report = write_report(tmp_path / "out", market, facts)
    written = {p.name for p in report.parent.iterdir()}
    assert written == EVERY_FIGURE | {"report.md", "facts.json"}
    for png in EVERY_FIGURE:
        assert (report.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.read_text()
    assert "Not drawn" not in text
    assert text.count("\n| ") >= len(facts.table()) + 1
    assert "max \\|ACF(r)\\|" in text     # pipes escaped inside the Markdown table
    saved = json.loads((report.parent / "facts.json").read_text())
    assert [f["name"] for f in saved["facts"]] == [r.name for r in facts.table()]
    assert saved["returns"][0]["n"] == facts.returns[0].n


def test_report_without_depth_trades_orparents(tmp_path):
    market = an.MarketData(quotes_from_returns(np.random.default_rng(1).normal(0, 1e-3, 2000)))
    report = write_report(tmp_path, market, an.stylized_facts(market, horizons_s=(0.1, 1.0)))
    written = {p.name for p in tmp_path.iterdir()}
    assert written == {"price.png", "spread.png", "returns.png", "acf.png", "report.md",
                       "facts.json"}
    assert "Not drawn: depth" in report.read_text()


def test_facts_command_prints_the_table(capsys, tmp_path):
    path = lobster_file()
    assert main(["facts", str(path), "--interval-ms", "1000", "--levels", "5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["fact", "value", "typical"]
    assert "heavy tails: excess kurtosis" in out and "FAIL" not in out


def test_facts_command_rejects_a_nonlobster_file(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,lobster,file\n")
    assert main(["facts", str(bad)]) == 2           # one line, no traceback
    err = capsys.readouterr().err
    assert "not a LOBSTER message file" in err and len(err.strip().splitlines()) == 1
