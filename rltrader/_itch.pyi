from enum import IntEnum

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

from rltrader._book import Books
from rltrader.core.messages import EVENT_DTYPE as EVENT_DTYPE
from rltrader.core.messages import MESSAGE_DTYPE as MESSAGE_DTYPE

TRADE_DTYPE: np.dtype
DIRECTORY_DTYPE: np.dtype
TRADING_ACTION_DTYPE: np.dtype
SYSTEM_EVENT_DTYPE: np.dtype
MESSAGE_LENGTHS: dict[bytes, int]

class ParseStatus(IntEnum):
    PARSED = 0
    END_OF_SESSION = 1
    UNKNOWN_TYPE = 2
    BAD_LENGTH = 3
    BAD_ORDER_REF = 4
    BAD_SIDE = 5
    BAD_TICK = 6
    BAD_SHARES = 7
    OUTPUT_FULL = 8

class WriteStatus(IntEnum):
    WRITTEN = 0
    BAD_OP = 1
    BAD_TIF = 2
    BAD_MESSAGE_SIDE = 3
    BAD_PRICE = 4
    BAD_QTY = 5
    BAD_ID = 6
    BAD_BOOK = 7
    BAD_TIMESTAMP = 8
    BAD_TRADE = 9
    WRITE_FULL = 10

class Counter(IntEnum):
    NOT_SELECTED = 0
    UNRESOLVED = 1
    EXECUTIONS_WHILE_HALTED = 2
    UNKNOWN_SKIPPED = 3
    N_COUNTERS = 4

@disjoint_base
class Parser:
    book_of_locate: npt.NDArray[np.int32]
    locate_of_book: npt.NDArray[np.int32]
    book_symbol_array: np.ndarray
    book_state_array: np.ndarray
    type_counts: npt.NDArray[np.int64]
    counters: npt.NDArray[np.int64]
    def __init__(
        self, symbols: list[bytes] | None = None, *, tick_size: int = 100,
        skip_unknown: bool = False,
    ) -> None: ...
    @property
    def n_books(self) -> int: ...
    def error(self) -> tuple[int, int, int, int]: ...
    def parse(
        self,
        data: bytes | bytearray | memoryview,
        base: int,
        messages: np.ndarray,
        trades: np.ndarray,
        directory: np.ndarray,
        actions: np.ndarray,
        system: np.ndarray,
    ) -> tuple[int, int, int, int, int, int, int]: ...

class FeedStatus(IntEnum):
    FED = 0
    FED_TO_END = 1
    FEED_BAD_RECORD = 2
    FEED_NEED_EVENTS = 3
    FEED_MISSING_BOOK = 4
    FEED_STOPPED = 5

@disjoint_base
class Rebuilder:
    messages: int
    trades: int
    reasons: npt.NDArray[np.int64]
    parse_status: int
    missing_book: int
    def __init__(
        self, parser: Parser, books: Books, events: np.ndarray, batch: int = 2048,
        slots: int = 0,
    ) -> None: ...
    def set_events(self, events: np.ndarray) -> None: ...
    def feed(self, data: bytes | bytearray | memoryview, base: int) -> tuple[int, int]: ...
    def produce(self, data: bytes | bytearray | memoryview, base: int) -> tuple[int, int]: ...
    def finish(self) -> None: ...
    def stop(self) -> None: ...
    def consume(self) -> int: ...

def encode(
    messages: np.ndarray,
    trades: np.ndarray,
    index_offset: int,
    locate_of_book: np.ndarray,
    symbols: np.ndarray,
    tick_size: int,
    match_number: int,
) -> tuple[int, npt.NDArray[np.uint8], int, int]: ...
