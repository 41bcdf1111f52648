"""``sweepsim search``: capacity of every configuration of an experiment, or the cheapest one for a load."""
from pathlib import Path

import click

from sweepsim.cli.common import FiniteFloat, experiment_options, markdown_table
from sweepsim.errors import InputError, check_output_dir


def _rate_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(":"))
    except ValueError:
        raise InputError(None, "--rate-range", f"{text!r} is not LO:HI requests/s, e.g. 1:300") from None
    return lo, hi


def _table(df, cols, top):
    return markdown_table(df.select([c for c in cols if c in df.columns]), top, float_precision=3)


@click.command("search")
@click.argument("experiment", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--slo", required=True, help="Objectives on summary columns, comma-separated, e.g. "
                                           "'ttft_p99<=1.0,tbt_p99<=0.1,e2e_p50<=20' (operators <=, <, >=, >).")
@click.option("--rate-range", default="1:300", show_default=True, help="LO:HI arrival rates [requests/s] searched.")
@click.option("--tol", default=0.02, show_default=True, type=FiniteFloat(min=1e-4, max=0.5),
              help="Relative tolerance of the capacity (rates lie on a geometric grid of this step).")
@click.option("--target-rate", type=FiniteFloat(min=1e-6), help="Instead of each configuration's capacity, find "
                                                                "the cheapest configuration meeting the SLOs at this "
                                                                "rate [requests/s].")
@click.option("--minimize", type=click.Choice(["cost", "gpus", "energy"]), default="cost", show_default=True,
              help="With --target-rate: dollars per hour of the servers, GPUs, or joules per request.")
@click.option("--no-prune", is_flag=True, help="Do not use one shape's results for another (assumed: more servers of "
                                               "every kind never serve less); with --target-rate, simulate every "
                                               "configuration.")
@click.option("--screen", type=FiniteFloat(min=0.01, max=0.99),
              help="Screen on traces this fraction as long first (e.g. 0.25): a rate or configuration missing the SLOs "
                   "there is taken to miss them at full length; every answer is still simulated at full length.")
@experiment_options("Search")
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=1, max=1_000_000),
              help="Rows to print.")
@click.option("--force", is_flag=True, help="Replace another experiment's results in the results directory.")
@click.option("--quiet", is_flag=True, help="No progress output.")
def search_cmd(experiment, slo, rate_range, tol, target_rate, minimize, no_prune, screen, out_dir, small, backend,
               address, top, force, quiet):
    """Capacity search over an experiment's configurations (its [grid]; the trace must be a generator table).

    Without --target-rate: for every configuration, the highest arrival rate in --rate-range at which every
    SLO holds, found by bisection over rates spaced by --tol, configurations advancing together (one simulation
    round per bisection step); configurations that differ only in server counts are searched coarse to fine,
    each starting from the capacities of the shapes around it. Writes capacity.parquet. With --target-rate:
    the cheapest configuration (--minimize) meeting the SLOs at that rate, cheapest first, pruning those that
    have more servers of every kind than a feasible one or fewer than an infeasible one. Writes
    cheapest.parquet. Every simulated probe is kept in probes.parquet: a rerun reuses them (resume).
    """
    import polars as pl

    from sweepsim.config.experiment import load_experiment, validate_points
    from sweepsim.results.tables import write_parquet_atomic
    from sweepsim.search.capacity import (CAPACITY_FILE, ProbeRunner, candidates, capacity_table, check_names,
                                          check_rates, max_rate_search, rate_grid, screened_max_rate_search)
    from sweepsim.search.slo import check_for_capacity, parse_slos
    from sweepsim.sweep.store import Store

    objectives = parse_slos(slo)
    if target_rate is None:
        check_for_capacity(objectives)
    lo, hi = _rate_range(rate_range)
    rates = rate_grid(lo, hi, tol)
    if address and backend != "ray":
        raise InputError(None, "--address", "only with --backend ray")
    exp = load_experiment(experiment, small=small)
    out = Path(out_dir or exp.out)
    check_output_dir(out)
    cands = candidates(exp.points, validate_points(exp), exp.varied, exp.source, objectives)
    check_names(cands, objectives, exp.source)
    if target_rate is None:
        check_rates(cands, float(rates[0]), float(rates[-1]), "--rate-range")
        if screen:
            check_rates(cands, float(rates[0]) * screen, float(rates[-1]), "--screen")
    else:
        check_rates(cands, float(target_rate) * (screen or 1.0), float(target_rate), "--target-rate")
    store = Store(out)
    store.claim({"name": exp.name, "axes": list(exp.axes)}, replace=force)
    started_ray = False
    if backend == "ray":
        from sweepsim.sweep.ray_backend import check_address, connect
        if address:
            check_address(address)
        started_ray = connect(address)

    def progress(rounds, n):
        if not quiet:
            click.echo(f"round {rounds}: {n} probes ({runner.simulated_probes} simulated so far)", err=True)

    runner = ProbeRunner(out, backend, address)
    try:
        if target_rate is None:
            if screen:
                caps = screened_max_rate_search(cands, rates, objectives, runner, screen, progress, not no_prune)
            else:
                caps = max_rate_search(cands, rates, objectives, runner, progress, prune=not no_prune)
            df = capacity_table(caps, objectives, runner).sort("max_rate_rps", descending=True)
            write_parquet_atomic(df, out / CAPACITY_FILE)
            keys = [k for k in cands[0].varied] if cands else []
            click.echo(_table(df, keys + ["max_rate_rps", "at_range_max", "probes", "cost_per_hour_per_rps_usd",
                                          "power_per_rps_w"] + [o.metric for o in objectives] + ["note"], top))
            click.echo(f"{exp.name}: {len(cands)} configurations, {sum(c.probes for c in caps)} probes "
                       f"({runner.simulated_probes} simulated now, {runner.simulated_requests:,} requests; the rest "
                       f"reused from {out}/probes.parquet); rates {lo:g}..{hi:g} req/s in steps of {tol:.0%} "
                       f"-> {out}/{CAPACITY_FILE}")
            zero = [c for c in caps if c.max_rate == 0]
            if zero:
                click.echo(f"{len(zero)} configuration(s) meet the SLOs at no rate of the range; first: "
                           f"{zero[0].note}", err=True)
        else:
            from sweepsim.search.cheapest import cheapest_search, cheapest_table
            verdicts = cheapest_search(cands, float(target_rate), objectives, runner, minimize, not no_prune,
                                       progress=progress, screen=screen)
            df = cheapest_table(verdicts, objectives, runner, float(target_rate), minimize)
            write_parquet_atomic(df, out / "cheapest.parquet")
            counts = df.group_by("status").len().sort("status")
            feas = df.filter(pl.col("status") == "feasible").sort("objective_value")
            keys = [k for k in cands[0].varied] if cands else []
            if len(feas):
                click.echo(_table(feas, keys + ["objective_value", "cost_per_hour_usd", "gpus"]
                                  + [o.metric for o in objectives], top))
                best = feas.row(0, named=True)
                click.echo(f"cheapest meeting the SLOs at {target_rate:g} req/s ({minimize} "
                           f"{best['objective_value']:.4g}): " + ", ".join(f"{k}={best[k]}" for k in keys))
            else:
                click.echo(f"no configuration meets the SLOs at {target_rate:g} req/s", err=True)
            click.echo(f"{exp.name}: {len(cands)} configurations: " + ", ".join(
                f"{r['status']} {r['len']}" for r in counts.iter_rows(named=True))
                       + f" ({runner.simulated_probes} simulated now) -> {out}/cheapest.parquet")
    finally:
        if started_ray:
            import ray
            ray.shutdown()
