"""End-to-end tests of the ``sweepsim`` command line (``run`` and ``validate``).

The commands are invoked in-process through click's CliRunner (cheap once the kernels are compiled and
cached); one test runs the installed console script in a subprocess to check the real exit code and stderr.
Reference numbers are SplitwiseSim's for its 3-request example trace (bloom-176b on one DGX-H100).
"""
import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import sweepsim
from tests.cli_helpers import assert_input_error, invoke, ok

PROJECT = Path(sweepsim.__file__).resolve().parent.parent
CONFIG = PROJECT / "configs" / "examples" / "baseline_h100.toml"
TRACE = PROJECT / "traces" / "test_trace.csv"
ORACLE = PROJECT / "tests" / "oracle"
CASE = ORACLE / "test_trace_baseline"
SPLITWISE_CASE = ORACLE / "splitwise_ha"

REQUEST_COLUMNS = [
    "request_id", "application_id", "arrival", "prompt_size", "token_size", "completed", "rejected", "stalled", "prompt_instance",
    "token_instance", "queue_time", "ttft", "tbt", "tpot", "e2e", "nth_token_overhead", "kv_transfer_time",
    "completion_time", "prompt_start", "prompt_end", "token_start", "token_end", "kv_start", "kv_end",
    "ttft_slowdown", "tbt_slowdown", "e2e_slowdown"]
LATENCY_METRICS = ["ttft", "tbt", "tpot", "e2e", "queue_time", "normalized_e2e", "ttft_slowdown", "tbt_slowdown",
                   "e2e_slowdown"]
STATS = ["mean", "p50", "p90", "p99", "p999", "max"]
SUMMARY_COLUMNS = (["application_id", "requests", "completed", "duration", "throughput_rps", "throughput_tps"]
                   + [f"{m}_{s}" for m in LATENCY_METRICS for s in STATS]
                   + ["model", "start_state", "scheduler", "seed", "max_batch_size", "max_batch_tokens",
                      "cluster.dgx-h100"])
INSTANCE_COLUMNS = ["instance_id", "name", "sku", "processor", "server", "pool", "num_gpus", "utilization",
                    "busy_time", "iterations", "tokens_served", "prompt_time", "token_time", "mixed_time", "energy_j"]
ITERATION_COLUMNS = ["instance", "start", "end", "num_iterations", "batch_size", "prompt_tasks", "batch_tokens",
                     "memory_bytes", "pending_requests", "pending_tasks", "borrowed"]
KV_TRANSFER_COLUMNS = ["request_id", "source", "destination", "start", "end", "bytes"]

# SplitwiseSim's reference values for traces/test_trace.csv, bloom-176b, one DGX-H100, token_jsq
REF_TTFT_0 = 0.6495982770284172
REF_E2E = [1.7447429609198237, 0.49925474455559815, 0.7818727274953154]
REF_UTILIZATION = 0.6327793744012191

TRACE_HEADER = "request_id,arrival_timestamp,prompt_size,token_size\n"

needs_oracle = pytest.mark.skipif(not CASE.is_dir(), reason=f"oracle cases not found at {ORACLE}")


def write_config(path: Path, *, model="bloom-176b", start_state="baseline", scheduler="token_jsq",
                 cluster="dgx-h100 = 1", trace: str | None = None, extra="") -> Path:
    trace = str(TRACE) if trace is None else trace
    path.write_text(
        f'name = "t"\n{extra}model = "{model}"\nstart_state = "{start_state}"\nscheduler = "{scheduler}"\n'
        f'performance_model = "db"\nseed = 0\n\n[cluster]\n{cluster}\n\n[trace]\npath = "{trace}"\n')
    return path


def write_trace(path: Path, rows: str, header: str = TRACE_HEADER) -> Path:
    path.write_text(header + rows)
    return path


def snapshot(root: Path) -> dict:
    """Every file under root with its bytes and mtime (to check that nothing was written or touched)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


# --------------------------------------------------------------------------------------------- run


@pytest.fixture(scope="module")
def baseline_out(tmp_path_factory):
    """``sweepsim run configs/examples/baseline_h100.toml --out DIR`` from the project root (as README)."""
    out = tmp_path_factory.mktemp("baseline") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(PROJECT)
        result = ok(invoke("run", "configs/examples/baseline_h100.toml", "--out", out))
    return out, result


def test_run_baseline_writes_documented_tables(baseline_out):
    out, result = baseline_out
    assert sorted(p.name for p in out.iterdir()) == ["instances.parquet", "requests.parquet", "summary.parquet"]
    assert "3/3 requests completed" in result.stdout
    assert str(out) in result.stdout

    req = pl.read_parquet(out / "requests.parquet")
    assert req.columns == REQUEST_COLUMNS
    assert req.height == 3
    for c in ("request_id", "application_id", "prompt_size", "token_size", "prompt_instance", "token_instance"):
        assert req.schema[c].is_integer(), c
    assert req.schema["completed"] == pl.Boolean
    for c in REQUEST_COLUMNS[10:]:
        assert req.schema[c] == pl.Float64, c
    # trace order and trace values
    assert req["request_id"].to_list() == [0, 1, 2]
    assert req["arrival"].to_list() == [1.0, 3.0, 4.0]
    assert req["prompt_size"].to_list() == [4096, 2048, 2048]
    assert req["token_size"].to_list() == [32, 8, 16]
    assert req["completed"].to_list() == [True, True, True]
    # SplitwiseSim's reference values
    assert req["ttft"][0] == pytest.approx(REF_TTFT_0, abs=1e-12)
    assert req["e2e"].to_list() == pytest.approx(REF_E2E, abs=1e-12)
    # co-located on the single instance: no KV transfer
    assert req["prompt_instance"].to_list() == [0, 0, 0]
    assert req["token_instance"].to_list() == [0, 0, 0]
    assert all(math.isnan(x) for x in req["kv_transfer_time"].to_list())
    # the documented definitions hold row by row
    for r in req.iter_rows(named=True):
        assert r["queue_time"] == pytest.approx(r["prompt_start"] - r["arrival"], abs=1e-12)
        assert r["queue_time"] >= 0
        assert r["ttft"] == pytest.approx(r["prompt_end"] - r["arrival"], abs=1e-12)
        assert r["e2e"] == pytest.approx(r["token_end"] - r["arrival"], abs=1e-12)
        assert r["completion_time"] == pytest.approx(r["arrival"] + r["e2e"], abs=1e-12)
        assert r["tbt"] == pytest.approx((r["e2e"] - r["ttft"]) / r["token_size"], abs=1e-12)
        assert r["tpot"] == pytest.approx((r["e2e"] - r["ttft"]) / (r["token_size"] - 1), abs=1e-12)
        assert r["nth_token_overhead"] == pytest.approx(r["token_start"] - r["prompt_end"], abs=1e-12)
        assert 0 < r["ttft"] < r["e2e"]

    summary = pl.read_parquet(out / "summary.parquet")
    assert summary.height == 1
    assert set(SUMMARY_COLUMNS) <= set(summary.columns), sorted(set(SUMMARY_COLUMNS) - set(summary.columns))
    s = summary.row(0, named=True)
    assert s["application_id"] == 0
    assert s["requests"] == 3
    assert s["completed"] == 3
    assert s["scheduler"] == "token_jsq"
    assert s["model"] == "bloom-176b"
    assert s["start_state"] == "baseline"
    assert s["seed"] == 0
    assert s["cluster.dgx-h100"] == 1
    assert summary.schema["cluster.dgx-h100"].is_integer()
    assert s["e2e_max"] == pytest.approx(max(REF_E2E), abs=1e-12)
    assert s["ttft_max"] == pytest.approx(REF_TTFT_0, abs=1e-12)
    assert s["duration"] == pytest.approx(req["completion_time"].max() - 1.0, abs=1e-12)
    assert s["throughput_rps"] == pytest.approx(3 / s["duration"])
    assert s["throughput_tps"] == pytest.approx((32 + 8 + 16) / s["duration"])

    inst = pl.read_parquet(out / "instances.parquet")
    assert inst.columns == INSTANCE_COLUMNS
    assert inst.height == 1
    i = inst.row(0, named=True)
    assert i["instance_id"] == 0
    assert i["sku"] == "dgx-h100"
    assert i["pool"] == "none"
    assert i["num_gpus"] == 8
    assert i["utilization"] == pytest.approx(REF_UTILIZATION, abs=1e-12)
    assert 0 < i["busy_time"]
    assert i["iterations"] > 0
    assert i["busy_time"] == pytest.approx(i["prompt_time"] + i["token_time"] + i["mixed_time"])


def test_run_default_output_dir_is_results_config_stem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = ok(invoke("run", CONFIG))
    out = tmp_path / "results" / "baseline_h100"
    assert {p.name for p in out.iterdir()} == {"requests.parquet", "summary.parquet", "instances.parquet"}
    assert pl.read_parquet(out / "requests.parquet")["e2e"].to_list() == pytest.approx(REF_E2E, abs=1e-12)
    assert "results" in result.stdout


def test_run_debug_writes_iterations_and_kv_transfers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    ok(invoke("run", CONFIG, "--out", out, "--debug"))
    assert {p.name for p in out.iterdir()} == {"requests.parquet", "summary.parquet", "instances.parquet",
                                               "iterations.parquet", "kv_transfers.parquet"}
    it = pl.read_parquet(out / "iterations.parquet")
    assert it.columns == ITERATION_COLUMNS
    assert it.height > 0
    assert it.schema["start"] == pl.Float64 and it.schema["end"] == pl.Float64
    for c in ITERATION_COLUMNS:
        if c not in ("start", "end", "borrowed"):
            assert it.schema[c].is_integer(), c
    assert it.schema["borrowed"] == pl.Boolean and not it["borrowed"].any()
    assert (it["end"] >= it["start"]).all()
    assert (it["num_iterations"] >= 1).all()
    # every iteration of the run is accounted for in the debug log
    inst = pl.read_parquet(out / "instances.parquet")
    assert it["num_iterations"].sum() == inst["iterations"].sum()
    # results without --debug are the same
    req = pl.read_parquet(out / "requests.parquet")
    assert req["e2e"].to_list() == pytest.approx(REF_E2E, abs=1e-12)

    kv = pl.read_parquet(out / "kv_transfers.parquet")
    assert kv.columns == KV_TRANSFER_COLUMNS
    assert kv.height == 0          # prompt and decode co-located: no transfers


@pytest.mark.skipif(not SPLITWISE_CASE.is_dir(), reason="oracle case splitwise_ha not found")
def test_run_debug_kv_transfers_of_split_cluster(tmp_path, monkeypatch):
    """A Splitwise (prompt on H100, decode on A100) run moves every request's KV cache once."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    ok(invoke("run", SPLITWISE_CASE / "case.toml", "--trace", TRACE, "--out", out, "--debug"))
    req = pl.read_parquet(out / "requests.parquet")
    kv = pl.read_parquet(out / "kv_transfers.parquet")
    assert kv.columns == KV_TRANSFER_COLUMNS
    assert kv["request_id"].to_list() == [0, 1, 2]
    assert kv["source"].to_list() == req["prompt_instance"].to_list()
    assert kv["destination"].to_list() == req["token_instance"].to_list()
    assert (kv["source"] != kv["destination"]).all()
    assert (kv["end"] > kv["start"]).all()
    assert kv["start"].to_list() == pytest.approx(req["kv_start"].to_list(), abs=1e-12)
    # bytes proportional to the prompt (llama2-70b fp16 without GQA: 2 * 80 layers * 8192 * 2 bytes per token)
    assert kv["bytes"].to_list() == [p * 2 * 80 * 8192 * 2 for p in (4096, 2048, 2048)]
    inst = pl.read_parquet(out / "instances.parquet")
    assert sorted(inst["pool"].to_list()) == ["prompt", "token"]


def test_run_set_scheduler(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ok(invoke("run", CONFIG, "--out", "out", "--set", "scheduler=jsq", "--set", "seed=7"))
    s = pl.read_parquet(tmp_path / "out" / "summary.parquet").row(0, named=True)
    assert s["scheduler"] == "jsq"
    assert s["seed"] == 7
    assert s["requests"] == s["completed"] == 3


def test_run_set_cluster_count(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ok(invoke("run", CONFIG, "--out", "out", "--set", "cluster.dgx-h100=2"))
    summary = pl.read_parquet(tmp_path / "out" / "summary.parquet")
    assert summary["cluster.dgx-h100"].to_list() == [2]
    assert summary.schema["cluster.dgx-h100"].is_integer()
    assert summary["scheduler"].to_list() == ["token_jsq"]
    inst = pl.read_parquet(tmp_path / "out" / "instances.parquet")
    assert inst.height == 2
    assert inst["server"].to_list() == [0, 1]
    assert pl.read_parquet(tmp_path / "out" / "requests.parquet")["completed"].all()


def test_run_trace_option_overrides_config_trace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_trace(tmp_path / "other.csv", "10,0.5,100,4\n11,0.75,200,2\n")
    ok(invoke("run", CONFIG, "--trace", "other.csv", "--out", "out"))
    req = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    assert req["request_id"].to_list() == [10, 11]
    assert req["arrival"].to_list() == [0.5, 0.75]
    assert req["prompt_size"].to_list() == [100, 200]
    assert req["token_size"].to_list() == [4, 2]
    assert req["application_id"].to_list() == [0, 0]       # optional column defaults to 0
    assert req["completed"].all()
    assert pl.read_parquet(tmp_path / "out" / "summary.parquet")["requests"].to_list() == [2]


# ------------------------------------------------------------------------------------------ bad input


def _case_missing_config(tmp):
    return ["run", "nope.toml"], ["nope.toml", "not found"]


def _case_invalid_toml(tmp):
    (tmp / "bad.toml").write_text('name = "x"\nmodel = \n')
    return ["run", "bad.toml"], ["bad.toml", "invalid TOML", "line 2"]


def _case_non_utf8_toml(tmp):
    (tmp / "latin1.toml").write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    return ["run", "latin1.toml"], ["latin1.toml"]


def _case_unknown_top_level_key(tmp):
    write_config(tmp / "unk.toml", extra='colour = "red"\n')
    return ["run", "unk.toml"], ["unk.toml", "colour", "unknown key", "allowed:", "scheduler", "cluster"]


def _case_unknown_sku(tmp):
    write_config(tmp / "sku.toml", cluster="dgx-z900 = 1")
    return ["run", "sku.toml"], ["sku.toml", "cluster.dgx-z900", "dgx-z900", "dgx-a100", "dgx-h100", "dgx-h100-pcap"]


def _case_unknown_model(tmp):
    write_config(tmp / "model.toml", model="gpt-5")
    return ["run", "model.toml"], ["model.toml", "model", "gpt-5", "bloom-176b", "llama2-70b"]


def _case_unknown_scheduler(tmp):
    write_config(tmp / "sched.toml", scheduler="fifo")
    return ["run", "sched.toml"], ["sched.toml", "scheduler", "fifo", "allowed:", "token_jsq", "round_robin",
                                   "mixed_pool"]


def _case_kv_scheduler_with_baseline(tmp):
    write_config(tmp / "kv.toml", scheduler="mixed_pool")
    return ["run", "kv.toml"], ["kv.toml", "scheduler", "mixed_pool", "baseline", "splitwise", "token_jsq", "jsq"]


def _case_trace_option_missing(tmp):
    return ["run", CONFIG, "--trace", "missing.csv"], ["missing.csv", "not found"]


def _case_config_trace_missing(tmp):
    write_config(tmp / "mt.toml", trace="traces/none.csv")
    return ["run", "mt.toml"], ["none.csv", "not found"]


def _case_trace_missing_column(tmp):
    write_trace(tmp / "mc.csv", "0,1.0,3\n", header="request_id,arrival_timestamp,token_size\n")
    return ["run", CONFIG, "--trace", "mc.csv"], ["mc.csv", "prompt_size", "missing column"]


def _case_trace_negative_prompt(tmp):
    write_trace(tmp / "neg.csv", "0,1.0,10,3\n1,2.0,-5,3\n")
    return ["run", CONFIG, "--trace", "neg.csv"], ["neg.csv", "prompt_size", ">= 1"]


def _case_trace_zero_prompt(tmp):
    write_trace(tmp / "zero.csv", "0,1.0,0,3\n")
    return ["run", CONFIG, "--trace", "zero.csv"], ["zero.csv", "prompt_size", ">= 1"]


def _case_trace_unsorted(tmp):
    write_trace(tmp / "unsorted.csv", "0,2.0,10,3\n1,1.0,10,3\n")
    return ["run", CONFIG, "--trace", "unsorted.csv"], ["unsorted.csv", "arrival_timestamp", "sorted"]


def _case_trace_non_numeric_arrival(tmp):
    write_trace(tmp / "arr.csv", "0,soon,10,3\n")
    return ["run", CONFIG, "--trace", "arr.csv"], ["arr.csv", "arrival_timestamp"]


def _case_trace_empty(tmp):
    write_trace(tmp / "empty.csv", "")
    return ["run", CONFIG, "--trace", "empty.csv"], ["empty.csv", "no requests"]


def _case_bad_set_syntax(tmp):
    return ["run", CONFIG, "--set", "scheduler"], [str(CONFIG), "--set", "key=value", "scheduler"]


BAD_INPUTS = [
    _case_missing_config,
    _case_invalid_toml,
    _case_non_utf8_toml,
    _case_unknown_top_level_key,
    _case_unknown_sku,
    _case_unknown_model,
    _case_unknown_scheduler,
    _case_kv_scheduler_with_baseline,
    _case_trace_option_missing,
    _case_config_trace_missing,
    _case_trace_missing_column,
    _case_trace_negative_prompt,
    _case_trace_zero_prompt,
    _case_trace_unsorted,
    _case_trace_non_numeric_arrival,
    _case_trace_empty,
    _case_bad_set_syntax,
]


@pytest.mark.parametrize("make_case", BAD_INPUTS)
def test_run_bad_input_one_line_error_exit_2_nothing_written(make_case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, needles = make_case(tmp_path)
    before = snapshot(tmp_path)
    result = invoke(*args, "--out", tmp_path / "out")
    assert_input_error(result, *needles)
    assert snapshot(tmp_path) == before       # no out/, no results/, nothing touched
    assert not (tmp_path / "out").exists()


def test_run_bad_input_without_out_writes_no_default_results_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path / "sched.toml", scheduler="fifo")
    assert_input_error(invoke("run", "sched.toml"), "sched.toml", "scheduler")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("bad", ["config", "trace"])
def test_run_failure_leaves_existing_results_untouched(bad, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results_dir"
    out.mkdir()
    (out / "requests.parquet").write_bytes(b"previous results, not parquet")
    (out / "notes.txt").write_text("keep me\n")
    before = snapshot(out)
    if bad == "config":
        args = ["run", write_config(tmp_path / "bad.toml", model="gpt-5")]
    else:
        args = ["run", CONFIG, "--trace", write_trace(tmp_path / "bad.csv", "0,2.0,10,3\n1,1.0,10,3\n")]
    assert_input_error(invoke(*args, "--out", out))
    assert snapshot(out) == before
    assert (out / "requests.parquet").read_bytes() == b"previous results, not parquet"


def test_console_script_bad_input_exit_code_and_single_stderr_line(tmp_path):
    script = Path(sys.executable).with_name("sweepsim")
    script = str(script) if script.exists() else shutil.which("sweepsim")
    if script is None:
        pytest.skip("the sweepsim console script is not installed")
    unsorted = write_trace(tmp_path / "unsorted.csv", "0,2.0,10,3\n1,1.0,10,3\n")
    for args, needles in ((["run", "nope.toml"], ["nope.toml", "not found"]),
                          (["run", str(CONFIG), "--trace", unsorted.name, "--out", "out"],
                           ["unsorted.csv", "arrival_timestamp"])):
        proc = subprocess.run([script, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert proc.stderr.endswith("\n")
        assert lines[0].startswith("error: ")
        for needle in needles:
            assert needle in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["unsorted.csv"]


# ------------------------------------------------------------------------------------------- validate


@needs_oracle
def test_validate_oracle_case_passes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "vout"
    result = invoke("validate", CASE, "--out", out)
    assert result.exit_code == 0, result.output
    assert "PASS test_trace_baseline: 3/3" in result.stdout
    assert "FAIL" not in result.stdout
    req = pl.read_parquet(out / "test_trace_baseline" / "requests.parquet")
    assert req.columns == REQUEST_COLUMNS
    assert req["request_id"].to_list() == [0, 1, 2]
    assert req["completed"].all()


@needs_oracle
def test_validate_altered_expectation_fails_exit_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = tmp_path / "altered"
    shutil.copytree(CASE, case)
    path = case / "expected_requests.csv"
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fieldnames, rows = reader.fieldnames, list(reader)
    assert [r["request_id"] for r in rows] == ["0", "1", "2"]
    rows[1]["e2e"] = repr(float(rows[1]["e2e"]) + 1.0)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    result = invoke("validate", case)
    assert result.exit_code == 1, result.output
    assert "FAIL altered: 2/3" in result.stdout       # 66.67% < 99.9%
    assert "PASS" not in result.stdout
    assert "request 1:" in result.stdout              # the worst request is reported
    assert result.stderr == ""


def test_validate_dir_without_case_toml_exit_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notacase").mkdir()
    before = snapshot(tmp_path)
    result = invoke("validate", "notacase", "--out", tmp_path / "vout")
    assert_input_error(result, "notacase", "case.toml")
    assert snapshot(tmp_path) == before


@needs_oracle
def test_validate_bad_second_case_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notacase").mkdir()
    result = invoke("validate", CASE, "notacase", "--out", tmp_path / "vout")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "vout").exists()
    assert_input_error(result, "notacase", "case.toml")


# ----------------------------------------------------------------------------------------------- help


def test_help_mentions_options():
    run_help = ok(invoke("run", "--help")).stdout
    for word in ("CONFIG", "--trace", "--out", "--set", "KEY=VALUE", "--debug", "iterations.parquet"):
        assert word in run_help, word
    validate_help = ok(invoke("validate", "--help")).stdout
    for word in ("CASE_DIRS", "--out", "--tol", "case.toml", "expected_requests.csv", "99.9%"):
        assert word in validate_help, word
    top = ok(invoke("--help")).stdout
    assert "run" in top and "validate" in top
