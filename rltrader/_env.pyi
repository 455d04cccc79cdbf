from collections.abc import Sequence
from enum import IntEnum

import numpy as np
from typing_extensions import disjoint_base

from rltrader._book import Books
from rltrader._flow import Flow
from rltrader.core.messages import EVENT_DTYPE as EVENT_DTYPE
from rltrader.core.messages import MESSAGE_DTYPE as MESSAGE_DTYPE

class ActionMode(IntEnum):
    DISCRETE = 0
    MARKET_MAKING = 1
    ORDER = 2
    CONTINUOUS = 3
    EXECUTION = 4

class OrderOp(IntEnum):
    ORDER_HOLD = 0
    ORDER_BUY = 1
    ORDER_SELL = 2
    ORDER_CANCEL = 3
    ORDER_REPLACE = 4
    N_ORDER_OPS = 5

class RewardKind(IntEnum):
    PNL = 0
    DIFFERENTIAL_SHARPE = 1

class Valuation(IntEnum):
    LIQUIDATION = 0
    MID = 1

class Layout(IntEnum):
    MAX_OFFSETS = 8
    MAX_ORDERS = 16
    MARKET_EXTRA = 8
    AGENT_FEATURES = 10
    SLOT_FEATURES = 4
    ORDER_FIELDS = 5
    CONTINUOUS_FIELDS = 4
    EXECUTION_FEATURES = 3
    MESSAGES_PER_AGENT_EXTRA = 2

def copy_actions(src: np.ndarray, out: np.ndarray, high: np.ndarray) -> int: ...

@disjoint_base
class EnvKernel:
    books: Books
    buffers: dict[str, np.ndarray]
    messages: np.ndarray
    known: np.ndarray
    events: np.ndarray
    agent_arrays: dict[str, np.ndarray]
    book_arrays: dict[str, np.ndarray]
    outbox: dict[str, np.ndarray]
    def __init__(
        self,
        books: Books,
        order_qty: np.ndarray,
        position_limit: np.ndarray,
        size_class: np.ndarray,
        latency_ns: np.ndarray,
        actions: np.ndarray,
        obs: np.ndarray,
        rewards: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        final_obs: np.ndarray,
        *,
        n_envs: int,
        n_agents: int,
        first_owner: int,
        depth: int,
        n_slots: int,
        action_mode: int,
        reward_kind: int,
        valuation: int,
        liquidate: bool,
        return_lag: int,
        scan_ticks: int,
        horizon: int,
        id_base: int,
        dt_ns: int,
        jitter_ns: int,
        seed: int | np.random.SeedSequence,
        qty_scale: float,
        price_scale: float,
        pnl_scale: float,
        running_penalty: float,
        terminal_penalty: float,
        sharpe_eta: float,
        flow_alpha: float,
        limit_offsets: Sequence[int],
        quote_offsets: Sequence[int],
        quote_sizes: Sequence[float],
        order_offsets: Sequence[int] = ...,
        rates: Sequence[float] = ...,
        parent_lots: np.ndarray | None = ...,
        day_open_ns: int = ...,
        day_ns: int = ...,
        mark_parent: bool = ...,
    ) -> None: ...
    def rebind(self, books: Books) -> None: ...
    @property
    def obs_dim(self) -> int: ...
    @property
    def id_base(self) -> int: ...
    @property
    def delay(self) -> int: ...
    def act(self, timestamp: int) -> int: ...
    def advance(self) -> None: ...
    def settle(self, timestamp: int) -> int: ...
    def observe(self, truncate: bool = False) -> int: ...
    def cancel_orders(self, timestamp: int, every: bool = False) -> int: ...
    def begin(self, every: bool = False) -> None: ...
    def submit(self, n: int) -> None: ...
    def step(self, timestamp: int, flow: object, group: int = ...) -> int: ...
    def reset(self, timestamp: int) -> None: ...

@disjoint_base
class GroupStep:
    kernels: tuple[EnvKernel, ...]
    flow: Flow
    def __init__(self, kernels: Sequence[EnvKernel], flow: Flow) -> None: ...
    def step(self, timestamp: int) -> int: ...
