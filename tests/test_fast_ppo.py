"""The fast multi-agent PPO trainer (rltrader.training.fast_ppo): GAE against a numpy
reference with truncation, the observation normaliser against numpy, checkpoints, that it
learns a task it must solve, per-group policies, every action mode, misuse."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _tasks import MatchTask, mean_return  # noqa: E402

from rltrader.envs import BatchedMarketEnv, EnvConfig  # noqa: E402
from rltrader.training.fast_ppo import (  # noqa: E402
    FastPPO,
    FastPPOSettings,
    load_policy,
    train,
)
from rltrader.training.ppo.normalize import RunningMeanStd  # noqa: E402
from rltrader.training.ppo.rollout import bootstrap_truncated, gae  # noqa: E402

QUIET = {"progress": False, "threads": 1}


# ---- GAE ------------------------------------------------------------------------------

def _numpy_gae(rewards, values, terminated, truncated, final_values, gamma, lam):
    """Textbook GAE, one column at a time: a terminated step has no future, a truncated
    one is bootstrapped from its final observation's value; both cut the trace."""
    t_max, n = rewards.shape
    adv = np.zeros((t_max, n))
    for j in range(n):
        running = 0.0
        for t in range(t_max - 1, -1, -1):
            if terminated[t, j]:
                next_value, running = 0.0, 0.0
            elif truncated[t, j]:
                next_value, running = final_values[t, j], 0.0
            else:
                next_value = values[t + 1, j]
            delta = rewards[t, j] + gamma * next_value - values[t, j]
            running = delta + gamma * lam * running
            adv[t, j] = running
    return adv


def test_gae_by_hand() -> None:
    # one agent, 3 steps, truncated after step 1 (final value 4), gamma = lambda = 0.5
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[1.0], [1.0], [2.0], [8.0]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    bootstrap_truncated(rewards, [(1, torch.tensor([0]), torch.tensor([4.0]))], 0.5)
    adv = gae(rewards, values, dones, 0.5, 0.5)
    # t=2: 3 + 0.5*8 - 2 = 5; t=1: 2 + 0.5*4 - 1 = 3 (trace cut); t=0: 1 + 0.5*1 - 1
    # + 0.25 * 3 = 1.25
    assert adv[:, 0].tolist() == pytest.approx([1.25, 3.0, 5.0])


def test_gae_matches_a_numpy_reference_with_truncation() -> None:
    rng = np.random.default_rng(0)
    t_max, n, gamma, lam = 17, 9, 0.93, 0.8
    rewards = rng.normal(size=(t_max, n))
    values = rng.normal(size=(t_max + 1, n))
    ended = rng.random((t_max, n)) < 0.2
    truncated = ended & (rng.random((t_max, n)) < 0.5)
    terminated = ended & ~truncated
    final_values = rng.normal(size=(t_max, n))
    expected = _numpy_gae(rewards, values, terminated, truncated, final_values, gamma, lam)
    r = torch.tensor(rewards, dtype=torch.float64)
    records = [(t, torch.from_numpy(np.flatnonzero(truncated[t])),
                torch.tensor(final_values[t, truncated[t]])) for t in range(t_max)]
    bootstrap_truncated(r, records, gamma)
    got = gae(r, torch.tensor(values), torch.tensor(ended, dtype=torch.float64), gamma, lam)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_truncated_episodes_are_bootstrapped_from_their_final_observation() -> None:
    env = MatchTask(4, 2, horizon=4, truncate=True)
    trainer = FastPPO(env, FastPPOSettings(n_steps=8, **QUIET), seed=0)
    trainer.start()
    trainer.collect()
    steps = sorted({tr.t for tr in trainer.rollout.truncations})
    assert steps == [3, 7]
    for tr in trainer.rollout.truncations:
        assert tr.columns.tolist() == list(range(8))
        assert torch.all(tr.values != 0)


# ---- normalisation --------------------------------------------------------------------

def test_running_mean_std_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    batches = [rng.normal(loc=5.0, scale=[1.0, 3.0, 0.1], size=(size, 3))
               for size in (1, 7, 100, 3, 1000)]
    stats = RunningMeanStd(3)
    for x in batches:
        stats.update(torch.tensor(x))
    data = np.concatenate(batches)
    np.testing.assert_allclose(stats.mean.numpy(), data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.var.numpy(), data.var(0), rtol=1e-10)
    assert float(stats.count) == len(data)
    np.testing.assert_allclose(stats.scale.numpy(), 1 / np.sqrt(data.var(0) + 1e-8),
                               rtol=1e-6)


def test_the_trainer_normaliser_has_the_statistics_of_every_observation_seen() -> None:
    env = MatchTask(3, 2)
    seen = []
    step, reset = env.step, env.reset

    def recording_reset(seed=None):
        obs = reset(seed)
        seen.append(obs.copy())
        return obs

    def recording_step(actions):
        out = step(actions)
        seen.append(out[0].copy())
        return out

    env.reset, env.step = recording_reset, recording_step
    trainer = FastPPO(env, FastPPOSettings(n_steps=5, **QUIET), seed=0)
    trainer.learn(2 * 5 * 6)
    # the last step's observations are counted by the next rollout
    data = np.concatenate(seen[:-1]).astype(np.float64)
    norm = trainer.model.obs_norm
    assert float(norm.count) == len(data)
    np.testing.assert_allclose(norm.mean.numpy(), data.mean(0), atol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), data.var(0), rtol=1e-5, atol=1e-6)


def test_the_centralised_critic_sees_its_market_mean() -> None:
    env = MatchTask(3, 4)
    trainer = FastPPO(env, FastPPOSettings(n_steps=2, critic="centralised", **QUIET))
    trainer.start()
    trainer.collect()
    b = trainer.rollout
    inputs = trainer._critic_inputs(b.obs, b.means)
    z = b.obs.numpy()
    means = z.reshape(3, 3, 4, -1).mean(2)
    np.testing.assert_allclose(inputs[..., 5:].numpy(), np.repeat(means, 4, axis=1),
                               rtol=1e-6)
    assert trainer.model.nets[0].critic.mlp[0].in_features == 10


# ---- learning -------------------------------------------------------------------------

def test_it_learns_a_task_a_random_policy_fails() -> None:
    env = MatchTask(64, 4)
    trainer = FastPPO(env, FastPPOSettings(n_steps=8, learning_rate=3e-3, ent_coef=0.0,
                                           **QUIET), seed=0)
    rng = np.random.default_rng(0)
    random_return = mean_return(MatchTask(64, 4), lambda o: rng.integers(0, 4, len(o)))
    trainer.learn(60_000)
    trained = mean_return(MatchTask(64, 4), trainer.policy())
    assert random_return == pytest.approx(2.0, abs=0.3)      # 8 steps x 1/4
    assert trained > 7.0, trained


def test_groups_have_separate_parameters_and_learn_what_a_shared_policy_cannot() -> None:
    # the target is the agent's slot parity, invisible in the observation: one shared
    # policy can be right half of the time at best; one policy per slot learns both
    settings = FastPPOSettings(n_steps=8, learning_rate=3e-3, ent_coef=0.0, **QUIET)
    grouped = FastPPO(MatchTask(64, 2, k=2, target="slot"),
                      FastPPOSettings(**{**settings.__dict__, "groups": ([0], [1])}))
    shared = FastPPO(MatchTask(64, 2, k=2, target="slot"), settings)
    nets = grouped.model.nets
    assert len(nets) == 2
    ids = [{id(p) for p in net.parameters()} for net in nets]
    assert not ids[0] & ids[1]
    for trainer in (grouped, shared):
        trainer.learn(40_000)
    first = dict(nets[0].named_parameters())
    assert any(not torch.equal(first[name], p) for name, p in nets[1].named_parameters())
    score = {name: mean_return(MatchTask(64, 2, k=2, target="slot"), t.policy())
             for name, t in (("grouped", grouped), ("shared", shared))}
    assert score["grouped"] > 7.5, score
    assert score["shared"] < 4.5, score


@pytest.mark.parametrize("action", ["multi", "box"])
def test_it_learns_multi_discrete_and_box_actions(action: str) -> None:
    trainer = FastPPO(MatchTask(64, 4, action=action),
                      FastPPOSettings(n_steps=8, learning_rate=3e-3, ent_coef=0.0,
                                      **QUIET), seed=0)
    trainer.learn(60_000)
    trained = mean_return(MatchTask(64, 4, action=action), trainer.policy())
    assert trained > 5.0, trained       # random: 8 x 1/12 (multi), 8 x 1/8 (box)


# ---- a shared trunk -------------------------------------------------------------------

def test_a_shared_trunk_is_one_network_whose_rollout_values_match_a_full_pass() -> None:
    separate = FastPPO(MatchTask(8, 4), FastPPOSettings(**QUIET), seed=0)
    shared = FastPPO(MatchTask(8, 4, truncate=True), FastPPOSettings(
        n_steps=12, shared_trunk=True, **QUIET), seed=0)
    net = shared.model.nets[0]
    assert net.critic is net.actor
    count = sum(p.numel() for p in shared.model.parameters())
    trunk = sum(p.numel() for p in net.actor.parameters())
    assert count == sum(p.numel() for p in separate.model.parameters()) - trunk
    shared.learn(8 * 4 * 12)
    shared.collect()                # values of steps 0..11 come with the actions
    b = shared.rollout
    assert b.truncations                          # horizon 8 inside 12 steps
    with torch.no_grad():
        full = net.value_head(net.critic.mlp(b.obs)).squeeze(-1)
    torch.testing.assert_close(b.values, full)


def test_a_shared_trunk_learns_the_task() -> None:
    trainer = FastPPO(MatchTask(64, 4), FastPPOSettings(
        n_steps=8, learning_rate=3e-3, ent_coef=0.0, shared_trunk=True, **QUIET), seed=0)
    trainer.learn(60_000)
    assert mean_return(MatchTask(64, 4), trainer.policy()) > 7.0


def test_a_shared_trunk_refuses_the_centralised_critic() -> None:
    with pytest.raises(ValueError, match="shared_trunk"):
        FastPPOSettings(shared_trunk=True, critic="centralised")
    with pytest.raises(ValueError, match="shared_trunk"):
        FastPPOSettings(shared_trunk=1)


# ---- checkpoints ----------------------------------------------------------------------

@pytest.mark.parametrize("variant", [{}, {"recurrent": True, "critic": "centralised"},
                                     {"groups": (slice(0, 1), slice(1, 4))},
                                     {"precision": "bfloat16", "activation": "relu"},
                                     {"shared_trunk": True},
                                     {"shared_trunk": True, "recurrent": True}])
def test_save_load_round_trip_gives_identical_actions(tmp_path, variant) -> None:
    env = MatchTask(8, 4)
    trainer = FastPPO(env, FastPPOSettings(n_steps=4, **variant, **QUIET), seed=3)
    trainer.learn(300)
    path = trainer.save(tmp_path / "checkpoint.pt")
    obs = np.random.default_rng(0).normal(size=(32, 5)).astype(np.float32)
    expected = trainer.policy()
    loaded = load_policy(path)
    for _ in range(3):                   # a recurrent policy's state evolves alike
        np.testing.assert_array_equal(loaded(obs), expected(obs))
    again = FastPPO(MatchTask(8, 4), FastPPOSettings(n_steps=4, **variant, **QUIET), seed=9)
    again.load(path)
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name]), name
    assert again.agent_steps == trainer.agent_steps
    state = torch.load(path, weights_only=True)
    assert state["obs_normalizer"]["count"] > 0
    assert state["action_space"]["kind"] == "discrete"


# ---- the market env -------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["discrete", "market_making", "continuous", "execution",
                                  "order"])
def test_every_action_mode_runs_an_update(mode: str) -> None:
    env = BatchedMarketEnv(EnvConfig(action_mode=mode, horizon=6), n_envs=2, n_agents=2,
                           seed=0)
    trainer = FastPPO(env, FastPPOSettings(n_steps=8, minibatch_size=16, **QUIET))
    rows = trainer.learn(32)
    assert len(rows) == 1 and rows[0]["episodes"] == 4
    assert np.isfinite([rows[0][k] for k in ("policy_loss", "value_loss", "entropy")]).all()
    actions = trainer.policy()(env.observations)
    assert all(env.single_action_space.contains(a) for a in actions)


def test_train_writes_its_files(tmp_path) -> None:
    results = train(EnvConfig(action_mode="market_making", horizon=5), n_envs=2,
                    n_agents=2, total_agent_steps=64, seed=0, out_dir=tmp_path,
                    settings=FastPPOSettings(n_steps=8, critic="centralised",
                                             groups=([0], [1]), **QUIET))
    for name in ("checkpoint.pt", "curve.csv", "learning_curve.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 0
    lines = (tmp_path / "curve.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("update,agent_steps,wall_s")
    assert results["agent_steps"] == 64
    policy = load_policy(tmp_path / "checkpoint.pt")
    assert policy(np.zeros((4, policy.model.obs_dim), np.float32)).shape == (4, 3)


# ---- misuse ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [{"n_steps": 0}, {"gamma": 1.5}, {"learning_rate": -1.0},
                                 {"critic": "shared"}, {"activation": "gelu"},
                                 {"hidden": ()}, {"clip_value": 0.0}, {"threads": 0},
                                 {"groups": ()}, {"groups": "01"},
                                 {"minibatch_size": 2.5}, {"ent_coef": float("nan")},
                                 {"precision": "float16"}])
def test_bad_settings_raise(bad) -> None:
    with pytest.raises(ValueError):
        FastPPOSettings(**bad)


@pytest.mark.parametrize("groups", [([0, 1], [1, 2, 3]), ([0],), ([0, 1], [2, 3], [])])
def test_groups_must_cover_every_slot_once(groups) -> None:
    with pytest.raises(ValueError, match="groups"):
        FastPPO(MatchTask(2, 4), FastPPOSettings(groups=groups, **QUIET))


def test_misuse_of_the_trainer_raises() -> None:
    with pytest.raises(ValueError, match="protocol"):
        FastPPO(object())
    with pytest.raises(ValueError, match="settings"):
        FastPPO(MatchTask(2, 2), {"n_steps": 4})
    trainer = FastPPO(MatchTask(2, 2), FastPPOSettings(**QUIET))
    with pytest.raises(ValueError, match="total_agent_steps"):
        trainer.learn(0)
    assert trainer.policy()(np.zeros((3, 5), np.float32)).shape[0] == 3  # shared: any rows
    with pytest.raises(ValueError, match="observations must be"):
        trainer.policy()(np.zeros((3, 4), np.float32))
