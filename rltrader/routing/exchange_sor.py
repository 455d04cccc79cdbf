"""The smart order router as an exchange-server order type: :func:`attach` gives an
:class:`~rltrader.exchange.engine.Exchange` serving several venues (``venues=``) its
router, so that ``POST /api/v3/sor/order`` (Binance's SOR endpoint, ccxt's
``private_post_sor_order``) splits an order across them.

The router sees every venue's book as it stands between batches (no latency: the venues
share the exchange's sequencer) with each venue's own fees, and runs
:func:`~rltrader.routing.router.greedy_sweep`: one IOC child per venue at the worst price
it takes there, cheapest lots first net of taker fees. A ``LIMIT`` ``GTC`` order's lots
beyond what the books hold within its price rest at that price on the venue with the best
maker fee (the largest rebate); a ``MARKET`` order takes what the visible depth holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rltrader.routing.router import Parent, VenueView, greedy_sweep


def attach(exchange: Any, *, depth: int = 50) -> None:
    """Give ``exchange`` its router (see the module docstring)."""
    if not exchange.sor:
        raise ValueError("the exchange serves one venue: build it with venues=...")

    def route(specs: list[Any], side: int, qty: int, limit: int | None,
              tif: str) -> list[tuple[Any, int, int, str]]:
        prices, qtys, _ = exchange.books.top_levels(depth)
        views = []
        for spec in specs:
            b = spec.book
            maker, taker = exchange.book_fees[b]
            views.append(VenueView(np.where(qtys[b] > 0, prices[b], 0), qtys[b], 1, maker,
                                   taker))
        routed = greedy_sweep(Parent(side, qty, limit), views)
        children = [(specs[c.venue], int(c.qty), int(c.price), "IOC") for c in routed]
        if routed.remainder > 0 and limit is not None and tif == "GTC":
            best = min(range(len(specs)), key=lambda v: exchange.book_fees[specs[v].book][0])
            children.append((specs[best], int(routed.remainder), int(limit), "GTC"))
        return children

    exchange.router = route


__all__ = ["attach"]
