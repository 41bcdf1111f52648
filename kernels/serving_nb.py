"""Multi-region, multi-model serving (SageServe): global routing, endpoint routing, request classes, async feeding.

Semantics (docs/semantics.md, "Regions, endpoints and request classes"):
- An endpoint serves one service (a model, or a model's prod-only or dev-only silo) in one region; its
  instances form replica groups (contiguous instance ranges). Its KV utilisation is the KV bytes in use on its
  instances over their KV capacity (``sv.ep_kv / sv.ep_cap``, kept up to date by every allocation and free).
- An interactive request (prod, no batch job) enters global routing at its arrival. A batch or dev request is
  queued at its arrival, FIFO per (service, queue region, class), the queue region being the first region of its
  priority order that hosts its service; it enters global routing only when fed.
- Global routing: the first region of the request's priority order whose endpoint for the request's service has
  a utilisation below ``route_threshold``, else the least utilised of them (first on ties). After
  ``route_delay`` seconds (0: at once) the request reaches the endpoint, which picks its group and instance
  (``scheduler_nb.endpoint_instance_nb``); both phases run there.
- Feeding: each completed request lets its instance's endpoint feed by its utilisation at that moment (after
  the request's memory is freed): ``feed_count_k`` requests for the first band k with utilisation <=
  ``feed_util_k``, none above every band. Each feed takes the head of the endpoint's batch queue, else of its
  dev queue. The fed requests enter global routing after the instance has started its next run. With
  ``feed_on_enqueue`` a request queued at its arrival lets its queue's endpoint feed the same way.
"""
import numpy as np

from kernels.jit import internal
from kernels.layout import PF, PI
from kernels.scheduler_nb import schedule_request_nb
from kernels.state_nb import CTR_ROUTE_HEAD, CTR_ROUTE_TAIL

CLASS_INTERACTIVE = 0
CLASS_BATCH = 1
CLASS_DEV = 2


@internal()
def utilisation_nb(sv, e):
    return sv.ep_kv[e] / sv.ep_cap[e]


@internal()
def feed_count_nb(prm, sv, e):
    """Requests endpoint e feeds at one trigger: the count of the first band its utilisation is within."""
    u = utilisation_nb(sv, e)
    f = prm.f
    pi = prm.i
    if u <= f[PF.feed_util_1]:
        return pi[PI.feed_count_1]
    if u <= f[PF.feed_util_2]:
        return pi[PI.feed_count_2]
    if u <= f[PF.feed_util_3]:
        return pi[PI.feed_count_3]
    if u <= f[PF.feed_util_4]:
        return pi[PI.feed_count_4]
    return 0


@internal()
def service_nb(topo, wl, r):
    """The service of request r: its model's endpoint kind for its workload (prod or dev)."""
    return topo.service_of[2 * wl.model[r] + (1 if wl.cls[r] == CLASS_DEV else 0)]


@internal()
def global_route_nb(sim, r, now):
    """Request r enters global routing at ``now``: choose the region (endpoint), then reach it after the delay."""
    topo = sim.topo
    sv = sim.sv
    nreg = sim.prm.i[PI.n_regions]
    s = service_nb(topo, sim.wl, r)
    o = sim.wl.order[r] * nreg
    thr = sim.prm.f[PF.route_threshold]
    chosen = -1
    least = -1
    least_u = np.inf
    for k in range(nreg):
        reg = topo.order_regions[o + k]
        if reg < 0:
            break
        e = topo.endpoint_of[s * nreg + reg]
        if e < 0:
            continue
        u = utilisation_nb(sv, e)
        if u < thr:
            chosen = e
            break
        if u < least_u:
            least = e
            least_u = u
    if chosen < 0:
        chosen = least
    sv.fed_time[r] = now
    sv.req_ep[r] = chosen
    delay = sim.prm.f[PF.route_delay]
    if delay == 0.0:
        schedule_request_nb(sim, r, now)
    else:  # routed requests reach their endpoints in the order they were routed: a FIFO
        k = sim.ctr[CTR_ROUTE_TAIL]
        sv.route_req[k] = r
        sv.route_time[k] = now + delay
        sim.ctr[CTR_ROUTE_TAIL] = k + 1


@internal()
def route_event_nb(sim, now):
    """The FIFO's head reaches its endpoint."""
    k = sim.ctr[CTR_ROUTE_HEAD]
    sim.ctr[CTR_ROUTE_HEAD] = k + 1
    schedule_request_nb(sim, sim.sv.route_req[k], now)


@internal()
def route_top_time_nb(ctr, sv):
    k = ctr[CTR_ROUTE_HEAD]
    if k < ctr[CTR_ROUTE_TAIL]:
        return sv.route_time[k]
    return np.inf


@internal()
def feed_nb(sim, e, n, now):
    """Endpoint e feeds up to n queued requests: batch queue heads first, then dev."""
    sv = sim.sv
    q = 2 * (sim.topo.ep_service[e] * sim.prm.i[PI.n_regions] + sim.topo.ep_region[e])
    for _ in range(n):
        if sv.q_head[q] >= 0:
            k = q
        elif sv.q_head[q + 1] >= 0:
            k = q + 1
        else:
            return
        r = sv.q_head[k]
        sv.q_head[k] = sv.q_next[r]
        if sv.q_head[k] < 0:
            sv.q_tail[k] = -1
        global_route_nb(sim, r, now)


@internal()
def serve_arrival_nb(sim, r, now):
    """Request r's trace arrival: an interactive request is routed, a batch or dev request queued."""
    if sim.wl.cls[r] == CLASS_INTERACTIVE:
        global_route_nb(sim, r, now)
        return
    topo = sim.topo
    sv = sim.sv
    nreg = sim.prm.i[PI.n_regions]
    s = service_nb(topo, sim.wl, r)
    o = sim.wl.order[r] * nreg
    e = -1
    for k in range(nreg):
        reg = topo.order_regions[o + k]
        if reg < 0:
            break
        e = topo.endpoint_of[s * nreg + reg]
        if e >= 0:
            break
    q = 2 * (s * nreg + topo.ep_region[e]) + (1 if sim.wl.cls[r] == CLASS_DEV else 0)
    sv.q_next[r] = -1
    if sv.q_tail[q] >= 0:
        sv.q_next[sv.q_tail[q]] = r
    else:
        sv.q_head[q] = r
    sv.q_tail[q] = r
    if sim.prm.i[PI.feed_on_enqueue]:
        feed_nb(sim, e, feed_count_nb(sim.prm, sv, e), now)
