from collections.abc import Sequence
from typing import Any

import numpy as np
from typing_extensions import Self, disjoint_base

from rltrader._book import Books
from rltrader.core.messages import EVENT_DTYPE as EVENT_DTYPE
from rltrader.core.messages import MESSAGE_DTYPE as MESSAGE_DTYPE
from rltrader.sim.params import (
    FundamentalParams,
    LiquidityParams,
    MakerParams,
    MomentumParams,
    NoiseParams,
    ParentParams,
    SplitterParams,
    ValueParams,
)

COUNTER_NAMES: tuple[str, ...]

@disjoint_base
class Flow:
    books: Books
    rng_state: np.ndarray
    shuffle_state: np.ndarray
    common_state: np.ndarray
    common_z: np.ndarray
    meta_left: np.ndarray
    meta_side: np.ndarray
    next_id: np.ndarray
    fundamental: np.ndarray
    r_bar: np.ndarray
    ema: np.ndarray
    size_class: np.ndarray
    live: np.ndarray
    ring_pos: np.ndarray
    maker_mid: np.ndarray
    parent_array: np.ndarray
    progress_array: np.ndarray
    pending_array: np.ndarray
    pending_n: np.ndarray
    group_start: np.ndarray
    group_n: np.ndarray
    order_scratch: np.ndarray
    batch_array: np.ndarray
    events_array: np.ndarray
    counter_array: np.ndarray
    record: bool
    look_ahead: int
    def __init__(
        self,
        books: Books,
        n_traders: int,
        seeds: np.ndarray,
        r_bar: np.ndarray,
        size_class: np.ndarray,
        t0_ns: int,
        dt_ns: int,
        bucket_cap: int,
        record: bool = False,
        *,
        noise: NoiseParams,
        value: ValueParams,
        momentum: MomentumParams,
        maker: MakerParams,
        liquidity: LiquidityParams,
        splitter: SplitterParams,
        fundamental: FundamentalParams,
        parents: Sequence[ParentParams],
        copies: int | None = ...,
        first_owner: int = ...,
    ) -> None: ...
    @property
    def step(self) -> int: ...
    @property
    def n_traders(self) -> int: ...
    @property
    def counters(self) -> dict[str, int]: ...
    @property
    def parent_progress(self) -> np.ndarray: ...
    @property
    def message_log(self) -> np.ndarray: ...
    @property
    def event_log(self) -> np.ndarray: ...
    def state(self) -> dict[str, Any]: ...
    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self: ...
    def __reduce__(self) -> tuple[Any, ...]: ...
    def decide(self) -> np.ndarray: ...
    def run(self, n_steps: int) -> None: ...
