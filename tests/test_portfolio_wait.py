"""The manager's opt-in wait and no-trade band (docs/portfolio.md, "Third round"):
``PortfolioConfig.wait_decisions`` (every target 0 during an episode's first decisions,
whatever the action) and ``min_weight`` (a target of size below it is 0), against the
same markets without them, and the defaults unchanged."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from _portfolio import record_training

from rltrader.envs import EnvConfig
from rltrader.training.portfolio.experiment import (
    PLAIN,
    constrained,
    evaluate_allocators,
    paired_table,
    plain,
    run_allocator,
)
from rltrader.training.portfolio.manager import (
    BASELINES,
    LEVELS,
    EqualWeight,
    PortfolioConfig,
    PortfolioEnv,
)

ENV = EnvConfig(symbols=2, horizon=100, warmup_steps=50, size_classes=(1.0,), base_qty=2,
                base_position_limit=20, drift_mean=0.1, drift_sd=0.2)
CONFIG = PortfolioConfig(env=ENV, decision_steps=20, cost_feature=True, sharpe_prior=0.1,
                         sharpe_guard=True)
DECISIONS = ENV.horizon // CONFIG.decision_steps        # 5 per episode
ZERO = LEVELS.index(0.0)


def actions(rng: np.random.Generator, steps: int, n: int) -> np.ndarray:
    return rng.integers(0, len(LEVELS), (steps, n, 2))


def test_defaults_are_unchanged() -> None:
    config = PortfolioConfig()
    assert config.wait_decisions == 0 and config.min_weight == 0.0
    assert not constrained(CONFIG) and plain(CONFIG) == CONFIG
    env = PortfolioEnv(CONFIG, n_envs=3, seed=2)
    env.reset(seed=2)
    rng = np.random.default_rng(1)
    for a in actions(rng, 7, 3):
        assert not env.waiting
        np.testing.assert_array_equal(env.targets(a), np.asarray(LEVELS)[a])


@pytest.mark.parametrize("wait", [1, 3])
def test_a_waiting_manager_is_exactly_flat_for_its_first_decisions(wait: int) -> None:
    """Its first ``wait`` returns of every episode are exactly 0 (nothing traded, targets
    0); every decision's return, reward and observation are those of the same markets
    without the wait where the actions during the wait are flat."""
    n, episodes = 4, 3
    waiting = PortfolioEnv(dataclasses.replace(CONFIG, wait_decisions=wait), n_envs=n,
                           seed=5)
    free = PortfolioEnv(CONFIG, n_envs=n, seed=5)
    waiting.reset(seed=5)
    free.reset(seed=5)
    rng = np.random.default_rng(3)
    for t, a in enumerate(actions(rng, episodes * DECISIONS, n)):
        early = t % DECISIONS < wait
        assert waiting.waiting == early
        waiting.step(a)
        free.step(np.full_like(a, ZERO) if early else a)
        if early:
            assert np.all(waiting.returns == 0.0) and np.all(waiting.traded == 0.0)
            assert np.all(waiting.traders.target == 0.0)
            assert np.all(waiting.observations[:, waiting.column("position")] == 0.0)
        else:
            np.testing.assert_array_equal(waiting.traders.target,
                                          np.asarray(LEVELS)[a].T.reshape(-1))
        np.testing.assert_array_equal(waiting.returns, free.returns)
        np.testing.assert_array_equal(waiting.rewards, free.rewards)
        np.testing.assert_array_equal(waiting.observations, free.observations)
        np.testing.assert_array_equal(waiting.terminated, (t + 1) % DECISIONS == 0)


def test_the_episode_sharpe_counts_the_wait_as_flat_returns() -> None:
    """``run_allocator``'s Sharpe ratio of a waiting policy is that of its whole path,
    the zeros of the wait included (mean / s.d. over all decisions x sqrt(decisions)),
    for managers and baselines alike: by hand from the returns."""
    wait, n, episodes = 2, 3, 2
    config = dataclasses.replace(CONFIG, wait_decisions=wait)
    env = PortfolioEnv(config, n_envs=n, seed=8)
    got = run_allocator(env, EqualWeight(env), seed=8, episodes=episodes)
    env.reset(seed=8)
    policy = EqualWeight(env)
    obs = env.observations
    paths = np.zeros((episodes, DECISIONS, n))
    for e in range(episodes):
        for k in range(DECISIONS):
            obs, *_ = env.step(policy(obs))
            paths[e, k] = env.returns
    assert np.all(paths[:, :wait] == 0.0) and np.all(np.any(paths[:, wait:] != 0.0, 1))
    for m in range(n):
        sharpe = [float(np.mean(p) / np.std(p, ddof=1) * math.sqrt(DECISIONS))
                  for p in paths[:, :, m]]
        assert got["sharpe"][m] == pytest.approx(np.mean(sharpe), rel=1e-12)
        assert got["total_return"][m] == pytest.approx(paths[:, :, m].sum(1).mean(),
                                                       rel=1e-12)


def test_the_no_trade_band_rounds_small_targets_to_zero() -> None:
    band = dataclasses.replace(CONFIG, min_weight=0.5)
    n = 3
    banded = PortfolioEnv(band, n_envs=n, seed=6)
    free = PortfolioEnv(CONFIG, n_envs=n, seed=6)
    banded.reset(seed=6)
    free.reset(seed=6)
    levels = np.asarray(LEVELS)
    rng = np.random.default_rng(4)
    for a in actions(rng, 2 * DECISIONS, n):
        # by hand: -0.25 and 0.25 are inside the band, -0.5 and 0.5 are not
        rounded = np.where(np.isin(levels[a], (-0.25, 0.25)), ZERO, a)
        np.testing.assert_array_equal(banded.targets(a), levels[rounded])
        banded.step(a)
        free.step(rounded)
        np.testing.assert_array_equal(banded.returns, free.returns)
        np.testing.assert_array_equal(banded.observations, free.observations)


def test_baselines_are_reported_with_and_without_the_wait() -> None:
    """Under a wait the baselines wait as the managers do, and run again without it
    (``plain:NAME``) on the same markets: those equal the baselines of the task without
    the wait, and every manager is paired with both."""
    waiting = dataclasses.replace(CONFIG, wait_decisions=2)
    kw = {"n_envs": 3, "seeds": [11, 12], "episodes": 2}
    manager = {"manager": lambda obs: np.full((len(obs), 2), 7)}
    got = evaluate_allocators(waiting, "aggressive", manager, **kw)
    free = evaluate_allocators(CONFIG, "aggressive", {}, **kw)
    assert set(got) == set(BASELINES) | {PLAIN + b for b in BASELINES} | {"manager"}
    assert set(free) == set(BASELINES)
    for name in BASELINES:
        for metric, values in free[name].items():
            np.testing.assert_array_equal(got[PLAIN + name][metric], values)
    # equal weight waits: it misses premia and costs of the first two decisions
    assert not np.array_equal(got["equal_weight"]["total_return"],
                              free["equal_weight"]["total_return"])
    np.testing.assert_array_equal(got["flat"]["total_return"], 0.0)
    table = paired_table(got, ["manager"])
    assert {f"manager - {b}" for b in BASELINES} | \
        {f"manager - {PLAIN}{b}" for b in BASELINES} == set(table["paired"])
    d = table["paired"][f"manager - {PLAIN}equal_weight"]["total_return"]["mean"]
    assert d == pytest.approx(float(np.mean(got["manager"]["total_return"]
                                            - free["equal_weight"]["total_return"])))


@pytest.mark.parametrize("field, value", [
    ("wait_decisions", -1), ("wait_decisions", DECISIONS), ("wait_decisions", 1.0),
    ("wait_decisions", True), ("min_weight", -0.1), ("min_weight", 1.5),
    ("min_weight", True), ("min_weight", "0.5")])
def test_bad_input(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(CONFIG, **{field: value})


def test_buy_and_hold_buys_at_the_first_decision_after_the_wait() -> None:
    """Waiting, buy and hold holds equal weight from the first decision that acts, the
    same targets and returns as equal weight (which sets them at every decision)."""
    config = dataclasses.replace(CONFIG, wait_decisions=2)
    hold = run_allocator(env := PortfolioEnv(config, n_envs=3, seed=9),
                         BASELINES["buy_and_hold"](env), seed=9, episodes=2)
    equal = run_allocator(env, EqualWeight(env), seed=9, episodes=2)
    for metric in ("sharpe", "total_return", "traded"):
        np.testing.assert_array_equal(hold[metric], equal[metric])
    assert np.all(hold["traded"] > 0)


def test_the_command_waits_and_trains_on_several_drifts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--wait`` and ``--min-weight`` reach the task (the report, the plain baselines);
    ``--manager-drifts`` gives the managers' training markets every preset with every
    drift, the evaluation keeping the task's."""
    import json

    from rltrader.training.portfolio import experiment

    seen = record_training(monkeypatch)
    args = ["--out", str(tmp_path), "--trader", "aggressive", "--seeds", "0",
            "--validation-seeds", "500", "--eval-seeds", "1000", "--eval-envs", "2",
            "--episodes", "1", "--trader-eval-steps", "20", "--horizon", "100",
            "--decision-steps", "20", "--symbols", "2", "--eval-presets", "thin",
            "--drift-mean", "0.1", "--drift-sd", "0.2", "--wait", "2", "--min-weight",
            "0.5", "--manager-presets", "resilient,thin", "--manager-drifts", "0.1:0.2,0:0"]
    assert experiment.main(args) == 0
    (configs,) = seen
    assert [(c.env.drift_mean, c.env.drift_sd) for c in configs] == [(0.1, 0.2), (0.0, 0.0)] * 2
    assert all(c.wait_decisions == 2 and c.min_weight == 0.5 for c in configs)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["task"]["wait_decisions"] == 2 and report["task"]["min_weight"] == 0.5
    assert report["task"]["drift_mean"] == 0.1
    assert report["manager_drifts"] == [[0.1, 0.2], [0.0, 0.0]]
    policies = report["evaluation"]["thin"]["policies"]
    assert "plain:equal_weight" in policies and "manager_seed0" in policies
    for bad in (["--manager-drifts", "0.1"], ["--manager-drifts", "a:b"]):
        with pytest.raises(SystemExit):
            experiment.main([*args, *bad])
    for bad in (["--manager-drifts", "0:-1"], ["--wait", "5"], ["--min-weight", "2"]):
        assert experiment.main([*args, *bad]) == 2
    assert len(seen) == 1
