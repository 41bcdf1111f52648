"""Ray backend of sweeps (the only module that imports Ray).

Without an address a local Ray instance is started for the sweep (and stopped after it); with
``--address auto|HOST:PORT`` the sweep joins an existing cluster. Each trace is put in the object store
once; each task simulates one chunk of configurations with one Numba thread and returns Arrow tables, so
no worker writes to a shared filesystem.
"""
import os

from dataclasses import replace

import numpy as np
import polars as pl

from sweepsim.sweep.jobs import cut, default_chunk_size, groups_of
from sweepsim.sweep.local import simulate_chunk
from sweepsim.workload.trace import Trace, load_trace


def _chunk_task(jobs, trace: Trace, keep_requests: bool) -> dict:
    import numba
    numba.set_num_threads(1)
    # object-store arrays are read-only views: copy so the kernels keep one (writable-array) signature
    own = replace(trace, **{k: np.array(getattr(trace, k), copy=True) for k in (
        "request_id", "application_id", "arrival", "prompt_size", "token_size")},
        serving=trace.serving.take(np.arange(len(trace))) if trace.serving is not None else None)
    t = simulate_chunk(jobs, own, keep_requests)
    return {"summary": t["summary"].to_arrow() if t["summary"] is not None else None,
            "failures": t["failures"].to_arrow(),
            "requests": {h: df.to_arrow() for h, df in t["requests"].items()}}


CONNECT_TIMEOUT_S = 5.0


def check_address(address: str):
    """Fail within seconds, naming the address, when a Ray cluster address cannot be reached (Ray itself
    retries for minutes). ``auto`` is resolved by Ray from this machine's running cluster."""
    import socket

    from sweepsim.errors import InputError
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(None, "--address", f"expected auto or HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S) as s:
            # Ray's GCS speaks gRPC (HTTP/2): to the connection preface it answers with a SETTINGS frame
            s.settimeout(CONNECT_TIMEOUT_S)
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            head = s.recv(9)
    except OSError as e:
        raise InputError(None, "--address", f"no Ray cluster reachable at {address} ({e.strerror or e}); start one "
                                            "with `ray start --head`, or omit --address for a local Ray") from None
    if len(head) < 9 or head[3] != 0x04:
        raise InputError(None, "--address", f"{address} answers, but not as a Ray cluster (no gRPC); give the "
                                            "address `ray start --head` printed, or omit --address for a local Ray")


def connect(address) -> bool:
    """Start a local Ray or join the one at ``address`` (quietly: Ray's own log lines stay off stderr).
    Called before a sweep writes anything, so that a bad address leaves the results directory untouched.
    Returns whether Ray was started here (and must be shut down by the caller)."""
    import ray
    if ray.is_initialized():
        return False
    _init(address)
    return True


def _init(address):
    import logging

    import ray

    from sweepsim.errors import InputError
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
    except Exception as e:  # Ray raises many kinds (connection, timeout, start-up failures)
        raise InputError(None, "--address", f"cannot connect to Ray at {address or 'a new local instance'}: "
                                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def run_chunks_ray(jobs, keep_requests: bool, chunk_size: int | None, address: str | None):
    import ray
    started = False
    if not ray.is_initialized():
        _init(address)
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
