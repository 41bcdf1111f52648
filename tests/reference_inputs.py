"""The plain-Python reference simulator's inputs (``tests/reference_sim.py``) for a sweepsim configuration:
requests, instances and parameters as plain Python values, from the same placement, performance tables and
kernel parameters the engine packs. Used by the differential tests and by the benchmarks' ratios."""
from kernels.enums import InstanceType, PerfKind, Tag
from sweepsim.engine.placement import place_instances
from sweepsim.engine.simulate import kernel_params, random_draws
from sweepsim.engine.performance import build_tables


def reference_inputs(cfg, trace):
    placement = place_instances(cfg)
    perf = build_tables(cfg.performance_model, placement.perf_keys)
    prm = kernel_params(cfg)
    instances = []
    for i in range(len(placement.sku)):
        c = placement.perf_row[i]
        if perf.kind[c] == PerfKind.CONSTANT:
            model = ("constant", float(perf.const_prompt[c]), float(perf.const_token[c]))
        else:
            k = perf.n_knots[c]
            model = ("db", list(perf.knots[c, :k]), list(perf.prompt_y[c, :k]), list(perf.token_y[c, :k]))
        tag = {Tag.NONE: None, Tag.PROMPT: "prompt", Tag.TOKEN: "token"}[int(placement.tag[i])]
        instances.append({"tag": tag, "max_memory": int(placement.max_memory[i]),
                          "weights": int(placement.weights[i]), "perf": model})
    params = {"instance_type": "orca" if prm["instance_type"] == InstanceType.ORCA else "splitwise",
              "scheduler": cfg.scheduler, "max_batch_size": prm["max_batch_size"],
              "max_batch_tokens": prm["max_batch_tokens"], "max_preemptions": prm["max_preemptions"],
              "kv_bytes_per_token": prm["kv_bytes_per_token"], "transfer_bandwidth": prm["transfer_bandwidth"],
              "end_time": prm["end_time"], "mixed_factor": prm["mixed_factor"],
              "prompt_max_pending_batch_tokens": prm["prompt_max_pending_tokens"], "event_order": cfg.event_order}
    requests = {"arrival": trace.arrival, "prompt_size": trace.prompt_size, "token_size": trace.token_size,
                "uniform": random_draws(cfg.seed, len(trace))}
    return requests, instances, params
