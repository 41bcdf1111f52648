"""Latency CDFs: TTFT, TBT and end-to-end latency of the completed requests of one or more runs, one line
per run (labelled from its configuration), with optional SLO lines."""
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from sweepsim.plots.common import Run, new_figure, plain_text, run_labels

METRICS = (("ttft", "time to first token [s]"), ("tbt", "time between tokens [s]"),
           ("e2e", "end-to-end latency [s]"))


def ecdf(values) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(np.asarray(values, float))
    x = x[np.isfinite(x)]
    return x, np.arange(1, len(x) + 1) / max(len(x), 1)


@plain_text
def latency_figure(runs: list[Run], log_x: bool = False, slo: dict | None = None,
                   labels: list[str] | None = None, size: tuple[int, int] | None = None,
                   title: str | None = None) -> Figure:
    """A Figure with one axis per metric (ttft, tbt, e2e); each axis has one line per run (the empirical CDF
    over completed requests; a run without completed requests draws an empty line) plus one vertical line
    per SLO given in ``slo`` ({'ttft': s, 'tbt': s, 'e2e': s}). With an SLO, each run's legend entry gives
    the fraction of its completed requests within it."""
    slo = {k: v for k, v in (slo or {}).items() if v is not None}
    labels = labels or run_labels(runs)
    fig = new_figure(size or (1500, 480))
    axes = fig.subplots(1, len(METRICS), squeeze=False)[0]
    data = []
    for r in runs:
        req = r.requests.filter(pl.col("completed"))
        data.append({m: req[m].to_numpy() for m, _ in METRICS})
    for ax, (m, xlabel) in zip(axes, METRICS):
        for d, lab in zip(data, labels):
            x, y = ecdf(d[m])
            if m in slo and len(x):
                lab = f"{lab} ({100 * np.mean(x <= slo[m]):.1f}% within SLO)"
            # a step CDF starting at 0 just before the smallest value
            xs = np.concatenate([x[:1], x]) if len(x) else x
            ys = np.concatenate([[0.0], y]) if len(x) else y
            ax.step(xs, ys, where="post", label=lab, lw=1.4)
        if m in slo:
            ax.axvline(slo[m], color="red", ls="--", lw=1.0, label=f"SLO {slo[m]:g} s")
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel + (" (log scale)" if log_x else ""))
        ax.set_ylabel("fraction of completed requests")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.set_title(f"{m} CDF")
    handles, labs = axes[0].get_legend_handles_labels()
    if any(m in slo for m, _ in METRICS):
        for ax in axes:
            ax.legend(fontsize=8, loc="lower right")
    elif handles:
        fig.legend(handles, labs, loc="outside lower center", ncols=min(len(labs), 3), fontsize=9, frameon=False)
    n = sum(len(d["e2e"][np.isfinite(d["e2e"])]) for d in data)
    fig.suptitle(title or f"latency CDFs ({len(runs)} run{'s' if len(runs) != 1 else ''}, "
                          f"{n} completed requests)")
    return fig
