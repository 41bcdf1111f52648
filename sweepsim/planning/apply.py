"""Plans as kernel inputs: for a topology run with a planning arbiter, the applied targets of every planning tick per
endpoint and the forecast per minute per (region, model), packed for ``kernels.scaling_nb`` (``Scale.p``).

At tick t (``planning.start``, default ``planning.train_until``, then every ``planning.interval`` seconds while
requests arrive) an endpoint's demand is the peak point forecast (``demand = "upper"``: the peak upper bound of
the prediction interval) of its model's prod prompt tokens per minute in its region over the minutes in
[t + window[0], t + window[1]] among the forecasts issued at or before t (never a forecast made with observations
after t), plus ``dev_fraction`` x the largest dev prompt that arrived for it in the trailing interval [t - interval, t]
(endpoints serving dev requests). A (model, region) without forecast rows (no prod traffic) plans its floor. A prod-only silo gets no dev term, a dev-only silo no forecast. Each region's integer program
(``planner.plan_from_demand``) turns demands into raw plans, post-processed by ``planning.strategy``.
"""
import numpy as np
import polars as pl

from sweepsim.engine.serving import region_of
from sweepsim.errors import InputError

FORECAST_COLUMNS = ("model", "region", "method", "minute", "time", "predicted", "upper", "issued")


def plan_inputs(cfg, placement, trace, history) -> tuple[np.ndarray, dict]:
    """(a (rows, width) float64 block: ``plan_ticks`` rows of target instances per endpoint, then ``plan_minutes``
    rows of forecast prompt tokens per minute per (region, model) (NaN: no forecast); the kernel parameters it
    sets). ``trace``: the simulated requests (their times count from ``planning.train_until``); ``history``: the
    whole trace (forecasts may be fitted on it)."""
    t = cfg.topology
    if t is None or t.planning.arbiter == "none":
        return np.zeros(0), {}
    plans, forecast, start = planned_targets(cfg, history)
    shift = t.planning.train_until   # the simulated trace's times count from the end of the history
    forecast = forecast[int(shift // 60):]
    start -= shift
    n_ep = len(t.endpoints)
    width = max(n_ep, forecast.shape[1])
    block = np.full((len(plans) + len(forecast), width), np.nan)
    block[:len(plans), :n_ep] = plans
    block[len(plans):, :forecast.shape[1]] = forecast
    return block, {"plan_ticks": len(plans), "plan_minutes": len(forecast), "plan_start": start}


def forecast_table(cfg, history) -> pl.DataFrame:
    """The planning forecast of ``cfg``: its ``planning.forecast`` file, or one fitted on ``history`` up to
    ``planning.train_until`` (cached by content); the rows of ``planning.method``."""
    pln = cfg.topology.planning
    if pln.forecast:
        from sweepsim.errors import read_parquet
        df = read_parquet(pln.forecast, "planning.forecast")
        missing = [c for c in FORECAST_COLUMNS if c not in df.columns]
        if missing:
            raise InputError(pln.forecast, "planning.forecast", f"not a `sweepsim forecast` file: missing column(s) "
                                                                f"{', '.join(missing)}")
    else:
        from sweepsim.planning.forecast import forecast_trace
        df = forecast_trace(history, pln.train_until, methods=(pln.method,)).table
    df = df.filter(pl.col("method") == pln.method)
    if not len(df):
        raise InputError(pln.forecast or history.path, "planning.method", f"the forecast has no {pln.method!r} rows")
    return df


def planned_targets(cfg, history) -> tuple[np.ndarray, np.ndarray, float]:
    """(applied targets (ticks, endpoints) int, forecast (minutes, regions x models) float, first tick [s]), in the
    times of ``history`` (the whole trace)."""
    from sweepsim.planning.planner import dev_backlog, endpoint_throughputs, plan_from_demand, sageserve_tps
    from sweepsim.planning.postprocess import apply_strategy
    topo = cfg.topology
    pln = topo.planning
    eps = topo.endpoints
    models = topo.models()
    regions = topo.regions
    df = forecast_table(cfg, history)
    start = pln.start if pln.start >= 0 else pln.train_until
    last = float(history.arrival.max()) if len(history.arrival) else start
    times = np.arange(start, max(last, start) + 1e-9, pln.interval)
    # per (model, region): minute -> (predicted, upper, issued)
    series = {}
    n_min = int(df["minute"].max()) + 1
    for (m, r), g in df.group_by(["model", "region"]):
        arr = np.full((3, n_min), np.nan)
        mi = g["minute"].to_numpy().astype(np.int64)
        arr[0, mi] = g["predicted"].to_numpy()
        arr[1, mi] = g["upper"].to_numpy() if pln.demand == "upper" else g["predicted"].to_numpy()
        arr[2, mi] = g["issued"].to_numpy()
        k = region_of(regions, str(r))
        series[(str(m), regions[k] if k >= 0 else str(r))] = arr
    minute_time = np.arange(n_min) * 60.0
    # per request: its model and first region as codes (topology order; -1: neither), and whether it is dev
    sv = history.serving
    n = len(history.arrival)
    if sv is not None:
        model_lut = np.array([models.index(x or models[0]) if (x or models[0]) in models else -1
                              for x in sv.model_names], np.int64)
        first_lut = np.array([region_of(regions, o[0]) if o else 0 for o in sv.region_orders], np.int64)
        model_of, first, dev = model_lut[sv.model], first_lut[sv.regions], sv.workload == 1
    else:
        model_of, first, dev = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)
    demands = np.zeros((len(times), len(eps)))
    for j, e in enumerate(eps):
        if e.workload != "dev":
            arr = series.get((e.model, e.region))
            if arr is not None:
                for k, t in enumerate(times):
                    ok = (minute_time >= t + pln.window[0]) & (minute_time <= t + pln.window[1]) & (arr[2] <= t)
                    vals = arr[1, ok]
                    vals = vals[~np.isnan(vals)]
                    demands[k, j] = float(np.maximum(vals, 0.0).max()) if len(vals) else 0.0
        if e.workload != "prod" and pln.dev_fraction > 0:
            mine = dev & (model_of == models.index(e.model)) & (first == regions.index(e.region))
            a, p = history.arrival[mine], history.prompt_size[mine]
            for k, t in enumerate(times):
                demands[k, j] += dev_backlog(a, p, float(t), pln.dev_fraction, pln.interval)
    if pln.throughput == "sageserve":
        if any(m not in ("A", "B", "C", "D") for m in models):
            raise InputError(cfg.source, "planning.throughput", f"SageServe's constants exist for models A-D only, "
                                                                f"not {sorted(set(models) - set('ABCD'))}")
        tps = sageserve_tps([e.model for e in eps])
    else:
        train = history.arrival < pln.train_until if pln.train_until > 0 else np.ones(len(history.arrival), bool)
        prod = ~dev & train   # mean sizes of the prod requests of the training window
        means_p, means_o = {}, {}
        for code, m in enumerate(models):
            mask = prod & (model_of == code)
            if not mask.any():
                mask = model_of == code
            means_p[m] = float(history.prompt_size[mask].mean()) if mask.any() else 1000.0
            means_o[m] = float(history.token_size[mask].mean()) if mask.any() else 250.0
        tps = endpoint_throughputs(cfg, means_p, means_o)
    region = np.array([regions.index(e.region) for e in eps])
    initial = np.array([e.instances for e in eps], np.int64)
    totals = np.bincount(region, weights=initial, minlength=len(regions)).astype(np.int64)
    sc = topo.scaling
    floors = np.full(len(eps), sc.min_instances, np.int64)
    ceilings = np.full(len(eps), sc.max_instances, np.int64) if sc.max_instances else None
    raw = plan_from_demand(demands, initial, region, totals, floors, tps, pln.gpu_cost, pln.startup_cost, ceilings)
    applied = apply_strategy(pln.strategy, raw, initial, pln.keep, region, totals)
    # the kernel's forecast (LT-UA): per minute m, per (region, model) in topology order; the kernel reads minute m
    # during minute m - 1, so a forecast issued after that minute's start (at an hour boundary) is left out (NaN)
    fc = np.full((n_min, len(regions) * len(models)), np.nan)
    arr_known = minute_time - 60.0
    for (m, r), arr in series.items():
        if m in models and r in regions:
            fc[:, regions.index(r) * len(models) + models.index(m)] = np.where(arr[2] <= arr_known, arr[0], np.nan)
    return applied, fc, float(start)

