"""Cold start and warm start (issue: one engine layout). Prints, in a fresh kernel cache directory:
- the compile time of the first ``sweepsim run`` (the shipped example), as the kernels announce it;
- the compile time the first ``sweepsim grid`` adds after it (a small shipped sweep);
- their sum against the 45 s target;
- then, outside the target, what the first run of a multi-region topology adds (``configs/examples/us3_small.toml``:
  the serving variant of the kernel, ``kernels.variants``);
then the wall time of a warm ``sweepsim run`` of the example (best and median of 5, target 0.7 s) and of
a Python process importing the modules it needs (the import part of it).

    python -m benchmarks.bench_compile [--keep-cache DIR]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "configs/examples/baseline_h100.toml"
SWEEP = "configs/experiments/splitwise_ha_isocost.toml"
TOPOLOGY = "configs/examples/us3_small.toml"
IMPORTS = ("import sweepsim.cli.main, sweepsim.config.run, sweepsim.engine.simulate, sweepsim.results.tables, "
           "sweepsim.workload.cache")
TARGET_COLD_S = 45.0
TARGET_WARM_S = 0.7


def _sweepsim(args, env) -> tuple[float, str]:
    exe = str(Path(sys.executable).with_name("sweepsim"))
    t0 = time.perf_counter()
    out = subprocess.run([exe, *args], capture_output=True, text=True, cwd=ROOT, env=env)
    dt = time.perf_counter() - t0
    if out.returncode:
        print(out.stderr, file=sys.stderr)
        raise SystemExit(out.returncode)
    return dt, out.stderr


def _compiled_s(stderr: str) -> float:
    """Seconds the kernels announced for compiling (0 when everything came from the cache)."""
    return sum(float(s) for s in re.findall(r"kernel ready after (\d+(?:\.\d+)?) s", stderr))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep-cache", help="Use (and keep) this cache directory instead of a temporary one.")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = a.keep_cache or os.path.join(tmp, "numba")
        env = dict(os.environ, SWEEPSIM_NUMBA_CACHE=cache, SWEEPSIM_TRACE_CACHE=os.path.join(tmp, "traces"))
        run_s, err = _sweepsim(["run", EXAMPLE, "--out", os.path.join(tmp, "run")], env)
        run_c = _compiled_s(err)
        grid_s, err = _sweepsim(["grid", SWEEP, "--small", "--quiet", "--out", os.path.join(tmp, "grid")], env)
        grid_c = _compiled_s(err)
        print(f"cold sweepsim run: {run_s:.1f} s wall, {run_c:.0f} s compiling")
        print(f"then cold sweepsim grid --small: {grid_s:.1f} s wall, {grid_c:.0f} s compiling")
        total = run_c + grid_c
        print(f"compile total {total:.0f} s (target < {TARGET_COLD_S:.0f} s: {'met' if total < TARGET_COLD_S else 'not met'})")
        topo_s, err = _sweepsim(["run", TOPOLOGY, "--out", os.path.join(tmp, "topology")], env)
        print(f"then cold sweepsim run of a topology ({TOPOLOGY}): {topo_s:.1f} s wall, {_compiled_s(err):.0f} s "
              f"compiling the serving kernel")
        warm = [_sweepsim(["run", EXAMPLE, "--out", os.path.join(tmp, "run")], env)[0] for _ in range(5)]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", IMPORTS], check=True, cwd=ROOT, env=env)
        imp = time.perf_counter() - t0
        print(f"warm sweepsim run: best {min(warm):.2f} s, median {statistics.median(warm):.2f} s "
              f"(target < {TARGET_WARM_S} s); importing what it needs: {imp:.2f} s")


if __name__ == "__main__":
    main()
