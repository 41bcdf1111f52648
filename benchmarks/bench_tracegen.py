"""Trace generator benchmark (issue: traces). Generates 10M-request traces to Parquet and prints, per case,
the wall time (generation, Parquet write, total) and the peak memory of the process (each case runs in its
own process; peak RSS from resource.getrusage, after importing the libraries, which alone take ~150 MB).
Target: under 10 s and 2 GB for 10M requests.

    python -m benchmarks.bench_tracegen                 # all cases
    python -m benchmarks.bench_tracegen --case poisson_conv_10m --keep out.parquet
"""
import argparse
import json
import resource
import tempfile
import time
from pathlib import Path


from benchmarks.timing import case_in_subprocess

N = 10_000_000
CASES = {
    # name: trace spec (sweepsim.workload.sampling.parse_spec form)
    "poisson_conv_10m": {"sizes": "azure-conv", "rate": 250.0, "count": N, "seed": 0},
    "gamma_code_independent_10m": {"sizes": "azure-code", "independent": True, "rate": 250.0, "cv": 3.0,
                                   "count": N, "seed": 0},
    "two_apps_annotated_10m": {"count": N, "seed": 0, "workload": "prod=0.7,batch=0.3",
                               "slo_ttft": "prod=1,batch=60", "region": "eastus=0.5,westus=0.5",
                               "apps": [{"sizes": "azure-code", "rate": 100.0},
                                        {"sizes": "azure-conv", "rate": 150.0, "cv": 2.0}]},
}


def run_case(name, keep=None):
    from sweepsim.workload.files import trace_table, write_trace
    from sweepsim.workload.sampling import generate_columns
    from sweepsim.workload.spec import parse_spec

    spec = parse_spec(CASES[name])
    generate_columns(parse_spec({**CASES[name], "count": 1000}))  # load the Azure sources (not timed)
    with tempfile.TemporaryDirectory() as d:
        out = Path(keep) if keep else Path(d) / "trace.parquet"
        t0 = time.perf_counter()
        cols = generate_columns(spec)
        t1 = time.perf_counter()
        write_trace(trace_table(cols, spec), out)
        t2 = time.perf_counter()
        size = out.stat().st_size
    return {"case": name, "requests": len(cols["arrival_timestamp"]), "generate_s": t1 - t0, "write_s": t2 - t1,
            "wall_s": t2 - t0, "file_mb": size / 2 ** 20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--keep", help="keep the generated Parquet file here (with --case)")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.case and a.json:
        print(json.dumps(run_case(a.case, a.keep)))
        return
    for name in [a.case] if a.case else CASES:
        r = case_in_subprocess(__file__, name, ["--keep", a.keep] if a.keep else [])
        print(f"{r['case']}: {r['requests']:,} requests to Parquet in {r['wall_s']:.2f} s (generate "
              f"{r['generate_s']:.2f} s, write {r['write_s']:.2f} s; target < 10 s), {r['file_mb']:.0f} MB file, "
              f"peak RSS {r['peak_rss_mb']:.0f} MB (target < 2048 MB)")


if __name__ == "__main__":
    main()
