"""Simulating a chunk of jobs (one kernel call, each configuration failing on its own) and the local backend
(this process, Numba threads over configurations)."""
import dataclasses

import polars as pl

from sweepsim.engine.simulate import RunResult, run_batch
from sweepsim.results.tables import requests_table, summary_table
from sweepsim.sweep.jobs import Job, cut, default_chunk_size, groups_of, simulation_key
from sweepsim.sweep.store import FAILURE_SCHEMA, column_type
from sweepsim.workload.trace import Trace, load_trace


def simulate_chunk(jobs: list[Job], trace: Trace, keep_requests: bool) -> dict:
    """Simulate a chunk of configurations sharing a trace; returns Arrow-convertible tables.

    Each configuration succeeds or fails on its own: it is checked alone first (placement, performance
    data, requests that can never fit; a bad one is a *permanent* failure with its own error), the rest run in
    one kernel call, and if that call fails they are rerun one by one so that only the failing ones fail
    (a *transient* failure, retried by the next run of the sweep)."""
    from sweepsim.engine.simulate import check_runnable
    from sweepsim.errors import InputError
    ok, failed = [], []
    for j in jobs:
        try:
            check_runnable(j.config, trace)
            ok.append(j)
        except (InputError, ValueError) as e:
            failed.append({"config_hash": j.hash, "error": str(e), "permanent": True})
    summaries, requests = [], {}
    unique: dict = {}  # configurations that simulate identically run once
    for j in ok:
        unique.setdefault(simulation_key(j.config), []).append(j)
    groups = list(unique.values())
    try:
        results = run_batch([js[0].config for js in groups], trace) if groups else []
    except Exception:  # isolate the failing configurations
        results = []
        for js in groups:
            try:
                results.append(run_batch([js[0].config], trace)[0])
            except Exception as e:
                results.append(None)
                failed += [{"config_hash": j.hash, "error": f"{type(e).__name__}: {e}", "permanent": False}
                           for j in js]
    for js, res in zip(groups, results):
        if res is None:
            continue
        for j in js:
            mine = dataclasses.replace(res, config=j.config)
            summaries.append(_summary(j, mine))
            if keep_requests:
                requests[j.hash] = requests_table(mine)
    return {"summary": pl.concat(summaries, how="diagonal_relaxed") if summaries else None,
            "failures": pl.DataFrame(failed, schema=FAILURE_SCHEMA),
            "requests": requests}


def _summary(job: Job, res: RunResult) -> pl.DataFrame:
    s = summary_table(res)
    front = {"config_hash": job.hash, **job.varied}
    cols = [pl.lit(v, dtype=column_type(v)).alias(k) for k, v in front.items()]
    rest = [c for c in s.columns if c not in front]
    return s.select(cols + [pl.col(c) for c in rest])


def run_chunks_local(jobs: list[Job], keep_requests: bool, chunk_size: int | None, address=None):
    """This process: each chunk is one ``run_batch`` call over Numba's number of threads."""
    import numba
    workers = numba.get_num_threads()
    for group in groups_of(jobs):
        trace = load_trace(group[0].config.trace)
        size = chunk_size or default_chunk_size(len(group), len(trace), workers)
        for chunk in cut(group, size):
            yield chunk, simulate_chunk(chunk, trace, keep_requests), len(trace) * len(chunk)
