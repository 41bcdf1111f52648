"""Request traces: CSV or Parquet in SplitwiseSim's format, loaded once into NumPy arrays.

Columns: request_id, arrival_timestamp (seconds), prompt_size, token_size (tokens); optional
application_id (default 0), request_type (2 = generative LLM, the only kind simulated) and batch_size
(must be 1). Arrivals must be non-decreasing; sizes whole numbers >= 1; request ids unique.

Files in the Azure LLM inference trace schema (TIMESTAMP, ContextTokens, GeneratedTokens; 2023 and 2024
releases) are detected by their columns and converted on load (``sweepsim.workload.azure``). The optional
annotation columns workload (prod|batch|dev), slo_ttft, slo_e2e [s], model and region are kept in
``Trace.annotations`` as they are in the file.

Multi-region, multi-model serving (SageServe): the optional columns model, workload, batch_id, sla and regions
(and region) describe each request's model, class and region priority order; they are validated and kept, as
categorical codes, in ``Trace.serving`` (a ``Serving``; None when the file has none of them):

- ``model`` (alias ``model_type``): model name (empty = the topology's only model);
- ``workload`` (alias ``workload_type``): ``prod`` or ``dev`` (empty = prod); ``batch`` is accepted and means a
  prod batch job (batch_id 0 if the row's batch_id is -1 or missing);
- ``batch_id``: integer >= -1 (-1 or empty = not part of a batch job);
- ``sla``: seconds (empty, NaN or <= 0 = no SLA, stored as NaN);
- ``regions``: the region priority order, region names separated by ``,``, ``;`` or spaces
  (``westus,eastus,centralus``), or a string of digits without separators (``"201"``, SageServe's format: one
  region index per digit, in the topology's order). Tokens are kept as text (``("2", "0", "1")``); the engine
  resolves them. Empty = every region of the topology, in its order. Without a ``regions`` column, a ``region``
  column gives one-region orders. Region orders must be text: a number (``12`` for ``"012"``) is refused, and
  CSV files are read with these columns as text, so ``012`` keeps its leading zero.

Request classes (``Serving.request_class``, names ``WORKLOAD_CLASSES``): 0 interactive (prod, batch_id -1),
1 batch (prod, batch_id != -1), 2 dev. Validation is vectorised (a loop only over distinct values).
"""
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sweepsim.errors import InputError, allowed, check_input_file
from sweepsim.workload.azure import AZURE_COLUMNS, convert, is_azure
from sweepsim.workload.limits import MAX_ARRIVAL_S, MAX_ID, MAX_REQUESTS, MAX_TOKENS

REQUIRED = ("request_id", "arrival_timestamp", "prompt_size", "token_size")
ANNOTATIONS = ("workload", "slo_ttft", "slo_e2e", "model", "region")
#: workload values of trace files and generator fractions: prod (interactive), batch (a prod batch job), dev
WORKLOADS = ("prod", "batch", "dev")
#: request classes (``Serving.request_class`` codes 0, 1, 2)
WORKLOAD_CLASSES = ("interactive", "batch", "dev")
#: serving columns (besides ``region``, which gives one-region orders without ``regions``)
SERVING = ("model", "workload", "batch_id", "sla", "regions")
#: accepted column names (SageServe's) -> the column they stand for
ALIASES = {"model_type": "model", "workload_type": "workload"}
#: columns read as text from CSV (a region order "012" keeps its leading zero)
TEXT_COLUMNS = ("model", "model_type", "workload", "workload_type", "regions", "region")
#: separators of region names in a ``regions`` value
REGION_SEPARATORS = re.compile(r"\s*[,;]\s*|\s+")


@dataclass(frozen=True)
class Serving:
    """Per-request serving columns of a multi-region trace."""
    model_names: tuple[str, ...]      # distinct model names, sorted
    model: np.ndarray                 # int32 index into model_names, one per request
    workload: np.ndarray              # int8: 0 prod, 1 dev
    batch_id: np.ndarray              # int64, -1 = not part of a batch job
    sla: np.ndarray                   # float64 seconds; NaN = no SLA (opportunistic)
    region_orders: tuple[tuple[str, ...], ...]   # distinct region priority orders, each a tuple of region tokens
    regions: np.ndarray               # int32 index into region_orders, one per request

    def request_class(self) -> np.ndarray:
        """int8 per request: 0 interactive (prod, batch_id -1), 1 batch (prod, batch_id != -1), 2 dev."""
        c = (self.batch_id != -1).view(np.int8).copy()
        c[self.workload == 1] = 2
        return c

    def take(self, index) -> "Serving":
        """The requests ``index`` (integer indices or a boolean mask) selects, with the same names and orders."""
        return Serving(self.model_names, self.model[index], self.workload[index], self.batch_id[index],
                       self.sla[index], self.region_orders, self.regions[index])

    def __len__(self):
        return len(self.model)


@dataclass(frozen=True, eq=False)
class TextColumn:
    """A text annotation column kept as codes (one byte per request while it has fewer than 128 distinct values):
    row i is ``values[codes[i]]``, ``None`` for an empty cell (code -1). Indexing with an integer gives the row's
    text, with a slice or mask another ``TextColumn``; iteration, ``tolist()`` and ``np.asarray`` give the texts
    (a 20M-request trace's three text columns take 60 MB as codes, 480 MB as Python object arrays)."""
    codes: np.ndarray
    values: tuple   # distinct texts; None stands for an empty cell

    @staticmethod
    def of(codes: np.ndarray, values: list) -> "TextColumn":
        small = np.int8 if len(values) < 127 else np.int16 if len(values) < 32_767 else np.int32
        return TextColumn(codes.astype(small), tuple(v if v != "" else None for v in values))

    def _texts(self) -> np.ndarray:
        """The texts as a Python object array."""
        lut = np.empty(len(self.values) + 1, dtype=object)   # code -1 (empty cell) reads the last entry: None
        lut[:len(self.values)] = self.values
        return lut[self.codes]

    def __len__(self):
        return len(self.codes)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            c = int(self.codes[key])
            return self.values[c] if c >= 0 else None
        return TextColumn(self.codes[key], self.values)

    def __array__(self, dtype=None, copy=None):
        a = self._texts()
        return a if dtype is None else a.astype(dtype)

    def __iter__(self):
        return iter(self.tolist())

    def tolist(self) -> list:
        return self._texts().tolist()

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes


@dataclass(frozen=True)
class Trace:
    path: str
    request_id: np.ndarray        # int64
    application_id: np.ndarray    # int64
    arrival: np.ndarray           # float64 seconds, non-decreasing
    prompt_size: np.ndarray       # int64 tokens
    token_size: np.ndarray        # int64 tokens (output length, including the first token)
    # optional annotation columns present in the file (workload, model, region: ``TextColumn``s, None for an
    # empty cell; slo_ttft, slo_e2e: float64 seconds, NaN when missing)
    annotations: dict = field(default_factory=dict, compare=False, repr=False)
    # model, class, SLA and region priority order of each request (None: no serving column in the file)
    serving: Serving | None = field(default=None, compare=False, repr=False)

    def __len__(self):
        return len(self.arrival)


def _cannot_read(path, e) -> InputError:
    return InputError(path, None, f"cannot read trace: {str(e).splitlines()[0]}")


class _ParquetColumns:
    """A Parquet trace read one column at a time (a large trace's file buffers are never all resident at once:
    each column is converted and released before the next is read), with the part of ``pa.Table``'s interface
    ``_load_trace`` uses. Text columns stay dictionary-encoded: no Python string per row."""

    def __init__(self, path: Path):
        self.path = path
        schema = pq.read_schema(path)
        self.column_names = schema.names
        text = [f.name for f in schema if f.name in TEXT_COLUMNS and _is_text(f.type)]   # (nested ones are refused)
        self._file = pq.ParquetFile(path, read_dictionary=text)
        self.num_rows = self._file.metadata.num_rows

    def __getitem__(self, name) -> pa.ChunkedArray:
        return self.table([name]).column(0)

    def table(self, names=None) -> pa.Table:
        """The columns ``names`` (default all) as one table."""
        try:
            return self._file.read(columns=names)
        except (pa.ArrowInvalid, OSError) as e:
            raise _cannot_read(self.path, e) from None


def _read_table(path: Path) -> "pa.Table | _ParquetColumns":
    check_input_file(path, None, "trace file")
    try:
        if path.suffix.lower() == ".parquet":
            return _ParquetColumns(path)
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={c: pa.dictionary(pa.int32(), pa.string()) for c in TEXT_COLUMNS}))
    except (pa.ArrowInvalid, OSError) as e:
        raise _cannot_read(path, e) from None


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


def _is_number(typ) -> bool:
    return pa.types.is_integer(typ) or pa.types.is_floating(typ)


def _is_text(typ) -> bool:
    return pa.types.is_string(typ) or pa.types.is_large_string(typ)


def _text(path, name, col) -> tuple[np.ndarray, list]:
    """(int32 codes, distinct values) of a text column (any plain column, as text), dictionary-encoded without
    a Python loop per row: code i is ``values[i]``, -1 an empty (null) cell."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    typ = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
    if pa.types.is_nested(typ):
        raise InputError(path, name, f"must be plain values, found {col.type}")
    if pa.types.is_null(typ) or len(col) == 0:
        return np.full(len(col), -1, np.int32), []
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col if _is_text(typ) else col.cast(pa.string()))
    col = col.unify_dictionaries()  # every chunk has the same dictionary
    values = col.chunk(0).dictionary
    values = (values if _is_text(typ) else values.cast(pa.string())).to_pylist()
    codes = [pc.fill_null(c.indices, -1).to_numpy() for c in col.chunks]
    codes = np.array(codes[0], np.int32) if len(codes) == 1 else np.concatenate(codes).astype(np.int32, copy=False)
    return codes, values   # owned, writable (not a view of Arrow memory)


def _used(codes, k) -> np.ndarray:
    """Which of the k values (and, last, the empty cell: code -1) some row uses."""
    return np.bincount(codes + 1, minlength=k + 1)[np.r_[1:k + 1, 0]] > 0


def _row(codes, i) -> str:
    rows = np.flatnonzero(codes == i)
    return f" (row {rows[0] + 1})" if len(rows) else ""


def _recode(codes, keys, empty):
    """Distinct keys in use (sorted) and each row's index into them; code -1 (empty cell) -> ``empty``."""
    keys = list(keys) + [empty]
    used = _used(codes, len(keys) - 1)
    distinct = sorted({k for k, u in zip(keys, used) if u})
    pos = {k: i for i, k in enumerate(distinct)}
    remap = np.array([pos.get(k, 0) for k in keys], np.int32)
    if not used[-1] and np.array_equal(remap[:-1][used[:-1]], np.flatnonzero(used[:-1])):
        return tuple(distinct), codes      # already sorted codes without empty cells
    return tuple(distinct), remap[codes]   # index -1 -> the last entry: empty


def _columns(path, t: pa.Table) -> dict:
    """canonical name -> (name in the file, column) of the annotation and serving columns (aliases resolved)."""
    out = {}
    for name in t.column_names:
        canon = ALIASES.get(name, name)
        if canon not in ANNOTATIONS and canon not in SERVING:
            continue
        if canon in out:
            raise InputError(path, name, f"stands for {canon}, which the file also has as {out[canon][0]!r}; keep "
                                         f"one of the two")
        out[canon] = (name, t[name])
    return out


def _check_workloads(path, name, codes, values):
    for i, v in enumerate(values):
        if v.strip() not in WORKLOADS and v.strip() != "" and _used(codes, len(values))[i]:
            raise InputError(path, name, f"unknown value {v!r}{_row(codes, i)}; {allowed(WORKLOADS)} (batch: a prod "
                                         f"batch job; empty: prod)")


def _floats(path, name, col, what) -> np.ndarray:
    if pa.types.is_nested(col.type) or not (_is_number(col.type) or pa.types.is_null(col.type)):
        raise InputError(path, name, f"must be {what}, found {col.type}")
    return np.array(_to_numpy(col.cast(pa.float64())), dtype=np.float64)  # owned; empty cells: NaN


def _batch_ids(path, name, col) -> np.ndarray:
    if not (_is_number(col.type) or pa.types.is_null(col.type)):
        raise InputError(path, name, f"must be whole numbers >= -1 (-1: not part of a batch job), found {col.type}")
    if pa.types.is_integer(col.type):
        s = pl.from_arrow(col)
        low = (s < -1) if pa.types.is_signed_integer(col.type) else pl.Series(np.zeros(len(s), bool))
        for bad, rule in ((low, ">= -1 (-1: not part of a batch job)"), (s > MAX_ID, f"at most {MAX_ID}")):
            if bad.any():  # compared in the column's own type: no wrap
                k = int(bad.arg_true()[0])
                raise InputError(path, name, f"must be {rule} (row {k + 1} has {s[k]!r})")
        return np.array(s.cast(pl.Int64).fill_null(-1).to_numpy(), dtype=np.int64)  # owned, writable
    a = _floats(path, name, col, "")
    a[np.isnan(a)] = -1   # empty cells (and NaN): not part of a batch job
    bad = ~np.isfinite(a) | (a != np.round(a)) | (a < -1) | (a > MAX_ID)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise InputError(path, name, f"must be whole numbers from -1 (not part of a batch job) to {MAX_ID} (row "
                                     f"{k + 1} has {a[k]!r})")
    return a.astype(np.int64)


def _region_order(path, name, value, where) -> tuple:
    s = value.strip()
    if not s:
        return ()
    tokens = tuple(s) if s.isascii() and s.isdigit() else tuple(REGION_SEPARATORS.split(s))
    if "" in tokens:
        raise InputError(path, name, f"empty region name in {value!r}{where}; separate region names with ',', ';' "
                                     f"or spaces (e.g. 'westus,eastus'), or give region indices as digits ('201')")
    if len(set(tokens)) < len(tokens):
        dup = next(x for i, x in enumerate(tokens) if x in tokens[:i])
        raise InputError(path, name, f"region {dup!r} appears more than once in the priority order {value!r}{where}")
    return tokens


def _serving(path, n: int, cols: dict, text) -> Serving:
    if "model" in cols:
        codes, values = text("model")
        model_names, model = _recode(codes, [v.strip() for v in values], "")
    else:
        model_names, model = ("",), np.zeros(n, np.int32)
    batch = None
    if "workload" in cols:
        codes, values = text("workload")
        kinds = [v.strip() for v in values] + [""]   # code -1 (empty): prod
        workload = np.array([k == "dev" for k in kinds], np.int8)[codes]
        if "batch" in kinds:
            batch = np.array([k == "batch" for k in kinds])[codes]
    else:
        workload = np.zeros(n, np.int8)
    if "batch_id" in cols:
        batch_id = _batch_ids(path, *cols["batch_id"])
    else:
        batch_id = np.full(n, -1, np.int64)
    if batch is not None:
        batch_id[batch & (batch_id == -1)] = 0
    if "sla" in cols:
        name, col = cols["sla"]
        sla = _floats(path, name, col, "numeric seconds (empty or <= 0: no SLA)")
        if np.isinf(sla).any():
            k = int(np.flatnonzero(np.isinf(sla))[0])
            raise InputError(path, name, f"must be finite seconds (empty or <= 0: no SLA); row {k + 1} has {sla[k]}")
        sla[~(sla > 0)] = np.nan
    else:
        sla = np.full(n, np.nan)
    if "regions" in cols:
        name, col = cols["regions"]
        typ = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        if _is_number(typ):
            raise InputError(path, name, f"holds numbers ({typ}), not text: a priority order such as '012' read as "
                                         f"the number 12 has lost its leading zero; store the column as text (quote "
                                         f"the values, e.g. \"012\"), or separate region names with ','")
        if not (_is_text(typ) or pa.types.is_null(typ)):
            raise InputError(path, name, f"must be text (region names separated by ',', or digits), found {col.type}")
        codes, values = text("regions")
        keys = [_region_order(path, name, v, _row(codes, i)) for i, v in enumerate(values)]
    elif "region" in cols:
        codes, values = text("region")
        keys = [(v.strip(),) if v.strip() else () for v in values]
    else:
        codes, keys = np.full(n, -1, np.int32), []
    region_orders, regions = _recode(codes, keys, ())
    return Serving(model_names, model, workload, batch_id, sla, region_orders, regions)


def read_extras(path, t: pa.Table) -> tuple[dict, Serving | None]:
    """(``Trace.annotations``, ``Trace.serving``) of a trace table's optional columns (see the module
    docstring); every categorical column is dictionary-encoded once."""
    cols = _columns(path, t)
    encoded = {}

    def text(name):
        if name not in encoded:
            encoded[name] = _text(path, *cols[name])
        return encoded[name]

    out = {}
    for name in ANNOTATIONS:
        if name not in cols:
            continue
        fname, col = cols[name]
        if name.startswith("slo_"):
            a = _floats(path, fname, col, "numeric seconds")
            if np.any(a <= 0) or np.any(np.isinf(a)):
                raise InputError(path, fname, "must be finite seconds > 0 (empty for no SLO)")
        else:
            codes, values = text(name)
            if name == "workload":
                _check_workloads(path, fname, codes, values)
            a = TextColumn.of(codes, values)
        out[name] = a
    serving = None
    if any(k in cols for k in SERVING + ("region",)):
        serving = _serving(path, t.num_rows, cols, text)
    return out, serving


def load_trace(path) -> Trace:
    """The trace file's requests (arrays the trace owns; Arrow's memory pool is emptied afterwards, so that a
    large trace's file buffers do not stay resident during the run)."""
    try:
        return _load_trace(path)
    finally:
        pa.default_memory_pool().release_unused()


def _load_trace(path) -> Trace:
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
            if isinstance(t, _ParquetColumns):
                t = t.table()
            az = convert(t, path, drop_hint="drop them with `sweepsim trace import azure --drop-bad`",
                         sort_hint="sort them with `sweepsim trace import azure --sort`")
            n = len(az.arrival)
            return Trace(str(path), np.arange(n, dtype=np.int64), np.zeros(n, np.int64), az.arrival, az.prompt,
                         az.token, *read_extras(path, t))
        raise InputError(path, ", ".join(missing),
                         f"missing column(s); a trace needs {', '.join(REQUIRED)} (found: {', '.join(t.column_names)}),"
                         f" or the Azure trace columns {', '.join(AZURE_COLUMNS)}")
    if t.num_rows == 0:
        raise InputError(path, None, "trace has no requests")
    rid = _whole(path, "request_id", t["request_id"])
    col = t["arrival_timestamp"]
    _numeric(path, "arrival_timestamp", col)
    if col.null_count:
        raise InputError(path, "arrival_timestamp", f"has {col.null_count} empty value(s)")
    arrival = _owned(np.asarray(_to_numpy(col), dtype=np.float64))
    del col
    prompt = _whole(path, "prompt_size", t["prompt_size"])
    token = _whole(path, "token_size", t["token_size"])
    app = _whole(path, "application_id", t["application_id"]) if "application_id" in t.column_names \
        else np.zeros(len(rid), np.int64)
    if "request_type" in t.column_names:
        rt = _whole(path, "request_type", t["request_type"])
        if np.any(rt != 2):
            raise InputError(path, "request_type", "only 2 (generative LLM) is supported")
        del rt
    if "batch_size" in t.column_names:
        bs = _whole(path, "batch_size", t["batch_size"])
        if np.any(bs != 1):
            raise InputError(path, "batch_size", "only 1 is supported")
        del bs
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
    # the arrays are owned, writable and contiguous (one kernel signature whatever the file format: ``_whole``
    # returns copies, ``arrival`` is ``_owned``); the required columns' file buffers are released before the
    # optional columns are read (a 20M-request trace peaked 2 GB higher)
    core = REQUIRED + ("application_id", "request_type", "batch_size")
    if isinstance(t, _ParquetColumns):
        t = t.table([c for c in t.column_names if c not in core])
    else:
        t = t.drop_columns([c for c in core if c in t.column_names])
    pa.default_memory_pool().release_unused()
    annotations, serving = read_extras(path, t)
    del t
    return Trace(str(path), rid, app, arrival, prompt, token, annotations, serving)


def _owned(a: np.ndarray) -> np.ndarray:
    """``a`` itself if it owns its writable, C-contiguous memory (not a view of the file's buffers), else a copy."""
    if a.flags.owndata and a.flags.writeable and a.flags.c_contiguous:
        return a
    return np.array(a, copy=True, order="C")
