"""Sweep plots: any two columns of a sweep's ``summary.parquet`` against each other, coloured by one
parameter (hue), one panel per value of another (facet), optionally filtered (SQL), aggregated per point
(e.g. the highest load meeting the SLOs) and with the Pareto front highlighted.

A plot spec (``<experiment>.plot.toml``, ``sweepsim plot sweep --spec``) holds the same options::

    results = "results/splitwise_hh_isocost"   # default RESULTS_DIR (relative to the working directory)
    title = "..."
    x = "s"                                     # columns of summary.parquet
    y = "throughput_rps"
    hue = "scheduler"                           # optional
    facet = "trace.sizes"                       # optional
    where = "ttft_p99 <= 2 AND \\"trace.sizes\\" = 'azure-conv'"   # optional SQL filter
    agg = "max"                                 # optional: max | min | mean | median of y per (x, hue, facet)
    pareto = true                               # or "cost_usd:min,throughput_rps:max"
    style = "auto"                              # auto | lines | points
    xlabel = "..."; ylabel = "..."; log_x = false; log_y = false; size = "1600x600"
"""
import math
from pathlib import Path

import polars as pl
from matplotlib.figure import Figure

from sweepsim.errors import InputError, allowed, read_toml
from sweepsim.plots.common import axis_label, new_figure, plain_text
from sweepsim.results.query import check_columns, pareto_front, parse_objectives, select

AGGS = ("max", "min", "mean", "median")
STYLES = ("auto", "lines", "points")
SPEC_KEYS = {"results": str, "table": str, "title": str, "x": str, "y": str, "hue": str, "facet": str, "where": str,
             "agg": str, "pareto": (bool, str), "style": str, "xlabel": str, "ylabel": str, "log_x": bool,
             "log_y": bool, "size": str, "description": str}
MAX_FACETS = 24
MAX_DISCRETE_HUES = 12


def read_spec(path) -> dict:
    """A ``.plot.toml`` spec -> dict of options (keys checked, types checked)."""
    path = Path(path)
    raw = read_toml(path, "--spec", "plot spec")
    for k, v in raw.items():
        if k not in SPEC_KEYS:
            raise InputError(path, k, f"unknown key; {allowed(SPEC_KEYS)}")
        if not isinstance(v, SPEC_KEYS[k]):
            types = SPEC_KEYS[k] if isinstance(SPEC_KEYS[k], tuple) else (SPEC_KEYS[k],)
            raise InputError(path, k, f"expected {' or '.join(t.__name__ for t in types)}, got {v!r}")
    for k, choices in (("agg", AGGS), ("style", STYLES)):
        if k in raw and raw[k] not in choices:
            raise InputError(path, k, f"{raw[k]!r}; {allowed(choices)}")
    return raw


def _is_numeric(s: pl.Series) -> bool:
    return s.dtype.is_numeric()


def _sort_key(v):
    return (v is None, str(type(v)), v if v is not None else 0)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return "none" if v is None else str(v)


def _colors(values: list, numeric: bool):
    from matplotlib import colormaps
    n = len(values)
    if numeric:
        cmap = colormaps["viridis"]
        return [cmap(0.9 * k / max(n - 1, 1)) for k in range(n)]
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(n)]


def check_column(df: pl.DataFrame, col: str, source, option: str, varied=()):
    """Exit-2 error for an unknown column, listing the varied parameters first, then every column."""
    if col in df.columns:
        return
    if varied:
        raise InputError(source, option, f"unknown column {col!r}; varied parameters: {', '.join(varied)}; "
                                         f"available: {', '.join(df.columns)}")
    check_columns(df, [col], source, option)


def prepare(df: pl.DataFrame, x: str, y: str, hue=None, facet=None, where=None, agg=None,
            source="summary.parquet", varied=()) -> pl.DataFrame:
    """Check the columns, filter with ``where`` and aggregate y per (x, hue, facet) with ``agg``."""
    named = {}
    for opt, col in (("--x", x), ("--y", y), ("--hue", hue), ("--facet", facet)):
        if col is not None:
            check_column(df, col, source, opt, varied)
            if col in named:
                raise InputError(source, opt, f"{col!r} is already the {named[col]} column; pick another")
            named[col] = opt
    if agg is not None and agg not in AGGS:
        raise InputError(source, "--agg", f"{agg!r}; {allowed(AGGS)}")
    if agg is not None and not _is_numeric(df[y]):
        raise InputError(source, "--agg", f"needs a numeric --y; {y!r} is {df[y].dtype}")
    df = select(df, where, source)
    keep = [c for c in dict.fromkeys([x, y, hue, facet]) if c is not None]
    df = df.filter(pl.col(x).is_not_null() & pl.col(y).is_not_null())
    if _is_numeric(df[y]):
        df = df.filter(pl.col(y).cast(pl.Float64).is_finite())
    if agg is not None:
        keys = [c for c in dict.fromkeys([x, hue, facet]) if c is not None]
        others = [c for c in keep if c not in keys]
        df = df.group_by(keys, maintain_order=True).agg(getattr(pl.col(c), agg)() for c in others) \
            if others else df.select(keys).unique(maintain_order=True)
    return df


@plain_text
def sweep_figure(df: pl.DataFrame, x: str, y: str, hue: str | None = None, facet: str | None = None,
                 where: str | None = None, agg: str | None = None, pareto=None, style: str = "auto",
                 title: str | None = None, xlabel: str | None = None, ylabel: str | None = None,
                 log_x: bool = False, log_y: bool = False, size: tuple[int, int] | None = None,
                 source="summary.parquet", varied=()) -> Figure:
    """One axis per facet value (one axis without facet). Per axis, one series per hue value: a Line2D with
    markers (``style`` lines; auto: when x is numeric, a varied parameter (``varied``) or aggregated over,
    and unique within every series) or a scatter PathCollection (points); a numeric hue with more than 12
    values is one scatter coloured by value, with a colorbar.
    ``pareto`` (True, or "col:min,col:max" as ``sweepsim results --pareto``) adds per axis one line through
    the front and one scatter collection ringing the front's points."""
    if style not in STYLES:
        raise InputError(source, "--style", f"{style!r}; {allowed(STYLES)}")
    data = prepare(df, x, y, hue, facet, where, agg, source, varied)
    objectives = None
    if pareto is not None and pareto is not False:
        spec = f"{x},{y}" if pareto is True or pareto == "" else str(pareto)
        objectives = parse_objectives(spec, data, source)

    facets = [None]
    if facet is not None:
        facets = sorted(df[facet].unique().to_list(), key=_sort_key)  # every panel, even if filtered empty
        if len(facets) > MAX_FACETS:
            facets = sorted(data[facet].unique().to_list(), key=_sort_key)
        if len(facets) > MAX_FACETS:
            raise InputError(source, "--facet", f"{facet!r} has {len(facets)} values (at most {MAX_FACETS} "
                                                f"panels); filter with --where or pick another column")
        if not facets:
            facets = [None]
    hues = [None]
    continuous = False
    if hue is not None:
        hues = sorted(df[hue].unique().to_list(), key=_sort_key)  # colours independent of the filter
        continuous = _is_numeric(data[hue]) and len(hues) > MAX_DISCRETE_HUES
    colors = _colors(hues, hue is not None and _is_numeric(data[hue])) if hue is not None else ["#1f77b4"]

    nf = len(facets)
    ncols = min(nf, 3)
    nrows = math.ceil(nf / ncols)
    fig = new_figure(size or (min(560 * ncols + 260, 4000), min(430 * nrows + 90, 4000)))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True, sharex=_is_numeric(data[x]) if len(data) else True)
    flat = list(axes.flat)
    for ax in flat[nf:]:
        ax.remove()
    lines_style = style == "lines"
    if style == "auto" and len(data):
        keys = [c for c in (hue, facet) if c is not None]
        dup = data.group_by(keys + [x]).len()["len"].max() if keys else data.group_by(x).len()["len"].max()
        lines_style = dup == 1 and _is_numeric(data[x]) and (x in varied or agg is not None)
    sc = None
    for ax, fv in zip(flat, facets):
        part = data if facet is None else data.filter(pl.col(facet).is_null() if fv is None else pl.col(facet) == fv)
        if continuous:
            sc = ax.scatter(part[x].to_numpy(), part[y].to_numpy(), c=part[hue].cast(pl.Float64).to_numpy(),
                            cmap="viridis", vmin=min(h for h in hues if h is not None),
                            vmax=max(h for h in hues if h is not None), s=22)
        else:
            for hv, col in zip(hues, colors):
                sub = part if hue is None else part.filter(pl.col(hue).is_null() if hv is None else pl.col(hue) == hv)
                if len(sub) == 0 and hue is not None:
                    continue
                label = None if hue is None else _fmt(hv)
                if lines_style:
                    sub = sub.sort(x)
                    ax.plot(sub[x].to_numpy(), sub[y].to_numpy(), marker="o", ms=4, lw=1.4, color=col, label=label)
                else:
                    ax.scatter(sub[x].to_list(), sub[y].to_list(), s=22, color=col, label=label, alpha=0.85)
        if objectives is not None and len(part):
            front = pareto_front(part, objectives)
            senses = dict(objectives)
            if set(senses) == {x, y}:  # the attainable region's boundary as a staircase
                front = front.sort(x)
                draw = "steps-pre" if senses[x] else "steps-post"
                ax.plot(front[x].to_numpy(), front[y].to_numpy(), color="black", lw=1.0, ls="--", drawstyle=draw,
                        label="Pareto front" if ax is flat[0] else None)
            else:  # a front over other columns: only ring its points
                ax.plot([], [], color="black", lw=1.0, ls="--", label="Pareto front" if ax is flat[0] else None)
            ax.scatter(front[x].to_list(), front[y].to_list(), s=90, facecolors="none", edgecolors="black",
                       linewidths=1.2)
        if facet is not None:
            ax.set_title(f"{facet} = {_fmt(fv)} ({len(part)} point{'s' if len(part) != 1 else ''})", fontsize=10)
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if len(part) == 0:
            ax.text(0.5, 0.5, "no rows" + (" match the filter" if where else ""), transform=ax.transAxes,
                    ha="center", va="center", color="gray")
    xl = xlabel or axis_label(x) + (" (log scale)" if log_x else "")
    yl = ylabel or (f"{agg} of " if agg else "") + axis_label(y) + (" (log scale)" if log_y else "")
    for k, ax in enumerate(flat[:nf]):
        if k // ncols == nrows - 1 or k + ncols >= nf:
            ax.set_xlabel(xl)
        if k % ncols == 0:
            ax.set_ylabel(yl)
    if continuous and sc is not None:
        fig.colorbar(sc, ax=flat[:nf], label=axis_label(hue))
    handles, labels = flat[0].get_legend_handles_labels()
    for ax in flat[1:nf]:  # series missing from the first panel
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize=9, frameon=False,
                   title=hue if hue is not None and not continuous else None, title_fontsize=9)
    n = len(data)
    fig.suptitle(title or f"{axis_label(y)} vs {axis_label(x)} ({n} point{'s' if n != 1 else ''}"
                          f"{', ' + where if where else ''})", fontsize=11)
    return fig
