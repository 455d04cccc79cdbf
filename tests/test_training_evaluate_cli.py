"""``rltrader evaluate``: candidates on the same held-out markets (a preset and a hybrid
replay of real LOBSTER data), paired with the reference; JSON and a report; bad input is a
one-line error."""

from __future__ import annotations

import json

import pytest

from rltrader.tools.cli import main
from rltrader.training.evaluate import evaluate, parse_seeds


def test_candidates_are_paired_on_the_same_markets(tmp_path) -> None:
    out = tmp_path / "result.json"
    status = main(["evaluate", "baseline:fixed_spread", "baseline:hold", "--markets",
                   "thin,lobster", "--seeds", "0-2", "--n-envs", "3", "--n-agents", "2",
                   "--episodes", "1", "--horizon", "120", "--json", str(out), "--report",
                   str(tmp_path / "report")])
    assert status == 0
    result = json.loads(out.read_text())
    assert result["candidates"] == ["fixed_spread", "hold"]
    for market in ("thin", "lobster"):
        rows = result["markets"][market]["rows"]
        assert rows["fixed_spread"]["minus_reference"]["mean"] == 0
        assert rows["hold"]["return_per_agent"]["mean"] == 0      # never trades
        assert rows["hold"]["minus_reference"]["n"] == 9          # 3 seeds x 3 markets
        assert rows["hold"]["minus_reference"]["mean"] == pytest.approx(
            -rows["fixed_spread"]["return_per_agent"]["mean"])
    assert (tmp_path / "report" / "report.md").read_text().count("| hold |") == 2
    assert (tmp_path / "report" / "returns.png").stat().st_size > 1000


def test_the_same_seeds_give_the_same_numbers() -> None:
    kwargs = dict(task="market_making", markets=["thin"], seeds=[5], n_envs=2, n_agents=2,
                  episodes=1, horizon=80)
    a = evaluate(["baseline:fixed_spread"], **kwargs)
    b = evaluate(["baseline:fixed_spread"], **kwargs)
    assert a == b


def test_a_market_scores_as_if_evaluated_alone() -> None:
    """A baseline that fits itself to the market when it begins (Almgren-Chriss) fits
    each market of a call, not the first one evaluated: the rows of a market are the
    same in a call of several markets as in a call of that market alone; on the real
    replay it takes the fit of the config's preset, whatever came before."""
    # (horizon 150: long enough for thin's and informed's fits to give other children;
    # with the fit of the first market the rows of informed differ)
    kwargs = dict(task="execution", seeds=[5], n_envs=2, n_agents=1, episodes=1,
                  horizon=150)
    lineup = ["baseline:almgren_chriss", "baseline:twap"]
    both = evaluate(lineup, markets=["thin", "informed"], **kwargs)
    alone = evaluate(lineup, markets=["informed"], **kwargs)
    assert both["markets"]["informed"] == alone["markets"]["informed"]
    after = evaluate(lineup, markets=["thin", "lobster"], **kwargs)
    real = evaluate(lineup, markets=["lobster"], **kwargs)    # was refused: no probe
    assert after["markets"]["lobster"] == real["markets"]["lobster"]


def test_bad_input_is_one_line(capsys) -> None:
    assert main(["evaluate", "baseline:nope", "--markets", "thin"]) == 2
    assert "unknown baseline 'nope'" in capsys.readouterr().err
    assert main(["evaluate", "missing.pt", "--markets", "thin"]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds("a-b")


def test_help_names_every_candidate_it_accepts(capsys) -> None:
    from rltrader.training.evaluate import PRETRAINED, _baselines

    with pytest.raises(SystemExit) as done:
        main(["evaluate", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())      # argparse wraps the lines
    listed = text.split("NAME one of ", 1)[1].split(";", 1)[0]
    assert listed.split(", ") == sorted(_baselines())
    shipped = sorted(PRETRAINED.glob("*.pt"))
    assert shipped
    for path in shipped:
        assert f"pretrained:{path.stem}" in text
