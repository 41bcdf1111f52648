"""Multi-region benchmark (issue: SageServe part 1). One simulated day (86,400 s) of 10M requests over SageServe's
``us3`` topology (3 regions x models A-D, 80 instances per region, static), Azure conversation sizes, a diurnal
rate profile, 85% interactive, 5% batch and 10% dev requests, model and first-region mixes.

Prints, each phase in the same process: trace generation (``sweepsim trace gen``, a subprocess, skipped when the
file exists), trace load, JIT compile or cache load (on a 5-request prefix), the simulation (wall time, simulated
requests per second), the results (``write_run``, what ``sweepsim run`` writes: requests.parquet, summary,
instances and endpoints tables), and the process's peak memory after each phase. Targets on a 2-core machine: the
simulation under 60 s and under 4 GB peak memory.

    python -m benchmarks.bench_regions [--requests 10000000] [--trace PATH] [--no-results]
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAY_S = 86_400.0
TARGET_S = 60.0
TARGET_GB = 4.0


def peak_gb() -> float:
    """The process's peak resident memory so far [GB = 1e9 bytes] (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def generate(path: Path, n: int, days: int = 1) -> float:
    """``days`` days of the us3 trace (the diurnal profile with a one-day period, the mixes above): n requests a
    day on average. Returns the generation's wall time [s]."""
    exe = str(Path(sys.executable).with_name("sweepsim"))
    args = [exe, "trace", "gen", "--sizes", "azure-conv", "--rate", f"{n / DAY_S:.6f}", "--duration",
            str(days * DAY_S), "--profile", "diurnal", "--period", str(DAY_S), "--model", "A=0.4,B=0.2,C=0.2,D=0.2",
            "--region", "westus=0.4,centralus=0.3,eastus=0.3", "--regions", "westus,centralus,eastus",
            "--workload", "prod=0.85,batch=0.05,dev=0.1", "--sla", "prod=30,batch=3600,dev=86400",
            "--max-requests", str(int(1.5 * days * n)), "--seed", "0", "--out", str(path)]
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def warm_up(cfg, trace) -> float:
    """Seconds to run ``cfg`` on the trace's first 5 requests: the kernels' compilation or cache load."""
    import numpy as np

    from sweepsim.engine.simulate import run
    tiny = trace.__class__(trace.path, trace.request_id[:5], trace.application_id[:5], trace.arrival[:5],
                           trace.prompt_size[:5], trace.token_size[:5], {}, trace.serving.take(np.arange(5)))
    t0 = time.perf_counter()
    run(cfg, tiny)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000_000, help="mean requests of the day (default 10M)")
    ap.add_argument("--trace", type=Path, help="the trace file (generated there if missing)")
    ap.add_argument("--no-results", action="store_true", help="stop after the simulation")
    a = ap.parse_args()
    path = a.trace or Path(tempfile.gettempdir()) / f"sweepsim_bench_regions_{a.requests}.parquet"
    out = {"requests_target": a.requests, "trace": str(path)}
    if not path.exists():
        out["generate_s"] = generate(path, a.requests)

    from sweepsim.config.run import from_dict
    from sweepsim.engine.simulate import run
    from sweepsim.workload.trace import load_trace
    t0 = time.perf_counter()
    trace = load_trace(path)
    out["load_s"] = time.perf_counter() - t0
    out["requests"] = len(trace)
    out["peak_gb_after_load"] = peak_gb()
    cfg = from_dict({"topology": "us3", "end_time": float("inf")})
    out["instances"] = sum(e.instances for e in cfg.topology.endpoints)
    out["compile_or_cache_load_s"] = warm_up(cfg, trace)
    t0 = time.perf_counter()
    res = run(cfg, trace)
    wall = time.perf_counter() - t0
    cls = trace.serving.request_class()
    out.update(simulate_s=wall, simulated_requests_per_s=len(trace) / wall, completed=int(res.completed.sum()),
               end_clock_s=res.end_clock, batch_and_dev_fraction=float((cls != 0).mean()),
               peak_gb_after_simulate=peak_gb(), target_s=TARGET_S, target_gb=TARGET_GB)
    if not a.no_results:   # what `sweepsim run` writes: requests.parquet (in chunks), summary, instances, endpoints
        from sweepsim.results.tables import write_run
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            tables = write_run(res, Path(d))
            out["results_s"] = time.perf_counter() - t0
        summary, eps = tables["summary"], tables["endpoints"]
        total = summary.filter(summary["region"] == "all").row(0, named=True)
        out.update(slo_attainment=total["slo_attainment"], ttft_p99_s=total["ttft_p99"], e2e_p99_s=total["e2e_p99"],
                   mean_kv_utilization=float(eps["kv_utilization"].mean()), peak_gb_after_results=peak_gb())
    print(json.dumps(out, indent=1))
    print(f"us3, {out['requests']:,} requests, {out['instances']} instances: simulated in {wall:.1f} s "
          f"({out['simulated_requests_per_s']:,.0f} req/s; target {TARGET_S:.0f} s), peak memory "
          f"{out['peak_gb_after_simulate']:.2f} GB after the simulation (target {TARGET_GB:.0f} GB)"
          + (f", {out['peak_gb_after_results']:.2f} GB with the results tables" if not a.no_results else ""))


if __name__ == "__main__":
    main()
