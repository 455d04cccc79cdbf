"""Every constant of rltrader, defined once in ``_book.pxd`` and re-exported here.

Each family is an ``IntEnum`` (``Side``, ``Op``, ``TimeInForce``, ``SelfTradePrevention``,
``EventKind``, ``Reason``, ``Limits``); the members are also exported as module-level names
(``BUY``, ``LIMIT``, ``FOK`` ...) for terse call sites.
"""

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

__all__ = [
    "Side", "Op", "TimeInForce", "SelfTradePrevention", "EventKind", "Reason", "Limits",
    "BUY", "SELL",
    "LIMIT", "MARKET", "CANCEL", "REDUCE", "REPLACE", "STOP", "STOP_LIMIT", "EXECUTE",
    "GTC", "IOC", "FOK", "POST_ONLY",
    "ACCEPTED", "REJECTED", "FILL", "CANCELLED", "TRIGGERED", "REDUCED",
    "NO_OWNER", "MAX_PRICE", "MAX_QTY", "EMPTY_BID", "EMPTY_ASK",
]
