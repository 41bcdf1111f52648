"""Gantt chart of a debug run: one row per instance, one bar per run of contiguous iterations coloured by
its batch composition, KV transfers drawn as lines from the prompt instance's row to the token instance's.

Reads ``iterations.parquet`` (instance, start, end, batch_size, prompt_tasks, borrowed) and
``kv_transfers.parquet`` (source, destination, start, end) of ``sweepsim run --debug``.
"""
import numpy as np
import polars as pl
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sweepsim.errors import InputError
from sweepsim.plots.common import COLORS, Run, new_figure, plain_text

COMPOSITIONS = (("prompt", "prompt-only"), ("token", "token-only"), ("mixed", "mixed prompt + token"))
BAR_HEIGHT = 0.7


def composition(df: pl.DataFrame) -> np.ndarray:
    """Per run: 'prompt' (every task is a prompt), 'token' (decode only) or 'mixed'."""
    pt = df["prompt_tasks"].to_numpy()
    bs = df["batch_size"].to_numpy()
    return np.where(pt == 0, "token", np.where(pt >= bs, "prompt", "mixed"))


def _rects(x0, x1, y):
    h = BAR_HEIGHT / 2
    return [((a, b - h), (c, b - h), (c, b + h), (a, b + h)) for a, c, b in zip(x0, x1, y)]


def _merge_spans(x0, x1, rows, gap=1e-9):
    """Back-to-back intervals of the same row merged into one (one outline per borrowed period)."""
    order = np.lexsort((x0, rows))
    out0, out1, outr = [], [], []
    for a, b, r in zip(x0[order], x1[order], rows[order]):
        if outr and outr[-1] == r and a <= out1[-1] + gap:
            out1[-1] = max(out1[-1], b)
        else:
            out0.append(a)
            out1.append(b)
            outr.append(r)
    return np.array(out0), np.array(out1), np.array(outr)


@plain_text
def gantt_figure(run: Run, instances: list[int] | None = None, t_from: float | None = None,
                 t_to: float | None = None, size: tuple[int, int] | None = None, title: str | None = None) -> Figure:
    """The Gantt chart as a Figure with one axis. Its collections: one PolyCollection per batch composition
    present (in the order prompt, token, mixed), one hatched outline collection for runs in mixed_pool's mixed
    pool (if any), and one LineCollection of KV transfers (if any between the shown instances)."""
    it = run.require_debug()
    inst = run.instances.sort("instance_id")
    ids = instances if instances is not None else inst["instance_id"].to_list()
    if t_from is not None and t_to is not None and t_to <= t_from:
        raise InputError(None, "--to", f"must be after --from ({t_to} <= {t_from})")
    row_of = {i: k for k, i in enumerate(ids)}
    sel = it.filter(pl.col("instance").is_in(ids))
    if t_from is not None:
        sel = sel.filter(pl.col("end") > t_from)
    if t_to is not None:
        sel = sel.filter(pl.col("start") < t_to)
    lo = t_from if t_from is not None else (float(it["start"].min()) if len(it) else 0.0)
    hi = t_to if t_to is not None else (float(it["end"].max()) if len(it) else 1.0)
    if hi <= lo:
        hi = lo + 1.0

    n = len(ids)
    if size is None:
        size = (1400, int(min(max(300, 40 * n + 170), 3000)))
    fig = new_figure(size)
    ax = fig.add_subplot()
    start = np.clip(sel["start"].to_numpy(), lo, hi)
    end = np.clip(sel["end"].to_numpy(), lo, hi)
    rows = np.array([row_of[i] for i in sel["instance"].to_list()], dtype=float)
    comp = composition(sel) if len(sel) else np.array([], dtype=str)
    handles = []
    few = len(sel) <= 400  # thin white separators between runs while they stay visible
    for key, label in COMPOSITIONS:
        m = comp == key
        if m.any():
            ax.add_collection(PolyCollection(_rects(start[m], end[m], rows[m]), facecolors=COLORS[key],
                                             edgecolors="white" if few else "none", linewidths=0.4 if few else 0,
                                             label=label))
            handles.append(Patch(facecolor=COLORS[key], label=label))
    borrowed = sel["borrowed"].to_numpy() if len(sel) else np.array([], dtype=bool)
    if borrowed.any():
        b0, b1, brow = _merge_spans(start[borrowed], end[borrowed], rows[borrowed])
        ax.add_collection(PolyCollection(_rects(b0, b1, brow), facecolors="none", edgecolors="black",
                                         linewidths=0.4, hatch="///", label="in the mixed pool (mixed_pool)"))
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="in the mixed pool"))

    kv = run.kv_transfers
    if kv is not None and len(kv):
        kv = kv.filter(pl.col("source").is_in(ids) & pl.col("destination").is_in(ids)
                       & (pl.col("end") >= lo) & (pl.col("start") <= hi))
        if len(kv):
            segs = [((s, row_of[a]), (e, row_of[b])) for a, b, s, e in
                    zip(kv["source"].to_list(), kv["destination"].to_list(), kv["start"].to_list(),
                        kv["end"].to_list())]
            many = len(segs) > 200
            ax.add_collection(LineCollection(segs, colors="black", linewidths=0.5 if many else 0.8,
                                             alpha=0.3 if many else 0.6, label="KV transfer"))
            handles.append(Line2D([], [], color="black", lw=0.8, alpha=0.6, label="KV transfer"))

    names = dict(zip(inst["instance_id"].to_list(), inst["name"].to_list()))
    pools = dict(zip(inst["instance_id"].to_list(), inst["pool"].to_list()))
    ax.set_yticks(range(n))
    ax.set_yticklabels([f"{i}: {names.get(i, '?')}" + (f" ({pools[i]})" if pools.get(i, "none") != "none" else "")
                        for i in ids], fontsize=8 if n > 16 else 10)
    if n > 60:  # unreadable: keep a subset of the labels
        step = int(np.ceil(n / 40))
        ax.set_yticks(range(0, n, step))
        ax.set_yticklabels([f"{ids[k]}" for k in range(0, n, step)])
    ax.set_ylim(n - 0.5, -0.5)  # instance 0 on top
    ax.set_xlim(lo, hi)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("instance")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or f"{run.name}: iterations per instance ({len(sel)} runs of iterations)")
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    return fig
