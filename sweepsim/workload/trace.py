"""Request traces: CSV or Parquet in SplitwiseSim's format, loaded once into NumPy arrays.

Columns: request_id, arrival_timestamp (seconds), prompt_size, token_size (tokens); optional
application_id (default 0), request_type (2 = generative LLM, the only kind simulated) and batch_size
(must be 1). Arrivals must be non-decreasing; sizes whole numbers >= 1; request ids unique.

Files in the Azure LLM inference trace schema (TIMESTAMP, ContextTokens, GeneratedTokens; 2023 and 2024
releases) are detected by their columns and converted on load (``sweepsim.workload.azure``). The optional
annotation columns workload (prod|batch), slo_ttft, slo_e2e [s], model and region are kept in
``Trace.annotations``; the engine ignores them.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sweepsim.errors import InputError, check_input_file
from sweepsim.workload.azure import AZURE_COLUMNS, convert, is_azure
from sweepsim.workload.limits import MAX_ARRIVAL_S, MAX_ID, MAX_REQUESTS, MAX_TOKENS

REQUIRED = ("request_id", "arrival_timestamp", "prompt_size", "token_size")
ANNOTATIONS = ("workload", "slo_ttft", "slo_e2e", "model", "region")
WORKLOADS = ("prod", "batch")


@dataclass(frozen=True)
class Trace:
    path: str
    request_id: np.ndarray        # int64
    application_id: np.ndarray    # int64
    arrival: np.ndarray           # float64 seconds, non-decreasing
    prompt_size: np.ndarray       # int64 tokens
    token_size: np.ndarray        # int64 tokens (output length, including the first token)
    # optional annotation columns present in the file (workload, model, region: str object arrays, None when
    # missing; slo_ttft, slo_e2e: float64 seconds, NaN when missing); not used by the engine
    annotations: dict = field(default_factory=dict, compare=False, repr=False)

    def __len__(self):
        return len(self.arrival)


def _read_table(path: Path) -> pa.Table:
    check_input_file(path, None, "trace file")
    try:
        if path.suffix.lower() == ".parquet":
            return pq.read_table(path)
        return pacsv.read_csv(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(path, None, f"cannot read trace: {str(e).splitlines()[0]}") from None


#: Value ranges of the trace columns (the kernels add sizes and times in int64 / float64 without overflow).
RANGES = {"request_id": (0, MAX_ID), "application_id": (0, MAX_ID), "prompt_size": (1, MAX_TOKENS),
          "token_size": (1, MAX_TOKENS), "request_type": (0, MAX_ID), "batch_size": (0, MAX_ID)}


def _to_numpy(col) -> np.ndarray:
    """A column as a NumPy array, through polars (pyarrow's own conversion imports pandas: 0.3 s per run)."""
    return pl.from_arrow(col).to_numpy()


def _numeric(path, name, col):
    """A column must hold plain numbers: not text, booleans, dates or times (read in their storage unit),
    nor nested values."""
    if pa.types.is_null(col.type) or not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise InputError(path, name, f"must be numeric, found {col.type}")


def _whole(path, name, col) -> np.ndarray:
    _numeric(path, name, col)
    if col.null_count:
        raise InputError(path, name, f"has {col.null_count} empty value(s)")
    a = _to_numpy(col)
    lo, hi = RANGES[name]
    if a.dtype.kind == "f" and (not np.all(np.isfinite(a)) or np.any(a != np.round(a))):
        raise InputError(path, name, "must hold whole numbers")
    for bad, rule in ((a < lo, f">= {lo}"), (a > hi, f"at most {hi}")):  # in the column's own type: no wrap
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise InputError(path, name, f"must be {rule} (row {k + 1} has {a[k].item()!r})")
    return a.astype(np.int64)


def _annotations(path, t: pa.Table) -> dict:
    out = {}
    for name in ANNOTATIONS:
        if name not in t.column_names:
            continue
        col = t[name]
        if pa.types.is_nested(col.type):
            raise InputError(path, name, f"must be plain values, found {col.type}")
        if name.startswith("slo_"):
            if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type)):
                raise InputError(path, name, f"must be numeric seconds, found {col.type}")
            a = np.asarray(_to_numpy(col.cast(pa.float64())), dtype=np.float64)
            if np.any(a <= 0) or np.any(np.isinf(a)):
                raise InputError(path, name, "must be finite seconds > 0 (empty for no SLO)")
        else:
            if pa.types.is_dictionary(col.type):
                col = col.cast(col.type.value_type)
            a = np.asarray(_to_numpy(col.cast(pa.string())), dtype=object)
            a[a == ""] = None  # empty CSV cell: no annotation
            if name == "workload":
                bad = set(np.unique(a[a != None]).tolist()) - set(WORKLOADS)  # noqa: E711
                if bad:
                    raise InputError(path, name, f"unknown value {sorted(bad)[0]!r}; allowed: prod, batch")
        out[name] = a
    return out


def load_trace(path) -> Trace:
    path = Path(path)
    if path.exists() and path.is_file() and path.stat().st_size == 0:
        raise InputError(path, None, "file is empty")
    t = _read_table(path)
    twice = sorted({c for c in t.column_names if t.column_names.count(c) > 1})
    if twice:
        raise InputError(path, twice[0], "column appears more than once")
    missing = [c for c in REQUIRED if c not in t.column_names]
    if missing:
        if is_azure(t.column_names):
            az = convert(t, path, drop_hint="drop them with `sweepsim trace import azure --drop-bad`",
                         sort_hint="sort them with `sweepsim trace import azure --sort`")
            n = len(az.arrival)
            return Trace(str(path), np.arange(n, dtype=np.int64), np.zeros(n, np.int64), az.arrival, az.prompt,
                         az.token, _annotations(path, t))
        raise InputError(path, ", ".join(missing),
                         f"missing column(s); a trace needs {', '.join(REQUIRED)} (found: {', '.join(t.column_names)}),"
                         f" or the Azure trace columns {', '.join(AZURE_COLUMNS)}")
    if t.num_rows == 0:
        raise InputError(path, None, "trace has no requests")
    rid = _whole(path, "request_id", t["request_id"])
    _numeric(path, "arrival_timestamp", t["arrival_timestamp"])
    if t["arrival_timestamp"].null_count:
        raise InputError(path, "arrival_timestamp", f"has {t['arrival_timestamp'].null_count} empty value(s)")
    arrival = np.asarray(_to_numpy(t["arrival_timestamp"]), dtype=np.float64)
    prompt = _whole(path, "prompt_size", t["prompt_size"])
    token = _whole(path, "token_size", t["token_size"])
    app = _whole(path, "application_id", t["application_id"]) if "application_id" in t.column_names \
        else np.zeros(len(rid), np.int64)
    if "request_type" in t.column_names:
        rt = _whole(path, "request_type", t["request_type"])
        if np.any(rt != 2):
            raise InputError(path, "request_type", "only 2 (generative LLM) is supported")
    if "batch_size" in t.column_names:
        bs = _whole(path, "batch_size", t["batch_size"])
        if np.any(bs != 1):
            raise InputError(path, "batch_size", "only 1 is supported")
    if len(arrival) > MAX_REQUESTS:
        raise InputError(path, None, f"{len(arrival):,} requests; a trace holds at most {MAX_REQUESTS:,}")
    if not np.all(np.isfinite(arrival)) or np.any(arrival < 0) or np.any(arrival > MAX_ARRIVAL_S):
        raise InputError(path, "arrival_timestamp", f"must be seconds from 0 to {MAX_ARRIVAL_S:g}")
    bad = np.flatnonzero(np.diff(arrival) < 0)
    if len(bad):
        raise InputError(path, "arrival_timestamp",
                         f"must be sorted ascending (row {bad[0] + 2} arrives before the row above it)")
    for name, a in (("prompt_size", prompt), ("token_size", token)):
        if np.any(a < 1):
            k = int(np.flatnonzero(a < 1)[0])
            raise InputError(path, name, f"must be >= 1 (request_id {rid[k]} has {a[k]})")
    # ids in increasing order (every generated or imported trace) are unique without a sort (np.unique takes
    # ~15 s on 10M ids)
    if not np.all(rid[1:] > rid[:-1]) and np.any(np.diff(np.sort(rid)) == 0):
        raise InputError(path, "request_id", "request ids must be unique")
    # owned, writable, contiguous arrays: one kernel signature whatever the file format
    return Trace(str(path), *(np.array(a, copy=True, order="C") for a in (rid, app, arrival, prompt, token)),
                 _annotations(path, t))
