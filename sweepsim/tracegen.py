"""Synthetic traces: Poisson arrivals with request sizes resampled from the shipped Azure 2023 traces.

Seeded and deterministic; vectorised NumPy (no Python loop per request).
"""
from functools import lru_cache

import numpy as np
import pyarrow.csv as pacsv

from sweepsim import PROJECT_ROOT
from sweepsim.errors import InputError, allowed
from sweepsim.trace import Trace

AZURE_2023 = {"azure-code": PROJECT_ROOT / "traces" / "azure2023" / "azure_llm_2023_code.csv",
              "azure-conv": PROJECT_ROOT / "traces" / "azure2023" / "azure_llm_2023_conv.csv"}


@lru_cache(maxsize=4)
def azure_sizes(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens, output tokens) of every request of a shipped Azure 2023 trace."""
    if name not in AZURE_2023:
        raise InputError(None, "sizes", f"unknown size distribution {name!r}; {allowed(AZURE_2023)}")
    t = pacsv.read_csv(AZURE_2023[name])
    return (t["ContextTokens"].to_numpy().astype(np.int64), t["GeneratedTokens"].to_numpy().astype(np.int64))


def poisson_trace(sizes: str, rate: float, seed: int = 0, count: int | None = None,
                  duration: float | None = None) -> Trace:
    """Poisson arrivals at ``rate`` req/s for ``count`` requests or ``duration`` seconds; (prompt, output)
    pairs resampled jointly with replacement from the named Azure trace."""
    rng = np.random.Generator(np.random.PCG64(seed))
    if count is None:
        if duration is None:
            raise ValueError("give count or duration")
        count = int(rate * duration * 1.2 + 10 * np.sqrt(rate * duration) + 10)
    arrival = np.cumsum(rng.exponential(1.0 / rate, count))
    if duration is not None:
        arrival = arrival[arrival < duration]
    n = len(arrival)
    prompt, output = azure_sizes(sizes)
    pick = rng.integers(0, len(prompt), n)
    return Trace(f"{sizes}@{rate}", np.arange(n, dtype=np.int64), np.zeros(n, np.int64), arrival,
                 prompt[pick].copy(), output[pick].copy())
