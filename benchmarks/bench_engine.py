"""Engine benchmark (issue: core engine). Prints, per case: simulated requests, wall time of the kernel run
(JIT compile / cache load measured separately), simulated requests per second, peak memory of the process
(each case runs in its own process), and the ratio against the plain-Python reference measured in the same
run (on the full trace, or on a prefix for the 1M case).

    python -m benchmarks.bench_engine            # all cases, in both event orders
    python -m benchmarks.bench_engine --case overload_h100 --event-order reference
"""
import argparse
import json
import resource


from benchmarks.timing import case_in_subprocess, repeat, time_once

CASES = {
    # name: (config, sizes, rate req/s, count or None, duration or None, reference prefix, target s)
    "overload_h100": ({"cluster": {"dgx-h100": 1}, "model": "llama2-70b", "start_state": "baseline",
                       "scheduler": "token_jsq"}, "azure-conv", 20.0, 5000, None, None, 0.2),
    "baseline_h100_40": ({"cluster": {"dgx-h100": 40}, "model": "bloom-176b", "start_state": "baseline",
                          "scheduler": "token_jsq"}, "azure-conv", 70.0, None, 120.0, None, 0.02),
    "h100x16_1m": ({"cluster": {"dgx-h100": 16}, "model": "llama2-70b", "start_state": "baseline",
                    "scheduler": "token_jsq"}, "azure-conv", 40.0, 1_000_000, None, 20_000, 5.0),
}


ORDERS = ("reference", "by_kind")


def run_case(name, order):
    import numpy as np

    from sweepsim.config.run import from_dict
    from sweepsim.engine.simulate import run
    from sweepsim.workload.trace import Trace
    from sweepsim.workload.sampling import poisson_trace
    from tests.reference_inputs import reference_inputs
    from tests.reference_sim import simulate as reference_simulate

    d, sizes, rate, count, duration, ref_prefix, target = CASES[name]
    cfg = from_dict(dict(d, event_order=order))
    trace = poisson_trace(sizes, rate, seed=1, count=count, duration=duration)
    tiny = Trace("tiny", trace.request_id[:5], trace.application_id[:5], trace.arrival[:5],
                 trace.prompt_size[:5], trace.token_size[:5])
    compile_s, _ = time_once(lambda: run(cfg, tiny))
    best, median, reps, res = repeat(lambda: run(cfg, trace))
    n_ref = len(trace) if ref_prefix is None else ref_prefix
    sub = Trace("prefix", trace.request_id[:n_ref], trace.application_id[:n_ref], trace.arrival[:n_ref],
                trace.prompt_size[:n_ref], trace.token_size[:n_ref])
    ref_s, ref = time_once(lambda: reference_simulate(*reference_inputs(cfg, sub)))
    if ref_prefix is None:
        kern_sub_s, kern = best, res
    else:
        kern_sub_s, _, _, kern = repeat(lambda: run(cfg, sub))
    if not np.array_equal(kern.token_end, ref["token_end"], equal_nan=True):
        raise SystemExit(f"{name}: kernel and reference disagree; refusing to report a ratio")
    return {"case": name, "event_order": order, "requests": len(trace), "completed": int(res.completed.sum()),
            "end_clock_s": res.end_clock, "compile_or_cache_load_s": compile_s, "wall_s": best,
            "wall_median_s": median, "repetitions": reps,
            "requests_per_s": len(trace) / best, "target_s": target,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "reference_requests": n_ref, "reference_s": ref_s, "kernel_same_requests_s": kern_sub_s,
            "speedup_vs_python_reference": ref_s / kern_sub_s}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--event-order", choices=ORDERS + ("both",), default="both",
                    help="order of simultaneous events (default: both, each case in each order)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    orders = ORDERS if a.event_order == "both" else (a.event_order,)
    if a.case and a.json:
        print(json.dumps(run_case(a.case, orders[0])))
        return
    for name in [a.case] if a.case else CASES:
        for order in orders:
            r = case_in_subprocess(__file__, name, ("--event-order", order))
            print(f"{r['case']} [{r['event_order']} order]: {r['requests']} requests ({r['completed']} completed, "
                  f"simulated {r['end_clock_s']:.0f} s); kernel run {r['wall_s']:.4f} s best of {r['repetitions']} "
                  f"(median {r['wall_median_s']:.4f} s; target < {r['target_s']} s), {r['requests_per_s']:,.0f} req/s; "
                  f"first call (compile/cache load) {r['compile_or_cache_load_s']:.2f} s; peak RSS "
                  f"{r['peak_rss_mb']:.0f} MB; plain-Python reference on {r['reference_requests']} requests "
                  f"{r['reference_s']:.2f} s vs kernel {r['kernel_same_requests_s']:.4f} s = "
                  f"{r['speedup_vs_python_reference']:.0f}x")


if __name__ == "__main__":
    main()
