"""Sweep benchmark (issue: sweeps). Prints wall time, configurations/s, simulated requests/s and peak memory.

1. `grid1000`: 1,024 configurations (DGX-H100 clusters of 1-16 servers x 4 schedulers x 2 token budgets x 16
   seeds; llama2-70b) over one 100k-request conversation trace at 7 req/s (one server is then at its limit),
   with the local backend and with the Ray backend on this machine.
2. `isocost_ha`: the Splitwise paper's Splitwise-HA iso-cost grid, 7 splits (s = 5..35: s DGX-H100 prompt
   servers, int(4.76 (40 - s) // 2.21) DGX-A100 token servers) x 14 rates (50..180 req/s) x 2 traces (code,
   conversation), 600 s each, bloom-176b, mixed_pool: 196 configurations, local backend.
3. `runs_vs_grid`: the same 20 configurations as 20 separate `sweepsim run` processes vs one `sweepsim grid`.

    python -m benchmarks.bench_sweep [--case grid1000|isocost_ha|runs_vs_grid] [--backend local|ray|both]
                                     [--event-order reference|by_kind|both]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


import polars as pl

from sweepsim.config.run import from_dict
from sweepsim.sweep.jobs import make_jobs
from sweepsim.sweep.runner import run_sweep
from sweepsim.workload.sampling import poisson_trace


def write_trace(trace, path):
    pl.DataFrame({"request_id": trace.request_id, "arrival_timestamp": trace.arrival,
                  "prompt_size": trace.prompt_size, "token_size": trace.token_size}).write_parquet(path)
    return str(path)


def grid1000(tmp):
    path = write_trace(poisson_trace("azure-conv", 7.0, seed=1, count=100_000), tmp / "conv7.parquet")
    points, varied = [], []
    for n in (1, 2, 3, 4, 6, 8, 12, 16):
        for sched in ("round_robin", "random", "jsq", "token_jsq"):
            for mbt in (2048, 4096):
                for seed in range(16):
                    points.append({"cluster": {"dgx-h100": n}, "model": "llama2-70b", "scheduler": sched,
                                   "seed": seed, "instance": {"max_batch_tokens": mbt}, "trace": {"path": path}})
                    varied.append({"cluster.dgx-h100": n, "scheduler": sched, "instance.max_batch_tokens": mbt,
                                   "seed": seed})
    return points, varied, 100_000


def isocost_ha(tmp):
    points, varied, total = [], [], 0
    for sizes in ("azure-code", "azure-conv"):
        for rate in range(50, 190, 10):
            t = poisson_trace(sizes, float(rate), seed=0, duration=600.0)
            total += len(t)
            path = write_trace(t, tmp / f"{sizes}_{rate}.parquet")
            for s in range(5, 40, 5):
                a100 = int(4.76 * (40 - s) // 2.21)
                points.append({"cluster": {"dgx-a100": a100, "dgx-h100": s}, "model": "bloom-176b",
                               "start_state": "splitwise", "split_type": "heterogeneous", "prompt_sku": "dgx-h100",
                               "token_sku": "dgx-a100", "scheduler": "mixed_pool", "trace": {"path": path}})
                varied.append({"trace": sizes, "rate": rate, "s": s})
    return points, varied, total / len(points)


def time_sweep(name, points, varied, mean_requests, backend, tmp, order="reference"):
    points = [dict(p, event_order=order) for p in points]
    jobs = make_jobs(points, [from_dict(p) for p in points], varied)
    out = tmp / f"{name}-{backend}-{order}"
    t0 = time.perf_counter()
    stats = run_sweep(jobs, out, backend=backend, quiet=True)
    wall = time.perf_counter() - t0
    n = stats["ran"]
    fails = len(pl.read_parquet(out / "failures.parquet"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{name} [{backend}, {order} order]: {n} configurations ({fails} failed) in {wall:.1f} s = {n / wall:.2f} configs/s, "
          f"{n * mean_requests / wall:,.0f} simulated requests/s; peak RSS {rss:.0f} MB (children {child:.0f} MB)",
          flush=True)
    return out


def runs_vs_grid(tmp):
    """20 configurations: separate `sweepsim run` processes vs one `sweepsim grid` process."""
    trace = write_trace(poisson_trace("azure-conv", 20.0, seed=2, duration=120.0), tmp / "conv20.parquet")
    exe = str(Path(sys.executable).with_name("sweepsim"))
    sizes = (2, 3, 4, 5, 6)
    scheds = ("round_robin", "random", "jsq", "token_jsq")
    t0 = time.perf_counter()
    for n in sizes:
        for sched in scheds:
            cfg = tmp / f"run_{n}_{sched}.toml"
            cfg.write_text(f'model = "llama2-70b"\nscheduler = "{sched}"\n[cluster]\ndgx-h100 = {n}\n'
                           f'[trace]\npath = "{trace}"\n')
            subprocess.run([exe, "run", str(cfg), "--out", str(tmp / f"out_{n}_{sched}")], check=True,
                           capture_output=True)
    separate = time.perf_counter() - t0
    exp = tmp / "exp.toml"
    exp.write_text(f'name = "runs_vs_grid"\nout = "{tmp / "grid_out"}"\n[config]\nmodel = "llama2-70b"\n'
                   f'[config.trace]\npath = "{trace}"\n[config.cluster]\ndgx-h100 = 2\n'
                   f'[grid]\n"cluster.dgx-h100" = {list(sizes)}\nscheduler = {json.dumps(list(scheds))}\n')
    t0 = time.perf_counter()
    subprocess.run([exe, "grid", str(exp), "--quiet"], check=True, capture_output=True)
    grid = time.perf_counter() - t0
    print(f"runs_vs_grid: 20 separate `sweepsim run` processes {separate:.1f} s vs one `sweepsim grid` {grid:.1f} s "
          f"= {separate / grid:.1f}x", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=("grid1000", "isocost_ha", "runs_vs_grid"))
    ap.add_argument("--backend", choices=("local", "ray", "both"), default="both")
    ap.add_argument("--event-order", choices=("reference", "by_kind", "both"), default="both",
                    help="order of simultaneous events (default: both; the Ray backend runs the first only)")
    a = ap.parse_args()
    backends = ("local", "ray") if a.backend == "both" else (a.backend,)
    orders = ("reference", "by_kind") if a.event_order == "both" else (a.event_order,)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ.setdefault("SWEEPSIM_TRACE_CACHE", str(tmp / "cache"))
        if a.case in (None, "grid1000"):
            pts = grid1000(tmp)
            for order in orders:
                if "local" in backends:
                    time_sweep("grid1000", *pts, "local", tmp, order)
            if "ray" in backends:
                time_sweep("grid1000", *pts, "ray", tmp, orders[0])
        if a.case in (None, "isocost_ha"):
            pts = isocost_ha(tmp)
            for order in orders:
                time_sweep("isocost_ha", *pts, "local", tmp, order)
        if a.case in (None, "runs_vs_grid"):
            runs_vs_grid(tmp)


if __name__ == "__main__":
    main()
