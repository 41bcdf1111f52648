"""Reliability (issue 12), one test per class of silent wrong result:
- a failing configuration fails alone, with its own error, and transient failures are retried;
- a request that can never fit is an error before the run, or rejected and counted with
  ``oversized_requests = "reject"``, never a silent stall;
- a run directory holds one run and a results directory one experiment (no stale files mixed in);
- a sweep where every configuration fails still writes its (empty) summary and its failures;
- the experiment size is counted without expanding it, and a Ray address is checked in seconds.
"""
import time

import numpy as np
import polars as pl
import pytest

import sweepsim.engine.simulate as engine
from sweepsim import PROJECT_ROOT
from sweepsim.config.run import from_dict
from sweepsim.errors import InputError
from sweepsim.config.experiment import count_experiment
from sweepsim.sweep.jobs import make_jobs
from sweepsim.sweep.runner import run_sweep
from sweepsim.workload.trace import load_trace
from tests.cli_helpers import assert_input_error, invoke, ok

TRACE = PROJECT_ROOT / "traces" / "test_trace.csv"
BASE = {"cluster": {"dgx-h100": 1}, "model": "bloom-176b", "scheduler": "token_jsq", "trace": {"path": str(TRACE)}}


def jobs(points, axes):
    varied = [{k: _get(p, k) for k in axes} for p in points]
    return make_jobs(points, [from_dict(p) for p in points], varied)


def _get(d, key):
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def point(**over):
    p = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for k, v in over.items():
        top, _, leaf = k.partition("__")
        if leaf:
            p.setdefault(top, {})[leaf.replace("_", "-") if top == "cluster" else leaf] = v
        else:
            p[k] = v
    return p


IDENT = {"name": "t", "axes": ["instance.tensor_parallel", "cluster.dgx-h100"]}


def tp_grid():
    return [point(instance__tensor_parallel=tp, cluster__dgx_h100=n) for tp in (8, 4, 2, 1) for n in (1, 2)]


# ------------------------------------------------------------------ each configuration fails on its own


def test_failing_configuration_does_not_poison_its_chunk(tmp_path):
    js = jobs(tp_grid(), IDENT["axes"])
    stats = run_sweep(js, tmp_path / "res", quiet=True, chunk_size=64, identity=IDENT)  # one chunk
    assert stats["ran"] == 8
    summary = pl.read_parquet(tmp_path / "res" / "summary.parquet")
    fails = pl.read_parquet(tmp_path / "res" / "failures.parquet")
    assert sorted(summary["instance.tensor_parallel"].to_list()) == [8, 8]
    assert summary["completed"].to_list() == [3, 3]
    by_hash = {j.hash: j for j in js}
    for row in fails.iter_rows(named=True):
        tp = by_hash[row["config_hash"]].config.instance.tensor_parallel
        assert tp != 8
        # its own error: TP 4 lacks profiled data, TP 2 / 1 cannot hold the weights
        assert (f"tp{tp}" in row["error"]) if tp == 4 else (f"{tp} x h100" in row["error"]), row
        assert row["permanent"]
    assert fails.height == 6


def test_transient_failure_is_retried_and_permanent_one_only_with_retry_failed(tmp_path, monkeypatch):
    js = jobs([point(seed=0, scheduler="random"), point(seed=1, scheduler="random"),
               point(instance__tensor_parallel=4)], ["seed", "instance.tensor_parallel"])
    ident = {"name": "t", "axes": ["seed", "instance.tensor_parallel"]}
    real = engine.run_batch
    bad_seed = 1

    def flaky(cfgs, trace):
        if any(c.seed == bad_seed for c in cfgs):
            raise MemoryError("simulated kernel failure")
        return real(cfgs, trace)

    monkeypatch.setattr("sweepsim.sweep.local.run_batch", flaky)
    out = tmp_path / "res"
    run_sweep(js, out, quiet=True, chunk_size=64, identity=ident)
    fails = pl.read_parquet(out / "failures.parquet")
    assert fails.height == 2
    transient = fails.filter(~pl.col("permanent"))
    assert transient["config_hash"].to_list() == [js[1].hash]          # the batch failure was isolated
    assert "MemoryError" in transient["error"][0]
    assert pl.read_parquet(out / "summary.parquet")["config_hash"].to_list() == [js[0].hash]

    monkeypatch.setattr("sweepsim.sweep.local.run_batch", real)
    stats = run_sweep(js, out, quiet=True, identity=ident)               # a rerun retries the transient one
    assert (stats["ran"], stats["skipped"]) == (1, 2)
    assert set(pl.read_parquet(out / "summary.parquet")["config_hash"]) == {js[0].hash, js[1].hash}
    assert pl.read_parquet(out / "failures.parquet")["config_hash"].to_list() == [js[2].hash]
    stats = run_sweep(js, out, quiet=True, identity=ident)
    assert stats["ran"] == 0
    stats = run_sweep(js, out, quiet=True, identity=ident, retry_failed=True)
    assert stats["ran"] == 1


# ------------------------------------------------------------------ requests that can never fit


def oversized_trace(path):
    path.write_text("request_id,arrival_timestamp,prompt_size,token_size\n0,1.0,100,10\n1,2.0,100000,10\n"
                    "2,3.0,200,20\n3,3.5,1000000000000,5\n4,4.0,300,1000000000\n5,5.0,50,5\n")
    return path


def test_request_that_can_never_fit_is_an_error_before_the_run(tmp_path):
    trace = load_trace(oversized_trace(tmp_path / "t.csv"))
    cfg = from_dict(point())
    with pytest.raises(InputError) as e:
        engine.run(cfg, trace)
    assert e.value.field == "prompt_size" and "request_id 1" in str(e.value) and "oversized_requests" in str(e.value)
    with pytest.raises(InputError):
        engine.run_batch([cfg], trace)


@pytest.mark.parametrize("sched", ["token_jsq", "random"])
def test_rejected_requests_are_dropped_and_counted(tmp_path, sched):
    trace = load_trace(oversized_trace(tmp_path / "t.csv"))
    cfg = from_dict(point(oversized_requests="reject", scheduler=sched, cluster__dgx_h100=2))
    res = engine.run(cfg, trace)
    assert res.rejected.tolist() == [False, True, False, True, True, False]
    assert res.completed.tolist() == [True, False, True, False, False, True]
    assert np.all(res.prompt_instance[res.rejected] == -1) and np.all(np.isnan(res.token_end[res.rejected]))
    # the others run exactly as on a trace without the rejected requests (each keeping its random draw)
    keep = ~res.rejected
    (alone,) = engine._call([cfg], [engine.place_instances(cfg)], engine._subtrace(trace, keep),
                            [engine.random_draws(cfg.seed, len(trace))[keep]], False)
    np.testing.assert_array_equal(res.token_end[keep], alone.token_end)
    # the sweep path (batch kernel) gives the same
    (b,) = engine.run_batch([cfg], trace)
    np.testing.assert_array_equal(b.token_end, res.token_end)
    np.testing.assert_array_equal(b.rejected, res.rejected)


def test_oversized_check_per_pool(tmp_path):
    """A KV scheduler's prompt instances need only the prompt's KV; token instances the whole request's."""
    trace = load_trace(oversized_trace(tmp_path / "t.csv"))
    cfg = from_dict(point(start_state="splitwise", split_type="heterogeneous", prompt_sku="dgx-h100",
                          token_sku="dgx-a100", scheduler="kv_jsq", cluster={"dgx-h100": 1, "dgx-a100": 1}))
    mask = engine.oversized_requests(cfg, engine.place_instances(cfg), trace)
    assert mask.tolist() == [False, True, False, True, True, False]


def test_cli_reject_reports_rejected(tmp_path):
    cfg = PROJECT_ROOT / "configs" / "examples" / "baseline_h100.toml"
    trace = oversized_trace(tmp_path / "t.csv")
    assert_input_error(invoke("run", cfg, "--trace", trace, "--out", tmp_path / "r"), str(trace), "prompt_size",
                       "oversized_requests")
    assert not (tmp_path / "r").exists()
    r = ok(invoke("run", cfg, "--trace", trace, "--out", tmp_path / "r", "--set", "oversized_requests=reject"))
    assert "3 rejected" in r.stdout
    req = pl.read_parquet(tmp_path / "r" / "requests.parquet")
    assert req["rejected"].to_list() == [False, True, False, True, True, False]
    s = pl.read_parquet(tmp_path / "r" / "summary.parquet")
    assert (s["requests"][0], s["completed"][0], s["rejected"][0]) == (6, 3, 3)


# ------------------------------------------------------------------ one run / one experiment per directory


def test_plain_run_removes_the_debug_tables_of_an_earlier_run(tmp_path):
    cfg = PROJECT_ROOT / "configs" / "examples" / "baseline_h100.toml"
    out = tmp_path / "r"
    ok(invoke("run", cfg, "--out", out, "--debug"))
    assert (out / "iterations.parquet").exists() and (out / "kv_transfers.parquet").exists()
    ok(invoke("run", cfg, "--out", out))
    assert sorted(p.name for p in out.iterdir()) == ["instances.parquet", "requests.parquet", "summary.parquet"]
    assert_input_error(invoke("plot", "gantt", out, "-o", tmp_path / "g.png"), "--debug")


def write_experiment(path, name, axis, values):
    path.write_text(f'name = "{name}"\n[config]\nmodel = "bloom-176b"\n[config.cluster]\ndgx-h100 = 1\n'
                    f'[config.trace]\npath = "{TRACE}"\n[grid]\n"{axis}" = {values}\n')
    return path


def test_results_directory_holds_one_experiment(tmp_path):
    out = tmp_path / "res"
    a = write_experiment(tmp_path / "a.toml", "a", "seed", "[0, 1, 2, 3]")
    b = write_experiment(tmp_path / "b.toml", "b", "cluster.dgx-h100", "[1, 2]")
    ok(invoke("grid", a, "--out", out, "--quiet"))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert_input_error(invoke("grid", b, "--out", out, "--quiet"), str(out), "--out", "--force")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    ok(invoke("grid", b, "--out", out, "--quiet", "--force"))   # replaces them
    summary = pl.read_parquet(out / "summary.parquet")
    configs = pl.read_parquet(out / "configs.parquet")
    assert summary.height == 2 and configs.height == 2
    assert set(summary["config_hash"]) == set(configs["config_hash"])
    assert "seed" not in configs.columns
    # a run directory is not a results directory, and the other way round
    assert_input_error(invoke("run", PROJECT_ROOT / "configs" / "examples" / "baseline_h100.toml", "--out", out),
                       "--out", "sweep")
    ok(invoke("run", PROJECT_ROOT / "configs" / "examples" / "baseline_h100.toml", "--out", tmp_path / "run"))
    assert_input_error(invoke("grid", a, "--out", tmp_path / "run", "--quiet"), "--out", "sweepsim run")


def test_narrowed_experiment_keeps_summary_and_configs_consistent(tmp_path):
    out = tmp_path / "res"
    ok(invoke("grid", write_experiment(tmp_path / "a.toml", "a", "seed", "[0, 1, 2]"), "--out", out, "--quiet"))
    ok(invoke("grid", write_experiment(tmp_path / "a.toml", "a", "seed", "[1]"), "--out", out, "--quiet"))
    assert pl.read_parquet(out / "summary.parquet")["seed"].to_list() == [1]
    assert pl.read_parquet(out / "configs.parquet")["seed"].to_list() == [1]


# ------------------------------------------------------------------ a sweep where everything fails


def test_sweep_where_every_configuration_fails_writes_summary_and_failures(tmp_path):
    out = tmp_path / "res"
    exp = write_experiment(tmp_path / "f.toml", "f", "instance.tensor_parallel", "[4, 2]")
    r = ok(invoke("grid", exp, "--out", out, "--quiet"))
    assert "2 failed" in r.stdout
    summary = pl.read_parquet(out / "summary.parquet")
    assert summary.height == 0 and summary.columns == ["config_hash", "instance.tensor_parallel"]
    assert pl.read_parquet(out / "failures.parquet").height == 2
    r = ok(invoke("results", out))
    assert "0 of 0 rows" in r.stdout and "2 configuration(s) failed" in r.stdout and "tp4" in r.stdout
    ok(invoke("report", out, "-o", tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert "Failures (2)" in page


# ------------------------------------------------------------------ bounded work


def test_experiment_size_is_counted_without_expanding(tmp_path):
    path = tmp_path / "huge.toml"
    axes = "\n".join(f'"{k}" = {list(range(1, 1001))}' for k in ("seed", "instance.max_batch_size",
                                                                   "instance.max_batch_tokens"))
    path.write_text(f'name = "huge"\n[config]\nmodel = "bloom-176b"\n[config.cluster]\ndgx-h100 = 1\n'
                    f'[config.trace]\npath = "{TRACE}"\n[grid]\n{axes}\n')
    t0 = time.monotonic()
    n, how = count_experiment(path)
    assert n == 10 ** 9 and "seed (1000)" in how
    r = ok(invoke("grid", path, "--dry-run"))
    assert "1,000,000,000 configurations" in r.stdout and "--max-configs" in r.stdout
    assert_input_error(invoke("grid", path, "--out", tmp_path / "res"), str(path), "--max-configs")
    assert not (tmp_path / "res").exists()
    assert time.monotonic() - t0 < 30  # a guard against materialising 1e9 points, not a benchmark


def test_unreachable_ray_address_fails_in_seconds(tmp_path):
    exp = write_experiment(tmp_path / "a.toml", "a", "seed", "[0]")
    assert_input_error(invoke("grid", exp, "--backend", "ray", "--address", "127.0.0.1:1", "--out",
                              tmp_path / "res"), "--address", "127.0.0.1:1")
    assert_input_error(invoke("grid", exp, "--backend", "ray", "--address", "nonsense", "--out", tmp_path / "res"),
                       "--address", "HOST:PORT")
    assert not (tmp_path / "res").exists()


def test_group_statistics_equal_numpy_per_group():
    """summary.parquet's statistics are computed for all applications at once; they must equal np.mean,
    np.percentile and np.max of each application's values bit for bit (short and long groups, ties, NaN)."""
    from sweepsim.results.tables import STATS, group_stats
    rng = np.random.default_rng(1)
    for trial in range(120):
        groups = int(rng.integers(1, 40)) if trial % 2 else int(rng.integers(65, 200))  # both code paths
        n = int(rng.integers(0, (30, 300, 3000)[trial % 3]))
        x = rng.lognormal(0, 2, n)
        if trial % 4 == 0:
            x = np.round(x, 1)  # ties
        x[rng.random(n) < 0.05] = np.nan
        codes = rng.integers(0, groups, n)
        got = group_stats(x, codes, groups)
        for g in range(groups):
            xs = x[codes == g]
            xs = xs[~np.isnan(xs)]
            for name, q in STATS:
                if len(xs) == 0:
                    assert np.isnan(got[name][g])
                    continue
                want = np.mean(xs) if name == "mean" else np.max(xs) if name == "max" else np.percentile(xs, q)
                assert got[name][g] == want, (trial, g, name)


def test_summary_of_a_trace_with_many_applications_is_quick(tmp_path):
    n = 20_000  # one application per request: the summary is vectorised over applications
    pl.DataFrame({"request_id": np.arange(n), "arrival_timestamp": np.arange(n) * 0.01,
                  "prompt_size": np.full(n, 100), "token_size": np.full(n, 10),
                  "application_id": np.arange(n)[::-1]}).write_csv(tmp_path / "t.csv")
    res = engine.run(from_dict(point(cluster__dgx_h100=4)), load_trace(tmp_path / "t.csv"))
    from sweepsim.results.tables import requests_table, summary_table
    t0 = time.monotonic()
    s = summary_table(res)
    assert time.monotonic() - t0 < 10  # a guard against a per-application loop, not a benchmark
    req = requests_table(res)
    assert s["application_id"].to_list() == list(range(n))
    assert s["requests"].to_list() == [1] * n and s.schema["requests"] == pl.Int64
    row = s.row(7, named=True)
    one = req.filter(pl.col("application_id") == 7)
    assert row["e2e_p50"] == one["e2e"][0] and row["ttft_mean"] == one["ttft"][0]


def test_huge_instance_ranges_are_not_materialised():
    from sweepsim.plots.common import parse_instances
    assert parse_instances("0-3,5", [0, 1, 2, 3, 4, 5]) == [0, 1, 2, 3, 5]
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"unknown instance id\(s\) 3, 4, 5"):
        parse_instances("0-1000000000000", [0, 1, 2])
    assert time.monotonic() - t0 < 5


def test_output_through_a_symlink_writes_its_target(tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    ok(invoke("trace", "gen", "--sizes", "fixed:10,10", "--rate", "1", "--count", "3", "--out", tmp_path / "link.csv"))
    assert (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "real.csv").read_text().startswith("request_id")


def test_plot_text_is_never_mathtext(tmp_path):
    cfg = PROJECT_ROOT / "configs" / "examples" / "baseline_h100.toml"
    run_dir = tmp_path / "$\\foo$"
    ok(invoke("run", cfg, "--out", run_dir))
    ok(invoke("plot", "latency", run_dir, "--title", "$\\foo$", "--label", "$x^{^{^{^{^{^{x}}}}}}$", "-o",
              tmp_path / "l.png"))
    assert (tmp_path / "l.png").stat().st_size > 0


# ------------------------------------------------------------------ what a result's identity covers


def test_config_hash_covers_cluster_order_and_performance_database(tmp_path):
    from sweepsim.sweep.jobs import config_hash, config_json
    a = point(cluster={"dgx-h100": 2, "dgx-a100": 1}, start_state="splitwise", split_type="heterogeneous",
              prompt_sku="dgx-h100", token_sku="dgx-a100", scheduler="kv_jsq")
    b = dict(a, cluster={"dgx-a100": 1, "dgx-h100": 2})   # the same servers in another order: other instance ids
    assert config_hash(a, from_dict(a)) != config_hash(b, from_dict(b))
    assert '"cluster": [["dgx-h100", 2], ["dgx-a100", 1]]' in config_json(a)
    db = tmp_path / "db.csv"
    db.write_text((PROJECT_ROOT / "data" / "perf_model.csv").read_text())
    c = point(performance_model={"kind": "db", "path": str(db)})
    before = config_hash(c, from_dict(c))
    db.write_text(db.read_text().replace(",8,", ",8,", 1) + "\n")   # any change of the database's bytes
    assert config_hash(c, from_dict(c)) != before


def test_run_trace_option_replaces_a_generated_trace(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / "cache"))
    cfg = tmp_path / "gen.toml"
    cfg.write_text('[cluster]\ndgx-h100 = 1\n[trace]\nsizes = "fixed:100,10"\nrate = 1\ncount = 7\n')
    one = tmp_path / "one.csv"
    one.write_text("request_id,arrival_timestamp,prompt_size,token_size\n0,1.0,100,10\n")
    r = ok(invoke("run", cfg, "--trace", one, "--out", tmp_path / "o"))
    assert "1/1 requests completed" in r.stdout
    assert not (tmp_path / "cache").exists()


def test_a_deadlock_is_reported_not_silent(tmp_path):
    """Twenty requests that each fit alone but not together: SplitwiseSim's batching deadlocks (prompts hold
    memory that decodes need). The run must say so: requests flagged stalled, a warning."""
    rows = "".join(f"{i},0.0,40000,40000\n" for i in range(20))
    trace = tmp_path / "big.csv"
    trace.write_text("request_id,arrival_timestamp,prompt_size,token_size\n" + rows)
    cfg = PROJECT_ROOT / "configs" / "examples" / "baseline_h100.toml"
    r = ok(invoke("run", cfg, "--trace", trace, "--out", tmp_path / "o", "--set", "end_time=inf",
                  "--set", "instance.max_batch_tokens=100000"))
    assert "warning:" in r.stderr and "never completed" in r.stderr
    req = pl.read_parquet(tmp_path / "o" / "requests.parquet")
    assert req["stalled"].sum() == (~req["completed"]).sum() > 0
    assert pl.read_parquet(tmp_path / "o" / "summary.parquet")["stalled"][0] == req["stalled"].sum()
    # a run cut at end_time leaves unfinished requests, not stalled ones
    ok(invoke("run", cfg, "--out", tmp_path / "cut", "--set", "end_time=1.5"))
    cut = pl.read_parquet(tmp_path / "cut" / "requests.parquet")
    assert (~cut["completed"]).sum() > 0 and cut["stalled"].sum() == 0


def test_keep_requests_on_a_rerun_keeps_them_for_committed_configurations(tmp_path):
    exp = write_experiment(tmp_path / "k.toml", "k", "seed", "[0, 1, 2]")
    ok(invoke("grid", exp, "--out", tmp_path / "res", "--quiet"))
    ok(invoke("grid", exp, "--out", tmp_path / "res", "--quiet", "--keep-requests"))
    assert len(list((tmp_path / "res" / "requests").glob("config=*/part-0.parquet"))) == 3
    r = ok(invoke("grid", exp, "--out", tmp_path / "res", "--quiet", "--keep-requests"))
    assert "0 run, 3 already done" in r.stdout


def test_numeric_hue_with_a_missing_value_plots(tmp_path):
    out = tmp_path / "res"
    exp = tmp_path / "h.toml"
    exp.write_text(f'name = "h"\n[config]\nmodel = "bloom-176b"\n[config.cluster]\ndgx-h100 = 1\n[config.trace]\n'
                   f'path = "{TRACE}"\n[grid]\n"instance.max_batch_size" = {list(range(1, 14))}\nseed = [0]\n'
                   '[[include]]\nseed = 5\n')
    ok(invoke("grid", exp, "--out", out, "--quiet"))
    ok(invoke("plot", "sweep", out, "--x", "seed", "--y", "ttft_p99", "--hue", "instance.max_batch_size", "-o",
              tmp_path / "p.png"))
    ok(invoke("report", out, "-o", tmp_path / "r.html"))


def test_a_deadlock_of_waiting_kv_transfers_ends_the_run(tmp_path):
    """Splitwise: the KV caches of several long requests wait for a token instance that two of them already
    fill and whose decodes cannot grow. Nothing runs that could free memory: the run ends (even with
    end_time = inf) and the waiting requests are stalled, instead of retrying every second until end_time."""
    trace = tmp_path / "t.csv"
    trace.write_text("request_id,arrival_timestamp,prompt_size,token_size\n"
                     + "".join(f"{i},{i / 1000},30000,40000\n" for i in range(4)))
    cfg = tmp_path / "c.toml"
    cfg.write_text('model = "bloom-176b"\nstart_state = "splitwise"\nsplit_type = "homogeneous"\n'
                   'prompt_servers = 1\ntoken_servers = 1\nscheduler = "kv_jsq"\n[cluster]\ndgx-h100 = 2\n'
                   f'[trace]\npath = "{trace}"\n')
    t0 = time.monotonic()
    r = ok(invoke("run", cfg, "--out", tmp_path / "o", "--set", "end_time=inf"))
    assert time.monotonic() - t0 < 30  # a guard against retrying forever, not a benchmark
    assert "never completed" in r.stderr
    req = pl.read_parquet(tmp_path / "o" / "requests.parquet")
    assert req["stalled"].sum() == (~req["completed"]).sum() >= 2


def test_azure_numeric_timestamps_as_text_import_like_numbers(tmp_path):
    az = tmp_path / "epoch.csv"
    az.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n1700000000,374,4\n1700000001.5,10,2\n")
    ok(invoke("trace", "import", "azure", az, "--out", tmp_path / "o.csv"))
    assert pl.read_csv(tmp_path / "o.csv")["arrival_timestamp"].to_list() == [0.0, 1.5]
    assert load_trace(az).arrival.tolist() == [0.0, 1.5]


def test_an_address_that_is_not_ray_fails_in_seconds(tmp_path):
    """A server that answers but is not a Ray cluster (here: plain HTTP) is refused at once, before the
    results directory is touched (Ray itself would retry for minutes)."""
    import http.server
    import threading
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        exp = write_experiment(tmp_path / "a.toml", "a", "seed", "[0]")
        t0 = time.monotonic()
        assert_input_error(invoke("grid", exp, "--backend", "ray", "--address", f"127.0.0.1:{server.server_port}",
                                  "--out", tmp_path / "res"), "--address", "not as a Ray cluster")
        assert time.monotonic() - t0 < 15
        assert not (tmp_path / "res").exists()
    finally:
        server.shutdown()
