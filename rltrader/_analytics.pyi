from collections.abc import Sequence
from enum import IntEnum
from typing import final

import numpy as np

class MdKind(IntEnum):
    MD_LEVEL = 1
    MD_DELTA = 2
    MD_TRADE = 3
    MD_CLEAR = 4

@final
class FeatureKernel:
    level_price: np.ndarray
    level_qty: np.ndarray
    level_n: np.ndarray
    books_array: np.ndarray
    bars_array: np.ndarray
    ring_array: np.ndarray
    intervals: tuple[int, ...]
    counters_array: np.ndarray
    n_books: int
    n_intervals: int
    window: int
    capacity: int
    sample_ns: int
    next_sample: int
    max_gap: int
    started: bool
    def __init__(
        self,
        n_books: int,
        intervals_ns: Sequence[int],
        sample_ns: int,
        window: int = 60,
        capacity: int = 8192,
        max_gap: int = 1000000,
    ) -> None: ...
    @staticmethod
    def record_sizes() -> tuple[int, int, int, int]: ...
    @property
    def counters(self) -> dict[str, int]: ...
    def process_events(
        self, events: np.ndarray, start: int, bars: np.ndarray, samples: np.ndarray
    ) -> tuple[int, int, int, int]: ...
    def process_records(
        self, records: np.ndarray, start: int, bars: np.ndarray, samples: np.ndarray
    ) -> tuple[int, int, int, int]: ...
    def flush(
        self, now_ns: int, bars: np.ndarray, samples: np.ndarray
    ) -> tuple[int, int, int]: ...
    def snapshot(
        self, t: int, prices: np.ndarray, qtys: np.ndarray, bars: np.ndarray,
        samples: np.ndarray,
    ) -> tuple[int, int, int]: ...
    def open_bar(self, book: int, k: int, out: np.ndarray) -> bool: ...
    def last_trade(self, book: int) -> tuple[int, int, int, int] | None: ...
    def top_levels(self, book: int, n: int) -> tuple[np.ndarray, np.ndarray]: ...
