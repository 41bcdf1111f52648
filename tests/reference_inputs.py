"""The plain-Python reference simulator's inputs (``tests/reference_sim.py``) for a sweepsim configuration:
requests, instances and parameters as plain Python values, from the same placement, performance tables and
kernel parameters the engine packs. Used by the differential tests and by the benchmarks' ratios.

With a topology the reference also gets (``topology_inputs``) each endpoint's region, service, group scheduler and
replica groups (instance ids, from the placement and the endpoint's group sizes), the routing and feeding
parameters from the config, and per request its class, service, region priority order and SLA. The name
resolution (a request's model and workload -> service, its region order -> region indices) comes from the
engine's own tables (``sweepsim.engine.serving.tables``): the reference checks the dynamics, not the parsing.
With ``[scaling]`` (``cfg.topology.scaling``) it also gets the scaling parameters as a plain dict with the config's
``seed``, each endpoint's model index (``cfg.topology.models()`` order) and workload, and the region count."""
from dataclasses import asdict

import numpy as np

from kernels.state_nb import PTF, PTI, PTY
from kernels.enums import InstanceType, PerfKind, Tag
from sweepsim.engine.placement import place_instances
from sweepsim.engine.serving import tables, trace_columns
from sweepsim.workload.trace import WORKLOAD_CLASSES
from sweepsim.engine.simulate import kernel_params, random_draws
from sweepsim.engine.performance import build_tables


def reference_inputs(cfg, trace):
    placement = place_instances(cfg)
    perf = build_tables(cfg.performance_model, placement.perf_keys)
    prm = kernel_params(cfg)
    instances = []
    for i in range(len(placement.sku)):
        c = placement.perf_row[i]
        if perf.i[PTI.kind, c] == PerfKind.CONSTANT:
            model = ("constant", float(perf.f[PTF.const_prompt, c]), float(perf.f[PTF.const_token, c]))
        else:
            k = perf.i[PTI.n_knots, c]
            model = ("db", list(perf.y[PTY.knots, c, :k]), list(perf.y[PTY.prompt, c, :k]),
                     list(perf.y[PTY.token, c, :k]))
        tag = {Tag.NONE: None, Tag.PROMPT: "prompt", Tag.TOKEN: "token"}[int(placement.tag[i])]
        instances.append({"tag": tag, "max_memory": int(placement.max_memory[i]),
                          "weights": int(placement.weights[i]), "perf": model})
    params = {"instance_type": "orca" if prm["instance_type"] == InstanceType.ORCA else "splitwise",
              "scheduler": cfg.scheduler, "max_batch_size": prm["max_batch_size"],
              "max_batch_tokens": prm["max_batch_tokens"], "max_preemptions": prm["max_preemptions"],
              "kv_bytes_per_token": prm["kv_bytes_per_token"], "transfer_bandwidth": prm["transfer_bandwidth"],
              "end_time": prm["end_time"], "mixed_factor": prm["mixed_factor"],
              "iteration_overhead": prm["iteration_overhead"],
              "prompt_max_pending_batch_tokens": prm["prompt_max_pending_tokens"], "event_order": cfg.event_order}
    requests = {"arrival": trace.arrival, "prompt_size": trace.prompt_size, "token_size": trace.token_size,
                "uniform": random_draws(cfg.seed, len(trace))}
    if cfg.topology is not None:
        for i, spec in enumerate(instances):
            spec["kv_bytes_per_token"] = int(placement.kv_per_token[i])
        params["topology"], serving_columns = topology_inputs(cfg, trace, placement)
        requests.update(serving_columns)
    return requests, instances, params


def topology_inputs(cfg, trace, placement):
    """(params["topology"], per-request columns) of the reference for a topology config (reference_sim T1-T8)."""
    topo = cfg.topology
    services = topo.services()
    models = topo.models()
    endpoints = []
    for j, e in enumerate(topo.endpoints):
        ids = [int(i) for i in np.flatnonzero(placement.endpoint == j)]
        assert len(ids) == e.instances
        groups, k = [], 0
        for size in e.group_sizes():
            groups.append(ids[k:k + size])
            k += size
        endpoints.append({"region": topo.regions.index(e.region), "service": services.index((e.model, e.workload)),
                          "scheduler": e.scheduler, "groups": groups, "model": models.index(e.model),
                          "workload": e.workload})
    f = topo.feeding
    params = {"endpoints": endpoints, "threshold": topo.routing.threshold, "delay": topo.routing.delay,
              "bands": [(u, n * f.granularity) for u, n in f.bands] if f.enabled else [],
              "on_enqueue": f.enabled and f.on_enqueue, "dev_sla_fraction": f.dev_sla_fraction,
              "n_regions": len(topo.regions)}
    scaling = getattr(topo, "scaling", None)
    if scaling is not None:
        params["scaling"] = {**asdict(scaling), "seed": int(cfg.seed)}
    tabs = tables(cfg, trace)
    _, model, cls, sla, _, order = trace_columns(trace)
    n_reg = len(topo.regions)
    rows = tabs["order_regions"]
    columns = {"class": [WORKLOAD_CLASSES[int(c)] for c in cls],
               "service": [int(tabs["service_of"][2 * int(m) + (1 if c == 2 else 0)]) for m, c in zip(model, cls)],
               "priority": [[int(x) for x in rows[o * n_reg:(o + 1) * n_reg] if x >= 0] for o in order],
               "sla": [float(x) for x in sla]}
    return params, columns
