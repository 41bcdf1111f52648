"""``sweepsim plot gantt|latency|sweep|timeline`` and ``sweepsim report``: plots and an HTML report from the
Parquet outputs of ``sweepsim run`` and ``sweepsim grid`` (see sweepsim.plots, sweepsim.plots.report)."""
from pathlib import Path

import click

from sweepsim.cli.common import FiniteFloat, OneLineErrorGroup, OutputPath
from sweepsim.errors import InputError
from sweepsim.workload.limits import MAX_ARRIVAL_S

_OUT_HELP = "Output image: .png, .svg or .pdf (by extension)."
_SIZE_HELP = "Image size WIDTHxHEIGHT in pixels (100 pixels per inch in SVG / PDF); default per plot."




def _out_option(f):
    return click.option("-o", "--out", "out", required=True, type=OutputPath(dir_okay=False, path_type=Path),
                        help=_OUT_HELP)(f)


def _size_option(f):
    return click.option("--size", help=_SIZE_HELP)(f)


def _save(fig, out):
    from sweepsim.plots.common import save
    save(fig, out)
    click.echo(f"wrote {out}")


_DIR = click.Path(file_okay=False, path_type=Path)


@click.group("plot", cls=OneLineErrorGroup)
def plot_group():
    """Draw plots from run results (RUN_DIR of `sweepsim run`) and sweep results (`sweepsim grid`).

    Images are PNG, SVG or PDF by the -o extension; drawing is headless (matplotlib Agg).
    """


@plot_group.command("gantt")
@click.argument("run_dir", type=_DIR)
@click.option("--instances", help="Instance ids: a range 0-7, a list 0,2,5, or both 0-3,8 (default: all).")
@click.option("--from", "t_from", type=FiniteFloat(min=0.0, max=MAX_ARRIVAL_S * 10), help="Start of the time window [s].")
@click.option("--to", "t_to", type=FiniteFloat(min=0.0, min_open=True, max=MAX_ARRIVAL_S * 10),
              help="End of the time window [s].")
@click.option("--title", help="Figure title.")
@_size_option
@_out_option
def gantt_cmd(run_dir, instances, t_from, t_to, title, size, out):
    """Gantt chart of a debug run: one row per instance, one bar per run of iterations coloured by batch
    composition (prompt-only / token-only / mixed; hatched: in mixed_pool's mixed pool), KV transfers drawn
    from the prompt instance's row to the token instance's. Needs `sweepsim run --debug` output."""
    from sweepsim.plots.common import (
        check_output,
        parse_instances,
        parse_size,
        read_run,
    )
    from sweepsim.plots.gantt import gantt_figure

    check_output(out)
    size = parse_size(size)
    run = read_run(run_dir)
    run.require_debug()
    ids = parse_instances(instances, run.instances["instance_id"].to_list())
    _save(gantt_figure(run, ids, t_from, t_to, size=size, title=title), out)


@plot_group.command("latency")
@click.argument("run_dirs", nargs=-1, required=True, type=_DIR)
@click.option("--log-x", is_flag=True, help="Logarithmic latency axes.")
@click.option("--slo-ttft", type=FiniteFloat(min=0, min_open=True), help="TTFT SLO line [s].")
@click.option("--slo-tbt", type=FiniteFloat(min=0, min_open=True), help="TBT SLO line [s].")
@click.option("--slo-e2e", type=FiniteFloat(min=0, min_open=True), help="End-to-end SLO line [s].")
@click.option("--label", "labels", multiple=True, help="Legend label of each run, in order (repeatable; default: "
                                                       "from the run's configuration, else its directory name).")
@click.option("--title", help="Figure title.")
@_size_option
@_out_option
def latency_cmd(run_dirs, log_x, slo_ttft, slo_tbt, slo_e2e, labels, title, size, out):
    """CDFs of TTFT, TBT and end-to-end latency over the completed requests of one or more runs, overlaid
    (one line per run); with SLOs, a line per SLO and the fraction of requests within it in the legend."""
    from sweepsim.plots.common import check_output, parse_size, read_run
    from sweepsim.plots.latency import latency_figure

    check_output(out)
    size = parse_size(size)
    runs = [read_run(d) for d in run_dirs]
    if labels and len(labels) != len(runs):
        raise InputError(None, "--label", f"{len(labels)} labels for {len(runs)} runs (give one per RUN_DIR)")
    fig = latency_figure(runs, log_x=log_x, slo={"ttft": slo_ttft, "tbt": slo_tbt, "e2e": slo_e2e},
                         labels=list(labels) or None, size=size, title=title)
    _save(fig, out)


@plot_group.command("sweep")
@click.argument("results_dir", required=False, type=_DIR)
@click.option("--spec", type=click.Path(dir_okay=False, path_type=Path),
              help="Plot spec (.plot.toml: x, y, hue, facet, where, agg, pareto, title, ...); options given on "
                   "the command line override it.")
@click.option("--table", type=click.Choice(["summary", "capacity", "cheapest"]),
              help="Which table of RESULTS_DIR: summary.parquet of `sweepsim grid` (default), capacity.parquet or "
                   "cheapest.parquet of `sweepsim search` (e.g. --x cost_per_hour_usd --y max_rate_rps --pareto).")
@click.option("--x", "x", help="Column of the table on the x axis.")
@click.option("--y", "y", help="Column of the table on the y axis.")
@click.option("--hue", help="Colour by this column (e.g. a varied parameter; none: no hue).")
@click.option("--facet", help="One panel per value of this column (none: one panel).")
@click.option("--where", help="SQL filter, e.g. \"ttft_p99 < 2 AND scheduler = 'mixed_pool'\" "
                              "(quote dotted names: \"trace.rate\"; none: no filter).")
@click.option("--agg", type=click.Choice(["max", "min", "mean", "median", "none"]),
              help="Aggregate y per (x, hue, facet), e.g. max: the highest load meeting the --where SLOs.")
@click.option("--pareto", is_flag=False, flag_value="", default=None,
              help="Highlight the Pareto front of x and y (throughput/completed maximised, others minimised); "
                   "or give objectives as `sweepsim results --pareto`, e.g. cost_usd:min,throughput_rps:max "
                   "(none: no front).")
@click.option("--style", type=click.Choice(["auto", "lines", "points"]),
              help="Lines through each series' points, or points; auto: lines when x is a varied parameter "
                   "(or --agg) and unique per series.")
@click.option("--log-x", is_flag=True, default=None, help="Logarithmic x axis.")
@click.option("--log-y", is_flag=True, default=None, help="Logarithmic y axis.")
@click.option("--title", help="Figure title.")
@_size_option
@_out_option
def sweep_cmd(results_dir, spec, table, x, y, hue, facet, where, agg, pareto, style, log_x, log_y, title, size,
              out):
    """Any two columns of a sweep's summary.parquet (RESULTS_DIR of `sweepsim grid`) against each other,
    coloured by --hue, one panel per --facet value, optionally filtered, aggregated and with the Pareto front.

    Example: sweepsim plot sweep results/baseline_h100 --x cost_usd --y throughput_rps --hue cluster.dgx-h100
    --facet trace.sizes --pareto -o front.png; after `sweepsim search`, the capacity-vs-cost front:
    sweepsim plot sweep results/splitwise_ha_search --table capacity --x cost_per_hour_usd --y max_rate_rps
    --pareto -o capacity.png
    """
    from sweepsim.plots.common import check_output, parse_size
    from sweepsim.plots.sweep import read_spec, sweep_figure
    from sweepsim.results.query import TABLES, load_summary, varied_columns

    check_output(out)
    opts = read_spec(spec) if spec is not None else {}
    # the spec's labels describe the spec's columns: drop them when the command line changes those
    if x is not None or agg is not None:
        opts.pop("xlabel", None)
    if y is not None or agg is not None:
        opts.pop("ylabel", None)
    if any(v is not None for v in (x, y, hue, facet, where, agg)):
        opts.pop("title", None)
    given = {"table": table, "x": x, "y": y, "hue": hue, "facet": facet, "where": where, "agg": agg, "pareto": pareto,
             "style": style, "log_x": log_x or None, "log_y": log_y or None, "title": title, "size": size}
    opts.update({k: v for k, v in given.items() if v is not None})
    for k in ("hue", "facet", "where", "agg", "pareto"):  # `none` on the command line drops a spec's value
        v = opts.get(k)
        if isinstance(v, str) and (v.strip().lower() == "none" or (v == "" and k != "pareto")):
            opts.pop(k)
    if results_dir is None:
        if "results" not in opts:
            raise InputError(None, "RESULTS_DIR", "missing (give the results directory of `sweepsim grid`, or a "
                                                  "--spec with results = ...)")
        results_dir = Path(opts["results"])
    for k in ("x", "y"):
        if k not in opts:
            raise InputError(spec, f"--{k}", "missing: the column to plot on the " + k + " axis")
    table = opts.get("table", "summary")
    if table not in TABLES:
        raise InputError(spec, "table", f"unknown table {table!r}; allowed: {', '.join(TABLES)}")
    df = load_summary(results_dir, table)
    fig = sweep_figure(df, opts["x"], opts["y"], hue=opts.get("hue"), facet=opts.get("facet"),
                       where=opts.get("where"), agg=opts.get("agg"), pareto=opts.get("pareto"),
                       style=opts.get("style", "auto"), title=opts.get("title"), xlabel=opts.get("xlabel"),
                       ylabel=opts.get("ylabel"), log_x=bool(opts.get("log_x")), log_y=bool(opts.get("log_y")),
                       size=parse_size(opts.get("size")), source=Path(results_dir) / TABLES[table][0],
                       varied=varied_columns(results_dir, df))
    _save(fig, out)


@plot_group.command("timeline")
@click.argument("run_dir", type=_DIR)
@click.option("--title", help="Figure title.")
@_size_option
@_out_option
def timeline_cmd(run_dir, title, size, out):
    """Instances per pool (prompt / token / mixed), queue length, memory utilisation and arrivals over time.
    The memory panel and mixed-pool borrowing need `sweepsim run --debug` output; without it the queue
    comes from requests.parquet."""
    from sweepsim.plots.common import check_output, parse_size, read_run
    from sweepsim.plots.timeline import timeline_figure

    check_output(out)
    size = parse_size(size)
    _save(timeline_figure(read_run(run_dir), size=size, title=title), out)


@click.command("report")
@click.argument("path", type=_DIR, metavar="RUN_DIR|RESULTS_DIR")
@click.option("-o", "--out", "out", required=True, type=OutputPath(dir_okay=False, path_type=Path),
              help="Output HTML file.")
def report_cmd(path, out):
    """One self-contained HTML page (plots embedded as PNG data URIs) for a run directory (summary, latency
    CDFs, timeline, Gantt chart if the run has its debug log) or a sweep results directory (summary table,
    throughput vs cost with the Pareto front)."""
    from sweepsim.errors import check_output_path
    from sweepsim.plots.report import write_report

    check_output_path(out, (".html", ".htm"), "-o", "report")
    write_report(path, out)
    click.echo(f"wrote {out}")
