# ---------------------------------------------------------------------------------------
# Agent groups: several kernels over one Books and one flow, stepped as one market
# ---------------------------------------------------------------------------------------

@cython.auto_pickle(False)               # it holds kernels bound to raw buffers
cdef class GroupStep:
    """One step of several ``EnvKernel`` (agent groups: each its own action mode, reward,
    sizes, latency, observation) over the same ``Books`` and background ``Flow``: every
    group's decisions and the background's reach each book in one arrival order (each
    decision at its arrival time: a random time in the step plus its group's latency), and
    at an episode's end the agents of every group are liquidated in one random order.

    Parameters
    ----------
    kernels : sequence of EnvKernel
        Over the same ``Books`` and books, with disjoint owner ranges and one horizon.
    flow : Flow
        The background of those books.
    """

    cdef readonly tuple kernels
    cdef readonly Flow flow
    cdef object keys          # [key_cap] uint64 arrival keys of one book's decisions
    cdef object keys_tmp
    cdef object source        # [key_cap] int32: 0 background, g + 1 kernel g
    cdef object index         # [key_cap] int32: the decision's index in its cell

    def __init__(self, kernels, Flow flow):
        cdef EnvKernel k, k0
        cdef int64_t cap, per_book
        self.kernels = tuple(kernels)
        if not self.kernels or not all(isinstance(k, EnvKernel) for k in self.kernels):
            raise TypeError("kernels must be a non-empty sequence of EnvKernel")
        k0 = self.kernels[0]
        owners = []
        for k in self.kernels:
            if k.books is not k0.books or k.s.p.n_envs != k0.s.p.n_envs:
                raise ValueError("every group's kernel must run the same books")
            if k.s.p.horizon != k0.s.p.horizon:
                raise ValueError("every group must have the same horizon")
            owners.append((k.s.p.first_owner, k.s.p.first_owner + k.s.p.n_agents))
        if len({k.id_base for k in self.kernels}) != len(self.kernels):
            raise ValueError("every group must number its orders in its own range "
                             "(id_base)")
        owners.sort()
        if any(a[1] > b[0] for a, b in zip(owners, owners[1:])):
            raise ValueError(f"the groups' owner ranges overlap: {owners}")
        if flow.books is not k0.books or flow.s.n_books != k0.s.p.n_envs:
            raise ValueError("flow must be the background of exactly these books")
        self.flow = flow
        cap = flow.s.bucket_cap
        per_book = flow.s.bucket_cap
        for k in self.kernels:
            cap += k.s.p.cell_groups
            per_book += k.s.p.cell_messages + k.s.p.n_agents * (k.s.p.n_slots + 1)
        if cap >= (1 << GROUP_BITS):
            raise ValueError("too many decisions per book and step")
        self.keys = np.zeros(cap, dtype=np.uint64)
        self.keys_tmp = np.zeros(cap, dtype=np.uint64)
        self.source = np.zeros(cap, dtype=np.int32)
        self.index = np.zeros(cap, dtype=np.int32)
        k0._scratch(k0.s.p.n_envs * per_book, k0.s.key_cap)
        if flow.events_array.shape[0] < k0.events.shape[0]:
            flow.events_array = np.zeros_like(k0.events)

    def step(self, int64_t timestamp):
        """One step of every group (the step began at ``timestamp``); returns the number
        of ending books."""
        cdef EnvKernel k0 = self.kernels[0]
        k0.books._enter()
        try:
            return self._step(timestamp)
        finally:
            k0.books._leave()

    cdef int32_t _step(self, int64_t timestamp) except -1:
        cdef EnvKernel k, k0 = self.kernels[0]
        cdef State* s0 = &k0.s
        cdef Sink* batch = &s0.batch
        cdef int32_t e, g, G = len(self.kernels), ending = 0
        cdef int64_t n
        for k in self.kernels:
            k.s.n_updates += 1
            k.s.now_ns = timestamp + k.s.p.dt_ns
            for e in range(k.s.p.n_envs):
                act_book(&k.s, e, timestamp)            # every decision at its time
        self.flow.decide_books(0, s0.p.n_envs)
        batch.n = 0
        for e in range(s0.p.n_envs):
            self._merge(e, batch)
        self.flow._run_batch(batch.messages, batch.known, True, batch.n)
        for k in self.kernels:
            locate(&k.s, batch)
        batch.n = 0
        for k in self.kernels:
            for e in range(k.s.p.n_envs):
                advance_book(&k.s, e)
                if k.s.ending[e]:
                    withdraw_book(&k.s, batch, e, timestamp)
        for e in range(s0.p.n_envs):
            if s0.ending[e]:
                self._liquidate(e, batch, timestamp)
        n = batch.n
        k0._submit(n)
        for k in self.kernels:
            locate(&k.s, batch)
            for e in range(k.s.p.n_envs):
                ending += finish_book(&k.s, e, False)
            for e in range(k.s.p.n_envs):
                if k.s.ending[e]:
                    begin_book(&k.s, e)
            k.s.clock += 1
        self.flow.end_step()
        return ending

    cdef void _merge(self, int32_t e, Sink* out):
        """``merge_book`` over every group's cell and the flow's, in arrival order."""
        cdef FlowState* f = &self.flow.s
        cdef EnvKernel k, k0 = self.kernels[0]
        cdef uint64_t* keys = <uint64_t*>cnp.PyArray_DATA(self.keys)
        cdef int32_t* source = <int32_t*>cnp.PyArray_DATA(self.source)
        cdef int32_t* idx = <int32_t*>cnp.PyArray_DATA(self.index)
        cdef uint64_t* rng = &k0.s.arrival_rng[4 * e]
        cdef uint64_t mask = (<uint64_t>1 << GROUP_BITS) - 1
        cdef int64_t at = <int64_t>f.now * f.n_books + e, n = 0, j, cell, first, stop, base
        cdef int32_t background = f.group_n[at] if f.pending_n[at] > 0 else 0, g, i, n_groups
        cdef State* s
        for i in range(background):
            keys[n] = ((next_u64(rng) >> (64 - KEY_BITS)) << GROUP_BITS) | <uint64_t>n
            source[n] = 0
            idx[n] = i
            n += 1
        for g in range(len(self.kernels)):
            k = self.kernels[g]
            s = &k.s
            cell = (s.clock % s.p.delay) * s.p.n_envs + e
            for i in range(s.out_groups[cell]):
                keys[n] = (s.group_key[cell * s.p.cell_groups + i] << GROUP_BITS) | <uint64_t>n
                source[n] = g + 1
                idx[n] = i
                n += 1
        if n > 1:
            sort_keys(keys, <uint64_t*>cnp.PyArray_DATA(self.keys_tmp), n)
        for j in range(n):
            i = <int32_t>(keys[j] & mask)
            if source[i] == 0:
                copy_background(f, at, idx[i], background, out)
                continue
            k = self.kernels[source[i] - 1]
            s = &k.s
            cell = (s.clock % s.p.delay) * s.p.n_envs + e
            base = cell * s.p.cell_messages
            n_groups = s.out_groups[cell]
            first = s.group_start[cell * s.p.cell_groups + idx[i]]
            stop = (s.group_start[cell * s.p.cell_groups + idx[i] + 1] if idx[i] + 1 < n_groups
                    else s.out_n[cell])
            while first < stop:
                arrive(s, out, &s.out_messages[base + first], s.out_known[base + first],
                       s.out_tags[base + first], s.out_release[base + first])
                first += 1
        f.pending_n[at] = 0
        f.group_n[at] = 0
        for k in self.kernels:
            cell = (k.s.clock % k.s.p.delay) * k.s.p.n_envs + e
            k.s.out_n[cell] = 0
            k.s.out_groups[cell] = 0

    cdef void _liquidate(self, int32_t e, Sink* out, int64_t timestamp):
        """At book ``e``'s episode end: every group's closing market orders (liquidation,
        or an execution parent's completion) in one random order across groups."""
        cdef EnvKernel k, k0 = self.kernels[0]
        cdef uint64_t* keys = <uint64_t*>cnp.PyArray_DATA(self.keys)
        cdef int32_t* source = <int32_t*>cnp.PyArray_DATA(self.source)
        cdef int32_t* idx = <int32_t*>cnp.PyArray_DATA(self.index)
        cdef int64_t n = 0, j, a, position
        cdef int32_t g, i
        cdef State* s
        for g in range(len(self.kernels)):
            k = self.kernels[g]
            if not (k.s.p.liquidate or k.s.p.action_mode == EXECUTION):
                continue
            for i in range(k.s.p.n_agents):
                source[n] = g
                idx[n] = i
                n += 1
        shuffle(keys, n, &k0.s.arrival_rng[4 * e])
        for j in range(n):
            k = self.kernels[source[keys[j]]]
            s = &k.s
            i = idx[keys[j]]
            a = <int64_t>e * s.p.n_agents + i
            if s.p.action_mode == EXECUTION:
                market_order(s, out, e, i, s.parent_side[a], parent_left(s, e, a), timestamp)
            else:
                position = account(s, e, i).position
                market_order(s, out, e, i, SELL if position > 0 else BUY,
                             position if position > 0 else -position, timestamp)
