"""The manager's opt-in training charge where nothing pays (docs/portfolio.md, "Fifth
round"): ``PortfolioConfig.hold_charge`` (the reward's differential Sharpe ratio sees the
return minus the charge times the decision's gross target weight; the returns do not),
``--no-premium-charge`` (set on the training markets drawn without a premium only), and
the charge on the reward alone (``PortfolioConfig.charge_observed`` off,
``--charge-reward-only``: "Sixth round")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from _portfolio import record_training

from rltrader.envs import EnvConfig
from rltrader.training.portfolio import experiment
from rltrader.training.portfolio.experiment import charge_without_premium, without_premium
from rltrader.training.portfolio.manager import LEVELS, PortfolioConfig, PortfolioEnv
from rltrader.training.portfolio.sharpe import DifferentialSharpe

ENV = EnvConfig(symbols=2, horizon=100, warmup_steps=50, size_classes=(1.0,), base_qty=2,
                base_position_limit=20, drift_mean=0.1, drift_sd=0.2)
CONFIG = PortfolioConfig(env=ENV, decision_steps=20, cost_feature=True, sharpe_prior=0.1,
                         sharpe_guard=True)
DECISIONS = ENV.horizon // CONFIG.decision_steps        # 5 per episode
ZERO = LEVELS.index(0.0)


def test_defaults_are_unchanged() -> None:
    assert PortfolioConfig().hold_charge == 0.0 and CONFIG.hold_charge == 0.0
    assert PortfolioConfig().charge_observed is True
    args = experiment.parser().parse_args(["--out", "x"])
    assert args.no_premium_charge == 0.0 and args.charge_reward_only is False
    # without a charge, charge_observed changes nothing: the env keeps one Sharpe ratio
    assert PortfolioEnv(dataclasses.replace(CONFIG, charge_observed=False))._charged is None


@pytest.mark.parametrize("wait, band", [(0, 0.0), (1, 0.5)])
def test_the_reward_is_the_sharpe_ratio_of_the_charged_returns(wait: int,
                                                               band: float) -> None:
    """Returns, trades and observations but the Sharpe columns are the uncharged env's on
    the same markets; the reward is the reference ratio (restarted at every episode) of
    ``return - charge x gross``, with the gross of the targets the decision set (after
    the wait and the band) worked out by hand from the actions."""
    n, episodes, charge = 4, 3, 0.3
    config = dataclasses.replace(CONFIG, wait_decisions=wait, min_weight=band)
    charged = PortfolioEnv(dataclasses.replace(config, hold_charge=charge), n_envs=n,
                           seed=7)
    free = PortfolioEnv(config, n_envs=n, seed=7)
    charged.reset(seed=7)
    free.reset(seed=7)
    reference = DifferentialSharpe(n, config.sharpe_eta, config.sharpe_min_var,
                                   config.sharpe_guard)
    plain = DifferentialSharpe(n, config.sharpe_eta, config.sharpe_min_var,
                               config.sharpe_guard)
    levels = np.asarray(LEVELS)
    rng = np.random.default_rng(11)
    sharpe_columns = slice(charged.obs_dim - 3, charged.obs_dim - 1)
    differed = False
    for t in range(episodes * DECISIONS):
        if t % DECISIONS == 0:
            reference.restart(np.ones(n, dtype=bool), config.sharpe_prior)
            plain.restart(np.ones(n, dtype=bool), config.sharpe_prior)
        a = rng.integers(0, len(LEVELS), (n, 2))
        w = levels[a]
        w = np.where(np.abs(w) < band, 0.0, w) if t % DECISIONS >= wait else 0.0 * w
        gross = np.abs(w).sum(1)
        charged.step(a)
        free.step(a)
        np.testing.assert_array_equal(charged.returns, free.returns)
        np.testing.assert_array_equal(charged.traded, free.traded)
        np.testing.assert_array_equal(charged.traders.target, free.traders.target)
        np.testing.assert_array_equal(charged.observations[:, :-3],
                                      free.observations[:, :-3])
        np.testing.assert_array_equal(charged.observations[:, -1], free.observations[:, -1])
        want = reference.update(free.returns - charge * gross)
        np.testing.assert_allclose(charged.rewards, want.astype(np.float32), rtol=1e-6,
                                   atol=1e-6)
        np.testing.assert_allclose(free.rewards, plain.update(free.returns).astype(
            np.float32), rtol=1e-6, atol=1e-6)
        differed |= bool(np.any(np.abs(charged.rewards - free.rewards) > 1e-3))
        if np.any(gross > 0) and t % DECISIONS < DECISIONS - 1:   # (an episode's end
            assert np.any(charged.observations[:, sharpe_columns]
                          != free.observations[:, sharpe_columns])   # restarts them)
    assert differed


@pytest.mark.parametrize("wait, band", [(0, 0.0), (1, 0.5)])
def test_a_charge_on_the_reward_alone_leaves_every_observation_uncharged(
        wait: int, band: float) -> None:
    """``charge_observed=False``: returns, trades and every observation column, the
    running Sharpe ratio's included, are the uncharged env's value for value on the same
    markets (an observed charged ratio fails it), and the reward is still the reference
    ratio of ``return - charge x gross`` (an uncharged reward fails it)."""
    n, episodes, charge = 4, 3, 0.3
    config = dataclasses.replace(CONFIG, wait_decisions=wait, min_weight=band)
    charged = PortfolioEnv(dataclasses.replace(config, hold_charge=charge,
                                               charge_observed=False), n_envs=n, seed=7)
    free = PortfolioEnv(config, n_envs=n, seed=7)
    np.testing.assert_array_equal(charged.reset(seed=7), free.reset(seed=7))
    reference = DifferentialSharpe(n, config.sharpe_eta, config.sharpe_min_var,
                                   config.sharpe_guard)
    levels = np.asarray(LEVELS)
    rng = np.random.default_rng(11)
    differed = False
    for t in range(episodes * DECISIONS):
        if t % DECISIONS == 0:
            reference.restart(np.ones(n, dtype=bool), config.sharpe_prior)
        a = rng.integers(0, len(LEVELS), (n, 2))
        w = levels[a]
        w = np.where(np.abs(w) < band, 0.0, w) if t % DECISIONS >= wait else 0.0 * w
        charged.step(a)
        free.step(a)
        np.testing.assert_array_equal(charged.returns, free.returns)
        np.testing.assert_array_equal(charged.traded, free.traded)
        np.testing.assert_array_equal(charged.observations, free.observations)
        np.testing.assert_array_equal(charged.final_observations, free.final_observations)
        np.testing.assert_array_equal(charged.terminated, free.terminated)
        want = reference.update(free.returns - charge * np.abs(w).sum(1))
        np.testing.assert_allclose(charged.rewards, want.astype(np.float32), rtol=1e-6,
                                   atol=1e-6)
        differed |= bool(np.any(np.abs(charged.rewards - free.rewards) > 1e-3))
    assert differed
    # a new market (reset with a seed) clears the reward's averages as the observed ones
    charged.reset(seed=8)
    np.testing.assert_array_equal(charged._charged.a, 0.0)
    np.testing.assert_array_equal(charged._charged.b, config.sharpe_prior)


def test_a_flat_manager_is_never_charged() -> None:
    """Where every target is 0 the charged env is the uncharged one, value for value."""
    n = 3
    charged = PortfolioEnv(dataclasses.replace(CONFIG, hold_charge=5.0), n_envs=n, seed=2)
    free = PortfolioEnv(CONFIG, n_envs=n, seed=2)
    np.testing.assert_array_equal(charged.reset(seed=2), free.reset(seed=2))
    for _ in range(2 * DECISIONS):
        a = np.full((n, 2), ZERO)
        for x, y in zip(charged.step(a), free.step(a), strict=True):
            np.testing.assert_array_equal(x, y)


def test_only_the_markets_without_a_premium_are_charged() -> None:
    drifts = [(0.1, 0.2), (0.1, 0.2), (0.0, 0.0), (0.0, 0.3), (0.2, 0.0)]
    configs = [dataclasses.replace(CONFIG, env=ENV.replace(drift_mean=m, drift_sd=s))
               for m, s in drifts]
    assert [without_premium(c) for c in configs] == [False, False, True, False, False]
    out = charge_without_premium(configs, 0.1)
    assert [c.hold_charge for c in out] == [0.0, 0.0, 0.1, 0.0, 0.0]
    assert [c.env for c in out] == [c.env for c in configs]
    assert all(c.charge_observed for c in out)
    alone = charge_without_premium(configs, 0.1, observed=False)
    assert [(c.hold_charge, c.charge_observed) for c in alone] == \
        [(0.0, True), (0.0, True), (0.1, False), (0.0, True), (0.0, True)]
    with pytest.raises(ValueError, match="drawn without a premium"):
        charge_without_premium(configs[:2], 0.1)


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_bad_charge(value: object) -> None:
    with pytest.raises(ValueError, match="hold_charge"):
        dataclasses.replace(CONFIG, hold_charge=value)


def test_the_command_charges_the_training_markets_without_a_premium(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    seen = record_training(monkeypatch)
    evaluated: list[PortfolioConfig] = []
    real_evaluate = experiment.evaluate_allocators

    def spy(config: PortfolioConfig, *a: object, **kw: object) -> object:
        evaluated.append(config)
        return real_evaluate(config, *a, **kw)

    monkeypatch.setattr(experiment, "evaluate_allocators", spy)
    args = ["--out", str(tmp_path), "--trader", "aggressive", "--seeds", "0",
            "--validation-seeds", "500", "--eval-seeds", "1000", "--eval-envs", "2",
            "--episodes", "1", "--trader-eval-steps", "20", "--horizon", "100",
            "--decision-steps", "20", "--symbols", "2", "--eval-presets", "thin",
            "--drift-mean", "0.1", "--drift-sd", "0.2", "--manager-presets",
            "resilient,thin", "--manager-drifts", "0.1:0.2,0:0"]
    assert experiment.main([*args, "--no-premium-charge", "0.25"]) == 0
    (configs,) = seen
    assert [(c.env.drift_mean, c.hold_charge) for c in configs] == \
        [(0.1, 0.0), (0.0, 0.25)] * 2
    assert evaluated and all(c.hold_charge == 0.0 for c in evaluated)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["no_premium_charge"] == 0.25 and report["charge_reward_only"] is False
    assert experiment.main([*args, "--no-premium-charge", "0.25",
                            "--charge-reward-only"]) == 0
    assert [(c.env.drift_mean, c.hold_charge, c.charge_observed) for c in seen[1]] == \
        [(0.1, 0.0, True), (0.0, 0.25, False)] * 2
    assert all(c.hold_charge == 0.0 for c in evaluated)
    assert json.loads((tmp_path / "report.json").read_text())["charge_reward_only"] is True
    capsys.readouterr()
    for bad, why in ((["--no-premium-charge", "-1"], "hold_charge"),
                     (["--no-premium-charge", "0.1", "--manager-drifts", "0.1:0.2"],
                      "there are none"),
                     (["--no-premium-charge", "0.1", "--managers", "pretrained:directional"],
                      "does not apply to --managers"),
                     (["--charge-reward-only"], "there is no charge")):
        assert experiment.main([*args, *bad]) == 2
        assert why in capsys.readouterr().err, bad
    assert len(seen) == 2


def test_charge_observed_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="charge_observed"):
        dataclasses.replace(CONFIG, charge_observed=0)
