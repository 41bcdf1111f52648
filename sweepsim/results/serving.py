"""Result columns and tables of topology runs (regions, model endpoints, request classes).

- requests.parquet gains ``region``, ``endpoint``, ``model``, ``workload`` (prod | dev), ``request_class``
  (interactive | batch | dev), ``sla`` [s], ``fed_time`` [s] (when the request entered global routing: its
  arrival for interactive requests, its feed for batch and dev; null when never fed), ``slo_met`` (completed
  within ``sla`` of its trace arrival; null without an SLA) and ``ttft_from_arrival`` / ``e2e_from_arrival`` [s];
  its ``queue_time``, ``ttft``, ``tbt``, ``tpot`` and ``e2e`` count from ``fed_time``. A request never fed is
  attributed to the endpoint whose queue holds it.
- summary.parquet: one row per (region, model, request class), then a totals row (``all``).
- endpoints.parquet: one row per endpoint (``endpoints_table``).
"""
import numpy as np
import polars as pl

from sweepsim.engine.serving import per_service_order, trace_columns
from sweepsim.results.scaling import endpoint_scaling_columns
from sweepsim.workload.trace import WORKLOAD_CLASSES


def queue_endpoints(cfg, trace, rows: slice | None = None) -> np.ndarray:
    """Per request (``rows``: of those only), the endpoint of the queue a batch or dev request waits in (for every
    request: the endpoint of its service in the first region of its priority order that hosts it)."""
    return per_service_order(cfg, trace, lambda eps: eps[0], rows)


def _enum(codes: np.ndarray, categories) -> pl.Series:
    """A column of ``categories[codes]`` as a polars Enum (physical codes = ``codes``), without per-row strings."""
    cats = list(dict.fromkeys(categories))
    index = {c: k for k, c in enumerate(cats)}
    lut = np.array([index[c] for c in categories], np.uint32)
    return pl.Series(lut[codes]).replace_strict(dict(enumerate(cats)), return_dtype=pl.Enum(cats))


def serving_columns(res, rows: slice | None = None) -> dict:
    """The topology columns of requests.parquet (``rows``: of those requests only; text columns as Enums: region,
    endpoint, model, workload and request_class)."""
    cfg, tr = res.config, res.trace
    cut = (lambda a: a) if rows is None else (lambda a: a[rows])  # noqa: E731
    topo = cfg.topology
    names, model, cls, sla, _, _ = trace_columns(tr)
    model, cls, sla = cut(model), cut(cls), cut(sla)
    endpoint = cut(res.endpoint)
    routed = endpoint >= 0
    ep = np.where(routed, endpoint, queue_endpoints(cfg, tr, rows) if not routed.all() else 0)
    eps = topo.endpoints
    arrival, token_end, completed = cut(tr.arrival), cut(res.token_end), cut(res.completed)
    e2e_arr = token_end - arrival
    with np.errstate(invalid="ignore"):
        met = pl.Series(completed & (e2e_arr <= sla)).set(pl.Series(np.isnan(sla)), None)
    return {
        "region": _enum(np.array([topo.regions.index(e.region) for e in eps])[ep], topo.regions),
        "endpoint": _enum(ep, [e.name for e in eps]),
        "model": _enum(model, [n or topo.models()[0] for n in names]),
        "workload": _enum((cls == 2).astype(np.int64), ("prod", "dev")),
        "request_class": _enum(cls, WORKLOAD_CLASSES),
        "sla": sla, "fed_time": cut(res.fed_time), "slo_met": met,
        "ttft_from_arrival": cut(res.prompt_end) - arrival, "e2e_from_arrival": e2e_arr,
    }


def kv_byte_seconds(res, n_endpoints: int) -> np.ndarray:
    """Per endpoint, the integral of its KV bytes in use over the run [byte s]: a request holds KV(prompt + 1) from
    its prompt's start and KV(output - 1) from its decode's start, until it completes (or the run ends)."""
    tr = res.trace
    p = res.placement
    inst = res.prompt_instance
    ran = inst >= 0
    kv = p.kv_per_token[inst[ran]]
    end = np.where(np.isnan(res.token_end), res.end_clock, res.token_end)[ran]
    ps, ts = res.prompt_start[ran], res.token_start[ran]
    pb = np.where(np.isnan(ps), 0.0, kv * (tr.prompt_size[ran] + 1) * (end - np.nan_to_num(ps, nan=0.0)))
    has_dec = (tr.token_size[ran] > 1) & ~np.isnan(ts)
    db = np.where(has_dec, kv * (tr.token_size[ran] - 1) * (end - np.nan_to_num(ts, nan=0.0)), 0.0)
    return np.bincount(p.endpoint[inst[ran]], weights=pb + db, minlength=n_endpoints)


def endpoints_table(res, requests: pl.DataFrame, instance_energy: np.ndarray) -> pl.DataFrame:
    """One row per endpoint: its instances and groups; time-averaged KV utilisation (KV bytes in use over its KV
    capacity) and busy fraction of its instances; requests routed to it and completed; batch and dev requests
    still queued for it at the end; energy [J] (``instance_energy``: GPU energy per instance, plus its servers'
    base power and idle GPUs) and cost [$] of its servers over the run (with autoscaling: of its allocated
    instance-hours); GPU-hours by lifecycle state, waste and scaling actions (``results.scaling``)."""
    from sweepsim.config.catalog import get_sku
    eps = res.config.topology.endpoints
    p = res.placement
    n = len(eps)
    t = res.end_clock
    cap = np.bincount(p.endpoint, weights=(p.max_memory - p.weights).astype(np.float64), minlength=n)
    kv_util = kv_byte_seconds(res, n) / (cap * t) if t > 0 else np.zeros(n)
    busy = np.bincount(p.endpoint, weights=res.busy_time, minlength=n)
    count = np.bincount(p.endpoint, minlength=n)
    energy = np.bincount(p.endpoint, weights=instance_energy, minlength=n)
    server_ep = np.full(p.n_servers, -1, np.int64)
    gpus = np.zeros(p.n_servers, np.int64)
    np.maximum.at(server_ep, p.server, p.endpoint)
    np.add.at(gpus, p.server, p.num_gpus)
    cost = np.zeros(n)
    for s, sku_name in enumerate(p.server_sku):
        sku = get_sku(sku_name)
        e = server_ep[s]
        energy[e] += (sku.server_base_power_w + (sku.num_processors - gpus[s]) * sku.processor.power_idle_w) * t
        cost[e] += sku.cost_per_hour * t / 3600.0
    # the endpoint column's categories are the endpoint names (several endpoints share one): locate by
    # (region, name) codes
    names = list(dict.fromkeys(e.name for e in eps))
    regions = res.config.topology.regions
    lut = np.full((len(regions), len(names)), -1, np.int64)
    for j, e in enumerate(eps):
        lut[regions.index(e.region), names.index(e.name)] = j
    code = lut[requests["region"].to_physical().to_numpy(), requests["endpoint"].to_physical().to_numpy()]
    klass = requests["request_class"].to_physical().to_numpy()
    fed = ~np.isnan(requests["fed_time"].to_numpy())
    queued = ~fed & (requests["arrival"].to_numpy() <= t) & ~requests["rejected"].to_numpy()
    return pl.DataFrame({
        "region": [e.region for e in eps], "endpoint": [e.name for e in eps], "model": [e.model for e in eps],
        "workload": [e.workload for e in eps], "scheduler": [e.scheduler for e in eps],
        "instances": count.astype(np.int64), "groups": [len(e.group_sizes()) for e in eps],
        "kv_capacity_bytes": cap, "kv_utilization": kv_util,
        "busy_utilization": np.where(count > 0, busy / np.maximum(count, 1) / t if t > 0 else 0.0, np.nan),
        "requests_routed": np.bincount(code[fed], minlength=n).astype(np.int64),
        "requests_completed": np.bincount(code[requests["completed"].to_numpy()], minlength=n).astype(np.int64),
        **{f"{c}_queued": np.bincount(code[queued & (klass == WORKLOAD_CLASSES.index(c))], minlength=n).astype(np.int64)
           for c in ("batch", "dev")},
        "energy_j": energy, "cost_usd": cost,
    }).with_columns(**{k: pl.Series(k, v) for k, v in endpoint_scaling_columns(res).items()})
