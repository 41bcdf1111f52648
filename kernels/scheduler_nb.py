"""Request scheduling: choose the prompt and token instances of an arriving request, then submit it.

Co-located schedulers (round_robin, random, jsq, token_jsq) chain both phases on one instance of the
"all" pool. KV schedulers pick the prompt instance from the prompt pool and the token instance from the
token pool and add a KV transfer. mixed_pool moves instances between prompt, token and mixed pools.
Ties go to the first instance in pool order.
"""
from kernels.layout import CI, PI, TOPO
from kernels.enums import Scheduler
from kernels.instance_nb import task_arrival_nb
from kernels.jit import internal
from kernels.queues_nb import q_append_nb, q_remove_nb
from kernels.state_nb import (CTR_RR, CTR_RR_PROMPT, CTR_RR_TOKEN, POOL_ALL, POOL_MIXED, POOL_PROMPT, POOL_TOKEN,
                              EPR, RQI, R_ENDPOINT, STI, topo_nb)
from kernels.scaling_nb import SC_ARRIVAL, scaling_event_if_serving_nb
from kernels.variants import serving_only


@internal()
def _argmin_nb(pools, p, values):
    """First instance of pool p with the smallest value (-1 if the pool is empty)."""
    best = -1
    for k in range(pools.lens[p]):
        i = pools.lists[p, k]
        if best < 0 or values[i] < values[best]:
            best = i
    return best


@internal()
def _round_robin_nb(sim, p, ctr_index):
    k = sim.ctr[ctr_index]
    i = sim.pools.lists[p, k]
    sim.ctr[ctr_index] = (k + 1) % sim.pools.lens[p]
    return i


@internal()
def _pick_nb(sim, p, r, ctr_index):
    """One instance of pool p by the configured (non-mixed) policy."""
    s = sim.prm.i[PI.scheduler]
    st = sim.st
    if s == Scheduler.ROUND_ROBIN or s == Scheduler.KV_ROUND_ROBIN:
        return _round_robin_nb(sim, p, ctr_index)
    if s == Scheduler.RANDOM:
        n = sim.pools.lens[p]
        k = int(sim.wl.uniform[r] * n)
        if k >= n:
            k = n - 1
        return sim.pools.lists[p, k]
    if s == Scheduler.JSQ or s == Scheduler.KV_JSQ:
        return _argmin_nb(sim.pools, p, st.i[STI.requests_len])
    return _argmin_nb(sim.pools, p, st.i[STI.sched_pending_tokens])


@internal()
def _borrow_nb(sim, home, values):
    """mixed_pool: move the argmin of ``values`` in pool ``home`` to the end of the mixed pool."""
    pools = sim.pools
    i = _argmin_nb(pools, home, values)
    q_remove_nb(pools.lists, pools.lens, home, i)
    q_append_nb(pools.lists, pools.lens, POOL_MIXED, i)
    sim.st.i[STI.sched_tag, i] = 1
    return i


@internal()
def _mixed_pool_nb(sim, r):
    """Returns (prompt instance, token instance) and updates the scheduler's memory/token counters."""
    st = sim.st
    pools = sim.pools
    wl = sim.wl
    kv = sim.prm.i[PI.kv_bytes_per_token]
    ps = wl.prompt_size[r]
    has_token = wl.token_size[r] > 1
    need = kv * (ps + 1) + kv * (wl.token_size[r] - 1)
    limit = sim.prm.i[PI.prompt_max_pending_tokens]
    p = -1
    for pool in (POOL_PROMPT, POOL_MIXED):
        c = _argmin_nb(pools, pool, st.i[STI.sched_pending_tokens])
        if c >= 0 and not (st.i[STI.pending_len, c] > 0 and st.i[STI.sched_pending_tokens, c] + ps > limit):
            p = c
            break
    t = -1
    if has_token:
        for pool in (POOL_TOKEN, POOL_MIXED):
            c = _argmin_nb(pools, pool, st.i[STI.sched_memory])
            if c >= 0 and not (st.i[STI.sched_memory, c] + need >= sim.cl.i[CI.max_memory, c]):
                t = c
                break
    if p < 0 and pools.lens[POOL_TOKEN] > 0:
        p = _borrow_nb(sim, POOL_TOKEN, st.i[STI.sched_pending_tokens])
    if has_token and t < 0 and pools.lens[POOL_PROMPT] > 0:
        t = _borrow_nb(sim, POOL_PROMPT, st.i[STI.sched_memory])
    if p < 0 or (has_token and t < 0):
        best = -1
        for pool in (POOL_PROMPT, POOL_MIXED, POOL_TOKEN):
            c = _argmin_nb(pools, pool, st.i[STI.sched_pending_tokens])
            if c >= 0 and (best < 0 or st.i[STI.sched_pending_tokens, c] < st.i[STI.sched_pending_tokens, best]):
                best = c
        p = best
        t = best
    if not has_token:
        t = p
    if p != t:
        st.i[STI.sched_memory, p] += kv * (ps + 1)
        st.i[STI.sched_memory, t] += need
    elif has_token:
        st.i[STI.sched_memory, p] += need
    else:
        st.i[STI.sched_memory, p] += kv * (ps + 1)
    st.i[STI.sched_pending_tokens, p] += ps
    if has_token:
        st.i[STI.sched_pending_tokens, t] += 1
    return p, t


@internal()
def endpoint_instance_nb(sim, e, r):
    """A topology's request r reaches endpoint e: the group whose smallest instance pending-token count is
    smallest, then the group's instance by the endpoint's scheduler (token_jsq: smallest scheduler pending
    tokens, which the request raises; jsq: fewest resident requests); the first on ties. Groups and their
    members in order (``Scale.g``). The endpoint's resident-request and interactive sums count the request."""
    g = sim.sc.g
    st = sim.st
    ep = sim.sv.ep
    best = -1
    best_v = 0
    base = ep[EPR.group_base, e]
    for slot in range(base, base + ep[EPR.groups, e]):
        v = st.i[STI.pending_tokens, g[slot, 1]]
        for k in range(2, g[slot, 0] + 1):
            if st.i[STI.pending_tokens, g[slot, k]] < v:
                v = st.i[STI.pending_tokens, g[slot, k]]
        if best < 0 or v < best_v:
            best = slot
            best_v = v
    p = g[best, 1]
    if topo_nb(sim.topo, TOPO.ep_scheduler, e) == Scheduler.JSQ:
        for k in range(2, g[best, 0] + 1):
            if st.i[STI.requests_len, g[best, k]] < st.i[STI.requests_len, p]:
                p = g[best, k]
    else:
        for k in range(2, g[best, 0] + 1):
            if st.i[STI.sched_pending_tokens, g[best, k]] < st.i[STI.sched_pending_tokens, p]:
                p = g[best, k]
        st.i[STI.sched_pending_tokens, p] += sim.wl.prompt_size[r] + (1 if sim.wl.token_size[r] > 1 else 0)
    ep[EPR.requests, e] += 1
    if (sim.wl.serve_code[r] // sim.prm.i[PI.n_orders]) % 3 == 0:   # an interactive request (serving_nb)
        st.i[STI.interactive, p] += 1
        if st.i[STI.interactive, p] == 1:
            ep[EPR.interactive, e] += 1
    return p


#: ``endpoint_instance_nb`` in the serving kernel, nothing in the plain one (``kernels.variants``)
endpoint_instance_if_serving_nb = serving_only(endpoint_instance_nb, -1)


@internal()
def schedule_request_nb(sim, r, now):
    """Request r arrives (with a topology: at the endpoint its global routing chose): choose its instances and
    submit its prompt (and chained decode) task."""
    s = sim.prm.i[PI.scheduler]
    st = sim.st
    wl = sim.wl
    has_token = wl.token_size[r] > 1
    if sim.prm.i[PI.topology]:
        e = sim.sv.req[R_ENDPOINT, r]
        if sim.prm.i[PI.scale_level] > 0:
            scaling_event_if_serving_nb(sim, SC_ARRIVAL, r, now)
        p = endpoint_instance_if_serving_nb(sim, e, r)
        t = p
    elif sim.prm.i[PI.co_located]:
        p = _pick_nb(sim, POOL_ALL, r, CTR_RR)
        t = p
        if s == Scheduler.TOKEN_JSQ:
            st.i[STI.sched_pending_tokens, p] += wl.prompt_size[r] + (1 if has_token else 0)
    elif s == Scheduler.MIXED_POOL:
        p, t = _mixed_pool_nb(sim, r)
    else:
        p = _pick_nb(sim, POOL_PROMPT, r, CTR_RR_PROMPT)
        t = p
        if has_token:
            t = _pick_nb(sim, POOL_TOKEN, r, CTR_RR_TOKEN)
        if s == Scheduler.KV_TOKEN_JSQ:
            st.i[STI.sched_pending_tokens, p] += wl.prompt_size[r]
            if has_token:
                st.i[STI.sched_pending_tokens, t] += 1
    sim.rq.i[RQI.prompt_inst, r] = p
    sim.rq.i[RQI.token_inst, r] = t
    # the prompt arrives, then, on a co-located instance, its decode (one call site: it is inlined)
    for task in range(2 * r, 2 * r + (2 if has_token and t == p else 1)):
        task_arrival_nb(sim, p, task, now)
