"""Multi-region, multi-model serving (SageServe): global routing, endpoint routing, request classes, async feeding.

Semantics (docs/semantics.md, "Regions, endpoints and request classes"):
- An endpoint serves one service (a model, or a model's prod-only or dev-only silo) in one region; its
  instances form replica groups (contiguous instance ranges). Its KV utilisation is the KV bytes in use on its
  instances over their KV capacity (``sv.ep[EP_KV, e] / sv.ep[EP_CAP, e]``, kept up to date by every allocation
  and free).
- An interactive request (prod, no batch job) enters global routing at its arrival. A batch or dev request is
  queued at its arrival, FIFO per (service, queue region, class), the queue region being the first region of its
  priority order that hosts its service; it enters global routing only when fed.
- Global routing: the first region of the request's priority order whose endpoint for the request's service has
  a utilisation below ``route_threshold``, else the least utilised of them (first on ties). After
  ``route_delay`` seconds (0: at once) the request reaches the endpoint, which picks its group and instance
  (``scheduler_nb.endpoint_instance_nb``); both phases run there.
- Feeding: each completed request lets the endpoint it was routed to feed by its utilisation at that moment
  (after the request's memory is freed): ``feed_count_k`` requests for the first band k with utilisation <=
  ``feed_util_k``, none above every band. Each feed takes the head of the endpoint's batch queue, else of its
  dev queue. The fed requests enter global routing after the instance has started its next run, endpoint by endpoint
  in the order of their first completion in the run. With
  ``feed_on_enqueue`` a request queued at its arrival lets its queue's endpoint feed the same way.
"""
import numpy as np

from kernels.jit import internal
from kernels.layout import CI, PF, PI, TOPO
from kernels.scheduler_nb import schedule_request_nb
from kernels.variants import serving_only
from kernels.state_nb import (CTR_FEED_N, CTR_ROUTE_HEAD, CTR_ROUTE_TAIL, EP_CAP, EP_KV, EPR, Q_HEAD,
                              Q_TAIL, R_ENDPOINT, R_NEXT, R_ROUTED, STI, T_FED, T_ROUTED, topo_nb)

#: request classes, as ``Workload.serve_code`` holds them (1 is batch)
CLASS_INTERACTIVE = 0
CLASS_DEV = 2
N_CLASSES = 3


@internal()
def utilisation_nb(sv, e):
    return sv.ep[EP_KV, e] / sv.ep[EP_CAP, e]


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
def request_class_nb(prm, serve_code, r):
    """Request r's class from its code (``Workload.serve_code``)."""
    return (serve_code[r] // prm.i[PI.n_orders]) % N_CLASSES


@internal()
def service_nb(prm, topo, wl, r):
    """The service of request r: its model's endpoint kind for its workload (prod or dev)."""
    model = wl.serve_code[r] // (N_CLASSES * prm.i[PI.n_orders])
    dev = 1 if request_class_nb(prm, wl.serve_code, r) == CLASS_DEV else 0
    return topo_nb(topo, TOPO.service_of, 2 * model + dev)


@internal()
def candidate_nb(prm, topo, wl, r, s, k):
    """The endpoint of service s in the k-th region of request r's priority order (-1: none; -2: past the end)."""
    nreg = prm.i[PI.n_regions]
    reg = topo_nb(topo, TOPO.order_regions, (wl.serve_code[r] % prm.i[PI.n_orders]) * nreg + k)
    if reg < 0:
        return -2
    return topo_nb(topo, TOPO.endpoint_of, s * nreg + reg)


@internal()
def choose_endpoint_nb(prm, topo, sv, wl, r):
    """Global routing: the first endpoint of r's priority order below the threshold, else the least utilised."""
    s = service_nb(prm, topo, wl, r)
    thr = prm.f[PF.route_threshold]
    least = -1
    least_u = np.inf
    for k in range(prm.i[PI.n_regions]):
        e = candidate_nb(prm, topo, wl, r, s, k)
        if e == -2:
            break
        if e < 0:
            continue
        u = utilisation_nb(sv, e)
        if u < thr:
            return e
        if u < least_u:
            least = e
            least_u = u
    return least


@internal()
def route_nb(prm, topo, sv, ctr, wl, r, now):
    """Request r enters global routing at ``now``: choose its endpoint. Returns True if it reaches it at once
    (no routing delay); otherwise it joins the FIFO of routed requests (they arrive in routing order)."""
    sv.time[T_FED, r] = now
    sv.req[R_ENDPOINT, r] = choose_endpoint_nb(prm, topo, sv, wl, r)
    delay = prm.f[PF.route_delay]
    if delay == 0.0:
        return True
    k = ctr[CTR_ROUTE_TAIL]
    sv.req[R_ROUTED, k] = r
    sv.time[T_ROUTED, k] = now + delay
    ctr[CTR_ROUTE_TAIL] = k + 1
    return False


@internal()
def route_pop_nb(ctr, sv):
    """The routed request at the FIFO's head, removed."""
    k = ctr[CTR_ROUTE_HEAD]
    ctr[CTR_ROUTE_HEAD] = k + 1
    return sv.req[R_ROUTED, k]


@internal()
def route_top_time_nb(ctr, sv):
    k = ctr[CTR_ROUTE_HEAD]
    if k < ctr[CTR_ROUTE_TAIL]:
        return sv.time[T_ROUTED, k]
    return np.inf


@internal()
def queue_pop_nb(prm, topo, sv, wl, e):
    """The head of endpoint e's batch queue, else of its dev queue, removed (-1: both empty)."""
    q = 2 * (topo_nb(topo, TOPO.ep_service, e) * prm.i[PI.n_regions] + topo_nb(topo, TOPO.ep_region, e))
    if sv.queue[Q_HEAD, q] < 0:
        q += 1
        if sv.queue[Q_HEAD, q] < 0:
            return -1
    r = sv.queue[Q_HEAD, q]
    sv.ep[EPR.queued, e] -= 1
    sv.ep[EPR.queued_tokens, e] -= wl.token_size[r]
    sv.queue[Q_HEAD, q] = sv.req[R_NEXT, r]
    if sv.queue[Q_HEAD, q] < 0:
        sv.queue[Q_TAIL, q] = -1
    return r


@internal()
def queue_push_nb(prm, topo, sv, wl, r):
    """Queue batch or dev request r in its queue region (the first region of its order hosting its service);
    returns that region's endpoint."""
    s = service_nb(prm, topo, wl, r)
    e = -1
    for k in range(prm.i[PI.n_regions]):
        e = candidate_nb(prm, topo, wl, r, s, k)
        if e >= 0:
            break
    q = 2 * (s * prm.i[PI.n_regions] + topo_nb(topo, TOPO.ep_region, e))
    if request_class_nb(prm, wl.serve_code, r) == CLASS_DEV:
        q += 1
    sv.req[R_NEXT, r] = -1
    if sv.queue[Q_TAIL, q] >= 0:
        sv.req[R_NEXT, sv.queue[Q_TAIL, q]] = r
    else:
        sv.queue[Q_HEAD, q] = r
    sv.queue[Q_TAIL, q] = r
    sv.ep[EPR.queued, e] += 1
    sv.ep[EPR.queued_tokens, e] += wl.token_size[r]
    return e


@internal()
def request_completed_nb(sim, i, r):
    """Request r completed at instance i (its memory freed): it leaves the sums of i's endpoint (the sink when i is
    outside its groups), and the endpoint r was routed to feeds by its utilisation now (``feed_count_nb``); the
    feeds are made once the completing instance has started its next run (``serving_event_nb``)."""
    sv = sim.sv
    a = sim.cl.i[CI.endpoint, i]
    sv.ep[EPR.requests, a] -= 1
    if request_class_nb(sim.prm, sim.wl.serve_code, r) == CLASS_INTERACTIVE:
        sim.st.i[STI.interactive, i] -= 1
        if sim.st.i[STI.interactive, i] == 0:
            sv.ep[EPR.interactive, a] -= 1
    e = sv.req[R_ENDPOINT, r]
    feed_add_nb(sv, sim.ctr, e, feed_count_nb(sim.prm, sv, e))


@internal()
def feed_add_nb(sv, ctr, e, n):
    """Endpoint e feeds n more requests when the event's work is done; endpoints feed in the order they were first
    listed in the event (their first completion, or a queued arrival)."""
    if sv.ep[EPR.feeds, e] == 0:
        sv.ep[EPR.feed_order, ctr[CTR_FEED_N]] = e
        ctr[CTR_FEED_N] += 1
        sv.ep[EPR.feeds, e] = 1
    sv.ep[EPR.feeds, e] += n


@internal()
def serving_event_nb(sim, r, now):
    """The serving work of an event: the trace arrival of request r (r >= 0: an interactive request is routed, a
    batch or dev request queued, and its queue's endpoint may feed), then the feeds decided so far, endpoint by
    endpoint in listing order (``feed_add_nb``): queue heads routed in turn, until its count or its queues run
    out. Requests routed without delay are submitted to their instance here (the one call site of
    ``schedule_request_nb``)."""
    prm = sim.prm
    sv = sim.sv
    ctr = sim.ctr
    if r >= 0:
        if request_class_nb(prm, sim.wl.serve_code, r) != CLASS_INTERACTIVE:
            e = queue_push_nb(prm, sim.topo, sv, sim.wl, r)
            if prm.i[PI.feed_on_enqueue]:
                feed_add_nb(sv, ctr, e, feed_count_nb(prm, sv, e))
        elif route_nb(prm, sim.topo, sv, ctr, sim.wl, r, now):
            schedule_request_nb(sim, r, now)
    k = 0
    while k < ctr[CTR_FEED_N]:
        e = sv.ep[EPR.feed_order, k]
        while sv.ep[EPR.feeds, e] > 1:
            sv.ep[EPR.feeds, e] -= 1
            q = queue_pop_nb(prm, sim.topo, sv, sim.wl, e)
            if q < 0:
                break
            if route_nb(prm, sim.topo, sv, ctr, sim.wl, q, now):
                schedule_request_nb(sim, q, now)
        sv.ep[EPR.feeds, e] = 0
        k += 1
    ctr[CTR_FEED_N] = 0


#: ``serving_event_nb`` and ``request_completed_nb`` in the serving kernel, nothing in the plain one
#: (``kernels.variants``)
serving_event_if_serving_nb = serving_only(serving_event_nb)
request_completed_if_serving_nb = serving_only(request_completed_nb)
