"""Capacity-search benchmark (issue: capacity search). The capacity of the 500 cluster shapes of
configs/experiments/splitwise_ha_search.toml (Splitwise-HA-like: 1-25 DGX-H100 prompt servers x 1-20 DGX-A100
token servers, bloom-176b, mixed_pool) on 2-minute conversation traces, for SLOs ttft_p90 <= 2 s and
tbt_p90 <= 0.2 s, over a 14-rate grid (2..150 req/s, geometric):
1. `sweepsim search`'s bisection over the 14 rates, every shape advancing together;
2. the plain grid: every shape at every rate (what the Splitwise paper's rate sweeps do).
Prints wall time, probes per shape, simulated requests, and whether both give the same capacity for every shape.
Target: at least 3x fewer simulated requests than the grid for the same answers.

    python -m benchmarks.bench_search [--shapes N]    # N: the first N shapes (default all 500)
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from sweepsim import PROJECT_ROOT
from sweepsim.config.experiment import load_experiment, validate_points
from sweepsim.search.capacity import ProbeRunner, candidates, max_rate_search
from sweepsim.search.slo import parse_slos

EXPERIMENT = PROJECT_ROOT / "configs" / "experiments" / "splitwise_ha_search.toml"
RATES = np.geomspace(2.0, 150.0, 14)
SLO = "ttft_p90<=2,tbt_p90<=0.2"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", type=int, default=500, help="search the first N shapes (default: all 500)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ.setdefault("SWEEPSIM_TRACE_CACHE", str(tmp / "cache"))
        exp = load_experiment(EXPERIMENT)
        cands = candidates(exp.points, validate_points(exp), exp.varied, exp.source)[:a.shapes]
        slos = parse_slos(SLO)
        ProbeRunner(tmp / "warm").run([(cands[0], float(RATES[0]))])   # compile / cache load, traces aside
        search = ProbeRunner(tmp / "search")
        t0 = time.perf_counter()
        caps = max_rate_search(cands, RATES, slos, search)
        t_search = time.perf_counter() - t0
        grid = ProbeRunner(tmp / "grid")
        t0 = time.perf_counter()
        grid.run([(c, float(r)) for c in cands for r in RATES])
        t_grid = time.perf_counter() - t0
        same = 0
        monotone = 0
        for c, cap in zip(cands, caps):
            ok = np.array([grid.outcome(c.key, float(r), slos) for r in RATES])
            mono = bool(np.all(np.diff(ok.astype(int)) <= 0))
            monotone += mono
            # the grid's answer: the highest rate below the first miss
            first_miss = np.flatnonzero(~ok)
            k = (first_miss[0] if len(first_miss) else len(RATES)) - 1
            same += cap.max_rate == (float(RATES[k]) if k >= 0 else 0.0)
        n = len(cands)
        print(f"search: {n} shapes x 14 rates ({RATES[0]:g}..{RATES[-1]:g} req/s), SLO {SLO}, 2-minute traces")
        print(f"bisection: {t_search:.1f} s, {search.simulated_probes / n:.2f} probes per shape, "
              f"{search.simulated_requests:,} simulated requests")
        print(f"plain grid: {t_grid:.1f} s, 14 probes per shape, {grid.simulated_requests:,} simulated requests")
        print(f"ratio: {grid.simulated_requests / search.simulated_requests:.1f}x fewer simulated requests, "
              f"{t_grid / t_search:.1f}x less wall time (target: 3x fewer requests); same capacity for "
              f"{same}/{n} shapes ({monotone} with SLO outcomes monotone in the rate)")


if __name__ == "__main__":
    main()
