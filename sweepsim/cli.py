"""Command-line interface (click): ``sweepsim run`` and ``sweepsim validate``."""
import sys
from pathlib import Path

import click

from sweepsim.errors import InputError


class _Group(click.Group):
    """Bad input: one line on stderr and exit code 2, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InputError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="sweepsim")
def main():
    """sweepsim: fast simulation of LLM inference clusters (SplitwiseSim semantics)."""


def _print_summary(tables):
    s = tables["summary"]
    inst = tables["instances"]
    for row in s.iter_rows(named=True):
        click.echo(f"application {row['application_id']}: {row['completed']}/{row['requests']} requests completed "
                   f"in {row['duration']:.3f} s ({row['throughput_rps']:.3f} req/s, {row['throughput_tps']:.1f} tok/s)")
        click.echo(f"  {'metric':<16}{'mean':>12}{'p50':>12}{'p90':>12}{'p99':>12}{'max':>12}")
        for m in ("ttft", "tbt", "e2e", "queue_time"):
            click.echo(f"  {m + ' [s]':<16}" + "".join(f"{row[f'{m}_{k}']:>12.4f}" for k in ("mean", "p50", "p90", "p99", "max")))
    click.echo(f"instances: {len(inst)}, mean utilization {inst['utilization'].mean():.3f}")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Trace file (CSV or Parquet); overrides the config's trace.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (default results/<config file stem>/).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config key, e.g. --set scheduler=jsq --set cluster.dgx-h100=4 (repeatable).")
@click.option("--debug", is_flag=True, help="Also write iterations.parquet and kv_transfers.parquet.")
def run(config, trace_path, out_dir, overrides, debug):
    """Simulate one cluster configuration on a trace and write Parquet results.

    Writes requests.parquet (one row per request), summary.parquet (one row per application) and
    instances.parquet (one row per instance) to the output directory.
    """
    from sweepsim.config import load_config, with_trace
    from sweepsim.engine import run as run_engine
    from sweepsim.results import write_run
    from sweepsim.trace import load_trace

    cfg = load_config(config, overrides)
    if trace_path is not None:
        cfg = with_trace(cfg, trace_path)
    if cfg.trace is None:
        raise InputError(config, "trace", "no trace: set [trace] path = ... or pass --trace")
    trace = load_trace(cfg.trace)
    res = run_engine(cfg, trace, debug=debug)
    out = out_dir or Path("results") / Path(config).stem
    tables = write_run(res, out, debug=debug)
    _print_summary(tables)
    click.echo(f"results: {out}/")


@main.command()
@click.argument("case_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write each case's requests.parquet under OUT/<case>/.")
@click.option("--tol", default=1e-6, show_default=True, help="Tolerance in seconds on ttft and e2e.")
def validate(case_dirs, out_dir, tol):
    """Run reference cases and compare with the reference simulator's per-request results.

    Each CASE_DIR holds case.toml, trace.csv and expected_requests.csv. Exits 1 if fewer than 99.9% of
    the requests of any case match within --tol on ttft and e2e.
    """
    from sweepsim.validate import check_case, run_case

    checked = [check_case(d) for d in case_dirs]  # every case's input is checked before anything runs
    failed = False
    for d, chk in zip(case_dirs, checked):
        rep = run_case(d, out_dir, tol, chk)
        status = "PASS" if rep.fraction >= 0.999 else "FAIL"
        failed |= status == "FAIL"
        click.echo(f"{status} {rep.name}: {rep.matched}/{rep.n} requests within {tol:g} s "
                   f"({100 * rep.fraction:.2f}%); max |d ttft| {rep.max_ttft_diff:.3g} s, max |d e2e| "
                   f"{rep.max_e2e_diff:.3g} s; e2e relative diff p50 {rep.p50_rel_diff:.3g}, p99 {rep.p99_rel_diff:.3g}")
        if rep.fraction < 1.0:
            for rid, a, b in rep.worst:
                click.echo(f"    request {rid}: |d ttft| {a:.3g} s, |d e2e| {b:.3g} s")
    sys.exit(1 if failed else 0)


from sweepsim.cli_trace import trace_group  # noqa: E402

main.add_command(trace_group)
