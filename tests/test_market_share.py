"""The market-share experiment's measures (rltrader.analysis.market_share) against
synthetic data with known answers, the recording against the core's accounts, and the
experiment (rltrader.training.market_share) end to end on a tiny budget."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rltrader.analysis import market_share as ms
from rltrader.envs import BatchedMarketEnv, EnvConfig

torch = pytest.importorskip("torch")

from rltrader.training import market_share as experiment  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings  # noqa: E402
from rltrader.training.ppo.policy import Policy  # noqa: E402

CLASSES = [[0, 1], [2]]


def synthetic(trades: np.ndarray, mids: np.ndarray, horizon: int | None = None,
              actions: np.ndarray | None = None, rewards: np.ndarray | None = None
              ) -> ms.Recording:
    n_steps, n_books, n_agents = trades.shape
    step = (np.zeros((n_steps, n_books), dtype=np.int64) if horizon is None
            else np.repeat((np.arange(n_steps) % horizon)[:, None], n_books, axis=1))
    return ms.Recording(
        size_class=np.ones(n_agents), mids=mids, fundamental=np.zeros_like(mids),
        spread=np.ones((n_steps, n_books)), depth=np.ones((n_steps, n_books)),
        trades=trades, episode_step=step,
        actions=np.zeros(trades.shape, np.int64) if actions is None else actions,
        rewards=np.zeros(trades.shape, np.float32) if rewards is None else rewards)


def test_the_propagator_recovers_the_kernel_that_generated_the_prices():
    rng = np.random.default_rng(0)
    n_steps, n_books, lags = 3000, 8, 6
    trades = rng.integers(-3, 4, size=(n_steps, n_books, 3))
    kernel = np.array([[0.5, 0.2, 0.1, 0.0, -0.05, -0.05],       # small: decays
                       [0.2, 0.1, 0.05, 0.0, 0.0, 0.0]])         # large, per lot
    flow = np.stack([trades[:, :, :2].sum(2), trades[:, :, 2]], -1).astype(float)
    move = rng.normal(0, 0.3, (n_steps, n_books))
    for c in range(2):
        for lag in range(lags):
            move[lag:] += kernel[c, lag] * flow[: n_steps - lag, :, c]
    mids = np.vstack([np.zeros((1, n_books)), np.cumsum(move, 0)]) + 100.0
    fitted = ms.propagator(synthetic(trades, mids), CLASSES, lags=lags)
    assert fitted.shape == (2, lags)
    np.testing.assert_allclose(fitted, kernel, atol=0.01)
    with pytest.raises(ValueError, match="too few"):
        ms.propagator(synthetic(trades[:10], mids[:11]), CLASSES, lags=lags)
    with pytest.raises(ValueError, match="lags"):
        ms.propagator(synthetic(trades, mids), CLASSES, lags=0)


def test_lead_lag_peaks_where_one_class_repeats_the_other():
    rng = np.random.default_rng(1)
    trades = np.zeros((500, 4, 3), dtype=np.int64)
    trades[:, :, 0] = rng.integers(-2, 3, size=(500, 4))
    trades[3:, :, 2] = trades[:-3, :, 0]                 # the large class 3 steps later
    recording = synthetic(trades, np.zeros((501, 4)))
    curve = ms.lead_lag(recording, [0], [2], max_lag=5)
    assert curve.shape == (11,)
    assert np.argmax(curve) == 5 + 3 and curve[8] == pytest.approx(1.0, abs=0.02)
    assert np.abs(np.delete(curve, 8)).max() < 0.15
    reverse = ms.lead_lag(recording, [2], [0], max_lag=5)
    assert np.argmax(reverse) == 5 - 3
    assert np.isnan(ms.lead_lag(recording, [1], [0], max_lag=2)).all()   # never traded


def test_conditional_return_is_the_move_after_the_trade_in_its_direction():
    trades = np.zeros((40, 1, 1), dtype=np.int64)
    trades[5, 0, 0], trades[20, 0, 0] = 2, -1
    mids = np.zeros((41, 1))
    mids[7:, 0] += 3.0                     # after the buy's step: +3
    mids[25:, 0] -= 1.0                    # after the sell's: -1 (in its direction: +1)
    recording = synthetic(trades, mids)
    assert ms.conditional_return(recording, [0], horizon=10) == pytest.approx(2.0)
    assert np.isnan(ms.conditional_return(synthetic(0 * trades, mids), [0], horizon=3))


def test_variance_ratio_tells_a_random_walk_from_a_reverting_price():
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.normal(size=(20_000, 4)), axis=0)
    assert ms.variance_ratio(walk, 10) == pytest.approx(1.0, abs=0.05)
    bounce = walk + np.where(np.arange(20_000) % 2, 2.0, -2.0)[:, None]
    assert ms.variance_ratio(bounce, 10) < 0.3


def _env(n_envs: int = 6, action_mode: str = "execution", horizon: int = 60
         ) -> BatchedMarketEnv:
    config = EnvConfig(action_mode=action_mode, horizon=horizon, execution_size=2.0,
                       size_classes=(1.0, 1.0, 10.0))
    return BatchedMarketEnv(config, n_envs=n_envs, n_agents=3, seed=5)


def test_the_recording_adds_up_to_the_core_accounts_and_books():
    env = _env()
    rng = np.random.default_rng(3)
    recording = ms.record(env, lambda e: rng.integers(0, 9, e.num_agents_total),
                          steps=150, seed=9)
    accounts = env.accounts()
    np.testing.assert_array_equal(recording.trades.sum(axis=0), accounts["position"])
    np.testing.assert_array_equal(recording.mids[-1], ms.book_mids(env.market))
    books = env.market.books.book_array
    np.testing.assert_array_equal(recording.spread[-1], books["best_ask"] - books["best_bid"])
    assert recording.actions.shape == (150, 6, 3) and (recording.episode_step[60] == 0).all()
    quality = ms.market_quality(recording)
    assert quality["spread"] >= 1 and quality["one_sided"] == 0 and quality["depth"] > 0
    again = ms.record(env, lambda e: np.random.default_rng(3).integers(
        0, 9, e.num_agents_total), steps=5, seed=9)
    assert again.trades.shape[0] == 5
    with pytest.raises(ValueError, match="steps"):
        ms.record(env, lambda e: None, steps=0, seed=1)


def test_execution_behaviour_of_twap_and_of_an_agent_that_waits_for_the_deadline():
    env = _env()
    twap = experiment._twap(env, 60)
    recording = ms.record(env, twap, steps=180, seed=11)
    rows = ms.execution_behaviour(recording, CLASSES, horizon=60, n_rates=4)
    large = rows[1]
    assert large["left_to_deadline"] < 0.1 and 0.4 < large["front_loaded"] < 0.6
    assert large["wait"] + large["market"] + large["resting"] == pytest.approx(1.0)
    assert large["resting"] == 0 and np.isnan(large["shortfall_with"])
    assert rows[0]["shortfall"] == pytest.approx(
        -recording.rewards[:, :, :2].sum() / (2 * 6 * 3), rel=1e-5)   # 3 whole episodes
    waiting = ms.record(env, lambda e: np.zeros(e.num_agents_total, np.int64),
                        steps=120, seed=11)
    rows = ms.execution_behaviour(waiting, CLASSES, horizon=60, n_rates=4)
    assert all(r["wait"] == 1.0 and r["left_to_deadline"] == 1.0 for r in rows)
    with pytest.raises(ValueError, match="complete episode"):
        ms.execution_behaviour(ms.record(env, twap, steps=30, seed=11), CLASSES,
                               horizon=60, n_rates=4)


def test_a_sampling_policy_is_reproducible_and_not_the_deterministic_one():
    env = _env(n_envs=64)
    env.reset(1)
    model = FastPPO(env, FastPPOSettings(progress=False, threads=1), seed=0).model
    first = Policy(model, sample_seed=7)(env.observations)
    assert np.array_equal(first, Policy(model, sample_seed=7)(env.observations))
    assert not np.array_equal(first, Policy(model, sample_seed=8)(env.observations))
    assert len(np.unique(first)) > 1


TINY = dict(horizon=40, execution_size=2.0, size_classes=(1, 1, 10), n_envs=4,
            agent_steps=4 * 3 * 32 * 2, train_seeds=(0, 1), eval_seeds=(100, 101),
            eval_envs=4, eval_episodes=2, lags=8, max_lag=4, return_horizon=5,
            trainer=FastPPOSettings(n_steps=32, threads=1, progress=False, gamma=1.0))


def test_the_experiment_runs_end_to_end_and_writes_its_report(tmp_path):
    settings = experiment.MarketShareSettings(**TINY)
    assert settings.classes == [[0, 1], [2]]
    assert settings.trainer_settings().groups == ([0, 1], [2])
    results = experiment.run(settings, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["classes"] == ["size 1", "size 10"]
    assert set(saved["runs"]["trained"]) == {"0/100", "0/101", "1/100", "1/101"}
    spread = results["summary"]["quality.spread"]
    assert set(spread) == {"background", "scripted", "untrained", "trained", "deviation",
                           "trained-untrained", "trained-scripted", "trained-background",
                           "deviation-trained"}
    for key in saved["runs"]["deviation"]:          # the largest class on TWAP, no resting
        assert saved["runs"]["deviation"][key]["behaviour"][1]["resting"] == 0
        assert saved["runs"]["deviation"][key]["behaviour"][1]["left_to_deadline"] < 0.15
    trained = [v["quality"]["spread"] for v in saved["runs"]["trained"].values()]
    background = [v["quality"]["spread"] for v in saved["runs"]["background"].values()]
    per_eval_seed = [np.mean(trained[0::2]), np.mean(trained[1::2])]   # keys seed/eval
    assert spread["trained-background"]["mean"] == pytest.approx(
        np.mean(np.array(per_eval_seed) - np.array(background)))
    assert "size 10.impact_0" in results["summary"]
    for name in ("report.md", "impact.png", "lead_lag.png", "quality.png",
                 "behaviour.png", "seed_0/checkpoint.pt", "seed_1/checkpoint.pt"):
        assert (tmp_path / name).is_file(), name
    assert "## Market quality" in (tmp_path / "report.md").read_text()


def test_bad_settings_and_arguments_are_refused(capsys):
    with pytest.raises(ValueError, match="two distinct"):
        experiment.MarketShareSettings(size_classes=(1, 1))
    with pytest.raises(ValueError, match="train_seeds"):
        experiment.MarketShareSettings(train_seeds=(0,))
    with pytest.raises(ValueError, match="agent_steps"):
        experiment.MarketShareSettings(agent_steps=0)
    with pytest.raises(ValueError, match="eval_envs"):
        experiment.MarketShareSettings(eval_envs=2.5)
    with pytest.raises(ValueError, match="execution_reward"):
        experiment.MarketShareSettings(execution_reward="vwap")
    with pytest.raises(ValueError, match="trainer"):
        experiment.MarketShareSettings(trainer={"lr": 1})
    assert experiment.main(["--train-seeds", "3", "--out", "unused"]) == 2
    assert "train_seeds" in capsys.readouterr().out
    assert experiment._seeds("0-2,5") == (0, 1, 2, 5)


def test_spread_timing_compares_the_spread_before_market_children_with_the_mean():
    n_steps, horizon = 40, 10
    trades = np.zeros((n_steps, 1, 3), dtype=np.int64)
    trades[:, :, 2] = 1
    recording = synthetic(trades, np.zeros((n_steps + 1, 1)), horizon=horizon)
    spread = np.where(np.arange(n_steps) % 2 == 0, 1.0, 3.0)[:, None]
    actions = np.zeros((n_steps, 1, 3), dtype=np.int64)
    actions[1:, 0, 2] = np.where(spread[:-1, 0] == 1.0, 1, 0)     # after a narrow step
    recording = ms.Recording(**{**recording.__dict__, "spread": spread, "actions": actions})
    rows = ms.execution_behaviour(recording, CLASSES, horizon=horizon, n_rates=4)
    assert rows[1]["spread_timing"] == pytest.approx(1.0 / spread[:-1].mean())   # t=0: none
    assert np.isnan(rows[0]["spread_timing"])                 # never sent a market child


def test_reuse_measures_the_checkpoints_already_there_without_training(tmp_path):
    settings = experiment.MarketShareSettings(**TINY)
    first = experiment.run(settings, tmp_path, progress=False)
    assert first["training"]["0"]["agent_steps"] == TINY["agent_steps"]
    stamp = (tmp_path / "seed_0" / "checkpoint.pt").stat().st_mtime_ns
    again = experiment.run(settings, tmp_path, progress=False, reuse=True)
    assert again["training"] == {str(k): {"reused": str(tmp_path / f"seed_{k}")}
                                 for k in (0, 1)}
    assert (tmp_path / "seed_0" / "checkpoint.pt").stat().st_mtime_ns == stamp
    assert json.dumps(again["runs"]) == json.dumps(first["runs"])      # NaN-safe


def test_the_response_follows_the_price_after_the_classs_lots_in_their_direction():
    trades = np.zeros((30, 2, 3), dtype=np.int64)
    trades[4, 0, 2], trades[10, 1, 2] = 3, -1              # the large class: 4 lots
    mids = np.zeros((31, 2))
    mids[5:, 0] += 2.0                                      # +2 after the buy's step
    mids[14:, 1] -= 4.0                                     # -4, 3 steps after the sell
    curve = ms.response(synthetic(trades, mids), CLASSES, lags=6)
    assert np.isnan(curve[0]).all()                         # the small class never traded
    expected = [(3 * 2 + 0) / 4] * 3 + [(3 * 2 + 4) / 4] * 3
    np.testing.assert_allclose(curve[1], expected)
    with pytest.raises(ValueError, match="lags"):
        ms.response(synthetic(trades, mids), CLASSES, lags=30)


def test_the_trained_population_is_measured_where_it_replaces_the_noise_traders(tmp_path):
    settings = experiment.MarketShareSettings(**TINY)
    first = experiment.run(settings, tmp_path / "run", progress=False)
    replaced = experiment.MarketShareSettings(**{**TINY, "noise_traders": 0})
    assert replaced.env_config().market.noise.count == 0
    assert settings.env_config().market == "resilient"
    again = experiment.run(replaced, tmp_path / "replaced", progress=False,
                           checkpoints=tmp_path / "run")
    assert again["training"]["1"] == {"reused": str(tmp_path / "run" / "seed_1")}
    assert not (tmp_path / "replaced" / "seed_0").exists()           # nothing trained
    before = [v["quality"] for v in first["runs"]["background"].values()]
    after = [v["quality"] for v in again["runs"]["background"].values()]
    assert before != after                       # another market: no noise traders
    assert "with 0 noise traders" in (tmp_path / "replaced" / "report.md").read_text()
    with pytest.raises(ValueError, match="no checkpoint"):
        experiment.run(settings, tmp_path / "x", progress=False, checkpoints=tmp_path)
    with pytest.raises(ValueError, match="noise_traders"):
        experiment.MarketShareSettings(noise_traders=-1)
