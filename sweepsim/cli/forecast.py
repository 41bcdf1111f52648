"""``sweepsim forecast``: out-of-sample forecasts of per-minute prod prompt-token demand per (model, region)
(``sweepsim.planning.forecast``; docs/planning.md, "Forecasts")."""
from pathlib import Path

import click

from sweepsim.cli.common import FiniteFloat, OutputPath, markdown_table
from sweepsim.errors import InputError, check_output_path


@click.command("forecast")
@click.argument("trace_path", metavar="TRACE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--train-until", required=True, type=FiniteFloat(min=0.0),
              help="End of the training window [s, a multiple of 60]; every later minute is forecast.")
@click.option("--out", required=True, type=OutputPath(dir_okay=False, path_type=Path),
              help="Forecast table (.parquet); the metrics go to the same name with .metrics.parquet.")
@click.option("--method", type=click.Choice(["arima", "naive", "both"]), default="both", show_default=True,
              help="arima: statsmodels ARIMA rolled forward hour by hour; naive: the same minute a day earlier.")
@click.option("--order", default="3,1,2", show_default=True, help="ARIMA order p,d,q.")
@click.option("--seasonal-order", help="Seasonal ARIMA order P,D,Q,S (S in minutes; at most 64 states, so no "
                                       "daily period at one-minute resolution). Default: none.")
@click.option("--interval", default=0.9, show_default=True, type=FiniteFloat(min=0.0, max=1.0, min_open=True,
                                                                             max_open=True),
              help="Nominal coverage of the prediction intervals.")
@click.option("--refit-hours", default=0, show_default=True, type=click.IntRange(min=0),
              help="Refit the ARIMA parameters every N hours of the forecast period (0: fit once on the training "
                   "window).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write cached ARIMA results.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def forecast_cmd(trace_path, train_until, out, method, order, seasonal_order, interval, refit_hours, no_cache,
                 quiet):
    """Forecast each (model, region)'s per-minute prod prompt tokens out of sample.

    The series: prompt tokens of prod requests (interactive and batch, not dev) arriving in each minute, per model
    and first region of the request's priority order, empty minutes as zeros. Training: minutes before
    --train-until. Every later minute m is forecast at the last hour boundary at or before m (or at
    --train-until), from the observations before that boundary only: a point forecast and a prediction interval.
    ARIMA results are cached by content under the trace cache directory ($SWEEPSIM_TRACE_CACHE).

    Writes OUT (model, region, method, minute, time [s], observed, predicted, lower, upper [prompt tokens per
    minute], issued [s], lead [min]; the training minutes as method "observed") and OUT with .metrics.parquet
    (MAPE, sMAPE, WAPE [%] and interval coverage per model, region and method, plus pooled rows "all"), and prints
    the metrics.
    """
    from sweepsim.planning.forecast import (check_interval, check_order, check_train_until, demand_series,
                                            forecast_trace, metrics_path, parse_order, write_forecasts)
    from sweepsim.workload.trace import load_trace

    order = parse_order(order, "--order")
    seasonal = parse_order(seasonal_order, "--seasonal-order", seasonal=True) if seasonal_order else None
    order, seasonal = check_order(order, seasonal, "--order", "--seasonal-order")
    check_interval(interval, "--interval")
    check_output_path(out, (".parquet",), "--out")
    check_output_path(metrics_path(out), (".parquet",), "--out")
    if out.exists() and trace_path.exists() and out.resolve() == trace_path.resolve():
        raise InputError(out, "--out", "is the input trace; write the forecasts to another file")
    demand = demand_series(load_trace(trace_path))
    if not demand.keys:
        raise InputError(trace_path, None, "has no prod request: nothing to forecast")
    check_train_until(train_until, len(demand.minutes), order, seasonal, trace_path, "--train-until")
    methods = ("arima", "naive") if method == "both" else (method,)
    fc = forecast_trace(demand, train_until, methods, order, seasonal, interval, refit_hours, cache=not no_cache,
                        progress=not quiet)
    paths = write_forecasts(fc, out)
    m = fc.metrics
    cols = ["model", "region", "method", "minutes", "mape", "wape", "coverage", "fit_seconds", "cached"]
    click.echo(markdown_table(m.select(cols), top=len(m), float_precision=3))
    n, te = len(demand.minutes), int(train_until) // 60
    click.echo(f"{len(demand.keys)} series x {len(methods)} method(s); training minutes 0-{te - 1}, forecasts for "
               f"minutes {te}-{n - 1} issued hourly; MAPE, WAPE [%], coverage of the {interval:g} interval")
    if "naive" in methods and not (m.filter(m["method"] == "naive")["minutes"] > 0).any():
        click.echo("warning: naive: no forecast minute has an observation a day earlier (the trace spans at "
                   "most a day): its rows are empty", err=True)
    click.echo(f"forecasts: {paths[0]}, metrics: {paths[1]}")
