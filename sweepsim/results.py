"""Result tables of a run (Polars DataFrames) and their atomic Parquet output.

Units: times in seconds, memory in bytes, throughput in requests/s and tokens/s. Column meanings are
listed in README.md ("Outputs").
"""
from pathlib import Path

import numpy as np
import polars as pl

from kernels.enums import ITERATION_LOG_COLUMNS
from sweepsim.atomic import atomic_write
from sweepsim.cluster import TAG_NAMES
from sweepsim.engine import RunResult

LATENCY_METRICS = ("ttft", "tbt", "tpot", "e2e", "queue_time", "normalized_e2e")
RUN_TABLES = ("requests", "summary", "instances")
DEBUG_TABLES = ("iterations", "kv_transfers")
STATS = (("mean", None), ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("max", None))


def requests_table(res: RunResult) -> pl.DataFrame:
    """One row per trace request (trace order); latencies are NaN for requests that did not complete."""
    tr = res.trace
    arrival = tr.arrival
    ttft = res.prompt_end - arrival
    e2e = res.token_end - arrival
    with np.errstate(invalid="ignore", divide="ignore"):
        tbt = (e2e - ttft) / tr.token_size
        tpot = np.where(tr.token_size > 1, (e2e - ttft) / (tr.token_size - 1), np.nan)
    return pl.DataFrame({
        "request_id": tr.request_id, "application_id": tr.application_id, "arrival": arrival,
        "prompt_size": tr.prompt_size, "token_size": tr.token_size, "completed": res.completed,
        "rejected": res.rejected if res.rejected is not None else np.zeros(len(tr), bool),
        "prompt_instance": res.prompt_instance, "token_instance": res.token_instance,
        "queue_time": res.prompt_start - arrival, "ttft": ttft, "tbt": tbt, "tpot": tpot, "e2e": e2e,
        "nth_token_overhead": res.token_start - res.prompt_end, "kv_transfer_time": res.kv_end - res.kv_start,
        "completion_time": res.token_end, "prompt_start": res.prompt_start, "prompt_end": res.prompt_end,
        "token_start": res.token_start, "token_end": res.token_end, "kv_start": res.kv_start, "kv_end": res.kv_end,
    }, nan_to_null=False)


def instance_energy_j(res: RunResult) -> np.ndarray:
    """GPU energy per instance [J]: per-GPU watts of each state (idle, prompt-only, decode-only and mixed runs;
    mixed runs draw prompt power) x time in that state x GPUs, over the run [0, end clock]."""
    from sweepsim.hardware import get_sku
    p = res.placement
    busy = res.time_prompt + res.time_token + res.time_mixed
    idle = np.maximum(res.end_clock - busy, 0.0)
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
    from sweepsim.hardware import get_sku
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


def _stats(prefix: str, x: np.ndarray) -> dict:
    x = x[~np.isnan(x)]
    out = {}
    for name, q in STATS:
        if len(x) == 0:
            out[f"{prefix}_{name}"] = float("nan")
        elif name == "mean":
            out[f"{prefix}_{name}"] = float(np.mean(x))
        elif name == "max":
            out[f"{prefix}_{name}"] = float(np.max(x))
        else:
            out[f"{prefix}_{name}"] = float(np.percentile(x, q))
    return out


def summary_table(res: RunResult, requests: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per application: counts, throughput and latency statistics, plus the config's parameters."""
    req = requests if requests is not None else requests_table(res)
    rows = []
    params = res.config.params()
    cluster = energy_and_cost(res, int(req.filter(pl.col("completed"))["token_size"].sum()))
    for (app,), g in req.group_by(["application_id"], maintain_order=True):
        done = g.filter(pl.col("completed"))
        start = float(g["arrival"].min())
        end = float(done["completion_time"].max()) if len(done) else start
        span = end - start
        row = {"application_id": app, "requests": len(g), "completed": len(done),
               "rejected": int(g["rejected"].sum()), "duration": span,
               "throughput_rps": len(done) / span if span > 0 else float("nan"),
               "throughput_tps": float(done["token_size"].sum()) / span if span > 0 else float("nan")}
        e2e = done["e2e"].to_numpy()
        metrics = {m: done[m].to_numpy() for m in LATENCY_METRICS if m != "normalized_e2e"}
        metrics["normalized_e2e"] = e2e / done["token_size"].to_numpy()
        for m in LATENCY_METRICS:
            row.update(_stats(m, metrics[m].astype(np.float64)))
        row.update(cluster)
        row.update(params)
        rows.append(row)
    return pl.DataFrame(rows).sort("application_id")


def iterations_table(res: RunResult) -> pl.DataFrame:
    log = res.iteration_log
    cols = {c: log[:, k] for k, c in enumerate(ITERATION_LOG_COLUMNS)}
    df = pl.DataFrame(cols)
    ints = [c for c in ITERATION_LOG_COLUMNS if c not in ("start", "end", "borrowed")]
    return df.with_columns([pl.col(c).cast(pl.Int64) for c in ints] + [pl.col("borrowed").cast(pl.Boolean)])


def kv_transfers_table(res: RunResult) -> pl.DataFrame:
    from sweepsim.hardware import get_model
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
    for marker in ("experiment.json", "configs.parquet", "parts"):
        if (out / marker).exists():
            raise InputError(out, "--out", f"is the results directory of a sweep ({marker}); a run directory holds "
                                           "one run: choose another --out")
    return out


def write_text_atomic(path, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def write_run(res: RunResult, out_dir, debug: bool = False) -> dict[str, pl.DataFrame]:
    """Write requests/summary/instances (and with debug iterations/kv_transfers) Parquet files. A run
    directory holds one run: the debug tables of an earlier run are removed first when this run has none."""
    if not debug:
        for name in DEBUG_TABLES:
            (Path(out_dir) / f"{name}.parquet").unlink(missing_ok=True)
    req = requests_table(res)
    tables = {"requests": req, "summary": summary_table(res, req), "instances": instances_table(res)}
    if debug:
        tables["iterations"] = iterations_table(res)
        tables["kv_transfers"] = kv_transfers_table(res)
    for name, df in tables.items():
        write_parquet_atomic(df, Path(out_dir) / f"{name}.parquet")
    return tables
