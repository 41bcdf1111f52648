"""Reading a sweep's merged results: filter, sort, Pareto fronts (``sweepsim results``)."""
import json
from pathlib import Path

import polars as pl

from sweepsim.errors import InputError, read_parquet

MAXIMIZE_PREFIXES = ("throughput", "completed", "requests", "max_rate")
#: Tables of a results directory that the queries and sweep plots read: a sweep's summary, a search's answers.
TABLES = {"summary": ("summary.parquet", "config_hash", "sweepsim grid"),
          "capacity": ("capacity.parquet", "config_key", "sweepsim search"),
          "cheapest": ("cheapest.parquet", "config_key", "sweepsim search --target-rate")}
DEFAULT_METRICS = ("application_id", "region", "model", "request_class", "completed", "slo_attainment", "throughput_rps", "ttft_p50", "ttft_p99", "tbt_p99", "e2e_p99",
                   "cost_usd", "energy_kwh")
#: The columns shown by default for a search's tables (after the varied parameters).
DEFAULT_SEARCH_COLUMNS = {"capacity": ("max_rate_rps", "at_range_max", "probes", "cost_per_hour_usd",
                                       "cost_per_hour_per_rps_usd", "power_per_rps_w", "note"),
                          "cheapest": ("status", "objective", "objective_value", "cost_per_hour_usd", "gpus")}


def load_summary(results_dir, table: str = "summary") -> pl.DataFrame:
    """A results directory's table (``TABLES``): the sweep's summary, or a capacity search's answers."""
    name, key, made_by = TABLES[table]
    path = Path(results_dir) / name
    if not path.exists():
        raise InputError(path, None, f"no {table} table (run `{made_by}` first, or give a results directory)")
    return read_parquet(path, None, (key,))


def varied_columns(results_dir, df: pl.DataFrame) -> list[str]:
    """The experiment's varied parameters among ``df``'s columns (from configs.parquet, or the experiment
    manifest of a directory that only holds a search)."""
    path = Path(results_dir) / "configs.parquet"
    if path.exists():
        cols = read_parquet(path, None, ("config_hash",)).columns
        return [c for c in cols if c not in ("config_hash", "config_json") and c in df.columns]
    manifest = Path(results_dir) / "experiment.json"
    try:
        axes = json.loads(manifest.read_text()).get("axes", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [c for c in axes if isinstance(c, str) and c in df.columns]


def check_columns(df: pl.DataFrame, cols, source, option):
    for c in cols:
        if c not in df.columns:
            raise InputError(source, option, f"unknown column {c!r}; available: {', '.join(df.columns)}")


def parse_objectives(spec: str, df, source) -> list[tuple[str, bool]]:
    """``x,y`` or ``x:min,y:max`` -> [(column, maximize)]; throughput/completed default to max, others min."""
    out = []
    for part in spec.split(","):
        name, _, sense = part.strip().partition(":")
        if sense not in ("", "min", "max"):
            raise InputError(source, "--pareto", f"direction {sense!r}; allowed: min, max")
        check_columns(df, [name], source, "--pareto")
        if not df[name].dtype.is_numeric():
            raise InputError(source, "--pareto", f"column {name!r} is not numeric ({df[name].dtype})")
        out.append((name, sense == "max" or (sense == "" and name.startswith(MAXIMIZE_PREFIXES))))
    if len(out) < 2:
        raise InputError(source, "--pareto", "needs at least two columns, e.g. cost_usd,throughput_rps")
    return out


def pareto_front(df: pl.DataFrame, objectives: list[tuple[str, bool]]) -> pl.DataFrame:
    """Rows not dominated by any other row (all objectives at least as good, one strictly better)."""
    import numpy as np
    x = np.column_stack([(-1.0 if mx else 1.0) * df[c].cast(pl.Float64).to_numpy() for c, mx in objectives])
    ok = ~np.isnan(x).any(axis=1)
    keep = np.zeros(len(df), bool)
    for i in np.flatnonzero(ok):
        others = x[ok]
        dominated = np.any(np.all(others <= x[i], axis=1) & np.any(others < x[i], axis=1))
        keep[i] = not dominated
    return df.filter(pl.Series(keep)).sort(objectives[0][0], descending=objectives[0][1])


def _balanced(text: str) -> bool:
    """Parentheses outside quotes never close more than they opened, and all close, and no ``;`` ends the
    statement: a condition cannot step out of the ``WHERE (...)`` it is placed in."""
    depth, quote = 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == ";":
            return False
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and quote is None


def select(df: pl.DataFrame, where: str | None, source) -> pl.DataFrame:
    if not where:
        return df
    try:
        if not _balanced(where):
            raise ValueError("one condition, with balanced parentheses and no ';' outside quotes")
        return df.sql(f"SELECT * FROM self WHERE ({where})")  # parenthesised: a filter, never a new query
    except Exception as e:  # polars raises several error types for bad SQL
        msg = str(e).splitlines()[0]
        raise InputError(source, "--where", f"{msg}; columns: {', '.join(df.columns)} (quote dotted names: "
                                            f"\"cluster.dgx-h100\")") from None
