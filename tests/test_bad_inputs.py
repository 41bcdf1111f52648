"""Bad input to every ``sweepsim`` command: one clear error line, exit code 2, and nothing written.

A table of bad inputs (config files, ``--set`` overrides, traces, requests that can never fit, output
locations, results directories, experiment files, ``results`` options, Ray addresses, ``trace gen`` specs
and ``validate`` cases) is driven through the CLI in-process (click's CliRunner). For each one the test
checks: exit code 2; exactly one stderr line, starting ``error: `` and naming the offending file (where there
is one) and the field / option / key; no traceback; nothing on stdout; and that nothing was written or
changed: every file under the working directory (a tmp folder holding the inputs, a pre-existing run
directory and a pre-existing sweep results directory with files in them, and the trace cache) keeps its
bytes and mtime, and no file or directory appears. Errors must come before any simulation: the cases are
sized so that a missing check would show up as a slow run, a time limit (where one is given) or a memory
error (the trace generator's request limit runs under an address-space limit).

Two positive tests sit outside the table: ``--set oversized_requests=reject`` drops exactly the requests that
can never fit (``rejected`` column of requests.parquet), and ``grid --dry-run`` of a huge experiment prints
its size at once.
"""
import contextlib
import resource
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import polars as pl
import pytest

import sweepsim
from tests.cli_helpers import assert_input_error, invoke, ok

PROJECT = Path(sweepsim.__file__).resolve().parent.parent
TRACE = PROJECT / "traces" / "test_trace.csv"
AZURE_CODE = PROJECT / "traces" / "azure2023" / "azure_llm_2023_code.csv"
TRACE_HEADER = "request_id,arrival_timestamp,prompt_size,token_size\n"

# relative to the working directory of every case (tmp_path)
PREV = "results/prev_run"      # a run directory of `sweepsim run` (requests/summary/instances.parquet + notes)
SWEEP = "results/sweep"        # a results directory of `sweepsim grid` (experiment "tiny", varying seed)
AFILE = "afile.txt"            # a regular file (outputs below it cannot be created)
CACHE = "trace-cache"          # $SWEEPSIM_TRACE_CACHE (absent: nothing may create it)


# ------------------------------------------------------------------------------------------ input files


def q(s) -> str:
    """A TOML string literal."""
    return f'"{s}"'


def cfg(t: Path, name="cfg.toml", *, cluster="dgx-h100 = 1", tables="", trace=True, **top) -> str:
    """Write a run config (bloom-176b on one DGX-H100, baseline, token_jsq, the 3-request example trace);
    ``top`` replaces top-level keys by TOML literals (None drops one), ``tables`` is appended. Returns the
    file's name (relative to the working directory)."""
    keys = {"name": q("t"), "model": q("bloom-176b"), "start_state": q("baseline"), "scheduler": q("token_jsq"),
            "performance_model": q("db"), "seed": "0"}
    for k, v in top.items():
        if v is None:
            keys.pop(k, None)
        else:
            keys[k] = v
    text = "".join(f"{k} = {v}\n" for k, v in keys.items()) + f"\n[cluster]\n{cluster}\n"
    if trace:
        text += f"\n[trace]\npath = {q(TRACE)}\n"
    (t / name).write_text(text + tables)
    return name


def trace(t: Path, rows: str, name="t.csv", header=TRACE_HEADER) -> str:
    (t / name).write_text(header + rows)
    return name


def exp(t: Path, body: str, name="exp.toml", exp_name="tiny", head="") -> str:
    """Write an experiment file: bloom-176b on one DGX-H100 and the example trace, plus ``body``."""
    (t / name).write_text(f'{head}name = {q(exp_name)}\n[config]\nmodel = "bloom-176b"\n[config.cluster]\n'
                          f'dgx-h100 = 1\n[config.trace]\npath = {q(TRACE)}\n{body}')
    return name


TINY_GRID = '[grid]\nseed = [0, 1]\n'


def case_dir(t: Path, name="case1", *, case=True, trace_rows="0,1.0,100,4\n1,2.0,200,3\n",
             expected="request_id,completed,ttft,e2e\n0,1,0.1,0.5\n1,1,0.1,0.4\n") -> str:
    """A validate case directory (case.toml, trace.csv, expected_requests.csv)."""
    d = t / name
    d.mkdir(parents=True)
    if case:
        cfg(d, "case.toml", trace=False)
    trace(d, trace_rows, "trace.csv")
    (d / "expected_requests.csv").write_text(expected)
    return name


def below_file(*parts) -> str:
    return "/".join((AFILE,) + parts)


# ------------------------------------------------------------------------------------------ the table


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], list]   # writes the case's inputs into the working directory, returns the CLI args
    needles: tuple                 # each in the error line (a tuple: any one of them)
    max_seconds: float | None = None
    memory_guard: bool = False     # run under an address-space limit (the case must not allocate much)
    no_ray: bool = False           # the error comes before Ray is imported


def C(id, make, *needles, max_seconds=None, memory_guard=False, no_ray=False):
    return Case(id, make, needles, max_seconds, memory_guard, no_ray)


def _fifo(t: Path) -> str:
    import os
    os.mkfifo(t / "fifo.csv")
    return "fifo.csv"


def run_cfg(**kw):
    """``sweepsim run <config> --out results/prev_run`` for a config built by ``cfg(**kw)``."""
    return lambda t: ["run", cfg(t, **kw), "--out", PREV]


def run_set(*items):
    return lambda t: ["run", cfg(t), *[a for item in items for a in ("--set", item)], "--out", PREV]


def run_trace(rows, name="t.csv", header=TRACE_HEADER):
    return lambda t: ["run", cfg(t), "--trace", trace(t, rows, name, header), "--out", PREV]


def instance(**kw) -> str:
    return "\n[instance]\n" + "".join(f"{k} = {v}\n" for k, v in kw.items())


GEN_OK = ["--sizes", "fixed:10,10", "--rate", "1", "--count", "5"]
LIMIT = ("20000000", "20,000,000", "2e+07", "2e7")  # the default --max-requests, however it is printed
BIG_AXIS = "[" + ", ".join(str(i) for i in range(1000)) + "]"


def _write(t: Path, name: str, data: bytes) -> str:
    (t / name).write_bytes(data)
    return name


def _parquet(t: Path, name: str, table) -> str:
    import pyarrow.parquet as pq
    pq.write_table(table, t / name)
    return name


def _pa_trace(**over):
    """A 2-request trace table (pyarrow) with some columns replaced."""
    import pyarrow as pa
    cols = {"request_id": pa.array([0, 1]), "arrival_timestamp": pa.array([1.0, 2.0]),
            "prompt_size": pa.array([100, 200]), "token_size": pa.array([4, 3])}
    cols.update(over)
    return pa.table(cols)


def _pa(values, typ):
    import pyarrow as pa
    return pa.array(values, type=getattr(pa, typ[0])(*typ[1:]))


AZ_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
AZ_OK = "2023-11-16 18:17:04.03,200,8\n"
CHAIN = "".join(f'"vars.a{k}" = "a{k - 1} * a{k - 1}"\n' for k in range(1, 41))


DB_HEAD = b"model,hardware,tensor_parallel,prompt_size,batch_size,prompt_time,token_time\n"


def DB_ROW(prompt, batch, prompt_ms, token_ms) -> bytes:  # noqa: N802
    return f"bloom-176b,h100-80gb,8,{prompt},{batch},{prompt_ms},{token_ms}\n".encode()


def _bad_tp_case(t: Path) -> str:
    """A validate case whose model cannot be placed (tensor_parallel 1 cannot hold bloom-176b)."""
    name = case_dir(t, "z_bad")
    with open(t / name / "case.toml", "a") as f:
        f.write("\n[instance]\ntensor_parallel = 1\n")
    return name


def _unsorted_exp(t: Path) -> str:
    """exp.toml: the SWEEP fixture's experiment ("tiny", varying seed) on an unsorted trace."""
    name = exp(t, TINY_GRID)
    trace(t, "0,5.0,100,5\n1,2.0,100,5\n", "bad.csv")
    (t / name).write_text((t / name).read_text().replace(q(TRACE), q(t / "bad.csv")))
    return name


def _broken_run(t: Path) -> bool:
    """results/broken: a run directory whose requests.parquet lacks the ttft column."""
    import polars as pl
    src = t / PREV
    (t / "results/broken").mkdir(parents=True, exist_ok=True)
    for f in ("summary", "instances"):
        (t / "results/broken" / f"{f}.parquet").write_bytes((src / f"{f}.parquet").read_bytes())
    pl.read_parquet(src / "requests.parquet").drop("ttft").write_parquet(t / "results/broken/requests.parquet")
    return True


def _mkdirs(t: Path, name: str, files: dict) -> str:
    d = t / name
    d.mkdir(parents=True)
    for rel, data in files.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_bytes(data)
    return name


CASES = [
    # ---------------------------------------------------------------------------------------- config files
    C("config_missing", lambda t: ["run", "nope.toml", "--out", PREV], "nope.toml", "not found"),
    C("config_missing_default_out", lambda t: ["run", "nope.toml"], "nope.toml", "not found"),
    C("config_invalid_toml", lambda t: ["run", _write(t, "bad.toml", b'name = "x"\nmodel = \n'), "--out", PREV],
      "bad.toml", "invalid TOML"),
    C("config_non_utf8", lambda t: ["run", _write(t, "latin1.toml", 'name = "caf\u00e9"\n'.encode("latin-1")),
                                    "--out", PREV], "latin1.toml", "UTF-8"),
    C("config_is_a_directory", lambda t: ["run", _mkdirs(t, "adir.toml", {}), "--out", PREV], "adir.toml"),
    C("config_unknown_top_level_key", run_cfg(colour=q("red")), "cfg.toml", "colour", "unknown key"),
    C("config_unknown_sku", run_cfg(cluster="dgx-z900 = 1"), "cfg.toml", "cluster.dgx-z900", "dgx-h100"),
    C("config_unknown_cluster_name", lambda t: ["run", _write(t, "cl.toml", f'model = "bloom-176b"\ncluster = '
                                                                      f'"atlantis"\n[trace]\npath = {q(TRACE)}\n'
                                                                      .encode()), "--out", PREV],
      "cl.toml", "cluster", "atlantis"),
    C("config_unknown_model", run_cfg(model=q("gpt-5")), "cfg.toml", "model", "gpt-5"),
    C("config_unknown_scheduler", run_cfg(scheduler=q("fifo")), "cfg.toml", "scheduler", "fifo"),
    C("config_unknown_start_state", run_cfg(start_state=q("orca2")), "cfg.toml", "start_state", "orca2"),
    C("config_unknown_split_type", run_cfg(start_state=q("splitwise"), scheduler=q("kv_jsq"),
                                           split_type=q("diagonal")), "cfg.toml", "split_type", "diagonal"),
    C("config_unknown_network", run_cfg(network=q("infiniband")), "cfg.toml", "network", "infiniband"),
    C("config_unknown_performance_model", run_cfg(performance_model=q("oracle")), "cfg.toml",
      "performance_model", "oracle"),
    C("config_unknown_instance_key", run_cfg(tables=instance(max_batch_sise=8)), "cfg.toml",
      "instance.max_batch_sise"),
    C("config_seed_string", run_cfg(seed=q("3")), "cfg.toml", "seed"),
    C("config_seed_float", run_cfg(seed="1.5"), "cfg.toml", "seed", "1.5"),
    C("config_seed_negative", run_cfg(seed="-1"), "cfg.toml", "seed", "-1"),
    C("config_batch_size_boolean", run_cfg(tables=instance(max_batch_size="true")), "cfg.toml",
      "instance.max_batch_size", "True"),
    C("config_batch_size_string", run_cfg(tables=instance(max_batch_size=q("8"))), "cfg.toml",
      "instance.max_batch_size"),
    C("config_batch_size_zero", run_cfg(tables=instance(max_batch_size=0)), "cfg.toml", "instance.max_batch_size"),
    C("config_batch_size_huge", run_cfg(tables=instance(max_batch_size="99999999999999999999")), "cfg.toml",
      "instance.max_batch_size", "99999999999999999999"),
    C("config_batch_tokens_2_63", run_cfg(tables=instance(max_batch_tokens=2 ** 63)), "cfg.toml",
      "instance.max_batch_tokens", str(2 ** 63)),
    C("config_preemptions_negative", run_cfg(tables=instance(max_preemptions=-1)), "cfg.toml",
      "instance.max_preemptions"),
    C("config_tensor_parallel_3", run_cfg(tables=instance(tensor_parallel=3)), "cfg.toml",
      "instance.tensor_parallel", "3"),
    C("config_cluster_count_1e9", run_cfg(cluster=f"dgx-h100 = {10 ** 9}"), "cfg.toml", "cluster", "100000",
      max_seconds=5),
    C("config_cluster_count_string", run_cfg(cluster='dgx-h100 = "two"'), "cfg.toml", "cluster.dgx-h100"),
    C("config_cluster_empty", run_cfg(cluster="dgx-h100 = 0"), "cfg.toml", "cluster"),
    C("config_end_time_nan", run_cfg(end_time="nan"), "cfg.toml", "end_time", "nan"),
    C("config_end_time_negative", run_cfg(end_time="-1"), "cfg.toml", "end_time", "-1"),
    C("config_prompt_time_inf", run_cfg(performance_model=None, tables='\n[performance_model]\nkind = "constant"\n'
                                        'prompt_time = inf\ntoken_time = 0.01\n'),
      "cfg.toml", "performance_model.prompt_time", "inf"),
    C("config_transfer_bandwidth_zero", run_cfg(transfer_bandwidth_gib="0"), "cfg.toml", "transfer_bandwidth_gib"),
    C("config_kv_scheduler_with_baseline", run_cfg(scheduler=q("kv_jsq")), "cfg.toml", "scheduler", "kv_jsq",
      "baseline"),
    C("config_splitwise_without_prompt_servers", run_cfg(start_state=q("splitwise"), scheduler=q("kv_jsq")),
      "cfg.toml", "prompt_servers"),
    C("config_pools_larger_than_cluster", run_cfg(start_state=q("splitwise"), scheduler=q("kv_jsq"),
                                                  cluster="dgx-h100 = 2", prompt_servers="2", token_servers="1"),
      "cfg.toml", "prompt_servers", "2"),
    C("config_oversized_requests_value", run_cfg(oversized_requests=q("ignore")), "cfg.toml", "oversized_requests",
      "ignore"),
    C("config_trace_missing", run_cfg(trace=False, tables='\n[trace]\npath = "traces/none.csv"\n'), "none.csv",
      "not found"),

    # ---------------------------------------------------------------------------------------------- --set
    C("set_missing_equals", run_set("scheduler"), "cfg.toml", "--set", "scheduler"),
    C("set_empty_key", run_set("=jsq"), "cfg.toml", "--set", "empty key"),
    C("set_empty_key_component", run_set("cluster.=2"), "cfg.toml", "--set", "cluster.=2"),
    C("set_newline_in_value", run_set("scheduler=jsq\nseed=3"), "cfg.toml", "--set"),
    C("set_carriage_return_in_value", run_set("seed=3\rscheduler=jsq"), "cfg.toml", "--set"),
    C("set_key_below_scalar", run_set("seed.x=1"), "cfg.toml", "seed.x"),
    C("set_unknown_key", run_set("colour=red"), "cfg.toml", "colour", "unknown key"),
    C("set_bad_value", run_set("seed=abc"), "cfg.toml", "seed", "abc"),
    C("set_batch_size_huge", run_set("instance.max_batch_size=99999999999999999999"), "cfg.toml",
      "instance.max_batch_size"),
    C("set_unknown_scheduler", run_set("scheduler=fifo"), "cfg.toml", "scheduler", "fifo"),

    # --------------------------------------------------------------------------------------------- traces
    C("trace_missing", lambda t: ["run", cfg(t), "--trace", "missing.csv", "--out", PREV], "missing.csv",
      "not found"),
    C("trace_empty_file", run_trace("", header=""), "t.csv", "empty"),
    C("trace_header_only", run_trace(""), "t.csv", "no requests"),
    C("trace_missing_column", run_trace("0,1.0,3\n", header="request_id,arrival_timestamp,token_size\n"),
      "t.csv", "prompt_size", "missing column"),
    C("trace_missing_two_columns", run_trace("0,3\n", header="request_id,token_size\n"), "t.csv",
      "arrival_timestamp", "prompt_size"),
    C("trace_non_numeric_prompt", run_trace("0,1.0,big,3\n"), "t.csv", "prompt_size"),
    C("trace_non_numeric_tokens", run_trace("0,1.0,10,many\n"), "t.csv", "token_size"),
    C("trace_non_numeric_arrival", run_trace("0,soon,10,3\n"), "t.csv", "arrival_timestamp"),
    C("trace_zero_prompt", run_trace("0,1.0,0,3\n"), "t.csv", "prompt_size", ">= 1"),
    C("trace_zero_tokens", run_trace("0,1.0,10,0\n"), "t.csv", "token_size", ">= 1"),
    C("trace_negative_prompt", run_trace("0,1.0,10,3\n1,2.0,-5,3\n"), "t.csv", "prompt_size", "-5"),
    C("trace_negative_tokens", run_trace("0,1.0,10,-3\n"), "t.csv", "token_size", "-3"),
    C("trace_fractional_prompt", run_trace("0,1.0,10.5,3\n"), "t.csv", "prompt_size", "whole"),
    C("trace_fractional_tokens", run_trace("0,1.0,10,2.25\n"), "t.csv", "token_size", "whole"),
    C("trace_unsorted", run_trace("0,2.0,10,3\n1,1.0,10,3\n"), "t.csv", "arrival_timestamp", "sorted"),
    C("trace_negative_arrival", run_trace("0,-1.0,10,3\n1,1.0,10,3\n"), "t.csv", "arrival_timestamp"),
    C("trace_nan_arrival", run_trace("0,1.0,10,3\n1,nan,10,3\n"), "t.csv", "arrival_timestamp"),
    C("trace_inf_arrival", run_trace("0,1.0,10,3\n1,inf,10,3\n"), "t.csv", "arrival_timestamp"),
    C("trace_duplicate_ids", run_trace("0,1.0,10,3\n1,2.0,10,3\n0,3.0,10,3\n"), "t.csv", "request_id", "unique"),
    C("trace_request_type_3", run_trace("0,3,1.0,10,3\n", header="request_id,request_type,arrival_timestamp,"
                                        "prompt_size,token_size\n"), "t.csv", "request_type"),
    C("trace_batch_size_2", run_trace("0,2,1.0,10,3\n", header="request_id,batch_size,arrival_timestamp,"
                                      "prompt_size,token_size\n"), "t.csv", "batch_size"),
    C("trace_unknown_workload", run_trace("0,1.0,10,3,interactive\n", header=TRACE_HEADER.strip() + ",workload\n"),
      "t.csv", "workload", "interactive"),
    C("trace_parquet_garbage", lambda t: ["run", cfg(t), "--trace", _write(t, "t.parquet", b"not parquet" * 10),
                                          "--out", PREV], "t.parquet"),

    # ------------------------------------------------------------------------- requests that never fit
    C("oversized_prompt_100000", run_trace("0,1.0,100,3\n1,2.0,100000,3\n"), "t.csv", "prompt_size",
      "oversized_requests", max_seconds=10),
    C("oversized_prompt_1e12", run_trace("0,1.0,1e12,3\n"), "t.csv", "prompt_size", "oversized_requests",
      max_seconds=10),
    C("oversized_tokens_1e9", run_trace("0,1.0,100,3\n1,2.0,100,1000000000\n"), "t.csv", "prompt_size",
      "oversized_requests", max_seconds=10),

    # ---------------------------------------------------------------------------------- output locations
    C("run_out_below_file", lambda t: ["run", cfg(t), "--out", below_file("sub")], "--out", AFILE),
    C("run_out_is_file", lambda t: ["run", cfg(t), "--out", AFILE], "--out", AFILE),
    C("run_out_proc", lambda t: ["run", cfg(t), "--out", "/proc/sweepsim-test"], "--out", "/proc/sweepsim-test"),
    C("grid_out_below_file", lambda t: ["grid", exp(t, TINY_GRID), "--out", below_file("res")], "--out", AFILE),
    C("trace_gen_out_below_file", lambda t: ["trace", "gen", *GEN_OK, "--out", below_file("x.csv")], "--out",
      AFILE),
    C("trace_gen_out_bad_format", lambda t: ["trace", "gen", *GEN_OK, "--out", "x.txt"], "--out", ".txt"),
    C("trace_gen_plot_below_file", lambda t: ["trace", "gen", *GEN_OK, "--out", "x.csv", "--plot",
                                              below_file("p.png")], "--plot", AFILE),
    C("trace_import_out_below_file", lambda t: ["trace", "import", "azure", AZURE_CODE, "--out",
                                                below_file("x.csv")], "--out", AFILE),
    C("report_out_below_file", lambda t: ["report", PREV, "-o", below_file("r.html")], "-o", AFILE),
    C("report_out_pdf", lambda t: ["report", PREV, "-o", "x.pdf"], "-o", ".pdf"),
    C("plot_latency_out_below_file", lambda t: ["plot", "latency", PREV, "-o", below_file("x.png")], "-o", AFILE),
    C("plot_timeline_out_bad_format", lambda t: ["plot", "timeline", PREV, "-o", "x.bmp"], "-o", ".bmp"),
    C("plot_sweep_out_below_file", lambda t: ["plot", "sweep", SWEEP, "--x", "seed", "--y", "e2e_p99", "-o",
                                              below_file("x.png")], "-o", AFILE),
    C("validate_out_below_file", lambda t: ["validate", case_dir(t), "--out", below_file("v")], "--out", AFILE),

    # ---------------------------------------------------------------------------------- results directories
    C("run_out_into_sweep_dir", lambda t: ["run", cfg(t), "--out", SWEEP], SWEEP, "--out", "sweep"),
    C("run_out_into_dir_with_configs", lambda t: ["run", cfg(t), "--out", _mkdirs(
        t, "results/handmade", {"configs.parquet": b"PAR1", "notes.txt": b"keep\n"})], "results/handmade", "--out",
      "configs.parquet"),
    C("run_out_into_dir_with_parts", lambda t: ["run", cfg(t), "--out", _mkdirs(
        t, "results/handparts", {"parts/abc.parquet": b"PAR1"})], "results/handparts", "--out", "parts"),
    C("run_out_into_dir_with_manifest", lambda t: ["run", cfg(t), "--out", _mkdirs(
        t, "results/handjson", {"experiment.json": b'{"name": "x", "axes": []}'})], "results/handjson", "--out",
      "experiment.json"),
    C("grid_out_into_run_dir", lambda t: ["grid", exp(t, TINY_GRID), "--out", PREV, "--quiet"], PREV, "--out",
      "requests.parquet"),
    C("grid_other_name_into_results", lambda t: ["grid", exp(t, TINY_GRID, exp_name="other"), "--out", SWEEP,
                                                 "--quiet"], SWEEP, "--out", "--force"),
    C("grid_other_axes_into_results", lambda t: ["grid", exp(t, '[grid]\nscheduler = ["jsq", "token_jsq"]\n'),
                                                 "--out", SWEEP, "--quiet"], SWEEP, "--out", "--force"),
    C("grid_other_experiment_default_out", lambda t: ["grid", exp(t, TINY_GRID, exp_name="other",
                                                                  head=f'out = {q(SWEEP)}\n'), "--quiet"],
      SWEEP, "--out", "--force"),

    # ------------------------------------------------------------------------------------------ experiments
    C("exp_missing", lambda t: ["grid", "nope_exp.toml"], "nope_exp.toml", "not found"),
    C("exp_invalid_toml", lambda t: ["grid", _write(t, "exp.toml", b"name = \n")], "exp.toml", "invalid TOML"),
    C("exp_unknown_key", lambda t: ["grid", exp(t, TINY_GRID, head='colour = "red"\n')], "exp.toml", "colour"),
    C("exp_missing_name", lambda t: ["grid", _write(t, "exp.toml", b'[grid]\nseed = [0, 1]\n')], "exp.toml",
      "name"),
    C("exp_unknown_small_config_key", lambda t: ["grid", exp(t, TINY_GRID + '[small]\nconfig = { colour = 1 }\n'),
                                                 "--small"], "exp.toml", "colour"),
    C("exp_unknown_instance_key", lambda t: ["grid", exp(t, '[config.instance]\nmax_batch_sise = 8\n' + TINY_GRID)],
      "exp.toml", "instance.max_batch_sise"),
    C("exp_empty_grid_list", lambda t: ["grid", exp(t, '[grid]\nseed = []\n')], "exp.toml", "grid.seed", "empty"),
    C("exp_grid_not_a_list", lambda t: ["grid", exp(t, '[grid]\nseed = 3\n')], "exp.toml", "grid.seed"),
    C("exp_unknown_grid_key", lambda t: ["grid", exp(t, '[grid]\n"instance.max_batch_tokenz" = [1, 2]\n')],
      "exp.toml", "max_batch_tokenz"),
    C("exp_unknown_grid_value", lambda t: ["grid", exp(t, '[grid]\nscheduler = ["token_jsq", "telepathy"]\n')],
      "exp.toml", "scheduler", "telepathy"),
    C("exp_bad_derived_expression", lambda t: ["grid", exp(t, TINY_GRID + '[derived]\n"vars.x" = "seed +* 2"\n')],
      "exp.toml", "derived.vars.x"),
    C("exp_derived_eval_call", lambda t: ["grid", exp(t, TINY_GRID + '[derived]\n"vars.x" = "__import__(\'os\')"\n')],
      "exp.toml", "derived.vars.x"),
    C("exp_derived_unknown_name", lambda t: ["grid", exp(t, TINY_GRID + '[derived]\n"vars.x" = "nope * 2"\n')],
      "exp.toml", "derived.vars.x", "nope"),
    C("exp_bad_where", lambda t: ["grid", exp(t, TINY_GRID, head='where = "seed >"\n')], "exp.toml", "where"),
    C("exp_zip_unequal", lambda t: ["grid", exp(t, '[[zip]]\nseed = [0, 1, 2]\n"vars.s" = [1, 2]\n')],
      "exp.toml", "zip[0]", "equal lengths"),
    C("exp_three_1000_axes", lambda t: ["grid", exp(t, f'[grid]\nseed = {BIG_AXIS}\n"vars.a" = {BIG_AXIS}\n'
                                                       f'"vars.b" = {BIG_AXIS}\n')],
      "exp.toml", "--max-configs", max_seconds=1.0, memory_guard=True),
    C("exp_small_missing", lambda t: ["grid", exp(t, TINY_GRID), "--small"], "exp.toml", "small"),
    C("exp_base_missing", lambda t: ["grid", exp(t, TINY_GRID, head='base = "nobase.toml"\n')], "exp.toml",
      "base", "nobase.toml"),

    # --------------------------------------------------------------------------------------------- results
    C("results_missing_dir", lambda t: ["results", "results/missing"], "results/missing", "summary"),
    C("results_top_negative", lambda t: ["results", SWEEP, "--top", "-3"], "--top", "-3"),
    C("results_top_zero", lambda t: ["results", SWEEP, "--top", "0"], "--top", "0"),
    C("results_unknown_sort", lambda t: ["results", SWEEP, "--sort", "nope"], SWEEP, "--sort", "nope"),
    C("results_unknown_columns", lambda t: ["results", SWEEP, "--columns", "seed,nope"], SWEEP, "--columns",
      "nope"),
    C("results_bad_where", lambda t: ["results", SWEEP, "--where", "seed = = 1 AND"], SWEEP, "--where"),
    C("results_where_unknown_column", lambda t: ["results", SWEEP, "--where", "nope > 1"], SWEEP, "--where"),
    C("results_pareto_one_column", lambda t: ["results", SWEEP, "--pareto", "cost_usd"], SWEEP, "--pareto"),
    C("results_pareto_bad_direction", lambda t: ["results", SWEEP, "--pareto", "cost_usd:up,e2e_p99"], SWEEP,
      "--pareto", "up"),

    # ------------------------------------------------------------------------------------------------- ray
    C("grid_ray_unreachable_address", lambda t: ["grid", exp(t, TINY_GRID), "--backend", "ray", "--address",
                                                 "127.0.0.1:1", "--out", "results/ray"], "--address", "127.0.0.1:1",
      max_seconds=5.0, no_ray=True),
    C("grid_ray_bad_address", lambda t: ["grid", exp(t, TINY_GRID), "--backend", "ray", "--address",
                                         "nohostport", "--out", "results/ray"], "--address", "nohostport",
      max_seconds=5.0, no_ray=True),
    C("grid_address_without_ray", lambda t: ["grid", exp(t, TINY_GRID), "--address", "127.0.0.1:1",
                                             "--out", "results/ray"], "--address", max_seconds=5.0, no_ray=True),

    # ------------------------------------------------------------------------------------------- trace gen
    C("trace_gen_count_500M", lambda t: ["trace", "gen", "--sizes", "fixed:10,10", "--rate", "10", "--count",
                                         "500000000", "--out", "big.parquet"], "--count", "--max-requests", LIMIT,
      max_seconds=2.0, memory_guard=True),
    C("trace_gen_rate_times_duration", lambda t: ["trace", "gen", "--sizes", "fixed:10,10", "--rate", "1000000",
                                                  "--duration", "1000000", "--out", "big.parquet"],
      "--duration", "--max-requests", LIMIT, max_seconds=2.0, memory_guard=True),
    C("trace_gen_negative_rate", lambda t: ["trace", "gen", "--sizes", "fixed:10,10", "--rate", "-2", "--count",
                                            "5", "--out", "x.csv"], "--rate", "-2"),
    C("trace_gen_zero_duration", lambda t: ["trace", "gen", "--sizes", "fixed:10,10", "--rate", "1",
                                            "--duration", "0", "--out", "x.csv"], "--duration"),
    C("trace_gen_unknown_sizes", lambda t: ["trace", "gen", "--sizes", "zipf", "--rate", "1", "--count", "5",
                                            "--out", "x.csv"], "--sizes", "zipf"),
    C("trace_gen_missing_sizes", lambda t: ["trace", "gen", "--rate", "1", "--count", "5", "--out", "x.csv"],
      "--sizes"),
    C("trace_gen_zero_count", lambda t: ["trace", "gen", "--sizes", "fixed:10,10", "--rate", "1", "--count", "0",
                                         "--out", "x.csv"], "--count"),

    # -------------------------------------------------------------------------------------------- validate
    C("validate_missing_case_toml", lambda t: ["validate", case_dir(t, case=False), "--out", "results/vout"],
      "case1", "case.toml"),
    C("validate_missing_case_dir", lambda t: ["validate", "nocase", "--out", "results/vout"], "nocase",
      "not found"),
    C("validate_expected_header_only", lambda t: ["validate", case_dir(t, expected="request_id,completed,ttft,e2e\n"),
                                                  "--out", "results/vout"], "expected_requests.csv", "request_id"),
    C("validate_expected_missing_request", lambda t: ["validate", case_dir(
        t, expected="request_id,completed,ttft,e2e\n0,1,0.1,0.5\n"), "--out", "results/vout"],
      "expected_requests.csv", "request_id", "1"),
    C("validate_expected_missing_column", lambda t: ["validate", case_dir(
        t, expected="request_id,completed,ttft\n0,1,0.1\n1,1,0.1\n"), "--out", "results/vout"],
      "expected_requests.csv", "e2e"),
    C("validate_tol_nan", lambda t: ["validate", case_dir(t), "--tol", "nan", "--out", "results/vout"], "--tol",
      "finite"),

    # ------------------------------------------------------------------- inputs that are not regular files
    C("config_is_device", lambda t: ["run", "/dev/zero", "--out", PREV], "/dev/zero", "regular file"),
    C("experiment_is_device", lambda t: ["grid", "/dev/zero", "--out", "results/dev"], "/dev/zero", "regular file"),
    C("trace_is_device", lambda t: ["run", cfg(t), "--trace", "/dev/zero", "--out", PREV], "/dev/zero",
      "regular file"),
    C("trace_is_fifo", lambda t: ["run", cfg(t), "--trace", _fifo(t), "--out", PREV], "fifo.csv", "regular file"),
    C("import_is_device", lambda t: ["trace", "import", "azure", "/dev/zero", "--out", "x.csv"], "/dev/zero",
      "regular file"),
    C("plot_gantt_from_nan", lambda t: ["plot", "gantt", PREV, "--from", "nan", "-o", "g.png"], "--from", "finite"),
    C("plot_latency_slo_inf", lambda t: ["plot", "latency", PREV, "--slo-ttft", "inf", "-o", "l.png"], "--slo-ttft",
      "finite"),
    # ------------------------------------------- numbers that would wrap, temporal or nested columns (traces)
    C("trace_prompt_1e19", run_trace("0,1.0,1e19,4\n"), "t.csv", "prompt_size", "at most"),
    C("trace_token_2_63", run_trace("0,1.0,10,9223372036854775807\n"), "t.csv", "token_size", "at most"),
    C("trace_id_uint64_parquet", lambda t: ["run", cfg(t), "--trace", _parquet(t, "u.parquet", _pa_trace(
        request_id=_pa([2 ** 64 - 1, 2 ** 63], ("uint64",)))), "--out", PREV], "u.parquet", "request_id",
      "18446744073709551615"),
    C("trace_arrival_timestamp_type", lambda t: ["run", cfg(t), "--trace", _parquet(t, "ts.parquet", _pa_trace(
        arrival_timestamp=_pa([1000, 2000], ("timestamp", "ms")))), "--out", PREV], "ts.parquet",
      "arrival_timestamp", "numeric"),
    C("trace_arrival_duration_type", lambda t: ["run", cfg(t), "--trace", _parquet(t, "d.parquet", _pa_trace(
        arrival_timestamp=_pa([1000, 2000], ("duration", "ms")))), "--out", PREV], "d.parquet", "numeric"),
    C("trace_arrival_text_date", run_trace("0,2023-01-01 00:00:00,10,4\n"), "t.csv", "arrival_timestamp",
      "numeric"),
    C("trace_arrival_bool", run_trace("0,true,10,4\n"), "t.csv", "arrival_timestamp", "numeric"),
    C("trace_arrival_beyond_1e12", run_trace("0,1e13,10,4\n"), "t.csv", "arrival_timestamp"),
    C("trace_negative_application", run_trace("0,1.0,10,4,-7\n", header="request_id,arrival_timestamp,"
                                              "prompt_size,token_size,application_id\n"), "application_id", ">= 0"),
    C("trace_duplicate_column", run_trace("0,0,1.0,10,4\n", header="request_id,request_id,arrival_timestamp,"
                                          "prompt_size,token_size\n"), "t.csv", "request_id", "more than once"),
    C("trace_struct_annotation", lambda t: ["run", cfg(t), "--trace", _parquet(t, "s.parquet", _pa_trace(
        model=__import__("pyarrow").array([{"a": 1}, {"a": 2}])))], "s.parquet", "model", "plain values"),
    C("azure_tokens_1e19", run_trace("2023-11-16 18:17:03.97,1e19,10\n" + AZ_OK, header=AZ_HEAD),
      "t.csv", "ContextTokens"),
    C("azure_year_1", run_trace("0001-01-01 00:00:00.0,100,10\n" + AZ_OK, header=AZ_HEAD), "t.csv", "TIMESTAMP"),
    C("azure_numeric_ts_1e12", lambda t: ["run", cfg(t), "--trace", _parquet(t, "a.parquet", __import__(
        "pyarrow").table({"TIMESTAMP": [1.0, 1e12], "ContextTokens": [10, 10], "GeneratedTokens": [2, 2]})),
        "--out", PREV], "a.parquet", "TIMESTAMP"),
    C("azure_list_tokens", lambda t: ["run", cfg(t), "--trace", _parquet(t, "a.parquet", __import__(
        "pyarrow").table({"TIMESTAMP": [1.0, 2.0], "ContextTokens": [[10], [10]], "GeneratedTokens": [2, 2]})),
        "--out", PREV], "a.parquet", "ContextTokens", "numbers"),
    C("azure_duplicate_timestamp", run_trace("2023-11-16 18:17:03.97,2023-11-16 18:17:03.97,10,4\n",
                                             header="TIMESTAMP,TIMESTAMP,ContextTokens,GeneratedTokens\n"),
      "t.csv", "TIMESTAMP", "more than once"),
    C("import_out_is_input", lambda t: ["trace", "import", "azure", trace(t, AZ_OK, "az.csv", AZ_HEAD), "--out",
                                        "az.csv"], "az.csv", "--out", "input"),

    # ------------------------------------------------------------------------- config values of wrong types
    C("config_model_list", run_cfg(model='["bloom-176b"]'), "cfg.toml", "model"),
    C("config_model_table", run_cfg(model="{ a = 1 }"), "cfg.toml", "model"),
    C("config_tp_float", run_cfg(tables=instance(tensor_parallel="8.0")), "instance.tensor_parallel"),
    C("config_tp_bool", run_cfg(tables=instance(tensor_parallel="true")), "instance.tensor_parallel"),
    C("config_name_table", lambda t: ["run", _write(t, "n.toml", b'name = { a = 1 }\n[cluster]\ndgx-h100 = 1\n'),
                                      "--trace", TRACE, "--out", PREV], "n.toml", "name"),
    C("config_trace_empty", lambda t: ["run", cfg(t, trace=False, tables='[trace]\npath = ""\n'), "--out", PREV],
      "cfg.toml", "trace"),
    C("config_perf_path_list", run_cfg(performance_model='{ kind = "db", path = [1] }'),
      "performance_model.path"),
    C("config_perf_db_garbage", lambda t: ["run", cfg(t, performance_model='{ kind = "db", path = "db.csv" }'),
                                           "--out", PREV] if _write(t, "db.csv", b"a,b\n1,2\n") else [],
      "db.csv", "performance_model.path", "missing columns"),
    C("config_constant_time_huge", run_cfg(performance_model='{ kind = "constant", prompt_time = 1e308, '
                                                             'token_time = 1e308 }'), "performance_model.prompt_time"),
    C("config_end_time_huge", run_cfg(end_time="1e300"), "cfg.toml", "end_time"),
    C("config_bandwidth_tiny", run_cfg(transfer_bandwidth_gib="1e-300"), "transfer_bandwidth_gib"),

    # ---------------------------------------------------------------------------- experiment values, names
    C("exp_var_shadows_metric", lambda t: ["grid", exp(t, '[grid]\n"vars.ttft_p99" = [123.0]\n')], "exp.toml",
      "vars.ttft_p99", "column"),
    C("exp_var_shadows_config_hash", lambda t: ["grid", exp(t, '[grid]\n"vars.config_hash" = [1, 2]\n')],
      "exp.toml", "config_hash"),
    C("exp_var_shadows_parameter", lambda t: ["grid", exp(t, '[grid]\n"vars.max_batch_size" = [1]\n')],
      "exp.toml", "max_batch_size"),
    C("exp_value_beyond_int64", lambda t: ["grid", exp(t, '[grid]\n"vars.x" = [99999999999999999999999]\n')],
      "exp.toml", "vars.x", "64-bit"),
    C("exp_value_nan", lambda t: ["grid", exp(t, '[grid]\n"vars.x" = [nan]\n')], "exp.toml", "vars.x", "finite"),
    C("exp_derived_beyond_int64", lambda t: ["grid", exp(t, TINY_GRID + '[derived]\n"vars.y" = "10**300"\n')],
      "exp.toml", "derived.vars.y", "64-bit"),
    C("exp_derived_product_chain", lambda t: ["grid", exp(t, '[grid]\n"vars.a0" = [3]\n[derived]\n' + CHAIN)],
      "exp.toml", "derived", max_seconds=10, memory_guard=True),
    C("exp_derived_float_overflow", lambda t: ["grid", exp(t, TINY_GRID + '[derived]\n"vars.y" = "1e308 * 10"\n')],
      "exp.toml", "derived.vars.y", "finite"),
    C("exp_derived_float_of_huge", lambda t: ["grid", exp(t, TINY_GRID + '[derived]\n"vars.y" = "float(2**9000)"\n')],
      "exp.toml", "derived.vars.y"),
    C("exp_key_given_twice", lambda t: ["grid", exp(t, '[grid]\n"cluster.dgx-h100" = [1]\n[grid.cluster]\n'
                                                       'dgx-h100 = [2, 3]\n')], "exp.toml", "twice"),
    C("exp_include_axis_twice", lambda t: ["grid", exp(t, '[grid]\n"vars.s" = [1]\n[[include]]\ns = 3\n'
                                                          '"vars.s" = 4\n')], "exp.toml", "include[0]"),

    # ----------------------------------------------------------------------- damaged results directories
    C("results_junk_summary", lambda t: ["results", _mkdirs(t, "results/junk", {
        "summary.parquet": b"not parquet", "configs.parquet": b"x"})], "summary.parquet", "damaged"),
    C("results_junk_failures", lambda t: ["results", SWEEP] if _write(t, SWEEP + "/failures.parquet", b"junk")
      else [], "failures.parquet", "damaged"),
    C("report_junk_configs", lambda t: ["report", SWEEP, "-o", "r.html"] if _write(
        t, SWEEP + "/configs.parquet", b"junk") else [], "configs.parquet"),
    C("grid_into_damaged_manifest", lambda t: ["grid", exp(t, TINY_GRID), "--out", SWEEP, "--quiet"] if _write(
        t, SWEEP + "/experiment.json", b"[1, 2]") else [], SWEEP, "--force"),
    C("grid_parts_is_a_file", lambda t: ["grid", exp(t, TINY_GRID, exp_name="other"), "--out", _mkdirs(
        t, "results/pf", {"parts": b"x"}), "--quiet"], "parts", "--out"),
    C("plot_latency_requests_without_ttft", lambda t: ["plot", "latency", "results/broken", "-o", "l.png"]
      if _broken_run(t) else [],
      "requests.parquet", "ttft"),
    C("results_top_huge", lambda t: ["results", SWEEP, "--top", "99999999999999999999"], "--top"),
    C("results_pareto_text_column", lambda t: ["results", SWEEP, "--pareto", "config_hash,cost_usd"], "--pareto",
      "numeric"),
    C("results_where_union", lambda t: ["results", SWEEP, "--where", "1=0 UNION SELECT * FROM self"], "--where"),
    C("plot_sweep_agg_text", lambda t: ["plot", "sweep", SWEEP, "--x", "seed", "--y", "config_hash", "--agg",
                                        "mean", "-o", "s.png"], "--agg"),

    # ------------------------------------------------------------------------------ output locations, more
    C("run_out_table_is_directory", lambda t: ["run", cfg(t), "--out", _mkdirs(
        t, "results/dirs", {"requests.parquet/x": b"x"})], "requests.parquet", "directory"),
    C("run_out_empty", lambda t: ["run", cfg(t), "--out", ""], "--out", "empty"),
    C("trace_gen_duplicate_app_ids", lambda t: ["trace", "gen", "--app", "0:fixed:1,1:rate=1", "--app",
                                                "0:fixed:2,2:rate=1", "--count", "4", "--out", "n.csv"],
      "application_id"),
    C("trace_gen_option_twice", lambda t: ["trace", "gen", "--app", "0:fixed:1,1:rate=1,rate=2", "--count", "4",
                                           "--out", "n.csv"], "rate", "twice"),
    # ----------------------------------------------------------------------------------------- third round
    C("perf_db_one_batch_size", lambda t: ["run", cfg(t, performance_model='{ kind = "db", path = "db1.csv" }'),
                                           "--out", PREV] if _write(t, "db1.csv", DB_HEAD + DB_ROW(100, 1, 50, 40))
      else [], "db1.csv", "performance_model.path", "two batch sizes"),
    C("perf_db_falling_times", lambda t: ["run", cfg(t, performance_model='{ kind = "db", path = "db2.csv" }'),
                                          "--out", PREV] if _write(t, "db2.csv", DB_HEAD + DB_ROW(100, 1, 1000, 300)
                                                                   + DB_ROW(200, 1, 10, 3)) else [],
      "db2.csv", "performance_model.path", "extrapolates"),
    C("trace_gen_arrivals_beyond_range", lambda t: ["trace", "gen", "--sizes", "fixed:10,10", "--rate", "1e-15",
                                                    "--count", "3", "--out", "far.csv"], "--rate"),
    C("trace_gen_app_id_beyond_range", lambda t: ["trace", "gen", "--app", "9223372036854775807:fixed:10,10:rate=1",
                                                  "--count", "3", "--out", "far.csv"], "application_id"),
    C("trace_import_app_id_beyond_range", lambda t: ["trace", "import", "azure", trace(t, AZ_OK, "az.csv", AZ_HEAD),
                                                     "--out", "x.csv", "--app-id", "9223372036854775808"],
      "--app-id"),
    C("validate_same_case_names", lambda t: ["validate", case_dir(t, "a/x"), case_dir(t, "b/x"), "--out",
                                             "results/vout"], "--out", "'x'"),
    C("validate_later_case_cannot_run", lambda t: ["validate", case_dir(t, "ok1"), _bad_tp_case(t), "--out",
                                                   "results/vout"], "case.toml", "model"),
    C("validate_expected_duplicate_column", lambda t: ["validate", case_dir(
        t, expected="request_id,completed,ttft,e2e,ttft\n0,1,0.1,0.5,9\n1,1,0.1,0.4,9\n"), "--out", "results/vout"],
      "expected_requests.csv", "ttft", "more than once"),
    C("grid_bad_trace_into_existing_results", lambda t: ["grid", _unsorted_exp(t), "--out", SWEEP, "--quiet"],
      "bad.csv", "arrival_timestamp"),
    C("grid_empty_address", lambda t: ["grid", exp(t, TINY_GRID), "--backend", "ray", "--address", "", "--out",
                                       "results/ray"], "--address", "empty", no_ray=True),
    C("exp_var_shadows_config_json", lambda t: ["grid", exp(t, '[grid]\n"vars.config_json" = [1, 2]\n')],
      "exp.toml", "config_json"),
    C("results_where_escapes_parentheses", lambda t: ["results", SWEEP, "--where",
                                                      "1=1) UNION ALL SELECT * FROM self WHERE (1=1"], "--where"),
    C("plot_sweep_hue_is_x", lambda t: ["plot", "sweep", SWEEP, "--x", "seed", "--y", "ttft_p99", "--hue", "seed",
                                        "-o", "s.png"], "--hue", "seed"),
    C("plot_gantt_from_huge", lambda t: ["plot", "gantt", PREV, "--from", "1e308", "--to", "1.7e308", "-o", "g.png"],
      "--from"),
    # ----------------------------------------------------------------------------------------- fourth round
    C("run_out_inside_a_sweep_directory", lambda t: ["run", cfg(t), "--out", SWEEP + "/requests"], "--out",
      "inside"),
    C("exp_exclude_of_another_type", lambda t: ["grid", exp(t, TINY_GRID + '[[exclude]]\nseed = "0"\n'), "--dry-run"],
      "exp.toml", "exclude[0].seed"),
    C("grid_into_damaged_configs", lambda t: ["grid", exp(t, TINY_GRID), "--out", _mkdirs(
        t, "results/dmg", {"configs.parquet": b"junk"}), "--quiet"], "configs.parquet", "damaged"),
    C("exp_where_not_a_condition", lambda t: ["grid", exp(t, TINY_GRID, head='where = "seed + 1"\n'), "--dry-run"],
      "exp.toml", "where", "condition"),
    C("results_where_statement_separator", lambda t: ["results", SWEEP, "--where", "1=1; SELECT 1"], "--where"),
    C("validate_bad_trace", lambda t: ["validate", case_dir(t, trace_rows="0,2.0,100,4\n1,1.0,200,3\n"),
                                       "--out", "results/vout"], "trace.csv", "arrival_timestamp"),
]

assert len({c.id for c in CASES}) == len(CASES), "duplicate case ids"


# ------------------------------------------------------------------------------------------ fixtures


def snapshot(root: Path) -> dict:
    """Every file under root with its bytes and mtime, every directory with its mtime (an output location is
    probed for writability with a temporary file that is removed at once, leaving the directory's times as
    they were)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if p.is_dir() and not p.is_symlink():
            out[rel] = ("dir", st.st_mtime_ns)
        elif p.is_file():
            out[rel] = (p.read_bytes(), st.st_mtime_ns, st.st_size)
        else:  # a fifo the case made: reading it would block
            out[rel] = ("special", st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    """A real run directory (``sweepsim run``) and a real sweep results directory (``sweepsim grid`` of a
    two-configuration experiment), made once and copied into every case's working directory."""
    root = tmp_path_factory.mktemp("templates")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("SWEEPSIM_TRACE_CACHE", str(root / "cache"))
        ok(invoke("run", cfg(root), "--out", root / "run"))
        ok(invoke("grid", exp(root, TINY_GRID), "--out", root / "sweep", "--quiet"))
    assert (root / "sweep" / "experiment.json").is_file()
    assert (root / "sweep" / "summary.parquet").is_file()
    assert (root / "run" / "requests.parquet").is_file()
    return root


@pytest.fixture
def workdir(tmp_path, monkeypatch, templates):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / CACHE))
    monkeypatch.delenv("SWEEPSIM_MAX_REQUESTS", raising=False)
    shutil.copytree(templates / "run", tmp_path / PREV)
    (tmp_path / PREV / "notes.txt").write_text("previous run, keep me\n")
    shutil.copytree(templates / "sweep", tmp_path / SWEEP)
    (tmp_path / AFILE).write_text("a regular file\n")
    return tmp_path


@contextlib.contextmanager
def address_space_limit(extra=3 << 30):
    """Limit this process's address space to its current size + ``extra`` bytes (a case that allocates a huge
    trace fails with a MemoryError instead of exhausting the shared machine's memory)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    size = None
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                size = int(line.split()[1]) * 1024
    if size is None:
        yield
        return
    limit = size + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_one_error_line_exit_2_nothing_written(case, workdir):
    args = [str(a) for a in case.make(workdir)]
    before = snapshot(workdir)
    assert (PREV + "/requests.parquet") in before and (SWEEP + "/experiment.json") in before
    guard = address_space_limit() if case.memory_guard else contextlib.nullcontext()
    ray_before = "ray" in sys.modules
    t0 = time.perf_counter()
    with guard:
        result = invoke(*args)
    elapsed = time.perf_counter() - t0

    problems = []
    plain = [n for n in case.needles if isinstance(n, str)]
    try:
        line = assert_input_error(result, *plain)
    except AssertionError as e:
        problems.append(f"bad error output: {e}")
        line = None
    if line is not None:
        for options in (n for n in case.needles if not isinstance(n, str)):
            if not any(o in line for o in options):
                problems.append(f"none of {options} in {line!r}")
    if "Traceback" in result.stderr:
        problems.append("traceback on stderr")
    after = snapshot(workdir)
    if after != before:
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        problems.append(f"files changed: added {added}, removed {removed}, modified {changed}")
    if Path("/proc/sweepsim-test").exists():
        problems.append("/proc/sweepsim-test exists")
    if case.no_ray and not ray_before and "ray" in sys.modules:
        problems.append("Ray was imported before the error")
    if case.max_seconds is not None and elapsed > case.max_seconds:
        problems.append(f"took {elapsed:.2f} s (limit {case.max_seconds} s)")
    assert not problems, (problems, args, result.exit_code, result.stdout, result.stderr, repr(result.exception))


# ------------------------------------------------------------------------------------------ positive tests


def test_oversized_requests_reject_drops_exactly_those(workdir):
    rows = ("0,1.0,100,3\n1,2.0,100000,3\n2,3.0,200,4\n3,4.0,1e12,3\n4,5.0,100,1000000000\n5,6.0,300,2\n")
    t = trace(workdir, rows)
    c = cfg(workdir)
    assert_input_error(invoke("run", c, "--trace", t, "--out", "out"), t, "prompt_size", "oversized_requests")
    assert not (workdir / "out").exists()
    res = ok(invoke("run", c, "--trace", t, "--set", "oversized_requests=reject", "--out", "out"))
    assert res.stderr == ""
    req = pl.read_parquet(workdir / "out" / "requests.parquet")
    assert req["request_id"].to_list() == [0, 1, 2, 3, 4, 5]
    assert req.schema["rejected"] == pl.Boolean
    assert req["rejected"].to_list() == [False, True, False, True, True, False]
    assert req["completed"].to_list() == [True, False, True, False, False, True]
    assert pl.read_parquet(workdir / "out" / "summary.parquet")["rejected"].to_list() == [3]


def test_grid_dry_run_of_huge_experiment_prints_count_quickly(workdir):
    e = exp(workdir, f'[grid]\nseed = {BIG_AXIS}\n"vars.a" = {BIG_AXIS}\n"vars.b" = {BIG_AXIS}\n')
    before = snapshot(workdir)
    t0 = time.perf_counter()
    with address_space_limit():
        res = invoke("grid", e, "--dry-run")
    elapsed = time.perf_counter() - t0
    ok(res)
    assert "1,000,000,000" in res.stdout, res.stdout
    assert elapsed < 1.0, elapsed
    assert snapshot(workdir) == before
