"""Kernel inputs of a topology (``kernels.serving_nb``): its parameters, its packed tables (``kernels.layout.TOPOLOGY``)
and the per-request serving columns, with the trace's models, workloads and region orders resolved against it.

A trace without serving columns is interactive prod traffic of the topology's only model, each request with every
region in the topology's order. Errors name the first request that cannot be served.
"""
import numpy as np

from kernels.enums import PlanArbiter, ScalePolicy, Scheduler
from kernels.layout import TOPOLOGY
from sweepsim.config.topology import SILOS, Planning, Scaling
from sweepsim.errors import InputError
from sweepsim.workload.trace import WORKLOAD_CLASSES

GROUP_SCHEDULER_CODES = {"token_jsq": Scheduler.TOKEN_JSQ, "jsq": Scheduler.JSQ}
NO_BAND = -1.0
PLAN_ARBITER_CODES = {"none": PlanArbiter.NONE, "lt-i": PlanArbiter.IMMEDIATE, "deferred": PlanArbiter.DEFERRED,
                      "lt-u": PlanArbiter.UTILIZATION, "lt-ua": PlanArbiter.FORECAST}
SCALE_POLICY_CODES = {"utilization": ScalePolicy.UTILIZATION, "chiron": ScalePolicy.CHIRON, "queue": ScalePolicy.QUEUE}


def serving_params(cfg) -> dict:
    """The topology parameters of ``kernels.layout`` (neutral values without a topology)."""
    t = cfg.topology
    out = {"topology": 0, "n_regions": 0, "n_orders": 1, "n_models": 0, "feed_on_enqueue": 0, "route_threshold": 0.0,
           "route_delay": 0.0, "dev_sla_fraction": 0.0}
    for k in range(1, 5):
        out[f"feed_count_{k}"] = 0
        out[f"feed_util_{k}"] = NO_BAND
    sc = t.scaling if t is not None else Scaling()
    out.update(scale_level=sc.level, scale_policy=SCALE_POLICY_CODES[sc.policy], scale_instant=int(sc.delays == "lockout"),
               scale_min=sc.min_instances, scale_max=sc.max_instances, scale_seed=int(cfg.seed) & (2 ** 63 - 1),
               scale_upper=sc.upper, scale_lower=sc.lower, scale_interval=sc.interval, scale_timer=sc.timer,
               spin_up=sc.spin_up, reclaim_delay=sc.reclaim_delay, spin_down=sc.spin_down,
               chiron_pending_time=sc.pending_time, chiron_prompt_time=sc.prompt_time,
               chiron_decode_throughput=sc.decode_throughput)
    pl = t.planning if t is not None else Planning()
    out.update(plan_arbiter=PLAN_ARBITER_CODES[pl.arbiter], plan_ticks=0, plan_minutes=0, plan_start=0.0,
               plan_interval=pl.interval, plan_override=pl.override, plan_ratio=pl.ratio)
    if t is None:
        return out
    f = t.feeding
    out.update(topology=1, n_regions=len(t.regions), n_models=len(t.models()), feed_on_enqueue=int(f.enabled and f.on_enqueue),
               route_threshold=t.routing.threshold, route_delay=t.routing.delay, dev_sla_fraction=f.dev_sla_fraction)
    if f.enabled:
        for k, (u, n) in enumerate(f.bands, start=1):
            out[f"feed_util_{k}"] = u
            out[f"feed_count_{k}"] = n * f.granularity
    return out


#: what depends on a trace alone, computed once for it (a run, or every configuration of a sweep chunk): the last
#: trace's entries, with the trace itself to check identity
_PER_TRACE: dict = {}


def _per_trace(trace, name, compute):
    hit = _PER_TRACE.get("trace")
    if hit is not trace:
        _PER_TRACE.clear()
        _PER_TRACE["trace"] = trace
    if name not in _PER_TRACE:
        _PER_TRACE[name] = compute()
    return _PER_TRACE[name]


def trace_columns(trace):
    """(model names, model code (int32), class code (int8), sla, region orders, order code (int32)) per request."""
    return _per_trace(trace, "columns", lambda: _trace_columns(trace))


def _trace_columns(trace):
    n = len(trace)
    sv = getattr(trace, "serving", None)
    if sv is None:
        return ("",), np.zeros(n, np.int32), np.zeros(n, np.int8), np.full(n, np.nan), ((),), np.zeros(n, np.int32)
    return (sv.model_names, np.ascontiguousarray(sv.model, np.int32), np.ascontiguousarray(sv.request_class(), np.int8),
            np.ascontiguousarray(sv.sla, np.float64), sv.region_orders, np.ascontiguousarray(sv.regions, np.int32))


def _combinations(trace) -> dict[int, int]:
    """For each (model code x 3 + class) x n_orders + order present in the trace, its first request's row."""
    _, model, cls, _, orders, order = trace_columns(trace)
    combo = (model.astype(np.int64) * 3 + cls) * len(orders) + order
    uniq, at = np.unique(combo, return_index=True)
    return dict(zip(uniq.tolist(), at.tolist()))


def region_of(regions, token: str) -> int:
    """The index of a trace's region token: a region name, or SageServe's 0-based digit index (-1: neither)."""
    if token in regions:
        return regions.index(token)
    if token.isascii() and token.isdigit() and int(token) < len(regions):
        return int(token)
    return -1


def _region_index(topo, token, src, rid):
    k = region_of(topo.regions, token)
    if k >= 0:
        return k
    raise InputError(src, "regions", f"request_id {rid}: unknown region {token!r}; the topology's regions: "
                                     f"{', '.join(topo.regions)} (or their 0-based index)")


def tables(cfg, trace) -> dict[str, np.ndarray]:
    """The packed tables of ``cfg``'s topology on ``trace`` by the names of ``kernels.layout.TOPOLOGY``; checks that
    every request has a model, a workload and a region order the topology can serve."""
    topo = cfg.topology
    src = trace.path
    names, _, _, _, orders, _ = trace_columns(trace)
    n_reg = len(topo.regions)
    services = topo.services()
    eps = topo.endpoints
    out = {"ep_region": [topo.regions.index(e.region) for e in eps],
           "ep_service": [services.index((e.model, e.workload)) for e in eps],
           "ep_model": [topo.models().index(e.model) for e in eps],
           "ep_silo": [SILOS.index(e.workload) for e in eps],
           "ep_scheduler": [GROUP_SCHEDULER_CODES[e.scheduler] for e in eps]}
    first_group, n_groups, g_first, g_count = [], [], [], []
    inst = 0
    for e in eps:
        first_group.append(len(g_first))
        sizes = e.group_sizes()
        n_groups.append(len(sizes))
        for size in sizes:
            g_first.append(inst)
            g_count.append(size)
            inst += size
    out.update(ep_first_group=first_group, ep_groups=n_groups, group_first_instance=g_first, group_instances=g_count)
    endpoint_of = np.full(len(services) * n_reg, -1, np.int64)
    for j, e in enumerate(eps):
        endpoint_of[services.index((e.model, e.workload)) * n_reg + topo.regions.index(e.region)] = j
    out["endpoint_of"] = endpoint_of
    served = topo.models()
    # the first request of each (model code, class, order) combination, for the checks and messages
    first_row = _per_trace(trace, "combinations", lambda: _combinations(trace))
    present = {c // (3 * len(orders)) for c in first_row}
    service_of = np.full(2 * len(names), -1, np.int64)
    for m, name in enumerate(names):
        if name == "":
            if len(served) != 1 and m in present:
                raise InputError(src, "model", f"requests without a model (no model column, or empty cells) and the "
                                               f"topology serves several models ({', '.join(served)}): give each "
                                               "request a model")
            name = served[0]
        for dev in (0, 1):
            silo = "dev" if dev else "prod"
            for cand in ((name, silo), (name, "any")):
                if cand in services:
                    service_of[2 * m + dev] = services.index(cand)
                    break
    out["service_of"] = service_of
    order_regions = np.full(max(len(orders), 1) * n_reg, -1, np.int64)
    first_of_order = {}
    for c, k in first_row.items():
        first_of_order[c % len(orders)] = min(k, first_of_order.get(c % len(orders), k))
    for o, toks in enumerate(orders):
        rid = trace.request_id[first_of_order[o]] if o in first_of_order else None
        idx = [_region_index(topo, t, src, rid) for t in toks] if toks else list(range(n_reg))
        if len(set(idx)) != len(idx):
            raise InputError(src, "regions", f"request_id {rid}: a region appears twice in its priority order")
        order_regions[o * n_reg:o * n_reg + len(idx)] = idx
    out["order_regions"] = order_regions
    for c, k in first_row.items():
        m, rest = divmod(c, 3 * len(orders))
        kls, o = divmod(rest, len(orders))
        s = service_of[2 * m + (1 if kls == 2 else 0)]
        rid = int(trace.request_id[k])
        if s < 0:
            name = names[m] or served[0]
            if name in served:
                raise InputError(src, "workload", f"request_id {rid}: the topology has no endpoint of {name} for "
                                                  f"{WORKLOAD_CLASSES[kls]} requests")
            raise InputError(src, "model", f"request_id {rid}: model {name!r} is not served by topology {topo.name} "
                                           f"(serves {', '.join(served)})")
        regs = order_regions[o * n_reg:(o + 1) * n_reg]
        if not any(endpoint_of[s * n_reg + r] >= 0 for r in regs if r >= 0):
            raise InputError(src, "regions", f"request_id {rid}: no region of its priority order hosts "
                                             f"{names[m] or served[0]}")
    return {k: np.asarray(v, np.int64) for k, v in out.items()}


def pack_tables(tabs: dict | None) -> np.ndarray:
    """One int64 array: the section offsets (len(TOPOLOGY) + 1), then the sections in ``TOPOLOGY`` order."""
    sizes = [len(tabs[k]) if tabs else 0 for k in TOPOLOGY]
    head = len(TOPOLOGY) + 1
    off = head + np.concatenate([[0], np.cumsum(sizes)])
    parts = [off.astype(np.int64)] + ([tabs[k] for k in TOPOLOGY] if tabs else [])
    return np.concatenate(parts).astype(np.int64)


def serving_inputs(cfgs, placements, trace):
    """(req_code, req_sla) shared by the configurations (one element each when none has a topology),
    each configuration's packed topology tables, and the number of region orders (``n_orders``). ``req_code``
    packs a request's model, class and region order: (model x 3 + class) x n_orders + order (int32)."""
    blobs = [pack_tables(tables(c, trace) if c.topology is not None else None) for c in cfgs]
    if not any(c.topology is not None for c in cfgs):
        return (np.zeros(1, np.int32), np.full(1, np.nan)), blobs, 1
    _, model, cls, sla, orders, order = trace_columns(trace)
    n_orders = max(len(orders), 1)
    if (model.max(initial=0) + 1) * 3 * n_orders >= 2 ** 31:
        raise InputError(trace.path, "regions", f"{len(orders)} distinct region orders x models are too many")
    code = (model * 3 + cls) * np.int32(n_orders) + order
    return (code.astype(np.int32, copy=False), sla), blobs, n_orders


def per_service_order(cfg, trace, value, rows: slice | None = None) -> np.ndarray:
    """Per request (``rows``: of those only), ``value(endpoints)`` of the endpoints its routing may choose: its
    service's endpoints in the regions of its priority order, in that order (once per distinct (service, order))."""
    tabs = tables(cfg, trace)
    _, model, cls, _, orders, order = trace_columns(trace)
    if rows is not None:
        model, cls, order = model[rows], cls[rows], order[rows]
    n_reg = len(cfg.topology.regions)
    combo = (model.astype(np.int64) * 2 + (cls == 2)) * len(orders) + order
    uniq, inv = np.unique(combo, return_inverse=True)
    out = np.empty(len(uniq), np.int64)
    for j, c in enumerate(uniq.tolist()):
        sd, o = divmod(c, len(orders))
        s = tabs["service_of"][sd]
        eps = [int(tabs["endpoint_of"][s * n_reg + r]) for r in tabs["order_regions"][o * n_reg:(o + 1) * n_reg]
               if r >= 0]
        out[j] = value([e for e in eps if e >= 0])
    return out[inv.reshape(-1)]


def request_room(cfg, placement, trace, room: np.ndarray) -> np.ndarray:
    """Per request, the fewest KV tokens (``room``: per instance) of an instance its routing may choose."""
    ep_room = np.full(len(cfg.topology.endpoints), np.iinfo(np.int64).max, np.int64)
    np.minimum.at(ep_room, placement.endpoint, room)
    return per_service_order(cfg, trace, lambda eps: min(ep_room[e] for e in eps))
