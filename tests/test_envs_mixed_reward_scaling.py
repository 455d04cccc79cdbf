"""MixedMarketEnv's per-lane reward scaling (``reward_scaling="lane"``).

Each lane's rewards are checked against a reference that keeps every episode-to-date
return of that lane's rows and divides by their root mean square; a lane's scaled rewards
are the same bit for bit whatever the other lanes are (a lane paying 100 times more
changes nothing of them); the markets themselves (observations, flags, raw rewards) are
those of the unscaled env; without the setting the rewards are the lanes' own; a seed
reproduces the scaled rewards, also after ``reset(seed)``; lanes whose raw rewards differ
by two orders of magnitude come out of similar size; the training config takes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rltrader.envs.mixed import Lane, MixedConfig, MixedMarketEnv
from rltrader.training.evaluate import TASKS
from tests._experiments import execution_toml, train_quietly

BASE = TASKS["execution"].replace(horizon=15)


def _actions(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 9, n).astype(np.int64)


def _play(env: MixedMarketEnv, steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Buffers after each of ``steps`` random steps, ``(steps, rows, ...)``."""
    rng = np.random.default_rng(seed)
    seen: dict[str, list[np.ndarray]] = {k: [] for k in (
        "obs", "rewards", "raw", "done", "scales")}
    for _ in range(steps):
        obs, rewards, terminated, truncated = env.step(_actions(rng, env.num_agents_total))
        seen["obs"].append(obs.copy())
        seen["rewards"].append(rewards.copy())
        seen["raw"].append(env.raw_rewards.copy())
        seen["done"].append(terminated | truncated)
        seen["scales"].append(env.reward_scales.copy())
    return {k: np.array(v) for k, v in seen.items()}


def _reference(raw: np.ndarray, done: np.ndarray, rows: list[slice]) -> np.ndarray:
    """Each lane's raw rewards over the root mean square of every episode-to-date return
    its rows have had so far (a list of them, summed at the end: obviously right)."""
    out = np.empty_like(raw)
    for r in rows:
        running = np.zeros(r.stop - r.start)
        history: list[float] = []
        for t in range(raw.shape[0]):
            running += raw[t, r].astype(np.float64)
            history += list(running)
            scale = np.sqrt(np.mean(np.square(history)) + 1e-8)
            out[t, r] = raw[t, r] / scale
            running[done[t, r]] = 0.0
    return out


def test_each_lanes_rewards_are_scaled_by_its_own_returns() -> None:
    config = MixedConfig(BASE, (Lane("thin", 3), Lane("resilient", 2)), (1, 2), "lane")
    env = MixedMarketEnv(config, n_agents=2, seed=7)
    run = _play(env, 4 * BASE.horizon + 3)           # episode ends and restarts
    assert run["done"].any() and sum(env.restarts) > 0
    expected = _reference(run["raw"], run["done"], env.rows)
    np.testing.assert_allclose(run["rewards"], expected, rtol=1e-6, atol=0)
    assert not np.array_equal(run["rewards"], run["raw"])
    # the divisor of lane k is the one its rows were divided by
    for k, r in enumerate(env.rows):
        moved = run["raw"][:, r] != 0
        np.testing.assert_allclose(run["raw"][:, r][moved] / run["rewards"][:, r][moved],
                                   np.broadcast_to(run["scales"][:, k:k + 1],
                                                   moved.shape)[moved], rtol=1e-5)


def test_a_lane_is_scaled_the_same_whatever_the_other_lanes_are() -> None:
    # lane 0 is the same market in both envs (SeedSequence children by index); the
    # Coinbase replay's raw rewards are of another size than a resilient lane's
    alone = MixedMarketEnv(MixedConfig(BASE, (Lane("thin", 3),), (1, 3), "lane"), seed=5)
    mixed = MixedMarketEnv(MixedConfig(BASE, (Lane("thin", 3), Lane("coinbase", 2)), (1, 3),
                                       "lane"), seed=5)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(3 * BASE.horizon):
        a = _actions(rng_a, 3)
        b = np.concatenate([a, _actions(rng_b, 5)[3:]])
        _, rew_a, *_ = alone.step(a)
        _, rew_b, *_ = mixed.step(b)
        np.testing.assert_array_equal(rew_b[:3], rew_a)
        assert mixed.reward_scales[0] == alone.reward_scales[0]


def test_scaling_changes_the_rewards_and_nothing_else() -> None:
    lanes = (Lane("thin", 2), Lane("resilient", 2))
    plain = MixedMarketEnv(MixedConfig(BASE, lanes, (1, 2)), n_agents=1, seed=3)
    scaled = MixedMarketEnv(MixedConfig(BASE, lanes, (1, 2), "lane"), n_agents=1, seed=3)
    assert plain.config.reward_scaling is None and plain.raw_rewards is plain.rewards
    a, b = _play(plain, 3 * BASE.horizon), _play(scaled, 3 * BASE.horizon)
    np.testing.assert_array_equal(a["obs"], b["obs"])
    np.testing.assert_array_equal(a["done"], b["done"])
    np.testing.assert_array_equal(a["rewards"], b["raw"])     # the lanes' own, bit for bit
    np.testing.assert_array_equal(a["scales"], np.ones_like(a["scales"]))
    assert plain.restarts == scaled.restarts


def test_a_seed_reproduces_the_scaled_rewards() -> None:
    config = MixedConfig(BASE, (Lane("thin", 2), Lane("resilient", 1)), (1, 2), "lane")
    env = MixedMarketEnv(config, n_agents=2, seed=11)
    first = _play(env, 2 * BASE.horizon + 1)
    again = _play(MixedMarketEnv(config, n_agents=2, seed=11), 2 * BASE.horizon + 1)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    env.reset(seed=11)                        # the statistics start afresh
    np.testing.assert_array_equal(env.reward_scales, [1.0, 1.0])
    after_reset = _play(env, 2 * BASE.horizon + 1)
    for key in first:
        np.testing.assert_array_equal(first[key], after_reset[key])
    other = _play(MixedMarketEnv(config, n_agents=2, seed=12), 2 * BASE.horizon + 1)
    assert not np.array_equal(first["rewards"], other["rewards"])


def test_lanes_two_orders_of_magnitude_apart_come_out_alike() -> None:
    lanes = (Lane("thin", 4), Lane("binance_perp", 2), Lane("coinbase", 2))
    env = MixedMarketEnv(MixedConfig(BASE, lanes, (1, 3), "lane"), n_agents=1, seed=0)
    run = _play(env, 6 * BASE.horizon)
    raw_sd = [float(run["raw"][:, r].std()) for r in env.rows]
    scaled_sd = [float(run["rewards"][:, r].std()) for r in env.rows]
    assert max(raw_sd) / min(raw_sd) > 50                    # Binance vs Coinbase
    assert max(scaled_sd) / min(scaled_sd) < 3
    assert np.isfinite(run["rewards"]).all()
    # over its divisor an episode's return so far is at most sqrt(samples so far), a
    # reward (the difference of two such returns) twice that
    for k, r in enumerate(env.rows):
        n = (np.arange(1, run["raw"].shape[0] + 1) * (r.stop - r.start))[:, None]
        assert (np.abs(run["rewards"][:, r]) <= 2 * np.sqrt(n) * (1 + 1e-5)).all(), k


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="reward_scaling must be one of"):
        MixedConfig(BASE, (Lane("thin", 1),), reward_scaling="bp")
    with pytest.raises(ValueError, match="reward_scaling must be one of"):
        MixedConfig(BASE, (Lane("thin", 1),), reward_scaling=True)  # type: ignore[arg-type]


def test_the_training_config_takes_it(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from rltrader.training import experiment

    text = execution_toml('agent_steps = 1024\nreward_scaling = "lane"\n',
                          '[[markets]]\nmarket = "thin"\nn_envs = 4\nlanes = 2\n',
                          warm_start_steps=20)
    path = tmp_path / "scaled.toml"
    path.write_text(text)
    e = experiment.load(path)
    assert e.mixed.reward_scaling == "lane" and e.mixed.restart_episodes is None
    assert [x.n_envs for x in e.mixed.lanes] == [2, 2]
    result = train_quietly(e, tmp_path, n_envs=4, agent_steps=1024)
    assert result["agent_steps"] >= 1024
    assert result["env_config"]["reward_scaling"] == "lane"
    path.write_text(text.replace('"lane"', '"bp"'))
    with pytest.raises(ValueError, match="reward_scaling must be one of"):
        experiment.load(path)
    # without [[markets]], the [env] market as one lane
    path.write_text(text.replace("[[markets]]\nmarket = \"thin\"\nn_envs = 4\nlanes = 2\n",
                                 "n_envs = 4\n").replace("[env]", "[env]\nmarket = \"thin\""))
    e = experiment.load(path)
    assert [x.market for x in e.mixed.lanes] == ["thin"] and e.mixed.n_envs == 4


def test_the_example_config_is_round_7s_mix_with_scaling() -> None:
    from rltrader.training import experiment

    folder = Path(__file__).resolve().parent.parent / "examples" / "train"
    scaled = experiment.load(folder / "execution_mixed_scaled.toml")
    mixed = experiment.load(folder / "execution_mixed.toml")
    assert scaled.mixed.reward_scaling == "lane" and mixed.mixed.reward_scaling is None
    assert scaled.mixed.lanes == mixed.mixed.lanes
    assert scaled.mixed.restart_episodes == mixed.mixed.restart_episodes == (1, 20)
    assert scaled.settings == mixed.settings and scaled.agent_steps == mixed.agent_steps
