"""Import of the Azure LLM inference traces (2023 and 2024 releases: columns TIMESTAMP, ContextTokens,
GeneratedTokens) into sweepsim's trace format.

Arrivals become seconds relative to the first request, request ids follow arrival order, ContextTokens is the
prompt size and GeneratedTokens the output size. Rows with zero, negative or unreadable token counts or
unparseable timestamps are bad: they are reported (count and first examples) and raise ``InputError`` unless
the caller asks to drop them. Everything is vectorised (Polars / NumPy), so week-long 2024 traces import in
seconds.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sweepsim.errors import InputError, check_input_file
from sweepsim.workload.limits import MAX_TOKENS

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
FORMATS = ("azure",)
#: timestamp layouts tried in order (2023: ``2023-11-16 18:17:03.9799600``; 2024: ``... .009930+00:00``)
TIMESTAMP_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f%#z",
                     "%Y-%m-%dT%H:%M:%S%.f%#z")
MAX_EXAMPLES = 3


def is_azure(columns) -> bool:
    return all(c in columns for c in AZURE_COLUMNS)


@dataclass(frozen=True)
class AzureTrace:
    arrival: np.ndarray    # float64 seconds since the first request, non-decreasing
    prompt: np.ndarray     # int64 ContextTokens
    token: np.ndarray      # int64 GeneratedTokens
    dropped: int           # bad rows dropped (only with drop_bad)
    report: str            # description of the dropped rows ('' if none)


def read_azure(path) -> pa.Table:
    """Read an Azure trace file (CSV or Parquet) without type inference on the CSV's three columns, so that
    one unreadable value is reported as a bad row instead of failing the whole read."""
    path = Path(path)
    check_input_file(path, None, "trace file")
    if path.stat().st_size == 0:
        raise InputError(path, None, "file is empty")
    try:
        if path.suffix.lower() == ".parquet":
            t = pq.read_table(path)
        else:
            t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in AZURE_COLUMNS}))
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(path, None, f"cannot read trace: {str(e).splitlines()[0]}") from None
    missing = [c for c in AZURE_COLUMNS if c not in t.column_names]
    if missing:
        raise InputError(path, ", ".join(missing), f"missing column(s); an Azure trace needs "
                                                   f"{', '.join(AZURE_COLUMNS)} (found: {', '.join(t.column_names)})")
    return t


#: Timestamps must lie within this many seconds of 1970 (about 142 years: differences in int64 ns never wrap).
MAX_EPOCH_S = 4.5e9


def _parse_text(text: pl.Series, unit: str) -> pl.Series:
    out = None
    for fmt in TIMESTAMP_FORMATS:
        try:
            p = text.str.to_datetime(fmt, strict=False, time_unit=unit).cast(pl.Int64)
        except pl.exceptions.PolarsError:  # pragma: no cover - layout unsupported by this Polars version
            continue
        out = p if out is None else out.fill_null(p)
        if out.null_count() == 0:
            break
    return out


def _timestamps_ns(col: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 ns, valid mask) of a TIMESTAMP column: datetime, numeric seconds or text. Instants outside
    +-MAX_EPOCH_S of 1970 are invalid (their nanoseconds would wrap around)."""
    if col.dtype.is_numeric():                              # already seconds
        sec = col.cast(pl.Float64).fill_null(np.nan).to_numpy()
        valid = np.isfinite(sec) & (np.abs(np.where(np.isfinite(sec), sec, 0)) <= MAX_EPOCH_S)
        return np.where(valid, sec * 1e9, 0).astype(np.int64), valid
    if isinstance(col.dtype, pl.Datetime) or col.dtype == pl.Date:
        us = col.cast(pl.Datetime("us")).cast(pl.Int64)    # microseconds: no overflow for any date
        in_range = (us.abs() <= MAX_EPOCH_S * 1e6).fill_null(False)
        ns = col.cast(pl.Datetime("us")).set(~in_range, None).dt.cast_time_unit("ns").cast(pl.Int64)
    else:
        text = col.cast(pl.String).str.strip_chars()
        us = _parse_text(text, "us")
        in_range = (us.abs() <= MAX_EPOCH_S * 1e6).fill_null(False)
        ns = _parse_text(text.set(~in_range, None), "ns")
        # numbers written as text (a CSV read without type inference) are seconds, as numeric columns are
        sec = text.cast(pl.Float64, strict=False)
        sec_ok = (sec.is_not_null() & sec.is_finite() & (sec.abs() <= MAX_EPOCH_S)).fill_null(False)
        ns = ns.zip_with(ns.is_not_null() | ~sec_ok, (sec * 1e9).cast(pl.Int64, strict=False))
    valid = ns.is_not_null().to_numpy()
    return ns.fill_null(0).to_numpy().astype(np.int64), valid


def _tokens(col: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int64 counts, valid mask): a count is valid if it is a whole number from 1 to MAX_TOKENS."""
    if col.dtype == pl.String or not col.dtype.is_numeric():
        col = col.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    f = col.cast(pl.Float64)
    a = f.fill_null(np.nan).to_numpy()
    valid = np.isfinite(a) & (a >= 1) & (a <= MAX_TOKENS) & (a == np.round(a))
    return np.where(valid, a, 0).astype(np.int64), valid


def convert(table: pa.Table, source, *, drop_bad: bool = False, sort: bool = False,
            drop_hint: str = "pass --drop-bad to drop them",
            sort_hint: str = "pass --sort to sort the requests by time") -> AzureTrace:
    """Convert an Azure-schema table into arrival seconds and sizes (see the module docstring)."""
    if table.num_rows == 0:
        raise InputError(source, None, "trace has no requests")
    names = table.column_names
    for c in AZURE_COLUMNS:
        if names.count(c) > 1:
            raise InputError(source, c, "column appears more than once")
        typ = table[c].type
        plain = pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_string(typ) \
            or pa.types.is_large_string(typ) or pa.types.is_dictionary(typ) or pa.types.is_null(typ)
        when = c == "TIMESTAMP" and (pa.types.is_timestamp(typ) or pa.types.is_date(typ))
        if not (plain or when):
            raise InputError(source, c, f"must hold {'date-times, seconds or text' if c == 'TIMESTAMP' else 'numbers'}"
                                        f", found {typ}")
    df = pl.from_arrow(table.select(list(AZURE_COLUMNS)))
    ts, ok_ts = _timestamps_ns(df["TIMESTAMP"])
    prompt, ok_p = _tokens(df["ContextTokens"])
    token, ok_t = _tokens(df["GeneratedTokens"])
    good = ok_ts & ok_p & ok_t
    csv = not str(source).lower().endswith(".parquet")
    where = (lambda i: f"line {i + 2}") if csv else (lambda i: f"row {i + 1}")
    report = ""
    n_bad = int(len(good) - np.count_nonzero(good))
    if n_bad:
        bad = np.flatnonzero(~good)
        cols = [c for c, ok in zip(AZURE_COLUMNS, (ok_ts, ok_p, ok_t)) if not ok.all()]
        examples = []
        for i in bad[:MAX_EXAMPLES]:
            vals = [f"{c}={df[c][int(i)]!r}" for c, ok in zip(AZURE_COLUMNS, (ok_ts, ok_p, ok_t)) if not ok[i]]
            examples.append(f"{where(int(i))}: {', '.join(vals)}")
        report = (f"{n_bad} bad row(s) of {len(good)} (zero, negative, huge or unreadable token counts, or "
                  f"unparseable or out-of-range timestamps), e.g. {'; '.join(examples)}")
        if not drop_bad:
            raise InputError(source, ", ".join(cols), f"{report}; {drop_hint}")
        if n_bad == len(good):
            raise InputError(source, ", ".join(cols), f"every row is bad: {report}")
        ts, prompt, token = ts[good], prompt[good], token[good]
    back = np.flatnonzero(np.diff(ts) < 0)
    if len(back):
        if not sort:
            i = int(np.flatnonzero(good)[back[0] + 1]) if n_bad else int(back[0] + 1)
            raise InputError(source, "TIMESTAMP", f"must be sorted ascending ({where(i)} is earlier than the row "
                                                  f"before it); {sort_hint}")
        order = np.argsort(ts, kind="stable")
        ts, prompt, token = ts[order], prompt[order], token[order]
    arrival = (ts - ts[0]).astype(np.float64) / 1e9
    return AzureTrace(arrival, prompt, token, n_bad if drop_bad else 0, report)


def import_azure(path, *, drop_bad: bool = False, sort: bool = False) -> AzureTrace:
    """Read and convert an Azure trace file (CSV or Parquet, 2023 or 2024 schema)."""
    return convert(read_azure(path), path, drop_bad=drop_bad, sort=sort)
