"""Cluster timeline of a run: instances per pool, queue length, memory utilisation and arrivals over time,
on panels sharing the time axis.

Panels (in order):
- ``instances``: instances per pool (prompt / token / mixed / none = co-located) as step lines. With the debug
  log, an instance counts in the ``mixed`` pool during its runs flagged ``borrowed`` (mixed_pool returns an
  idle borrowed instance to its home pool); otherwise every instance stays in its home pool
  (instances.parquet ``pool``).
- ``queue``: with the debug log, requests resident on the instances (``pending_requests``) and tasks waiting
  for a batch slot (``pending_tasks``), summed over instances, during runs (an idle instance holds none);
  without it, requests in the system (arrived, not completed) and requests waiting for their prompt to start,
  from requests.parquet.
- ``memory`` (debug log only): memory in use / capacity per home pool, capacity = GPUs x the processor's
  memory (configs/hardware); during a run an instance holds the run's ``memory_bytes``, between runs only the
  model weights.
- ``arrivals``: arrivals and completions per second (binned).
- topology runs (an endpoints.parquet beside the run): ``endpoint KV`` (each endpoint's KV bytes in use over its
  KV capacity, from requests.parquet: a request holds KV(prompt + 1) from its prompt's start and KV(output - 1)
  from its decode's start until it completes) and ``queued`` (batch and dev requests arrived and not yet fed,
  per class); with autoscaling (scaling_events.parquet) also ``endpoint instances`` (serving instances per
  endpoint), ``spot pool`` (its size per region, with the scale-up and scale-down events as markers), and the
  KV capacity follows the serving instances.

More series (e.g. an autoscaler's instance counts per model and region, or its scale events) are added with
``extra`` (a list of :class:`Series`) or by registering a provider in :data:`SERIES_PROVIDERS` (called with the
run, returning Series): a Series names an existing panel or a new one, which is appended below.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from sweepsim.plots.common import COLORS, Run, new_figure, plain_text, step_sum

PANELS = {"instances": "instances", "queue": "queue length [requests]", "memory": "memory utilisation [%]",
          "arrivals": "rate [req/s]"}
POOL_LABELS = {"prompt": "prompt pool", "token": "token pool", "mixed": "mixed pool (borrowed)",
               "none": "co-located (no pool)"}


@dataclass
class Series:
    """One timeline series. ``kind``: 'step' (value holds until the next time), 'line', or 'events'
    (vertical markers at ``t``; ``y`` ignored). ``panel``: an existing panel name (instances, queue, memory,
    arrivals) or a new one, drawn below with ``ylabel``."""
    panel: str
    label: str
    t: np.ndarray
    y: np.ndarray | None = None
    kind: str = "step"
    ylabel: str | None = None
    color: str | None = None


#: functions run -> list[Series], called for every timeline (e.g. autoscaling outputs when present)
SERIES_PROVIDERS: list[Callable[[Run], list[Series]]] = []


def _weights_bytes(run: Run) -> float | None:
    from sweepsim.config.catalog import models
    s = run.summary
    if "model" in s.columns and len(s):
        m = models().get(s["model"][0])
        if m is not None:
            return float(m.weight_bytes)
    return None


def _capacity(inst: pl.DataFrame) -> np.ndarray:
    """Memory capacity per instance [bytes]: GPUs x the processor's memory (80 GiB if the SKU is unknown)."""
    from sweepsim.config.catalog import skus
    table = skus()
    per_gpu = [table[s].processor.memory_bytes if s in table else 80 << 30 for s in inst["sku"].to_list()]
    return np.asarray(per_gpu, float) * inst["num_gpus"].to_numpy()


def pool_series(run: Run, t_end: float) -> list[Series]:
    if run._read("scaling_events", required=False) is not None:
        return []   # autoscaling: the instances move; ``scaling_series`` draws them per endpoint
    inst = run.instances
    it = run.iterations
    home = dict(zip(inst["instance_id"].to_list(), inst["pool"].to_list()))
    pools = sorted(set(home.values()), key=list(POOL_LABELS).index)
    out = []
    counts = {p: sum(1 for v in home.values() if v == p) for p in pools}
    borrowed = it.filter(pl.col("borrowed")) if it is not None else None
    for p in pools:
        if borrowed is not None and len(borrowed):
            b = borrowed.filter(pl.col("instance").replace_strict(home, default="none") == p)
            t, lev = step_sum(b["start"], b["end"], np.ones(len(b)), t0=0.0, t1=t_end)
            y = counts[p] - lev
        else:
            t, y = np.array([0.0, t_end]), np.full(2, float(counts[p]))
        out.append(Series("instances", POOL_LABELS[p], t, y, color=COLORS[p]))
    if borrowed is not None and len(borrowed):
        t, lev = step_sum(borrowed["start"], borrowed["end"], np.ones(len(borrowed)), t0=0.0, t1=t_end)
        out.append(Series("instances", POOL_LABELS["mixed"], t, lev, color=COLORS["mixed"]))
    return out


def queue_series(run: Run, t_end: float) -> list[Series]:
    it = run.iterations
    if it is not None:
        out = []
        for col, label, ls in (("pending_requests", "resident requests (pending_requests)", "C3"),
                               ("pending_tasks", "tasks waiting for a batch (pending_tasks)", "C4")):
            t, y = step_sum(it["start"], it["end"], it[col].cast(pl.Float64), t0=0.0, t1=t_end)
            out.append(Series("queue", label, t, y, color=ls))
        return out
    req = run.requests
    arr = req["arrival"].to_numpy()
    done = req["completion_time"].fill_nan(None).fill_null(t_end).to_numpy()
    pstart = req["prompt_start"].fill_nan(None).fill_null(t_end).to_numpy()
    one = np.ones(len(arr))
    t1, y1 = step_sum(arr, done, one, t0=0.0, t1=t_end)
    t2, y2 = step_sum(arr, pstart, one, t0=0.0, t1=t_end)
    return [Series("queue", "requests in the system", t1, y1, color="C3"),
            Series("queue", "requests waiting for their prompt", t2, y2, color="C4")]


def memory_series(run: Run, t_end: float) -> list[Series]:
    it = run.iterations
    if it is None:
        return []
    inst = run.instances.sort("instance_id")
    cap = dict(zip(inst["instance_id"].to_list(), _capacity(inst)))
    w = _weights_bytes(run)
    floor = {i: (w if w is not None else float(it.filter(pl.col("instance") == i)["memory_bytes"].min() or 0))
             for i in inst["instance_id"].to_list()}
    out = []
    for p in sorted(set(inst["pool"].to_list()), key=list(POOL_LABELS).index):
        ids = inst.filter(pl.col("pool") == p)["instance_id"].to_list()
        total_cap = sum(cap[i] for i in ids)
        sub = it.filter(pl.col("instance").is_in(ids))
        extra = sub["memory_bytes"].cast(pl.Float64).to_numpy() - np.array([floor[i] for i in sub["instance"]])
        t, y = step_sum(sub["start"], sub["end"], extra, t0=0.0, t1=t_end)
        util = 100.0 * (sum(floor[i] for i in ids) + y) / total_cap
        label = POOL_LABELS[p].replace(" (borrowed)", "") if p != "none" else "all instances"
        out.append(Series("memory", label, t, util, color=COLORS[p]))
    return out


def arrival_series(run: Run, t_end: float) -> list[Series]:
    req = run.requests
    width = max(1.0, math.ceil(t_end / 1000.0))  # at most ~1000 bins
    nb = int(t_end // width) + 1
    out = []
    for col, label, color in (("arrival", "arrivals", "C0"), ("completion_time", "completions", "C2")):
        v = req[col].fill_nan(None).drop_nulls().to_numpy()
        counts = np.bincount((v // width).astype(np.int64), minlength=nb)[:nb] if len(v) else np.zeros(nb)
        t = np.arange(nb + 1) * width
        y = np.concatenate([counts / width, [counts[-1] / width if nb else 0.0]])
        out.append(Series("arrivals", f"{label} per second ({width:g} s bins)", t, y, color=color))
    return out


def _endpoint_color(k: int, n: int) -> str:
    """Distinct colours for up to 20 endpoints (matplotlib's tab20 beyond the 10-colour default cycle)."""
    if n <= 10:
        return f"C{k}"
    from matplotlib import colormaps
    from matplotlib.colors import to_hex
    return to_hex(colormaps["tab20"](k % 20))


def serving_series(run: Run, t_end: float) -> list[Series]:
    """Per-endpoint KV utilisation and queued batch/dev requests of a topology run (none otherwise)."""
    eps = run._read("endpoints", required=False)
    if eps is None:
        return []
    from sweepsim.config.catalog import models
    req = run.requests.filter(pl.col("prompt_start").is_not_nan())
    kv = pl.col("model").cast(pl.String).replace_strict({m: v.kv_bytes_per_token for m, v in models().items()},
                                                         return_dtype=pl.Float64)
    key = pl.concat_str([pl.col("region").cast(pl.String), pl.col("endpoint").cast(pl.String)], separator="/")
    req = req.with_columns(kv.alias("kv"), key.alias("key"))
    events = run._read("scaling_events", required=False)
    steps = serving_steps(eps, events) if events is not None else None
    out = scaling_series(eps, events, steps, t_end) if events is not None else []
    for k, row in enumerate(eps.iter_rows(named=True)):
        r = req.filter(pl.col("key") == f"{row['region']}/{row['endpoint']}")
        end = r["completion_time"].fill_nan(t_end).to_numpy()
        dec = r.filter(pl.col("token_size") > 1)
        starts = np.concatenate([r["prompt_start"].to_numpy(), dec["token_start"].fill_nan(t_end).to_numpy()])
        ends = np.concatenate([end, dec["completion_time"].fill_nan(t_end).to_numpy()])
        nbytes = np.concatenate([(r["kv"] * (r["prompt_size"] + 1)).to_numpy(),
                                 (dec["kv"] * (dec["token_size"] - 1)).to_numpy()])
        t, y = step_sum(starts, ends, nbytes, t0=0.0, t1=t_end)
        cap = np.full(len(t), float(row["kv_capacity_bytes"]))
        if steps is not None:   # autoscaling: the capacity of the instances serving at each time
            times, serving = steps[k]
            cap = serving[np.searchsorted(times, t, side="right") - 1] * (row["kv_capacity_bytes"] / row["instances"])
        with np.errstate(divide="ignore", invalid="ignore"):
            util = np.where(cap > 0, 100.0 * y / cap, np.nan)
        out.append(Series("endpoint KV", f"{row['region']}/{row['endpoint']}", t, util,
                          ylabel="endpoint KV utilisation [%]", color=_endpoint_color(k, len(eps))))
    allreq = run.requests
    for cls, color in (("batch", "C1"), ("dev", "C4")):
        q = allreq.filter((pl.col("request_class").cast(pl.String) == cls) & ~pl.col("rejected"))
        if len(q):
            t, y = step_sum(q["arrival"], q["fed_time"].fill_nan(None).fill_null(t_end), np.ones(len(q)), t0=0.0,
                            t1=t_end)
            out.append(Series("queued", f"{cls} requests queued (arrived, not fed)", t, y,
                              ylabel="queued [requests]", color=color))
    return out


def serving_steps(eps: pl.DataFrame, events: pl.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per endpoint (endpoints.parquet order), the step function of its serving instances: (times, counts)."""
    out = []
    for row in eps.iter_rows(named=True):
        ev = events.filter((pl.col("region").cast(pl.String) == row["region"])
                           & (pl.col("endpoint").cast(pl.String) == row["endpoint"]))
        out.append((np.concatenate([[0.0], ev["time"].to_numpy()]),
                    np.concatenate([[row["instances"]], ev["serving"].to_numpy()]).astype(float)))
    return out


def scaling_series(eps: pl.DataFrame, events: pl.DataFrame, steps, t_end: float) -> list[Series]:
    """Autoscaling: serving instances per endpoint, the spot pool per region (dashed in the same panel), and the
    scale-up / scale-down events as markers."""
    out = []
    for k, (row, (times, serving)) in enumerate(zip(eps.iter_rows(named=True), steps)):
        out.append(Series("endpoint instances", f"{row['region']}/{row['endpoint']}", np.append(times, t_end),
                          np.append(serving, serving[-1]), ylabel="serving instances",
                          color=_endpoint_color(k, len(eps))))
    for region in dict.fromkeys(eps["region"].to_list()):
        ev = events.filter(pl.col("region").cast(pl.String) == region)
        times = np.concatenate([[0.0], ev["time"].to_numpy(), [t_end]])
        size = np.concatenate([[0], ev["spot"].to_numpy(), ev["spot"].to_numpy()[-1:] if len(ev) else [0]])
        out.append(Series("spot pool", f"{region} spot pool", times, size.astype(float), ylabel="spot instances"))
    for actions, label, color in ((("reclaim", "donate"), "scale-ups (reclaim, donate)", "C2"),
                                  (("drain",) if (events["action"] == "drain").any() else ("spot",),
                                   "scale-downs", "C3")):
        t = events.filter(pl.col("action").cast(pl.String).is_in(actions))["time"].to_numpy()
        if len(t):
            out.append(Series("spot pool", label, t, kind="events", color=color))
    return out


def timeline_series(run: Run) -> list[Series]:
    """The default series of a run (panel order: instances, queue, memory, arrivals), then the providers'."""
    req = run.requests
    ends = [req["arrival"].max() or 0.0, req["completion_time"].fill_nan(None).max() or 0.0]
    if run.iterations is not None and len(run.iterations):
        ends.append(run.iterations["end"].max())
    t_end = float(max(ends)) or 1.0
    series = pool_series(run, t_end) + queue_series(run, t_end) + memory_series(run, t_end) + \
        arrival_series(run, t_end) + serving_series(run, t_end)
    for provider in SERIES_PROVIDERS:
        series += list(provider(run))
    return series


@plain_text
def timeline_figure(run: Run, extra: list[Series] | None = None, size: tuple[int, int] | None = None,
                    title: str | None = None) -> Figure:
    """A Figure with one axis per panel sharing the time axis: instances, queue, memory (debug runs only),
    arrivals, then any new panels of ``extra`` series. Each step/line Series is one Line2D of its panel's
    axis; an 'events' Series is one LineCollection (vertical lines)."""
    series = timeline_series(run) + list(extra or [])
    panels = list(dict.fromkeys(s.panel for s in series))
    order = [p for p in PANELS if p in panels] + [p for p in panels if p not in PANELS]
    fig = new_figure(size or (1400, 250 * len(order) + 80))
    axes = fig.subplots(len(order), 1, sharex=True, squeeze=False)[:, 0]
    ax_of = dict(zip(order, axes))
    ylabels = dict(PANELS)
    for s in series:
        ax = ax_of[s.panel]
        if s.ylabel:
            ylabels.setdefault(s.panel, s.ylabel)
        if s.kind == "events":
            ymin, ymax = 0, 1
            ax.vlines(np.asarray(s.t, float), ymin, ymax, transform=ax.get_xaxis_transform(), colors=s.color or "k",
                      linestyles="dotted", label=s.label)
        elif s.kind == "line":
            ax.plot(s.t, s.y, label=s.label, color=s.color, lw=1.2)
        else:
            ax.step(s.t, s.y, where="post", label=s.label, color=s.color, lw=1.2)
    for p, ax in ax_of.items():
        ax.set_ylabel(ylabels.get(p, p))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
        ax.set_ylim(bottom=0)
    if "memory" in ax_of:
        ax_of["memory"].set_ylim(0, 100)
    axes[-1].set_xlabel("time [s]")
    axes[0].set_xlim(left=0)
    fig.suptitle(title or f"{run.name}: cluster timeline" + ("" if run.has_debug else
                                                             " (run without --debug: no memory panel)"))
    return fig
