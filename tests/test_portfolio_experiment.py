"""The portfolio manager's command: a tiny hierarchical training and evaluation, end to
end (traders, then the manager over the frozen trader, then the held-out evaluation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from rltrader.training.fast_ppo import load_policy  # noqa: E402
from rltrader.training.portfolio.experiment import main, task  # noqa: E402
from rltrader.training.portfolio.manager import PortfolioEnv  # noqa: E402

TINY = ["--n-envs", "8", "--trader-steps", "4000", "--manager-decisions", "160",
        "--seeds", "0,1", "--validation-seeds", "500", "--eval-seeds", "1000",
        "--eval-envs", "4", "--episodes", "1", "--trader-eval-steps", "40",
        "--horizon", "100", "--decision-steps", "20", "--symbols", "2",
        "--eval-presets", "resilient,thin", "--drift-mean", "0.1", "--drift-sd", "0.2"]


def test_a_tiny_run_trains_and_evaluates(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), *TINY]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert (tmp_path / "report.png").stat().st_size > 0
    assert "| manager_seed1 - inverse_vol |" in (tmp_path / "report.md").read_text()
    assert report["traders"]["chosen"] in ("aggressive", "patient", "trained")
    assert (report["task"]["drift_mean"], report["task"]["drift_sd"]) == (0.1, 0.2)
    assert set(report["evaluation"]) == {"resilient", "thin"}
    table = report["evaluation"]["thin"]
    assert set(table["policies"]) == {"flat", "equal_weight", "inverse_vol",
                                      "buy_and_hold", "momentum", "mean_variance",
                                      "manager_seed0", "manager_seed1"}
    # (flat is exactly 0 under a scripted executor, test_portfolio_manager.py; a
    # briefly trained trader still trades around a 0 target)
    assert all(np.isfinite(row[m]["mean"]) for row in table["policies"].values()
               for m in ("sharpe", "total_return", "traded", "tracking_error"))
    assert table["policies"]["equal_weight"]["sharpe"]["n"] == 4
    pair = table["paired"]["manager_seed0 - equal_weight"]["total_return"]
    assert pair["ci_low"] <= pair["mean"] <= pair["ci_high"]
    # the checkpoints load and act in a fresh env
    manager = load_policy(tmp_path / "manager_seed0.pt")
    env = PortfolioEnv(task(symbols=2, horizon=100, decision_steps=20), n_envs=3, seed=7)
    actions = manager(env.reset(seed=7))
    assert actions.shape == (3, 2) and actions.min() >= 0 and actions.max() < 9
    trader = load_policy(tmp_path / "trader.pt")
    obs = env.traders.observations
    assert np.isin(trader(obs), np.arange(env.traders.single_action_space.n)).all()
    assert "## thin" in capsys.readouterr().out
    # managers trained on two presets at once
    mixed = tmp_path / "mixed"
    assert main(["--out", str(mixed), *TINY, "--trader", "aggressive", "--seeds", "0",
                 "--manager-presets", "resilient,thin"]) == 0
    report = json.loads((mixed / "report.json").read_text())
    assert report["manager_presets"] == ["resilient", "thin"]
    assert "manager_seed0" in report["evaluation"]["thin"]["policies"]
    # a given trader and manager checkpoints: evaluated, nothing trained
    again = tmp_path / "again"
    assert main(["--out", str(again), *TINY, "--trader", str(tmp_path / "trader.pt"),
                 "--managers", str(tmp_path / "manager_seed1.pt")]) == 0
    report = json.loads((again / "report.json").read_text())
    assert report["traders"]["chosen"] == "trained" and not report["trader_curve"]
    assert set(report["evaluation"]["thin"]["policies"]) == {
        "flat", "equal_weight", "inverse_vol", "buy_and_hold", "momentum", "mean_variance",
        "manager:manager_seed1"}
    assert not (again / "manager_seed0.pt").exists()


def test_held_out_seeds_must_be_held_out(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path), "--seeds", "0,1", "--eval-seeds", "1"]) == 2
    assert main(["--out", str(tmp_path), "--eval-presets", "nope"]) == 2
    assert main(["--out", str(tmp_path), "--horizon", "110"]) == 2
    assert main(["--out", str(tmp_path), "--managers", str(tmp_path / "none.pt")]) == 2
    assert main(["--out", str(tmp_path), "--trader", str(tmp_path / "none.pt")]) == 2
    assert main(["--out", str(tmp_path), "--managers", "pretrained:nope"]) == 2
    assert main(["--out", str(tmp_path), "--manager-presets", "resilient,nope"]) == 2
    assert not (tmp_path / "report.json").exists()


def test_managers_with_the_cost_feature_on_several_fees(tmp_path: Path) -> None:
    args = [*TINY, "--trader", "aggressive", "--seeds", "0", "--cost-feature",
            "--sharpe-prior", "0.1", "--sharpe-guard", "--manager-presets", "resilient,thin",
            "--manager-fees", "100,300"]
    assert main(["--out", str(tmp_path), *args]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["manager_fees"] == [100, 300]
    assert report["task"]["cost_feature"] is True and report["task"]["sharpe_prior"] == 0.1
    assert report["task"]["sharpe_guard"] is True
    assert report["task"]["taker_fee_ppm"] == 100          # evaluation keeps the task's
    manager = load_policy(tmp_path / "manager_seed0.pt")
    config = task(symbols=2, horizon=100, decision_steps=20, cost_feature=True)
    assert manager.model.obs_dim == PortfolioEnv(config, n_envs=1).obs_dim == 2 * 10 + 3
    # re-evaluated as given, on the same task; refused on a task without the feature
    assert main(["--out", str(tmp_path / "again"), *args,
                 "--managers", str(tmp_path / "manager_seed0.pt")]) == 0
    plain = [a for a in args if a != "--cost-feature"]
    assert main(["--out", str(tmp_path / "no"), *plain,
                 "--managers", str(tmp_path / "manager_seed0.pt")]) == 2
    assert not (tmp_path / "no" / "report.json").exists()
    for bad in (["--manager-fees", str(10**9)], ["--sharpe-prior", "0"]):
        assert main(["--out", str(tmp_path / "no"), *TINY, *bad]) == 2
