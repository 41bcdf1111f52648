"""Splitwise benchmark (issue: phase splitting). Splitwise-HA (26 DGX-A100 token + 25 DGX-H100 prompt servers,
bloom-176b, mixed_pool) on conversation-like traces (Poisson arrivals, sizes resampled from the Azure 2023
conversation trace): 100 req/s for 600 s (~60k requests) and 70 req/s for 120 s (~8.4k requests).
Prints kernel wall time (compile / cache load separately), simulated requests/s, peak RSS, and the ratio
against the plain-Python reference (tests/reference_sim.py) measured in the same run.

    python -m benchmarks.bench_splitwise [--event-order reference|by_kind|both]
"""
import argparse
import resource

import numpy as np


from benchmarks.timing import repeat, time_once
from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import run
from sweepsim.workload.trace import Trace
from sweepsim.workload.sampling import poisson_trace
from tests.reference_sim import simulate as reference_simulate
from tests.reference_inputs import reference_inputs

CONFIG = {"cluster": {"dgx-a100": 26, "dgx-h100": 25}, "model": "bloom-176b", "start_state": "splitwise",
          "split_type": "heterogeneous", "prompt_sku": "dgx-h100", "token_sku": "dgx-a100",
          "scheduler": "mixed_pool"}
CASES = {"conv_100rps_600s": (100.0, 600.0, 0.3), "conv_70rps_120s": (70.0, 120.0, 0.05)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--event-order", choices=("reference", "by_kind", "both"), default="both",
                    help="order of simultaneous events (default: both)")
    a = ap.parse_args()
    for order in ("reference", "by_kind") if a.event_order == "both" else (a.event_order,):
        bench(from_dict(dict(CONFIG, event_order=order)))


def bench(cfg):
    for name, (rate, duration, target) in CASES.items():
        trace = poisson_trace("azure-conv", rate, seed=1, duration=duration)
        tiny = Trace("tiny", *(a[:5] for a in (trace.request_id, trace.application_id, trace.arrival,
                                                trace.prompt_size, trace.token_size)))
        first, _ = time_once(lambda: run(cfg, tiny))
        best, median, reps, res = repeat(lambda: run(cfg, trace))
        ref_s, ref = time_once(lambda: reference_simulate(*reference_inputs(cfg, trace)))
        if not np.array_equal(res.token_end, ref["token_end"], equal_nan=True):
            raise SystemExit(f"{name}: kernel and reference disagree; refusing to report a ratio")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name} [{cfg.event_order} order]: {len(trace)} requests ({int(res.completed.sum())} completed, simulated {res.end_clock:.0f} s); "
              f"kernel run {best:.4f} s best of {reps} (median {median:.4f} s; target < {target} s), "
              f"{len(trace) / best:,.0f} req/s; first call "
              f"(compile/cache load) {first:.2f} s; peak RSS so far {rss:.0f} MB; plain-Python reference "
              f"{ref_s:.2f} s = {ref_s / best:.0f}x")


if __name__ == "__main__":
    main()
