"""Demand forecasts (``sweepsim.planning.forecast``, ``sweepsim forecast``): the demand series of a hand-made
trace, the naive forecaster, ARIMA on a synthetic series with a known daily pattern (error bound, better than
naive, interval coverage), no look-ahead, the content cache, the CLI end to end and its bad input."""
import numpy as np
import polars as pl
import pytest

from sweepsim.planning import forecast as F
from sweepsim.workload.trace import load_trace
from tests.cli_helpers import assert_input_error, invoke, ok


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / "cache"))


def _csv(path, header, rows):
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------------------------------------------------------
# demand series

def test_demand_series_hand_made(tmp_path):
    rows = [  # request_id, arrival, prompt, token, model, workload, batch_id, regions
        (0, 0.5, 10, 1, "A", "prod", -1, '"westus,eastus"'),
        (1, 30.0, 5, 1, "A", "batch", 3, "westus"),            # batch: prod, counted
        (2, 59.9, 1000, 1, "A", "dev", -1, "westus"),          # dev: excluded
        (3, 61.0, 7, 1, "B", "prod", -1, '"eastus,westus"'),
        (4, 100.0, 50, 1, "C", "dev", -1, "eastus"),           # C has no prod request: no series
        (5, 200.0, 3, 1, "A", "", -1, '"eastus,westus"'),      # empty workload: prod
        (6, 250.0, 2, 1, "A", "prod", -1, "westus"),
    ]
    p = _csv(tmp_path / "t.csv", "request_id,arrival_timestamp,prompt_size,token_size,model,workload,batch_id,"
                                 "regions", rows)
    keys, minutes, matrix = F.demand_series(load_trace(p))
    assert keys == (("A", "eastus"), ("A", "westus"), ("B", "eastus"))
    assert minutes.tolist() == [0, 1, 2, 3, 4]          # 0 .. floor(250 / 60), empty minutes kept
    assert matrix.tolist() == [[0, 0, 0, 3, 0], [15, 0, 0, 0, 2], [0, 7, 0, 0, 0]]

    plain = _csv(tmp_path / "plain.csv", "request_id,arrival_timestamp,prompt_size,token_size",
                 [(0, 1.0, 4, 1), (1, 2.0, 5, 1), (2, 130.0, 6, 1)])
    keys, minutes, matrix = F.demand_series(load_trace(plain))
    assert keys == (("", ""),) and matrix.tolist() == [[9, 0, 6]]


# ---------------------------------------------------------------------------------------------------------------
# forecasters

def _synthetic(seed, days=3, level=1000.0, amp=300.0, phi=0.99, sd=100.0):
    """A known daily pattern (level + amp sin(2 pi t / 1 day)) plus AR(1) noise with a 100-minute memory
    (phi = 0.99 per minute, stationary sd ``sd``): today's deviations persist for about an hour, yesterday's
    tell nothing, so forecasts from the last hour's observations should beat the same minute yesterday."""
    rng = np.random.default_rng(seed)
    n = 1440 * days
    z = rng.normal(0, sd * np.sqrt(1 - phi ** 2), n)
    e = np.empty(n)
    e[0] = rng.normal(0, sd)
    for i in range(1, n):
        e[i] = phi * e[i - 1] + z[i]
    return level + amp * np.sin(2 * np.pi * np.arange(n) / 1440) + e


def test_issue_minutes():
    assert F.issue_minutes(120, 250).tolist()[:3] == [120, 120, 120]
    iss = F.issue_minutes(130, 250)   # a training end off the hour: its own issue, then the hour boundaries
    assert iss[0] == 130 and iss[49] == 130 and iss[50] == 180 and iss[-1] == 240
    assert np.all((np.arange(130, 250) - iss >= 0) & (np.arange(130, 250) - iss < 60))


def test_naive_is_yesterday():
    y = np.random.default_rng(1).integers(0, 1000, 1440 * 3).astype(float)
    sf = F.naive_seasonal(y, 2000, interval=0.8)
    m = np.arange(2000, len(y))
    assert np.array_equal(sf.predicted, y[m - 1440])
    errs = y[1440:2000] - y[:560]
    lo, hi = np.quantile(errs, [0.1, 0.9])
    assert np.allclose(sf.lower, np.maximum(y[m - 1440] + lo, 0)) and np.allclose(sf.upper, y[m - 1440] + hi)
    early = F.naive_seasonal(y, 1000)                 # no yesterday before minute 1440, no training errors
    assert np.isnan(early.predicted[:440]).all() and np.array_equal(early.predicted[440:], y[:len(y) - 1440])
    assert np.isnan(early.lower).all()


def test_arima_beats_naive_on_daily_pattern():
    """ARIMA(3,1,2) (the default), trained on 2 days, forecasting the third hour by hour: MAPE below 9% and
    below 0.8 x the naive forecaster's (measured over seeds 0-39: ARIMA 4.8-7.4%, at most 0.73 x naive, naive
    8.4-19%); the 90% intervals cover 0.9 +- 0.05 of the minutes pooled over 6 series (one series' coverage
    varies by about +-0.07: a day holds ~14 independent stretches of the noise)."""
    inside = total = 0
    for seed in range(6):
        y = _synthetic(seed)
        a = F.rolling_arima(y, 2880)
        ma = F.forecast_metrics(y[2880:], a.predicted, a.lower, a.upper)
        if seed == 0:
            b = F.naive_seasonal(y, 2880)
            mb = F.forecast_metrics(y[2880:], b.predicted, b.lower, b.upper)
            assert ma["minutes"] == mb["minutes"] == 1440
            assert ma["mape"] < 9.0 and ma["mape"] < 0.8 * mb["mape"], (ma, mb)
            assert ma["wape"] < 0.8 * mb["wape"]
        inside += ma["coverage"] * ma["minutes"]
        total += ma["minutes"]
        assert np.all(a.lower <= a.predicted) and np.all(a.predicted <= a.upper) and np.all(a.lower >= 0)
    assert abs(inside / total - 0.9) <= 0.05, inside / total


@pytest.mark.parametrize("refit_hours", [0, 2])
def test_no_look_ahead(refit_hours):
    """Forecasts issued at or before an hour boundary h do not change when the observations from h on do."""
    y = _synthetic(7, days=2)[:2400]
    train_end, h = 1800, 2040
    a = F.rolling_arima(y, train_end, refit_hours=refit_hours)
    y2 = y.copy()
    y2[h:] = y2[h:] * 3 + 500
    b = F.rolling_arima(y2, train_end, refit_hours=refit_hours)
    early = a.issued <= h
    assert np.array_equal(a.issued, b.issued) and early.sum() == h + 60 - train_end
    for c in ("predicted", "lower", "upper"):
        assert np.array_equal(getattr(a, c)[early], getattr(b, c)[early]), c
    assert not np.allclose(a.predicted[~early], b.predicted[~early])


def test_constant_series_is_persistence():
    y = np.zeros(300)
    y[250:] = 5
    sf = F.rolling_arima(y, 200)
    assert np.array_equal(sf.predicted, y[F.issue_minutes(200, 300) - 1]) and sf.converged is None


def test_cache_returns_identical_result_without_refitting(monkeypatch):
    y = _synthetic(3, days=1)
    demand = F.Demand((("A", "westus"), ("B", "eastus")), np.arange(600), np.stack([y[:600], y[600:1200]]))
    first = F.forecast_trace(demand, 480 * 60, methods=("arima", "naive"))
    assert not first.metrics["cached"].any()

    def refuse(*args, **kwargs):
        raise AssertionError("refitted")
    monkeypatch.setattr(F, "_fit_arima", refuse)
    again = F.forecast_trace(demand, 480 * 60, methods=("arima", "naive"))
    assert again.table.equals(first.table)
    arima = pl.col("method") == "arima"
    assert again.metrics.filter(arima)["cached"].all()
    assert again.metrics.drop("cached").equals(first.metrics.drop("cached"))
    with pytest.raises(AssertionError, match="refitted"):   # another option, or no cache: a new fit
        F.forecast_trace(demand, 480 * 60, methods=("arima",), interval=0.8)
    with pytest.raises(AssertionError, match="refitted"):
        F.forecast_trace(demand, 480 * 60, methods=("arima",), cache=False)


def test_window_and_peak():
    y = _synthetic(4, days=1)[:360]
    fc = F.forecast_trace(F.Demand((("A", "r"),), np.arange(360), y[None]), 7200, cache=False)
    w = F.forecast_window(fc.table, 10800)
    assert w["time"].to_list() == list(range(10800 + 1200, 10800 + 3600, 60)) and (w["issued"] == 10800).all()
    assert F.peak_demand(fc.table, 10800) == {("A", "r"): w["predicted"].max()}
    assert F.forecast_window(fc.table, 3600).is_empty()      # nothing issued before the training end


# ---------------------------------------------------------------------------------------------------------------
# CLI

@pytest.fixture(scope="module")
def gen_trace(tmp_path_factory):
    """26 hours, two models x two first regions, 10% dev: the naive forecaster has a yesterday."""
    out = tmp_path_factory.mktemp("fc") / "t.parquet"
    ok(invoke("trace", "gen", "--sizes", "uniform:50,150,1,10", "--rate", 0.3, "--duration", 26 * 3600,
              "--profile", "diurnal", "--model", "A=0.5,B=0.5", "--region", "westus=0.5,eastus=0.5", "--regions",
              "westus,eastus", "--workload", "prod=0.9,dev=0.1", "--seed", 1, "--out", out))
    return out


def test_cli_end_to_end(gen_trace, tmp_path):
    out = tmp_path / "f.parquet"
    r = ok(invoke("forecast", gen_trace, "--train-until", 25 * 3600, "--out", out, "--quiet"))
    assert "| mape" in r.stdout and "metrics:" in r.stdout
    t = F.load_forecasts(out)
    m = pl.read_parquet(tmp_path / "f.metrics.parquet")
    assert t.columns == list(F.COLUMNS)
    assert m.height == 4 * 2 + 2 and set(m["method"]) == {"arima", "naive"}
    fut = t.filter(pl.col("method") != "observed")
    assert fut["minute"].min() == 1500 and (fut["issued"] == 90000).all() and (fut["time"] == 60 * fut["minute"]).all()
    assert fut["lead"].to_list() == [x - 1500 for x in fut["minute"].to_list()]
    obs = t.filter(pl.col("method") == "observed")
    naive = fut.filter(pl.col("method") == "naive").join(
        obs.select("model", "region", pl.col("minute") + 1440, pl.col("observed").alias("yesterday")),
        on=["model", "region", "minute"])
    assert naive.height == 4 * 60 and (naive["predicted"] == naive["yesterday"]).all()
    assert m.filter(pl.col("method") == "arima")["mape"].is_finite().all()
    r = ok(invoke("forecast", gen_trace, "--train-until", 25 * 3600, "--out", out, "--method", "arima", "--quiet"))
    assert F.load_forecasts(out).filter(pl.col("method") == "arima").equals(t.filter(pl.col("method") == "arima"))
    assert pl.read_parquet(tmp_path / "f.metrics.parquet")["cached"].all()


@pytest.mark.parametrize("args, needles", [
    (["--train-until", 7200], ["--train-until", "not before the end"]),
    (["--train-until", 90], ["--train-until", "multiple of 60"]),
    (["--train-until", 1800, "--order", "3,1"], ["--order", "p,d,q"]),
    (["--train-until", 1800, "--order", "a,b,c"], ["--order", "p,d,q"]),
    (["--train-until", 1800, "--seasonal-order", "1,0,0,1440"], ["--seasonal-order", "states"]),
    (["--train-until", 1800, "--interval", 1.5], ["--interval"]),
    (["--train-until", 1800, "--out", "f.csv"], ["--out", "format"]),
    (["--train-until", 600], ["--train-until", "at least 60 minutes"]),
])
def test_cli_bad_input(tmp_path, args, needles):
    rows = [(i, 30.0 * i, 10 + i % 7, 1, "A", "prod") for i in range(120)]   # one hour of arrivals
    trace = _csv(tmp_path / "t.csv", "request_id,arrival_timestamp,prompt_size,token_size,model,workload", rows)
    out = ["--out", tmp_path / "f.parquet"] if "--out" not in args else []
    if "--out" in args:
        args = [tmp_path / a if a == "f.csv" else a for a in args]
    assert_input_error(invoke("forecast", trace, *args, *out), *needles)
    assert not (tmp_path / "f.parquet").exists()
