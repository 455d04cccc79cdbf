from collections.abc import Sequence
from enum import IntEnum
from typing import Any, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self, disjoint_base

from rltrader.core.messages import ACCOUNT_DTYPE as ACCOUNT_DTYPE
from rltrader.core.messages import EVENT_DTYPE as EVENT_DTYPE
from rltrader.core.messages import MESSAGE_DTYPE as MESSAGE_DTYPE
from rltrader.core.messages import QUEUE_DTYPE as QUEUE_DTYPE

class Side(IntEnum):
    BUY = 1
    SELL = -1

class Op(IntEnum):
    LIMIT = 1
    MARKET = 2
    CANCEL = 3
    REDUCE = 4
    REPLACE = 5
    STOP = 6
    STOP_LIMIT = 7
    EXECUTE = 8

class TimeInForce(IntEnum):
    GTC = 0
    IOC = 1
    FOK = 2
    POST_ONLY = 3

class SelfTradePrevention(IntEnum):
    NONE = 0
    CANCEL_TAKER = 1
    CANCEL_MAKER = 2
    CANCEL_BOTH = 3

class EventKind(IntEnum):
    ACCEPTED = 1
    REJECTED = 2
    FILL = 3
    CANCELLED = 4
    TRIGGERED = 5
    REDUCED = 6

class Reason(IntEnum):
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

class Limits(IntEnum):
    NO_OWNER = -1
    MAX_PRICE = 1099511627775
    MAX_QTY = 1099511627775
    EMPTY_BID = 0
    EMPTY_ASK = 1099511627776
    NO_SLOT = -1
    MAX_NOTIONAL = 4611686018427387903
    MAX_FEE_PPM = 1000000
    BOOK_FEE = 1000001

class OrderState(IntEnum):
    FREE = 0
    RESTING = 1
    STOP_PENDING = 2

class Status(IntEnum):
    OK = 0
    ARENA_FULL = 1
    EVENTS_FULL = 2

DEBUG_BUILD: bool
ORDER_DTYPE: np.dtype
LEVEL_DTYPE: np.dtype
BOOK_DTYPE: np.dtype

def ticks_per_second(seconds: float = 0.05) -> float: ...
def timer_overhead_ticks(repeats: int = 1001) -> float: ...

@disjoint_base
class Books:
    n_books: int
    n_owners: int
    window: int
    capacity: int
    max_orders: int
    book_array: np.ndarray
    level_array: np.ndarray
    bitmap_array: np.ndarray
    summary_array: np.ndarray
    order_array: np.ndarray
    hash_array: np.ndarray
    account_array: np.ndarray
    owner_fee_array: np.ndarray
    def __init__(
        self,
        n_books: int = 1,
        *,
        window: int = 4096,
        capacity: int = 1024,
        max_orders: int = 1 << 30,
        n_owners: int = 0,
        self_trade_prevention: int = 0,
        maker_fee_ppm: int = 0,
        taker_fee_ppm: int = 0,
    ) -> None: ...
    def process(self, messages: np.ndarray, events: np.ndarray,
                known: np.ndarray | None = None) -> tuple[int, int]: ...
    def process_all(self, messages: np.ndarray) -> np.ndarray: ...
    def profile(self, messages: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def _resize_arena(self, capacity: int) -> None: ...
    def set_self_trade_prevention(self, mode: int, book: int | None = None) -> None: ...
    def set_fees(self, maker_fee_ppm: int, taker_fee_ppm: int, book: int | None = None) -> None: ...
    def set_owner_fees(
        self, owner: int | Sequence[int] | np.ndarray, maker_fee_ppm: int | None = ...,
        taker_fee_ppm: int | None = ...
    ) -> None: ...
    def best_bid(self, book: int = 0) -> int: ...
    def best_ask(self, book: int = 0) -> int: ...
    def last_price(self, book: int = 0) -> int: ...
    def volume(self, book: int = 0) -> int: ...
    def trade_count(self, book: int = 0) -> int: ...
    def live_orders(self, book: int | None = None) -> int: ...
    def top_levels(
        self,
        depth: int,
        prices: npt.NDArray[np.int64] | None = None,
        qtys: npt.NDArray[np.int64] | None = None,
        counts: npt.NDArray[np.int32] | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32]]: ...
    def level_queue(
        self, book: int, side: int, price: int, out: np.ndarray | None = None
    ) -> np.ndarray: ...
    def order(self, book: int, order_id: int) -> dict[str, int] | None: ...
    @property
    def accounts(self) -> np.ndarray: ...
    def memory_bytes(self) -> dict[str, int]: ...
    def check_integrity(self) -> None: ...
    def state(self) -> dict[str, Any]: ...
    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self: ...
    def _restore(self, state: dict[str, Any]) -> None: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

@final
class OrderBook:
    books: Books
    def __init__(
        self,
        *,
        window: int = 4096,
        capacity: int = 1024,
        max_orders: int = 1 << 30,
        n_owners: int = 0,
        self_trade_prevention: int = 0,
        maker_fee_ppm: int = 0,
        taker_fee_ppm: int = 0,
    ) -> None: ...
    def limit(
        self,
        side: int,
        price: int,
        qty: int,
        order_id: int = 0,
        owner: int = -1,
        tif: int = 0,
        timestamp: int = 0,
    ) -> int: ...
    def market(
        self, side: int, qty: int, order_id: int = 0, owner: int = -1, tif: int = 1,
        timestamp: int = 0,
    ) -> int: ...
    def stop(
        self, side: int, stop_price: int, qty: int, order_id: int = 0, owner: int = -1,
        tif: int = 1, timestamp: int = 0,
    ) -> int: ...
    def stop_limit(
        self, side: int, stop_price: int, price: int, qty: int, order_id: int = 0,
        owner: int = -1, tif: int = 0, timestamp: int = 0,
    ) -> int: ...
    def cancel(self, order_id: int, timestamp: int = 0, owner: int = -1) -> bool: ...
    def reduce(self, order_id: int, qty: int, timestamp: int = 0, owner: int = -1) -> bool: ...
    def replace(
        self, order_id: int, price: int, qty: int, new_order_id: int = 0, tif: int = 0,
        timestamp: int = 0, owner: int = -1,
    ) -> int: ...
    def execute(self, order_id: int, qty: int, timestamp: int = 0) -> bool: ...
    def submit(self, message: np.void | np.ndarray) -> int: ...
    @property
    def events(self) -> np.ndarray: ...
    def fills(self) -> np.ndarray: ...
    def best_bid(self) -> int: ...
    def best_ask(self) -> int: ...
    def last_price(self) -> int: ...
    def volume(self) -> int: ...
    def depth(self, levels: int = 10) -> tuple[np.ndarray, np.ndarray]: ...
    def queue(self, side: int, price: int) -> np.ndarray: ...
    def order(self, order_id: int) -> dict[str, int] | None: ...
    @property
    def accounts(self) -> np.ndarray: ...
    def check_integrity(self) -> None: ...
