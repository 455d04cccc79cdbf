"""Reference policies and their evaluation (rltrader.training.baselines)."""

from __future__ import annotations

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names
from rltrader.training.baselines import (
    MAKER_INVENTORY_LIMITS,
    Evaluation,
    FixedSpreadMaker,
    RandomPolicy,
    evaluate,
    tune_maker,
)

MM = EnvConfig(action_mode="market_making", horizon=100, warmup_steps=50)
INVENTORY = observation_names(MM.depth).index("inventory")
NO_QUOTE = len(MM.quote_offsets)


def observations(inventory: list[float]) -> np.ndarray:
    obs = np.zeros((len(inventory), len(observation_names(MM.depth))), dtype=np.float32)
    obs[:, INVENTORY] = inventory
    return obs


def mm_space():
    return BatchedMarketEnv(MM, n_envs=1, n_agents=1).single_action_space


def test_maker_quotes_both_sides_and_withdraws_at_the_inventory_limit() -> None:
    maker = FixedSpreadMaker(MM, 5, offset=1, size=2.0, max_inventory=0.5)
    actions = maker(observations([0.0, 0.49, 0.5, -0.5, -1.0]))
    offset, size = MM.quote_offsets.index(1), MM.quote_sizes.index(2.0)
    assert actions.tolist() == [
        [offset, offset, size],          # flat: both sides
        [offset, offset, size],          # below the limit
        [NO_QUOTE, offset, size],        # long at the limit: no more bids
        [offset, NO_QUOTE, size],        # short at the limit: no more asks
        [offset, NO_QUOTE, size],
    ]
    assert all(mm_space().contains(a) for a in actions)


@pytest.mark.parametrize(("changes", "kwargs", "match"), [
    ({"action_mode": "discrete"}, {}, "action_mode='market_making'"),
    ({}, {"offset": 3}, "quote_offsets"),
    ({}, {"size": 3.0}, "quote_sizes"),
    ({}, {"max_inventory": 0.0}, "max_inventory"),
])
def test_maker_rejects_what_the_env_cannot_quote(changes: dict, kwargs: dict,
                                                 match: str) -> None:
    with pytest.raises(ValueError, match=match):
        FixedSpreadMaker(MM.replace(**changes), 2, **kwargs)


def test_random_policy_covers_the_space_and_is_seeded() -> None:
    space = mm_space()
    a = RandomPolicy(space, 4096, seed=3)(observations([0.0]))
    assert a.shape == (4096, 3)
    assert all(space.contains(row) for row in a[:64])
    for column, n in enumerate(space.nvec):
        assert set(a[:, column]) == set(range(n))
    assert np.array_equal(a, RandomPolicy(space, 4096, seed=3)(observations([0.0])))


def test_standard_error_counts_markets_not_agents() -> None:
    # two episodes x two markets x two agents; per-market means 1, 3, 5, 7
    returns = np.array([[[0.0, 2.0], [3.0, 3.0]], [[4.0, 6.0], [7.0, 7.0]]])
    e = Evaluation(returns)
    assert e.mean == 4.0
    assert e.standard_error == pytest.approx(np.std([1, 3, 5, 7], ddof=1) / 2)
    assert "+4.000 ± 1.291 (2 x 2 x 2 agent-episodes)" == str(e)


def test_evaluation_is_reproducible_and_returns_are_realised_cash() -> None:
    """Same seed, same markets: a deterministic policy gets identical returns. With the
    positions flattened at every episode's end (``end_of_episode="liquidate"``) an
    episode's return is the cash it made per lot, whatever the valuation of the positions
    in between: ``"mid"`` and ``"liquidation"`` give the same returns."""
    maker = FixedSpreadMaker(MM, 16 * 2, offset=0, size=4.0)
    first = evaluate(maker, MM, n_envs=16, n_agents=2, seed=5, episodes=2)
    again = evaluate(maker, MM, n_envs=16, n_agents=2, seed=5, episodes=2)
    assert first.returns.shape == (2, 16, 2)
    assert np.array_equal(first.returns, again.returns)
    assert np.any(first.returns != 0)
    mid = evaluate(maker, MM.replace(valuation="mid"), n_envs=16, n_agents=2, seed=5,
                   episodes=2)
    np.testing.assert_allclose(mid.returns, first.returns, rtol=1e-5, atol=1e-4)
    carried = evaluate(maker, MM.replace(valuation="mid", end_of_episode="carry"), n_envs=16,
                       n_agents=2, seed=5, episodes=2)
    assert not np.allclose(carried.returns, first.returns)


def test_the_maker_earns_the_spread_on_thin() -> None:
    """On ``thin`` markets, over 1,000-step episodes, quoting at the touch earns more than
    random orders, liquidation at the end paid (a regression figure of the fixed seed,
    not a law; on ``resilient`` the same maker loses to its fast value traders)."""
    config = MM.replace(market="thin", horizon=1_000)
    maker = FixedSpreadMaker(config, 16 * 2, offset=0, size=4.0)
    earned = evaluate(maker, config, n_envs=16, n_agents=2, seed=5)
    random = evaluate(RandomPolicy(mm_space(), 32, seed=0), config, n_envs=16, n_agents=2,
                      seed=5)
    assert earned.mean > 0
    assert earned.mean > random.mean + 2 * random.standard_error


def test_evaluate_rejects_zero_episodes() -> None:
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate(FixedSpreadMaker(MM, 1), MM, n_envs=1, n_agents=1, seed=0, episodes=0)


def test_paired_difference_is_taken_per_market() -> None:
    a = Evaluation(np.array([[[1.0, 3.0], [5.0, 5.0]], [[2.0, 2.0], [9.0, 7.0]]]))
    b = Evaluation(np.array([[[0.0, 0.0], [4.0, 4.0]], [[2.0, 0.0], [5.0, 5.0]]]))
    mean, error = a.minus(b)
    # per-market differences: 2, 1, 1, 3
    assert mean == pytest.approx(1.75)
    assert error == pytest.approx(np.std([2, 1, 1, 3], ddof=1) / 2)
    with pytest.raises(ValueError, match="cannot pair"):
        a.minus(Evaluation(np.zeros((1, 2, 2))))


def test_tune_maker_returns_the_best_row_of_its_grid() -> None:
    config = MM.replace(quote_offsets=(0, 2), quote_sizes=(1.0, 4.0), horizon=60)
    choice = tune_maker(config, n_envs=4, n_agents=2, seed=3)
    assert len(choice.grid) == 2 * 2 * len(MAKER_INVENTORY_LIMITS)
    means = [row[3] for row in choice.grid]
    assert means == sorted(means, reverse=True)
    assert (choice.offset, choice.size, choice.max_inventory) == choice.grid[0][:3]
    again = evaluate(choice.policy(config, 8), config, n_envs=4, n_agents=2, seed=3)
    assert again.mean == choice.grid[0][3]
    # the grid's rows are distinct quoting rules: offsets and sizes do change the outcome
    assert len({round(m, 9) for m in means}) > 2


def test_the_informed_preset_is_thin_with_informed_flow() -> None:
    """``informed`` differs from ``thin`` only in its fundamental's jumps and its value
    traders, and there a maker left at the touch earns less than on ``thin`` (the same
    seeded flow otherwise; a regression figure of the fixed seed, not a law)."""
    import dataclasses

    from rltrader.sim.config import preset

    thin, informed = preset("thin"), preset("informed")
    differ = {f.name for f in dataclasses.fields(thin)
              if getattr(thin, f.name) != getattr(informed, f.name)}
    assert differ == {"name", "fundamental", "value"}
    assert informed.fundamental.jump_rate_per_s > 0 and informed.fundamental.jump_sd > 0
    assert informed.value.count > thin.value.count
    assert informed.value.obs_sd < thin.value.obs_sd

    returns = {}
    for name in ("thin", "informed"):
        config = MM.replace(market=name, horizon=600)
        maker = FixedSpreadMaker(config, 32, offset=0, size=4.0, max_inventory=0.75)
        returns[name] = evaluate(maker, config, n_envs=16, n_agents=2, seed=11)
    assert returns["informed"].mean < returns["thin"].mean - 2 * returns["thin"].standard_error
