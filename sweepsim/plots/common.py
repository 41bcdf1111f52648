"""Shared plotting helpers: headless figures, output formats, atomic saves, axis labels with units, and
reading a run directory (the Parquet files written by ``sweepsim run``).

Figures are built with matplotlib's object API (``Figure`` + the Agg canvas), never through pyplot's global
state, so plotting is headless and thread-safe; the Agg backend is also selected for anyone importing pyplot
later in the process (unless pyplot is already in use).
"""
import functools
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # set before pyplot is ever imported; never switch a live session
    matplotlib.use("Agg")

import polars as pl
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sweepsim.atomic import atomic_write
from sweepsim.errors import InputError, check_output_path, read_parquet
from sweepsim.results.columns import LATENCY_METRICS as _LATENCY, RUN_TABLE_COLUMNS

FORMATS = (".png", ".svg", ".pdf")
DPI = 100  # figure sizes are given in pixels; inches = pixels / DPI (also for SVG / PDF)

#: colours of batch compositions (gantt) and pools (timeline)
COLORS = {"prompt": "#1f77b4", "token": "#ff7f0e", "mixed": "#2ca02c", "none": "#7f7f7f"}


def plain_text(figure_fn):
    """Draw every text of the figure as given: titles, labels and directory names are never parsed as
    mathtext (``$...$`` in user input would otherwise fail or render as formulas)."""
    @functools.wraps(figure_fn)
    def draw(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False}), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)   # e.g. a log axis without positive values
            return figure_fn(*args, **kwargs)
    return draw


# ------------------------------------------------------------------------------------------ output


def check_output(path, option="-o") -> Path:
    """The output image path; its extension picks the format (exit 2 with the allowed ones otherwise)."""
    return check_output_path(path, FORMATS, option, "image")


def parse_size(text, option="--size") -> tuple[int, int] | None:
    """``1600x900`` -> (1600, 900) pixels; None passes through."""
    if text is None:
        return None
    w, sep, h = str(text).lower().partition("x")
    try:
        size = (int(w), int(h)) if sep else None
    except ValueError:
        size = None
    if size is None or min(size) < 50 or max(size) > 20000:
        raise InputError(None, option, f"{text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1600x900 (50..20000)")
    return size


def new_figure(size: tuple[int, int]) -> Figure:
    """A headless figure of ``size`` pixels (width, height) at :data:`DPI`, constrained layout."""
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig




def save(fig: Figure, path) -> Path:
    """Write the figure (format from the extension) atomically. The pixel size of a PNG is exactly the
    figure's size (no tight bounding box)."""
    path = check_output(path)
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower(), dpi=DPI))


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (for the HTML report)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------ labels


_UNITS = {
    "throughput_rps": "throughput [req/s]", "throughput_tps": "throughput [output tokens/s]",
    "trace.rate": "offered load [req/s]", "rate": "offered load [req/s]",
    "cost_usd": "cost [$]", "cost_per_1m_tokens_usd": "cost [$ / 1M output tokens]",
    "energy_kwh": "energy [kWh]", "energy_j": "energy [J]", "energy_per_token_j": "energy [J / output token]",
    "mean_power_w": "mean power [W]", "duration": "duration [s]", "servers": "servers",
    "requests": "requests", "completed": "completed requests",
}


def axis_label(col: str) -> str:
    """A column name with its unit, e.g. ``ttft_p99`` -> ``ttft p99 [s]``, ``cost_usd`` -> ``cost [$]``."""
    if col in _UNITS:
        return _UNITS[col]
    for m in _LATENCY:
        if col.startswith(m + "_"):
            stat = col[len(m) + 1:]
            unit = "s/token" if m == "normalized_e2e" else "s"
            return f"{m} {stat} [{unit}]"
    if col.startswith("cluster."):
        return f"{col[len('cluster.'):]} servers"
    return col


# ------------------------------------------------------------------------------------------ runs


@dataclass
class Run:
    """A run directory of ``sweepsim run``; tables are read on first use. ``iterations`` and
    ``kv_transfers`` are None when the run was made without ``--debug``."""
    path: Path
    _cache: dict = field(default_factory=dict, repr=False)

    def _read(self, name, required=True):
        if name not in self._cache:
            f = self.path / f"{name}.parquet"
            if not f.exists():
                if required:
                    raise InputError(f, None, "missing (not a complete `sweepsim run` output directory)")
                self._cache[name] = None
            else:
                self._cache[name] = read_parquet(f, None, RUN_TABLE_COLUMNS.get(name, ()))
        return self._cache[name]

    @property
    def requests(self) -> pl.DataFrame:
        return self._read("requests")

    @property
    def summary(self) -> pl.DataFrame:
        return self._read("summary")

    @property
    def instances(self) -> pl.DataFrame:
        return self._read("instances")

    @property
    def iterations(self) -> pl.DataFrame | None:
        return self._read("iterations", required=False)

    @property
    def kv_transfers(self) -> pl.DataFrame | None:
        return self._read("kv_transfers", required=False)

    @property
    def has_debug(self) -> bool:
        return (self.path / "iterations.parquet").exists()

    @property
    def name(self) -> str:
        return self.path.resolve().name

    def require_debug(self):
        if not self.has_debug:
            raise InputError(self.path, "iterations.parquet",
                             "no debug log in this run; rerun with `sweepsim run --debug`")
        return self.iterations


def is_run_dir(path) -> bool:
    p = Path(path)
    return (p / "requests.parquet").exists() and (p / "instances.parquet").exists()


def is_sweep_dir(path) -> bool:
    p = Path(path)
    return (p / "summary.parquet").exists() and (p / "configs.parquet").exists()


def read_run(path) -> Run:
    p = Path(path)
    if not p.is_dir():
        raise InputError(p, None, "no such run directory")
    if not is_run_dir(p):
        hint = " (a sweep results directory: use `sweepsim plot sweep`)" if is_sweep_dir(p) else \
            " (expected requests.parquet, summary.parquet, instances.parquet from `sweepsim run`)"
        raise InputError(p, None, "not a run directory" + hint)
    return Run(p)


def config_label(summary: pl.DataFrame) -> str:
    """A short label of a run's configuration from its summary's config columns, e.g.
    ``mixed_pool, splitwise, 1 dgx-a100 + 1 dgx-h100``; empty if the columns are missing."""
    if summary is None or len(summary) == 0:
        return ""
    row = summary.row(0, named=True)
    parts = [str(row[c]) for c in ("scheduler", "start_state") if row.get(c) is not None]
    cluster = [f"{int(row[c])} {c[len('cluster.'):]}" for c in summary.columns
               if c.startswith("cluster.") and row[c] is not None and row[c] > 0]
    if cluster:
        parts.append(" + ".join(cluster))
    return ", ".join(parts)


def run_labels(runs: list[Run]) -> list[str]:
    """One label per run from its configuration; runs with the same configuration label get their directory
    name added (``dir: label``); the directory name alone when the configuration gives nothing."""
    base = [config_label(r.summary) for r in runs]
    out = []
    for r, b in zip(runs, base):
        if not b:
            out.append(r.name)
        elif base.count(b) > 1:
            out.append(f"{r.name}: {b}")
        else:
            out.append(b)
    # still ambiguous (same directory names): fall back to the full paths
    return [str(r.path) if out.count(lab) > 1 else lab for r, lab in zip(runs, out)]


def parse_instances(text: str | None, available: list[int], option="--instances") -> list[int] | None:
    """``0-7``, ``0,2,5`` or ``0-3,8`` -> sorted instance ids (each must exist); None for all."""
    if text is None:
        return None
    ids, missing = set(), []
    have = set(available)
    for part in str(text).split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            rng = range(int(lo), int(hi) + 1) if sep else range(int(lo), int(lo) + 1)
        except ValueError:
            raise InputError(None, option, f"{part!r}: expected ids or ranges like 0-7 or 0,2,5") from None
        if rng.start >= rng.stop:  # (len() of a huge range overflows)
            raise InputError(None, option, f"{part!r}: empty range")
        found = []  # the first 10 unknown ids: at most len(have) + 10 steps, however large the range
        for i in rng:
            if i not in have:
                found.append(i)
                if len(found) == 10:
                    break
        missing += found
        if not found:
            ids.update(rng)
    missing = sorted(set(missing))
    if missing:
        span = f"{min(available)}-{max(available)}" if available else "none"
        raise InputError(None, option, f"unknown instance id(s) {', '.join(map(str, missing[:10]))}; "
                                       f"the run has instances {span}")
    return sorted(ids)


def step_sum(starts, ends, values, t0=None, t1=None):
    """The sum over intervals [start, end) of their values as a step function: (times, levels) with
    ``levels[k]`` holding on [times[k], times[k + 1]). Starts with level 0 at ``t0`` (default the first start)
    and, if ``t1`` is given, ends at it."""
    import numpy as np
    starts = np.asarray(starts, float)
    ends = np.asarray(ends, float)
    values = np.asarray(values, float)
    t = np.concatenate([starts, ends])
    d = np.concatenate([values, -values])
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    if len(t):
        t, idx = np.unique(t, return_index=True)
        d = np.add.reduceat(d, idx)
    level = np.cumsum(d)
    level[np.abs(level) < 1e-9 * max(1.0, float(np.abs(values).max(initial=0.0)))] = 0.0
    lo = t[0] if t0 is None and len(t) else (0.0 if t0 is None else t0)
    times = np.concatenate([[lo], t])
    levels = np.concatenate([[0.0], level])
    if t1 is not None:
        times = np.concatenate([times, [t1]])
        levels = np.concatenate([levels, [levels[-1]]])
    return times, levels
