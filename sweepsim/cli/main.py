"""Command-line interface (click): ``sweepsim run`` and ``sweepsim validate``."""
import sys
from pathlib import Path

import click

from sweepsim.cli.common import FiniteFloat, OneLineErrorGroup, OutputPath, experiment_options, markdown_table
from sweepsim.errors import InputError, check_output_dir, read_parquet

#: Default of ``sweepsim grid --max-configs``.
DEFAULT_MAX_CONFIGS = 100_000


class _Group(OneLineErrorGroup):
    """Bad input (including option errors): one line on stderr and exit code 2, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)
        except OSError as e:  # a file system refusal not caught earlier: still one line, no traceback
            if e.filename is None:
                raise
            click.echo(f"error: {e.filename}: {e.strerror or e}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="sweepsim")
def main():
    """sweepsim: fast simulation of LLM inference clusters (SplitwiseSim semantics)."""


def _print_summary(tables):
    s = tables["summary"]
    inst = tables["instances"]
    if "endpoints" in tables:
        _print_serving_summary(tables)
        return
    for row in s.iter_rows(named=True):
        rejected = f" ({row['rejected']} rejected: can never fit)" if row.get("rejected") else ""
        click.echo(f"application {row['application_id']}: {row['completed']}/{row['requests']} requests completed"
                   f"{rejected} in {row['duration']:.3f} s ({row['throughput_rps']:.3f} req/s, "
                   f"{row['throughput_tps']:.1f} tok/s)")
        click.echo(f"  {'metric':<16}{'mean':>12}{'p50':>12}{'p90':>12}{'p99':>12}{'max':>12}")
        for m in ("ttft", "tbt", "e2e", "queue_time"):
            click.echo(f"  {m + ' [s]':<16}" + "".join(f"{row[f'{m}_{k}']:>12.4f}" for k in ("mean", "p50", "p90", "p99", "max")))
    click.echo(f"instances: {len(inst)}, mean utilization {inst['utilization'].mean():.3f}")


def _print_serving_summary(tables):
    """A topology run: per (region, model, class) counts, SLO attainment and latency percentiles, then endpoints."""
    cols = ["region", "model", "request_class", "requests", "completed", "slo_attainment", "ttft_p50", "ttft_p99",
            "e2e_p50", "e2e_p99"]
    click.echo(markdown_table(tables["summary"].select(cols), top=len(tables["summary"]), float_precision=3))
    ep = tables["endpoints"]
    click.echo(f"endpoints: {len(ep)}, instances: {int(ep['instances'].sum())}, mean KV utilization "
               f"{ep['kv_utilization'].mean():.3f}; still queued at the end: {int(ep['batch_queued'].sum())} batch, "
               f"{int(ep['dev_queued'].sum())} dev")
    if "scaling_events" in tables:
        t = tables["summary"].row(-1, named=True)
        click.echo(f"scaling: {t['scaling_actions']} actions; GPU-hours serving {t['gpu_hours_serving']:.2f}, starting "
                   f"{t['gpu_hours_starting']:.2f}, draining {t['gpu_hours_draining']:.2f}, in the spot pool "
                   f"{t['gpu_hours_spot']:.2f}; wasted {t['wasted_gpu_hours']:.2f}; cost ${t['cost_usd']:.2f}")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Trace file (CSV or Parquet); overrides the config's trace.")
@click.option("--out", "out_dir", type=OutputPath(file_okay=False, path_type=Path),
              help="Output directory (default results/<config file stem>/).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set scheduler=jsq --set cluster.dgx-h100=4 (repeatable).")
@click.option("--debug", is_flag=True, help="Also write iterations.parquet and kv_transfers.parquet.")
@click.option("--timeline-period", default=60.0, show_default=True, type=FiniteFloat(min=1e-3),
              help="Autoscaling runs: seconds between the samples of endpoints_timeline.parquet.")
def run(config, trace_path, out_dir, overrides, debug, timeline_period):
    """Simulate one cluster configuration on a trace and write Parquet results.

    Writes requests.parquet (one row per request), summary.parquet (one row per application; with a topology,
    per region, model and request class plus totals), instances.parquet (one row per instance) and, with a
    topology, endpoints.parquet (one row per model endpoint) to the output directory; with autoscaling
    ([scaling] level >= 1) also scaling_events.parquet (one row per instance move) and endpoints_timeline.parquet
    (instance counts per endpoint and spot pool every --timeline-period seconds).
    """
    from sweepsim.config.run import load_config, with_trace
    from sweepsim.engine.simulate import run as run_engine
    from sweepsim.results.tables import check_run_dir, write_run
    from sweepsim.workload.cache import load_run_trace

    out = out_dir or Path("results") / Path(config).stem
    check_run_dir(out)
    cfg = load_config(config, overrides)
    if trace_path is not None:
        cfg = with_trace(cfg, trace_path)
    if cfg.trace is None:
        raise InputError(config, "trace", "no trace: set [trace] path = ... or pass --trace")
    trace = load_run_trace(cfg)
    res = run_engine(cfg, trace, debug=debug)
    tables = write_run(res, out, debug=debug, timeline_period=timeline_period)
    _print_summary(tables)
    stalled = int(tables["requests"]["stalled"].sum())
    if stalled:
        click.echo(f"warning: {config}: {stalled} request(s) never completed although the run ended before "
                   f"end_time: every instance waited for memory held by requests that could not run (a deadlock "
                   f"of the batching; see `stalled` in requests.parquet)", err=True)
    click.echo(f"results: {out}/")


@main.command()
@click.argument("case_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=OutputPath(path_type=Path),
              help="Write each case's requests.parquet under OUT/<case>/.")
@click.option("--tol", default=1e-6, show_default=True, type=FiniteFloat(min=0.0),
              help="Tolerance in seconds on ttft and e2e.")
@click.option("--strict", is_flag=True, help="Count known mismatches (known_mismatches.toml) as failures.")
@click.option("--event-order", type=click.Choice(["reference", "by_kind"]), default=None,
              help="Order of simultaneous events (default: reference, SplitwiseSim's heap order, whatever the "
                   "cases say; by_kind differs from the reference wherever events tie).")
def validate(case_dirs, out_dir, tol, strict, event_order):
    """Run reference cases and compare with the reference simulator's per-request results.

    Each CASE_DIR holds case.toml, trace.csv and expected_requests.csv (one row per trace request); a
    directory of case directories stands for all of them. Without CASE_DIR, the cases shipped in the
    repository (tests/oracle/) run. Exits 1 if fewer than 99.9% of the requests of any case match within
    --tol on ttft and e2e, except for cases listed in a known_mismatches.toml beside them (reported as
    XFAIL, or XPASS if they match) unless --strict.
    """
    from sweepsim.errors import check_output_dir
    from sweepsim.results.validate import (case_name, check_case, default_cases, find_cases, known_mismatch, run_case,
                                           verdict)

    if out_dir is not None:
        check_output_dir(out_dir, "--out")
    cases = find_cases(case_dirs) if case_dirs else default_cases()
    if out_dir is not None:
        names = [case_name(d) for d in cases]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InputError(out_dir, "--out", f"two cases are named {twice[0]!r}: their results would overwrite "
                                               "each other under --out; validate them separately")
    # every case's input (and its known-mismatch entry) is checked before anything runs or is written
    checked = [(d, check_case(d), known_mismatch(d)) for d in cases]
    failed = False
    for d, chk, reason in checked:
        rep = run_case(d, out_dir, tol, chk, event_order)
        status, note = verdict(rep, reason, strict)
        failed |= status == "FAIL"
        click.echo(f"{status} {rep.name}: {rep.matched}/{rep.n} requests within {tol:g} s "
                   f"({100 * rep.fraction:.2f}%); max |d ttft| {rep.max_ttft_diff:.3g} s, max |d e2e| "
                   f"{rep.max_e2e_diff:.3g} s; e2e relative diff p50 {rep.p50_rel_diff:.3g}, "
                   f"p99 {rep.p99_rel_diff:.3g}{note}")
        if rep.fraction < 1.0:
            for rid, a, b in rep.worst:
                click.echo(f"    request {rid}: |d ttft| {a:.3g} s, |d e2e| {b:.3g} s")
            click.echo(f"    {rep.first_divergence}")
    sys.exit(1 if failed else 0)



@main.command()
@click.argument("experiment", type=click.Path(dir_okay=False, path_type=Path))
@experiment_options("Run")
@click.option("--force", is_flag=True, help="Rerun configurations whose results are already committed.")
@click.option("--keep-requests", is_flag=True, help="Also write per-request results under requests/config=<hash>/.")
@click.option("--dry-run", is_flag=True, help="Print the number of configurations and the first few; run nothing.")
@click.option("--quiet", is_flag=True, help="No progress output.")
@click.option("--chunk-size", type=click.IntRange(min=1), help="Configurations per kernel call / Ray task.")
@click.option("--retry-failed", is_flag=True, help="Also rerun configurations whose failure was recorded as "
                                                   "permanent (bad input); other failures are always retried.")
@click.option("--max-configs", type=click.IntRange(min=1), default=DEFAULT_MAX_CONFIGS, show_default=True,
              help="Refuse experiments that expand to more configurations than this.")
def grid(experiment, out_dir, small, backend, address, force, keep_requests, dry_run, quiet, chunk_size,
         retry_failed, max_configs):
    """Run every configuration of an experiment file and merge the results into one dataset.

    Writes summary.parquet (one row per configuration x application, varied parameters as columns),
    configs.parquet and failures.parquet to the results directory. Re-running resumes: configurations
    already committed are skipped (--force reruns them), failed ones are retried unless their failure is
    permanent (--retry-failed retries those too). A results directory holds one experiment.
    """
    import polars as pl

    from sweepsim.config.experiment import count_experiment, load_experiment, validate_points
    from sweepsim.sweep.jobs import make_jobs
    from sweepsim.sweep.runner import run_sweep

    if address is not None and not address.strip():
        raise InputError(None, "--address", "is empty: give auto or HOST:PORT, or omit it for a local Ray")
    if address and backend != "ray":
        raise InputError(None, "--address", "only with --backend ray")
    if address:
        from sweepsim.sweep.ray_backend import check_address
        check_address(address)
    if dry_run:
        n, how = count_experiment(experiment, small=small)
        if n > max_configs:
            click.echo(f"{experiment}: {n:,} configurations ({how}), over --max-configs {max_configs:,}: "
                       "`sweepsim grid` would refuse to run it")
            return
    exp = load_experiment(experiment, small=small, max_points=max_configs)
    out = out_dir or exp.out
    check_output_dir(out)
    if dry_run:
        validate_points(exp)  # parsing has no side effect: traces are generated when a sweep starts
        click.echo(f"{exp.name}: {len(exp.points)} configurations -> {out}/")
        if exp.varied:
            with pl.Config(tbl_rows=10, tbl_cols=-1, tbl_hide_dataframe_shape=True, tbl_width_chars=400,
                           tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True):
                click.echo(pl.DataFrame(exp.varied[:10]))
        return
    jobs = make_jobs(exp.points, validate_points(exp), exp.varied)
    stats = run_sweep(jobs, out, backend=backend, address=address, force=force, keep_requests=keep_requests,
                      quiet=quiet, chunk_size=chunk_size,
                      identity={"name": exp.name, "axes": list(exp.axes)}, retry_failed=retry_failed)
    failures = read_parquet(Path(out) / "failures.parquet")
    click.echo(f"{exp.name}: {stats['total']} configurations ({stats['ran']} run, {stats['skipped']} already done, "
               f"{len(failures)} failed) -> {out}/summary.parquet")
    if len(failures):
        click.echo(f"failures ({out}/failures.parquet), first: {failures['error'][0]}", err=True)


@main.command()
@click.argument("results_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--sort", "sort_by", help="Column to sort by (ascending; --desc for descending).")
@click.option("--desc", is_flag=True, help="Sort descending.")
@click.option("--where", help="SQL filter, e.g. \"ttft_p99 < 2 AND scheduler = 'mixed_pool'\".")
@click.option("--pareto", help="Pareto front over columns, e.g. cost_usd,throughput_rps (suffix :min or :max; "
                               "throughput/completed default to max, others to min).")
@click.option("--columns", help="Comma-separated columns to show (default: varied parameters and key metrics).")
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=1, max=1_000_000), help="Rows to show.")
@click.option("--table", type=click.Choice(["summary", "capacity", "cheapest"]), default="summary", show_default=True,
              help="summary.parquet of `sweepsim grid`, or capacity.parquet / cheapest.parquet of `sweepsim search`.")
def results(results_dir, sort_by, desc, where, pareto, columns, top, table):
    """Print a compact table of a sweep's results: best configurations, filters, Pareto fronts."""
    import polars as pl

    from sweepsim.results.query import (DEFAULT_METRICS, DEFAULT_SEARCH_COLUMNS, TABLES, check_columns, load_summary,
                                       pareto_front, parse_objectives, select, varied_columns)

    df = load_summary(results_dir, table)
    src = Path(results_dir) / TABLES[table][0]
    failed = _failures(results_dir) if table == "summary" else None  # read and checked before anything prints
    totals_only = not where and "request_class" in df.columns   # topology runs: one totals row per configuration
    df = select(df, where, src) if not totals_only else df.filter(pl.col("request_class") == "all")
    if pareto:
        df = pareto_front(df, parse_objectives(pareto, df, src))
    if sort_by:
        check_columns(df, [sort_by], src, "--sort")
        df = df.sort(sort_by, descending=desc, nulls_last=True)
    if columns:
        cols = list(dict.fromkeys(c.strip() for c in columns.split(",")))  # each once, in order
        check_columns(df, cols, src, "--columns")
    else:
        shown = list(DEFAULT_METRICS if table == "summary" else DEFAULT_SEARCH_COLUMNS[table])
        if "scaling_actions" in df.columns and df["scaling_actions"].max():   # autoscaling sweeps
            shown += ["gpu_hours_serving", "wasted_gpu_hours", "scaling_actions"]
        cols = [c for c in varied_columns(results_dir, df) + shown if c in df.columns]
    click.echo(markdown_table(df.select(cols), top))
    click.echo(f"{min(top, len(df))} of {len(df)} rows" + (" (each configuration's totals; --where \"region != "
                                                            "'all'\" for its rows per region, model and class)"
                                                            if totals_only else ""))
    if failed is not None and len(failed):
        click.echo(f"{len(failed)} configuration(s) failed ({Path(results_dir) / 'failures.parquet'}):")
        with pl.Config(tbl_rows=top, tbl_hide_dataframe_shape=True, fmt_str_lengths=200, tbl_width_chars=400,
                       tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True):
            click.echo(failed.head(top))

def _failures(results_dir):
    """failures.parquet with each failed configuration's varied parameters (None when absent)."""
    fails = Path(results_dir) / "failures.parquet"
    if not fails.exists():
        return None
    f = read_parquet(fails, None, ("config_hash", "error"))
    configs = Path(results_dir) / "configs.parquet"
    if len(f) and configs.exists():  # name each failed configuration by its varied parameters
        f = f.join(read_parquet(configs, None, ("config_hash",)).drop("config_json", strict=False),
                   on="config_hash", how="left")
    return f


from sweepsim.cli.trace import trace_group  # noqa: E402

main.add_command(trace_group)
from sweepsim.cli.plot import plot_group, report_cmd  # noqa: E402

main.add_command(plot_group)
main.add_command(report_cmd)
from sweepsim.cli.search import search_cmd  # noqa: E402

main.add_command(search_cmd)
from sweepsim.cli.perf import perf_group  # noqa: E402

main.add_command(perf_group)
from sweepsim.cli.forecast import forecast_cmd  # noqa: E402

main.add_command(forecast_cmd)
