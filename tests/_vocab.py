"""The constants and record dtypes the test helpers use, with a fallback for an unbuilt core.

``rltrader.core.constants`` re-exports the enums of the compiled module, so it only imports
once the core builds. The pure-Python reference book must work without it, so this module
falls back to copies of the enums (values from ``rltrader/_book.pxd``) and loads
``rltrader/core/messages.py`` by path (importing it as ``rltrader.core.messages`` would
import the package, and with it the compiled core). ``CORE_CONSTANTS`` says which one is in
use; ``tests/test_vocab_fallback.py`` checks that the copies match the core.
"""

from __future__ import annotations

import importlib.util
import pathlib
from enum import IntEnum

try:
    from rltrader.core.constants import (
        EventKind,
        Limits,
        Op,
        Reason,
        SelfTradePrevention,
        Side,
        TimeInForce,
    )
    from rltrader.core.messages import ACCOUNT_DTYPE, EVENT_DTYPE, MESSAGE_DTYPE, QUEUE_DTYPE

    CORE_CONSTANTS = True
except ImportError:
    CORE_CONSTANTS = False

    class Side(IntEnum):  # type: ignore[no-redef]
        BUY = 1
        SELL = -1

    class Op(IntEnum):  # type: ignore[no-redef]
        LIMIT = 1
        MARKET = 2
        CANCEL = 3
        REDUCE = 4
        REPLACE = 5
        STOP = 6
        STOP_LIMIT = 7
        EXECUTE = 8

    class TimeInForce(IntEnum):  # type: ignore[no-redef]
        GTC = 0
        IOC = 1
        FOK = 2
        POST_ONLY = 3

    class SelfTradePrevention(IntEnum):  # type: ignore[no-redef]
        NONE = 0
        CANCEL_TAKER = 1
        CANCEL_MAKER = 2
        CANCEL_BOTH = 3

    class EventKind(IntEnum):  # type: ignore[no-redef]
        ACCEPTED = 1
        REJECTED = 2
        FILL = 3
        CANCELLED = 4
        TRIGGERED = 5
        REDUCED = 6

    class Reason(IntEnum):  # type: ignore[no-redef]
        NO_REASON = 0
        BAD_BOOK = 1
        BAD_OP = 2
        BAD_OWNER = 3
        BAD_ORDER_ID = 4
        BAD_SIDE = 5
        BAD_TIF = 6
        BAD_QTY = 7
        BAD_PRICE = 8
        DUPLICATE_ORDER_ID = 9
        UNKNOWN_ORDER = 10
        NOT_RESTING = 11
        POST_ONLY_WOULD_CROSS = 12
        CAPACITY = 13
        NOT_OWNER = 14
        NOTIONAL_LIMIT = 15
        CANCEL_REQUESTED = 20
        IOC_REMAINDER = 21
        FOK_UNFILLABLE = 22
        SELF_TRADE = 23
        REPLACED = 24

    class Limits(IntEnum):  # type: ignore[no-redef]
        NO_OWNER = -1
        MAX_PRICE = 1099511627775
        MAX_QTY = 1099511627775
        EMPTY_BID = 0
        EMPTY_ASK = 1099511627776
        NO_SLOT = -1

    _path = pathlib.Path(__file__).resolve().parent.parent / "rltrader" / "core" / "messages.py"
    _spec = importlib.util.spec_from_file_location("_rltrader_messages", _path)
    assert _spec is not None and _spec.loader is not None
    _messages = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_messages)
    ACCOUNT_DTYPE = _messages.ACCOUNT_DTYPE
    EVENT_DTYPE = _messages.EVENT_DTYPE
    MESSAGE_DTYPE = _messages.MESSAGE_DTYPE
    QUEUE_DTYPE = _messages.QUEUE_DTYPE


BUY = int(Side.BUY)
SELL = int(Side.SELL)
NO_OWNER = int(Limits.NO_OWNER)
MAX_PRICE = int(Limits.MAX_PRICE)
MAX_QTY = int(Limits.MAX_QTY)
EMPTY_BID = int(Limits.EMPTY_BID)
EMPTY_ASK = int(Limits.EMPTY_ASK)

__all__ = [
    "CORE_CONSTANTS",
    "Side",
    "Op",
    "TimeInForce",
    "SelfTradePrevention",
    "EventKind",
    "Reason",
    "Limits",
    "MESSAGE_DTYPE",
    "EVENT_DTYPE",
    "ACCOUNT_DTYPE",
    "QUEUE_DTYPE",
    "BUY",
    "SELL",
    "NO_OWNER",
    "MAX_PRICE",
    "MAX_QTY",
    "EMPTY_BID",
    "EMPTY_ASK",
]
