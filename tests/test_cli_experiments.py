"""`rltrader market-share`, `rltrader portfolio` and `rltrader pbt` hand their arguments to the
experiments' own parsers (as `rltrader evaluate` does)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from rltrader.tools.cli import main  # noqa: E402


@pytest.mark.parametrize("command", ["market-share", "portfolio", "pbt"])
def test_help_is_the_experiments_own(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: rltrader {command}" in capsys.readouterr().out


def test_bad_arguments_reach_the_experiments_and_fail_cleanly(capsys, tmp_path):
    assert main(["market-share", "--train-seeds", "3", "--out", str(tmp_path)]) == 2
    assert "train_seeds" in capsys.readouterr().out
    assert main(["portfolio", "--out", str(tmp_path), "--eval-seeds", "0"]) == 2
    assert "held out" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:            # argparse's own error: status 2
        main(["pbt", "--selection", "ttest", "--fitness", "sharpe", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "usage: rltrader pbt" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())                  # nothing was trained or written
