"""Ray backend of sweeps (the only module that imports Ray).

Without an address a local Ray instance is started for the sweep (and stopped after it); with
``--address auto|HOST:PORT`` the sweep joins an existing cluster. Each trace is put in the object store
once; each task simulates one chunk of configurations with one Numba thread and returns Arrow tables, so
no worker writes to a shared filesystem.
"""
import os

import numpy as np
import polars as pl

from sweepsim.sweep import cut, default_chunk_size, groups_of, simulate_chunk
from sweepsim.trace import Trace, load_trace


def _chunk_task(jobs, trace: Trace, keep_requests: bool) -> dict:
    import numba
    numba.set_num_threads(1)
    # object-store arrays are read-only views: copy so the kernels keep one (writable-array) signature
    own = Trace(trace.path, *(np.array(a, copy=True) for a in (trace.request_id, trace.application_id,
                                                                trace.arrival, trace.prompt_size,
                                                                trace.token_size)))
    t = simulate_chunk(jobs, own, keep_requests)
    return {"summary": t["summary"].to_arrow() if t["summary"] is not None else None,
            "failures": t["failures"].to_arrow(),
            "requests": {h: df.to_arrow() for h, df in t["requests"].items()}}


def run_chunks_ray(jobs, keep_requests: bool, chunk_size: int | None, address: str | None):
    import ray
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        task = ray.remote(num_cpus=1)(_chunk_task)
        pending = {}
        for group in groups_of(jobs):
            trace = load_trace(group[0].config.trace)
            ref = ray.put(trace)
            size = chunk_size or default_chunk_size(len(group), len(trace), cpus)
            for chunk in cut(group, size):
                pending[task.remote(chunk, ref, keep_requests)] = (chunk, len(trace))
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            chunk, n = pending.pop(done[0])
            out = ray.get(done[0])
            tables = {"summary": pl.from_arrow(out["summary"]) if out["summary"] is not None else None,
                      "failures": pl.from_arrow(out["failures"]),
                      "requests": {h: pl.from_arrow(t) for h, t in out["requests"].items()}}
            yield chunk, tables, n * len(chunk)
    finally:
        if started:
            ray.shutdown()
