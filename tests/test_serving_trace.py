"""Multi-region, multi-model serving traces (SageServe): the serving columns of trace files (``Trace.serving``),
their generation (``sweepsim trace gen`` / ``[trace]`` keys workload, sla, region, regions, batch_job_size, the
diurnal profile) and the annotations of imported Azure traces. Small files in tmp_path; statistical checks use
fixed seeds (deterministic) with tolerances of 4 standard deviations.
"""
import math
import tomllib

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sweepsim.workload.cache as tcache
import sweepsim.workload.files as tfiles
import sweepsim.workload.sampling as tsample
import sweepsim.workload.spec as tspec
from sweepsim.errors import InputError
from sweepsim.workload.trace import WORKLOAD_CLASSES, Serving, load_trace
from tests.cli_helpers import assert_input_error, invoke, ok

from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
CODE = PROJECT / "traces" / "azure2023" / "azure_llm_2023_code.csv"
BASE = "request_id,arrival_timestamp,prompt_size,token_size"


@pytest.fixture(autouse=True)
def trace_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(tcache.CACHE_ENV, str(tmp_path / "cache"))


def csv(tmp_path, header, *rows, name="t.csv"):
    path = tmp_path / name
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def parquet(tmp_path, cols, name="t.parquet"):
    n = len(next(iter(cols.values())))
    base = {"request_id": np.arange(n), "arrival_timestamp": np.arange(n, dtype=float), "prompt_size": np.full(n, 10),
            "token_size": np.full(n, 5)}
    path = tmp_path / name
    pq.write_table(pa.table({**base, **cols}), path)
    return path


def load_error(path, column, *needles):
    with pytest.raises(InputError) as e:
        load_trace(path)
    msg = str(e.value)
    assert e.value.field == column, msg
    assert "\n" not in msg and str(path) in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def gen(tmp_path, *args, out="t.parquet"):
    path = tmp_path / out
    ok(invoke("trace", "gen", *args, "--out", path))
    return path


# ------------------------------------------------------------------------------------------ trace files


ALL = ["0,0.0,10,5,A,prod,-1,10,\"westus,eastus,centralus\"",
       "1,0.5,10,5,B,prod,7,3600,eastus;westus",
       "2,1.0,10,5,A,dev,-1,,centralus westus eastus",
       "3,1.5,10,5,A,batch,,86400,\"westus,eastus,centralus\"",
       "4,2.0,10,5,,,-1,-1,"]


def check_all(s: Serving):
    assert s.model_names == ("", "A", "B")
    assert s.model.dtype == np.int32 and s.model.tolist() == [1, 2, 1, 1, 0]
    assert s.workload.dtype == np.int8 and s.workload.tolist() == [0, 0, 1, 0, 0]
    assert s.batch_id.dtype == np.int64 and s.batch_id.tolist() == [-1, 7, -1, 0, -1]  # "batch" without id: job 0
    assert s.sla.dtype == np.float64
    np.testing.assert_array_equal(s.sla, [10, 3600, np.nan, 86400, np.nan])               # empty and <= 0: no SLA
    assert s.region_orders == ((), ("centralus", "westus", "eastus"), ("eastus", "westus"),
                               ("westus", "eastus", "centralus"))
    assert s.regions.dtype == np.int32 and s.regions.tolist() == [3, 2, 1, 3, 0]
    for k in ("model", "workload", "batch_id", "sla", "regions"):   # owned arrays, as the kernels take them
        a = getattr(s, k)
        assert a.flags.writeable and a.flags.c_contiguous and len(a) == len(s) == 5, k
    rc = s.request_class()
    assert rc.dtype == np.int8 and rc.tolist() == [0, 1, 2, 1, 0]
    assert [WORKLOAD_CLASSES[c] for c in rc] == ["interactive", "batch", "dev", "batch", "interactive"]


def test_csv_and_parquet_round_trip_with_every_serving_column(tmp_path):
    path = csv(tmp_path, BASE + ",model,workload,batch_id,sla,regions", *ALL)
    tr = load_trace(path)
    check_all(tr.serving)
    # annotations stay as they are in the file
    assert tr.annotations["workload"].tolist() == ["prod", "prod", "dev", "batch", None]
    assert tr.annotations["model"].tolist() == ["A", "B", "A", "A", None]
    # the same table as Parquet (plain strings, then dictionary-encoded as sweepsim writes it)
    t = pl.read_csv(path, schema_overrides={"model": pl.String, "workload": pl.String, "regions": pl.String}).to_arrow()
    for name, table in (("plain.parquet", t),
                        ("dict.parquet", t.set_column(t.column_names.index("regions"), "regions",
                                                      t["regions"].dictionary_encode()))):
        tfiles.write_trace(table, tmp_path / name)
        check_all(load_trace(tmp_path / name).serving)
    # a plain trace has no serving columns
    plain = csv(tmp_path, BASE, "0,0.0,10,5", name="plain.csv")
    assert load_trace(plain).serving is None


def test_sageserve_columns_aliases_and_digit_regions(tmp_path):
    header = ("request_id,batch_id,client_tenant,request_type,scenario,sla,utility,regions,model_type,workload_type,"
              "application_id,arrival_timestamp,batch_size,prompt_size,token_size")
    path = csv(tmp_path, header,
               "0,-1,0,2,EnterpriseSydney,10,3,012,A,prod,0,0.5,1,10,5",     # unquoted: the leading zero survives
               "1,3,0,2,EnterpriseSydney,86400,1,201,B,prod,0,1.0,1,10,5",
               "2,-1,0,2,EnterpriseSydney,-1,0,120,A,dev,0,1.5,1,10,5")
    s = load_trace(path).serving
    assert s.model_names == ("A", "B") and s.model.tolist() == [0, 1, 0]
    assert s.workload.tolist() == [0, 0, 1] and s.batch_id.tolist() == [-1, 3, -1]
    assert s.region_orders == (("0", "1", "2"), ("1", "2", "0"), ("2", "0", "1"))
    assert s.regions.tolist() == [0, 2, 1]
    np.testing.assert_array_equal(s.sla, [10, 86400, np.nan])
    assert s.request_class().tolist() == [0, 1, 2]
    # a canonical column and its alias at once: refused
    both = csv(tmp_path, BASE + ",model,model_type", "0,0.0,10,5,A,B", name="both.csv")
    load_error(both, "model_type", "model", "keep one")


def test_defaults_for_missing_serving_columns(tmp_path):
    s = load_trace(csv(tmp_path, BASE + ",sla", "0,0.0,10,5,10", "1,1.0,10,5,")).serving
    assert s.model_names == ("",) and s.model.tolist() == [0, 0]
    assert s.workload.tolist() == [0, 0] and s.batch_id.tolist() == [-1, -1]
    np.testing.assert_array_equal(s.sla, [10, np.nan])
    assert s.region_orders == ((),) and s.regions.tolist() == [0, 0]
    assert s.request_class().tolist() == [0, 0]
    # without regions, the single region column gives one-region orders
    s = load_trace(csv(tmp_path, BASE + ",region,workload", "0,0.0,10,5,eastus,batch", "1,1.0,10,5,,prod",
                       name="r.csv")).serving
    assert s.region_orders == ((), ("eastus",)) and s.regions.tolist() == [1, 0]
    assert s.batch_id.tolist() == [0, -1] and s.request_class().tolist() == [1, 0]
    # take: a subset with the same names and orders
    sub = s.take(np.array([True, False]))
    assert sub.region_orders == s.region_orders and sub.regions.tolist() == [1] and len(sub) == 1


@pytest.mark.parametrize("header, row, column, needles", [
    ("workload", "interactive", "workload", ["'interactive'", "allowed: prod, batch, dev"]),
    ("workload_type", "Prod!", "workload_type", ["'Prod!'", "allowed"]),
    ("batch_id", "-2", "batch_id", [">= -1", "-2"]),
    ("batch_id", "1.5", "batch_id", ["whole numbers", "1.5"]),
    ("batch_id", "job7", "batch_id", ["whole numbers", "string"]),
    ("sla", "soon", "sla", ["numeric seconds", "string"]),
    ("sla", "inf", "sla", ["finite seconds"]),
    ("regions", "\"westus,,eastus\"", "regions", ["empty region name", "'westus,,eastus'", "row 1"]),
    ("regions", "\"westus,eastus,westus\"", "regions", ["'westus' appears more than once"]),
    ("regions", "001", "regions", ["'0' appears more than once"]),
])
def test_serving_column_errors(tmp_path, header, row, column, needles):
    path = csv(tmp_path, BASE + "," + header, "0,0.0,10,5," + row)
    load_error(path, column, *needles)


def test_numeric_region_orders_are_refused(tmp_path):
    path = parquet(tmp_path, {"regions": [12, 201]})
    load_error(path, "regions", "lost its leading zero", "quote")
    path = parquet(tmp_path, {"regions": [True, False]}, name="b.parquet")
    load_error(path, "regions", "must be text")


# ---------------------------------------------------------------------------------------------- generator


SERVING_OPTS = ["--workload", "prod=0.7,batch=0.1,dev=0.2", "--sla", "prod=10,dev=86400", "--batch-job-size", 16,
                "--model", "A=0.4,B=0.3,C=0.2,D=0.1", "--region", "westus=0.5,eastus=0.3,centralus=0.2",
                "--regions", "centralus,westus,eastus"]


def test_generator_serving_columns(tmp_path):
    n = 20_000
    base = ["--sizes", "azure-conv", "--rate", 50, "--count", n, "--seed", 4]
    path = gen(tmp_path, *base, *SERVING_OPTS)
    t = pl.read_parquet(path)
    assert {"workload", "model", "region", "batch_id", "sla", "regions"} <= set(t.columns)
    assert set(t["workload"].cast(pl.String).unique()) == {"prod", "batch", "dev"}
    s = load_trace(path).serving
    cls = s.request_class()

    def near(got, p):
        assert abs(got - p * n) < 4 * math.sqrt(n * p * (1 - p)), (got, p * n)

    for c, p in enumerate((0.7, 0.1, 0.2)):
        near(np.count_nonzero(cls == c), p)
    assert s.model_names == ("A", "B", "C", "D")
    for m, p in enumerate((0.4, 0.3, 0.2, 0.1)):
        near(np.count_nonzero(s.model == m), p)
    # the first region follows the mix, the rest the order of --regions
    first = np.array([s.region_orders[k][0] for k in range(len(s.region_orders))])[s.regions]
    for r, p in (("westus", 0.5), ("eastus", 0.3), ("centralus", 0.2)):
        near(np.count_nonzero(first == r), p)
    assert set(s.region_orders) == {("westus", "centralus", "eastus"), ("eastus", "centralus", "westus"),
                                    ("centralus", "westus", "eastus")}
    assert (t["region"].cast(pl.String).to_numpy() == first).all()
    # per-class SLAs (batch left out: no SLA)
    assert np.all(s.sla[cls == 0] == 10) and np.all(s.sla[cls == 2] == 86400) and np.all(np.isnan(s.sla[cls == 1]))
    # batch jobs: consecutive batch requests in groups of 16, numbered 0, 1, 2, ...; dev and interactive: -1
    b = s.batch_id[cls == 1]
    assert b.tolist() == (np.arange(len(b)) // 16).tolist()
    assert np.all(s.batch_id[cls != 1] == -1)
    assert np.all(np.diff(s.batch_id[s.batch_id >= 0]) >= 0)
    # the in-memory trace has the same serving columns as the written file
    spec = tspec.parse_spec({"sizes": "azure-conv", "rate": 50, "count": n, "seed": 4,
                             "workload": {"prod": 0.7, "batch": 0.1, "dev": 0.2}, "sla": {"prod": 10, "dev": 86400},
                             "batch_job_size": 16, "model": {"A": 0.4, "B": 0.3, "C": 0.2, "D": 0.1},
                             "region": {"westus": 0.5, "eastus": 0.3, "centralus": 0.2},
                             "regions": ["centralus", "westus", "eastus"]})
    mem = tsample.generate(spec).serving
    for k in ("model", "workload", "batch_id", "regions"):
        np.testing.assert_array_equal(getattr(mem, k), getattr(s, k))
    np.testing.assert_array_equal(mem.sla, s.sla)
    assert mem.region_orders == s.region_orders and mem.model_names == s.model_names
    # CSV: the same serving columns
    c = load_trace(gen(tmp_path, *base, *SERVING_OPTS, out="t.csv")).serving
    assert c.region_orders == s.region_orders
    for k in ("model", "workload", "batch_id", "regions"):
        np.testing.assert_array_equal(getattr(c, k), getattr(s, k))


def test_serving_keys_leave_requests_unchanged(tmp_path):
    base = ["--sizes", "azure-code", "--rate", 20, "--duration", 600, "--seed", 9, "--cv", 2]
    plain = pl.read_parquet(gen(tmp_path, *base, out="plain.parquet"))
    served = pl.read_parquet(gen(tmp_path, *base, *SERVING_OPTS))
    for c in tfiles.TRACE_COLUMNS:
        assert plain[c].to_list() == served[c].to_list(), c
    # the old annotations draw as before: adding dev/sla/regions keeps the model draws of the same keys
    a = pl.read_parquet(gen(tmp_path, *base, "--workload", "prod=0.7,batch=0.3", "--model", "A=0.5,B=0.5",
                            out="a.parquet"))
    b = pl.read_parquet(gen(tmp_path, *base, "--workload", "prod=0.7,batch=0.3", "--model", "A=0.5,B=0.5",
                            "--sla", "30", "--regions", "x,y", out="b.parquet"))
    for c in ("workload", "model"):
        assert a[c].cast(pl.String).to_list() == b[c].cast(pl.String).to_list()


def test_regions_alone_and_per_application_batch_jobs(tmp_path):
    toml = tomllib.loads("""
        [trace]
        duration = 200
        seed = 3
        regions = ["westus", "eastus", "centralus"]
        workload = {prod = 0.5, batch = 0.5}
        batch_job_size = 8
        [[trace.apps]]
        sizes = "fixed:100,10"
        rate = 5
        [[trace.apps]]
        sizes = "fixed:200,20"
        rate = 5
        regions = "eastus;westus"
        sla = 60
        """)
    spec = tspec.parse_spec(toml["trace"])
    path = tcache.resolve_spec(spec)
    tr = load_trace(path)
    s = tr.serving
    one = tr.application_id == 1
    assert s.region_orders == (("eastus", "westus"), ("westus", "eastus", "centralus"))
    assert np.all(s.regions[~one] == 1) and np.all(s.regions[one] == 0)
    np.testing.assert_array_equal(s.sla[one], 60)
    assert np.all(np.isnan(s.sla[~one]))
    # job numbers are unique across applications, each job within one application
    jobs = s.batch_id[s.batch_id >= 0]
    apps_of = {j: set(tr.application_id[s.batch_id == j].tolist()) for j in np.unique(jobs).tolist()}
    assert all(len(a) == 1 for a in apps_of.values())
    assert sorted(apps_of) == list(range(len(apps_of)))
    sizes = np.bincount(jobs)
    assert sizes.max() == 8
    # the spec hash covers the new keys
    h = tcache.spec_hash(spec)
    for key, value in (("batch_job_size", 9), ("sla", 61), ("regions", ["westus", "eastus"])):
        other = tspec.parse_spec({**toml["trace"], key: value})
        assert tcache.spec_hash(other) != h, key


def test_diurnal_profile(tmp_path):
    rate, day = 2.0, 86400
    path = gen(tmp_path, "--sizes", "fixed:10,10", "--rate", rate, "--duration", day, "--profile", "diurnal",
               "--seed", 1)
    arr = load_trace(path).arrival
    n = len(arr)
    assert abs(n - rate * day) < 4 * math.sqrt(rate * day)     # rate is the mean over the day
    hours = np.bincount((arr // 3600).astype(int), minlength=24)
    # peak at 14:00 (defaults), trough 12 h later at 0.3 x the peak
    assert hours[13] + hours[14] > 3 * (hours[1] + hours[2])
    ratio = (hours[1] + hours[2]) / (hours[13] + hours[14])
    assert 0.25 < ratio < 0.38, ratio
    expected = tsample.diurnal_rate(np.arange(24) * 3600 + 1800, 14, 0.3, day)
    expected = expected / expected.mean() * rate * 3600
    assert np.all(np.abs(hours - expected) < 5 * np.sqrt(expected)), (hours, expected)
    # other parameters; count mode beyond one period repeats the profile
    spec = tspec.parse_spec({"sizes": "fixed:1,1", "rate": 10.0, "count": 60_000, "seed": 2, "profile": "diurnal",
                             "peak_hour": 0.5, "trough_ratio": 0.0, "period": 3600})
    a = tsample.generate(spec).arrival
    assert np.all(np.diff(a) >= 0) and a[-1] > 3600
    lam = tsample._intensity(spec.apps[0], None)
    assert abs(lam.cumulative(3600.0) - 36_000) < 1e-6 * 36_000           # mean rate 10/s over each period
    assert abs(lam.cumulative(float(a[-1])) - 60_000) < 4 * math.sqrt(60_000)
    per = np.bincount(((a % 3600) // 600).astype(int), minlength=6)   # 10-minute bins of the hour
    assert per[2] + per[3] > 3 * (per[0] + per[5])                    # peak at 0:30, rate 0 at 0:00 and 1:00
    # the spec records the resolved parameters; defaults equal explicit values
    d = tspec.parse_spec({"sizes": "fixed:1,1", "rate": 1, "duration": 10, "profile": "diurnal"})
    e = tspec.parse_spec({"sizes": "fixed:1,1", "rate": 1, "duration": 10, "profile": "diurnal", "peak_hour": 14,
                          "trough_ratio": 0.3, "period": 86400})
    assert d == e and d.apps[0].diurnal and d.apps[0].profile is None
    assert tcache.spec_hash(d) != tcache.spec_hash(tspec.parse_spec({**{"sizes": "fixed:1,1", "rate": 1,
                                                                         "duration": 10}}))


@pytest.mark.parametrize("args, needles", [
    (["--workload", "prod=0.9,batch=0.05"], ["--workload", "sum to 1"]),
    (["--workload", "prod=0.9,interactive=0.1"], ["--workload", "'interactive'", "allowed: prod, batch, dev"]),
    (["--sla", "batch=0"], ["--sla", "> 0"]),
    (["--sla", "online=5"], ["--sla", "'online'"]),
    (["--batch-job-size", 0], ["--batch-job-size", ">= 1"]),
    (["--region", "westus=0.5,eastus=0.5", "--regions", "westus,centralus"], ["--region", "'eastus'", "not in"]),
    (["--regions", "westus,,eastus"], ["--regions", "empty region name"]),
    (["--regions", "westus,eastus,westus"], ["--regions", "'westus'", "twice"]),
    (["--peak-hour", 3], ["--peak-hour", "diurnal"]),
    (["--profile", "diurnal", "--trough-ratio", 2], ["--trough-ratio", "0 to 1"]),
    (["--profile", "diurnal", "--peak-hour", 30], ["--peak-hour", "within the period"]),
    (["--profile", "diurnal", "--period", 0], ["--period", "> 0"]),
])
def test_generator_option_errors(tmp_path, args, needles):
    assert_input_error(invoke("trace", "gen", "--sizes", "fixed:1,1", "--rate", 1, "--count", 5, *args, "--out",
                              tmp_path / "o.csv"), *needles)
    assert not (tmp_path / "o.csv").exists()


def test_diurnal_needs_a_rate(tmp_path):
    assert_input_error(invoke("trace", "gen", "--sizes", "fixed:1,1", "--count", 5, "--profile", "diurnal",
                              "--out", tmp_path / "o.csv"), "--rate", "mean rate")


# ---------------------------------------------------------------------------------------------- import


def test_azure_import_with_serving_annotations(tmp_path):
    out = tmp_path / "imp.parquet"
    ok(invoke("trace", "import", "azure", CODE, "--out", out, "--model", "A=0.4,B=0.6", "--regions",
              "westus,centralus,eastus", "--region-mix", "westus=0.5,eastus=0.5", "--workload",
              "prod=0.85,batch=0.05,dev=0.10", "--sla", "prod=10,batch=3600,dev=86400", "--seed", 5))
    tr = load_trace(out)
    s = tr.serving
    n = len(tr)
    assert n == 8819
    cls = s.request_class()
    for c, p in enumerate((0.85, 0.05, 0.10)):
        assert abs(np.count_nonzero(cls == c) - p * n) < 4 * math.sqrt(n * p * (1 - p))
    assert s.model_names == ("A", "B")
    assert abs(np.count_nonzero(s.model == 0) - 0.4 * n) < 4 * math.sqrt(n * 0.24)
    assert set(s.region_orders) == {("westus", "centralus", "eastus"), ("eastus", "westus", "centralus")}
    np.testing.assert_array_equal(s.sla, np.array([10, 3600, 86400])[cls])
    b = s.batch_id[cls == 1]
    assert b.tolist() == (np.arange(len(b)) // 128).tolist()
    # the draws are the generator's (first application, same seed)
    ann = tspec.parse_annotations({"model": "A=0.4,B=0.6", "regions": "westus,centralus,eastus",
                                   "region": "westus=0.5,eastus=0.5", "workload": "prod=0.85,batch=0.05,dev=0.10",
                                   "sla": "prod=10,batch=3600,dev=86400"})
    cols = tsample.annotation_columns(ann, n, 5)
    assert pl.read_parquet(out)["model"].cast(pl.String).to_list() == cols["model"].to_pylist()
    # requests and sizes are those of the plain import; a plain import has no serving columns
    plain = tmp_path / "plain.parquet"
    ok(invoke("trace", "import", "azure", CODE, "--out", plain))
    p = load_trace(plain)
    assert p.serving is None
    np.testing.assert_array_equal(p.arrival, tr.arrival)
    np.testing.assert_array_equal(p.prompt_size, tr.prompt_size)
    # another seed, other draws
    other = tmp_path / "other.csv"
    ok(invoke("trace", "import", "azure", CODE, "--out", other, "--model", "A=0.4,B=0.6", "--seed", 6))
    assert not np.array_equal(load_trace(other).serving.model, s.model)
    ok(invoke("trace", "import", "azure", CODE, "--out", other, "--model", "llama2-70b", "--regions", "0;1;2"))
    s = load_trace(other).serving
    assert s.model_names == ("llama2-70b",) and s.region_orders == (("0", "1", "2"),)


@pytest.mark.parametrize("args, needles", [
    (["--workload", "prod=0.85,batch=0.1"], ["--workload", "sum to 1", "0.95"]),
    (["--workload", "prod=1.2,dev=-0.2"], ["--workload", ">= 0"]),
    (["--workload", "prod=0.5,opportunistic=0.5"], ["--workload", "'opportunistic'", "allowed: prod, batch, dev"]),
    (["--model", "A=0.5,B=0.6"], ["--model", "sum to 1"]),
    (["--region-mix", "westus=0.5,eastus=0.5", "--regions", "westus,centralus"], ["--region-mix", "'eastus'"]),
    (["--region-mix", "westus=0.7,eastus=0.2"], ["--region-mix", "sum to 1"]),
    (["--sla", "interactive=10"], ["--sla", "'interactive'"]),
    (["--seed", -1], ["--seed"]),
])
def test_azure_import_annotation_errors(tmp_path, args, needles):
    out = tmp_path / "o.csv"
    assert_input_error(invoke("trace", "import", "azure", CODE, "--out", out, *args), *needles)
    assert not out.exists()
