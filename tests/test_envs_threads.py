"""The env and the background flow hold their ``Books`` for a whole step (their phases
read the core without the GIL): another thread's call on that Books meanwhile raises
RuntimeError instead of resizing the arena under them."""

from __future__ import annotations

import threading
import time

import numpy as np

from rltrader.envs import BatchedMarketEnv, EnvConfig

BUSY = "in use by another thread"


def test_a_core_call_during_an_env_step_is_refused_not_raced() -> None:
    env = BatchedMarketEnv(EnvConfig(horizon=50), n_envs=64, n_agents=4, seed=0)
    env.reset()
    books = env.market.books
    rng = np.random.default_rng(0)
    stop = time.monotonic() + 1.5
    refused: list[RuntimeError] = []
    other: list[BaseException] = []

    def meddle() -> None:
        while time.monotonic() < stop:
            try:
                books._resize_arena(books.capacity + 1)     # reallocates the arena
                books.top_levels(5)
            except RuntimeError as e:
                refused.append(e)
            except BaseException as e:  # pragma: no cover - what the test guards against
                other.append(e)
                raise

    thread = threading.Thread(target=meddle)
    thread.start()
    steps = 0
    while time.monotonic() < stop:
        try:
            env.step(rng.integers(0, env.single_action_space.n, env.num_agents_total))
            steps += 1
        except RuntimeError as e:       # the meddler held the Books when the step began
            assert BUSY in str(e)
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert not other, other
    assert all(BUSY in str(e) for e in refused)
    assert steps > 0
    books.check_integrity()
