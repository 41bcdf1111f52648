"""The event loop of one configuration, and a batch driver over many configurations.

Events: the end of a run of iterations (one per instance), a KV-transfer end or retry (one per request)
and request arrivals (trace order). The next event is the earliest; simultaneous events are ordered
iteration ends (lower instance first), then KV-transfer events (lower request first), then arrivals.
Everything an event triggers at the same instant happens inside its handler (zero-delay cascades).
The loop stops when no event is left or once the clock has reached ``end_time`` (the first event at or
after ``end_time`` still runs).
"""
import numpy as np
from numba import njit, prange

from kernels.event_queue_nb import heap_new_nb, heap_pop_nb, heap_top_time_nb
from kernels.executor_nb import complete_iteration_nb
from kernels.kv_transfer_nb import flow_event_nb
from kernels.scheduler_nb import schedule_request_nb
from kernels.state_nb import (CTR_CAP, CTR_LOG_LEN, N_CTR, Sim, grow_queues_nb, new_inst_nb,
                              new_pools_nb, new_queues_nb, new_requests_nb, new_tasks_nb)

N_LOG_COLUMNS = 10


@njit(cache=True)
def _max_resident(st):
    m = 0
    for i in range(st.resident.shape[0]):
        if st.resident[i] > m:
            m = st.resident[i]
    return m


@njit(cache=True)
def simulate_1d_nb(wl, prm, cl, perf):
    """Simulate one configuration. Returns (tasks, requests, instance state, iteration log, end clock)."""
    n_req = wl.arrival.shape[0]
    n_inst = cl.max_memory.shape[0]
    cap = 16
    ctr = np.zeros(N_CTR, np.int64)
    ctr[CTR_CAP] = cap
    log = np.empty((1024 if prm.debug else 1, N_LOG_COLUMNS), np.float64)
    sim = Sim(wl, prm, cl, perf, new_tasks_nb(n_req), new_requests_nb(n_req), new_inst_nb(cl),
              new_queues_nb(n_inst, cap), new_pools_nb(cl), ctr, heap_new_nb(n_inst),
              heap_new_nb(max(n_req, 1)), log)
    clock = 0.0
    next_arr = 0
    inf = np.inf
    while True:
        t_inst = heap_top_time_nb(sim.iheap)
        t_flow = heap_top_time_nb(sim.fheap)
        t_arr = wl.arrival[next_arr] if next_arr < n_req else inf
        if t_inst == inf and t_flow == inf and t_arr == inf:
            break
        if clock >= prm.end_time:
            break
        # room for two more tasks at any instance, one more log row
        if _max_resident(sim.st) + 2 > sim.ctr[CTR_CAP]:
            cap = 2 * sim.ctr[CTR_CAP]
            sim.ctr[CTR_CAP] = cap
            sim = Sim(wl, prm, cl, perf, sim.tk, sim.rq, sim.st, grow_queues_nb(sim.qu, sim.st, cap),
                      sim.pools, sim.ctr, sim.iheap, sim.fheap, sim.log)
        if prm.debug and sim.ctr[CTR_LOG_LEN] + 1 > sim.log.shape[0]:
            bigger = np.empty((2 * sim.log.shape[0], N_LOG_COLUMNS), np.float64)
            bigger[:sim.log.shape[0]] = sim.log
            sim = Sim(wl, prm, cl, perf, sim.tk, sim.rq, sim.st, sim.qu, sim.pools, sim.ctr,
                      sim.iheap, sim.fheap, bigger)
        if t_inst <= t_flow and t_inst <= t_arr:
            clock = t_inst
            complete_iteration_nb(sim, heap_pop_nb(sim.iheap), clock)
        elif t_flow <= t_arr:
            clock = t_flow
            flow_event_nb(sim, heap_pop_nb(sim.fheap), clock)
        else:
            clock = t_arr
            schedule_request_nb(sim, next_arr, clock)
            next_arr += 1
    return sim.tk, sim.rq, sim.st, sim.log[:sim.ctr[CTR_LOG_LEN]], clock
