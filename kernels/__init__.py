"""Numba-jitted numeric kernels of sweepsim.

Everything here is a function of arrays and scalars (``*_nb``), with no I/O and no Python objects;
``sweepsim.engine.simulate`` packs configurations into these arrays and unpacks the results.
Read ``simulate_nb.py`` first (the event loop), then ``instance_nb.py`` (batching), ``scheduler_nb.py``
(instance choice) and ``kv_transfer_nb.py`` (KV-cache flows).

Compiled kernels are cached on disk under ``$SWEEPSIM_NUMBA_CACHE`` (default ``~/.cache/sweepsim/numba``) in a
folder named by a digest of this package's sources: Numba's own cache only notices changes to a function's
own file, not to the functions it calls, so any source change here must start a fresh cache.
"""
import hashlib
import os
from pathlib import Path

import numba


def _cache_dir() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for f in sorted(here.glob("*.py")):
        digest.update(f.name.encode() + f.read_bytes())
    digest.update(numba.__version__.encode())
    base = os.environ.get("SWEEPSIM_NUMBA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sweepsim", "numba")
    return os.path.join(base, digest.hexdigest()[:16])


if not os.environ.get("NUMBA_CACHE_DIR"):
    numba.config.CACHE_DIR = _cache_dir()
