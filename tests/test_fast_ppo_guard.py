"""The out-of-distribution guard (rltrader.training.ppo.guard): a guarded policy plays the
policy's action where every observation column lies within ``clip`` standard deviations
of its training statistics (checked against a numpy reference computed from the
checkpoint's saved mean and variance) and the guard's action elsewhere; a checkpoint
without a guard loads as before; a guard that always fires is holding (no trade, no
reward); under a guard that fires on some rows the rewards are still the cash; bad guards
and policies it cannot play are refused."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _tasks import small_checkpoint  # noqa: E402

from rltrader.envs import BatchedMarketEnv  # noqa: E402
from rltrader.training.evaluate import TASKS, candidate  # noqa: E402
from rltrader.training.fast_ppo import FastPPO, FastPPOSettings, load_policy  # noqa: E402
from rltrader.training.ppo.guard import (  # noqa: E402
    GuardedPolicy,
    check_guard,
    guard_checkpoint,
    main,
)
from rltrader.training.ppo.policy import Policy  # noqa: E402

CONFIG = TASKS["directional"].replace(market="thin", horizon=20)
QUIET = {"progress": False, "threads": 1}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> object:
    return small_checkpoint(CONFIG, tmp_path_factory.mktemp("guard"))


def _observations(n: int = 64) -> np.ndarray:
    env = BatchedMarketEnv(CONFIG, n_envs=n // 2, n_agents=2, seed=5)
    rng = np.random.default_rng(0)
    for _ in range(7):
        env.step(rng.integers(0, env.single_action_space.n, n).astype(np.int64))
    return env.observations.copy()


def test_the_guard_plays_its_action_exactly_on_rows_beyond_the_clip(checkpoint,
                                                                   tmp_path) -> None:
    state = torch.load(checkpoint, weights_only=True)
    mean = state["obs_normalizer"]["mean"].numpy()
    sd = np.sqrt(state["obs_normalizer"]["var"].numpy() + 1e-8)
    obs = _observations()
    obs[::3, 3] = mean[3] + 12.0 * sd[3]        # beyond 10 sd: a third of the rows
    obs[1::3, 5] = mean[5] - 9.0 * sd[5]        # within: another third
    path = guard_checkpoint(checkpoint, tmp_path / "guarded.pt")
    guarded, plain = load_policy(path), load_policy(checkpoint)
    assert isinstance(guarded, GuardedPolicy) and type(plain) is Policy
    n_actions = BatchedMarketEnv(CONFIG, n_envs=1, n_agents=1).single_action_space.n
    assert guarded.clip == 10.0 and guarded.action == n_actions - 1
    away = (np.abs((obs - mean) / sd) > 10.0).any(axis=1)
    assert away[::3].all() and 0 < away.sum() < len(obs)
    expected = np.where(away, guarded.action, plain(obs))
    np.testing.assert_array_equal(guarded(obs), expected)
    assert (guarded.fired, guarded.rows) == (int(away.sum()), len(obs))
    saved = torch.load(path, weights_only=True)
    assert saved["guard"] == {"clip": 10.0, "action": n_actions - 1}
    for name, value in state["model"].items():
        assert torch.equal(value, saved["model"][name]), name
    assert isinstance(candidate(str(path)).policy, GuardedPolicy)


def test_a_guard_that_always_fires_holds_and_one_that_sometimes_fires_is_paid_in_cash(
        checkpoint, tmp_path) -> None:
    """``clip`` 1e-6: every row cancels every step, so nothing trades and no reward is
    paid. ``clip`` 3: the guard fires on some rows and not others, and over an episode
    every agent's rewards add up to its cash change over its order size (the position is
    liquidated at the episode's end)."""
    for clip in (1e-6, 3.0):
        policy = load_policy(guard_checkpoint(checkpoint, tmp_path / f"g{clip}.pt",
                                              clip=clip))
        env = BatchedMarketEnv(CONFIG, n_envs=8, n_agents=2, seed=9)
        start = env.accounts().reshape(-1).copy()
        total = np.zeros(env.num_agents_total)
        for _ in range(CONFIG.horizon):
            env.step(policy(env.observations))
            total += env.rewards
        assert env.truncated.all() or env.terminated.all()
        end = env.accounts().reshape(-1)
        cash = (end["cash"] - start["cash"]) / env.order_qty.astype(float).reshape(-1)
        if clip < 1:
            assert policy.fired == policy.rows
            assert (total == 0).all() and (end["volume"] == start["volume"]).all()
        else:
            assert 0 < policy.fired < policy.rows
            assert (end["volume"] > start["volume"]).any()
        assert (end["position"] == 0).all()
        np.testing.assert_allclose(total, cash, atol=1e-4)


def test_bad_guards_and_policies_it_cannot_play_are_refused(checkpoint, tmp_path) -> None:
    for bad in ({"clip": 0.0, "action": 1}, {"clip": float("nan"), "action": 1},
                {"clip": True, "action": 1}, {"clip": 3.0}, [3.0, 1]):
        with pytest.raises(ValueError, match="guard"):
            check_guard(bad)
    with pytest.raises(ValueError, match=r"action must be an int >= 0 below 12"):
        check_guard({"clip": 3.0, "action": 12}, 12)
    with pytest.raises(ValueError, match="action must be"):
        guard_checkpoint(checkpoint, tmp_path / "x.pt", action=-1)
    state = torch.load(checkpoint, weights_only=True)
    state["guard"] = {"clip": -1.0, "action": 0}
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: guard clip"):
        load_policy(tmp_path / "bad.pt")
    for bad in (3, [4, 4], [5, 0, 0], [4, 4, -1], [4, True, 0]):
        with pytest.raises(ValueError, match="guard action must be a list of 3 ints"):
            check_guard({"clip": 3.0, "action": bad}, (5, 5, 3))
    with pytest.raises(ValueError, match="guard action must be an int"):
        check_guard({"clip": 3.0, "action": [4, 4, 0]}, 12)
    box = BatchedMarketEnv(CONFIG.replace(action_mode="continuous"), n_envs=2, n_agents=1)
    path = FastPPO(box, FastPPOSettings(n_steps=4, **QUIET), seed=0).save(tmp_path / "box.pt")
    with pytest.raises(ValueError, match="box.pt: the guard replaces a Discrete or "
                                         "MultiDiscrete action"):
        guard_checkpoint(path, tmp_path / "box_guarded.pt")


def test_a_market_maker_is_guarded_by_withdrawing_both_quotes(tmp_path) -> None:
    """MultiDiscrete (market making): the default stand-aside is no quote on either side
    ([no quote, no quote, size 0]); guarded rows play it, the others the policy's action
    (against the numpy reference of the normaliser); a guard that always fires never
    trades and earns nothing."""
    config = TASKS["market_making"].replace(market="thin", horizon=20)
    env = BatchedMarketEnv(config, n_envs=4, n_agents=2, seed=0)
    trainer = FastPPO(env, FastPPOSettings(n_steps=8, **QUIET), seed=1)
    trainer.learn(400)
    path = trainer.save(tmp_path / "mm.pt")
    no_quote = len(config.quote_offsets)
    guarded = load_policy(guard_checkpoint(path, tmp_path / "mm_guarded.pt", clip=2.0))
    assert isinstance(guarded, GuardedPolicy) and guarded.action == [no_quote, no_quote, 0]
    assert torch.load(tmp_path / "mm_guarded.pt", weights_only=True)["guard"] == {
        "clip": 2.0, "action": [no_quote, no_quote, 0]}
    plain = load_policy(path)
    probe = BatchedMarketEnv(config, n_envs=16, n_agents=2, seed=5)
    rng = np.random.default_rng(0)
    for _ in range(7):
        probe.step(np.stack([rng.integers(0, n, 32) for n in (5, 5, 3)], 1).astype(np.int64))
    obs = probe.observations.copy()
    state = torch.load(path, weights_only=True)
    mean = state["obs_normalizer"]["mean"].numpy()
    std = np.sqrt(state["obs_normalizer"]["var"].numpy() + 1e-8)
    away = (np.abs((obs - mean) / std) > 2.0).any(axis=1)
    assert 0 < away.sum() < len(obs)
    expected = np.where(away[:, None], [no_quote, no_quote, 0], plain(obs))
    np.testing.assert_array_equal(guarded(obs), expected)
    always = load_policy(guard_checkpoint(path, tmp_path / "always.pt", clip=1e-9))
    fresh = BatchedMarketEnv(config, n_envs=4, n_agents=2, seed=9)
    start = fresh.accounts().reshape(-1).copy()
    total = 0.0
    for _ in range(40):
        fresh.step(always(fresh.observations))
        total += float(np.abs(fresh.rewards).sum())
    end = fresh.accounts().reshape(-1)
    assert total == 0.0 and (end["volume"] == start["volume"]).all()


def test_the_command_writes_a_guarded_copy(checkpoint, tmp_path, capsys) -> None:
    assert main([str(checkpoint), str(tmp_path / "out" / "g.pt"), "--clip", "4"]) == 0
    assert capsys.readouterr().out.strip().endswith("g.pt")
    assert load_policy(tmp_path / "out" / "g.pt").clip == 4.0


def test_the_default_action_stands_aside_in_each_action_mode(checkpoint, tmp_path) -> None:
    """discrete: the last action (cancel all); execution: 0 (wait, the resting child
    withdrawn), not the last (a child resting at the fastest rate); market making: no
    quotes (the test above); a mode without a stand-aside action must be named."""
    from rltrader.training.evaluate import checkpoint_path

    execution = guard_checkpoint(checkpoint_path("pretrained:execution"),
                                 tmp_path / "execution.pt")
    assert torch.load(execution, weights_only=True)["guard"]["action"] == 0
    discrete = guard_checkpoint(checkpoint, tmp_path / "discrete.pt")
    n_actions = BatchedMarketEnv(CONFIG, n_envs=1, n_agents=1).single_action_space.n
    assert torch.load(discrete, weights_only=True)["guard"]["action"] == n_actions - 1
    state = torch.load(checkpoint, weights_only=True)
    state["env_config"] = {"base": {**state["env_config"], "action_mode": "execution"},
                           "lanes": [], "restart_episodes": None}
    torch.save(state, tmp_path / "mixed.pt")     # a MixedConfig: its base's mode
    assert torch.load(guard_checkpoint(tmp_path / "mixed.pt", tmp_path / "mixed_g.pt"),
                      weights_only=True)["guard"]["action"] == 0
    state["env_config"] = None
    torch.save(state, tmp_path / "no_mode.pt")
    with pytest.raises(ValueError, match="stand-aside"):
        guard_checkpoint(tmp_path / "no_mode.pt", tmp_path / "out.pt")
    assert torch.load(guard_checkpoint(tmp_path / "no_mode.pt", tmp_path / "named.pt",
                                       action=0), weights_only=True)["guard"]["action"] == 0


def test_a_non_finite_observation_is_unfamiliar(checkpoint, tmp_path) -> None:
    guarded = load_policy(guard_checkpoint(checkpoint, tmp_path / "guarded.pt"))
    obs = _observations()
    obs[2, 4], obs[5, 0] = np.nan, np.inf
    away = guarded.unfamiliar(obs)
    assert away[2] and away[5]
    assert (guarded(obs)[[2, 5]] == guarded.action).all()
