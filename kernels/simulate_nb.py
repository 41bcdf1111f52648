"""The event loop of one configuration.

Events: the end of a run of iterations (one per instance), a KV-transfer end or retry (one per request)
and request arrivals (trace order). The next event is the earliest; simultaneous events are ordered by
``prm.i[PI.event_order]`` (``kernels.event_order_nb``): by kind (iteration ends, lower instance first, then
KV-transfer events, lower request first, then arrivals) or in SplitwiseSim's own heap order.
Everything an event triggers at the same instant happens inside its handler (zero-delay cascades).
The loop stops when no event is left or once the clock has reached ``end_time`` (the first event at or
after ``end_time`` still runs).

The event handlers run without reference counting (``_nrt=False``: they only index preallocated arrays);
``new_sim_nb`` allocates the state and ``grow_sim_nb`` grows it geometrically when ``run_events_nb`` asks for room
(``kernels.batch_nb.simulate_one_nb`` runs the loop).
"""
import numpy as np

from kernels.layout import CI, ITERATION_LOG, PF, PI
from kernels.enums import EventOrder, InstanceType
from kernels.event_queue_nb import (EV_ARRIVAL, EV_FLOW, EV_INSTANCE, EV_ROUTE, heap_new_nb, heap_remove_nb,
                                    heap_top_time_nb, ref_heap_grow_nb, ref_heap_new_nb, ref_key_nb, ref_pop_nb,
                                    ref_push_nb)
from kernels.executor_nb import complete_iteration_nb
from kernels.jit import internal
from kernels.kv_transfer_nb import flow_event_nb
from kernels.scheduler_nb import schedule_request_nb
from kernels.scaling_nb import SC_LIFECYCLE, SC_PLAN, SC_TIMER, scale_init_nb, scaling_event_if_serving_nb
from kernels.serving_nb import route_pop_nb, route_top_time_nb, serving_event_if_serving_nb
from kernels.state_nb import (CTR_CAP, CTR_FEED_N, CTR_LOG_LEN, CTR_MAX_RESIDENT, CTR_NEXT_ARRIVAL, CTR_RNG,
                              CTR_RUNNING_FLOWS, CTR_SLOG_LEN, N_CTR, RQI, SCF, STI, Sim, grow_queues_nb, new_inst_nb,
                              new_net_nb, new_pools_nb, new_queues_nb, new_requests_nb, new_scale_nb, new_serve_nb,
                              new_tasks_nb, Scale, TASK_FLAG, TASK_INT, TASK_WAIT, Tasks)

N_LOG_COLUMNS = len(ITERATION_LOG)
DONE = 0
NEED_QUEUE_ROOM = 1
NEED_LOG_ROOM = 2
NEED_EVENT_ROOM = 3
NEED_SCALE_LOG_ROOM = 4


@internal()
def any_flow_can_start_nb(sim):
    """Whether a waiting KV transfer (the flow heap's entries, when none is running) fits at its destination."""
    h = sim.fheap
    rq = sim.rq
    for k in range(h.size[0]):
        r = h.ids[k]
        dest = rq.i[RQI.token_inst, r]
        if sim.st.i[STI.memory, dest] + rq.i[RQI.memory, r] <= sim.cl.i[CI.max_memory, dest]:
            return True
    return False


@internal()
def event_room_nb(sim):
    """Most entries one event can push onto the reference heap: a run end finishing every prompt of a batch
    starts that many KV transfers (each moving every shared-network transfer) and a new run; an arrival or a
    transfer's end starts or truncates at most two runs."""
    m = sim.ctr[CTR_MAX_RESIDENT] + 2
    if sim.prm.i[PI.network] != 0:
        m *= sim.net.n_active[0] + m
    return m + 8


@internal()
def scale_log_room_nb(sim):
    """Most scaling-log rows one event can add: a planning tick may move every instance twice (down, then up),
    a timer evaluation every endpoint once, each move one row (plus its endpoint's lifecycle rows)."""
    return 2 * (sim.cl.i.shape[1] + sim.sv.ep.shape[1]) + 4


@internal()
def run_events_nb(sim):
    """Process events until the run ends (DONE) or more room is needed before the next event."""
    wl = sim.wl
    n_req = wl.arrival.shape[0]
    ctr = sim.ctr
    end_time = sim.prm.f[PF.end_time]
    inf = np.inf
    while True:
        t_inst = heap_top_time_nb(sim.iheap)
        t_flow = heap_top_time_nb(sim.fheap)
        t_route = route_top_time_nb(ctr, sim.sv)
        nxt = ctr[CTR_NEXT_ARRIVAL]
        t_arr = wl.arrival[nxt] if nxt < n_req else inf
        if t_inst == inf and t_flow == inf and t_arr == inf and t_route == inf:
            return DONE
        if t_inst == inf and t_arr == inf and t_route == inf and ctr[CTR_RUNNING_FLOWS] == 0 \
                and not any_flow_can_start_nb(sim):
            # only KV transfers waiting for memory are left, none fits now, and nothing runs that could free
            # any: a deadlock (the reference retries every second until end_time); they never complete
            return DONE
        if sim.clock[0] >= end_time:
            return DONE
        if ctr[CTR_MAX_RESIDENT] + 2 > ctr[CTR_CAP]:  # room for two more tasks at any instance
            return NEED_QUEUE_ROOM
        if sim.prm.i[PI.debug] and ctr[CTR_LOG_LEN] + 1 > sim.log.shape[0]:
            return NEED_LOG_ROOM
        scaling = sim.prm.i[PI.scale_level] > 0
        if scaling and ctr[CTR_SLOG_LEN] + scale_log_room_nb(sim) > sim.sc.log.shape[0]:
            return NEED_SCALE_LOG_ROOM
        # the next event: (kind, id, time)
        if sim.prm.i[PI.event_order] == EventOrder.REFERENCE:
            if 2 * (sim.eheap.size[0] + event_room_nb(sim)) > sim.eheap.time.shape[0]:
                return NEED_EVENT_ROOM
            t, key = ref_pop_nb(sim.eheap)
            kind = key & 3
            ident = (key >> 2) & 0x3FFFFFFF
            ver = key >> 32
            if kind == EV_INSTANCE and ver != sim.eheap.inst_ver[ident]:
                continue   # a moved event's old entry: skipped, the clock stays
            if kind == EV_FLOW and ver != sim.eheap.flow_ver[ident]:
                continue
        elif t_inst <= t_flow and t_inst <= t_arr and t_inst <= t_route:
            kind, ident, t = EV_INSTANCE, sim.iheap.ids[0], t_inst
        elif t_flow <= t_arr and t_flow <= t_route:
            kind, ident, t = EV_FLOW, sim.fheap.ids[0], t_flow
        elif t_route <= t_arr:
            kind, ident, t = EV_ROUTE, 0, t_route
        else:
            kind, ident, t = EV_ARRIVAL, nxt, t_arr
        if scaling and (sim.sc.f[SCF.plan_next, 0] < t or sim.sc.f[SCF.timer, 0] < t):
            # planning ticks, then the periodic evaluation, come after every other event at their time (only
            # while other events remain)
            if sim.sc.f[SCF.plan_next, 0] <= sim.sc.f[SCF.timer, 0]:
                t = sim.sc.f[SCF.plan_next, 0]
                sim.clock[0] = t
                scaling_event_if_serving_nb(sim, SC_PLAN, 0, t)
            else:
                t = sim.sc.f[SCF.timer, 0]
                sim.clock[0] = t
                scaling_event_if_serving_nb(sim, SC_TIMER, 0, t)
            continue
        sim.clock[0] = t
        if kind == EV_INSTANCE and scaling and sim.st.i[STI.batch_len, ident] == 0:
            # no run: the instance's lifecycle event (it starts serving, or enters the spot pool)
            heap_remove_nb(sim.iheap, ident)
            scaling_event_if_serving_nb(sim, SC_LIFECYCLE, ident, t)
        elif kind == EV_INSTANCE:
            # the instance's entry stays in its heap: the run that starts next moves it (or removes it)
            complete_iteration_nb(sim, ident, t)
            if ctr[CTR_FEED_N]:  # a topology's completions fed queued requests
                serving_event_if_serving_nb(sim, -1, t)
        elif kind == EV_FLOW:
            heap_remove_nb(sim.fheap, ident)
            flow_event_nb(sim, ident, t)
        elif kind == EV_ARRIVAL and sim.prm.i[PI.topology]:
            ctr[CTR_NEXT_ARRIVAL] = nxt + 1
            serving_event_if_serving_nb(sim, ident, t)
        else:  # an arrival, or a routed request reaching its endpoint (topologies)
            if kind == EV_ARRIVAL:
                ctr[CTR_NEXT_ARRIVAL] = nxt + 1   # (reference order: the number of arrivals so far)
            else:
                ident = route_pop_nb(ctr, sim.sv)
            schedule_request_nb(sim, ident, t)


@internal(nrt=True)
def new_sim_nb(wl, prm, cl, perf, topo, plan, times):
    """The state of one configuration at time 0 (``topo``: its packed topology tables, ``kernels.layout.TOPOLOGY``;
    ``plan``: its planned instance counts and forecast, ``Scale.p``; ``times``: its request-time outputs, rows
    ``kernels.layout.REQUEST_FLOAT``, where the phases' first starts and ends are written as they happen)."""
    n_req = wl.arrival.shape[0]
    n_inst = cl.i.shape[1]
    cap = 16
    ctr = np.zeros(N_CTR, np.int64)
    ctr[CTR_CAP] = cap
    log = np.empty((1024 if prm.i[PI.debug] else 1, N_LOG_COLUMNS), np.float64)
    reference = prm.i[PI.event_order] == EventOrder.REFERENCE
    n_kv = 1 if prm.i[PI.co_located] else n_req   # KV-transfer state only for requests that may transfer
    eheap = ref_heap_new_nb(2 * n_req + 4 * n_inst + 64 if reference else 1, n_inst, n_kv)
    if reference:  # the reference pushes every arrival before the run starts, in trace order
        for r in range(n_req):
            ref_push_nb(eheap, wl.arrival[r], ref_key_nb(EV_ARRIVAL, r, 0))
    waits = prm.i[PI.instance_type] != InstanceType.ORCA   # per-task wait counts: Splitwise instances only
    sv, slots = new_serve_nb(topo, cl, n_req, prm.i[PI.topology], prm.f[PF.route_delay] > 0.0)
    scaling = prm.i[PI.scale_level] > 0
    sc = new_scale_nb(topo, sv, slots, prm.i[PI.n_regions], prm.i[PI.n_models], scaling, plan)
    sc.f[SCF.timer, 0] = prm.f[PF.scale_timer] if prm.f[PF.scale_timer] > 0.0 else np.inf
    sc.f[SCF.plan_next, 0] = prm.f[PF.plan_start] if prm.i[PI.plan_ticks] > 0 else np.inf
    ctr[CTR_RNG] = prm.i[PI.scale_seed]
    st = new_inst_nb(cl, cap)
    scale_init_nb(st, cl, sv, topo)
    return Sim(wl, prm, cl, perf, new_tasks_nb(wl.token_size, waits, times), new_requests_nb(n_req, n_kv), st,
               new_queues_nb(n_inst, cap), new_pools_nb(cl), ctr, heap_new_nb(n_inst), heap_new_nb(max(n_kv, 1)),
               eheap, log, np.zeros(1), new_net_nb(n_kv, cl.f.shape[1]), topo, sv, sc)


@internal()
def copy_rows_nb(dst, src, n):
    """The first n rows of ``src`` into ``dst`` (element by element: Numba's array-to-array slice assignment
    compiles a shape-error path with string formatting, about 3 s per kernel variant)."""
    for r in range(n):
        for k in range(src.shape[1]):
            dst[r, k] = src[r, k]


@internal(nrt=True)
def grow_sim_nb(sim, status):
    """The state with room for what ``run_events_nb`` asked for (``status``), grown geometrically."""
    ctr = sim.ctr
    qu = sim.qu
    log = sim.log
    eheap = sim.eheap
    sc = sim.sc
    if status == NEED_QUEUE_ROOM:
        ctr[CTR_CAP] = 2 * ctr[CTR_CAP]
        qu = grow_queues_nb(sim.qu, sim.st, ctr[CTR_CAP])
    elif status == NEED_LOG_ROOM:
        log = np.empty((2 * sim.log.shape[0], N_LOG_COLUMNS), np.float64)
        copy_rows_nb(log, sim.log, sim.log.shape[0])
    elif status == NEED_EVENT_ROOM:
        eheap = ref_heap_grow_nb(sim.eheap, 2 * (sim.eheap.size[0] + event_room_nb(sim)))
    else:   # NEED_SCALE_LOG_ROOM
        slog = np.empty((2 * sim.sc.log.shape[0] + scale_log_room_nb(sim), sim.sc.log.shape[1]))
        copy_rows_nb(slog, sim.sc.log, ctr[CTR_SLOG_LEN])
        sc = Scale(sim.sc.g, sim.sc.i, sim.sc.f, slog, sim.sc.p)
    return Sim(sim.wl, sim.prm, sim.cl, sim.perf, sim.tk, sim.rq, sim.st, qu, sim.pools, ctr, sim.iheap, sim.fheap,
               eheap, log, sim.clock, sim.net, sim.topo, sim.sv, sc)


@internal(nrt=True)
def finished_sim_nb(sim):
    """The state without what only a running simulation needs (the per-task state, the KV-transfer heap and
    flows, the reference's event heap), freed before the outputs are written: the output rows first written
    then become resident, and a 10M-request run peaked 0.4 GB higher while both were held."""
    tk = Tasks(np.zeros((len(TASK_INT), 1), np.int64), np.zeros((len(TASK_FLAG), 1), np.int8), sim.tk.f,
               np.zeros((len(TASK_WAIT), 1), np.int64))
    return Sim(sim.wl, sim.prm, sim.cl, sim.perf, tk, sim.rq, sim.st, sim.qu, sim.pools, sim.ctr, sim.iheap,
               heap_new_nb(1), ref_heap_new_nb(1, 0, 0), sim.log, sim.clock, new_net_nb(1, 0), sim.topo, sim.sv,
               sim.sc)
