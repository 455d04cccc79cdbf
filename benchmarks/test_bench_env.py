"""The batched RL environment: agent-steps per second, background flow included.

Workload: the default ``EnvConfig`` (``resilient`` background, discrete actions, PnL reward,
1,000-step episodes), uniformly random actions drawn once from a fixed generator (16
arrays, cycled), after 100 untimed steps. Each round times ``STEPS`` calls of ``step``
(action validation, one compiled call: agents' messages, core, background flow,
observations and rewards). ``extra_info["agent_steps_per_second"]`` is at the median.

``test_maker_*`` drives the env with the actions of a trained-like policy instead: the
fixed-spread market maker of ``rltrader.training.baselines`` (``action_mode="market_making"``,
joining the touch with one order size on each side, withdrawing a side at half the
position limit), the heuristic PPO is compared with and cloned from, which re-quotes only
when the touch moves. Its actions are recorded in closed loop on a first env and replayed
on a second one built with the same seed: the env is deterministic, so the second goes
through the same states and gets exactly the maker's actions, while only ``step`` is
timed (the maker's own call, about 36 us per 4,096 agents, is not). Uniformly random
actions keep every agent's orders churning (1.3 agent messages per agent-step); the
maker's far fewer.

``test_batched_*`` (the goal figures) also time the core's W1 workload right after
(``yardstick_w1_ns_per_message``) and report the ratio of ns per agent-step to it
(``agent_step_over_w1``).

``test_sharded_*`` runs the 1,024-market workload over worker processes
(:class:`rltrader.envs.shards.ShardedMarketEnv`); every other benchmark uses one core.

``test_mode_*``: the order-level, continuous and execution action modes, uniformly random
actions of each one's space. ``test_groups_*``: a mixed market of agent groups (scripted
makers, executors, directional traders; ``GroupedMarketEnv``).

The PettingZoo benchmarks time ``MarketParallelEnv.step`` and ``GroupedParallelEnv.step``
with a dict of actions and report, per agent-step, the overhead above the batched (or
grouped) env's own step measured in the same test (``adapter_overhead_us``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rltrader._env", reason="the compiled core is not built")

from rltrader.envs import BatchedMarketEnv, MarketParallelEnv  # noqa: E402

STEPS = 20


def _actions(env: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, env.single_action_space.n, env.num_agents_total)
            for _ in range(16)]


def _time_steps(benchmark: Any, env: Any, act: Callable[[int], np.ndarray]) -> float | None:
    """Median seconds of ``STEPS`` steps after 100 untimed ones (None when not timed);
    ``act(t)`` gives step ``t``'s actions."""
    for t in range(100):
        env.step(act(t))
    counter = [100]

    def run() -> None:
        for _ in range(STEPS):
            env.step(act(counter[0]))
            counter[0] += 1

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=1)
    return None if benchmark.stats is None else benchmark.stats.stats.median


def _report(benchmark: Any, env: Any, median: float | None) -> None:
    if median is None:
        return
    benchmark.extra_info.update(
        n_envs=env.n_envs, n_agents=env.n_agents, steps_per_round=STEPS,
        us_per_step=round(median / STEPS * 1e6, 1),
        agent_steps_per_second=round(STEPS * env.num_agents_total / median),
        ns_per_agent_step=round(median / STEPS / env.num_agents_total * 1e9, 1))


def _bench_mode(benchmark: Any, mode: str, n_envs: int, n_agents: int) -> None:
    """``action_mode=mode`` with uniformly random actions of its space (16 drawn once)."""
    from rltrader.envs import EnvConfig

    env = BatchedMarketEnv(EnvConfig(action_mode=mode), n_envs=n_envs, n_agents=n_agents,
                           seed=0)
    space = env.single_action_space
    space.seed(0)
    actions = [np.stack([space.sample() for _ in range(env.num_agents_total)])
               for _ in range(16)]
    _report(benchmark, env, _time_steps(benchmark, env, lambda t: actions[t % 16]))


@pytest.mark.parametrize("mode", ["order", "continuous", "execution"])
def test_mode_1_market_4096_agents(benchmark: Any, mode: str) -> None:
    _bench_mode(benchmark, mode, 1, 4096)


@pytest.mark.parametrize("mode", ["order", "continuous", "execution"])
def test_mode_1024_markets_4_agents(benchmark: Any, mode: str) -> None:
    _bench_mode(benchmark, mode, 1024, 4)


def _bench_groups(benchmark: Any, n_envs: int, makers: int, executors: int,
                  traders: int) -> None:
    """A mixed market (``GroupedMarketEnv``): scripted makers quoting at the touch,
    executors (random children) and directional traders (random discrete actions)."""
    from rltrader.envs import AgentGroup, EnvConfig, GroupedMarketEnv

    base = EnvConfig()
    env = GroupedMarketEnv([
        AgentGroup("makers", makers, base.replace(action_mode="market_making"),
                   policy=lambda obs: np.zeros((len(obs), 3), dtype=np.int64)),
        AgentGroup("executors", executors, base.replace(action_mode="execution")),
        AgentGroup("traders", traders, base)], n_envs=n_envs, seed=0)
    rng = np.random.default_rng(0)
    actions = [{"executors": rng.integers(0, 9, n_envs * executors),
                "traders": rng.integers(0, 12, n_envs * traders)} for _ in range(16)]
    class Stepper:                  # _time_steps' env: step(actions) on the grouped env
        num_agents_total = n_envs * (makers + executors + traders)

        def step(self, a: Any) -> None:
            env.step(a)

    stepper = Stepper()
    median = _time_steps(benchmark, stepper, lambda t: actions[t % 16])
    if median is not None:
        benchmark.extra_info.update(
            agents=stepper.num_agents_total, us_per_step=round(median / STEPS * 1e6, 1),
            agent_steps_per_second=round(STEPS * stepper.num_agents_total / median))


def test_groups_1_market_4096_agents(benchmark: Any) -> None:
    _bench_groups(benchmark, 1, 96, 1000, 3000)


def test_groups_1024_markets_4_agents(benchmark: Any) -> None:
    _bench_groups(benchmark, 1024, 1, 1, 2)


def _yardstick_ns() -> float:
    """The yardstick timed right after a goal benchmark: the median ns/message of
    ``rltrader bench``'s W1 (limit + cancel on one book, ``Books.process`` in batches of
    1,024), 200,000 messages. The env's ns per agent-step over it compares runs taken on
    other machines or in other minutes (this VM's speed moves by 1.5x)."""
    from rltrader.tools import workloads
    from rltrader.tools.bench import time_batched

    return time_batched(workloads.limit_cancel(200_000, seed=1), 1, repeats=7)[0]


def _bench_batched(benchmark: Any, n_envs: int, n_agents: int) -> None:
    env = BatchedMarketEnv(n_envs=n_envs, n_agents=n_agents, seed=0)
    actions = _actions(env)
    median = _time_steps(benchmark, env, lambda t: actions[t % 16])
    _report(benchmark, env, median)
    if median is not None:
        w1 = _yardstick_ns()
        benchmark.extra_info.update(
            yardstick_w1_ns_per_message=round(w1, 1),
            agent_step_over_w1=round(median / STEPS / env.num_agents_total * 1e9 / w1, 2))


def _bench_maker(benchmark: Any, n_envs: int, n_agents: int) -> None:
    from rltrader.envs import EnvConfig
    from rltrader.training.baselines import FixedSpreadMaker

    config = EnvConfig(action_mode="market_making")
    record = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=0)
    maker = FixedSpreadMaker(config, record.num_agents_total)
    actions: list[np.ndarray] = []
    for _ in range(100 + 16 * STEPS):       # warm-up, then the warm-up round and 15 rounds
        a = maker(record.observations)
        # an unchanged quote reuses the last array, as a policy's own buffer would be
        actions.append(actions[-1] if actions and np.array_equal(a, actions[-1]) else a.copy())
        record.step(actions[-1])
    env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=n_agents, seed=0)
    _report(benchmark, env, _time_steps(benchmark, env, lambda t: actions[t]))


def test_maker_1_market_4096_agents(benchmark: Any) -> None:
    _bench_maker(benchmark, 1, 4096)


def test_maker_1024_markets_4_agents(benchmark: Any) -> None:
    _bench_maker(benchmark, 1024, 4)


def test_batched_1_market_4096_agents(benchmark: Any) -> None:
    _bench_batched(benchmark, 1, 4096)


def test_batched_1024_markets_4_agents(benchmark: Any) -> None:
    _bench_batched(benchmark, 1024, 4)


def _adapter_overhead(benchmark: Any, adapter: Any, dicts: list[dict], inner: Any,
                      arrays: list[Any], n_agents: int) -> None:
    """Time ``adapter.step(dicts[t])`` and, in the same test, ``inner.step(arrays[t])``;
    report the adapter's overhead per agent-step (``adapter_overhead_us``)."""
    counter = [0]

    def run() -> None:
        for _ in range(STEPS):
            if not adapter.agents:
                adapter.reset()
            adapter.step(dicts[counter[0] % 16])
            counter[0] += 1

    def run_inner() -> float:
        start = time.perf_counter()
        for _ in range(STEPS):
            inner.step(arrays[counter[0] % 16])
            counter[0] += 1
        return time.perf_counter() - start

    benchmark.pedantic(run, rounds=15, iterations=1, warmup_rounds=1)
    if benchmark.stats is None:
        return
    base = float(np.median([run_inner() for _ in range(15)]))
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        n_agents=n_agents, inner_us_per_step=round(base / STEPS * 1e6, 1),
        pettingzoo_us_per_step=round(median / STEPS * 1e6, 1),
        adapter_overhead_us=round((median - base) / STEPS / n_agents * 1e6, 3))


def test_pettingzoo_overhead_1024_agents(benchmark: Any) -> None:
    n = 1024
    env = MarketParallelEnv(n_agents=n, seed=0)
    env.reset(seed=0)
    arrays = _actions(env.batched)
    dicts = [dict(zip(env.possible_agents, a.tolist(), strict=True)) for a in arrays]
    _adapter_overhead(benchmark, env, dicts, env.batched, arrays, n)


def test_grouped_pettingzoo_overhead_1024_agents(benchmark: Any) -> None:
    """``GroupedParallelEnv.step`` (dicts) against ``GroupedMarketEnv.step`` (arrays) on
    one market: 96 scripted makers, 512 executors and 512 directional traders."""
    from rltrader.envs import AgentGroup, EnvConfig, GroupedParallelEnv

    base = EnvConfig()
    groups = [AgentGroup("makers", 96, base.replace(action_mode="market_making"),
                         policy=lambda obs: np.zeros((len(obs), 3), dtype=np.int64)),
              AgentGroup("executors", 512, base.replace(action_mode="execution")),
              AgentGroup("traders", 512, base)]
    env = GroupedParallelEnv(groups, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    arrays = [{"executors": rng.integers(0, 9, 512), "traders": rng.integers(0, 12, 512)}
              for _ in range(16)]
    dicts = [dict(zip(env.possible_agents, np.concatenate(
        [a["executors"], a["traders"]]).tolist(), strict=True)) for a in arrays]
    _adapter_overhead(benchmark, env, dicts, env.grouped, arrays, len(env.possible_agents))


@pytest.mark.parametrize("n_workers", [1, 2])
def test_sharded_1024_markets_4_agents(benchmark: Any, n_workers: int) -> None:
    """The same workload split over worker processes (shared-memory buffers): the one
    multi-core benchmark; compare with ``test_batched_1024_markets_4_agents``."""
    from rltrader.envs.shards import ShardedMarketEnv

    with ShardedMarketEnv(n_envs=1024, n_agents=4, seed=0, n_workers=n_workers) as env:
        actions = _actions(env)
        median = _time_steps(benchmark, env, lambda t: actions[t % 16])
        if median is None:
            return
        benchmark.extra_info.update(
            n_workers=n_workers, us_per_step=round(median / STEPS * 1e6, 1),
            agent_steps_per_second=round(STEPS * env.num_agents_total / median))
