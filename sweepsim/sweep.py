"""Sweeps: run an experiment's configurations in batches and merge the results into one dataset.

Configurations are grouped by trace (loaded once per worker) and performance model, cut into chunks, and
each chunk is simulated by ONE parallel kernel call (``engine.run_batch``). Backends: ``local`` (this
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
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sweepsim.config import RunConfig
from sweepsim.engine import RunResult, run_batch
from sweepsim.errors import InputError
from sweepsim.results import requests_table, summary_table, write_parquet_atomic, write_text_atomic
from sweepsim.trace import Trace, load_trace
from sweepsim.tracegen import ensure_trace, file_digest

PARTS = "parts"


@dataclass
class Job:
    """One configuration of a sweep."""
    hash: str
    config: RunConfig
    varied: dict
    raw: dict


def config_hash(raw: dict, cfg: RunConfig) -> str:
    """Hash of the resolved configuration and of the trace file's content."""
    doc = json.dumps(raw, sort_keys=True, default=str) + "|" + (file_digest(cfg.trace) if cfg.trace else "")
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def make_jobs(points: list[dict], configs: list[RunConfig], varied: list[dict]) -> list[Job]:
    """The sweep's jobs; generated traces are generated here (once per spec), as the sweep starts."""
    for cfg in {c.trace: c for c in configs if c.trace_spec is not None}.values():
        ensure_trace(cfg)
    return [Job(config_hash(raw, cfg), cfg, v, raw) for raw, cfg, v in zip(points, configs, varied)]


FAILURE_SCHEMA = {"config_hash": pl.String, "error": pl.String, "permanent": pl.Boolean}


def simulate_chunk(jobs: list[Job], trace: Trace, keep_requests: bool) -> dict:
    """Simulate a chunk of configurations sharing a trace; returns Arrow-convertible tables.

    Each configuration succeeds or fails on its own: it is checked alone first (placement, performance
    data, requests that can never fit; a bad one is a *permanent* failure with its own error), the rest run in
    one kernel call, and if that call fails they are rerun one by one so that only the failing ones fail
    (a *transient* failure, retried by the next run of the sweep)."""
    from sweepsim.engine import check_runnable
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


def _dtype(v):
    """Typed columns for varied parameters (Python ints as Int64, not polars' default Int32)."""
    if isinstance(v, bool):
        return pl.Boolean
    if isinstance(v, int):
        return pl.Int64
    if isinstance(v, float):
        return pl.Float64
    return pl.String if isinstance(v, str) else None


def _summary(job: Job, res: RunResult) -> pl.DataFrame:
    s = summary_table(res)
    front = {"config_hash": job.hash, **job.varied}
    cols = [pl.lit(v, dtype=_dtype(v)).alias(k) for k, v in front.items()]
    rest = [c for c in s.columns if c not in front]
    return s.select(cols + [pl.col(c) for c in rest])


class Store:
    """The results directory of one experiment: committed chunk parts, merged tables, resume bookkeeping.

    ``experiment.json`` names the experiment (name and varied parameters); another experiment is refused
    (``replace=True`` clears the directory first). A configuration counts as done when a part holds its
    summary, or a *permanent* failure (unless ``retry_failed``); transient failures are retried."""

    MANIFEST = "experiment.json"
    OURS = ("summary.parquet", "configs.parquet", "failures.parquet", MANIFEST, PARTS, "requests")

    def __init__(self, out: Path):
        self.out = Path(out)
        self.parts = self.out / PARTS

    def claim(self, identity: dict, replace: bool = False):
        """Check that the directory holds nothing or this experiment's results (before anything is written);
        with ``replace``, remove another experiment's results. Then record the identity."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise InputError(out, "--out", "is a file, not a directory")
        if (out / "requests.parquet").exists() or (out / "instances.parquet").exists():
            raise InputError(out, "--out", "holds the results of `sweepsim run` (requests.parquet); a results "
                                           "directory holds one experiment: choose another --out")
        for name in (PARTS, "requests"):
            if (out / name).exists() and not (out / name).is_dir():
                raise InputError(out / name, "--out", "is a file where the results directory keeps a folder")
        for name in ("summary.parquet", "configs.parquet", "failures.parquet", self.MANIFEST):
            if (out / name).is_dir():
                raise InputError(out / name, "--out", "is a directory where the results directory keeps a file")
        mine = out / self.MANIFEST
        have = None
        if mine.exists():
            try:
                have = json.loads(mine.read_text())
            except (OSError, ValueError):
                have = {}
            if not isinstance(have, dict):  # damaged: counts as another experiment's
                have = {}
        elif (out / "configs.parquet").exists() or self.parts.exists():  # written before manifests existed
            cols = pl.read_parquet_schema(out / "configs.parquet") if (out / "configs.parquet").exists() else {}
            have = {"name": identity["name"], "axes": [c for c in cols if c not in ("config_hash", "config_json")]}
        if have is not None and (have.get("name"), have.get("axes")) != (identity["name"], identity["axes"]):
            if not replace:
                raise InputError(out, "--out", f"holds the results of another experiment ({have.get('name')!r}, "
                                 f"varying {', '.join(have.get('axes') or []) or 'nothing'}); a results directory "
                                 "holds one experiment: choose another --out, or --force to replace them")
            self.clear()
        write_text_atomic(mine, json.dumps(identity, indent=1, sort_keys=True))

    def clear(self):
        import shutil
        for name in self.OURS:
            p = self.out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def done_hashes(self, retry_failed: bool = False) -> set[str]:
        done = set()
        if self.parts.exists():
            for f in self.parts.glob("*.parquet"):
                try:
                    df = pl.read_parquet(f)
                except Exception:  # an unreadable part is rerun
                    continue
                if "config_hash" not in df.columns:
                    continue
                if f.name.endswith(".failures.parquet"):
                    if retry_failed or "permanent" not in df.columns:
                        continue
                    df = df.filter(pl.col("permanent"))
                done |= set(df["config_hash"].to_list())
        return done

    def commit(self, chunk_id: str, tables: dict):
        """Write a finished chunk: requests first, then its part files (the part marks it done)."""
        for h, req in tables["requests"].items():
            write_parquet_atomic(req, self.out / "requests" / f"config={h}" / "part-0.parquet")
        if len(tables["failures"]):
            write_parquet_atomic(tables["failures"], self.parts / f"{chunk_id}.failures.parquet")
        if tables["summary"] is not None:
            write_parquet_atomic(tables["summary"], self.parts / f"{chunk_id}.summary.parquet")

    def merge(self, jobs: list[Job]):
        """Rewrite summary.parquet, failures.parquet and configs.parquet from the committed parts, for this
        experiment's configurations only; a configuration run several times counts from its newest part
        (a success after a failure replaces it). The summary is written even when empty."""
        files = sorted(self.parts.glob("*.parquet"), key=lambda f: f.stat().st_mtime_ns) if self.parts.exists() else []
        wanted = {j.hash for j in jobs}
        frames = {"summary": [], "failures": []}
        newest: dict[str, Path] = {}
        tables = []
        for f in files:
            try:
                df = pl.read_parquet(f)
            except Exception:  # a damaged part: its configurations are rerun by the next run
                continue
            if "config_hash" not in df.columns:
                continue
            df = df.filter(pl.col("config_hash").is_in(list(wanted)))
            tables.append((f, df))
            for h in df["config_hash"].unique().to_list():
                newest[h] = f
        for f, df in tables:
            kind = "failures" if f.name.endswith(".failures.parquet") else "summary"
            keep = df.filter(pl.col("config_hash").is_in([h for h, nf in newest.items() if nf == f]))
            if len(keep):
                frames[kind].append(keep)
        if frames["summary"]:
            summary = pl.concat(frames["summary"], how="diagonal_relaxed")
        else:  # every configuration failed (or none ran): an empty table with the varied columns
            schema = {"config_hash": pl.String}
            for j in jobs[:1]:
                schema.update({k: _dtype(v) or pl.String for k, v in j.varied.items()})
            summary = pl.DataFrame(schema=schema)
        write_parquet_atomic(summary, self.out / "summary.parquet")
        fails = pl.concat(frames["failures"], how="diagonal_relaxed") if frames["failures"] else \
            pl.DataFrame(schema=FAILURE_SCHEMA)
        if "permanent" not in fails.columns:
            fails = fails.with_columns(pl.lit(False).alias("permanent"))
        write_parquet_atomic(fails.select(list(FAILURE_SCHEMA)), self.out / "failures.parquet")
        rows = [{"config_hash": j.hash, **j.varied, "config_json": json.dumps(j.raw, sort_keys=True, default=str)}
                for j in jobs]
        if rows:
            write_parquet_atomic(pl.DataFrame(rows), self.out / "configs.parquet")


def simulation_key(cfg: RunConfig):
    """What the simulation depends on: the config without its name and, unless the scheduler draws random
    numbers, without its seed. Jobs with equal keys are simulated once (e.g. a seed axis over deterministic
    schedulers)."""
    return dataclasses.replace(cfg, name="", source=None, seed=cfg.seed if cfg.scheduler == "random" else 0)


def groups_of(jobs: list[Job]) -> list[list[Job]]:
    """Jobs grouped by (trace, performance model): one kernel call never mixes them. Within a group, jobs
    that simulate identically are adjacent."""
    groups: dict = {}
    for j in jobs:
        groups.setdefault((j.config.trace, j.config.performance_model), {}).setdefault(
            simulation_key(j.config), []).append(j)
    return [[j for js in g.values() for j in js] for g in groups.values()]


def cut(group: list[Job], size: int) -> list[list[Job]]:
    """Chunks of at most ``size`` distinct simulations (identical ones stay in one chunk)."""
    chunks, last, distinct = [], None, 0
    for j in group:
        k = simulation_key(j.config)
        if k != last:  # identical simulations are adjacent (groups_of)
            if not chunks or distinct == size:
                chunks.append([])
                distinct = 0
            distinct += 1
            last = k
        chunks[-1].append(j)
    return chunks


def chunk_id(chunk: list[Job]) -> str:
    return hashlib.sha256("".join(j.hash for j in chunk).encode()).hexdigest()[:16]


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


def default_chunk_size(n_jobs: int, n_requests: int, workers: int) -> int:
    """Enough chunks to keep every worker busy, each chunk's outputs under ~512 MB."""
    by_memory = max(1, (512 << 20) // max(1, 100 * n_requests))
    balanced = max(1, -(-n_jobs // (4 * workers)))
    return int(max(1, min(by_memory, max(balanced, 2 * workers if workers > 1 else 1), 64)))


def run_sweep(jobs: list[Job], out: Path, backend: str = "local", address: str | None = None,
              force: bool = False, keep_requests: bool = False, quiet: bool = False,
              chunk_size: int | None = None, identity: dict | None = None, retry_failed: bool = False) -> dict:
    """Run the jobs not yet committed in ``out`` and merge. ``identity`` (experiment name and varied
    parameters) guards the directory against another experiment's results (``force`` replaces them)."""
    store = Store(out)
    if identity is not None:
        store.claim(identity, replace=force)
    done = set() if force else store.done_hashes(retry_failed)
    todo = [j for j in jobs if j.hash not in done]
    stats = {"total": len(jobs), "skipped": len(jobs) - len(todo), "ran": 0}
    try:
        if todo:
            _run_todo(todo, store, stats, backend, address, keep_requests, quiet, chunk_size, jobs)
    finally:  # also after an interruption: summary.parquet reflects every committed chunk
        store.merge(jobs)
    return stats


def _run_todo(todo, store, stats, backend, address, keep_requests, quiet, chunk_size, jobs, merge_every_s=30.0):
    if backend == "ray":
        from sweepsim.ray_backend import run_chunks_ray
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


def run_chunks_local(jobs: list[Job], keep_requests: bool, chunk_size: int | None, address=None):
    """This process: each chunk is one parallel kernel call over Numba's threads."""
    import numba
    workers = numba.get_num_threads()
    for group in groups_of(jobs):
        trace = load_trace(group[0].config.trace)
        size = chunk_size or default_chunk_size(len(group), len(trace), workers)
        for chunk in cut(group, size):
            yield chunk, simulate_chunk(chunk, trace, keep_requests), len(trace) * len(chunk)
