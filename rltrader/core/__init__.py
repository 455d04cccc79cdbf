"""The core's Python vocabulary: constants, message and event records, the book classes.

The matching kernels themselves are the compiled modules at the package root
(``rltrader._book`` and friends); this layer names what crosses into them.
"""

from rltrader._book import Books, OrderBook
from rltrader.core.constants import *  # noqa: F403
from rltrader.core.constants import __all__ as _constants
from rltrader.core.messages import (
    ACCOUNT_DTYPE,
    EVENT_DTYPE,
    MESSAGE_DTYPE,
    QUEUE_DTYPE,
    empty_events,
    empty_messages,
)

__all__ = [
    "Books", "OrderBook",
    "MESSAGE_DTYPE", "EVENT_DTYPE", "ACCOUNT_DTYPE", "QUEUE_DTYPE",
    "empty_messages", "empty_events",
    *_constants,
]
