"""Autoscaling benchmark (issue: SageServe part 2). The day of ``bench_regions`` (86,400 s, 10M requests over
SageServe's ``us3`` topology: 3 regions x models A-D, 80 instances per region, diurnal rate, 85% interactive, 5%
batch, 10% dev) simulated with level-2 reactive scaling (SageServe's utilisation arbiter, donation between models,
real spin-up / reclaim delays) and with the fixed allocation (level 0) on the same trace.

Prints, in one process: trace generation (skipped when the file exists), trace load, JIT compile or cache load (a
5-request prefix), then per configuration the simulation's wall time and simulated requests per second, the
process's peak memory, scaling actions (scale-ups, scale-downs, donations), GPU-hours by state (serving, starting,
draining, spot), wasted GPU-hours, and SLO attainment; the ratio of GPU-hours serving + starting + draining of the
reactive run to the fixed one. Targets on a 2-core machine: the scaled simulation under 90 s and 4 GB peak memory.

    python -m benchmarks.bench_autoscale [--requests 10000000] [--trace PATH] [--level 2] [--delays real|lockout]
"""
import argparse
import gc
import json
import tempfile
import time
from pathlib import Path

from benchmarks.bench_regions import generate, peak_gb, warm_up

TARGET_S = 90.0
TARGET_GB = 4.0


def scaling_metrics(res) -> dict:
    """A scaling run's totals: GPU-hours by state and allocated, waste, actions, scale-ups, donations and SLO
    attainment (``slo_met`` of requests.parquet over requests with an SLA)."""
    import numpy as np

    from kernels.enums import ScaleAction
    from sweepsim.results.scaling import endpoint_scaling_columns, run_scaling_totals
    totals = run_scaling_totals(res)
    act = res.scaling_log[:, 2].astype(np.int64) if res.scaling_log is not None else np.zeros(0, np.int64)
    out = dict(totals, donations=int((act == ScaleAction.DONATE).sum()),
               scale_ups=int(endpoint_scaling_columns(res)["scale_ups"].sum()))
    out["gpu_hours_allocated"] = totals["gpu_hours_serving"] + totals["gpu_hours_starting"] + \
        totals["gpu_hours_draining"]
    sla = res.trace.serving.sla
    has = ~np.isnan(sla)
    with np.errstate(invalid="ignore"):
        met = res.completed & (res.token_end - res.trace.arrival <= sla)
    out["slo_attainment"] = float(met[has].mean()) if has.any() else float("nan")
    return out


def measure(cfg, trace) -> dict:
    """One configuration: wall time, throughput, peak memory, scaling actions, GPU-hours, SLO attainment."""
    from sweepsim.engine.simulate import run
    t0 = time.perf_counter()
    res = run(cfg, trace)
    wall = time.perf_counter() - t0
    out = {"simulate_s": wall, "simulated_requests_per_s": len(trace) / wall, "completed": int(res.completed.sum()),
           "end_clock_s": res.end_clock, "peak_gb_after_simulate": peak_gb()}
    out.update(scaling_metrics(res))
    del res
    gc.collect()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000_000, help="mean requests of the day (default 10M)")
    ap.add_argument("--trace", type=Path, help="the trace file (generated there if missing)")
    ap.add_argument("--level", type=int, default=2, help="scaling level of the reactive run (default 2)")
    ap.add_argument("--delays", default="real", choices=("real", "lockout"), help="scaling delays (default real)")
    a = ap.parse_args()
    path = a.trace or Path(tempfile.gettempdir()) / f"sweepsim_bench_regions_{a.requests}.parquet"
    out = {"requests_target": a.requests, "trace": str(path)}
    if not path.exists():
        out["generate_s"] = generate(path, a.requests)

    from sweepsim.config.run import from_dict
    from sweepsim.workload.trace import load_trace
    t0 = time.perf_counter()
    trace = load_trace(path)
    out["load_s"] = time.perf_counter() - t0
    out["requests"] = len(trace)
    scaled = from_dict({"topology": "us3", "end_time": float("inf"),
                        "scaling": {"level": a.level, "delays": a.delays}})
    fixed = from_dict({"topology": "us3", "end_time": float("inf")})
    out["instances"] = sum(e.instances for e in fixed.topology.endpoints)
    out["compile_or_cache_load_s"] = warm_up(scaled, trace)
    out["reactive"] = measure(scaled, trace)
    out["fixed"] = measure(fixed, trace)
    r, f = out["reactive"], out["fixed"]
    out["gpu_hours_ratio_reactive_to_fixed"] = r["gpu_hours_allocated"] / f["gpu_hours_allocated"]
    out.update(target_s=TARGET_S, target_gb=TARGET_GB)
    print(json.dumps(out, indent=1))
    print(f"us3, {out['requests']:,} requests, {out['instances']} instances, level-{a.level} reactive scaling "
          f"({a.delays} delays): simulated in {r['simulate_s']:.1f} s ({r['simulated_requests_per_s']:,.0f} req/s; "
          f"target {TARGET_S:.0f} s), peak memory {r['peak_gb_after_simulate']:.2f} GB (target {TARGET_GB:.0f} GB); "
          f"{r['scale_ups']:,} scale-ups ({r['donations']:,} donations), {r['scaling_actions']:,} actions; "
          f"GPU-hours allocated {r['gpu_hours_allocated']:,.0f} vs {f['gpu_hours_allocated']:,.0f} fixed "
          f"(x{out['gpu_hours_ratio_reactive_to_fixed']:.3f}), wasted {r['wasted_gpu_hours']:,.0f} vs "
          f"{f['wasted_gpu_hours']:,.0f}; SLO attainment {r['slo_attainment']:.4f} vs {f['slo_attainment']:.4f}")


if __name__ == "__main__":
    main()
