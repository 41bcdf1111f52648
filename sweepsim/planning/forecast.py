"""Out-of-sample forecasts of per-minute prod prompt-token demand per (model, region) (SageServe section 4.2-4.3,
without its in-sample fits and dropped empty minutes).

- ``demand_series(trace)``: one series per (model, first priority region) of the prompt tokens of prod requests
  (interactive and batch; dev excluded) arriving in each minute, zeros included.
- ``rolling_arima`` / ``naive_seasonal``: forecasts of one series for every minute from ``train_end`` on. The
  forecast of minute m is issued at the last hour boundary at or before m (or at ``train_end`` if later), from
  the observations of the minutes before that boundary only (``issue_minutes``); a point forecast and a
  prediction interval, clipped at 0.
- ``forecast_trace``: both over every series of a trace, ARIMA results cached by content; returns the long table
  (``COLUMNS``) and the metrics (``forecast_metrics``). ``write_forecasts`` / ``load_forecasts`` store them.
- ``forecast_window`` / ``peak_demand``: what a planner at time t (seconds) may use.

Minutes index the series (minute m is [60 m, 60 m + 60) s); the tables give times in seconds. See
docs/planning.md, "Forecasts".
"""
import hashlib
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from sweepsim.errors import InputError

#: bumped whenever a forecaster's results change, so that cached ARIMA results are recomputed
FORECAST_VERSION = 1
METHODS = ("arima", "naive")
DEFAULT_ORDER = (3, 1, 2)
DEFAULT_INTERVAL = 0.9
HOUR = 60            # minutes between forecast issues
DAY = 1440           # minutes: the naive forecaster's season
#: most state-space states an ARIMA may have: a seasonal period of a day at one-minute resolution (1440 states)
#: takes minutes per likelihood evaluation in statsmodels (measured: 121 states, 35 s per evaluation)
MAX_STATES = 64
MIN_TRAIN = 60       # minutes of training data at least
MAXITER = 200        # optimiser iterations of an ARIMA fit (statsmodels' default 50 often stops short here)
MIN_NAIVE_ERRORS = 60   # training-window errors the naive interval needs
#: columns of the forecast table (``forecast_trace(...).table``, ``sweepsim forecast --out``)
COLUMNS = ("model", "region", "method", "minute", "time", "observed", "predicted", "lower", "upper", "issued",
           "lead")
METADATA_KEY = b"sweepsim.forecast"


class Demand(NamedTuple):
    """Per-minute demand series: ``matrix[i, m]`` = prompt tokens of series ``keys[i]`` in minute ``minutes[m]``."""
    keys: tuple          # ((model, region), ...) sorted
    minutes: np.ndarray  # int64 0 .. n-1
    matrix: np.ndarray   # float64 (len(keys), n)


@dataclass(frozen=True)
class SeriesForecast:
    """One method's forecasts of one series for minutes ``train_end .. n-1`` (arrays of n - train_end values;
    NaN where the method has none: the naive forecaster before the series' second day)."""
    predicted: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    issued: np.ndarray          # int64: the minute at which each forecast was issued
    fit_seconds: float = 0.0    # time spent fitting (on a cache hit: the original fit's)
    converged: bool | None = None   # the optimiser's verdict (None: nothing fitted)
    cached: bool = False


class Forecasts(NamedTuple):
    table: pl.DataFrame      # COLUMNS
    metrics: pl.DataFrame    # one row per (model, region, method), then per method a pooled row ("all", "all")
    options: dict


# ---------------------------------------------------------------------------------------------------------------
# demand

def demand_series(trace) -> Demand:
    """Prompt tokens of prod requests (interactive and batch; not dev) arriving in each minute 0 ..
    floor(last arrival / 60), per (model name, first region of the request's priority order), zeros for empty
    minutes. Series are the (model, region) pairs with at least one prod request, sorted; an empty priority
    order gives region "". A trace without serving columns: one series ("", "") of all its requests."""
    arrival = np.asarray(trace.arrival, np.float64)
    if len(arrival) == 0:
        return Demand((), np.zeros(0, np.int64), np.zeros((0, 0)))
    minute = (arrival // 60).astype(np.int64)
    n = int(minute.max()) + 1
    prompt = np.asarray(trace.prompt_size)
    s = trace.serving
    if s is None:
        names = [("", "")]
        key = np.zeros(len(minute), np.int64)
    else:
        first = [o[0] if o else "" for o in s.region_orders]
        regions = sorted(set(first))
        lut = np.array([regions.index(f) for f in first], np.int64)
        names = [(m, r) for m in s.model_names for r in regions]
        prod = s.workload == 0
        key = s.model[prod].astype(np.int64) * len(regions) + lut[s.regions[prod]]
        minute, prompt = minute[prod], prompt[prod]
    flat = np.bincount(key * n + minute, weights=prompt.astype(np.float64), minlength=len(names) * n)
    present = np.flatnonzero(np.bincount(key, minlength=len(names)) > 0)
    return Demand(tuple(names[i] for i in present), np.arange(n, dtype=np.int64),
                  flat.reshape(len(names), n)[present])


# ---------------------------------------------------------------------------------------------------------------
# options

def k_states(order, seasonal_order=None) -> int:
    """State dimension of statsmodels' ARIMA for these orders (differencing in the state)."""
    p, d, q = order
    P, D, Q, S = seasonal_order or (0, 0, 0, 0)
    return d + D * S + max(p + P * S, q + Q * S + 1)


def min_train_minutes(order, seasonal_order=None) -> int:
    """Training minutes an ARIMA of these orders needs: max(60, 3 x its state dimension)."""
    return max(MIN_TRAIN, 3 * k_states(order, seasonal_order))


def parse_order(text: str, field="--order", seasonal=False) -> tuple:
    """``"3,1,2"`` -> (3, 1, 2); with ``seasonal``, ``"P,D,Q,S"`` -> (P, D, Q, S)."""
    want = "P,D,Q,S whole numbers, e.g. 1,0,0,60" if seasonal else "p,d,q whole numbers, e.g. 3,1,2"
    parts = [x.strip() for x in str(text).split(",")]
    try:
        vals = tuple(int(x) for x in parts)
    except ValueError:
        raise InputError(None, field, f"{text!r} is not {want}") from None
    if len(vals) != (4 if seasonal else 3):
        raise InputError(None, field, f"{text!r} is not {want}")
    return vals


def check_order(order, seasonal_order=None, field="order", seasonal_field="seasonal_order"):
    """ARIMA orders within reason: p, q <= 10, d <= 2; seasonal P, Q <= 3, D <= 1, period S >= 2; at most
    ``MAX_STATES`` states."""
    order = tuple(order)
    if len(order) != 3 or any(not isinstance(x, (int, np.integer)) or x < 0 for x in order):
        raise InputError(None, field, f"{order!r} must be three whole numbers p,d,q >= 0")
    if order[0] > 10 or order[2] > 10 or order[1] > 2:
        raise InputError(None, field, f"{','.join(map(str, order))}: p and q must be at most 10, d at most 2")
    if seasonal_order is not None:
        so = tuple(seasonal_order)
        if len(so) != 4 or any(not isinstance(x, (int, np.integer)) or x < 0 for x in so):
            raise InputError(None, seasonal_field, f"{so!r} must be four whole numbers P,D,Q,S >= 0")
        if so[3] < 2 or so[0] > 3 or so[2] > 3 or so[1] > 1:
            raise InputError(None, seasonal_field, f"{','.join(map(str, so))}: the period S must be >= 2, P and Q "
                                                   f"at most 3, D at most 1")
        k = k_states(order, so)
        if k > MAX_STATES:
            raise InputError(None, seasonal_field, f"{','.join(map(str, so))} with order {','.join(map(str, order))} "
                                                   f"has {k} states, over {MAX_STATES}: statsmodels takes tens of "
                                                   f"seconds or more per likelihood evaluation (a daily period "
                                                   f"S=1440 at one-minute resolution is out of reach); keep d + D*S "
                                                   f"+ max(p + P*S, q + Q*S + 1) <= {MAX_STATES} (e.g. S <= 60 with "
                                                   f"P = 1, D = Q = 0) or drop the seasonal terms")
    return order, (tuple(seasonal_order) if seasonal_order is not None else None)


def check_train_until(train_until, n_minutes, order=DEFAULT_ORDER, seasonal_order=None, source=None,
                      field="train_until") -> int:
    """The training end in minutes: ``train_until`` [s] must be a whole number of minutes, leave at least one
    minute to forecast, and give ARIMA ``min_train_minutes`` of training data."""
    t = float(train_until)
    end_s = 60 * n_minutes
    if not np.isfinite(t) or t <= 0 or t % 60:
        raise InputError(source, field, f"{train_until:g} s must be a positive whole number of minutes (a multiple "
                                        f"of 60 s)")
    if t >= end_s:
        raise InputError(source, field, f"{t:g} s is not before the end of the trace's demand series ({end_s} s, "
                                        f"{n_minutes} minutes): nothing is left to forecast")
    need = min_train_minutes(order, seasonal_order)
    if t / 60 < need:
        raise InputError(source, field, f"{t:g} s: ARIMA {','.join(map(str, order))}"
                                        f"{' x ' + ','.join(map(str, seasonal_order)) if seasonal_order else ''} "
                                        f"needs at least {need} minutes ({60 * need} s) of training data")
    return int(t // 60)


def check_interval(interval, field="interval") -> float:
    x = float(interval)
    if not 0 < x < 1:
        raise InputError(None, field, f"{interval!r} must be a probability strictly between 0 and 1, e.g. 0.9")
    return x


# ---------------------------------------------------------------------------------------------------------------
# forecasters

def issue_minutes(train_end: int, n: int) -> np.ndarray:
    """For each minute m in ``train_end .. n-1``, the minute its forecast is issued at: the last hour boundary at
    or before m (a multiple of 60 minutes), or ``train_end`` if later. It uses observations of minutes < issue."""
    m = np.arange(train_end, n, dtype=np.int64)
    return np.maximum(train_end, m // HOUR * HOUR)


def _fit_arima(endog, order, seasonal_order, start_params=None):
    """statsmodels ARIMA fitted by maximum likelihood (L-BFGS, ``MAXITER`` iterations at most; warnings silenced,
    convergence is read from the result)."""
    from statsmodels.tsa.arima.model import ARIMA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ARIMA(endog, order=tuple(order), seasonal_order=tuple(seasonal_order or (0, 0, 0, 0))).fit(
            start_params=start_params, method_kwargs={"maxiter": MAXITER})


def _converged(res) -> bool:
    rv = getattr(res, "mle_retvals", None) or {}
    return bool(rv.get("converged", True))


def rolling_arima(y, train_end: int, order=DEFAULT_ORDER, seasonal_order=None, interval=DEFAULT_INTERVAL,
                  refit_hours: int = 0) -> SeriesForecast:
    """ARIMA(order) x seasonal_order fitted on ``y[:train_end]``, then rolled forward: at each issue minute h
    (``issue_minutes``) the results are extended with the observations up to h (``.extend``, parameters kept)
    and ``get_forecast`` gives the minutes up to the next issue, with ``conf_int(alpha=1 - interval)``.
    ``refit_hours`` > 0 refits the parameters on ``y[:h]`` at every refit_hours-th issue (warm-started).
    The series is divided by its training mean for the fit (ARIMA is scale-equivariant). A constant training
    series (no traffic) is forecast by persistence: the last observation, with a zero-width interval."""
    y = np.asarray(y, np.float64)
    n = len(y)
    issued = issue_minutes(train_end, n)
    starts = [int(h) for h in np.unique(issued)]   # Python ints: statsmodels reads a NumPy int as a date
    train = y[:train_end]
    if np.ptp(train) == 0:
        pred = y[issued - 1].copy()
        return SeriesForecast(pred, pred.copy(), pred.copy(), issued)
    scale = float(np.abs(train).mean())
    z = y / scale
    t0 = time.perf_counter()
    res = _fit_arima(z[:train_end], order, seasonal_order)
    fit = time.perf_counter() - t0
    converged = _converged(res)
    out = np.empty((3, n - train_end))
    prev = train_end
    for i, h in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else n
        if h > prev:
            if refit_hours and i % refit_hours == 0:
                t0 = time.perf_counter()
                res = _fit_arima(z[:h], order, seasonal_order, start_params=res.params)
                fit += time.perf_counter() - t0
                converged &= _converged(res)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    res = res.extend(z[prev:h])
            prev = h
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = res.get_forecast(end - h)
            ci = np.asarray(f.conf_int(alpha=1 - interval))
        sl = slice(h - train_end, end - train_end)
        out[0, sl] = np.asarray(f.predicted_mean)
        out[1, sl] = ci[:, 0]
        out[2, sl] = ci[:, 1]
    out *= scale
    np.maximum(out, 0, out=out)
    return SeriesForecast(out[0], out[1], out[2], issued, fit, converged)


def naive_seasonal(y, train_end: int, interval=DEFAULT_INTERVAL, season: int = DAY) -> SeriesForecast:
    """The same minute one season (a day) earlier: ``predicted[m] = y[m - season]`` (NaN for m < season). Its
    interval adds the (1 - interval)/2 and (1 + interval)/2 quantiles of its errors ``y[m] - y[m - season]`` on
    the training window (NaN with fewer than ``MIN_NAIVE_ERRORS`` of them). Clipped at 0."""
    y = np.asarray(y, np.float64)
    n = len(y)
    m = np.arange(train_end, n)
    pred = np.full(len(m), np.nan)
    has = m >= season
    pred[has] = y[m[has] - season]
    errs = y[season:train_end] - y[:max(train_end - season, 0)]
    if len(errs) >= MIN_NAIVE_ERRORS:
        lo, hi = np.quantile(errs, [(1 - interval) / 2, (1 + interval) / 2])
    else:
        lo = hi = np.nan
    with np.errstate(invalid="ignore"):
        return SeriesForecast(np.maximum(pred, 0), np.maximum(pred + lo, 0), np.maximum(pred + hi, 0),
                              issue_minutes(train_end, n))


# ---------------------------------------------------------------------------------------------------------------
# metrics

def forecast_metrics(observed, predicted, lower, upper) -> dict:
    """Errors over the minutes with a forecast (finite ``predicted``): ``minutes``; ``mape`` [%] = mean |o - p| / o
    over the ``mape_minutes`` with o > 0; ``smape`` [%] = mean 2 |o - p| / (o + p) over minutes with o + p > 0;
    ``wape`` [%] = sum |o - p| / sum o; ``coverage`` = fraction of the minutes with a finite interval whose
    observation lies in [lower, upper]. NaN where undefined."""
    o, p = np.asarray(observed, float), np.asarray(predicted, float)
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    ok = np.isfinite(p)
    o, p, lo, hi = o[ok], p[ok], lo[ok], hi[ok]
    err = np.abs(o - p)
    pos = o > 0
    den = np.abs(o) + np.abs(p)
    iv = np.isfinite(lo) & np.isfinite(hi)
    nan = float("nan")
    return {"minutes": int(ok.sum()), "mape_minutes": int(pos.sum()),
            "mape": float(100 * np.mean(err[pos] / o[pos])) if pos.any() else nan,
            "smape": float(100 * np.mean(2 * err[den > 0] / den[den > 0])) if (den > 0).any() else nan,
            "wape": float(100 * err.sum() / o.sum()) if o.sum() > 0 else nan,
            "coverage": float(np.mean((o[iv] >= lo[iv]) & (o[iv] <= hi[iv]))) if iv.any() else nan}


# ---------------------------------------------------------------------------------------------------------------
# cache

def forecast_cache_dir() -> Path:
    """``<trace cache directory>/forecasts`` (``$SWEEPSIM_TRACE_CACHE``, see ``sweepsim.workload.cache``)."""
    from sweepsim.workload.cache import cache_dir
    return cache_dir() / "forecasts"


def cache_key(y, train_end, method, **options) -> str:
    """Content hash of one series' forecast: the series' values, the training end, the method, its options and
    the statsmodels and forecaster versions."""
    import statsmodels
    payload = {"version": FORECAST_VERSION, "statsmodels": statsmodels.__version__, "maxiter": MAXITER,
               "method": method,
               "train_end": int(train_end), "n": len(y),
               "series": hashlib.sha256(np.ascontiguousarray(y, "<f8").tobytes()).hexdigest(),
               **{k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def _read_cached(path: Path, n: int) -> SeriesForecast | None:
    import pyarrow.parquet as pq
    try:
        t = pq.read_table(path)
        meta = json.loads(t.schema.metadata[METADATA_KEY])
        cols = [t[c].to_numpy() for c in ("predicted", "lower", "upper", "issued")]
    except Exception:  # damaged or foreign: recomputed
        print(f"warning: {path}: cached forecast unreadable; recomputed", file=sys.stderr)
        return None
    if len(cols[0]) != n:
        return None
    return SeriesForecast(*(np.array(c, np.float64) for c in cols[:3]), np.array(cols[3], np.int64),
                          meta["fit_seconds"], meta["converged"], cached=True)


def _write_cached(path: Path, sf: SeriesForecast) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sweepsim.atomic import atomic_write
    t = pa.table({"predicted": sf.predicted, "lower": sf.lower, "upper": sf.upper, "issued": sf.issued})
    t = t.replace_schema_metadata({METADATA_KEY: json.dumps({"fit_seconds": sf.fit_seconds,
                                                             "converged": sf.converged})})
    try:
        atomic_write(path, lambda tmp: pq.write_table(t, tmp))
    except OSError as e:
        print(f"warning: {path}: cannot cache the forecast: {e.strerror or e}", file=sys.stderr)


def forecast_series(y, train_end: int, method: str, order=DEFAULT_ORDER, seasonal_order=None,
                    interval=DEFAULT_INTERVAL, refit_hours: int = 0, cache: bool = True) -> SeriesForecast:
    """One method's forecasts of one series. ARIMA results are read from / written to
    ``forecast_cache_dir()/<cache_key>.parquet`` when ``cache``; the naive forecaster is always recomputed."""
    if method == "naive":
        return naive_seasonal(y, train_end, interval)
    if method != "arima":
        raise InputError(None, "method", f"unknown forecast method {method!r}; allowed: {', '.join(METHODS)}")
    y = np.asarray(y, np.float64)
    path = None
    if cache:
        opts = {"order": tuple(order), "seasonal_order": tuple(seasonal_order) if seasonal_order else None,
                "interval": float(interval), "refit_hours": int(refit_hours)}
        path = forecast_cache_dir() / f"{cache_key(y, train_end, method, **opts)}.parquet"
        if path.exists():
            hit = _read_cached(path, len(y) - train_end)
            if hit is not None:
                return hit
    sf = rolling_arima(y, train_end, order, seasonal_order, interval, refit_hours)
    if path is not None:
        _write_cached(path, sf)
    return sf


# ---------------------------------------------------------------------------------------------------------------
# whole traces

def _frame(model, region, method, minutes, observed, sf: SeriesForecast | None) -> pl.DataFrame:
    k = len(minutes)
    cols = {"model": pl.Series([model] * k, dtype=pl.String), "region": pl.Series([region] * k, dtype=pl.String),
            "method": pl.Series([method] * k, dtype=pl.String), "minute": minutes, "time": 60 * minutes,
            "observed": observed}
    if sf is None:
        for c in ("predicted", "lower", "upper"):
            cols[c] = pl.Series(c, [None] * k, dtype=pl.Float64)
        for c in ("issued", "lead"):
            cols[c] = pl.Series(c, [None] * k, dtype=pl.Int64)
    else:
        for c in ("predicted", "lower", "upper"):
            cols[c] = pl.Series(c, getattr(sf, c), nan_to_null=True)
        cols["issued"] = 60 * sf.issued
        cols["lead"] = minutes - sf.issued
    return pl.DataFrame(cols)


def forecast_trace(trace, train_until, methods=METHODS, order=DEFAULT_ORDER, seasonal_order=None,
                   interval=DEFAULT_INTERVAL, refit_hours: int = 0, cache: bool = True,
                   progress: bool = False) -> Forecasts:
    """Forecast every demand series of ``trace`` (a ``Trace``, or a ``Demand`` from ``demand_series``) from
    ``train_until`` [s, a multiple of 60] on with each of ``methods``. The table has, per series, its training
    minutes as method "observed" (forecast columns null) and, per method, one row per later minute: the
    forecast issued at the last hour boundary at or before it (see ``COLUMNS`` and docs/planning.md)."""
    demand = trace if isinstance(trace, Demand) else demand_series(trace)
    keys, minutes, matrix = demand
    if not keys:
        raise InputError(None, "trace", "has no prod request: nothing to forecast")
    methods = tuple(dict.fromkeys(methods))
    for m in methods:
        if m not in METHODS:
            raise InputError(None, "method", f"unknown forecast method {m!r}; allowed: {', '.join(METHODS)}")
    order, seasonal_order = check_order(order, seasonal_order)
    interval = check_interval(interval)
    train_end = check_train_until(train_until, len(minutes), order, seasonal_order)
    options = {"train_until": 60 * train_end, "methods": list(methods), "order": list(order),
               "seasonal_order": list(seasonal_order) if seasonal_order else None, "interval": interval,
               "refit_hours": int(refit_hours), "horizon_minutes": HOUR, "naive_season_minutes": DAY,
               "version": FORECAST_VERSION}
    from tqdm import tqdm
    frames, rows, pooled = [], [], {m: [] for m in methods}
    fut = minutes[train_end:]
    with tqdm(total=len(keys) * len(methods), unit="fit", file=sys.stderr, disable=None if progress else True,
              desc="forecast") as bar:
        for (model, region), y in zip(keys, matrix):
            frames.append(_frame(model, region, "observed", minutes[:train_end], y[:train_end], None))
            for method in methods:
                bar.set_postfix_str(f"{model or '-'}/{region or '-'} {method}")
                sf = forecast_series(y, train_end, method, order, seasonal_order, interval, refit_hours, cache)
                frames.append(_frame(model, region, method, fut, y[train_end:], sf))
                rows.append({"model": model, "region": region, "method": method,
                             **forecast_metrics(y[train_end:], sf.predicted, sf.lower, sf.upper),
                             "fit_seconds": sf.fit_seconds, "converged": sf.converged, "cached": sf.cached})
                pooled[method].append((y[train_end:], sf))
                bar.update()
    for method, parts in pooled.items():
        cat = [np.concatenate(x) for x in zip(*((o, s.predicted, s.lower, s.upper) for o, s in parts))]
        conv = [s.converged for _, s in parts if s.converged is not None]
        rows.append({"model": "all", "region": "all", "method": method, **forecast_metrics(*cat),
                     "fit_seconds": float(sum(s.fit_seconds for _, s in parts)),
                     "converged": all(conv) if conv else None, "cached": all(s.cached for _, s in parts)})
    metrics = pl.DataFrame(rows, schema={"model": pl.String, "region": pl.String, "method": pl.String,
                                         "minutes": pl.Int64, "mape_minutes": pl.Int64, "mape": pl.Float64,
                                         "smape": pl.Float64, "wape": pl.Float64, "coverage": pl.Float64,
                                         "fit_seconds": pl.Float64, "converged": pl.Boolean, "cached": pl.Boolean})
    metrics = metrics.with_columns(pl.lit(interval).alias("interval"))
    return Forecasts(pl.concat(frames), metrics, options)


# ---------------------------------------------------------------------------------------------------------------
# files and queries

def metrics_path(out) -> Path:
    """``F.parquet`` -> ``F.metrics.parquet``."""
    out = Path(out)
    return out.with_name(out.name[:-len(out.suffix)] + ".metrics" + out.suffix)


def write_forecasts(fc: Forecasts, out) -> tuple[Path, Path]:
    """The table to ``out`` and the metrics to ``metrics_path(out)``, atomically, the options in both files'
    metadata (key ``sweepsim.forecast``)."""
    import pyarrow.parquet as pq

    from sweepsim.atomic import atomic_write
    meta = {METADATA_KEY: json.dumps(fc.options)}
    paths = (Path(out), metrics_path(out))
    for df, path in zip((fc.table, fc.metrics), paths):
        t = df.to_arrow()
        t = t.replace_schema_metadata({**(t.schema.metadata or {}), **meta})
        atomic_write(path, lambda tmp, t=t: pq.write_table(t, tmp))
    return paths


def load_forecasts(path) -> pl.DataFrame:
    """A forecast table written by ``sweepsim forecast`` (checked for its columns)."""
    from sweepsim.errors import read_parquet
    return read_parquet(path, None, COLUMNS)


def forecast_window(table: pl.DataFrame, t, method="arima", start=1200, end=3600) -> pl.DataFrame:
    """The rows of ``method``'s forecast issued at time ``t`` [s] (an hour boundary, or the training end) for the
    minutes starting in [t + start, t + end) [s]: what a planner at t may use (observations before t only).
    Empty when nothing was issued at t (before the training end, or after the trace)."""
    return table.filter((pl.col("method") == method) & (pl.col("issued") == int(t))
                        & (pl.col("time") >= t + start) & (pl.col("time") < t + end))


def peak_demand(table: pl.DataFrame, t, method="arima", start=1200, end=3600, column="predicted") -> dict:
    """{(model, region): the largest ``column`` (predicted, or upper for a cautious plan) over
    ``forecast_window``} [prompt tokens per minute]; series without rows in the window are absent."""
    w = forecast_window(table, t, method, start, end)
    g = w.group_by(["model", "region"]).agg(pl.col(column).max()).sort(["model", "region"])
    return {(r["model"], r["region"]): r[column] for r in g.iter_rows(named=True)}
