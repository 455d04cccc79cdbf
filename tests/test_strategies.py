"""The baselines of rltrader.training.strategies: closed forms, fitted market parameters,
execution schedules, directional signals, every one through run_lineup, and one honest
comparison on the default market."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from rltrader.envs import BatchedMarketEnv, EnvConfig, observation_names
from rltrader.training.evaluation import run_lineup
from rltrader.training.exploits import FixedSpreadMaker
from rltrader.training.strategies import (
    BASELINES,
    POV,
    TWAP,
    AlmgrenChriss,
    AvellanedaStoikov,
    BestFlowFollowing,
    BestFlowMaker,
    FlowFollowing,
    FlowMaker,
    Momentum,
    SizeAwareMaker,
    fit_market,
)

MM = EnvConfig(action_mode="market_making", horizon=100, warmup_steps=50)
EXECUTION = EnvConfig(action_mode="execution", horizon=20, warmup_steps=50,
                      size_classes=(4.0, 4.0))
DIRECTIONAL = EnvConfig(horizon=50, warmup_steps=50)
MODES = {"market_making": MM, "execution": EXECUTION, "discrete": DIRECTIONAL}


def write(env: BatchedMarketEnv, name: str, values: list[float]) -> None:
    """Set observation column ``name`` of every market's agents (rows in agent order)."""
    c = env.config
    column = observation_names(c.depth, c.action_mode, c.max_orders).index(name)
    env.observations.reshape(env.n_envs, env.n_agents, -1)[:, :, column] = values


# ---- Avellaneda-Stoikov -----------------------------------------------------------------


def test_avellaneda_stoikov_matches_the_closed_form() -> None:
    maker = AvellanedaStoikov(gamma=0.1, sigma=0.5, k=1.5)
    shift, spread = maker.quotes(np.array([-2.0, 0.0, 3.0]), 40)
    # r - mid = -q gamma sigma^2 tau; delta = gamma sigma^2 tau + 2 / gamma ln(1 + gamma / k)
    np.testing.assert_allclose(shift, [2.0, 0.0, -3.0])
    assert spread == pytest.approx(1.0 + 20 * math.log(1 + 0.1 / 1.5))
    # with no time left only the intensity term is left, 2 / k as gamma -> 0
    assert AvellanedaStoikov(1e-9, 0.5, 1.5).quotes(0.0, 0)[1] == pytest.approx(2 / 1.5)


def test_avellaneda_stoikov_widens_with_gamma_and_sigma() -> None:
    def spread(gamma: float, sigma: float) -> float:
        return float(AvellanedaStoikov(gamma, sigma, k=1.5).quotes(0.0, 100)[1])

    assert spread(0.1, 0.5) > spread(0.01, 0.5) > spread(0.001, 0.5)
    assert spread(0.05, 1.0) > spread(0.05, 0.5) > spread(0.05, 0.1)


def test_quotes_move_against_the_inventory() -> None:
    """Long: bid further back, ask nearer (a lower reservation price); short: the mirror."""
    config = MM.replace(quote_offsets=(-1, 0, 1, 2, 3, 4, 6), size_classes=(1.0, 1.0, 1.0))
    env = BatchedMarketEnv(config, n_envs=2, n_agents=3, seed=0)
    maker = AvellanedaStoikov(gamma=0.05, sigma=0.3, k=2.0)
    maker.begin(env)
    write(env, "spread", [0.5] * 3)                       # a 1-tick spread
    write(env, "inventory", [0.5, 0.0, -0.5])             # +10, 0, -10 order sizes
    a = maker.actions(np.zeros(2, np.int64), 100, env, [0, 1, 2])
    offsets = np.array(config.quote_offsets + (99,))      # 99: no quote
    bid, ask = offsets[a[0, :, 0]], offsets[a[0, :, 1]]
    assert bid[0] > bid[1] > bid[2] and ask[0] < ask[1] < ask[2]
    np.testing.assert_array_equal(a[0], a[1])


def test_the_fitted_market_is_sane_and_reproducible() -> None:
    fit = fit_market("resilient", n_envs=32, steps=1000, seed=3)
    assert 0.02 < fit.sigma < 1.0                 # ticks per step
    assert 0.5 < fit.k < 6.0                      # per tick: fills fall fast behind the touch
    assert 0 < fit.intensity < 1 and 0.9 < fit.spread < 3
    assert fit.eta > 0 and 0.3 < fit.epsilon < 1.5
    assert np.all(np.diff(fit.fill_rates) < 0)   # farther quotes fill less
    again = fit_market("resilient", n_envs=32, steps=1000, seed=3)
    assert (again.sigma, again.k, again.eta) == (fit.sigma, fit.k, fit.eta)
    assert fit_market("resilient", n_envs=32, steps=1000, seed=4).k != fit.k


def test_the_intensity_line_is_weighted_least_squares() -> None:
    """The decay's fit (``_weighted_line``): exact on points of a line, and ``np.polyfit``'s
    weighted fit (which weights residuals by the square root) to rounding elsewhere."""
    from rltrader.training.strategies import _weighted_line

    assert _weighted_line([0.0, 1.0, 3.0], [2.0, 0.5, -2.5], [5.0, 1.0, 7.0]) == (-1.5, 2.0)
    rng = np.random.default_rng(7)
    for n in (2, 5, 12):
        x, y, w = rng.uniform(0, 8, n), rng.normal(size=n), rng.integers(10, 900, n) * 1.0
        want = np.polyfit(x, y, 1, w=np.sqrt(w))
        np.testing.assert_allclose(_weighted_line(list(x), list(y), list(w)), want,
                                   rtol=1e-12, atol=1e-12)


# ---- the size-aware maker ---------------------------------------------------------------


def test_size_aware_maker_quotes_less_for_large_agents_and_large_inventories() -> None:
    config = MM.replace(size_classes=(1.0, 8.0, 1.0, 1.0))
    env = BatchedMarketEnv(config, n_envs=1, n_agents=4, seed=0)
    maker = SizeAwareMaker(size=4.0, large_size=1.0, max_inventory=0.8, shrink=1.0)
    maker.begin(env)
    write(env, "inventory", [0.0, 0.0, 0.5, -0.9])
    a = maker.actions(np.zeros(1, np.int64), 100, env, range(4))[0]
    sizes = np.array(config.quote_sizes)[a[:, 2]]
    assert sizes.tolist() == [4.0, 1.0, 1.0, 1.0]    # 4 x (1 - 0.5 / 0.8) = 1.5 -> 1
    no_quote = len(config.quote_offsets)
    assert a[3, 1] == no_quote and a[3, 0] != no_quote  # short past the limit: bids only


# ---- execution --------------------------------------------------------------------------


def executed(strategy, config: EnvConfig, n_envs: int = 8, seed: int = 0):
    """Run ``strategy`` for one episode; the share of the parent executed after every
    step and the lots the book traded since the episode began, ``(steps, rows)``."""
    env = BatchedMarketEnv(config, n_envs=n_envs, n_agents=config.size_classes.__len__(),
                           seed=seed)
    agents = list(range(env.n_agents))
    strategy.begin(env)
    left = observation_names(config.depth, "execution").index("parent_left")
    start = np.array([env.market.books.volume(b) for b in range(n_envs)])
    done, volume = [], []
    for _ in range(config.horizon - 1):            # the deadline step completes anyway
        env.step(strategy.actions(env.episode_step.astype(np.int64), config.horizon, env,
                                  agents))
        done.append(1 - env.observations[:, left].copy())
        traded = np.array([env.market.books.volume(b) for b in range(n_envs)]) - start
        volume.append(np.repeat(traded, env.n_agents))
    return np.array(done), np.array(volume), env


def test_twap_executes_its_parent_evenly() -> None:
    done, _, env = executed(TWAP(), EXECUTION)
    parent = 40                                  # size class 4 x 10 order sizes
    assert env.order_qty.tolist()[0] * 10 == parent
    expected = np.arange(1, EXECUTION.horizon)[:, None] / EXECUTION.horizon
    assert np.abs(done - expected).max() <= 1.5 / parent + 1e-6


def test_pov_tracks_its_share_of_the_market_volume() -> None:
    config = EXECUTION.replace(horizon=150, size_classes=(8.0,), execution_size=20.0)
    done, volume, _ = executed(POV(0.25), config, n_envs=16, seed=1)
    lots = done * 160                            # a parent of 160 lots
    target = 0.25 * volume
    assert target[-1].mean() > 10                # the book traded enough to follow
    # within a lot or so at most steps; behind after a burst of volume (a child is at most
    # 4 x TWAP of what is left), so a little short on the whole, and far from TWAP's 159
    deviation = np.abs(lots - target)
    assert np.median(deviation) <= 1 and np.percentile(deviation, 90) <= 3
    assert 0.8 < lots[-1].sum() / target[-1].sum() < 1.05


def test_almgren_chriss_is_the_sinh_trajectory_and_twap_without_risk_aversion() -> None:
    ac = AlmgrenChriss(risk_aversion=0.02, sigma=0.3, eta=0.01)
    n = 50
    kappa = math.acosh(1 + 0.02 * 0.09 / (2 * 0.01))
    j = np.arange(n + 1)
    np.testing.assert_allclose(ac.trajectory(n), np.sinh(kappa * (n - j)) / np.sinh(kappa * n),
                               rtol=1e-9, atol=1e-12)
    assert np.all(ac.trajectory(n)[1:-1] < 1 - j[1:-1] / n)       # front-loaded
    flat = AlmgrenChriss(risk_aversion=1e-12, sigma=0.3, eta=0.01).trajectory(n)
    np.testing.assert_allclose(flat, 1 - j / n, atol=1e-6)
    # on the market it follows its schedule within a child (kappa N = 2: its first child,
    # 1.9 x TWAP's, is within the env's largest rate, 4 x)
    fast = AlmgrenChriss(risk_aversion=0.00111, sigma=0.3, eta=0.01)
    done, _, _ = executed(fast, EXECUTION)
    want = 1 - fast.trajectory(EXECUTION.horizon)[1:EXECUTION.horizon, None]
    assert np.abs(done - want).max() <= 0.1


# ---- directional ------------------------------------------------------------------------


def test_momentum_goes_long_after_up_moves_and_short_after_down_moves() -> None:
    env = BatchedMarketEnv(DIRECTIONAL.replace(size_classes=(1.0,)), n_envs=2, seed=0)
    momentum = Momentum(lookback=5, threshold=2.0)
    momentum.begin(env)
    codes, step = momentum.codes, np.zeros(2, np.int64)
    write(env, "inventory", [0.0])
    env.observations.reshape(2, 1, -1)[1, 0, observation_names(5).index("return_1")] = -0.5
    write_returns = observation_names(5).index("return_1")
    env.observations.reshape(2, 1, -1)[0, 0, write_returns] = 0.5
    for _ in range(3):
        a = momentum.actions(step, 50, env, [0])
    assert a[:, 0].tolist() == [codes.market_buy, codes.market_sell]
    write(env, "inventory", [1.0])                 # at the target: hold
    assert momentum.actions(step, 50, env, [0])[0, 0] == codes.hold


def test_flow_following_rests_toward_the_flow_and_cancels_at_its_target() -> None:
    env = BatchedMarketEnv(DIRECTIONAL.replace(size_classes=(1.0,)), n_envs=4, seed=0)
    follow = FlowFollowing(threshold=0.5, fraction=1.0)
    follow.begin(env)
    codes, step = follow.codes, np.zeros(4, np.int64)
    write(env, "inventory", [0.0])
    write(env, "orders", [0.0])
    flow = observation_names(5).index("flow_imbalance")
    env.observations.reshape(4, 1, -1)[:, 0, flow] = [0.8, -0.8, 0.2, -0.2]
    a = follow.actions(step, 50, env, [0])[:, 0]
    assert a.tolist() == [codes.buy_touch, codes.sell_touch, codes.hold, codes.hold]
    write(env, "orders", [0.5])                    # orders resting: flat means cancel them
    a = follow.actions(step, 50, env, [0])[:, 0]
    assert a.tolist() == [codes.buy_touch, codes.sell_touch, codes.cancel, codes.cancel]
    write(env, "inventory", [1.0])                 # long at the limit: the buyer is done
    assert follow.actions(step, 50, env, [0])[0, 0] == codes.cancel
    with pytest.raises(ValueError):
        FlowFollowing(threshold=1.0)


def test_flow_following_earns_on_realistic_where_momentum_loses() -> None:
    """On ``realistic`` (metaorders split into children: order flow with long memory) the
    flow's imbalance predicts the next minute's return. Resting at the touch with it earns
    (96 markets, paired interval above 0); the past return's momentum, taking liquidity,
    loses the fee and the spread."""
    config = EnvConfig(market="realistic", horizon=1000)
    lineup = dict(n_envs=32, n_agents=1, seeds=(0, 1, 2))
    follow = run_lineup(config, [(FlowFollowing(0.6, 1.0), [0])], **lineup)
    momentum = run_lineup(config, [(Momentum(), [0])], **lineup)
    hold = run_lineup(config, [], **lineup)
    assert follow.minus(hold, [0]).ci_low > 0
    assert momentum.minus(hold, [0]).ci_high < 0


def test_flow_maker_withdraws_the_side_the_flow_hits_and_at_its_inventory_limit() -> None:
    env = BatchedMarketEnv(MM, n_envs=5, seed=0)
    maker = FlowMaker(threshold=0.3, offset=1, size=2.0, max_inventory=0.5)
    maker.begin(env)
    no, one = maker.codes.no_quote, MM.quote_offsets.index(1)
    step = np.zeros(5, np.int64)
    flow = observation_names(5, "market_making", MM.max_orders).index("flow_imbalance")
    write(env, "inventory", [0.0])
    env.observations.reshape(5, 1, -1)[:, 0, flow] = [0.5, -0.5, 0.3, -0.3, 0.0]
    a = maker.actions(step, 100, env, [0])[:, 0]
    # buyers taking (flow > 0.3): no ask; sellers: no bid; at the threshold: both quoted
    assert a[:, :2].tolist() == [[one, no], [no, one], [one, one], [one, one], [one, one]]
    assert (a[:, 2] == MM.quote_sizes.index(2.0)).all()
    write(env, "inventory", [0.5])                          # long at its limit: no bid
    a = maker.actions(step, 100, env, [0])[:, 0]
    assert a[:, :2].tolist() == [[no, no], [no, one], [no, one], [no, one], [no, one]]
    plain = FlowMaker(threshold=None, offset=1, size=2.0, max_inventory=0.5)
    plain.begin(env)
    reference = FixedSpreadMaker(offset=1, size=2.0, max_inventory=0.5)
    reference.begin(env)
    for inventory in (-0.6, -0.5, 0.0, 0.49, 0.5):         # no threshold: the fixed maker
        write(env, "inventory", [inventory])
        np.testing.assert_array_equal(plain.actions(step, 100, env, [0]),
                                      reference.actions(step, 100, env, [0]))
    for bad in ({"threshold": 1.0}, {"threshold": -0.1}, {"max_inventory": 0.0}):
        with pytest.raises(ValueError):
            FlowMaker(**bad)


@pytest.mark.parametrize("tuned, plain, grid, fields, config", [
    (BestFlowMaker, FlowMaker, "FLOW_MAKER_GRID", ("threshold", "offset", "size", "max_inventory"),
     MM.replace(market="informed", horizon=60)),
    (BestFlowFollowing, FlowFollowing, "FLOW_GRID", ("threshold", "fraction"),
     DIRECTIONAL.replace(market="realistic", horizon=60)),
])
def test_a_grid_tuned_baseline_plays_the_best_of_its_grid_on_the_tune_markets(
        tuned: type, plain: type, grid: str, fields: tuple[str, ...], config: EnvConfig,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The tuned strategy's choice earns at least as much on the tune seed's markets as
    every other point of its grid (re-run here), and the choice is cached per
    configuration."""
    import rltrader.training.strategies as strategies

    env = BatchedMarketEnv(config, n_envs=4, seed=0)
    best = tuned(tune_seed=77, n_envs=4)
    best.begin(env)
    chosen = tuple(getattr(best, f) for f in fields)

    def score(point: tuple) -> float:
        return float(run_lineup(config, [(plain(*point), [0])], n_envs=4, n_agents=1,
                                seeds=[77]).per_market([0]).mean())

    top = score(chosen)
    points = list(itertools.product(*getattr(strategies, grid)))
    assert chosen in points and all(score(p) <= top for p in points)
    import rltrader.training.evaluation as evaluation

    def no_tune(*args: object, **kwargs: object) -> None:
        raise AssertionError("tuned again: the choice was not cached")

    monkeypatch.setattr(evaluation, "run_lineup", no_tune)
    again = tuned(tune_seed=77, n_envs=4)
    again.begin(env)
    assert tuple(getattr(again, f) for f in fields) == chosen


def test_a_flow_maker_tuned_for_other_agents_a_market_plays_their_choice() -> None:
    """``tune_agents`` (a residual policy's teacher: the agents a market of training)
    tunes on markets of that many agents, whatever the env it begins on; on this market
    the choice for 1 agent and for 4 differ, so the test can tell."""
    config = MM.replace(market="informed", horizon=100)

    def chosen(n_agents: int, tune_agents: int | None = None) -> tuple:
        maker = BestFlowMaker(n_envs=8, tune_agents=tune_agents)
        maker.begin(BatchedMarketEnv(config, n_envs=2, n_agents=n_agents, seed=0))
        return (maker.threshold, maker.offset, maker.size, maker.max_inventory)

    alone = chosen(1)
    assert chosen(4) != alone
    assert chosen(4, tune_agents=1) == alone


# ---- every baseline on its mode ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_runs_through_run_lineup_on_its_mode(name: str) -> None:
    strategy = BASELINES[name]()
    config = MODES[strategy.mode].replace(horizon=30, size_classes=None)
    run = run_lineup(config, [(strategy, [0, 1])], n_envs=4, n_agents=3, seeds=(0,),
                     episodes=1)
    assert run.returns.shape == (1, 1, 4, 3) and np.isfinite(run.returns).all()
    assert run.limit_ratio([0, 1]) <= 1.0
    other = next(c for mode, c in MODES.items() if mode != strategy.mode)
    with pytest.raises(ValueError, match=strategy.mode):
        run_lineup(other.replace(horizon=30, size_classes=None), [(BASELINES[name](), [0])],
                   n_envs=1, n_agents=1)


# ---- an honest comparison ---------------------------------------------------------------


def test_fitted_avellaneda_stoikov_beats_a_maker_tuned_for_another_market() -> None:
    """On ``resilient`` the fitted A-S maker (size 1) beats the touch maker quoting 4 order
    sizes (the best fixed maker of the old ``thin`` runs, docs/training.md), paired by
    market. Its edge is the size: the fitted k (about 2 per tick) puts both quotes at the
    touch, as the fixed maker's, and the grid-tuned maker of this market (1 tick behind,
    size 1, about +0.04) beats both: on ``resilient`` quoting at the touch loses."""
    config = MM.replace(horizon=200)
    lineup = dict(n_envs=32, n_agents=4, seeds=(0, 1))
    fitted = run_lineup(config, [(AvellanedaStoikov(gamma=0.05, size=1.0), range(4))],
                        **lineup)
    naive = run_lineup(config, [(FixedSpreadMaker(0, 4.0, 0.75), range(4))], **lineup)
    gain = fitted.minus(naive, list(range(4)))
    assert gain.ci_low > 0, str(gain)
