"""``rltrader train CONFIG.toml``: every training seed gives a checkpoint, each is
evaluated with the baselines on held-out markets; the shipped example configs parse; a
bad file is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from rltrader.tools.cli import main  # noqa: E402
from rltrader.training import experiment  # noqa: E402

TINY = """
task = "market_making"
seeds = [0, 1]
n_envs = 4
n_agents = 2
agent_steps = 4096
[env]
market = "thin"
horizon = 100
[trainer]
n_steps = 16
minibatch_size = 128
[evaluate]
baselines = ["best_fixed_spread"]
markets = ["thin"]
seeds = "100-101"
n_envs = 2
n_agents = 2
episodes = 1
"""
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "train"


def test_each_seed_is_trained_then_evaluated_on_held_out_markets(tmp_path: Path) -> None:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    for seed in (0, 1):
        assert (tmp_path / "run" / f"seed_{seed}" / "checkpoint.pt").is_file()
    result = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert result["seeds"] == [100, 101]
    rows = result["markets"]["thin"]["rows"]
    assert set(rows) == {"best_fixed_spread", "seed_0", "seed_1"}
    assert rows["seed_0"]["minus_reference"]["n"] == 4           # 2 seeds x 2 markets
    assert (tmp_path / "run" / "report" / "report.md").is_file()


@pytest.mark.parametrize("name", ["market_making", "execution", "directional"])
def test_the_example_configs_parse(name: str) -> None:
    parsed = experiment.load(EXAMPLES / f"{name}.toml")
    assert parsed.task == name and len(parsed.seeds) >= 5
    assert not set(parsed.seeds) & set(parsed.evaluation.seeds)


def test_a_bad_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cases = {"unknown keys": "speed = 3\n" + TINY,
             "task must be": TINY.replace("market_making", "arbitrage"),
             "were training seeds": TINY.replace('"100-101"', '"1-2"'),
             "not TOML": "task = ",
             "unexpected keyword": TINY.replace("horizon = 100", "horizon = 100\nwings = 2")}
    for message, text in cases.items():
        config = tmp_path / "bad.toml"
        config.write_text(text)
        assert main(["train", str(config), "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
