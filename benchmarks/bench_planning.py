"""Forecast-aware planning benchmark (issue: SageServe part 3). The 10M-request day of ``bench_regions`` (SageServe's
``us3`` topology: 3 regions x models A-D, 80 instances per region; Azure conversation sizes, diurnal rate, 85%
interactive, 5% batch, 10% dev) preceded by a day of history: a two-day trace, the first day the forecasts'
training window (``planning.train_until = 86400``), the second the simulated day, run at scaling level 2 with the
LT-UA arbiter (hourly ARIMA plans plus the forecast-ratio override), and the same day with reactive scaling only
(``planning.arbiter = "none"``, the same ``train_until``, so the same simulated period) for comparison.

Prints, in one process, each phase timed on its own: trace generation (``sweepsim trace gen``, a subprocess, skipped
when the file exists), trace load, forecasting (``forecast_trace`` cold, caching disabled, then from the cache),
planning (``planned_targets``: the cached forecast re-read plus the hourly integer programs), JIT compile or cache
load (a 5-request prefix), then per configuration the wall time of ``simulate.run`` (which recomputes the forecast,
from the cache, and the plans inside it) split into its plan inputs, kernel and the rest (history split, packing,
unpacking), the process's peak memory after each phase and the largest resident memory seen during each phase
(sampled every 50 ms), scaling actions, GPU-hours by state, wasted GPU-hours, SLO attainment and p99 TTFT. Targets
on a 2-core machine: under 2 minutes end to end including forecasting and planning, under 4 GB peak memory. End to
end (cold) is what one ``sweepsim run`` of the LT-UA day with an empty forecast cache takes before writing results:
trace load + kernel load + ``run`` + the ARIMA fits (forecast cold - forecast from the cache); the peak is the
process's up to the end of the LT-UA run.

    python -m benchmarks.bench_planning [--requests 10000000] [--trace PATH] [--no-reactive]
"""
import argparse
import gc
import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.bench_autoscale import scaling_metrics
from benchmarks.bench_regions import generate, peak_gb, warm_up

DAY_S = 86_400.0
TARGET_S = 120.0
TARGET_GB = 4.0


def rss_gb() -> float:
    """Current resident memory of the process [GB = 1e9 bytes]."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9


class RssSampler:
    """A thread sampling the resident memory every ``period`` s; ``phase(name)`` labels the samples, ``peaks`` the
    largest resident memory seen per label [GB] (finer than ``ru_maxrss``, which only grows)."""

    def __init__(self, period=0.05):
        self.period, self.label, self.peaks = period, "between phases", {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            self._note()
            self._stop.wait(self.period)

    def _note(self):
        r = rss_gb()
        if r > self.peaks.get(self.label, 0.0):
            self.peaks[self.label] = r

    @contextmanager
    def phase(self, name):
        prev = self.label
        self._note()
        self.label = name
        try:
            yield
        finally:
            self._note()
            self.label = prev

    def stop(self):
        self._stop.set()
        self._thread.join()


def nbytes_gb(trace) -> float:
    """Bytes of a trace's per-request arrays [GB]."""
    arrays = [trace.request_id, trace.application_id, trace.arrival, trace.prompt_size, trace.token_size]
    s = trace.serving
    if s is not None:
        arrays += [s.model, s.workload, s.batch_id, s.sla, s.regions]
    return sum(a.nbytes for a in arrays) / 1e9


@contextmanager
def instrumented(sampler, timings, rss, run_name):
    """Time (and label the memory samples of) the parts of ``simulate.run``: the split of the simulated period off
    the history, the plan inputs (of which the forecast, here read from the cache, and the plans), the kernel call,
    the unpacking; ``rss`` gets the resident memory at the start and end of each. Wrappers around module attributes,
    no library change."""
    import sweepsim.engine.simulate as sim
    import sweepsim.planning.apply as apply
    saved = [(m, k, getattr(m, k)) for m, k in ((sim, "plan_inputs"), (apply, "forecast_table"),
                                                 (sim, "simulate_one_nb"), (sim, "unpack"), (sim, "_after_history"))]

    def wrap(name, fn):
        def inner(*a, **k):
            rss[f"{name}_start"] = rss_gb()
            t0 = time.perf_counter()
            with sampler.phase(f"{run_name}:{name}"):
                out = fn(*a, **k)
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
            rss[f"{name}_end"] = rss_gb()
            return out
        return inner

    for m, k, fn in saved:
        setattr(m, k, wrap(k.strip("_").removesuffix("_nb"), fn))
    try:
        yield
    finally:
        for m, k, fn in saved:
            setattr(m, k, fn)


def measure(cfg, trace, sampler, name) -> dict:
    """One configuration: ``run``'s wall time and its parts, peak memory, scaling actions, GPU-hours, SLO attainment,
    p99 TTFT."""
    import numpy as np

    from sweepsim.engine.simulate import run
    parts, rss = {}, {"run_start": rss_gb()}
    with instrumented(sampler, parts, rss, name), sampler.phase(name):
        t0 = time.perf_counter()
        res = run(cfg, trace)
        wall = time.perf_counter() - t0
    rss["run_end"] = rss_gb()
    top = ("after_history", "plan_inputs", "simulate_one", "unpack")   # forecast_table runs inside plan_inputs
    out = {"run_s": wall, "run_parts_s": parts, "run_other_s": wall - sum(parts.get(k, 0.0) for k in top),
           "rss_gb_at": rss,
           "simulated_requests": len(res.trace), "simulated_requests_per_s": len(res.trace) / wall,
           "completed": int(res.completed.sum()), "end_clock_s": res.end_clock,
           "simulated_day_copy_gb": nbytes_gb(res.trace), "peak_gb_after_run": peak_gb()}
    sampler.label = f"{name}:metrics"
    out.update(scaling_metrics(res))
    out["scale_downs"] = out["scaling_actions"] - out["scale_ups"]
    with np.errstate(invalid="ignore"):
        ttft = (res.prompt_end - res.fed_time)[res.completed.astype(bool)]   # requests.parquet's ttft
    out["ttft_p99_s"] = float(np.percentile(ttft, 99)) if len(ttft) else float("nan")
    del res, ttft
    gc.collect()
    sampler.label = "between phases"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10_000_000, help="mean requests per day (default 10M)")
    ap.add_argument("--trace", type=Path, help="the two-day trace file (generated there if missing)")
    ap.add_argument("--no-reactive", action="store_true", help="skip the reactive-scaling comparison run")
    a = ap.parse_args()
    path = a.trace or Path(tempfile.gettempdir()) / f"sweepsim_bench_planning_{a.requests}.parquet"
    out = {"requests_per_day_target": a.requests, "trace": str(path)}
    if not path.exists():
        out["generate_s"] = generate(path, a.requests, days=2)
    sampler = RssSampler()

    from sweepsim.config.run import from_dict
    from sweepsim.planning.apply import planned_targets
    from sweepsim.planning.forecast import forecast_trace
    from sweepsim.workload.trace import load_trace
    out["peak_gb_after_imports"] = peak_gb()

    with sampler.phase("load"):
        t0 = time.perf_counter()
        trace = load_trace(path)
        out["load_s"] = time.perf_counter() - t0
    out["requests"] = len(trace)
    out["requests_simulated_day"] = int((trace.arrival >= DAY_S).sum())
    out["trace_arrays_gb"] = nbytes_gb(trace)   # the columns the simulation uses
    out["trace_annotations_gb"] = sum(getattr(v, "nbytes", 0) for v in trace.annotations.values()) / 1e9
    out["peak_gb_after_load"] = peak_gb()
    out["rss_gb_after_load"] = rss_gb()

    base = {"topology": "us3", "end_time": float("inf"), "scaling": {"level": 2}}
    ltua = from_dict(base | {"planning": {"arbiter": "lt-ua", "train_until": DAY_S, "method": "arima"}})
    reactive = from_dict(base | {"planning": {"arbiter": "none", "train_until": DAY_S, "method": "arima"}})
    out["instances"] = sum(e.instances for e in ltua.topology.endpoints)
    pln = ltua.topology.planning

    # forecasting: what planning.forecast_table computes (the planning method only), cold then from the cache
    def forecast(cache):
        t0 = time.perf_counter()
        fc = forecast_trace(trace, pln.train_until, methods=(pln.method,), cache=cache)
        return time.perf_counter() - t0, fc
    with sampler.phase("forecast_cold"):
        out["forecast_cold_s"], fc = forecast(False)
    pooled = fc.metrics.filter(fc.metrics["model"] == "all").row(0, named=True)
    out["forecast"] = {"series": len(fc.metrics) - 1, "mape_pct": pooled["mape"], "wape_pct": pooled["wape"],
                       "coverage": pooled["coverage"], "interval": pooled["interval"],
                       "fit_seconds": pooled["fit_seconds"], "converged": pooled["converged"],
                       "table_rows": len(fc.table)}
    del fc
    out["peak_gb_after_forecast_cold"] = peak_gb()
    with sampler.phase("forecast_cached"):
        dt, fc = forecast(True)
        if not fc.metrics["cached"].all():   # first use: fitted and written; time a read of the cache
            out["forecast_cache_write_s"] = dt
            dt, fc = forecast(True)
        out["forecast_cached_s"] = dt
        out["forecast_cache_hit"] = bool(fc.metrics["cached"].all())
    del fc
    out["peak_gb_after_forecast_cached"] = peak_gb()

    plan_parts = {}
    with sampler.phase("planning"), instrumented(sampler, plan_parts, {}, "planning"):
        t0 = time.perf_counter()
        plans, fmat, start = planned_targets(ltua, trace)
        out["planning_s"] = time.perf_counter() - t0
    out["planning_forecast_from_cache_s"] = plan_parts.get("forecast_table", 0.0)
    out["planning_excl_cached_forecast_s"] = out["planning_s"] - out["planning_forecast_from_cache_s"]
    out["plan_ticks"], out["plan_first_tick_s"] = len(plans), start
    out["planned_instances_mean"] = float(plans.sum(axis=1).mean())
    out["planned_instances_min_max"] = [int(plans.sum(axis=1).min()), int(plans.sum(axis=1).max())]
    del plans, fmat
    out["peak_gb_after_planning"] = peak_gb()

    # the kernel is one function for every arbiter: a plan-less level-2 run of a 5-request prefix loads or compiles it
    with sampler.phase("compile"):
        out["compile_or_cache_load_s"] = warm_up(from_dict(base), trace)
    out["peak_gb_after_compile"] = peak_gb()

    gc.collect()
    out["lt_ua"] = measure(ltua, trace, sampler, "lt_ua")
    if not a.no_reactive:
        out["reactive"] = measure(reactive, trace, sampler, "reactive")
    sampler.stop()
    out["rss_peak_gb_by_phase"] = sampler.peaks

    r = out["lt_ua"]
    # a cold `sweepsim run` of the LT-UA day: load, kernel cache load, and the run with the forecast fitted instead
    # of read from the cache
    out["end_to_end_cold_s"] = out["load_s"] + out["compile_or_cache_load_s"] + r["run_s"] + \
        out["forecast_cold_s"] - out["forecast_cached_s"]
    out["end_to_end_warm_s"] = out["load_s"] + out["compile_or_cache_load_s"] + r["run_s"]
    out["peak_gb"] = r["peak_gb_after_run"]   # the process's peak from start to the end of the LT-UA run
    if "reactive" in out:
        f = out["reactive"]
        out["lt_ua_vs_reactive"] = {
            "gpu_hours_allocated_ratio": r["gpu_hours_allocated"] / f["gpu_hours_allocated"],
            "gpu_hours_serving_ratio": r["gpu_hours_serving"] / f["gpu_hours_serving"],
            "wasted_gpu_hours_ratio": r["wasted_gpu_hours"] / f["wasted_gpu_hours"] if f["wasted_gpu_hours"] else None,
            "scaling_actions_ratio": r["scaling_actions"] / f["scaling_actions"] if f["scaling_actions"] else None,
            "slo_attainment_delta": r["slo_attainment"] - f["slo_attainment"]}
    out.update(target_s=TARGET_S, target_gb=TARGET_GB)
    print(json.dumps(out, indent=1))
    ok_t, ok_m = out["end_to_end_cold_s"] < TARGET_S, out["peak_gb"] < TARGET_GB
    parts = r["run_parts_s"]
    other = r["run_s"] - parts.get("plan_inputs", 0.0) - parts.get("simulate_one", 0.0)
    line = (f"us3, two-day trace of {out['requests']:,} requests ({out['requests_simulated_day']:,} simulated), "
            f"{out['instances']} instances, level 2 + LT-UA: end to end {out['end_to_end_cold_s']:.1f} s cold, "
            f"{out['end_to_end_warm_s']:.1f} s with cached forecasts (target {TARGET_S:.0f} s: "
            f"{'met' if ok_t else 'MISSED'}) = load {out['load_s']:.1f} + kernel load "
            f"{out['compile_or_cache_load_s']:.1f} + run {r['run_s']:.1f} "
            f"(plan inputs {parts.get('plan_inputs', 0):.1f}"
            f" [forecast from the cache {parts.get('forecast_table', 0):.1f} + plans "
            f"{parts.get('plan_inputs', 0) - parts.get('forecast_table', 0):.1f}]"
            f", kernel {parts.get('simulate_one', 0):.1f}, split/pack/unpack {other:.1f}) + ARIMA fits "
            f"{out['forecast_cold_s'] - out['forecast_cached_s']:.1f} (forecast cold {out['forecast_cold_s']:.1f}); "
            f"peak memory {out['peak_gb']:.2f} GB (target {TARGET_GB:.0f} GB: {'met' if ok_m else 'MISSED'}; "
            f"load {out['rss_peak_gb_by_phase'].get('load', 0):.2f}, kernel "
            f"{out['rss_peak_gb_by_phase'].get('lt_ua:simulate_one', 0):.2f})")
    if "reactive" in out:
        f, c = out["reactive"], out["lt_ua_vs_reactive"]
        line += (f"; GPU-hours allocated {r['gpu_hours_allocated']:,.0f} vs {f['gpu_hours_allocated']:,.0f} reactive "
                 f"(x{c['gpu_hours_allocated_ratio']:.3f}), wasted {r['wasted_gpu_hours']:,.0f} vs "
                 f"{f['wasted_gpu_hours']:,.0f}, {r['scaling_actions']:,} vs {f['scaling_actions']:,} actions, SLO "
                 f"attainment {r['slo_attainment']:.4f} vs {f['slo_attainment']:.4f}")
    print(line)


if __name__ == "__main__":
    main()
