"""One inference instance: task arrival, batch selection, runs of iterations, completion.

Semantics (docs/semantics.md, "Instances"): continuous batching in runs of N contiguous iterations. A run
with a prompt is one iteration; a decode-only run lasts until its first decode finishes; a task arrival
truncates the run at the next iteration boundary (``pause_nb``). Memory is allocated when a task first
runs and freed when the request's decode finishes. ORCA instances admit FCFS by request arrival with
head-of-line blocking; Splitwise instances select by the five-phase rule with a token budget and preempt
the newest decodes.

The per-task wait count ``num_preemptions`` (iterations a resident head task spent outside the batch) is
derived lazily from the instance's iteration counter ``it_count``: ``np_acc + it_count - np_since`` while the
task waits, ``np_acc`` otherwise, so no loop over waiting tasks is needed per iteration.
"""
from kernels.layout import CI, LOG, PF, PI, RF
from kernels.enums import InstanceType, Lifecycle, TaskState
from kernels.event_order_nb import schedule_run_end_nb
from kernels.event_queue_nb import heap_remove_nb
from kernels.floats_nb import py_floordiv_nb
from kernels.jit import internal
from kernels.perf_nb import iteration_duration_nb
from kernels.scaling_nb import SC_IDLE, scaling_event_if_serving_nb
from kernels.queues_nb import (dq_append_nb, dq_delete_at_nb, dq_insert_nb, dq_remove_near_nb, dq_remove_nb,
                               q_append_nb, q_remove_nb)
from kernels.state_nb import (CTR_LOG_LEN, CTR_MAX_RESIDENT, CTR_STAMP, EP_KV, POOL_MIXED, QU, RQI, STF, STI, TKB,
                              TKI, TKW, task_memory_nb, tokens_per_iteration_nb)

# ---------------------------------------------------------------- lazy wait counts and list orders

@internal()
def num_preemptions_nb(sim, t):
    """Splitwise instances only (ORCA instances never order by it, and keep no wait counts)."""
    tk = sim.tk
    if tk.b[TKB.waiting, t]:
        return tk.w[TKW.np_acc, t] + sim.st.i[STI.it_count, tk.i[TKI.inst, t]] - tk.w[TKW.np_since, t]
    return tk.w[TKW.np_acc, t]


@internal()
def start_waiting_nb(sim, t, i):
    if sim.prm.i[PI.instance_type] == InstanceType.ORCA:
        return
    sim.tk.b[TKB.waiting, t] = 1
    sim.tk.w[TKW.np_since, t] = sim.st.i[STI.it_count, i]


@internal()
def stop_waiting_nb(sim, t):
    tk = sim.tk
    if tk.b[TKB.waiting, t]:
        tk.w[TKW.np_acc, t] += sim.st.i[STI.it_count, tk.i[TKI.inst, t]] - tk.w[TKW.np_since, t]
        tk.b[TKB.waiting, t] = 0


@internal()
def head_task_nb(sim, r, i):
    """The only task of request r at instance i that may be batched: its prompt while that is here and
    unfinished, else its decode task."""
    p = 2 * r
    if sim.tk.i[TKI.inst, p] == i and sim.tk.b[TKB.state, p] != TaskState.COMPLETED:
        return p
    return p + 1


@internal()
def pending_insort_nb(sim, i, t):
    """insort_right into pending_queue by (num_preemptions, request arrival), comparing against the
    current (mutated) keys of the queued tasks: the queue is not kept sorted."""
    q = sim.qu.q[QU.pending]
    arr = sim.wl.arrival
    k_np = num_preemptions_nb(sim, t)
    k_arr = arr[t >> 1]
    o = sim.st.i[STI.pending_off, i]
    lo = 0
    hi = sim.st.i[STI.pending_len, i]
    while lo < hi:
        mid = (lo + hi) // 2
        m = q[i, o + mid]
        m_np = num_preemptions_nb(sim, m)
        if k_np < m_np or (k_np == m_np and k_arr < arr[m >> 1]):
            hi = mid
        else:
            lo = mid + 1
    sim.tk.i[TKI.pending_hint, t] = dq_insert_nb(q, sim.st.i[STI.pending_off], sim.st.i[STI.pending_len], i, lo,
                                                 t)


@internal()
def requests_insort_nb(sim, i, r):
    """insort_right into pending_requests by the request's admission key (its arrival; a dev request of a
    topology adds a fraction of its SLA)."""
    q = sim.qu.q[QU.requests]
    arr = sim.wl.order_key
    a = arr[r]
    o = sim.st.i[STI.requests_off, i]
    lo = 0
    hi = sim.st.i[STI.requests_len, i]
    while lo < hi:
        mid = (lo + hi) // 2
        if a < arr[q[i, o + mid]]:
            hi = mid
        else:
            lo = mid + 1
    dq_insert_nb(q, sim.st.i[STI.requests_off], sim.st.i[STI.requests_len], i, lo, r)


@internal()
def requests_position_nb(sim, i, r):
    """Position of resident request r in instance i's pending_requests (-1 if absent)."""
    q = sim.qu.q[QU.requests]
    arr = sim.wl.order_key
    a = arr[r]
    o = sim.st.i[STI.requests_off, i]
    lo = 0
    hi = sim.st.i[STI.requests_len, i]
    while lo < hi:  # bisect_left on arrival, then scan the equal run
        mid = (lo + hi) // 2
        if arr[q[i, o + mid]] < a:
            lo = mid + 1
        else:
            hi = mid
    for k in range(lo, sim.st.i[STI.requests_len, i]):
        if q[i, o + k] == r:
            return k
    return -1


@internal()
def requests_remove_nb(sim, i, r):
    k = requests_position_nb(sim, i, r)
    if k >= 0:
        dq_delete_at_nb(sim.qu.q[QU.requests], sim.st.i[STI.requests_off], sim.st.i[STI.requests_len], i, k)


#: Batch selection finds the waiting heads through pending_queue (instead of walking every resident
#: request) when it holds at most this many tasks.
SHORT_PENDING = 16


@internal()
def waiting_heads_nb(sim, i, stamp):
    """The head tasks in instance i's pending_queue whose requests have no task chosen under ``stamp``, in
    pending_requests order, into ``sim.qu.cand[1, :count]``; returns count. When no batched task is left
    out, these are exactly the tasks a walk over pending_requests would consider."""
    st = sim.st
    qu = sim.qu
    cand = qu.cand
    o = st.i[STI.pending_off, i]
    nc = 0
    for k in range(st.i[STI.pending_len, i]):
        t = qu.q[QU.pending, i, o + k]
        r = t >> 1
        if sim.rq.i[RQI.chosen_stamp, r] != stamp and head_task_nb(sim, r, i) == t:
            cand[1, nc] = t
            nc += 1
    if nc > 1:  # order by position in pending_requests (insertion sort: the list is short)
        for k in range(nc):
            t = cand[1, k]
            pos = requests_position_nb(sim, i, t >> 1)
            j = k
            while j > 0 and cand[0, j - 1] > pos:
                cand[0, j] = cand[0, j - 1]
                cand[1, j] = cand[1, j - 1]
                j -= 1
            cand[0, j] = pos
            cand[1, j] = t
    return nc


@internal()
def visited_head_nb(sim, i, k, by_pending):
    """The k-th head a selection walk visits: the k-th waiting head collected by ``waiting_heads_nb``, or
    the head of the k-th resident request in pending_requests order."""
    if by_pending:
        return sim.qu.cand[1, k]
    return head_task_nb(sim, sim.qu.q[QU.requests, i, sim.st.i[STI.requests_off, i] + k], i)


@internal()
def free_memory_nb(sim, i, nbytes):
    sim.st.i[STI.memory, i] -= nbytes
    sim.st.i[STI.sched_memory, i] -= nbytes
    sim.sv.ep[EP_KV, sim.cl.i[CI.endpoint, i]] -= nbytes


# ---------------------------------------------------------------- batch selection

@internal()
def _add_nb(sim, t, n_sel, stamp):
    sim.qu.sel[n_sel] = t
    sim.rq.i[RQI.chosen_stamp, t >> 1] = stamp
    return n_sel + 1


@internal(inline=True)
def select_batch_orca_nb(sim, i, stamp):
    """FCFS over resident requests (arrival order); stop at the first head that does not fit in memory.
    The old batch (RUNNING tasks) all stays; returns (tasks kept, new tasks in ``sim.qu.sel``)."""
    st = sim.st
    tk = sim.tk
    mbs = sim.prm.i[PI.max_batch_size]
    count = st.i[STI.batch_len, i]
    if count == mbs or count == st.i[STI.requests_len, i]:
        return count, 0
    mem = st.i[STI.memory, i]
    n_sel = 0
    # the heads not batched wait in pending_queue: when it is short, visit just those
    by_pending = st.i[STI.pending_len, i] <= SHORT_PENDING
    n_visit = waiting_heads_nb(sim, i, stamp) if by_pending else st.i[STI.requests_len, i]
    for k in range(n_visit):
        if count == mbs:
            break
        h = visited_head_nb(sim, i, k, by_pending)
        s = tk.b[TKB.state, h]
        if s == TaskState.RUNNING:
            continue
        if s != TaskState.BLOCKED:  # a blocked task already holds its memory
            m = task_memory_nb(sim, i, h)
            if m + mem > sim.cl.i[CI.max_memory, i]:
                break
            mem += m
        n_sel = _add_nb(sim, h, n_sel, stamp)
        count += 1
    return st.i[STI.batch_len, i], n_sel


@internal(inline=True)
def select_batch_splitwise_nb(sim, i, stamp):
    """Five phases: starved tasks, prompts, preempted decodes, running decodes, other resident requests;
    under max_batch_size and the max_batch_tokens budget (the first task is always admissible).
    Returns (old batch tasks kept, a prefix; new tasks, in selection order in ``sim.qu.sel``)."""
    st = sim.st
    qu = sim.qu
    tk = sim.tk
    rq = sim.rq
    mbs = sim.prm.i[PI.max_batch_size]
    mbt = sim.prm.i[PI.max_batch_tokens]
    max_mem = sim.cl.i[CI.max_memory, i]
    mem = st.i[STI.memory, i]
    bt = 0
    n = 0
    # 1. starved tasks (waited >= max_preemptions iterations), pending_queue order
    for k in range(st.i[STI.pending_len, i]):
        t = qu.q[QU.pending, i, st.i[STI.pending_off, i] + k]
        if num_preemptions_nb(sim, t) < sim.prm.i[PI.max_preemptions]:
            break
        if head_task_nb(sim, t >> 1, i) != t:  # only with max_preemptions 0 (a waiting non-head has 0)
            continue
        if n == mbs:
            break
        tpi = tokens_per_iteration_nb(sim, t)
        if n > 0 and bt + tpi > mbt:
            break
        if rq.i[RQI.chosen_stamp, t >> 1] == stamp:
            continue
        if tk.b[TKB.state, t] == TaskState.BLOCKED:
            n = _add_nb(sim, t, n, stamp)
            bt += tpi
            continue
        m = task_memory_nb(sim, i, t)
        if m + mem <= max_mem:
            n = _add_nb(sim, t, n, stamp)
            bt += tpi
            mem += m
    # 2. waiting prompts, arrival order at this instance
    for k in range(st.i[STI.prompts_len, i]):
        t = qu.q[QU.prompts, i, st.i[STI.prompts_off, i] + k]
        if n == mbs:
            break
        tpi = tokens_per_iteration_nb(sim, t)
        if n > 0 and bt + tpi > mbt:
            break
        if rq.i[RQI.chosen_stamp, t >> 1] == stamp:
            continue
        m = task_memory_nb(sim, i, t)
        if m + mem <= max_mem:
            n = _add_nb(sim, t, n, stamp)
            bt += tpi
            mem += m
        else:
            break
    # 3. preempted decodes, preemption order
    for k in range(st.i[STI.blocked_len, i]):
        t = qu.q[QU.blocked, i, st.i[STI.blocked_off, i] + k]
        if n == mbs:
            break
        if n > 0 and bt + 1 > mbt:
            break
        if rq.i[RQI.chosen_stamp, t >> 1] == stamp:
            continue
        n = _add_nb(sim, t, n, stamp)
        bt += 1
    # 4. running decodes, batch order. The batch holds only decodes here (a prompt finishes in the one
    # iteration it runs), each the head and only task of its request at i, so phases 1-3 cannot have
    # chosen their requests: phase 4 keeps a prefix of the batch, and later phases cannot add a batch task.
    n_new = n
    keep = 0
    blen = st.i[STI.batch_len, i]
    while keep < blen and n < mbs and (n == 0 or bt + 1 <= mbt):
        keep += 1
        n += 1
        bt += 1
    # 5. other resident requests, arrival order (the "chosen" test precedes the budget test here).
    # Every chosen task is the head of a resident request, so there is nothing to do when n equals the
    # number of resident requests, and the unchosen requests' heads are exactly the heads waiting in
    # pending_queue: when that is short and the whole batch was kept, visit just those.
    if n == mbs or n == st.i[STI.requests_len, i]:
        st.i[STI.batch_tokens, i] = bt
        return keep, n_new
    by_pending = keep == blen and st.i[STI.pending_len, i] <= SHORT_PENDING
    if by_pending:
        n_visit = waiting_heads_nb(sim, i, stamp)
    else:
        n_visit = st.i[STI.requests_len, i]
        for k in range(keep):
            rq.i[RQI.chosen_stamp, qu.q[QU.batch, i, k] >> 1] = stamp
    for k in range(n_visit):
        if n == mbs:
            break
        t = visited_head_nb(sim, i, k, by_pending)
        if rq.i[RQI.chosen_stamp, t >> 1] == stamp:
            continue
        tpi = tokens_per_iteration_nb(sim, t)
        if n > 0 and bt + tpi > mbt:
            break
        if tk.b[TKB.state, t] != TaskState.BLOCKED:  # a blocked task already holds its memory
            m = task_memory_nb(sim, i, t)
            if m + mem > max_mem:
                break
            mem += m
        qu.sel[n_new] = t  # (each resident request is visited once: no need to mark it chosen)
        n_new += 1
        n += 1
        bt += tpi
    st.i[STI.batch_tokens, i] = bt
    return keep, n_new


# ---------------------------------------------------------------- runs of iterations

@internal(inline=True)
def notify_free_instance_nb(sim, i, now):
    """The instance holds no request: mixed_pool: an idle borrowed instance goes back to the end of its home pool;
    autoscaling: an instance outside its endpoint's groups may move on (``scaling_nb``)."""
    if sim.prm.i[PI.scale_level] > 0 and sim.st.i[STI.life, i] != Lifecycle.SERVING:
        scaling_event_if_serving_nb(sim, SC_IDLE, i, now)
        return
    if sim.st.i[STI.sched_tag, i] == 0:
        return
    sim.st.i[STI.sched_tag, i] = 0
    pools = sim.pools
    q_remove_nb(pools.lists, pools.lens, POOL_MIXED, i)
    q_append_nb(pools.lists, pools.lens, sim.cl.i[CI.tag, i], i)


@internal(inline=True)
def start_iteration_nb(sim, i, now):
    """Select the next batch, preempt, allocate memory of first-run tasks and schedule the run's end."""
    st = sim.st
    qu = sim.qu
    tk = sim.tk
    sim.ctr[CTR_STAMP] += 1
    stamp = sim.ctr[CTR_STAMP]
    blen = st.i[STI.batch_len, i]
    if sim.prm.i[PI.instance_type] == InstanceType.ORCA:
        keep, n_sel = select_batch_orca_nb(sim, i, stamp)
    else:
        keep, n_sel = select_batch_splitwise_nb(sim, i, stamp)
    # preempt the old-batch tasks that were not kept (a suffix, in old order)
    for k in range(keep, blen):
        t = qu.q[QU.batch, i, k]
        tk.i[TKI.left, t] = qu.q[QU.left, i, k]
        tk.b[TKB.state, t] = TaskState.BLOCKED
        start_waiting_nb(sim, t, i)
        pending_insort_nb(sim, i, t)
        st.i[STI.pending_tokens, i] += 1
        dq_append_nb(qu.q[QU.blocked], st.i[STI.blocked_off], st.i[STI.blocked_len], i, t)
    st.i[STI.batch_len, i] = keep
    if keep == 0 and blen > 0:
        st.f[STF.busy_time, i] += now - st.f[STF.busy_start, i]
    # admit new tasks in selection order; a task running for the first time allocates its KV memory.
    # Kept tasks are decodes: one batch token each.
    bt = keep
    for k in range(n_sel):
        t = qu.sel[k]
        dq_remove_near_nb(qu.q[QU.pending], st.i[STI.pending_off], st.i[STI.pending_len], i, t,
                          tk.i[TKI.pending_hint, t])
        st.i[STI.pending_tokens, i] -= tokens_per_iteration_nb(sim, t)
        if tk.b[TKB.state, t] == TaskState.BLOCKED:
            dq_remove_nb(qu.q[QU.blocked], st.i[STI.blocked_off], st.i[STI.blocked_len], i, t)
        else:
            tk.f[RF.token_start if t & 1 else RF.prompt_start, t >> 1] = now   # its request's output row
            m = task_memory_nb(sim, i, t)
            st.i[STI.memory, i] += m
            sim.rq.i[RQI.memory, t >> 1] += m
            sim.sv.ep[EP_KV, sim.cl.i[CI.endpoint, i]] += m
        if t & 1 == 0:
            dq_remove_nb(qu.q[QU.prompts], st.i[STI.prompts_off], st.i[STI.prompts_len], i, t)
            st.i[STI.n_prompts, i] += 1
            bt += sim.wl.prompt_size[t >> 1]
        else:
            bt += 1
        tk.b[TKB.state, t] = TaskState.RUNNING
        stop_waiting_nb(sim, t)
        qu.q[QU.left, i, st.i[STI.batch_len, i]] = tk.i[TKI.left, t]
        q_append_nb(qu.q[QU.batch], st.i[STI.batch_len], i, t)
        if st.i[STI.batch_len, i] == 1:
            st.f[STF.busy_start, i] = now
    st.i[STI.it_count, i] += 1
    blen = st.i[STI.batch_len, i]
    if blen == 0:
        st.i[STI.batch_tokens, i] = 0
        heap_remove_nb(sim.iheap, i)
        if st.i[STI.requests_len, i] == 0:
            notify_free_instance_nb(sim, i, now)
        return
    # duration of one iteration and number of contiguous iterations: one with a prompt, else until the
    # first decode finishes
    n_prompt = st.i[STI.n_prompts, i]
    if n_prompt > 0:
        n_iter = 1
    else:
        n_iter = qu.q[QU.left, i, 0]
        for k in range(1, blen):
            if qu.q[QU.left, i, k] < n_iter:
                n_iter = qu.q[QU.left, i, k]
    st.i[STI.batch_tokens, i] = bt
    d = iteration_duration_nb(sim.perf, sim.cl.i[CI.perf, i], bt, n_prompt > 0, n_prompt < blen,
                              sim.prm.f[PF.mixed_factor]) + sim.prm.f[PF.iteration_overhead]
    st.f[STF.iter_d, i] = d
    st.i[STI.iter_n, i] = n_iter
    st.f[STF.iter_start, i] = now
    e = now + d * n_iter
    st.f[STF.iter_end, i] = e
    schedule_run_end_nb(sim, i, e)


@internal()
def start_idle_instance_nb(sim, i, now):
    """``start_iteration_nb`` as a call, for the handlers inlined into the event loop (an idle instance
    starting is rare there; the common paths stay small)."""
    start_iteration_nb(sim, i, now)


@internal(inline=True)
def pause_nb(sim, i, now):
    """Truncate a decode-only run at the iteration boundary following ``now`` (once per run), with the
    reference's exact float operations."""
    st = sim.st
    if st.i[STI.pause, i] or st.i[STI.n_prompts, i] > 0:
        return
    st.i[STI.pause, i] = 1
    d = st.f[STF.iter_d, i]
    n = st.i[STI.iter_n, i]
    start = st.f[STF.iter_end, i] - d * n
    elapsed = now - start
    k = py_floordiv_nb(now - start, d)
    n_new = k + 1.0
    if n_new > n:
        return  # now is at the run's end: the run finishes as planned
    remaining = d * n_new - elapsed
    e = now + remaining
    st.i[STI.iter_n, i] = int(n_new)
    st.f[STF.iter_end, i] = e
    schedule_run_end_nb(sim, i, e)


@internal(inline=True)
def task_arrival_nb(sim, i, t, now):
    """A task arrives at instance i: join the instance's queues, then start or truncate a run."""
    st = sim.st
    tk = sim.tk
    r = t >> 1
    is_prompt = t & 1 == 0
    new_request = is_prompt or tk.i[TKI.inst, 2 * r] != i
    tk.i[TKI.inst, t] = i
    tk.b[TKB.state, t] = TaskState.QUEUED
    st.i[STI.resident, i] += 1
    if st.i[STI.resident, i] > sim.ctr[CTR_MAX_RESIDENT]:
        sim.ctr[CTR_MAX_RESIDENT] = st.i[STI.resident, i]
    if new_request:
        requests_insort_nb(sim, i, r)
    if head_task_nb(sim, r, i) == t:
        start_waiting_nb(sim, t, i)
    if sim.prm.i[PI.instance_type] == InstanceType.ORCA:
        tk.i[TKI.pending_hint, t] = dq_append_nb(sim.qu.q[QU.pending], st.i[STI.pending_off], st.i[STI.pending_len],
                                                 i, t)
    else:
        pending_insort_nb(sim, i, t)
    st.i[STI.pending_tokens, i] += tokens_per_iteration_nb(sim, t)
    if is_prompt:
        dq_append_nb(sim.qu.q[QU.prompts], st.i[STI.prompts_off], st.i[STI.prompts_len], i, t)
    blen = st.i[STI.batch_len, i]
    mbs = sim.prm.i[PI.max_batch_size]
    if blen == 0:
        if st.i[STI.memory, i] + task_memory_nb(sim, i, t) <= sim.cl.i[CI.max_memory, i]:
            start_idle_instance_nb(sim, i, now)
        return
    # a busy instance truncates its run if the task could join the next iteration (one call site: inlined)
    if sim.prm.i[PI.instance_type] == InstanceType.ORCA:
        fits = blen < mbs
    else:
        mbt = sim.prm.i[PI.max_batch_tokens]
        fits = blen < mbs and st.i[STI.batch_tokens, i] + tokens_per_iteration_nb(sim, t) <= mbt
        if not fits and is_prompt:
            bpt = st.i[STI.batch_tokens, i] - (blen - st.i[STI.n_prompts, i])
            fits = st.i[STI.n_prompts, i] < blen and bpt + sim.wl.prompt_size[r] <= mbt
    if fits:
        pause_nb(sim, i, now)


@internal(inline=True)
def notify_flow_completion_nb(sim, i, now):
    """The KV source freed memory: an idle instance retries its first pending task, a busy one pauses."""
    st = sim.st
    if st.i[STI.pending_len, i] == 0:
        return
    if st.i[STI.batch_len, i] == 0:
        t = sim.qu.q[QU.pending, i, st.i[STI.pending_off, i]]
        if st.i[STI.memory, i] + task_memory_nb(sim, i, t) <= sim.cl.i[CI.max_memory, i]:
            start_idle_instance_nb(sim, i, now)
    elif (st.i[STI.batch_len, i] < sim.prm.i[PI.max_batch_size]
          and st.i[STI.batch_tokens, i] < sim.prm.i[PI.max_batch_tokens]):
        pause_nb(sim, i, now)


@internal()
def log_iteration_nb(sim, i, now):
    st = sim.st
    row = sim.ctr[CTR_LOG_LEN]
    sim.ctr[CTR_LOG_LEN] = row + 1
    lg = sim.log
    lg[row, LOG.instance] = i
    lg[row, LOG.start] = st.f[STF.iter_start, i]
    lg[row, LOG.end] = now
    lg[row, LOG.num_iterations] = st.i[STI.iter_n, i]
    lg[row, LOG.batch_size] = st.i[STI.batch_len, i]
    lg[row, LOG.prompt_tasks] = st.i[STI.n_prompts, i]
    lg[row, LOG.batch_tokens] = st.i[STI.batch_tokens, i]
    lg[row, LOG.memory_bytes] = st.i[STI.memory, i]
    lg[row, LOG.pending_requests] = st.i[STI.requests_len, i]
    lg[row, LOG.pending_tasks] = st.i[STI.pending_len, i]
    lg[row, LOG.borrowed] = st.i[STI.sched_tag, i]
