"""rltrader: a compiled limit-order-book market simulator for multi-agent RL."""

from rltrader._book import Books, OrderBook
from rltrader.constants import *  # noqa: F403
from rltrader.constants import __all__ as _constants
from rltrader.messages import (
    ACCOUNT_DTYPE,
    EVENT_DTYPE,
    MESSAGE_DTYPE,
    QUEUE_DTYPE,
    empty_events,
    empty_messages,
)

__version__ = "0.1.0"

__all__ = [
    "Books", "OrderBook",
    "MESSAGE_DTYPE", "EVENT_DTYPE", "ACCOUNT_DTYPE", "QUEUE_DTYPE",
    "empty_messages", "empty_events",
    *_constants,
]
