"""Trace files: the sweepsim trace table (request_id, request_type, application_id, arrival_timestamp,
batch_size, prompt_size, token_size and the optional annotation and serving columns: workload, slo_ttft,
slo_e2e, model, region, batch_id, sla, regions; text columns dictionary-encoded), written as CSV or Parquet
atomically; Parquet files carry their generator spec in their metadata (``spec_of``).
"""
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sweepsim.atomic import atomic_write
from sweepsim.errors import check_output_path
from sweepsim.workload.spec import SLOS, TraceSpec, spec_json


TRACE_COLUMNS = ("request_id", "request_type", "application_id", "arrival_timestamp", "batch_size", "prompt_size",
                 "token_size")


OUTPUT_SUFFIXES = (".csv", ".parquet")


METADATA_KEY = b"sweepsim.trace_spec"


def trace_table(cols: dict, spec: TraceSpec | None = None) -> pa.Table:
    # NaN SLOs and SLAs (none) are written as nulls (empty CSV cells)
    t = pa.table({k: (v if isinstance(v, pa.Array) else pa.array(v, from_pandas=k in SLOS or k == "sla"))
                  for k, v in cols.items()})
    if spec is not None:
        t = t.replace_schema_metadata({METADATA_KEY: spec_json(spec).encode()})
    return t


def check_output(path, fld="--out"):
    return check_output_path(path, OUTPUT_SUFFIXES, fld)


def write_trace(table: pa.Table, path) -> Path:
    """Write a trace table as CSV or Parquet (by extension), atomically."""
    path = check_output(path)
    if path.suffix.lower() == ".parquet":
        dict_cols = [c for c in table.column_names if c not in ("request_id", "arrival_timestamp")]
        atomic_write(path, lambda tmp: pq.write_table(
            table, tmp, compression="zstd", use_dictionary=dict_cols,
            column_encoding={"request_id": "DELTA_BINARY_PACKED", "arrival_timestamp": "BYTE_STREAM_SPLIT"}))
    else:
        def write_csv(tmp):
            # plain header and values; quotes only if a text annotation holds a delimiter or quote
            for style in ("none", "needed"):
                try:
                    with open(tmp, "wb") as f:
                        f.write((",".join(table.column_names) + "\n").encode())
                        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style=style))
                    return
                except pa.ArrowInvalid:
                    if style == "needed":
                        raise
        atomic_write(path, write_csv)
    return path


def spec_of(path) -> dict | None:
    """The generator spec stored in a generated Parquet trace (None for other files)."""
    try:
        md = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    raw = md.get(METADATA_KEY)
    return json.loads(raw) if raw else None
