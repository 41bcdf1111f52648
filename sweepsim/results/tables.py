"""Result tables of a run (Polars DataFrames) and their atomic Parquet output.

Units: times in seconds, memory in bytes, throughput in requests/s and tokens/s. Column meanings are
listed in README.md ("Outputs").
"""
from pathlib import Path

import numpy as np
import polars as pl

from kernels.layout import ITERATION_LOG
from sweepsim.atomic import atomic_write
from sweepsim.engine.performance import uncontended_latencies
from sweepsim.engine.placement import TAG_NAMES
from sweepsim.engine.simulate import RunResult
from sweepsim.config.topology import ALL
from sweepsim.results.columns import LATENCY_METRICS, STATS

RUN_TABLES = ("requests", "summary", "instances")
DEBUG_TABLES = ("iterations", "kv_transfers")


def requests_table(res: RunResult, rows: slice | None = None) -> pl.DataFrame:
    """One row per trace request (trace order; ``rows``: those requests only); latencies are NaN for requests that
    did not complete."""
    tr = res.trace
    cut = (lambda a: a) if rows is None else (lambda a: a[rows])  # noqa: E731
    arrival = cut(tr.arrival)
    prompt_size, token_size = cut(tr.prompt_size), cut(tr.token_size)
    completed = cut(res.completed)
    serving = {}
    if res.config.topology is not None:   # latencies count from the request's entry into global routing
        from sweepsim.results.serving import serving_columns
        serving = serving_columns(res, rows)
        entry = cut(res.fed_time)
    else:
        entry = arrival
    rejected = cut(res.rejected) if res.rejected is not None else np.zeros(len(arrival), bool)
    prompt_start, prompt_end, token_start, token_end = (cut(a) for a in (res.prompt_start, res.prompt_end,
                                                                         res.token_start, res.token_end))
    kv_start, kv_end = cut(res.kv_start), cut(res.kv_end)
    ttft = prompt_end - entry
    e2e = token_end - entry
    models = _request_models(res)
    base_ttft, base_tbt, base_e2e = uncontended_latencies(res.config, prompt_size, token_size,
                                                          models and (models[0], cut(models[1])))
    with np.errstate(invalid="ignore", divide="ignore"):
        tbt = (e2e - ttft) / token_size
        tpot = np.where(token_size > 1, (e2e - ttft) / (token_size - 1), np.nan)
    return pl.DataFrame({
        "request_id": cut(tr.request_id), "application_id": cut(tr.application_id), "arrival": arrival,
        "prompt_size": prompt_size, "token_size": token_size, "completed": completed,
        "rejected": rejected,
        # a topology's batch/dev request never fed waits in its queue: not a deadlock of the batching
        "stalled": ~completed & ~rejected & (res.end_clock < res.config.end_time)
                   & (~np.isnan(entry) if serving else True),
        "prompt_instance": cut(res.prompt_instance), "token_instance": cut(res.token_instance),
        "queue_time": prompt_start - entry, "ttft": ttft, "tbt": tbt, "tpot": tpot, "e2e": e2e,
        "nth_token_overhead": token_start - prompt_end, "kv_transfer_time": kv_end - kv_start,
        "completion_time": token_end, "prompt_start": prompt_start, "prompt_end": prompt_end,
        "token_start": token_start, "token_end": token_end, "kv_start": kv_start, "kv_end": kv_end,
        "ttft_slowdown": ttft / base_ttft, "tbt_slowdown": tbt / base_tbt, "e2e_slowdown": e2e / base_e2e,
        **serving,
    }, nan_to_null=False)


#: tables of topology runs (the last two with autoscaling only)
TOPOLOGY_TABLES = ("endpoints", "scaling_events", "endpoints_timeline")
#: requests.parquet of more requests than this is built and written in chunks of this many rows, keeping only the
#: columns the summary and endpoints tables read (a 10M-request table holds about 3 GB at once otherwise)
CHUNK_ROWS = 1_000_000
#: the requests columns the summary, the endpoints table and the run's messages read
SUMMARY_INPUT = ("request_id", "application_id", "arrival", "token_size", "completed", "rejected", "stalled",
                 "completion_time") + tuple(m for m in LATENCY_METRICS if m != "normalized_e2e") + (
                 "region", "endpoint", "model", "request_class", "slo_met", "fed_time")


def _request_models(res):
    """(model names, model code per request) of a topology run; None: every request runs the config's model."""
    if res.config.topology is None:
        return None
    from sweepsim.engine.serving import trace_columns
    names, model, *_ = trace_columns(res.trace)
    return tuple(n or res.config.topology.models()[0] for n in names), model


def instance_energy_j(res: RunResult) -> np.ndarray:
    """GPU energy per instance [J]: per-GPU watts of each state (idle, prompt-only, decode-only and mixed runs;
    mixed runs draw prompt power) x time in that state x GPUs, over the run [0, end clock] (autoscaling: idle
    only while the instance is allocated, not in the spot pool)."""
    from sweepsim.config.catalog import get_sku
    p = res.placement
    busy = res.time_prompt + res.time_token + res.time_mixed
    alive = res.end_clock
    from sweepsim.results.scaling import scaling_on
    if scaling_on(res):   # autoscaling: idle power only while allocated (serving, starting or draining)
        alive = res.serving_time + res.starting_time + res.draining_time
    idle = np.maximum(alive - busy, 0.0)
    out = np.empty(len(p.sku))
    for i, sku in enumerate(p.sku):
        proc = get_sku(sku).processor
        watts = (proc.power_idle_w * idle[i] + proc.power_prompt_w * (res.time_prompt[i] + res.time_mixed[i])
                 + proc.power_token_w * res.time_token[i])
        out[i] = watts * p.num_gpus[i]
    return out


def energy_and_cost(res: RunResult, output_tokens: int) -> dict:
    """Cluster totals over the run: energy [J, kWh] (GPU energy of the instances, idle GPUs of servers without
    instances, and every server's non-GPU base power), mean power [W], cost [$] from the SKUs' hourly prices,
    and both per output token."""
    from sweepsim.config.catalog import get_sku
    from sweepsim.results.scaling import scaling_energy_and_cost, scaling_on
    if scaling_on(res):
        return scaling_energy_and_cost(res, output_tokens, instance_energy_j(res))
    p = res.placement
    t = res.end_clock
    energy = float(instance_energy_j(res).sum())
    used_gpus = {}
    for i, srv in enumerate(p.server):
        used_gpus[int(srv)] = used_gpus.get(int(srv), 0) + int(p.num_gpus[i])
    cost = 0.0
    for srv, sku_name in enumerate(p.server_sku):
        sku = get_sku(sku_name)
        idle_gpus = sku.num_processors - used_gpus.get(srv, 0)
        energy += (sku.server_base_power_w + idle_gpus * sku.processor.power_idle_w) * t
        cost += sku.cost_per_hour * t / 3600.0
    per_tok = output_tokens if output_tokens > 0 else float("nan")
    return {"energy_j": energy, "energy_kwh": energy / 3.6e6, "mean_power_w": energy / t if t > 0 else float("nan"),
            "energy_per_token_j": energy / per_tok, "cost_usd": cost, "cost_per_1m_tokens_usd": cost / per_tok * 1e6,
            "servers": p.n_servers}


def instances_table(res: RunResult) -> pl.DataFrame:
    p = res.placement
    util = res.busy_time / res.end_clock if res.end_clock > 0 else np.zeros_like(res.busy_time)
    return pl.DataFrame({
        "instance_id": np.arange(len(p.sku), dtype=np.int64), "name": p.names, "sku": p.sku,
        "processor": p.processor, "server": p.server, "pool": [TAG_NAMES[int(t)] for t in p.tag],
        "num_gpus": p.num_gpus, "utilization": util, "busy_time": res.busy_time, "iterations": res.iterations,
        "tokens_served": res.tokens_served, "prompt_time": res.time_prompt, "token_time": res.time_token,
        "mixed_time": res.time_mixed, "energy_j": instance_energy_j(res),
    })


#: Up to this many groups, statistics are taken group by group with numpy itself.
FEW_GROUPS = 64
#: np.add.reduce (and so np.mean) sums up to this many values left to right, more in unrolled blocks.
SEQUENTIAL_UP_TO = 7


def group_stats(values: np.ndarray, codes: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
    """Per group (``codes`` in 0..n_groups-1) the statistics of STATS over the non-NaN values, NaN for a group
    without any: vectorised over groups, bit-identical to ``np.mean``, ``np.percentile`` (linear) and
    ``np.max`` of each group's values (tests/test_reliability.py checks it), so that a trace with a million
    applications costs what one with one does."""
    keep = ~np.isnan(values)
    v, c = values[keep], codes[keep]
    counts = np.bincount(c, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    some = counts > 0
    if n_groups <= FEW_GROUPS:  # the usual case: numpy on each group (a sort of every value costs more)
        in_order = v[np.argsort(c, kind="stable")] if n_groups > 1 else v
        pcts = [q for _, q in STATS if q is not None]
        out = {name: np.full(n_groups, np.nan) for name, _ in STATS}
        for g in np.flatnonzero(some):
            x = in_order[starts[g]:starts[g] + counts[g]]
            out["mean"][g] = np.mean(x)
            out["max"][g] = np.max(x)
            for (name, _), p in zip([s for s in STATS if s[1] is not None], np.percentile(x, pcts)):
                out[name][g] = p
        return out
    out = {}
    # mean: pairwise sums (as np.mean) of each group's values in their original order
    in_order = v[np.argsort(c, kind="stable")]
    sums = np.where(some, 0.0, np.nan)
    short = np.flatnonzero(some & (counts <= SEQUENTIAL_UP_TO))
    for k in range(SEQUENTIAL_UP_TO):  # short groups: left to right, vectorised over groups
        g = short[counts[short] > k]
        sums[g] += in_order[starts[g] + k]
    for g in np.flatnonzero(counts > SEQUENTIAL_UP_TO):  # at most len(v) / 8 groups: one call each
        sums[g] = np.add.reduce(in_order[starts[g]:starts[g] + counts[g]])
    out["mean"] = sums / np.maximum(counts, 1)
    ranked = v[np.lexsort((v, c))]
    first, last = starts[some], (starts + counts - 1)[some]
    n = counts[some]
    for name, q in STATS:
        col = np.full(n_groups, np.nan)
        if name == "max":
            col[some] = ranked[last]
        elif name != "mean":
            vi = (n - 1) * np.true_divide(q, 100)        # numpy's virtual index of the linear method
            prev = np.floor(vi)
            top = vi >= n - 1
            lo = np.where(top, last, first + prev.astype(np.int64))
            hi = np.where(top, last, np.minimum(lo + 1, last))
            gamma = np.where(top, vi + 1, vi - prev)      # numpy's gamma (irrelevant when lo == hi)
            a, b = ranked[lo], ranked[hi]
            diff = b - a
            col[some] = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
        if name != "mean":
            out[name] = col
    return out


def meets_own_slos(res: RunResult, req: pl.DataFrame) -> np.ndarray:
    """Per request: completed within its own SLOs, the trace's ``slo_ttft`` / ``slo_e2e`` columns [s] (a
    missing column or value sets no bound): what goodput counts."""
    ok = req["completed"].to_numpy().copy()
    ann = res.trace.annotations or {}
    for metric, col in (("ttft", "slo_ttft"), ("e2e", "slo_e2e")):
        bound = ann.get(col)
        if bound is not None:
            bound = np.asarray(bound, dtype=np.float64)
            with np.errstate(invalid="ignore"):
                ok &= np.isnan(bound) | (req[metric].to_numpy() <= bound)
    return ok


def summary_table(res: RunResult, requests: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per application (ascending id): counts, throughput and latency statistics over its completed
    requests, then the cluster's energy and cost and the config's parameters."""
    req = requests if requests is not None else requests_table(res)
    params = res.config.params()
    cluster = energy_and_cost(res, int(req.filter(pl.col("completed"))["token_size"].sum()))
    if res.config.topology is not None:
        from sweepsim.results.scaling import run_scaling_totals
        return _serving_summary(res, req, params, cluster | run_scaling_totals(res))
    apps, codes = np.unique(req["application_id"].to_numpy(), return_inverse=True)
    df = _group_summary(res, req, codes, len(apps)).with_columns(pl.Series("application_id", apps)) \
        .select("application_id", pl.exclude("application_id"))
    extra = pl.DataFrame([{**cluster, **params}])  # typed as one row of Python values, repeated per application
    return pl.concat([df, extra.select(pl.all().gather(np.zeros(len(apps), np.int64)))], how="horizontal")




def _serving_summary(res, req, params, cluster) -> pl.DataFrame:
    """Rows per (region, model, request class) present, then the totals (labels ``all``), with SLO attainment."""
    cols = ("region", "model", "request_class")
    cats = [list(req[c].dtype.categories) for c in cols]       # Enum columns: physical code = position
    phys = [req[c].to_physical().to_numpy().astype(np.int64) for c in cols]
    combined = (phys[0] * len(cats[1]) + phys[1]) * len(cats[2]) + phys[2]
    present = np.flatnonzero(np.bincount(combined, minlength=len(cats[0]) * len(cats[1]) * len(cats[2])))
    index = np.full(len(cats[0]) * len(cats[1]) * len(cats[2]), -1, np.int64)
    index[present] = np.arange(len(present))
    codes = index[combined]
    labels = [(cats[0][k // (len(cats[1]) * len(cats[2]))], cats[1][k // len(cats[2]) % len(cats[1])],
               cats[2][k % len(cats[2])]) for k in present]                # sorted by region, model, class order
    df = _group_summary(res, req, codes, len(labels))
    total = _group_summary(res, req, np.zeros(len(req), np.int64), 1)
    lab = pl.DataFrame({c: [x[j] for x in labels] + [ALL] for j, c in enumerate(cols)})
    met = req["slo_met"]
    with_sla = met.is_not_null().to_numpy()
    ok = met.fill_null(False).to_numpy()
    n_sla = np.bincount(codes, weights=with_sla, minlength=len(labels))
    n_ok = np.bincount(codes, weights=ok, minlength=len(labels))
    with np.errstate(invalid="ignore", divide="ignore"):
        att = np.append(n_ok / n_sla, ok.sum() / with_sla.sum() if with_sla.any() else np.nan)
    df = pl.concat([lab, pl.concat([df, total]).with_columns(
        pl.Series("requests_with_sla", np.append(n_sla, with_sla.sum()).astype(np.int64)),
        pl.Series("slo_attainment", att))], how="horizontal")
    extra = pl.DataFrame([{**cluster, **params}])
    return pl.concat([df, extra.select(pl.all().gather(np.zeros(len(df), np.int64)))], how="horizontal")


def _group_summary(res, req, codes, n_groups) -> pl.DataFrame:
    """Counts, throughput and latency statistics of each group of requests (``codes`` in 0..n_groups-1)."""
    apps = np.arange(n_groups)
    agg = req.with_columns(pl.Series("code", codes)).group_by("code").agg(
        pl.len().alias("requests"), pl.col("completed").sum().alias("n_done"), pl.col("rejected").sum(), pl.col("stalled").sum(),
        pl.col("arrival").min().alias("start"),
        pl.col("completion_time").filter(pl.col("completed")).max().alias("end"),
        pl.col("token_size").filter(pl.col("completed")).sum().alias("tokens")).sort("code")
    start = agg["start"].to_numpy()
    end = agg["end"].fill_null(np.nan).to_numpy()
    span = np.where(np.isnan(end), 0.0, end - start)
    done_n = agg["n_done"].to_numpy()
    good_n = np.bincount(codes, weights=meets_own_slos(res, req), minlength=len(apps))
    with np.errstate(invalid="ignore", divide="ignore"):
        cols = {"requests": agg["requests"].to_numpy(), "completed": done_n,
                "rejected": agg["rejected"].to_numpy(), "stalled": agg["stalled"].to_numpy(), "duration": span,
                "throughput_rps": np.where(span > 0, done_n / span, np.nan),
                "throughput_tps": np.where(span > 0, agg["tokens"].to_numpy().astype(np.float64) / span, np.nan),
                "goodput_rps": np.where(span > 0, good_n / span, np.nan)}
    done = np.flatnonzero(req["completed"].to_numpy())
    if n_groups > 1:   # the completed requests grouped once (stable: each group keeps its order), not per metric
        done = done[np.argsort(codes[done], kind="stable")]
    dcodes = codes[done]
    metrics = {m: req[m].to_numpy()[done] for m in LATENCY_METRICS if m != "normalized_e2e"}
    metrics["normalized_e2e"] = metrics["e2e"] / req["token_size"].to_numpy()[done]
    for m in LATENCY_METRICS:
        for name, col in group_stats(metrics[m].astype(np.float64), dcodes, len(apps)).items():
            cols[f"{m}_{name}"] = col
    return pl.DataFrame(cols).with_columns(pl.col("requests", "completed", "rejected", "stalled").cast(pl.Int64))


def iterations_table(res: RunResult) -> pl.DataFrame:
    log = res.iteration_log
    cols = {c: log[:, k] for k, c in enumerate(ITERATION_LOG)}
    df = pl.DataFrame(cols)
    ints = [c for c in ITERATION_LOG if c not in ("start", "end", "borrowed")]
    return df.with_columns([pl.col(c).cast(pl.Int64) for c in ints] + [pl.col("borrowed").cast(pl.Boolean)])


def kv_transfers_table(res: RunResult) -> pl.DataFrame:
    from sweepsim.config.catalog import get_model
    kv = get_model(res.config.model).kv_bytes_per_token
    m = ~np.isnan(res.kv_start)
    return pl.DataFrame({
        "request_id": res.trace.request_id[m], "source": res.prompt_instance[m],
        "destination": res.token_instance[m], "start": res.kv_start[m], "end": res.kv_end[m],
        "bytes": res.trace.prompt_size[m] * kv,
    })


def write_parquet_atomic(df: pl.DataFrame, path) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``."""
    atomic_write(path, df.write_parquet)


def check_run_dir(out) -> Path:
    """A run directory (``sweepsim run --out``) that can be written and is not a sweep's results directory."""
    from sweepsim.errors import InputError, check_output_dir
    out = check_output_dir(out)
    for name in RUN_TABLES + DEBUG_TABLES + TOPOLOGY_TABLES:
        if (out / f"{name}.parquet").is_dir():
            raise InputError(out / f"{name}.parquet", "--out", "is a directory where the run writes a table")
    for d in [out, *out.absolute().parents]:
        for marker in ("experiment.json", "configs.parquet", "parts"):
            if (d / marker).exists() and (d == out or marker == "experiment.json"):
                where = "is" if d == out else f"is inside {d}, which is"
                raise InputError(out, "--out", f"{where} the results directory of a sweep ({marker}); a run "
                                               "directory holds one run: choose another --out")
    return out


def write_text_atomic(path, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def write_run(res: RunResult, out_dir, debug: bool = False,
              timeline_period: float | None = None) -> dict[str, pl.DataFrame]:
    """Write requests/summary/instances (and with debug iterations/kv_transfers, with a topology endpoints)
    Parquet files (with autoscaling also scaling_events and endpoints_timeline, sampled every ``timeline_period``
    seconds, default ``results.scaling.TIMELINE_PERIOD_S``); returns the tables (of a trace over ``CHUNK_ROWS`` requests, the requests table holds only the
    ``SUMMARY_INPUT`` columns). A run directory holds one run: the tables of an earlier run that this run does
    not write are removed first."""
    if not debug:
        for name in DEBUG_TABLES:
            (Path(out_dir) / f"{name}.parquet").unlink(missing_ok=True)
    if len(res.trace) <= CHUNK_ROWS:
        req = requests_table(res)
        write_parquet_atomic(req, Path(out_dir) / "requests.parquet")
    else:
        req = _write_requests_in_chunks(res, Path(out_dir) / "requests.parquet")
    tables = {"requests": req, "summary": summary_table(res, req), "instances": instances_table(res)}
    if res.config.topology is not None:
        from sweepsim.results.scaling import endpoints_timeline_table, scaling_events_table, scaling_on
        from sweepsim.results.serving import endpoints_table
        tables["endpoints"] = endpoints_table(res, req, tables["instances"]["energy_j"].to_numpy())
        if scaling_on(res):
            tables["scaling_events"] = scaling_events_table(res)
            tables["endpoints_timeline"] = endpoints_timeline_table(res, *([timeline_period] if timeline_period else []))
    for name in TOPOLOGY_TABLES:
        if name not in tables:
            (Path(out_dir) / f"{name}.parquet").unlink(missing_ok=True)
    if debug:
        tables["iterations"] = iterations_table(res)
        tables["kv_transfers"] = kv_transfers_table(res)
    for name, df in tables.items():
        if name != "requests":
            write_parquet_atomic(df, Path(out_dir) / f"{name}.parquet")
    return tables


def _write_requests_in_chunks(res: RunResult, path: Path) -> pl.DataFrame:
    """requests.parquet written CHUNK_ROWS rows at a time (the same rows and columns as ``requests_table``);
    returns the columns of ``SUMMARY_INPUT`` for every request."""
    import pyarrow.parquet as pq
    kept = []

    def write(tmp):
        writer = None
        try:
            for a in range(0, len(res.trace), CHUNK_ROWS):
                df = requests_table(res, slice(a, a + CHUNK_ROWS))
                table = df.to_arrow()
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table)
                kept.append(df.select([c for c in SUMMARY_INPUT if c in df.columns]))
        finally:
            if writer is not None:
                writer.close()
    atomic_write(path, write)
    return pl.concat(kept)
