# cython: language_level=3
"""State layout of the background flow (``rltrader._flow``), shared with the env kernel
(``rltrader._env``), which advances the flow one book at a time inside its own step."""

from libc.stdint cimport int32_t, int64_t, uint64_t

from rltrader._book cimport Books, Core, Message


cdef struct Sizes:
    double min_lots         # scale of the Pareto size distribution, lots
    double alpha            # tail exponent (smaller: heavier tail)
    double max_lots         # cap, lots

cdef struct Noise:
    int32_t first           # owner of the first noise trader
    int32_t count
    int32_t latency         # steps between decision and arrival
    double rate             # wake-ups per trader per step
    double p_market         # share of wake-ups that send a market order
    double p_cancel         # share that cancel one of their resting orders
    int32_t ring            # resting orders a trader keeps (oldest cancelled when full)
    double depth_alpha      # limit price: ticks behind the touch, power law
    int64_t depth_max       # ticks
    Sizes size

cdef struct Value:
    int32_t first
    int32_t count
    int32_t latency
    double rate
    double obs_sd           # noise of a trader's view of the fundamental, ticks
    double threshold        # mispricing (ticks) beyond the touch that makes it take
    double passive_offset   # ticks from its estimate where it rests otherwise
    Sizes size

cdef struct Momentum:
    int32_t first
    int32_t count
    int32_t latency
    double rate
    double alpha_short      # EMA weight per step of the short average of the mid
    double alpha_long
    double threshold        # ticks: |short - long| that counts as a trend
    Sizes size

cdef struct Maker:
    int32_t first
    int32_t count
    int32_t latency
    double rate             # scheduled re-quotes per maker per step
    int32_t levels          # quotes per side
    int64_t spacing         # ticks between a maker's levels
    double half_spread      # ticks from the centre to its first level
    double qty              # lots per quote (times the size class)
    double skew             # ticks the centre moves per lot of inventory (against it)
    int64_t max_inventory   # lots: at |position| >= this it quotes one side only
    int64_t requote_ticks   # re-quote when the mid moved this far (0: schedule only)

cdef struct Liquidity:
    int32_t first
    int32_t count
    int32_t latency
    double rate
    double depth            # ticks: distance x from the anchor, density 2x / depth^2
    double price_weight     # anchor = (1 - w) fundamental + w EMA(mid)
    double alpha_anchor     # EMA weight per step of the anchor's average of the mid
    int32_t ring            # resting orders a trader keeps (oldest cancelled when full)
    Sizes size

cdef struct Splitter:
    int32_t first
    int32_t count
    int32_t latency
    double rate             # child orders per trader per step
    double alpha            # metaorder length tail: P(children >= n) = n^-alpha
    double max_children     # cap on a metaorder's length, child orders
    Sizes size              # child order size

cdef struct Fundamental:
    double kappa            # mean reversion per step
    double sigma            # ticks per step (standard deviation)
    double jump_rate        # jumps per step
    double jump_mean        # ticks (sign random)
    double jump_sd          # ticks
    double correlation      # of the diffusion shocks of one copy's symbols (a common factor)

cdef struct Arrivals:
    double lam              # expected arrivals per step (0: none, nothing drawn)
    double limit            # exp(-lam): where the inversion's running product stops (lam < 30)

cdef struct Parent:
    int32_t owner
    int32_t side
    int32_t pov             # 0: TWAP, 1: percentage of volume
    int32_t latency
    int64_t qty             # lots
    int64_t start           # step of the first child order
    int64_t end             # step after the last child order
    int64_t interval        # steps between child orders
    double participation    # POV: target share of the book's volume since start

cdef struct ParentState:
    double arrival_mid      # ticks, mid at the start step
    double end_mid          # ticks, mid at the end step (nan until then)
    int64_t volume0         # the book's volume at the start step, lots
    int64_t sent            # lots sent so far

cdef struct State:
    int32_t n_books
    int32_t n_traders       # background traders per book
    int32_t first_owner     # trader t is owner first_owner + t (0 in a simulated market)
    int32_t n_owners        # accounts per book in the core
    int32_t ring            # live-order slots per trader
    int32_t n_parents
    int32_t delay           # buckets in the delay line (max latency + 1)
    int32_t bucket_cap      # messages per book per bucket
    int64_t t0              # ns of step 0
    int64_t dt              # ns per step
    int64_t step            # next step to run
    int32_t now             # step % delay: the delay-line bucket that arrives in this step
    Noise noise
    Value value
    Momentum momentum
    Maker maker
    Liquidity liquidity
    Splitter splitter
    Fundamental fund
    Arrivals wake_noise     # wake-ups per step of each population (count * rate)
    Arrivals wake_value
    Arrivals wake_momentum
    Arrivals wake_liquidity
    Arrivals wake_splitter
    Arrivals jumps          # jumps of the fundamental per step
    uint64_t* rng           # [n_books, 4] every decision's draws
    int32_t copies          # books per symbol (book = symbol * copies + copy)
    uint64_t* common_rng    # [copies, 4] the common factor of the fundamentals' shocks
    double* common_z        # [copies] this step's common shock (drawn by symbol 0's book)
    uint64_t* shuffle_rng   # [n_books, 4] the arrival order (a separate stream, so that the
                            # decisions draw the same numbers whatever the book does)
    int64_t* next_id        # [n_books] next order id
    int64_t step_first_id   # the first id sent in this step by the book deciding now
    double* fundamental     # [n_books] ticks
    double* r_bar           # [n_books] ticks, long-run mean of the fundamental
    double* ema             # [n_books, 3] short, long (momentum) and anchor EMA of the mid
    int64_t* meta_left      # [n_books, splitter.count] child orders left in the metaorder
    int32_t* meta_side      # [n_books, splitter.count] its side
    double* size_class      # [n_books, n_traders] order-size multiplier
    int64_t* live           # [n_books, n_traders, ring] ids of resting orders (0: none)
    int32_t* ring_pos       # [n_books, n_traders] next ring slot
    double* maker_mid       # [n_books, maker.count] mid at the last quote
    Parent* parents         # [n_parents]
    ParentState* progress   # [n_books, n_parents]
    Message* pending        # [delay, n_books, bucket_cap]
    int32_t* pending_n      # [delay, n_books]
    int32_t* group_start    # [delay, n_books, bucket_cap] first message of each decision
    int32_t* group_n        # [delay, n_books] decisions in the bucket
    int32_t* order          # [bucket_cap] scratch: the shuffled order of the decisions
    Message* batch          # [n_books * bucket_cap]
    int64_t* counters       # [N_COUNTERS]
    const Core* core


cdef class Flow:
    cdef State s
    cdef readonly Books books
    cdef readonly object rng_state
    cdef readonly object shuffle_state
    cdef readonly object common_state
    cdef readonly object common_z
    cdef readonly object meta_left
    cdef readonly object meta_side
    cdef readonly object next_id
    cdef readonly object fundamental
    cdef readonly object r_bar
    cdef readonly object ema
    cdef readonly object size_class
    cdef readonly object live
    cdef readonly object ring_pos
    cdef readonly object maker_mid
    cdef readonly object parent_array
    cdef readonly object progress_array
    cdef readonly object pending_array
    cdef readonly object pending_n
    cdef readonly object group_start
    cdef readonly object group_n
    cdef readonly object order_scratch
    cdef readonly object batch_array
    cdef readonly object events_array
    cdef readonly object counter_array
    cdef readonly bint record
    cdef public int look_ahead    # the core's look-ahead in this flow's batches, messages
    cdef object _messages
    cdef object _events
    cdef int64_t _n_messages
    cdef int64_t _n_events

    cdef int64_t decide_range(self, int32_t first, int32_t stop) noexcept nogil
    cdef void decide_books(self, int32_t first, int32_t stop) noexcept nogil
    cdef _process(self, int64_t n)
    cdef _run_batch(self, Message* msgs, int32_t* known, bint fresh, int64_t n)
    cdef void end_step(self) noexcept nogil
    cdef int64_t _append_messages(self, const Message* msgs, int64_t n) except -1
    cdef _append_events(self, int64_t n)
