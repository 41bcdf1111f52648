"""The results directory of one experiment (``sweepsim grid``): committed chunk parts, the merged tables and
resume bookkeeping; every file written atomically."""
import json
from pathlib import Path

import polars as pl

from sweepsim.errors import InputError
from sweepsim.results.tables import write_parquet_atomic, write_text_atomic
from sweepsim.sweep.jobs import Job, run_config_json

PARTS = "parts"
FAILURE_SCHEMA = {"config_hash": pl.String, "error": pl.String, "permanent": pl.Boolean}


def column_type(v):
    """Typed columns for varied parameters (Python ints as Int64, not polars' default Int32)."""
    if isinstance(v, bool):
        return pl.Boolean
    if isinstance(v, int):
        return pl.Int64
    if isinstance(v, float):
        return pl.Float64
    return pl.String if isinstance(v, str) else None


class Store:
    """The results directory of one experiment: committed chunk parts, merged tables, resume bookkeeping.

    ``experiment.json`` names the experiment (name and varied parameters); another experiment is refused
    (``replace=True`` clears the directory first). A configuration counts as done when a part holds its
    summary, or a *permanent* failure (unless ``retry_failed``); transient failures are retried."""

    MANIFEST = "experiment.json"
    OURS = ("summary.parquet", "configs.parquet", "failures.parquet", MANIFEST, PARTS, "requests")

    def __init__(self, out: Path):
        self.out = Path(out)
        self.parts = self.out / PARTS

    def claim(self, identity: dict, replace: bool = False, write: bool = True):
        """Check that the directory holds nothing or this experiment's results (before anything is written);
        with ``replace``, remove another experiment's results. Then record the identity (unless not
        ``write``: only the check)."""
        out = self.out
        if out.exists() and not out.is_dir():
            raise InputError(out, "--out", "is a file, not a directory")
        if (out / "requests.parquet").exists() or (out / "instances.parquet").exists():
            raise InputError(out, "--out", "holds the results of `sweepsim run` (requests.parquet); a results "
                                           "directory holds one experiment: choose another --out")
        for name in (PARTS, "requests"):
            if (out / name).exists() and not (out / name).is_dir():
                raise InputError(out / name, "--out", "is a file where the results directory keeps a folder")
        for name in ("summary.parquet", "configs.parquet", "failures.parquet", self.MANIFEST):
            if (out / name).is_dir():
                raise InputError(out / name, "--out", "is a directory where the results directory keeps a file")
        mine = out / self.MANIFEST
        have = None
        if mine.exists():
            try:
                have = json.loads(mine.read_text())
            except (OSError, ValueError):
                have = None
            if not isinstance(have, dict) or not isinstance(have.get("name"), str):
                if not replace:
                    raise InputError(mine, "--out", "is damaged (not an experiment manifest): the directory's "
                                                    "results cannot be matched to this experiment; --force replaces "
                                                    "them")
                have = {}
        elif (out / "configs.parquet").exists() or self.parts.exists():  # written before manifests existed
            try:
                cols = pl.read_parquet_schema(out / "configs.parquet") if (out / "configs.parquet").exists() else {}
            except Exception:  # noqa: BLE001 - a damaged file, of whatever kind
                raise InputError(out / "configs.parquet", "--out", "is damaged: the directory's results cannot "
                                 "be matched to this experiment; --force replaces them") from None
            have = {"name": identity["name"], "axes": [c for c in cols if c not in ("config_hash", "config_json")]}
        if have is not None and (have.get("name"), have.get("axes")) != (identity["name"], identity["axes"]):
            if not replace:
                raise InputError(out, "--out", f"holds the results of another experiment ({have.get('name')!r}, "
                                 f"varying {', '.join(have.get('axes') or []) or 'nothing'}); a results directory "
                                 "holds one experiment: choose another --out, or --force to replace them")
            if write:
                self.clear()
        if write:
            write_text_atomic(mine, json.dumps(identity, indent=1, sort_keys=True))

    def clear(self):
        import shutil
        for name in self.OURS:
            p = self.out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def done_hashes(self, retry_failed: bool = False, kinds=("summary", "failures")) -> set[str]:
        """Configurations committed in ``parts/``: with a summary, or with a permanent failure (unless
        ``retry_failed``)."""
        done = set()
        if self.parts.exists():
            for f in self.parts.glob("*.parquet"):
                kind = "failures" if f.name.endswith(".failures.parquet") else "summary"
                if kind not in kinds:
                    continue
                if kind == "failures" and retry_failed:
                    continue
                need = ["config_hash"] + (["permanent"] if kind == "failures" else [])
                try:  # only the columns needed: summary parts are wide
                    if not set(need) <= set(pl.read_parquet_schema(f)):
                        continue      # a failure without ``permanent`` (older parts) is retried
                    df = pl.read_parquet(f, columns=need)
                except Exception:  # an unreadable part is rerun
                    continue
                if kind == "failures":
                    df = df.filter(pl.col("permanent"))
                done |= set(df["config_hash"].to_list())
        return done

    def has_requests(self, config_hash: str) -> bool:
        return (self.out / "requests" / f"config={config_hash}" / "part-0.parquet").is_file()

    def commit(self, chunk_id: str, tables: dict):
        """Write a finished chunk: requests first, then its part files (the part marks it done)."""
        for h, req in tables["requests"].items():
            write_parquet_atomic(req, self.out / "requests" / f"config={h}" / "part-0.parquet")
        if len(tables["failures"]):
            write_parquet_atomic(tables["failures"], self.parts / f"{chunk_id}.failures.parquet")
        if tables["summary"] is not None:
            write_parquet_atomic(tables["summary"], self.parts / f"{chunk_id}.summary.parquet")

    def merge(self, jobs: list[Job]):
        """Rewrite summary.parquet, failures.parquet and configs.parquet from the committed parts, for this
        experiment's configurations only; a configuration run several times counts from its newest part
        (a success after a failure replaces it). The summary is written even when empty."""
        files = sorted(self.parts.glob("*.parquet"), key=lambda f: f.stat().st_mtime_ns) if self.parts.exists() else []
        wanted = {j.hash for j in jobs}
        frames = {"summary": [], "failures": []}
        newest: dict[str, Path] = {}
        tables = []
        for f in files:
            try:
                df = pl.read_parquet(f)
            except Exception:  # a damaged part: its configurations are rerun by the next run
                continue
            if "config_hash" not in df.columns:
                continue
            df = df.filter(pl.col("config_hash").is_in(list(wanted)))
            tables.append((f, df))
            for h in df["config_hash"].unique().to_list():
                newest[h] = f
        for f, df in tables:
            kind = "failures" if f.name.endswith(".failures.parquet") else "summary"
            keep = df.filter(pl.col("config_hash").is_in([h for h, nf in newest.items() if nf == f]))
            if len(keep):
                frames[kind].append(keep)
        if frames["summary"]:
            summary = pl.concat(frames["summary"], how="diagonal_relaxed")
        else:  # every configuration failed (or none ran): an empty table with the varied columns
            schema = {"config_hash": pl.String}
            for j in jobs[:1]:
                schema.update({k: column_type(v) or pl.String for k, v in j.varied.items()})
            summary = pl.DataFrame(schema=schema)
        write_parquet_atomic(summary, self.out / "summary.parquet")
        fails = pl.concat(frames["failures"], how="diagonal_relaxed") if frames["failures"] else \
            pl.DataFrame(schema=FAILURE_SCHEMA)
        if "permanent" not in fails.columns:
            fails = fails.with_columns(pl.lit(False).alias("permanent"))
        write_parquet_atomic(fails.select(list(FAILURE_SCHEMA)), self.out / "failures.parquet")
        rows = [{"config_hash": j.hash, **j.varied, "config_json": run_config_json(j.raw)}
                for j in jobs]
        if rows:
            write_parquet_atomic(pl.DataFrame(rows), self.out / "configs.parquet")
