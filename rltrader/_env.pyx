# cython: language_level=3
"""Compiled kernel of the batched RL environment (:mod:`rltrader.envs.batched`).

``EnvKernel`` drives ``n_agents`` learning agents in each of ``n_envs`` books of one
``Books``: the agents of book ``e`` are owners ``first_owner .. first_owner + n_agents - 1``
of that book. Buffers (actions, observations, rewards, terminated, truncated, final
observations, the agents' message batch) are bound once at construction; every phase below
reads and writes them in place, inside ``nogil`` loops, with no Python object per agent.

A step, as :meth:`EnvKernel.step` runs it for a simulated market (a hybrid replay runs the
same phases from Python, with the replay in place of the core call and the flow):

1. ``act``: every agent's action becomes core messages (limit, market, replace, cancel),
   sent at a uniformly random time within the step and arriving ``latency_ns`` (plus
   jitter) later, never before the agent's previous decision: they wait in the *outbox*
   (``_env_arrival.pxi``), a delay line of cells per book and arrival step.
2. ``merge``: per book, the decisions arriving in this step, the agents' and the
   background traders' (``Flow.decide_range`` without its own shuffle), are put in the
   order of their arrival times, which are random: a seeded order per book, never by row.
   One core call runs them (``Books._run_known``: known arena slots in, where new orders
   rested out).
3. ``advance``: per book, the mid history and the trade-flow imbalance are updated and the
   episode clock ticks; books whose episode reaches the horizon are *ending*.
4. ``settle``: the agents of ending books withdraw their orders (in flight too) and, with
   ``liquidate``, flatten their account's position with market orders, which go through
   the core at once; the episode's last observation sees the book without them (what a
   carried position is worth then is the next episode's baseline, exactly).
5. ``observe``: observations, rewards (the change of the account's value: cash plus what
   liquidating the position would fetch) and done flags of every agent; the rows of
   ending books are also copied to the final observations.
6. ``begin``: ending books start a new episode at once (same-step auto-reset): the agents'
   orders are withdrawn, the value baseline is the account's (a carried position is
   valued, never hidden), and their rows of the observation buffer are overwritten with
   the new episode's first observation.

``step`` with the flow of the same books runs the phases per group of ``BOOK_GROUP``
books (``_step_books``), so that a group's data stays in cache across its phases.

Agents' orders are cached per slot: a new order's arena slot is where the core reports it
came to rest (``locate``; arena slots never move while an order lives), and the arena
is read again only for agents whose account volume moved (a fill). Which slots hold an
order is also a bit mask per agent (``slot_mask``), so that the loops over an agent's
orders visit those alone. The queue ahead of an
agent's nearest order comes from its level's FIFO, walked again only when the nearest
order changed or its level lost or reduced an order since (the level's ``removals``
count, or the window moved); positions and cash come from the core's per-owner accounts
(fees included).
"""

cimport cython
cimport numpy as cnp
from libc.math cimport ceil, floor, llround, sqrt
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

from rltrader._book cimport (
    Account, BookState, Books, Core, Event, Level, Message, Order, find_order,
    BUY, SELL, LIMIT, MARKET, CANCEL, REPLACE, GTC, IOC, EMPTY_BID, EMPTY_ASK, NO_SLOT,
    MAX_PRICE, RESTING, BOOK_FEE, prefetch,
)
from rltrader._flow cimport Flow, State as FlowState
from rltrader._random cimport next_u64, uniform

cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil
    int __builtin_ctzll(unsigned long long) nogil

from operator import index

import numpy as np

from rltrader.core.messages import EVENT_DTYPE, MESSAGE_DTYPE

cnp.import_array()


cpdef enum ActionMode:
    DISCRETE = 0          # one Discrete action: hold, limit at offsets, market, cancel all
    MARKET_MAKING = 1     # MultiDiscrete (bid offset, ask offset, size): one quote per side
    ORDER = 2             # MultiDiscrete (op, price offset, size, time in force, slot): any
                          # own order: new (any TIF, may cross), cancel or replace a slot's
    CONTINUOUS = 3        # Box (bid offset, ask offset, bid size, ask size), float64
    EXECUTION = 4         # Discrete: wait, or a child order of a parent order (market or at
                          # the touch) at a rate; reward: implementation shortfall

cpdef enum OrderOp:
    ORDER_HOLD = 0
    ORDER_BUY = 1         # a new limit buy into the slot (its old order cancelled first)
    ORDER_SELL = 2
    ORDER_CANCEL = 3      # cancel the slot's order
    ORDER_REPLACE = 4     # move the slot's order (same side) to the offset and size
    N_ORDER_OPS = 5

cpdef enum RewardKind:
    PNL = 0                   # change of the episode's value (docs/envs.md), minus penalties
    DIFFERENTIAL_SHARPE = 1   # Moody & Saffell's differential Sharpe ratio of those changes

cpdef enum Valuation:
    LIQUIDATION = 0       # what selling (buying back) the position into the book would fetch
    MID = 1               # position x mid (gameable: an agent can push the mid it is paid at)

cpdef enum Layout:
    MAX_OFFSETS = 8       # limit offsets, quote offsets and quote sizes (each)
    MAX_ORDERS = 16       # resting orders an agent may keep (n_slots)
    MARKET_EXTRA = 8      # after the 4 x depth level features: spread, 2 returns, imbalance,
                          # volatility, volume, last trade, time of day
    AGENT_FEATURES = 10   # inventory, pnl, orders, in flight, queue ahead, time left, size
                          # class, limited, lots bought and sold since the last step
    SLOT_FEATURES = 4     # ORDER mode, per order slot: price - mid, signed lots, in flight,
                          # lots queued ahead
    ORDER_FIELDS = 5      # ORDER mode: the action's columns
    CONTINUOUS_FIELDS = 4 # CONTINUOUS mode: the action's columns
    EXECUTION_FEATURES = 3  # EXECUTION mode: parent side, share left, move since arrival
    MESSAGES_PER_AGENT_EXTRA = 2   # per agent per decision: n_slots cancels + 2 messages


cdef enum:
    IN_FLIGHT = -2        # slot_arena of an order sent but not yet arrived at its book
    GROUP_BITS = 24       # low bits of an arrival key: the decision's index in its book's step
    KEY_BITS = 40         # high bits: its arrival time within the step, in 2^-40 steps


cdef struct Params:
    int32_t n_envs
    int32_t n_agents
    int32_t first_owner       # owner of agent 0 in every book
    int32_t depth             # price levels per side in the observation
    int32_t n_slots           # resting orders an agent may keep
    int32_t action_mode       # ActionMode
    int32_t reward_kind       # RewardKind
    int32_t valuation         # Valuation
    int32_t liquidate         # 1: flatten at the episode end, 0: carry the position
    int32_t n_offsets         # limit offsets (DISCRETE)
    int32_t n_quotes          # quote offsets (MARKET_MAKING); index n_quotes = no quote
    int32_t n_sizes           # quote sizes (MARKET_MAKING, ORDER)
    int32_t n_order_offsets   # price offsets (ORDER)
    int32_t n_rates           # child rates (EXECUTION)
    int32_t mark_parent       # EXECUTION: 1: the parent's unfilled lots are marked at what
                              # completing them now would cost (the "marked" reward)
    int32_t action_dims       # columns of the action array (1, 3 or ORDER_FIELDS)
    int32_t return_lag        # steps of the long return
    int32_t scan_ticks        # ticks beyond the touch searched for levels (features, value)
    int32_t obs_dim
    int32_t delay             # outbox cells: steps an agent decision may take to arrive + 1
    int32_t instant           # 1: no latency, no jitter (every decision arrives in the step
                              # it is sent: the arrival order is a uniform permutation)
    int32_t cell_groups       # decisions one outbox cell holds (delay x n_agents)
    int32_t n_ghosts          # orders per agent whose cancel may be in flight (n_slots x
                              # delay)
    int64_t cell_messages     # messages one outbox cell holds
    int64_t horizon           # steps per episode
    int64_t id_base           # agent order ids are id_base + a per-book counter
    int64_t dt_ns             # ns per step
    int64_t day_open_ns       # the session whose share has passed is ``time_of_day`` (a
    int64_t day_ns            # session after the other; day_ns 0: no clock, feature 0)
    int64_t jitter_ns         # an agent's latency is its own plus uniform [0, jitter_ns)
    int64_t limit_offsets[8]  # ticks behind the own-side touch (< 0: inside the spread)
    int64_t quote_offsets[8]
    int64_t order_offsets[8]  # ORDER: ticks behind the own-side touch; < 0 toward (and
                              # possibly through) the other side
    double quote_sizes[8]     # multiples of the agent's order size
    double rates[8]           # EXECUTION: a child is ceil(rate x lots left / steps left)
    double qty_scale          # lots: level sizes and the queue ahead are divided by it
    double price_scale        # ticks: level prices, the spread and returns are divided by it
    double pnl_scale          # ticks: the episode's PnL per lot of order size is divided by it
    double running_penalty    # reward per step per (position / order size)^2
    double terminal_penalty   # reward at the episode end per (position / order size)^2
    double sharpe_eta         # adaptation rate of the differential Sharpe ratio
    double flow_alpha         # EMA weight of the trade-flow imbalance per step


cdef struct Sink:               # where messages go: the batch or an outbox cell
    Message* messages
    int32_t* known            # per message: the arena slot of the order it addresses (or
                              # NO_SLOT) for the core's lookup; after the core call, where
                              # its new order came to rest (Books._run_known)
    int64_t* tags             # per message: the agent slot (a * n_slots + j) its new order
                              # fills, -1 for none
    int64_t* release          # per message, outbox cells only (else NULL): lots it frees
                              # when it arrives (a cancel's or a replaced order's; > 0 buy
                              # side, < 0 sell side)
    int64_t n
    bint direct               # the messages reach the book in this step's batch, never
                              # in flight (no latency: the step's cell is merged at once)


cdef struct Slot:               # one order an agent keeps: a struct (a slot's fields are read
                                # together, and an agent's held slots, the first few, share a
                                # line or two, where five parallel arrays took five lines)
    int64_t order_id          # live order id (0: free)
    int64_t price             # ticks (valid while order_id != 0)
    int64_t leaves            # lots
    int32_t arena             # the order's arena slot once found (NO_SLOT: not yet;
                              # IN_FLIGHT: not arrived)
    int8_t side


cdef struct State:
    Params p
    const Core* core
    # bound buffers
    const int64_t* actions    # [N, action_dims] (NULL in CONTINUOUS mode)
    const double* factions    # [N, CONTINUOUS_FIELDS] (CONTINUOUS mode, else NULL)
    float* obs                # [N, obs_dim]
    float* rewards            # [N]
    uint8_t* terminated       # [N]
    uint8_t* truncated        # [N]
    float* final_obs          # [N, obs_dim]
    Sink batch                # [batch_cap] the messages of one core call
    # per agent (N = n_envs * n_agents, agent a = env * n_agents + i)
    int64_t* order_qty        # lots per order
    int64_t* position_limit   # lots: |position| + open orders of a side stay within it
    double* log_size          # log of the size class
    int64_t* latency_ns       # ns from a decision's send time to its arrival at the book
    Slot* slots               # [N, n_slots] the agents' order slots (one struct per slot)
    int32_t* slot_next        # [N] next slot to reuse when all are taken
    uint32_t* slot_mask       # [N] bit j set: slot j holds an order (slot_id != 0); the
                              # slot loops visit these bits only (2.7 of 16 slots are held
                              # on average under random actions)
    int64_t* base_cash        # [N] account cash at the episode start, ticks x lots
    int64_t* base_position    # [N] account position at the episode start, lots
    int32_t* parent_side      # [N] EXECUTION: the parent order's side
    int64_t* parent_lots      # [N] EXECUTION: its lots (the carried position's unwind, or
                              # parent_default)
    int64_t* parent_default   # [N] EXECUTION: lots of a fresh parent
    double* arrival           # [N] EXECUTION: the mid at the episode start, ticks
    double* base_value        # [N] the value of the account's position then, ticks x lots
    double* prev_pnl          # [N] episode PnL at the last observation, ticks x lots
    double* sharpe_a          # [N] EMA of the reward's PnL change
    double* sharpe_b          # [N] EMA of its square
    int64_t* resting          # [N, 2] lots of open limit orders per side (0 buy, 1 sell),
                              # in flight included
    int64_t* inflight_ioc     # [N, 2] lots of market orders in flight per side
    int64_t* cancelling       # [N, 2] lots of orders whose cancel (or replace) is in flight:
                              # they may still fill until it arrives
    int32_t* n_ghost          # [N] such orders ("ghosts": still in the book, no longer in a
                              # slot); their own lots are not liquidity to the valuation
    int64_t* ghost_id         # [N, n_ghosts] order id (0: free entry)
    int64_t* ghost_price      # [N, n_ghosts] ticks
    int32_t* ghost_arena      # [N, n_ghosts] arena slot when known, else NO_SLOT
    int8_t* ghost_side        # [N, n_ghosts]
    int32_t* n_live           # [N] orders resting in the book
    int32_t* n_inflight       # [N] limit orders in flight
    double* limited           # [N] share of the lots of the last decision's orders that the
                              # position limit cut (0: none, 1: all)
    int64_t* last_arrival     # [N] ns: arrival time of the agent's last decision (FIFO)
    double* queue_ahead       # [N] lots ahead of the best order (-1: none)
    int64_t* queue_id         # [N] the order queue_ahead was walked for (0: none cached)
    int64_t* queue_base       # [N] its book's window base then, ticks
    uint32_t* queue_removals  # [N] its level's removal count then (Level.removals)
    int32_t* best_slot        # [N] arena slot of the order nearest its touch (NO_SLOT: none)
    int64_t* best_price       # [N] its price, ticks (valid while best_slot is not NO_SLOT)
    int64_t* seen_volume      # [N] the account's volume at the last refresh, lots
    int64_t* obs_volume       # [N] the account's volume at the last observation, lots
    int64_t* obs_position     # [N] its position then, lots
    # outbox: agent decisions on their way, one cell per (arrival step mod delay, book)
    Message* out_messages     # [delay, n_envs, cell_messages]
    int32_t* out_known        # [delay, n_envs, cell_messages]
    int64_t* out_tags         # [delay, n_envs, cell_messages]
    int64_t* out_release      # [delay, n_envs, cell_messages]
    int64_t* out_n            # [delay, n_envs] messages in the cell
    int32_t* out_groups       # [delay, n_envs] decisions in the cell
    int32_t* group_start      # [delay, n_envs, cell_groups] first message of each decision
    uint64_t* group_key       # [delay, n_envs, cell_groups] arrival time within the step
    uint64_t* keys            # [key_cap] scratch: one book's arrival keys
    uint64_t* keys_tmp        # [key_cap] scratch of the merge sort
    int64_t key_cap
    int64_t clock             # steps since construction (outbox cell of this step)
    # per book
    uint64_t* arrival_rng     # [n_envs, 4] xoshiro256** state: arrival times
    int64_t* next_id          # [n_envs]
    int64_t* episode_step     # [n_envs]
    uint8_t* ending           # [n_envs]
    double* mid               # [n_envs] ticks (the last defined mid when a side is empty)
    double* mid_hist          # [n_envs, return_lag + 1] ring of mids
    int64_t* prev_volume      # [n_envs] lots
    double* flow_signed       # [n_envs] EMA of signed traded lots (tick rule vs the mid)
    double* flow_total        # [n_envs] EMA of traded lots
    double* variance          # [n_envs] EMA of the squared one-step mid return, ticks^2
    # the book being observed (market_features writes them, the same book's observation
    # and valuation read them right after: one book's worth, in cache, not one per book)
    float* market             # [4 * depth + MARKET_EXTRA] its market features
    int64_t* levels           # [2, depth, 2] its observed levels (price in ticks, lots) of
                              # each side, for the liquidation value
    int32_t* n_levels         # [2] how many there are
    int64_t n_updates         # advance() calls (mid history ring position)
    int64_t now_ns            # the end of the step being observed, ns


include "_env_queue.pxi"
include "_env_sort.pxi"
include "_env_actions.pxi"
include "_env_arrival.pxi"
include "_env_observe.pxi"

# ---------------------------------------------------------------------------------------
# Python-facing class
# ---------------------------------------------------------------------------------------

#: ``last_arrival`` of an agent that has sent nothing yet
_NEVER = -(1 << 62)
#: the largest outbox the kernel allocates (the batch is about as large again); more
#: latency is refused with a message
_MAX_OUTBOX_BYTES = 1 << 29
#: the layout of ``Slot`` (checked against the struct's size at import)
_SLOT_DTYPE = np.dtype([("order_id", np.int64), ("price", np.int64), ("leaves", np.int64),
                       ("arena", np.int32), ("side", np.int8)], align=True)
if _SLOT_DTYPE.itemsize != sizeof(Slot):
    raise ImportError(f"_SLOT_DTYPE ({_SLOT_DTYPE.itemsize} bytes) does not match the Slot "
                      f"struct ({sizeof(Slot)} bytes)")


cdef object _bound(object a, object dtype, tuple shape, str name):
    if not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape \
            or not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous {np.dtype(dtype)} array "
                         f"of shape {shape}")
    return a


cdef object _copy(object a, object dtype, int64_t n, str name):
    a = np.ascontiguousarray(a, dtype=dtype)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    return a.copy()


def copy_actions(cnp.ndarray src, cnp.ndarray out, cnp.ndarray high):
    """Copy int64 actions ``src`` into ``out`` (both C-contiguous, shape ``(N,)`` or
    ``(N, d)``) if every value of column ``j`` lies in ``[0, high[j])``; returns -1, or
    the first row with a value outside (then ``out`` is left as it was). One pass, no
    temporaries: the fast path of ``rltrader.envs.batched.write_actions``."""
    cdef int64_t n = cnp.PyArray_DIM(out, 0), d = cnp.PyArray_SIZE(high), i, j
    cdef const int64_t* a
    cdef const int64_t* h
    cdef int64_t* o
    cdef int64_t bad = -1
    if (src.dtype != np.int64 or out.dtype != np.int64 or high.dtype != np.int64
            or not src.flags.c_contiguous or not out.flags.c_contiguous
            or not high.flags.c_contiguous or not out.flags.writeable
            or cnp.PyArray_SIZE(src) != n * d or cnp.PyArray_SIZE(out) != n * d):
        raise ValueError("copy_actions needs C-contiguous int64 arrays, src and out of "
                         "N x len(high) values")
    a = <const int64_t*>cnp.PyArray_DATA(src)
    h = <const int64_t*>cnp.PyArray_DATA(high)
    o = <int64_t*>cnp.PyArray_DATA(out)
    with nogil:
        for i in range(n):
            for j in range(d):
                if <uint64_t>a[i * d + j] >= <uint64_t>h[j]:
                    bad = i
                    break
            if bad >= 0:
                break
        if bad < 0:
            memcpy(o, a, n * d * sizeof(int64_t))
    return bad


cdef class EnvKernel:
    """The per-step phases of the batched environment over one ``Books`` (module docstring).

    Built by :class:`rltrader.envs.batched.BatchedMarketEnv`, which validates the
    configuration and owns the buffers.

    Parameters
    ----------
    books : Books
        The core; books ``[0, n_envs)``, agents are owners ``first_owner + i``.
    order_qty, position_limit : int64 arrays, shape (n_envs * n_agents,)
        Lots per order, and the bound on |position| plus the open orders of a side.
    size_class : float64 array, shape (n_envs * n_agents,)
    latency_ns : int64 array, shape (n_envs * n_agents,)
        ns from a decision's send time to its arrival at the book (>= 0).
    actions : int64 array (N,) (DISCRETE), (N, 3) (MARKET_MAKING) or (N, 5) (ORDER); float64
        (N, 4) (CONTINUOUS)
    obs, final_obs : float32 arrays (N, obs_dim)
    rewards : float32 array (N,)
    terminated, truncated : bool arrays (N,)
    n_envs, n_agents, first_owner, depth, n_slots, return_lag, scan_ticks, horizon, id_base : int
        Keyword-only, as the fields of ``Params`` (see the ``.pyx``); so are the rest.
    dt_ns, jitter_ns : int
        ns per step (> 0); the jitter added to every latency is uniform in
        ``[0, jitter_ns)``.
    seed : int or SeedSequence
        Seeds each book's generator of arrival times.
    action_mode : ActionMode
    reward_kind : RewardKind
    valuation : Valuation
    liquidate : bool
        Flatten the agents' positions at the episode end (else carry them, valued).
    qty_scale, price_scale, pnl_scale, running_penalty, terminal_penalty : float
    sharpe_eta, flow_alpha : float
    limit_offsets, quote_offsets : sequence of int
        Ticks, 1 to 8 values each.
    quote_sizes : sequence of float
        Multiples of the order size, 1 to 8 values.
    """

    cdef State s
    cdef readonly Books books
    cdef readonly object buffers
    cdef readonly object messages
    cdef readonly object known
    cdef object tags
    cdef readonly object events
    cdef readonly object agent_arrays
    cdef readonly object book_arrays
    cdef readonly object outbox

    def __init__(self, Books books, order_qty, position_limit, size_class, latency_ns,
                 actions, obs, rewards, terminated, truncated, final_obs, *, n_envs,
                 n_agents, first_owner, depth, n_slots, action_mode, reward_kind, valuation,
                 bint liquidate, return_lag, scan_ticks, horizon, id_base, dt_ns, jitter_ns,
                 seed, double qty_scale, double price_scale, double pnl_scale,
                 double running_penalty,
                 double terminal_penalty, double sharpe_eta, double flow_alpha,
                 limit_offsets, quote_offsets, quote_sizes, order_offsets=(0,),
                 rates=(1.0,), parent_lots=None, day_open_ns=0, day_ns=0,
                 bint mark_parent=False):
        cdef Params* p = &self.s.p
        cdef int64_t n, j
        # operator.index: a C int argument would silently truncate 2.5 to 2
        p.n_envs = index(n_envs)
        p.n_agents = index(n_agents)
        p.first_owner = index(first_owner)
        p.depth = index(depth)
        p.n_slots = index(n_slots)
        p.action_mode = index(action_mode)
        p.reward_kind = index(reward_kind)
        p.valuation = index(valuation)
        p.liquidate = liquidate
        p.mark_parent = mark_parent
        p.return_lag = index(return_lag)
        p.scan_ticks = index(scan_ticks)
        p.horizon = index(horizon)
        p.id_base = index(id_base)
        p.dt_ns = index(dt_ns)
        p.day_open_ns = index(day_open_ns)
        p.day_ns = index(day_ns)
        p.jitter_ns = index(jitter_ns)
        p.qty_scale = qty_scale
        p.price_scale = price_scale
        p.pnl_scale = pnl_scale
        p.running_penalty = running_penalty
        p.terminal_penalty = terminal_penalty
        p.sharpe_eta = sharpe_eta
        p.flow_alpha = flow_alpha
        p.obs_dim = 4 * p.depth + MARKET_EXTRA + AGENT_FEATURES
        if index(action_mode) == ORDER:         # the agent's own orders, slot by slot
            p.obs_dim += SLOT_FEATURES * index(n_slots)
        elif index(action_mode) == EXECUTION:   # the parent order
            p.obs_dim += EXECUTION_FEATURES
        if p.n_envs > books.core.n_books:
            raise ValueError(f"books has {books.core.n_books} books, fewer than n_envs="
                             f"{p.n_envs}")
        if p.first_owner + p.n_agents > books.core.n_owners:
            raise ValueError(f"books has {books.core.n_owners} owners per book; agents need "
                             f"[{p.first_owner}, {p.first_owner + p.n_agents})")
        if (not 2 <= p.n_slots <= MAX_ORDERS or p.depth < 1 or p.horizon < 1
                or p.return_lag < 1):
            raise ValueError(f"2 <= n_slots <= {MAX_ORDERS}, depth >= 1, horizon >= 1, "
                             "return_lag >= 1 needed")
        if (p.dt_ns < 1 or p.jitter_ns < 0 or not price_scale > 0 or not qty_scale > 0
                or not pnl_scale > 0 or p.day_ns < 0):
            raise ValueError("dt_ns >= 1, jitter_ns >= 0, price_scale, pnl_scale and "
                             "qty_scale > 0 needed")
        if p.valuation not in (LIQUIDATION, MID) or p.reward_kind not in (
                PNL, DIFFERENTIAL_SHARPE) or p.action_mode not in (
                DISCRETE, MARKET_MAKING, ORDER, CONTINUOUS, EXECUTION):
            raise ValueError("unknown valuation, reward_kind or action_mode")
        for name, values in (("limit_offsets", limit_offsets), ("quote_offsets", quote_offsets),
                             ("quote_sizes", quote_sizes), ("order_offsets", order_offsets)):
            if not 1 <= len(values) <= MAX_OFFSETS:
                raise ValueError(f"{name} must hold 1 to {MAX_OFFSETS} values")
        p.n_offsets = len(limit_offsets)
        p.n_quotes = len(quote_offsets)
        p.n_sizes = len(quote_sizes)
        for j in range(p.n_offsets):
            p.limit_offsets[j] = index(limit_offsets[j])
        for j in range(p.n_quotes):
            p.quote_offsets[j] = index(quote_offsets[j])
        for j in range(p.n_sizes):
            p.quote_sizes[j] = quote_sizes[j]
        p.n_order_offsets = len(order_offsets)
        for j in range(p.n_order_offsets):
            p.order_offsets[j] = index(order_offsets[j])
        if not 1 <= len(rates) <= MAX_OFFSETS or not all(r > 0 for r in rates):
            raise ValueError(f"rates must hold 1 to {MAX_OFFSETS} values > 0")
        p.n_rates = len(rates)
        for j in range(p.n_rates):
            p.rates[j] = rates[j]
        n = <int64_t>p.n_envs * p.n_agents
        p.action_dims = (1 if p.action_mode in (DISCRETE, EXECUTION) else
                         3 if p.action_mode == MARKET_MAKING else
                         ORDER_FIELDS if p.action_mode == ORDER else CONTINUOUS_FIELDS)
        a_shape = (int(n),) if p.action_dims == 1 else (int(n), p.action_dims)
        a_dtype = np.float64 if p.action_mode == CONTINUOUS else np.int64
        self.buffers = dict(
            actions=_bound(actions, a_dtype, a_shape, "actions"),
            obs=_bound(obs, np.float32, (n, p.obs_dim), "obs"),
            rewards=_bound(rewards, np.float32, (n,), "rewards"),
            terminated=_bound(terminated, np.bool_, (n,), "terminated"),
            truncated=_bound(truncated, np.bool_, (n,), "truncated"),
            final_obs=_bound(final_obs, np.float32, (n, p.obs_dim), "final_obs"),
        )
        self.agent_arrays = dict(
            order_qty=_copy(order_qty, np.int64, n, "order_qty"),
            position_limit=_copy(position_limit, np.int64, n, "position_limit"),
            log_size=np.log(_copy(size_class, np.float64, n, "size_class")),
            latency_ns=_copy(latency_ns, np.int64, n, "latency_ns"),
            slots=np.zeros((n, p.n_slots), dtype=_SLOT_DTYPE),
            slot_next=np.zeros(n, dtype=np.int32),
            slot_mask=np.zeros(n, dtype=np.uint32),
            base_cash=np.zeros(n, dtype=np.int64),
            base_position=np.zeros(n, dtype=np.int64),
            parent_side=np.zeros(n, dtype=np.int32),
            parent_lots=np.zeros(n, dtype=np.int64),
            parent_default=_copy(order_qty if parent_lots is None else parent_lots,
                                 np.int64, n, "parent_lots"),
            arrival=np.zeros(n),
            base_value=np.zeros(n),
            prev_pnl=np.zeros(n),
            sharpe_a=np.zeros(n),
            sharpe_b=np.zeros(n),
            resting=np.zeros((n, 2), dtype=np.int64),
            inflight_ioc=np.zeros((n, 2), dtype=np.int64),
            cancelling=np.zeros((n, 2), dtype=np.int64),
            n_live=np.zeros(n, dtype=np.int32),
            n_inflight=np.zeros(n, dtype=np.int32),
            limited=np.zeros(n),
            last_arrival=np.full(n, _NEVER, dtype=np.int64),
            queue_ahead=np.zeros(n),
            queue_id=np.zeros(n, dtype=np.int64),
            queue_base=np.zeros(n, dtype=np.int64),
            queue_removals=np.zeros(n, dtype=np.uint32),
            best_slot=np.zeros(n, dtype=np.int32),
            best_price=np.zeros(n, dtype=np.int64),
            seen_volume=np.zeros(n, dtype=np.int64),
            obs_volume=np.zeros(n, dtype=np.int64),
            obs_position=np.zeros(n, dtype=np.int64),
        )
        ag = self.agent_arrays
        slots = ag["slots"]
        slots["arena"] = NO_SLOT
        # each field as an [N, n_slots] view (what tests and tools read)
        ag.update(slot_id=slots["order_id"], slot_arena=slots["arena"],
                  slot_price=slots["price"], slot_leaves=slots["leaves"],
                  slot_side=slots["side"])
        if np.any(ag["order_qty"] < 1) or np.any(ag["position_limit"] < 1) \
                or not np.all(np.isfinite(ag["log_size"])):
            raise ValueError("order_qty, position_limit >= 1 and size_class > 0 needed")
        if np.any(ag["latency_ns"] < 0):
            raise ValueError("latency_ns must be >= 0")
        # outbox cells: a decision arrives at most (dt - 1 + latency + jitter) // dt steps
        # after the step it was sent in
        p.delay = int((p.dt_ns - 1 + int(ag["latency_ns"].max()) + p.jitter_ns) // p.dt_ns
                      + 1)
        if p.delay * (p.n_agents + 1) >= (1 << 20):
            raise ValueError(f"latencies of up to {p.delay - 1} steps for {p.n_agents} agents "
                             "per book need too large an outbox (delay x agents < 2**20)")
        p.instant = p.delay == 1 and p.jitter_ns == 0 and not np.any(ag["latency_ns"])
        p.cell_groups = p.delay * p.n_agents
        p.n_ghosts = p.delay * p.n_slots
        ag.update(n_ghost=np.zeros(n, dtype=np.int32),
                  ghost_id=np.zeros((n, p.n_ghosts), dtype=np.int64),
                  ghost_price=np.zeros((n, p.n_ghosts), dtype=np.int64),
                  ghost_arena=np.full((n, p.n_ghosts), NO_SLOT, dtype=np.int32),
                  ghost_side=np.zeros((n, p.n_ghosts), dtype=np.int8))
        p.cell_messages = <int64_t>p.cell_groups * (p.n_slots + MESSAGES_PER_AGENT_EXTRA)
        cells = p.delay * p.n_envs
        # the outbox grows with delay^2 (delay cells, each for delay decisions per agent)
        outbox_bytes = cells * p.cell_messages * (MESSAGE_DTYPE.itemsize + 4 + 8 + 8)
        if outbox_bytes > _MAX_OUTBOX_BYTES:
            raise ValueError(f"a latency of up to {p.delay - 1} steps for {p.n_envs} x "
                             f"{p.n_agents} agents needs a {outbox_bytes / 2**30:.1f} GiB "
                             f"outbox (at most {_MAX_OUTBOX_BYTES / 2**20:.0f} MiB): use "
                             "fewer steps of latency (or longer steps)")
        self.outbox = dict(
            messages=np.zeros(cells * p.cell_messages, dtype=MESSAGE_DTYPE),
            known=np.full(cells * p.cell_messages, NO_SLOT, dtype=np.int32),
            tags=np.full(cells * p.cell_messages, -1, dtype=np.int64),
            release=np.zeros(cells * p.cell_messages, dtype=np.int64),
            n=np.zeros(cells, dtype=np.int64),
            groups=np.zeros(cells, dtype=np.int32),
            group_start=np.zeros(cells * p.cell_groups, dtype=np.int32),
            group_key=np.zeros(cells * p.cell_groups, dtype=np.uint64),
        )
        if not isinstance(seed, np.random.SeedSequence):
            seed = np.random.SeedSequence(seed)
        rng_state = seed.generate_state(4 * p.n_envs, np.uint64)
        rng_state = rng_state.reshape(p.n_envs, 4)
        rng_state[np.all(rng_state == 0, axis=1), 0] = 1     # xoshiro's one bad state
        self.book_arrays = dict(
            arrival_rng=rng_state,
            next_id=np.zeros(p.n_envs, dtype=np.int64),
            episode_step=np.zeros(p.n_envs, dtype=np.int64),
            ending=np.zeros(p.n_envs, dtype=np.uint8),
            mid=np.full(p.n_envs, np.nan),
            mid_hist=np.zeros((p.n_envs, p.return_lag + 1)),
            prev_volume=np.zeros(p.n_envs, dtype=np.int64),
            flow_signed=np.zeros(p.n_envs),
            flow_total=np.zeros(p.n_envs),
            variance=np.zeros(p.n_envs),
            market=np.zeros(4 * p.depth + MARKET_EXTRA, dtype=np.float32),
            levels=np.zeros((2, p.depth, 2), dtype=np.int64),
            n_levels=np.zeros(2, dtype=np.int32),
        )
        # the batch of one core call: the merged arrivals of a group of books, or what the
        # env does for every book at once (withdraw orders, flatten positions)
        self.events = None
        self._scratch(p.n_envs * (p.delay * p.cell_messages + p.n_agents * (p.n_slots + 1)),
                      p.cell_groups)
        self._bind(books)

    def _scratch(self, int64_t batch, int64_t keys):
        """Size the batch to ``batch`` messages and the key scratch to ``keys`` (at least;
        contents kept). Called before a step whose flow may hand over more."""
        cdef State* s = &self.s
        if self.messages is None or self.messages.shape[0] < batch:
            old = self.messages
            self.messages = np.zeros(batch, dtype=MESSAGE_DTYPE)
            self.known = np.full(batch, NO_SLOT, dtype=np.int32)
            self.tags = np.full(batch, -1, dtype=np.int64)
            if old is not None:
                self.messages[:old.shape[0]] = old
            # events: room for a few per message, so that the core's cheap bound on a
            # message's events (6 + the book's resting orders) rarely falls through to
            # the exact count
            self.events = np.zeros(max(4096, 4 * batch), dtype=EVENT_DTYPE)
            s.batch.messages = <Message*>cnp.PyArray_DATA(self.messages)
            s.batch.known = <int32_t*>cnp.PyArray_DATA(self.known)
            s.batch.tags = <int64_t*>cnp.PyArray_DATA(self.tags)
        if keys >= (1 << GROUP_BITS):
            raise ValueError(f"{keys} decisions may reach one book in a step; at most "
                             f"{(1 << GROUP_BITS) - 1}")
        if s.key_cap < keys:
            self.book_arrays["keys"] = np.zeros(keys, dtype=np.uint64)
            self.book_arrays["keys_tmp"] = np.zeros(keys, dtype=np.uint64)
            s.keys = <uint64_t*>cnp.PyArray_DATA(self.book_arrays["keys"])
            s.keys_tmp = <uint64_t*>cnp.PyArray_DATA(self.book_arrays["keys_tmp"])
            s.key_cap = keys

    cdef _bind(self, Books books):
        cdef State* s = &self.s
        b, ag, bk, ob = self.buffers, self.agent_arrays, self.book_arrays, self.outbox
        self.books = books
        s.core = &books.core
        s.actions = NULL
        s.factions = NULL
        if s.p.action_mode == CONTINUOUS:
            s.factions = <const double*>cnp.PyArray_DATA(b["actions"])
        else:
            s.actions = <const int64_t*>cnp.PyArray_DATA(b["actions"])
        s.obs = <float*>cnp.PyArray_DATA(b["obs"])
        s.rewards = <float*>cnp.PyArray_DATA(b["rewards"])
        s.terminated = <uint8_t*>cnp.PyArray_DATA(b["terminated"])
        s.truncated = <uint8_t*>cnp.PyArray_DATA(b["truncated"])
        s.final_obs = <float*>cnp.PyArray_DATA(b["final_obs"])
        s.order_qty = <int64_t*>cnp.PyArray_DATA(ag["order_qty"])
        s.position_limit = <int64_t*>cnp.PyArray_DATA(ag["position_limit"])
        s.log_size = <double*>cnp.PyArray_DATA(ag["log_size"])
        s.latency_ns = <int64_t*>cnp.PyArray_DATA(ag["latency_ns"])
        s.slots = <Slot*>cnp.PyArray_DATA(ag["slots"])
        s.slot_next = <int32_t*>cnp.PyArray_DATA(ag["slot_next"])
        s.slot_mask = <uint32_t*>cnp.PyArray_DATA(ag["slot_mask"])
        s.base_cash = <int64_t*>cnp.PyArray_DATA(ag["base_cash"])
        s.base_position = <int64_t*>cnp.PyArray_DATA(ag["base_position"])
        s.parent_side = <int32_t*>cnp.PyArray_DATA(ag["parent_side"])
        s.parent_lots = <int64_t*>cnp.PyArray_DATA(ag["parent_lots"])
        s.parent_default = <int64_t*>cnp.PyArray_DATA(ag["parent_default"])
        s.arrival = <double*>cnp.PyArray_DATA(ag["arrival"])
        s.base_value = <double*>cnp.PyArray_DATA(ag["base_value"])
        s.prev_pnl = <double*>cnp.PyArray_DATA(ag["prev_pnl"])
        s.sharpe_a = <double*>cnp.PyArray_DATA(ag["sharpe_a"])
        s.sharpe_b = <double*>cnp.PyArray_DATA(ag["sharpe_b"])
        s.resting = <int64_t*>cnp.PyArray_DATA(ag["resting"])
        s.inflight_ioc = <int64_t*>cnp.PyArray_DATA(ag["inflight_ioc"])
        s.cancelling = <int64_t*>cnp.PyArray_DATA(ag["cancelling"])
        s.n_ghost = <int32_t*>cnp.PyArray_DATA(ag["n_ghost"])
        s.ghost_id = <int64_t*>cnp.PyArray_DATA(ag["ghost_id"])
        s.ghost_price = <int64_t*>cnp.PyArray_DATA(ag["ghost_price"])
        s.ghost_arena = <int32_t*>cnp.PyArray_DATA(ag["ghost_arena"])
        s.ghost_side = <int8_t*>cnp.PyArray_DATA(ag["ghost_side"])
        s.n_live = <int32_t*>cnp.PyArray_DATA(ag["n_live"])
        s.n_inflight = <int32_t*>cnp.PyArray_DATA(ag["n_inflight"])
        s.limited = <double*>cnp.PyArray_DATA(ag["limited"])
        s.last_arrival = <int64_t*>cnp.PyArray_DATA(ag["last_arrival"])
        s.queue_ahead = <double*>cnp.PyArray_DATA(ag["queue_ahead"])
        s.queue_id = <int64_t*>cnp.PyArray_DATA(ag["queue_id"])
        s.queue_base = <int64_t*>cnp.PyArray_DATA(ag["queue_base"])
        s.queue_removals = <uint32_t*>cnp.PyArray_DATA(ag["queue_removals"])
        s.best_slot = <int32_t*>cnp.PyArray_DATA(ag["best_slot"])
        s.best_price = <int64_t*>cnp.PyArray_DATA(ag["best_price"])
        s.seen_volume = <int64_t*>cnp.PyArray_DATA(ag["seen_volume"])
        s.obs_volume = <int64_t*>cnp.PyArray_DATA(ag["obs_volume"])
        s.obs_position = <int64_t*>cnp.PyArray_DATA(ag["obs_position"])
        s.out_messages = <Message*>cnp.PyArray_DATA(ob["messages"])
        s.out_known = <int32_t*>cnp.PyArray_DATA(ob["known"])
        s.out_tags = <int64_t*>cnp.PyArray_DATA(ob["tags"])
        s.out_release = <int64_t*>cnp.PyArray_DATA(ob["release"])
        s.out_n = <int64_t*>cnp.PyArray_DATA(ob["n"])
        s.out_groups = <int32_t*>cnp.PyArray_DATA(ob["groups"])
        s.group_start = <int32_t*>cnp.PyArray_DATA(ob["group_start"])
        s.group_key = <uint64_t*>cnp.PyArray_DATA(ob["group_key"])
        s.arrival_rng = <uint64_t*>cnp.PyArray_DATA(bk["arrival_rng"])
        s.next_id = <int64_t*>cnp.PyArray_DATA(bk["next_id"])
        s.episode_step = <int64_t*>cnp.PyArray_DATA(bk["episode_step"])
        s.ending = <uint8_t*>cnp.PyArray_DATA(bk["ending"])
        s.mid = <double*>cnp.PyArray_DATA(bk["mid"])
        s.mid_hist = <double*>cnp.PyArray_DATA(bk["mid_hist"])
        s.prev_volume = <int64_t*>cnp.PyArray_DATA(bk["prev_volume"])
        s.flow_signed = <double*>cnp.PyArray_DATA(bk["flow_signed"])
        s.flow_total = <double*>cnp.PyArray_DATA(bk["flow_total"])
        s.variance = <double*>cnp.PyArray_DATA(bk["variance"])
        s.market = <float*>cnp.PyArray_DATA(bk["market"])
        s.levels = <int64_t*>cnp.PyArray_DATA(bk["levels"])
        s.n_levels = <int32_t*>cnp.PyArray_DATA(bk["n_levels"])

    def rebind(self, Books books):
        """Use a fresh ``Books`` (a data source that rebuilt its book): every agent order
        and decision in flight is forgotten, the mid history and flow statistics start
        over."""
        self._bind(books)
        ag, ob = self.agent_arrays, self.outbox
        ag["slot_id"][:] = 0
        ag["slot_mask"][:] = 0
        ag["queue_id"][:] = 0
        ag["inflight_ioc"][:] = 0
        ag["cancelling"][:] = 0
        ag["n_ghost"][:] = 0
        ag["ghost_id"][:] = 0
        ag["last_arrival"][:] = _NEVER
        ob["n"][:] = 0
        ob["groups"][:] = 0
        for name in ("prev_volume", "flow_signed", "flow_total", "mid_hist", "variance"):
            self.book_arrays[name][:] = 0
        self.book_arrays["mid"][:] = np.nan
        self.s.n_updates = 0

    @property
    def obs_dim(self):
        return self.s.p.obs_dim

    @property
    def id_base(self):
        """The first of this kernel's order ids (its agents' orders count up from it)."""
        return self.s.p.id_base

    @property
    def delay(self):
        """Outbox cells: 1 + the most steps a decision may take to arrive."""
        return self.s.p.delay

    # ---- phases (a data source that is not a Books runs them from Python) -------------

    # Every phase reads the core's arrays (some without the GIL): each holds the Books
    # (``Books._enter``) while it runs, so that another thread's call cannot resize the
    # arena under it; the core calls inside re-enter from the same thread.

    def act(self, int64_t timestamp):
        """Every agent decides (the step began at ``timestamp``); the agents' decisions
        that arrive in this step go into ``self.messages[:n]``, in arrival order; returns
        ``n``. (Background flow, if any, is not merged in: ``step`` does that.)"""
        cdef int64_t n
        self.s.now_ns = timestamp + self.s.p.dt_ns
        self.books._enter()
        try:
            with nogil:
                n = act_all(&self.s, timestamp)
        finally:
            self.books._leave()
        return n

    def advance(self):
        """After the market moved: mid history, flow imbalance, episode and outbox clocks."""
        self.books._enter()
        try:
            advance(&self.s)
        finally:
            self.books._leave()

    def settle(self, int64_t timestamp):
        """The withdrawals (and, with ``liquidate``, the flattening market orders) of
        ending books (``self.messages[:n]``); returns ``n``."""
        self.books._enter()
        try:
            return close_positions(&self.s, timestamp)
        finally:
            self.books._leave()

    def observe(self, bint truncate=False):
        """Observations, rewards and terminated/truncated and final observations; returns
        the number of ending books."""
        cdef int32_t n
        self.books._enter()
        try:
            with nogil:
                n = observe_all(&self.s, truncate)
        finally:
            self.books._leave()
        return n

    def cancel_orders(self, int64_t timestamp, bint every=False):
        """Withdraw every agent order of ending books (all books if ``every``): cancels in
        ``self.messages[:n]``, decisions in flight dropped; returns ``n``."""
        self.s.now_ns = timestamp
        self.books._enter()
        try:
            return withdraw_ending(&self.s, timestamp, every)
        finally:
            self.books._leave()

    def begin(self, bint every=False):
        """Start new episodes for ending books (all if ``every``) after their orders were
        withdrawn; writes their first observations into ``obs``."""
        self.books._enter()
        try:
            begin_episodes(&self.s, every)
        finally:
            self.books._leave()

    def submit(self, int64_t n):
        """Run ``self.messages[:n]`` through the core."""
        if not 0 <= n <= self.messages.shape[0]:
            raise ValueError(f"n must be in [0, {self.messages.shape[0]}], got {n}")
        self._submit(n)

    cdef int _submit(self, int64_t n) except -1:
        """Run ``self.messages[:n]`` through the core, then locate the agents' new
        orders in it."""
        cdef int64_t done = 0, consumed, written
        cdef cnp.ndarray events
        while done < n:         # the agents' order ids (id_base + a per-book counter) are
            # never reused and no other sender uses them: fresh
            events = self.events
            self.books._run_known(self.s.batch.messages + done, self.s.batch.known + done,
                                  True, n - done, done, <Event*>cnp.PyArray_DATA(events),
                                  cnp.PyArray_DIM(events, 0), &consumed, &written)
            if consumed == 0 and written == 0:
                self.events = np.zeros(2 * cnp.PyArray_DIM(events, 0), dtype=EVENT_DTYPE)
            done += consumed
        self.s.batch.n = n
        locate(&self.s, &self.s.batch)
        return 0

    # ---- the whole step over a simulated market -------------------------------------

    def step(self, int64_t timestamp, flow, int32_t group=BOOK_GROUP):
        """One step: act, merge with the background ``flow`` (``Flow`` or None) and run,
        settle, observe, auto-reset ending books. Returns the number of ending books.
        With the flow of exactly these books, per group of ``group`` books
        (``_step_books``; the results do not depend on ``group``), the agents' and the
        background's decisions merged in arrival order; with another flow, the agents'
        arrivals run first, then ``flow.run(1)``."""
        cdef int32_t books_per_group
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group}")
        self.books._enter()
        try:
            if (isinstance(flow, Flow) and (<Flow>flow).books is self.books
                    and (<Flow>flow).s.n_books == self.s.p.n_envs):
                books_per_group = min(group, self.s.p.n_envs)
                self._scratch(books_per_group
                              * ((<Flow>flow).s.bucket_cap + self.s.p.cell_messages),
                              (<Flow>flow).s.bucket_cap + self.s.p.cell_groups)
                if (<Flow>flow).events_array.shape[0] < self.events.shape[0]:
                    (<Flow>flow).events_array = np.zeros_like(self.events)  # the merged batch
                return self._step_books(timestamp, <Flow>flow, books_per_group)
            return self._step(timestamp, flow)
        finally:
            self.books._leave()

    cdef int32_t _step(self, int64_t timestamp, flow) except -1:
        """``step`` phase by phase, with any data source (the Books held)."""
        cdef int32_t ended
        self._submit(self.act(timestamp))
        if flow is not None:
            flow.run(1)
        advance(&self.s)
        self._submit(close_positions(&self.s, timestamp))
        with nogil:
            ended = observe_all(&self.s, False)
        if ended:
            self._submit(withdraw_ending(&self.s, timestamp, False))
            begin_episodes(&self.s, False)
        return ended

    cdef int32_t _step_books(self, int64_t timestamp, Flow flow, int32_t group) except -1:
        """``step`` run over groups of ``group`` books, every phase of a group before
        the next group, so that a group's data (small enough to stay in cache) is loaded
        once per step rather than once per phase, while each core call still holds enough
        messages to overlap their memory accesses. Books are independent, and each book
        goes through the same phases in the same order whatever the grouping."""
        cdef State* s = &self.s
        cdef int32_t first, stop, e, ending, ended = 0
        s.n_updates += 1                        # advance()'s once-per-step part
        s.now_ns = timestamp + s.p.dt_ns
        first = 0
        while first < s.p.n_envs:
            stop = min(first + group, s.p.n_envs)
            s.batch.n = 0
            for e in range(first, stop):
                if e + BOOK_AHEAD < stop:       # the next group's first books: below
                    prefetch_book(s, e + BOOK_AHEAD)
                if s.p.instant:                 # the group's cells (act_book_instant)
                    act_book_instant(s, e, e - first, timestamp)
                else:
                    act_book(s, e, timestamp)
            flow.decide_books(first, stop)
            for e in range(first, stop):
                merge_book(s, &flow.s, e, e - first if s.p.instant else this_cell(s, e),
                           &s.batch, s.p.instant)
            flow._run_batch(s.batch.messages, s.batch.known, True, s.batch.n)
            locate(s, &s.batch)
            s.batch.n = 0
            for e in range(first, stop):
                advance_book(s, e)
                if s.ending[e]:
                    withdraw_book(s, &s.batch, e, timestamp)
                    if s.p.liquidate or s.p.action_mode == EXECUTION:
                        flatten_book(s, &s.batch, e, timestamp)
            self._submit(s.batch.n)
            s.batch.n = 0
            ending = 0
            for e in range(first, stop):
                prefetch_book(s, e + BOOK_AHEAD)    # past stop: the next group's act
                ending += finish_book(s, e, False)   # withdrawn above
            if ending:
                ended += ending
                for e in range(first, stop):
                    if s.ending[e]:
                        begin_book(s, e)
            first = stop
        flow.end_step()
        s.clock += 1
        return ended

    def reset(self, int64_t timestamp):
        """Withdraw every agent order and start a new episode in every book."""
        self.books._enter()
        try:
            self._submit(withdraw_ending(&self.s, timestamp, True))
            begin_episodes(&self.s, True)
        finally:
            self.books._leave()


include "_env_groups.pxi"
