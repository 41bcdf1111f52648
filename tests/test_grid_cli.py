"""`sweepsim grid` and `sweepsim results` end to end on a small experiment file."""
import polars as pl
import pytest

from sweepsim import PROJECT_ROOT
from tests.cli_helpers import assert_input_error, invoke, ok


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / "cache"))
    trace = PROJECT_ROOT / "traces" / "test_trace.csv"
    path = tmp_path / "exp.toml"
    path.write_text(f'''name = "tiny"
out = "{tmp_path / 'res'}"
[config]
model = "llama2-70b"
[config.cluster]
dgx-h100 = 1
[config.trace]
path = "{trace}"
[grid]
"cluster.dgx-h100" = [1, 2]
scheduler = ["round_robin", "token_jsq", "jsq"]
seed = [0, 1]
''')
    return path


def test_dry_run_lists_configurations(experiment, tmp_path):
    r = ok(invoke("grid", experiment, "--dry-run"))
    assert "12 configurations" in r.stdout and "token_jsq" in r.stdout
    assert not (tmp_path / "res").exists()


def test_grid_runs_resumes_and_results_table(experiment, tmp_path):
    r = ok(invoke("grid", experiment, "--quiet", "--chunk-size", "5"))
    assert "12 configurations (12 run, 0 already done, 0 failed)" in r.stdout
    s = pl.read_parquet(tmp_path / "res" / "summary.parquet")
    assert len(s) == 12 and s["config_hash"].n_unique() == 12 and (s["completed"] == 3).all()
    assert s.schema["cluster.dgx-h100"] == pl.Int64
    r = ok(invoke("grid", experiment, "--quiet"))
    assert "(0 run, 12 already done" in r.stdout
    r = ok(invoke("results", tmp_path / "res", "--sort", "e2e_p99", "--top", "3"))
    assert "3 of 12 rows" in r.stdout and "scheduler" in r.stdout
    r = ok(invoke("results", tmp_path / "res", "--where", "scheduler = 'jsq' AND seed = 1"))
    assert "2 of 2 rows" in r.stdout
    r = ok(invoke("results", tmp_path / "res", "--pareto", "cost_usd,e2e_p99"))
    assert "of" in r.stdout
    assert_input_error(invoke("results", tmp_path / "res", "--sort", "nope"), "nope", "ttft_p99")
    assert_input_error(invoke("results", tmp_path / "res", "--pareto", "cost_usd"), "--pareto")
    assert_input_error(invoke("results", tmp_path / "missing"), "summary")


def test_grid_bad_key_exits_2_before_running(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\n[config]\nmodel = "llama2-70b"\n[config.cluster]\ndgx-h100 = 1\n'
                    '[grid]\n"instance.max_batch_tokenz" = [1, 2]\n')
    assert_input_error(invoke("grid", path, "--out", tmp_path / "res"), "max_batch_tokenz")
    assert not (tmp_path / "res").exists()
    path.write_text('name = "bad"\n[config]\nmodel = "llama2-70b"\n[config.cluster]\ndgx-h100 = 1\n'
                    '[grid]\nscheduler = ["token_jsq", "telepathy"]\n')
    assert_input_error(invoke("grid", path, "--out", tmp_path / "res"), "telepathy", "token_jsq")
    assert not (tmp_path / "res").exists()


def test_shipped_small_experiment_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / "cache"))
    exp = PROJECT_ROOT / "configs" / "experiments" / "splitwise_ha_isocost.toml"
    ok(invoke("grid", exp, "--small", "--quiet", "--out", tmp_path / "res"))
    s = pl.read_parquet(tmp_path / "res" / "summary.parquet")
    assert len(s) == 8 and set(s["s"]) == {10, 25}
    assert (s["cluster.dgx-a100"] == (4.76 * (40 - s["s"]) // 2.21).cast(pl.Int64)).all()
