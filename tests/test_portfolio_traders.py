"""The per-stock traders' task (TargetTrackingEnv) and its scripted executors."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.envs import EnvConfig
from rltrader.training.portfolio.tracking import ScriptedExecutor, TargetTrackingEnv

CONFIG = EnvConfig(symbols=3, horizon=400, warmup_steps=50, size_classes=(1.0,), base_qty=2,
                   base_position_limit=20)


def positions(env: TargetTrackingEnv) -> np.ndarray:
    return env.env.accounts()["position"].reshape(-1)


@pytest.mark.parametrize("kind", ["aggressive", "patient"])
def test_the_scripted_executor_reaches_and_holds_the_target(kind: str) -> None:
    env = TargetTrackingEnv(CONFIG, n_envs=4, seed=2, random_targets=False, hold_steps=50)
    act = ScriptedExecutor(env, kind, patience=10)
    target = np.tile([0.5, -1.0, 0.25, 0.0], 3)          # rows: symbol x 4 + market
    env.set_targets(target)
    obs = env.observations
    np.testing.assert_allclose(obs[:, -2], np.rint(target * 20) / 20)   # gap from flat
    for _ in range(40):
        obs, *_ = env.step(act(obs))
    lots = np.rint(target * 20)
    # within half an order (1 lot): 5 lots (0.25 x 20) cannot be reached with 2-lot orders
    assert np.all(np.abs(positions(env) - lots) <= 1)
    np.testing.assert_array_equal(positions(env)[lots % 2 == 0], lots[lots % 2 == 0])
    np.testing.assert_allclose(obs[:, -2], (lots - positions(env)) / 20, atol=1e-7)
    for _ in range(20):                                  # and it holds it
        obs, *_ = env.step(act(obs))
        assert np.all(np.abs(positions(env) - lots) <= 1)
    assert np.all(np.abs(positions(env)) <= 20)


@pytest.mark.parametrize("relative", [False, True])
def test_reward_is_the_value_change_minus_the_tracking_penalty(relative: bool) -> None:
    env = TargetTrackingEnv(CONFIG, n_envs=2, seed=3, tracking_penalty=0.3, hold_steps=7,
                            relative=relative)
    act = ScriptedExecutor(env, "aggressive")
    books = env.env.kernel.books

    def mids() -> np.ndarray:               # rows: one agent per book
        return np.array([(books.best_bid(b) + books.best_ask(b)) / 2
                         for b in range(env.env.n_books)])

    obs = env.observations
    before = env.env.accounts()
    for _ in range(30):
        target, mid = env.target_lots.copy(), mids()
        obs, rewards, terminated, _ = env.step(act(obs))
        assert not terminated.any()
        after = env.env.accounts()
        held = after["position"].reshape(-1)
        expected = env.env.rewards - 0.3 * np.abs(target - held) / 2.0
        if relative:                        # minus the target's own mark-to-mid change
            expected -= target * (mids() - mid) / 2.0
        np.testing.assert_allclose(rewards, expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(env.pnl, env.env.rewards * 2.0)
        np.testing.assert_array_equal(env.traded, (after["volume"] - before["volume"])
                                      .reshape(-1))
        before = after
    # random targets: drawn from the levels, renewed every hold_steps steps
    assert set(np.unique(env.target)) <= {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert env.age.max() < 7


def test_the_episode_value_is_the_cash_the_row_made() -> None:
    env = TargetTrackingEnv(CONFIG.replace(horizon=60), n_envs=2, seed=4, hold_steps=20)
    act = ScriptedExecutor(env, "aggressive")
    cash0 = env.env.accounts()["cash"].reshape(-1)
    obs, total = env.observations, np.zeros(env.num_agents_total)
    for _ in range(60):
        obs, _, terminated, _ = env.step(act(obs))
        total += env.pnl
    assert terminated.all()
    accounts = env.env.accounts()
    assert np.all(accounts["position"] == 0)               # liquidated at the end
    np.testing.assert_allclose(total, accounts["cash"].reshape(-1) - cash0, atol=1e-3)


def test_same_seed_same_targets_and_observations() -> None:
    runs = []
    for _ in range(2):
        env = TargetTrackingEnv(CONFIG, n_envs=2, seed=9, hold_steps=5)
        act = ScriptedExecutor(env, "patient")
        obs, trace = env.observations, [(env.observations.copy(), env.target.copy())]
        for _ in range(25):
            obs, rewards, *_ = env.step(act(obs))
            trace.append((obs.copy(), rewards.copy(), env.target.copy()))
        runs.append(trace)
    for a, b in zip(*runs, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    env.reset(seed=9)                   # reset(seed) replays the first observation
    np.testing.assert_array_equal(env.observations, runs[0][0][0])
    np.testing.assert_array_equal(env.target, runs[0][0][1])


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="discrete"):
        TargetTrackingEnv(CONFIG.replace(action_mode="market_making"), n_envs=1)
    with pytest.raises(ValueError, match="inventory penalties"):
        TargetTrackingEnv(CONFIG.replace(running_inventory_penalty=0.1), n_envs=1)
    with pytest.raises(ValueError, match="hold_steps"):
        TargetTrackingEnv(CONFIG, n_envs=1, hold_steps=0)
    with pytest.raises(ValueError, match="tracking_penalty"):
        TargetTrackingEnv(CONFIG, n_envs=1, tracking_penalty=float("nan"))
    env = TargetTrackingEnv(CONFIG, n_envs=1)
    with pytest.raises(ValueError, match="shape"):
        env.set_targets(np.zeros(2))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.set_targets(np.full(3, 1.5))
    with pytest.raises(ValueError, match="kind"):
        ScriptedExecutor(env, "twap")
    with pytest.raises(ValueError, match="contain 0"):
        ScriptedExecutor(TargetTrackingEnv(CONFIG.replace(limit_offsets=(1, 2)), n_envs=1),
                         "patient")
    with pytest.raises(ValueError, match="observations"):
        ScriptedExecutor(env)(np.zeros((5, env.obs_dim)))
