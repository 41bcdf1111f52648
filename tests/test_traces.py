"""Traces (issue 6): Azure import, ``sweepsim trace gen`` generators, generated traces in run configs.

Everything runs in-process through click's CliRunner; generated traces are cached in a temporary directory
(``SWEEPSIM_TRACE_CACHE``). Statistical checks use fixed seeds, so they are deterministic; their tolerances
are those of the issue (Poisson rate within 3 sigma over 100k arrivals, empirical quantiles within 2%,
bursty cv within 10%).
"""
import math
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.csv as pacsv
import pytest

import sweepsim
import sweepsim.workload.cache as tcache
import sweepsim.workload.files as tfiles
import sweepsim.workload.sampling as tsample
import sweepsim.workload.spec as tspec
from tests.cli_helpers import assert_input_error, invoke, ok
from sweepsim.config.run import load_config
from sweepsim.workload.trace import load_trace

PROJECT = Path(sweepsim.__file__).resolve().parent.parent
CODE = PROJECT / "traces" / "azure2023" / "azure_llm_2023_code.csv"
CONV = PROJECT / "traces" / "azure2023" / "azure_llm_2023_conv.csv"
AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
TRACE_HEADER = "request_id,arrival_timestamp,prompt_size,token_size\n"


@pytest.fixture(autouse=True)
def trace_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(tcache.CACHE_ENV, str(cache))
    return cache


def files(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def gen(tmp_path, *args, out="t.parquet"):
    """Run ``sweepsim trace gen ARGS --out tmp/out``; return the output's columns (polars)."""
    path = tmp_path / out
    ok(invoke("trace", "gen", *args, "--out", path))
    return pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)


def azure_source(path):
    t = pacsv.read_csv(path)
    ts = t["TIMESTAMP"].to_numpy().astype("datetime64[ns]").astype(np.int64)
    return ((ts - ts[0]) / 1e9, t["ContextTokens"].to_numpy().astype(np.int64),
            t["GeneratedTokens"].to_numpy().astype(np.int64))


# --------------------------------------------------------------------------------------------- import


@pytest.mark.parametrize("src, rows", [(CODE, 8819), (CONV, 19366)], ids=["code", "conv"])
@pytest.mark.parametrize("ext", [".parquet", ".csv"])
def test_import_shipped_azure_round_trip(tmp_path, src, rows, ext):
    out = tmp_path / f"imported{ext}"
    res = ok(invoke("trace", "import", "azure", src, "--out", out))
    assert f"{rows} requests" in res.stdout
    tr = load_trace(out)
    arrival, prompt, token = azure_source(src)
    assert len(tr) == rows
    assert tr.arrival[0] == 0.0
    assert np.all(np.diff(tr.arrival) >= 0)
    np.testing.assert_array_equal(tr.request_id, np.arange(rows))
    np.testing.assert_array_equal(tr.application_id, 0)
    np.testing.assert_array_equal(tr.prompt_size, prompt)
    np.testing.assert_array_equal(tr.token_size, token)
    np.testing.assert_allclose(tr.arrival, arrival, rtol=0, atol=1e-9)
    cols = pl.read_parquet(out).columns if ext == ".parquet" else pl.read_csv(out).columns
    assert cols == list(tfiles.TRACE_COLUMNS)
    # the raw Azure file loads directly (schema detected by its columns) into the same trace
    raw = load_trace(src)
    for a, b in ((raw.arrival, tr.arrival), (raw.prompt_size, tr.prompt_size), (raw.token_size, tr.token_size),
                 (raw.request_id, tr.request_id)):
        np.testing.assert_array_equal(a, b)


def test_import_2024_schema_and_app_id(tmp_path):
    src = tmp_path / "az2024.csv"
    src.write_text(AZURE_HEADER + "2024-05-10 00:00:00.009930+00:00,100,5\n2024-05-10 00:00:01.5+00:00,200,7\n"
                                  "2024-05-10 00:01:00+00:00,300,9\n")
    ok(invoke("trace", "import", "azure", src, "--out", tmp_path / "o.parquet", "--app-id", 3))
    tr = load_trace(tmp_path / "o.parquet")
    np.testing.assert_allclose(tr.arrival, [0.0, 1.49007, 59.99007], rtol=0, atol=1e-9)
    assert tr.prompt_size.tolist() == [100, 200, 300] and tr.token_size.tolist() == [5, 7, 9]
    assert tr.application_id.tolist() == [3, 3, 3]


def test_import_bad_rows_are_reported_then_dropped_with_drop_bad(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text(AZURE_HEADER + "2023-11-16 18:17:03.9799600,10,5\n2023-11-16 18:17:04.1,0,5\n"
                                  "not a time,3,4\n2023-11-16 18:17:05,abc,-2\n2023-11-16 18:17:06,7,8\n")
    out = tmp_path / "o.csv"
    assert_input_error(invoke("trace", "import", "azure", src, "--out", out), "bad.csv", "3 bad row(s) of 5",
                       "line 3: ContextTokens='0'", "line 4: TIMESTAMP='not a time'", "--drop-bad")
    assert not out.exists()
    res = ok(invoke("trace", "import", "azure", src, "--out", out, "--drop-bad"))
    assert "dropped 3 bad row(s)" in res.stderr
    tr = load_trace(out)
    assert tr.prompt_size.tolist() == [10, 7] and tr.token_size.tolist() == [5, 8]
    np.testing.assert_allclose(tr.arrival, [0.0, 2.02004], atol=1e-9)


def test_import_unsorted_needs_sort(tmp_path):
    src = tmp_path / "unsorted.csv"
    src.write_text(AZURE_HEADER + "2023-11-16 18:17:05,10,5\n2023-11-16 18:17:04.5,3,6\n")
    assert_input_error(invoke("trace", "import", "azure", src, "--out", tmp_path / "o.csv"),
                       "TIMESTAMP", "sorted", "line 3", "--sort")
    ok(invoke("trace", "import", "azure", src, "--out", tmp_path / "o.csv", "--sort"))
    tr = load_trace(tmp_path / "o.csv")
    assert tr.arrival.tolist() == [0.0, 0.5] and tr.prompt_size.tolist() == [3, 10]


# ------------------------------------------------------------------------------------------ bad input

BAD_INPUTS = {
    # name: (file name, content, command (FILE = the file), needles)
    "run_missing_column": ("t.csv", "request_id,arrival_timestamp,token_size\n0,1.0,5\n",
                           ["run", "CONFIG", "--trace", "FILE"], ["t.csv", "prompt_size", "missing column"]),
    "run_negative_size": ("t.csv", TRACE_HEADER + "0,1.0,100,5\n1,2.0,-3,5\n",
                          ["run", "CONFIG", "--trace", "FILE"], ["prompt_size", "must be >= 1", "-3"]),
    "run_unsorted": ("t.csv", TRACE_HEADER + "0,2.0,100,5\n1,1.0,100,5\n",
                     ["run", "CONFIG", "--trace", "FILE"], ["arrival_timestamp", "sorted"]),
    "run_empty_file": ("t.csv", "", ["run", "CONFIG", "--trace", "FILE"], ["t.csv", "file is empty"]),
    "run_azure_negative": ("a.csv", AZURE_HEADER + "2023-11-16 18:17:05,10,-5\n",
                           ["run", "CONFIG", "--trace", "FILE"], ["GeneratedTokens", "1 bad row", "-5"]),
    "import_missing_column": ("a.csv", "TIMESTAMP,ContextTokens\n2023-11-16 18:17:05,10\n",
                              ["trace", "import", "azure", "FILE", "--out", "o.csv"],
                              ["GeneratedTokens", "missing column"]),
    "import_negative_size": ("a.csv", AZURE_HEADER + "2023-11-16 18:17:05,-10,5\n",
                             ["trace", "import", "azure", "FILE", "--out", "o.csv"],
                             ["ContextTokens", "1 bad row", "'-10'"]),
    "import_unsorted": ("a.csv", AZURE_HEADER + "2023-11-16 18:17:05,10,5\n2023-11-16 18:17:04,10,5\n",
                        ["trace", "import", "azure", "FILE", "--out", "o.csv"], ["TIMESTAMP", "sorted"]),
    "import_empty_file": ("a.csv", "", ["trace", "import", "azure", "FILE", "--out", "o.csv"], ["file is empty"]),
    "import_no_rows": ("a.csv", AZURE_HEADER, ["trace", "import", "azure", "FILE", "--out", "o.csv"],
                       ["no requests"]),
    "import_unknown_format": ("a.csv", AZURE_HEADER, ["trace", "import", "csv", "FILE", "--out", "o.csv"],
                              ["FORMAT", "allowed: azure"]),
    "import_bad_extension": ("a.csv", AZURE_HEADER, ["trace", "import", "azure", "FILE", "--out", "o.txt"],
                             ["--out", "allowed: .csv, .parquet"]),
    "gen_unknown_sizes": (None, None, ["trace", "gen", "--sizes", "zipf", "--rate", "1", "--count", "5", "--out",
                                       "o.csv"], ["--sizes", "'zipf'", "azure-conv", "lognormal:"]),
    "gen_bad_fixed": (None, None, ["trace", "gen", "--sizes", "fixed:10", "--rate", "1", "--count", "5", "--out",
                                   "o.csv"], ["--sizes", "2 comma-separated", "fixed:P,T"]),
    "gen_no_length": (None, None, ["trace", "gen", "--sizes", "azure-code", "--rate", "1", "--out", "o.csv"],
                      ["--duration", "count"]),
    "gen_no_rate": (None, None, ["trace", "gen", "--sizes", "azure-code", "--count", "5", "--out", "o.csv"],
                    ["--rate", "profile", "replay"]),
    "gen_negative_rate": (None, None, ["trace", "gen", "--sizes", "azure-code", "--rate", "-2", "--count", "5",
                                       "--out", "o.csv"], ["--rate", "> 0"]),
    "gen_fractions": (None, None, ["trace", "gen", "--sizes", "azure-code", "--rate", "1", "--count", "5",
                                   "--workload", "prod=0.5,batch=0.4", "--out", "o.csv"],
                      ["--workload", "sum to 1"]),
    "gen_unknown_workload": (None, None, ["trace", "gen", "--sizes", "azure-code", "--rate", "1", "--count", "5",
                                          "--workload", "interactive", "--out", "o.csv"],
                             ["--workload", "allowed: prod, batch"]),
    "gen_app_key": (None, None, ["trace", "gen", "--app", "0:azure-code:rte=5", "--count", "5", "--out", "o.csv"],
                    ["--app 0:azure-code:rte=5", "rte", "unknown key", "rate"]),
    "gen_app_syntax": (None, None, ["trace", "gen", "--app", "azure-code", "--count", "5", "--out", "o.csv"],
                       ["--app azure-code", "ID:SIZES"]),
    "gen_bad_extension": (None, None, ["trace", "gen", "--sizes", "azure-code", "--rate", "1", "--count", "5",
                                       "--out", "o.json"], ["--out", "allowed: .csv, .parquet"]),
    "gen_replay_synthetic": (None, None, ["trace", "gen", "--sizes", "fixed:1,1", "--replay", "--count", "5",
                                          "--out", "o.csv"], ["--replay", "azure-code"]),
    "gen_profile_unsorted": ("p.csv", "time,rate\n0,1\n10,2\n5,3\n",
                             ["trace", "gen", "--sizes", "azure-code", "--profile", "FILE", "--duration", "20",
                              "--out", "o.csv"], ["p.csv", "time", "strictly increasing"]),
    "gen_profile_columns": ("p.csv", "t,r\n0,1\n", ["trace", "gen", "--sizes", "azure-code", "--profile", "FILE",
                                                   "--duration", "20", "--out", "o.csv"], ["p.csv", "missing column"]),
    "gen_missing_out": (None, None, ["trace", "gen", "--sizes", "azure-code", "--rate", "1", "--count", "5"],
                        ["--out"]),
    "gen_unknown_option": (None, None, ["trace", "gen", "--sizes", "azure-code", "--rte", "1", "--out", "o.csv"],
                           ["--rte"]),
    "gen_bad_plot": (None, None, ["trace", "gen", "--sizes", "azure-code", "--rate", "1", "--count", "5",
                                  "--out", "o.csv", "--plot", "p.xyz"], ["--plot", ".png"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_naming_the_problem(tmp_path, monkeypatch, case):
    name, content, cmd, needles = BAD_INPUTS[case]
    monkeypatch.chdir(tmp_path)
    if name:
        (tmp_path / name).write_text(content)
    config = tmp_path / "run.toml"
    config.write_text('model = "llama2-70b"\n[cluster]\ndgx-h100 = 1\n')
    before = files(tmp_path)
    args = [str(config) if a == "CONFIG" else name if a == "FILE" else a for a in cmd]
    assert_input_error(invoke(*args), *needles)
    assert files(tmp_path) == before  # nothing written, not even a partial file


# ------------------------------------------------------------------------------------------ generators


def test_same_seed_same_file_different_seed_different(tmp_path):
    args = ["--app", "0:azure-code:rate=5,cv=2", "--app", "1:lognormal:6,1,4,1:rate=3",
            "--workload", "prod=0.7,batch=0.3", "--slo-ttft", "prod=1,batch=30", "--duration", "300"]
    for ext in (".parquet", ".csv"):
        a = tmp_path / f"a{ext}"
        b = tmp_path / f"b{ext}"
        c = tmp_path / f"c{ext}"
        ok(invoke("trace", "gen", *args, "--seed", 7, "--out", a))
        ok(invoke("trace", "gen", *args, "--seed", 7, "--out", b))
        ok(invoke("trace", "gen", *args, "--seed", 8, "--out", c))
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()


def test_poisson_rate_within_3_sigma(tmp_path):
    rate = 50.0
    t = gen(tmp_path, "--sizes", "azure-conv", "--rate", rate, "--duration", 2000, "--seed", 3)
    n = t.height
    assert abs(n - 100_000) < 3 * math.sqrt(100_000), n
    arr = t["arrival_timestamp"].to_numpy()
    assert np.all(np.diff(arr) >= 0) and arr[0] > 0 and arr[-1] < 2000
    assert t["request_id"].to_list() == list(range(n))
    assert set(t["request_type"].unique()) == {2} and set(t["batch_size"].unique()) == {1}
    # count mode: mean gap within 3 sigma of 1/rate, exponential gaps (cv 1)
    t = gen(tmp_path, "--sizes", "azure-conv", "--rate", rate, "--count", 100_000, "--seed", 4)
    assert t.height == 100_000
    gaps = np.diff(np.concatenate(([0.0], t["arrival_timestamp"].to_numpy())))
    assert abs(gaps.mean() - 1 / rate) < 3 * (1 / rate) / math.sqrt(len(gaps))
    assert abs(gaps.std() / gaps.mean() - 1.0) < 0.02


@pytest.mark.parametrize("src", [CODE, CONV], ids=["code", "conv"])
@pytest.mark.parametrize("independent", [False, True], ids=["joint", "independent"])
def test_empirical_sizes_reproduce_source_quantiles(tmp_path, src, independent):
    name = "azure-code" if src == CODE else "azure-conv"
    t = gen(tmp_path, "--sizes", name, "--rate", 100, "--count", 200_000, "--seed", 5,
            *(["--independent"] if independent else []))
    _, prompt, token = azure_source(src)
    for col, ref in (("prompt_size", prompt), ("token_size", token)):
        got = np.percentile(t[col].to_numpy(), [10, 50, 90])
        want = np.percentile(ref, [10, 50, 90])
        np.testing.assert_allclose(got, want, rtol=0.02, err_msg=f"{name} {col}")
    pairs = set(zip(prompt.tolist(), token.tolist()))
    drawn = list(zip(t["prompt_size"].to_list()[:5000], t["token_size"].to_list()[:5000]))
    inside = np.mean([p in pairs for p in drawn])
    corr_src = np.corrcoef(np.log(prompt), np.log(token))[0, 1]
    corr = np.corrcoef(np.log(t["prompt_size"].to_numpy()), np.log(t["token_size"].to_numpy()))[0, 1]
    if independent:
        assert inside < 0.9 and abs(corr) < 0.02
    else:  # every request is one of the source's (prompt, output) pairs: the joint distribution is kept
        assert inside == 1.0 and abs(corr - corr_src) < 0.02


@pytest.mark.parametrize("cv", [3.0, 0.5])
def test_bursty_gamma_cv_within_10_percent(tmp_path, cv):
    rate = 40.0
    t = gen(tmp_path, "--sizes", "azure-code", "--rate", rate, "--cv", cv, "--count", 100_000, "--seed", 6)
    gaps = np.diff(np.concatenate(([0.0], t["arrival_timestamp"].to_numpy())))
    assert abs(gaps.std() / gaps.mean() - cv) < 0.1 * cv
    assert abs(gaps.mean() - 1 / rate) < 3 * cv * (1 / rate) / math.sqrt(len(gaps))


def test_rate_profile_step_and_linear(tmp_path):
    prof = tmp_path / "profile.csv"
    prof.write_text("time,rate\n0,100\n100,400\n200,0\n300,200\n")
    t = gen(tmp_path, "--sizes", "fixed:100,10", "--profile", prof, "--duration", 400, "--seed", 1)
    counts = np.histogram(t["arrival_timestamp"].to_numpy(), bins=[0, 100, 200, 300, 400])[0]
    for got, want in zip(counts, [10_000, 40_000, 0, 20_000]):
        assert abs(got - want) <= 3 * math.sqrt(max(want, 1)), counts
    # linear interpolation, rescaled to a mean of 50 req/s: the profile's mean over [0, 400] is 187.5 req/s
    t = gen(tmp_path, "--sizes", "fixed:100,10", "--profile", prof, "--profile-interp", "linear", "--rate", 50,
            "--duration", 400, "--seed", 2)
    assert abs(t.height - 20_000) < 3 * math.sqrt(20_000)
    counts = np.histogram(t["arrival_timestamp"].to_numpy(), bins=[0, 100, 200, 300, 400])[0]
    f = 50 / 187.5
    for got, want in zip(counts, np.array([25_000, 20_000, 10_000, 20_000]) * f):
        assert abs(got - want) <= 3 * math.sqrt(want), counts
    # count mode through a profile whose rate ends at 0 cannot finish
    prof.write_text("time,rate\n0,10\n10,0\n")
    assert_input_error(invoke("trace", "gen", "--sizes", "fixed:1,1", "--profile", prof, "--count", 10_000,
                              "--out", tmp_path / "x.csv"), "ends at 0", "duration")


def test_replay_scales_real_timestamps(tmp_path):
    arrival, prompt, token = azure_source(CODE)
    span = arrival[-1]
    t = gen(tmp_path, "--sizes", "azure-code", "--replay", "--scale", 4, "--duration", span / 4 + 1e-6)
    assert t.height == len(arrival)
    np.testing.assert_allclose(t["arrival_timestamp"].to_numpy(), arrival / 4, rtol=1e-12, atol=1e-9)
    assert t["prompt_size"].to_list() == prompt.tolist() and t["token_size"].to_list() == token.tolist()
    # --rate: compress to a target mean rate; more requests than the trace: replayed back to back
    n = len(arrival)
    t = gen(tmp_path, "--sizes", "azure-code", "--replay", "--rate", 100, "--count", 2 * n + 5)
    arr = t["arrival_timestamp"].to_numpy()
    assert t.height == 2 * n + 5 and np.all(np.diff(arr) > 0)
    assert abs((n - 1) / arr[n - 1] - 100) < 1e-6
    assert t["prompt_size"].to_list()[n:2 * n] == prompt.tolist()


def test_multiple_applications_merged_in_arrival_order(tmp_path):
    t = gen(tmp_path, "--app", "0:azure-code:rate=5", "--app", "1:azure-conv:rate=10", "--duration", 2000,
            "--seed", 9)
    arr = t["arrival_timestamp"].to_numpy()
    assert np.all(np.diff(arr) >= 0)
    assert t["request_id"].to_list() == list(range(t.height))
    for app, rate, src in ((0, 5, CODE), (1, 10, CONV)):
        sub = t.filter(pl.col("application_id") == app)
        assert abs(sub.height - rate * 2000) < 3 * math.sqrt(rate * 2000)
        _, prompt, token = azure_source(src)
        pairs = set(zip(prompt.tolist(), token.tolist()))
        assert all(p in pairs for p in zip(sub["prompt_size"].to_list(), sub["token_size"].to_list()))
    # application 0 alone is the same process as a single-application trace with the same seed
    solo = gen(tmp_path, "--sizes", "azure-code", "--rate", 5, "--duration", 2000, "--seed", 9, out="solo.parquet")
    np.testing.assert_array_equal(t.filter(pl.col("application_id") == 0)["arrival_timestamp"].to_numpy(),
                                  solo["arrival_timestamp"].to_numpy())


def test_multi_app_count_mode_draws_only_each_share(monkeypatch):
    spec = tspec.parse_spec({"count": 50_000, "seed": 2, "workload": "prod=0.5,batch=0.5",
                                "apps": [{"sizes": "azure-code", "rate": 30.0, "cv": 2.0},
                                         {"sizes": "fixed:10,10", "rate": 10.0}]})
    caps = tsample._caps(spec)
    assert all(c < 50_000 for c in caps) and sum(caps) < 65_000
    fast = tsample.generate_columns(spec)
    again = tsample.generate_columns(spec)
    assert all(np.array_equal(np.asarray(fast[k]), np.asarray(again[k])) for k in fast)
    monkeypatch.setattr(tsample, "_caps", lambda s: [s.count] * len(s.apps))
    full = tsample.generate_columns(spec)
    assert len(fast["arrival_timestamp"]) == 50_000
    # the first 50k merged arrivals are those of full draws (arrival gaps are drawn first, so a shorter draw is
    # a prefix); the sizes come later in each application's stream, so they differ but follow the same law
    for k in ("request_id", "application_id", "arrival_timestamp", "workload"):
        assert np.array_equal(np.asarray(fast[k]), np.asarray(full[k])), k
    assert np.all(fast["prompt_size"][fast["application_id"] == 1] == 10)
    # a share too short for the first 50k merged arrivals: everything is drawn again in full
    monkeypatch.setattr(tsample, "_caps", lambda s: [100, s.count])
    short = tsample.generate_columns(spec)
    assert all(np.array_equal(np.asarray(short[k]), np.asarray(full[k])) for k in full)


def test_annotations_fractions_and_slos(tmp_path):
    args = ["--sizes", "azure-conv", "--rate", 50, "--count", 40_000, "--seed", 11]
    plain = gen(tmp_path, *args, out="plain.parquet")
    t = gen(tmp_path, *args, "--workload", "prod=0.8,batch=0.2", "--slo-ttft", "prod=1,batch=60",
            "--slo-e2e", "120", "--model", "llama2-70b=0.25,bloom-176b=0.75", "--region", "eastus")
    n = t.height
    for col, value, p in (("workload", "prod", 0.8), ("model", "llama2-70b", 0.25)):
        got = (t[col] == value).sum()
        assert abs(got - p * n) < 4 * math.sqrt(n * p * (1 - p)), (col, got)
    assert set(t["region"].cast(pl.String).unique()) == {"eastus"}
    prod = t["workload"].cast(pl.String) == "prod"
    assert set(t.filter(prod)["slo_ttft"].unique()) == {1.0}
    assert set(t.filter(~prod)["slo_ttft"].unique()) == {60.0}
    assert set(t["slo_e2e"].unique()) == {120.0}
    # annotations come from their own stream: the requests are those of the plain trace
    for c in tfiles.TRACE_COLUMNS:
        assert t[c].to_list() == plain[c].to_list(), c
    tr = load_trace(tmp_path / "t.parquet")
    assert sorted(tr.annotations) == ["model", "region", "slo_e2e", "slo_ttft", "workload"]
    assert tr.annotations["workload"][:5].tolist() == t["workload"].cast(pl.String).to_list()[:5]
    # in CSV too, with empty cells where an application has no annotation
    csv = tmp_path / "t.csv"
    ok(invoke("trace", "gen", "--app", "0:azure-code:rate=5,workload=batch,slo_ttft=30", "--app",
              "1:azure-code:rate=5", "--duration", 20, "--out", csv))
    tr = load_trace(csv)
    first = tr.application_id == 0
    assert set(tr.annotations["workload"][first]) == {"batch"} and set(tr.annotations["workload"][~first]) == {None}
    assert np.all(tr.annotations["slo_ttft"][first] == 30) and np.all(np.isnan(tr.annotations["slo_ttft"][~first]))


def test_synthetic_size_distributions_and_clipping(tmp_path):
    base = ["--rate", 10, "--count", 50_000, "--seed", 1]
    t = gen(tmp_path, "--sizes", "fixed:512,64", *base)
    assert set(t["prompt_size"].unique()) == {512} and set(t["token_size"].unique()) == {64}
    t = gen(tmp_path, "--sizes", "uniform:10,20,1,3", *base)
    assert set(t["prompt_size"].unique()) == set(range(10, 21)) and set(t["token_size"].unique()) == {1, 2, 3}
    t = gen(tmp_path, "--sizes", "lognormal:6,1,4,0.5", *base)
    assert abs(np.median(t["prompt_size"].to_numpy()) / math.exp(6) - 1) < 0.02
    assert abs(np.median(t["token_size"].to_numpy()) / math.exp(4) - 1) < 0.02
    t = gen(tmp_path, "--sizes", "lognormal:6,1,4,0.5", *base, "--prompt-max", 1000, "--token-min", 50,
            "--token-max", 60)
    assert t["prompt_size"].max() == 1000 and t["prompt_size"].min() >= 1
    assert t["token_size"].min() == 50 and t["token_size"].max() == 60
    t = gen(tmp_path, "--sizes", "azure-code", *base, "--prompt-max", 4096)
    assert t["prompt_size"].max() == 4096


def _old_poisson_trace(sizes, rate, seed=0, count=None, duration=None):
    """sweepsim.workload.tsample.poisson_trace before issue 6 (frozen copy): benchmarks depend on its output."""
    rng = np.random.Generator(np.random.PCG64(seed))
    if count is None:
        count = int(rate * duration * 1.2 + 10 * np.sqrt(rate * duration) + 10)
    arrival = np.cumsum(rng.exponential(1.0 / rate, count))
    if duration is not None:
        arrival = arrival[arrival < duration]
    n = len(arrival)
    t = pacsv.read_csv(tspec.AZURE_2023[sizes])
    prompt = t["ContextTokens"].to_numpy().astype(np.int64)
    output = t["GeneratedTokens"].to_numpy().astype(np.int64)
    pick = rng.integers(0, len(prompt), n)
    return arrival, prompt[pick], output[pick]


@pytest.mark.parametrize("args", [("azure-conv", 20.0, 1, 5000, None), ("azure-conv", 70.0, 1, None, 120.0),
                                  ("azure-code", 3.5, 7, 100, 10.0), ("azure-code", 250.0, 0, None, 600.0)])
def test_poisson_trace_output_unchanged(args):
    tr = tsample.poisson_trace(*args)
    arrival, prompt, token = _old_poisson_trace(*args)
    np.testing.assert_array_equal(tr.arrival, arrival)
    np.testing.assert_array_equal(tr.prompt_size, prompt)
    np.testing.assert_array_equal(tr.token_size, token)
    np.testing.assert_array_equal(tr.request_id, np.arange(len(arrival)))
    assert tr.path == f"{args[0]}@{args[1]}"
    # a [trace] spec with the same parameters generates the same requests
    spec = tspec.parse_spec({"sizes": args[0], "rate": args[1], "seed": args[2], "count": args[3],
                                "duration": args[4]})
    np.testing.assert_array_equal(tsample.generate(spec).arrival, arrival)


def test_plot(tmp_path):
    png = tmp_path / "t.png"
    ok(invoke("trace", "gen", "--app", "0:azure-code:rate=5", "--app", "1:azure-conv:rate=10", "--duration", 60,
              "--out", tmp_path / "t.csv", "--plot", png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png2 = tmp_path / "imp.png"
    ok(invoke("trace", "import", "azure", CODE, "--out", tmp_path / "i.parquet", "--plot", png2))
    assert png2.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary files left


# ------------------------------------------------------------------------------------------ run configs

CONFIG = """name = "gen"
model = "llama2-70b"
start_state = "baseline"
scheduler = "token_jsq"
performance_model = "db"

[cluster]
dgx-h100 = 1

[trace]
{trace}
"""


def test_run_config_with_generated_trace_end_to_end(tmp_path, trace_cache):
    cfg = tmp_path / "gen.toml"
    cfg.write_text(CONFIG.format(trace='sizes = "azure-conv"\nrate = 2\nduration = 5\nseed = 0'))
    out = tmp_path / "out"
    res = ok(invoke("run", cfg, "--out", out))
    cached = list(trace_cache.glob("*.parquet"))
    assert len(cached) == 1 and len(cached[0].stem) == 32
    tr = load_trace(cached[0])
    ref = tsample.poisson_trace("azure-conv", 2.0, seed=0, duration=5.0)
    np.testing.assert_array_equal(tr.arrival, ref.arrival)
    req = pl.read_parquet(out / "requests.parquet")
    assert req.height == len(tr) > 0
    assert req["arrival"].to_list() == tr.arrival.tolist()
    assert f"{len(tr)}/{len(tr)} requests completed" in res.stdout
    spec = tfiles.spec_of(cached[0])
    assert spec["apps"][0]["sizes"] == "azure-conv" and spec["apps"][0]["rate"] == 2.0 and spec["duration"] == 5.0
    # generated once per distinct spec: loading again reuses the file; another rate makes another file
    mtime = cached[0].stat().st_mtime_ns
    assert load_config(cfg).trace == str(cached[0])
    assert cached[0].stat().st_mtime_ns == mtime
    other = load_config(cfg, ["trace.rate=3"])
    assert other.trace != str(cached[0]) and len(list(trace_cache.glob("*.parquet"))) == 1  # parsing writes nothing
    tcache.ensure_trace(other)
    assert len(list(trace_cache.glob("*.parquet"))) == 2
    # each file has its SHA-256 sidecar, and no temporary files are left
    assert sorted(p.name for p in trace_cache.iterdir()) == sorted(
        n for p in trace_cache.glob("*.parquet") for n in (p.name, p.name + ".sha256"))


def test_run_config_multi_app_spec_and_errors(tmp_path, trace_cache):
    prof = tmp_path / "profile.csv"
    prof.write_text("time,rate\n0,1\n5,3\n")
    cfg = tmp_path / "multi.toml"
    cfg.write_text(CONFIG.format(trace='duration = 10\nseed = 1\nworkload = {prod = 0.5, batch = 0.5}\n'
                                       '[[trace.apps]]\nsizes = "azure-code"\nrate = 2\n'
                                       '[[trace.apps]]\nsizes = "fixed:100,5"\nprofile = "profile.csv"\n'
                                       'workload = "batch"'))
    tr = tcache.load_run_trace(load_config(cfg))
    assert set(tr.application_id.tolist()) == {0, 1}
    assert set(tr.annotations["workload"][tr.application_id == 1]) == {"batch"}
    assert np.all(tr.prompt_size[tr.application_id == 1] == 100)
    # bad specs: one line naming the key, nothing generated
    for trace, needles in (('path = "x.csv"\nrate = 2', ["trace.rate", "not both"]),
                           ('sizes = "azure-conv"\nrte = 2\nduration = 5', ["trace.rte", "unknown key", "rate"]),
                           ('sizes = "azure-conv"\nrate = 2', ["trace.duration", "count"]),
                           ('duration = 5\n[[trace.apps]]\nsizes = "azure-code"\nrate = 1\n[[trace.apps]]\n'
                            'sizes = "nope"\nrate = 1', ["trace.apps[1].sizes", "azure-conv"]),
                           ('sizes = "azure-conv"\nrate = 2\nduration = 5\nworkload = {prod = 0.5}',
                            ["trace.workload", "sum to 1"])):
        cfg.write_text(CONFIG.format(trace=trace))
        before = files(tmp_path)
        assert_input_error(invoke("run", cfg, "--out", tmp_path / "o"), "multi.toml", *needles)
        assert files(tmp_path) == before


def test_sizes_and_replay_from_any_trace_file(tmp_path):
    src = PROJECT / "traces" / "test_trace.csv"  # 3 requests: t = 1, 3, 4; (4096, 32), (2048, 8), (2048, 16)
    t = gen(tmp_path, "--sizes", f"trace:{src}", "--rate", 10, "--count", 1000)
    assert set(zip(t["prompt_size"].to_list(), t["token_size"].to_list())) == {(4096, 32), (2048, 8), (2048, 16)}
    t = gen(tmp_path, "--sizes", f"trace:{src}", "--replay", "--scale", 2, "--count", 5)
    # relative to the first request, halved; the second pass starts one mean gap (1.5 s) after the last
    assert t["arrival_timestamp"].to_list() == [0.0, 1.0, 1.5, 2.25, 3.25]
    assert t["prompt_size"].to_list() == [4096, 2048, 2048, 4096, 2048]
