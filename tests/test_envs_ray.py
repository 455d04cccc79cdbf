"""RayMarketEnv: Ray actors step shards of markets; the driver's buffers equal the
single-process env's over each shard and ShardedMarketEnv's with the same layout."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("ray")

import _ray_cluster  # noqa: E402

from rltrader.envs import BatchedMarketEnv, EnvConfig, ShardedMarketEnv  # noqa: E402
from rltrader.envs.backends import make_env  # noqa: E402
from rltrader.envs.ray_shards import RayMarketEnv  # noqa: E402

#: the module's local Ray instance (two CPUs)
ray_cluster = _ray_cluster.ray_cluster
CONFIG = EnvConfig(horizon=15, warmup_steps=30)
STEPS = 20


def actions_for(env, seed: int = 0) -> list[np.ndarray]:
    """``STEPS`` uniformly random action arrays over ``env``'s space."""
    rng = np.random.default_rng(seed)
    high = np.asarray(env.action_high)
    shape = env.actions.shape
    if env.actions.dtype.kind == "f":            # a Box: action_high is its (low, high)
        return [rng.uniform(high[0], high[1], shape) for _ in range(STEPS)]
    return [rng.integers(0, high, shape[:1] + high.shape).reshape(shape) for _ in range(STEPS)]


def run(env, actions: list[np.ndarray], rows: slice = slice(None)) -> list[np.ndarray]:
    """Copies of every buffer after the start and after each step."""
    out = [env.observations.copy()]
    for a in actions:
        obs, rewards, terminated, truncated = env.step(a[rows])
        out += [obs.copy(), rewards.copy(), terminated.copy(), truncated.copy(),
                env.final_observations.copy()]
    return out


def shard_reference(config: EnvConfig, n_envs: int, n_agents: int, seed: int, n_workers: int,
                    actions: list[np.ndarray]) -> list[np.ndarray]:
    """Each shard as its own BatchedMarketEnv (seeded from ``spawn(n_workers)[w]``),
    the buffers concatenated."""
    sizes = [len(p) for p in np.array_split(np.arange(n_envs), n_workers)]
    seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n_workers)]
    parts, first = [], 0
    for size, s in zip(sizes, seeds, strict=True):
        rows = slice(first * n_agents, (first + size) * n_agents)
        parts.append(run(BatchedMarketEnv(config, n_envs=size, n_agents=n_agents, seed=s),
                         actions, rows))
        first += size
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        np.testing.assert_array_equal(x, y, err_msg=f"buffer {k}")


@pytest.mark.parametrize(("mode", "n_envs", "n_agents", "n_workers"),
                         [("discrete", 3, 2, 2), ("market_making", 5, 3, 2),
                          ("continuous", 2, 2, 2), ("discrete", 2, 2, 1)])
def test_ray_shards_equal_their_own_batched_envs(ray_cluster, mode, n_envs, n_agents,
                                                 n_workers) -> None:
    config = CONFIG.replace(action_mode=mode)
    with RayMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=5,
                      n_workers=n_workers) as env:
        assert env.observations.shape == (n_envs * n_agents,
                                          env.single_observation_space.shape[0])
        actions = actions_for(env)
        got = run(env, actions)
        assert got[5 * 15 - 2].all() and not got[5 * 14 - 2].any()   # terminated at step 15
        assert_same(got, shard_reference(config, n_envs, n_agents, 5, n_workers, actions))
        env.reset(seed=5)                                   # the same seed replays
        assert_same(run(env, actions), got)


def test_ray_equals_sharded_processes_with_the_same_layout(ray_cluster) -> None:
    with RayMarketEnv(CONFIG, n_envs=3, n_agents=2, seed=7, n_workers=2) as env:
        actions = actions_for(env, seed=1)
        got = run(env, actions)
        env.reset(seed=8)
        after_reset = run(env, actions)
    with ShardedMarketEnv(CONFIG, n_envs=3, n_agents=2, seed=7, n_workers=2) as sharded:
        assert_same(run(sharded, actions), got)
        sharded.reset(seed=8)
        assert_same(run(sharded, actions), after_reset)


def test_step_async_then_wait_is_a_step(ray_cluster) -> None:
    # one actor each: the local instance has two CPUs
    with RayMarketEnv(CONFIG, n_envs=2, n_agents=2, seed=3, n_workers=1) as a, \
            RayMarketEnv(CONFIG, n_envs=2, n_agents=2, seed=3, n_workers=1) as b:
        for actions in actions_for(a)[:5]:
            a.step_async(actions)
            with pytest.raises(RuntimeError, match="in flight"):
                a.step(actions)
            obs, rewards, _, _ = a.step_wait()
            b.step(actions)
            np.testing.assert_array_equal(obs, b.observations)
            np.testing.assert_array_equal(rewards, b.rewards)
        with pytest.raises(RuntimeError, match="without step_async"):
            a.step_wait()


def test_reset_without_a_seed_starts_new_episodes_in_the_running_markets(ray_cluster) -> None:
    with RayMarketEnv(CONFIG, n_envs=2, n_agents=1, seed=0) as env:
        actions = actions_for(env)
        run(env, actions[:4])
        env.reset()
        assert not env.terminated.any() and not env.rewards.any()
        got = run(env, actions)
        assert got[5 * 15 - 2].all()                       # a whole episode from the reset


def test_bad_actions_raise_and_send_nothing(ray_cluster) -> None:
    with RayMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=2) as env:
        before = env.observations.copy()
        with pytest.raises(ValueError, match="agent 1"):
            env.step([0, 99])
        with pytest.raises(ValueError, match="shape"):
            env.step([0, 1, 2])
        with pytest.raises(TypeError, match="integers"):
            env.step(np.array(["0", "1"]))
        np.testing.assert_array_equal(env.observations, before)
        env.step([0, 0])                                   # still usable


def test_bad_arguments_raise(ray_cluster) -> None:
    with pytest.raises(ValueError, match="n_workers"):
        RayMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=3)
    with pytest.raises(ValueError, match="n_workers"):
        RayMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=1.0)
    with pytest.raises(ValueError, match="n_envs"):
        RayMarketEnv(CONFIG, n_envs=0, n_agents=1)
    with pytest.raises(ValueError, match="seed"):
        RayMarketEnv(CONFIG, n_envs=2, n_agents=1, seed=-1)
    with pytest.raises(TypeError, match="EnvConfig"):
        RayMarketEnv({"horizon": 5}, n_envs=2, n_agents=1)
    with pytest.raises(TypeError, match="actor_options"):
        RayMarketEnv(CONFIG, n_envs=2, n_agents=1, actor_options=[("num_cpus", 1)])
    with pytest.raises(ValueError, match="one symbol"):
        RayMarketEnv(CONFIG.replace(symbols=2), n_envs=2, n_agents=1)
    with RayMarketEnv(CONFIG, n_envs=2, n_agents=1) as env:
        with pytest.raises(ValueError, match="seed"):
            env.reset(seed=-3)


def test_an_error_in_an_actor_names_its_shard(ray_cluster) -> None:
    with RayMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=2) as env:
        # an answer the driver's checks would never let through: the actor's own check
        refs = [env._actors[0].buffers.remote(), env._actors[1].step.remote(np.zeros(5))]
        with pytest.raises(RuntimeError, match="shard 1 failed.*shape"):
            env._gather(refs)
        env.step([0, 0])                                   # the actors are still there


def test_actors_that_cannot_be_placed_time_out_with_a_clear_error(ray_cluster) -> None:
    with pytest.raises(RuntimeError, match="2 of 2 actors not ready.*CPUs"):
        RayMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=2,
                     actor_options={"num_cpus": 3}, start_timeout_s=2)
    with pytest.raises(ValueError, match="start_timeout_s"):
        RayMarketEnv(CONFIG, n_envs=2, n_agents=1, start_timeout_s=0)


def test_a_dead_actor_and_a_closed_env_raise(ray_cluster) -> None:
    env = RayMarketEnv(CONFIG, n_envs=2, n_agents=1, n_workers=2)
    ray_cluster.kill(env._actors[1])
    # the kill is asynchronous: a step sent before it lands can still complete (it did
    # once, on the loaded 2-core VM); wait, bounded, until Ray reports the actor dead
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ray_cluster.get(env._actors[1].__ray_ready__.remote(), timeout=10)
        except ray_cluster.exceptions.RayActorError:
            break
        except ray_cluster.exceptions.GetTimeoutError:
            pass
        time.sleep(0.05)
    else:
        pytest.fail("the killed actor was not reported dead within 60 s")
    with pytest.raises(RuntimeError, match="shard 1 failed"):
        env.step([0, 0])
    env.close()
    env.close()                                             # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        env.step([0, 0])
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_make_env_backends(ray_cluster) -> None:
    env = make_env(CONFIG, n_envs=2, n_agents=1, seed=4, backend="ray", n_workers=2)
    try:
        assert isinstance(env, RayMarketEnv) and env.n_workers == 2
    finally:
        env.close()
    with pytest.raises(ValueError, match="backend"):
        make_env(CONFIG, n_envs=2, n_agents=1, backend="dask")
    with pytest.raises(ValueError, match="n_workers must be 1"):
        make_env(CONFIG, n_envs=2, n_agents=1, backend="batched", n_workers=2)
    with pytest.raises(ValueError, match="actor_options"):
        make_env(CONFIG, n_envs=2, n_agents=1, backend="sharded", n_workers=2,
                 actor_options={"num_cpus": 1})
