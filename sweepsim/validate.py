"""Side-by-side checks against reference SplitwiseSim runs (oracle cases).

A case directory holds ``case.toml`` (a run config without trace), ``trace.csv`` and
``expected_requests.csv`` (per request: completed, ttft, e2e, ... as produced by SplitwiseSim).
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sweepsim.config import load_config, with_trace
from sweepsim.engine import run
from sweepsim.errors import InputError
from sweepsim.results import requests_table, write_parquet_atomic
from sweepsim.trace import load_trace


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

    @property
    def fraction(self):
        return self.matched / self.n if self.n else 1.0


def check_case(case_dir):
    """Validate a case directory's inputs; returns (config, trace, expected) without running anything."""
    case_dir = Path(case_dir)
    for f in ("case.toml", "trace.csv", "expected_requests.csv"):
        if not (case_dir / f).exists():
            raise InputError(case_dir / f, None, "missing (a case needs case.toml, trace.csv, expected_requests.csv)")
    cfg = with_trace(load_config(case_dir / "case.toml"), case_dir / "trace.csv")
    trace = load_trace(cfg.trace)
    try:
        exp = pl.read_csv(case_dir / "expected_requests.csv")
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(case_dir / "expected_requests.csv", None, f"cannot read: {str(e).splitlines()[0]}") from None
    need = {"request_id", "completed", "ttft", "e2e"}
    if not need <= set(exp.columns):
        raise InputError(case_dir / "expected_requests.csv", None, f"needs columns {sorted(need)}")
    return cfg, trace, exp


def run_case(case_dir, out_dir=None, tol=1e-6, checked=None) -> CaseReport:
    case_dir = Path(case_dir)
    cfg, trace, exp = checked or check_case(case_dir)
    req = requests_table(run(cfg, trace))
    if out_dir is not None:
        write_parquet_atomic(req, Path(out_dir) / case_dir.name / "requests.parquet")
    got = req.select("request_id", "completed", "ttft", "e2e")
    j = exp.select("request_id", pl.col("completed").cast(pl.Boolean).alias("exp_completed"),
                   pl.col("ttft").alias("exp_ttft"), pl.col("e2e").alias("exp_e2e")).join(
        got, on="request_id", how="left")
    comp = j["exp_completed"].to_numpy()
    got_comp = j["completed"].fill_null(False).to_numpy()
    d_ttft = np.abs(j["ttft"].fill_null(np.nan).to_numpy() - j["exp_ttft"].fill_null(np.nan).to_numpy())
    d_e2e = np.abs(j["e2e"].fill_null(np.nan).to_numpy() - j["exp_e2e"].fill_null(np.nan).to_numpy())
    ok = np.where(comp, got_comp & (d_ttft <= tol) & (d_e2e <= tol), ~got_comp)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = d_e2e / np.abs(j["exp_e2e"].to_numpy())
    rel = rel[np.isfinite(rel)]
    order = np.argsort(-np.nan_to_num(np.maximum(d_ttft, d_e2e), nan=np.inf))[:3]
    rid = j["request_id"].to_numpy()
    return CaseReport(case_dir.name, len(j), int(ok.sum()), float(np.nanmax(d_ttft, initial=0.0)),
                      float(np.nanmax(d_e2e, initial=0.0)),
                      float(np.percentile(rel, 50)) if len(rel) else 0.0,
                      float(np.percentile(rel, 99)) if len(rel) else 0.0,
                      [(int(rid[k]), float(d_ttft[k]), float(d_e2e[k])) for k in order])
