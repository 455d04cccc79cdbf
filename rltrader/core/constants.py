"""Every constant of rltrader, in one place.

The core's families are defined once in ``_book.pxd`` and re-exported here, each as an
``IntEnum`` (``Side``, ``Op``, ``TimeInForce``, ``SelfTradePrevention``, ``EventKind``,
``Reason``, ``Limits``); the members are also module-level names (``BUY``, ``LIMIT``,
``FOK`` ...) for terse call sites. Below them: units, the order-id namespaces that the data
and env layers share out between recorded and agent orders, and the path type of every
reader.
"""

from __future__ import annotations

import os

from rltrader._book import (
    EventKind,
    Limits,
    Op,
    Reason,
    SelfTradePrevention,
    Side,
    TimeInForce,
)

BUY = Side.BUY
SELL = Side.SELL

LIMIT = Op.LIMIT
MARKET = Op.MARKET
CANCEL = Op.CANCEL
REDUCE = Op.REDUCE
REPLACE = Op.REPLACE
STOP = Op.STOP
STOP_LIMIT = Op.STOP_LIMIT
EXECUTE = Op.EXECUTE

GTC = TimeInForce.GTC
IOC = TimeInForce.IOC
FOK = TimeInForce.FOK
POST_ONLY = TimeInForce.POST_ONLY

ACCEPTED = EventKind.ACCEPTED
REJECTED = EventKind.REJECTED
FILL = EventKind.FILL
CANCELLED = EventKind.CANCELLED
TRIGGERED = EventKind.TRIGGERED
REDUCED = EventKind.REDUCED

NO_OWNER = int(Limits.NO_OWNER)
MAX_PRICE = int(Limits.MAX_PRICE)
MAX_QTY = int(Limits.MAX_QTY)
EMPTY_BID = int(Limits.EMPTY_BID)
EMPTY_ASK = int(Limits.EMPTY_ASK)
#: A book's gross traded notional (ticks x lots) never exceeds it: every account stays exact.
MAX_NOTIONAL = int(Limits.MAX_NOTIONAL)
#: Largest fee rate magnitude, per million of notional (100 %).
MAX_FEE_PPM = int(Limits.MAX_FEE_PPM)

#: Nanoseconds per second: every timestamp of the core and the recordings is int64 ns.
NS_PER_S = 1_000_000_000

# Order-id namespaces of one book (ids are per book, ``1 .. 2**63 - 1``). Recorded flow uses
# ids below LEVEL_ID_BASE; the synthetic orders that hold an L2 level or a LOBSTER level
# seen before the file starts use [LEVEL_ID_BASE, AGENT_ID_BASE); agents' orders in a
# hybrid replay or an env use [AGENT_ID_BASE, SIMULATED_ID_BASE); a hybrid replay's
# simulated background traders use ids from SIMULATED_ID_BASE up.

#: First id of the synthetic per-level orders (``data._levels``, LOBSTER snapshot levels).
LEVEL_ID_BASE = 1 << 52
#: First id of agent orders (hybrid replay, the batched env).
AGENT_ID_BASE = 1 << 60
#: First id of the simulated background traders' orders in a hybrid replay.
SIMULATED_ID_BASE = 3 << 60

#: What every reader and writer accepts as a file name.
PathLike = str | os.PathLike[str]

__all__ = [
    "Side", "Op", "TimeInForce", "SelfTradePrevention", "EventKind", "Reason", "Limits",
    "BUY", "SELL",
    "LIMIT", "MARKET", "CANCEL", "REDUCE", "REPLACE", "STOP", "STOP_LIMIT", "EXECUTE",
    "GTC", "IOC", "FOK", "POST_ONLY",
    "ACCEPTED", "REJECTED", "FILL", "CANCELLED", "TRIGGERED", "REDUCED",
    "NO_OWNER", "MAX_PRICE", "MAX_QTY", "EMPTY_BID", "EMPTY_ASK", "MAX_NOTIONAL", "MAX_FEE_PPM",
    "NS_PER_S", "LEVEL_ID_BASE", "AGENT_ID_BASE", "SIMULATED_ID_BASE",
]
