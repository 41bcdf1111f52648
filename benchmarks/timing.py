"""Shared by the benchmarks: wall-clock timing (the first call, JIT compile or cache load, is timed on its
own; steady-state runs repeat until a time budget is spent and report the best and the median) and running
each case in its own process, so that its peak memory is its own."""
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


def time_once(fn):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def repeat(fn, budget_s: float = 2.0, min_reps: int = 3, max_reps: int = 200):
    """Call ``fn`` at least ``min_reps`` times (once if one call exceeds the budget) and until ``budget_s``
    seconds are spent; returns (best s, median s, repetitions, last result). The best is the figure to
    compare with a target: the others measure the machine's noise (other processes, frequency changes)."""
    times = []
    out = None
    while len(times) < max_reps:
        dt, out = time_once(fn)
        times.append(dt)
        spent = sum(times)
        if spent >= budget_s and (len(times) >= min_reps or times[0] >= budget_s):
            break
    return min(times), statistics.median(times), len(times), out


def case_in_subprocess(script, case: str, extra_args=()) -> dict:
    """Run ``python -m benchmarks.<script's name> --case CASE --json [extra_args]`` from the project root and
    return the JSON dict it prints last; on failure print its stderr and exit with its code."""
    root = Path(script).resolve().parent.parent
    out = subprocess.run([sys.executable, "-m", f"benchmarks.{Path(script).stem}", "--case", case, "--json",
                          *extra_args], capture_output=True, text=True, cwd=root)
    if out.returncode:
        print(out.stderr, file=sys.stderr)
        raise SystemExit(out.returncode)
    return json.loads(out.stdout.strip().splitlines()[-1])
