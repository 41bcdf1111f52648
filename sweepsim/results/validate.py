"""Side-by-side checks against reference SplitwiseSim runs (oracle cases).

A case directory holds ``case.toml`` (a run config without trace), ``trace.csv`` and
``expected_requests.csv`` (per request: completed, ttft, e2e, ... as produced by SplitwiseSim). The cases
shipped with the project are in ``tests/oracle/`` (see its README). A ``known_mismatches.toml`` beside the case
directories (``case name = "reason"``) lists cases that do not match yet: they are reported as XFAIL (XPASS
if they match after all) instead of failing.
"""
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from sweepsim import PROJECT_ROOT
from sweepsim.config.run import load_config, with_trace
from sweepsim.engine.simulate import RETRY_DELAY_S, check_runnable, run
from sweepsim.errors import InputError, read_toml
from sweepsim.results.tables import requests_table, write_parquet_atomic
from sweepsim.workload.trace import load_trace

#: The reference cases shipped in the repository (absent from a non-editable install).
DEFAULT_CASES = PROJECT_ROOT / "tests" / "oracle"
CASE_FILES = ("case.toml", "trace.csv", "expected_requests.csv")
EXPECTED_COLUMNS = ("request_id", "completed", "ttft", "e2e")
KNOWN_MISMATCHES = "known_mismatches.toml"
#: A case passes when at least this fraction of its requests match.
PASS_FRACTION = 0.999


@dataclass
class CaseReport:
    name: str
    n: int
    matched: int
    max_ttft_diff: float
    max_e2e_diff: float
    p50_rel_diff: float
    p99_rel_diff: float
    worst: list[tuple[int, float, float]]   # (request_id, ttft diff, e2e diff)
    first_divergence: str = ""               # where the first mismatching request diverges (empty: none)
    event_order: str = field(default="reference")

    @property
    def fraction(self):
        return self.matched / self.n if self.n else 1.0

    @property
    def passed(self):
        return self.fraction >= PASS_FRACTION


def _named(case_dir) -> Path:
    """``case_dir``, resolved when it has no name of its own (``.``, ``..``)."""
    case_dir = Path(case_dir)
    return case_dir.resolve() if case_dir.name in ("", "..") else case_dir


def case_name(case_dir) -> str:
    return _named(case_dir).name


def _count(k: int, what: str) -> str:
    return f"{k} {what}" if k == 1 else f"{k} {what}s"


def default_cases() -> list[Path]:
    """The case directories shipped in ``tests/oracle`` (a clear error when not installed from a clone)."""
    if not DEFAULT_CASES.is_dir():
        raise InputError(DEFAULT_CASES, None, "no reference cases here (sweepsim is not installed from a clone); "
                                              "pass case directories: sweepsim validate CASE_DIR...")
    return find_cases([DEFAULT_CASES])


def find_cases(paths) -> list[Path]:
    """Case directories for the given paths: a directory without ``case.toml`` whose subdirectories hold cases
    (like ``tests/oracle``) stands for those cases (in name order); any other path is taken as one case."""
    out = []
    for p in map(Path, paths):
        if p.is_dir() and not (p / "case.toml").exists():
            subs = sorted((q for q in p.iterdir() if q.is_dir() and (q / "case.toml").is_file()),
                          key=lambda q: q.name)
            if subs:
                out.extend(subs)
                continue
        out.append(p)
    return out


def known_mismatches(folder) -> dict[str, str]:
    """``case name -> reason`` from ``folder/known_mismatches.toml`` (empty when the file does not exist)."""
    path = Path(folder) / KNOWN_MISMATCHES
    if not path.is_file():
        return {}
    data = read_toml(path, None, "known-mismatches file")
    for name, reason in data.items():
        if not isinstance(reason, str) or not reason.strip():
            raise InputError(path, name, 'must be a non-empty reason string: <case name> = "why it does not match"')
    return data


def known_mismatch(case_dir) -> str | None:
    """The reason a case is listed in the ``known_mismatches.toml`` of its parent directory, else None."""
    case_dir = _named(case_dir)
    return known_mismatches(case_dir.parent).get(case_dir.name)


def verdict(rep: CaseReport, reason: str | None, strict: bool = False) -> tuple[str, str]:
    """(status, note) of a case: PASS/FAIL; a known mismatch is XFAIL/XPASS unless ``strict``."""
    if reason is None:
        return ("PASS" if rep.passed else "FAIL"), ""
    if rep.passed:
        return ("PASS" if strict else "XPASS"), \
            f" (listed as a known mismatch: {reason}; it matches now: remove it from {KNOWN_MISMATCHES})"
    return ("FAIL" if strict else "XFAIL"), f" (known mismatch: {reason})"


def _first(ids: np.ndarray, mask: np.ndarray) -> int:
    return int(ids[np.flatnonzero(mask)[0]])


def _read_expected(path: Path, trace) -> pl.DataFrame:
    """The expected results, checked: one row per trace request, numeric columns. Returns request_id (Int64),
    completed (Boolean), ttft and e2e (Float64)."""
    n_trace = len(trace.request_id)
    needs = f"needs columns {', '.join(EXPECTED_COLUMNS)} and one row per trace request ({n_trace} in trace.csv)"
    if path.stat().st_size == 0:
        raise InputError(path, None, f"file is empty; {needs}")
    try:
        raw = pl.read_csv(path, infer_schema_length=0)   # every column as text: parsed and checked below
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(path, None, f"cannot read: {str(e).splitlines()[0]}") from None
    with open(path, encoding="utf-8", errors="replace") as f:
        header = [c.strip() for c in f.readline().rstrip("\r\n").split(",")]
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise InputError(path, twice[0], "column appears more than once")
    missing = [c for c in EXPECTED_COLUMNS if c not in raw.columns]
    if missing:
        raise InputError(path, ", ".join(missing), f"missing column(s); {needs} (found: {', '.join(raw.columns)})")
    if raw.height == 0:
        raise InputError(path, "request_id", f"no rows: all {n_trace} trace requests are missing "
                                             f"(first request_id {trace.request_id[0]})")
    text = {c: raw[c].str.strip_chars() for c in EXPECTED_COLUMNS}

    ids = text["request_id"].cast(pl.Int64, strict=False)
    bad = ids.is_null()
    if bad.any():
        k = int(bad.arg_true()[0])
        raise InputError(path, "request_id", f"row {k + 1} (line {k + 2}): {text['request_id'][k]!r} is not an "
                                             f"integer request id ({_count(int(bad.sum()), 'such row')})")

    comp_num = text["completed"].str.to_lowercase().replace({"true": "1", "false": "0"}).cast(pl.Float64, strict=False)
    bad = (comp_num.is_null() | ~comp_num.is_in([0.0, 1.0])).fill_null(True)
    if bad.any():
        k = int(bad.arg_true()[0])
        raise InputError(path, "completed", f"request_id {ids[k]}: {text['completed'][k]!r} is not 0 or 1 "
                                            f"({_count(int(bad.sum()), 'such row')})")
    completed = comp_num == 1.0

    values = {}
    for c in ("ttft", "e2e"):
        v = text[c].cast(pl.Float64, strict=False)
        unparsed = (v.is_null() & text[c].is_not_null()).fill_null(False)
        # a completed request needs finite latencies; one that did not complete may leave them empty
        absent = (completed & (v.is_null() | ~v.is_finite())).fill_null(True)
        bad = unparsed | absent
        if bad.any():
            k = int(bad.arg_true()[0])
            shown = repr(text[c][k]) if text[c][k] is not None else "empty"
            what = f"{shown} is not a number" if unparsed[k] else \
                f"completed but {c} is {shown}; a completed request needs a finite {c}"
            raise InputError(path, c, f"request_id {ids[k]}: {what} ({_count(int(bad.sum()), 'such row')})")
        values[c] = v

    dup = ids.is_duplicated()
    if dup.any():
        first = ids.filter(dup)[0]
        raise InputError(path, "request_id", f"request_id {first} appears {int((ids == first).sum())} times; one row "
                                             f"per request (duplicated ids: {ids.filter(dup).n_unique()})")
    ids_np = ids.to_numpy()
    absent = ~np.isin(trace.request_id, ids_np)
    if absent.any():
        raise InputError(path, "request_id", f"trace requests without a row: {int(absent.sum())} of {n_trace} "
                                             f"(first request_id {_first(trace.request_id, absent)}); every "
                                             "trace request needs one")
    extra = ~np.isin(ids_np, trace.request_id)
    if extra.any():
        raise InputError(path, "request_id", f"request ids not in trace.csv: {int(extra.sum())} of {len(ids_np)} "
                                             f"(first request_id {_first(ids_np, extra)})")
    return pl.DataFrame({"request_id": ids, "completed": completed, "ttft": values["ttft"], "e2e": values["e2e"]})


def check_case(case_dir):
    """Validate a case directory's inputs; returns (config, trace, expected) without running anything."""
    case_dir = Path(case_dir)
    if not case_dir.exists():
        raise InputError(case_dir, None, "case directory not found")
    if not case_dir.is_dir():
        raise InputError(case_dir, None, f"is a file, not a case directory ({', '.join(CASE_FILES)})")
    for f in CASE_FILES:
        if not (case_dir / f).is_file():
            raise InputError(case_dir / f, None, f"missing (a case needs {', '.join(CASE_FILES)}; "
                                                 "a folder of case directories runs them all)")
    cfg = with_trace(load_config(case_dir / "case.toml"), case_dir / "trace.csv")
    trace = load_trace(cfg.trace)
    check_runnable(cfg, trace)   # placement, performance data, requests that can never fit: before any case runs
    exp = _read_expected(case_dir / "expected_requests.csv", trace)
    return cfg, trace, exp


def _simultaneous_events(res, trace, until: float) -> list[tuple[float, str]]:
    """Exact-time ties among the events visible in a run's results up to ``until``: (time, description) of
    every instant at which two or more distinct events happened (arrivals; run ends, one per instance and
    instant, from prompt and decode ends; KV-transfer starts, retries and ends)."""
    events: dict[float, set] = {}

    def add(t, what):
        if np.isfinite(t) and t <= until:
            events.setdefault(float(t), set()).add(what)

    rid = trace.request_id
    for k in range(len(rid)):
        add(trace.arrival[k], f"arrival of request {rid[k]}")
        add(res.prompt_end[k], f"run end on instance {res.prompt_instance[k]}")
        add(res.token_end[k], f"run end on instance {res.token_instance[k]}")
        if np.isfinite(res.kv_start[k]):
            t = res.prompt_end[k]
            while t < res.kv_start[k]:   # waited for destination memory: retried every second (float sums)
                t = t + RETRY_DELAY_S
                add(t, f"KV transfer retry of request {rid[k]}")
            add(res.kv_end[k], f"KV transfer end of request {rid[k]}")
    return sorted((t, "; ".join(sorted(w))) for t, w in events.items() if len(w) > 1)


def _first_divergence(res, trace, j, ok, tol) -> str:
    """The mismatching request whose results diverge earliest (a ttft mismatch is visible by the earlier of
    the two prompt ends, an e2e one by the earlier of the two request ends), and the latest exact-time tie
    among sweepsim's events up to then."""
    best = None
    for m in np.flatnonzero(~ok):
        row = {c: j[c][int(m)] for c in ("request_id", "arrival", "ttft", "exp_ttft", "e2e", "exp_e2e")}
        a = row["arrival"]
        got_t, exp_t = row["ttft"], row["exp_ttft"]
        if got_t is None or exp_t is None or abs(got_t - exp_t) > tol:
            cands = [x for x in (got_t, exp_t) if x is not None and np.isfinite(x)]
        else:
            cands = [x for x in (row["e2e"], row["exp_e2e"]) if x is not None and np.isfinite(x)]
        bound = a + (min(cands) if cands else np.inf)
        if best is None or bound < best[0]:
            best = (bound, row, a)
    if best is None:
        return ""
    bound, row, a = best

    def fmt(x):
        return "never" if x is None or not np.isfinite(x) else f"{x:.6f} s"
    text = (f"first divergence: request {row['request_id']} (arrival {a:.6f} s): ttft {fmt(row['ttft'])} vs "
            f"{fmt(row['exp_ttft'])} expected, e2e {fmt(row['e2e'])} vs {fmt(row['exp_e2e'])}; visible by "
            f"{fmt(bound)}")
    ties = _simultaneous_events(res, trace, bound)
    if ties:
        t, what = ties[-1]
        text += f"; latest exact-time tie before it: {t:.6f} s ({what})"
    else:
        text += "; no exact-time tie among sweepsim's events before it"
    return text


def run_case(case_dir, out_dir=None, tol=1e-6, checked=None, event_order=None) -> CaseReport:
    """Run a case and compare per request; with ``out_dir``, then write ``out_dir/<case>/requests.parquet``.
    Simultaneous events follow the reference's heap order (``event_order = "reference"``), whatever the
    case says, unless ``event_order`` is given."""
    case_dir = Path(case_dir)
    cfg, trace, exp = checked or check_case(case_dir)
    cfg = replace(cfg, event_order=event_order or "reference")
    res = run(cfg, trace)
    req = requests_table(res)
    got = req.select("request_id", "arrival", "completed", "ttft", "e2e")
    j = exp.select("request_id", pl.col("completed").alias("exp_completed"),
                   pl.col("ttft").alias("exp_ttft"), pl.col("e2e").alias("exp_e2e")).join(
        got, on="request_id", how="left")
    comp = j["exp_completed"].to_numpy()
    got_comp = j["completed"].fill_null(False).to_numpy()
    d_ttft = np.abs(j["ttft"].fill_null(np.nan).to_numpy() - j["exp_ttft"].fill_null(np.nan).to_numpy())
    d_e2e = np.abs(j["e2e"].fill_null(np.nan).to_numpy() - j["exp_e2e"].fill_null(np.nan).to_numpy())
    ok = np.where(comp, got_comp & (d_ttft <= tol) & (d_e2e <= tol), ~got_comp)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = d_e2e / np.abs(j["exp_e2e"].fill_null(np.nan).to_numpy())
    rel = rel[np.isfinite(rel)]
    order = np.argsort(-np.nan_to_num(np.maximum(d_ttft, d_e2e), nan=np.inf))[:3]
    rid = j["request_id"].to_numpy()
    rep = CaseReport(case_name(case_dir), len(j), int(ok.sum()), float(np.nanmax(d_ttft, initial=0.0)),
                     float(np.nanmax(d_e2e, initial=0.0)),
                     float(np.percentile(rel, 50)) if len(rel) else 0.0,
                     float(np.percentile(rel, 99)) if len(rel) else 0.0,
                     [(int(rid[k]), float(d_ttft[k]), float(d_e2e[k])) for k in order],
                     _first_divergence(res, trace, j, ok, tol) if not ok.all() else "", cfg.event_order)
    if out_dir is not None:   # only after the comparison: a failure above leaves nothing behind
        write_parquet_atomic(req, Path(out_dir) / rep.name / "requests.parquet")
    return rep
