"""The portfolio experiment's real-data market: the Binance USD-M perpetual and spot
BTCUSDT of the same 345 s (2024-08-08, the package's samples), two symbols of one market
replayed on one clock (docs/portfolio.md, "Real data").

Symbol 0 is the perpetual, symbol 1 the spot; both books are read on the spot's tick
(0.01 USDT) and one lot of 0.000001 BTC, so that their values add up in one unit. The
agents' sizes and the price scale of the observations are those of the task they come
from, converted to this market (:func:`binance_pair_task`); the fees are the task's.
Every market of a seed replays the same record (the records have no randomness): markets
differ only by their agents' arrival times, so they share one price path.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from rltrader.training.portfolio.manager import PortfolioConfig

#: the real market's symbols, in book order (symbol x n_envs + market)
SYMBOLS = ("BTCUSDT-PERP", "BTCUSDT-SPOT")
TICK, LOT = "0.01", "0.000001"
#: lots of this market per lot of the simulated task (1,000 x 0.000001 BTC = 0.001 BTC)
LOTS_PER_TASK_LOT = 1_000
NAME = "binance_btcusdt"


@functools.lru_cache(maxsize=1)
def binance_pair_messages() -> tuple[Any, Any]:
    """The two records as replay messages (:func:`rltrader.data.hybrid.feed_messages`,
    the recorded trades replayed as executions of the levels they hit), perpetual first;
    read once per process (about 4 s)."""
    from rltrader.data import binance
    from rltrader.data.hybrid import feed_messages
    from rltrader.data.samples import BINANCE_SPOT, BINANCE_USDM, sample_path

    return tuple(feed_messages(binance.read_feed(sample_path(name), tick_size=TICK,
                                                 lot_size=LOT), trades=True)
                 for name in (BINANCE_USDM, BINANCE_SPOT))


def record_seconds() -> float:
    """Seconds both records cover (from the later first message to the earlier last)."""
    first = max(int(m.messages["timestamp"][0]) for m in binance_pair_messages())
    last = min(int(m.messages["timestamp"][-1]) for m in binance_pair_messages())
    return (last - first) / 1e9


def first_mid() -> float:
    """The perpetual's mid (ticks of 0.01) one second into its record."""
    from rltrader.data.hybrid import HybridReplay

    replay = HybridReplay(binance_pair_messages()[0].messages, 1)
    replay.step(until_ts=replay.timestamp + 1_000_000_000)
    bid, ask = replay.top_of_book()
    return 0.5 * (bid + ask)


def binance_pair_task(base: PortfolioConfig, reference_price: float | None = None
                      ) -> PortfolioConfig:
    """``base`` on the real market: two symbols, order sizes and position limits x
    :data:`LOTS_PER_TASK_LOT` (2 task lots = 0.002 BTC, about 120 USDT), and a price scale
    of the same relative size: ``price_scale x`` (the record's first perpetual mid / the
    simulated market's fundamental level ``reference_price``, default ``r_bar`` of
    ``base``'s market), so that the observations' returns and spreads read in the units
    the policies learned; no drift (the record's prices are what they were). The
    horizon, decisions, fees and everything else stay."""
    env = base.env
    if reference_price is None:
        reference_price = float(env.market_config().fundamental.r_bar)
    # a record's prices are what they were: no simulated drift
    real = env.replace(symbols=len(SYMBOLS), base_qty=env.base_qty * LOTS_PER_TASK_LOT,
                       drift_mean=0.0, drift_sd=0.0,
                       base_position_limit=env.base_position_limit * LOTS_PER_TASK_LOT,
                       price_scale=env.price_scale * first_mid() / reference_price)
    return dataclasses.replace(base, env=real)


def binance_pair_sources(config: PortfolioConfig, n_envs: int, n_agents: int = 1
                         ) -> list[Any]:
    """``n_envs`` markets' replays, one per book: ``n_envs`` perpetuals then ``n_envs``
    spots (book ``symbol x n_envs + market``), with ``config.env``'s fees."""
    from rltrader.data.hybrid import HybridReplay

    env = config.env
    if env.symbols != len(SYMBOLS):
        raise ValueError(f"the real market has {len(SYMBOLS)} symbols; the config has "
                         f"{env.symbols} (use binance_pair_task)")
    return [HybridReplay(given.messages, n_agents, halts=given.halts,
                         maker_fee_ppm=env.maker_fee_ppm, taker_fee_ppm=env.taker_fee_ppm)
            for given in binance_pair_messages() for _ in range(n_envs)]


def check_fits(config: PortfolioConfig, episodes: int) -> None:
    """Refuse an evaluation that the records cannot hold: warm-up plus ``episodes``
    whole episodes of ``replay_step_ns`` steps must end before the shorter record."""
    env = config.env
    need = (env.warmup_steps + episodes * env.horizon) * env.replay_step_ns / 1e9
    have = record_seconds()
    if need >= have:
        raise ValueError(f"the real records cover {have:.1f} s; {episodes} episodes of "
                         f"{env.horizon} steps after {env.warmup_steps} warm-up steps of "
                         f"{env.replay_step_ns / 1e9:g} s need {need:.1f} s")


__all__ = ["LOTS_PER_TASK_LOT", "NAME", "SYMBOLS", "binance_pair_messages",
           "binance_pair_sources", "binance_pair_task", "check_fits", "first_mid",
           "record_seconds"]
