"""``sweepsim report``: one self-contained HTML page (inline CSS, plots as PNG data URIs) for a run directory
or a sweep results directory, so that a result can be shared as a single file.

- run directory: the summary table (one column per application), the instances table, the latency CDFs,
  the timeline, and the Gantt chart when the run has its debug log (at most :data:`GANTT_MAX_INSTANCES`
  rows).
- sweep directory: the number of configurations and failures, the first rows of the summary (varied
  parameters and key metrics), and a sweep plot: throughput vs cost with the Pareto front (or the first two
  metric columns when those are missing), one panel per trace (a varied text parameter) and coloured by
  another varied parameter (:func:`sweep_plot_groups`).
"""
import base64
import datetime
import html
import math
from pathlib import Path

import polars as pl

from sweepsim.errors import InputError, check_output_path, read_parquet
from sweepsim.results.columns import LATENCY_METRICS
from sweepsim.plots.common import (
    atomic_write,
    is_run_dir,
    is_sweep_dir,
    png_bytes,
    read_run,
)

GANTT_MAX_INSTANCES = 32
TOP_ROWS = 30
RUN_METRICS = ("requests", "completed", "duration", "throughput_rps", "throughput_tps", "ttft_p50", "ttft_p99",
               "tbt_p50", "tbt_p99", "e2e_p50", "e2e_p99", "queue_time_p99", "energy_kwh", "mean_power_w",
               "cost_usd", "cost_per_1m_tokens_usd", "servers")

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1500px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; font-size: 0.85em; }
.scroll { overflow-x: auto; }
"""


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.1f}"
    return str(v)


def html_table(df: pl.DataFrame, first_left: bool = True) -> str:
    head = "".join(f'<th class="l">{html.escape(c)}</th>' if k == 0 and first_left else f"<th>{html.escape(c)}</th>"
                   for k, c in enumerate(df.columns))
    rows = []
    for row in df.iter_rows():
        cells = "".join(f'<td class="l">{html.escape(_fmt(v))}</td>' if (k == 0 and first_left) or isinstance(v, str)
                        else f"<td>{html.escape(_fmt(v))}</td>" for k, v in enumerate(row))
        rows.append(f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def img(fig, alt: str) -> str:
    data = base64.b64encode(png_bytes(fig)).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _page(title: str, body: list[str]) -> str:
    stamp = datetime.datetime.now().isoformat(timespec="seconds")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<p class="note">sweepsim report, generated {stamp}</p>{"".join(body)}</body></html>\n')


def run_report(path) -> str:
    from sweepsim.plots.common import config_label
    from sweepsim.plots.gantt import gantt_figure
    from sweepsim.plots.latency import latency_figure
    from sweepsim.plots.timeline import timeline_figure

    run = read_run(path)
    s = run.summary
    body = [f"<p>{html.escape(config_label(s) or run.name)} &mdash; <code>{html.escape(str(run.path))}</code></p>"]
    metrics = [c for c in RUN_METRICS + ("slo_attainment",) if c in s.columns]
    serving = "request_class" in s.columns       # a topology run: per (region, model, class) rows and totals
    if serving:
        labels = [f"{r} / {m} / {c}" if r != "all" else "all requests"
                  for r, m, c in zip(s["region"], s["model"], s["request_class"])]
    else:
        labels = [f"application {a}" for a in s["application_id"].to_list()]
    table = pl.DataFrame({"metric": metrics, **{lab: [s[c][k] for c in metrics] for k, lab in enumerate(labels)}},
                         strict=False)
    if serving:  # one row per group: the wide form would have a column per (region, model, class)
        table = s.select([pl.Series("group", labels)] + [pl.col(c) for c in metrics])
    body += ["<h2>Summary</h2>", html_table(table), '<p class="note">seconds, requests/s, tokens/s, kWh, W, $</p>']
    eps = run._read("endpoints", required=False)
    if eps is not None:
        body += [f"<h2>Endpoints ({len(eps)})</h2>", html_table(eps)]
    cfg_cols = [c for c in s.columns if c not in RUN_METRICS and not any(
        c.startswith(m + "_") for m in LATENCY_METRICS)
        and c not in ("application_id", "energy_j", "energy_per_token_j", "region", "model", "request_class",
                      "requests_with_sla", "slo_attainment")]
    if cfg_cols:
        cfg = pl.DataFrame({"parameter": cfg_cols, "value": [_fmt(s[c][0]) for c in cfg_cols]})
        body += ["<h2>Configuration</h2>", html_table(cfg)]
    inst = run.instances.select([c for c in ("instance_id", "name", "sku", "pool", "num_gpus", "utilization",
                                             "iterations", "prompt_time", "token_time", "mixed_time", "energy_j")
                                 if c in run.instances.columns])
    body += [f"<h2>Instances ({len(inst)})</h2>", html_table(inst.head(64))]
    if len(inst) > 64:
        body.append(f'<p class="note">first 64 of {len(inst)} instances</p>')
    body += ["<h2>Latency CDFs</h2>", img(latency_figure([run]), "latency CDFs")]
    body += ["<h2>Timeline</h2>", img(timeline_figure(run), "timeline")]
    if run.has_debug:
        ids = run.instances.sort("instance_id")["instance_id"].to_list()
        note = ""
        if len(ids) > GANTT_MAX_INSTANCES:
            note = f'<p class="note">instances {ids[0]}-{ids[GANTT_MAX_INSTANCES - 1]} of {len(ids)}</p>'
            ids = ids[:GANTT_MAX_INSTANCES]
        body += ["<h2>Gantt chart</h2>", img(gantt_figure(run, instances=ids), "gantt chart"), note]
    else:
        body.append('<p class="note">no Gantt chart: the run has no debug log (rerun with '
                    '<code>sweepsim run --debug</code>)</p>')
    return _page(f"sweepsim run: {run.name}", body)


def sweep_plot_columns(df: pl.DataFrame, varied: list[str]) -> tuple[str, str]:
    """throughput_rps vs cost_usd, else the first two numeric metric columns (not varied parameters)."""
    if "cost_usd" in df.columns and "throughput_rps" in df.columns:
        return "cost_usd", "throughput_rps"
    skip = set(varied) | {"config_hash", "application_id"}
    metrics = [c for c in df.columns if c not in skip and df[c].dtype.is_numeric()]
    if len(metrics) < 2:
        raise InputError(None, None, "the sweep summary has fewer than two metric columns to plot")
    return metrics[0], metrics[1]


def sweep_plot_groups(df: pl.DataFrame, varied: list[str], skip) -> tuple[str | None, str | None]:
    """facet: the first varied text parameter with 2..6 values (e.g. the trace), so that each panel has its own
    front; hue: the first other varied parameter with several values, preferring non-trace ones (cluster sizes,
    schedulers, splits) and at most 12 values unless numeric."""
    from sweepsim.plots.sweep import MAX_DISCRETE_HUES
    cand = [c for c in varied if c not in skip and df[c].n_unique() > 1]
    facet = next((c for c in cand if df[c].dtype == pl.String and df[c].n_unique() <= 6), None)
    rest = [c for c in cand if c != facet and (df[c].dtype.is_numeric() or df[c].n_unique() <= MAX_DISCRETE_HUES)]
    hue = next((c for c in rest if not c.startswith("trace.")), rest[0] if rest else None)
    return hue, facet


def sweep_report(path) -> str:
    from sweepsim.plots.sweep import sweep_figure
    from sweepsim.results.query import DEFAULT_METRICS, load_summary, varied_columns

    path = Path(path)
    df = load_summary(path)
    varied = varied_columns(path, df)
    fails = read_parquet(path / "failures.parquet", None, ("config_hash", "error")) \
        if (path / "failures.parquet").exists() else None
    n_cfg = df["config_hash"].n_unique() if "config_hash" in df.columns else len(df)
    body = [(f"<p><code>{html.escape(str(path))}</code>: {n_cfg} configurations, {len(df)} summary rows"
             f"{f', {len(fails)} failed' if fails is not None else ''}; varied: "
             f"{html.escape(', '.join(varied) or 'nothing')}</p>")]
    cols = [c for c in varied + list(DEFAULT_METRICS) if c in df.columns]
    body += [f"<h2>Summary (first {min(TOP_ROWS, len(df))} of {len(df)} rows)</h2>",
             html_table(df.select(cols).head(TOP_ROWS))]
    if len(df):
        x, y = sweep_plot_columns(df, varied)
        hue, facet = sweep_plot_groups(df, varied, (x, y))
        fig = sweep_figure(df, x, y, hue=hue, facet=facet, pareto=True, varied=varied)
        body += [f"<h2>{html.escape(y)} vs {html.escape(x)}</h2>", img(fig, f"{y} vs {x}"),
                 '<p class="note">circled: the Pareto front (sweepsim results --pareto)</p>']
    if fails is not None and len(fails):
        body += [f"<h2>Failures ({len(fails)})</h2>", html_table(fails.head(TOP_ROWS))]
    return _page(f"sweepsim sweep: {path.resolve().name}", body)


def build_report(path) -> str:
    """The HTML page for a run directory or a sweep results directory."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(p, None, "no such directory")
    if is_run_dir(p):
        return run_report(p)
    if is_sweep_dir(p) or (p / "summary.parquet").exists():
        return sweep_report(p)
    raise InputError(p, None, "neither a run directory (requests.parquet, instances.parquet from `sweepsim run`) "
                              "nor a sweep results directory (summary.parquet, configs.parquet from `sweepsim grid`)")


def write_report(path, out) -> Path:
    """Write the report atomically; the output must end in .html."""
    out = check_output_path(out, (".html", ".htm"), "-o", "report")
    page = build_report(path)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
    return atomic_write(out, write)
