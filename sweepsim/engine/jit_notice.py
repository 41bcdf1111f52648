"""Tell the user when the simulation kernels are being compiled (the first run on a machine), which takes
minutes: Numba compiles them on first use and caches the machine code (``kernels/__init__.py``)."""
import os
import sys
import time
from contextlib import contextmanager

import numba


def _marker(kernel: str) -> str:
    return os.path.join(numba.config.CACHE_DIR, f".compiled-{kernel.replace(' ', '-')}")


@contextmanager
def compile_notice(kernel: str):
    """Around a kernel call: when this cache has never completed a call of ``kernel``, print a one-line
    notice to stderr before and the compile time after, then mark the cache. Silent otherwise."""
    marker = _marker(kernel)
    if os.path.exists(marker):
        yield
        return
    print(f"sweepsim: compiling the {kernel} kernel for this machine (first run only, a few minutes; "
          f"cached in {numba.config.CACHE_DIR})...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    yield
    print(f"sweepsim: {kernel} kernel ready after {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    try:
        os.makedirs(os.path.dirname(marker), exist_ok=True)
        with open(marker, "w"):
            pass
    except OSError:  # a read-only cache only costs the notice next time
        pass
