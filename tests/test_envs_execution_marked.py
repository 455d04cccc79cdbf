"""The execution mode's ``"marked"`` reward: the parent's unfilled lots marked at what
completing them now into the book would cost, against a reference walk of the book; the
episode's rewards sum to the same shortfall as ``"shortfall"``'s, on the same path."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.core.constants import SELL
from rltrader.envs import BatchedMarketEnv, EnvConfig

CONFIG = EnvConfig(action_mode="execution", horizon=30, warmup_steps=60,
                   size_classes=(1.0, 20.0), execution_size=5.0, taker_fee_ppm=100)
N_ENVS = 6


def _pair(seed: int) -> tuple[BatchedMarketEnv, BatchedMarketEnv]:
    return (BatchedMarketEnv(CONFIG, n_envs=N_ENVS, n_agents=2, seed=seed),
            BatchedMarketEnv(CONFIG.replace(execution_reward="marked"), n_envs=N_ENVS,
                             n_agents=2, seed=seed))


def reference_mark(env: BatchedMarketEnv) -> np.ndarray:
    """Each agent's mark: minus the cost, against its arrival price, of completing the
    unfilled lots of its parent now with a market order walking the opposite side (no
    own orders rest: the agents here wait or send market children), taker fee included."""
    arrays = env.kernel.agent_arrays
    side, lots = arrays["parent_side"], arrays["parent_lots"]
    position = env.accounts()["position"].ravel()
    unfilled = lots - side * (position - arrays["base_position"])
    prices, qtys, _ = env.market.books.top_levels(64)
    fee = env.config.taker_fee_ppm * 1e-6
    out = np.zeros(unfilled.shape)
    for a in range(unfilled.size):
        left = int(unfilled[a])
        if left <= 0:
            continue
        book = a // env.n_agents
        opposite = 0 if side[a] == SELL else 1          # a seller walks the bids
        notional = 0.0
        for price, qty in zip(prices[book, opposite], qtys[book, opposite], strict=True):
            take = min(left, int(qty))
            notional += take * int(price)
            left -= take
            if left == 0:
                break
        assert left == 0, "the reference walks the top 64 levels only"
        received = side[a] * -notional - notional * fee     # cash, + for a sale
        out[a] = received + side[a] * unfilled[a] * arrays["arrival"][a]
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_marked_rewards_are_the_shortfall_plus_the_change_of_the_reference_mark(seed):
    plain, marked = _pair(seed)
    rng = np.random.default_rng(seed)
    lots = plain.kernel.agent_arrays["parent_lots"].copy()
    previous = np.zeros(2 * N_ENVS)         # the first reward carries the whole mark
    totals = np.zeros((2, 2 * N_ENVS))
    for _ in range(2 * CONFIG.horizon):
        actions = rng.choice([0, 0, 0, 1, 2, 3, 4], size=2 * N_ENVS)   # wait or market
        _, r_plain, done, _ = plain.step(actions)
        _, r_marked, done_marked, _ = marked.step(actions)
        np.testing.assert_array_equal(done, done_marked)     # the same path
        np.testing.assert_array_equal(plain.accounts(), marked.accounts())
        totals += [r_plain, r_marked]
        if done.all():
            mark = np.zeros(2 * N_ENVS)                      # the parent is complete
            np.testing.assert_allclose(totals[1], totals[0], rtol=1e-4, atol=1e-3)
            assert (np.abs(totals[0]) > 0).any()
            totals[:] = 0.0
        else:
            mark = reference_mark(marked)     # > 0 where the price moved the parent's way
            np.testing.assert_allclose(r_marked - r_plain, (mark - previous) / lots,
                                       rtol=1e-4, atol=1e-4)
        previous = mark
        if done.all():
            previous = np.zeros(2 * N_ENVS)
            lots = plain.kernel.agent_arrays["parent_lots"].copy()


def test_a_large_parent_is_told_at_once_what_its_rest_would_cost():
    plain, marked = _pair(3)
    _, r_plain, _, _ = plain.step(np.zeros(2 * N_ENVS, dtype=np.int64))
    _, r_marked, _, _ = marked.step(np.zeros(2 * N_ENVS, dtype=np.int64))
    np.testing.assert_array_equal(r_plain, 0.0)             # waiting costs nothing yet
    per_lot = -r_marked.reshape(N_ENVS, 2)                  # the walk, per lot
    assert (per_lot > 0).all()
    assert (per_lot[:, 1] >= per_lot[:, 0] - 1e-4).all()    # 100 lots walk deeper than 5
    assert (per_lot[:, 1] > per_lot[:, 0] + 0.5).mean() > 0.5


def test_an_unknown_execution_reward_is_refused():
    with pytest.raises(ValueError, match="execution_reward"):
        EnvConfig(action_mode="execution", execution_reward="vwap")
