"""Sweeps: run an experiment's configurations in batches and merge the results into one dataset.

Configurations are grouped by trace (loaded once per worker) and performance model, cut into chunks, and
each chunk is simulated by one ``engine.run_batch`` call (its configurations at once on threads). Backends: ``local`` (this
process, Numba threads over configurations) and ``ray`` (each task simulates a chunk and returns Arrow
tables to the driver; the trace is put in the object store once). Only the driver writes files.

Results directory (``results/<name>/``):
- ``summary.parquet``: one row per configuration x application: the varied parameters (typed), the config
  hash, the run summary (latencies, throughput, energy, cost) and the configuration's parameters.
- ``configs.parquet``: config hash -> varied parameters and the full resolved config as JSON.
- ``failures.parquet``: config hash -> error message and ``permanent`` (a failed configuration never stops the
  sweep; a rerun retries the failures that are not permanent, ``--retry-failed`` all of them).
- ``experiment.json``: the experiment's name and varied parameters (a directory holds one experiment).
- ``requests/config=<hash>/part-0.parquet`` with ``--keep-requests`` (hive-partitioned).
- ``parts/``: one committed file per finished chunk; a re-run skips configurations found there (resume).
All files are written atomically (temporary file + rename), so killing a sweep loses at most the chunks in
flight.
"""
import sys
import time
from pathlib import Path

from sweepsim.sweep.jobs import Job, chunk_id
from sweepsim.sweep.local import run_chunks_local
from sweepsim.sweep.store import Store


class Progress:
    """A progress bar on a TTY, periodic plain lines otherwise, nothing with quiet."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet, self.done, self.requests = total, quiet, 0, 0
        self.t0 = self.last = time.monotonic()
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="config", file=sys.stderr)

    def update(self, n_configs: int, n_requests: int):
        self.done += n_configs
        self.requests += n_requests
        rate = self.requests / max(time.monotonic() - self.t0, 1e-9)
        if self.bar is not None:
            self.bar.update(n_configs)
            self.bar.set_postfix_str(f"{rate:,.0f} simulated req/s")
        elif not self.quiet and (time.monotonic() - self.last > 5 or self.done == self.total):
            self.last = time.monotonic()
            el = time.monotonic() - self.t0
            eta = el / self.done * (self.total - self.done) if self.done else float("nan")
            print(f"{self.done}/{self.total} configurations, {rate:,.0f} simulated req/s, "
                  f"elapsed {el:.0f} s, ETA {eta:.0f} s", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_sweep(jobs: list[Job], out: Path, backend: str = "local", address: str | None = None,
              force: bool = False, keep_requests: bool = False, quiet: bool = False,
              chunk_size: int | None = None, identity: dict | None = None, retry_failed: bool = False) -> dict:
    """Run the jobs not yet committed in ``out`` and merge. ``identity`` (experiment name and varied
    parameters) guards the directory against another experiment's results (``force`` replaces them)."""
    store = Store(out)
    if identity is not None:
        store.claim(identity, replace=force, write=False)   # refuse another experiment's directory first
    started_ray = False
    if backend == "ray":  # before anything is written: a bad address leaves the directory as it was
        from sweepsim.sweep.ray_backend import connect
        started_ray = connect(address)
    try:
        if identity is not None:
            store.claim(identity, replace=force)
        done = set() if force else store.done_hashes(retry_failed)
        if keep_requests:  # a configuration committed without its per-request results runs again to keep them
            done -= {h for h in store.done_hashes(kinds=("summary",)) if not store.has_requests(h)}
        todo = [j for j in jobs if j.hash not in done]
        stats = {"total": len(jobs), "skipped": len(jobs) - len(todo), "ran": 0}
        try:
            if todo:
                _run_todo(todo, store, stats, backend, address, keep_requests, quiet, chunk_size, jobs)
        finally:  # also after an interruption: summary.parquet reflects every committed chunk
            store.merge(jobs)
    finally:
        if started_ray:
            import ray
            ray.shutdown()
    return stats


def _run_todo(todo, store, stats, backend, address, keep_requests, quiet, chunk_size, jobs, merge_every_s=30.0):
    if backend == "ray":
        from sweepsim.sweep.ray_backend import run_chunks_ray
        runner = run_chunks_ray
    else:
        runner = run_chunks_local
    progress = Progress(len(todo), quiet)
    last_merge = time.monotonic()
    try:
        for chunk, tables, n_req in runner(todo, keep_requests, chunk_size, address):
            store.commit(chunk_id(chunk), tables)
            stats["ran"] += len(chunk)
            progress.update(len(chunk), n_req)
            if time.monotonic() - last_merge > merge_every_s:
                store.merge(jobs)
                last_merge = time.monotonic()
    finally:
        progress.close()
