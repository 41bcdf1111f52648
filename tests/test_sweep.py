"""Sweeps: the batch kernel equals separate runs; the runner merges one dataset, resumes after a crash,
isolates failing configurations, keeps per-request results; Ray backends give the local backend's results."""
import numpy as np
import polars as pl
import pytest

from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import run, run_batch
from sweepsim.sweep.jobs import make_jobs
from sweepsim.sweep.runner import run_sweep
from sweepsim.workload.sampling import poisson_trace
from sweepsim.workload.trace import load_trace

FIELDS = ("completed", "prompt_instance", "token_instance", "prompt_start", "prompt_end", "token_start",
          "token_end", "kv_start", "kv_end", "busy_time", "iterations", "tokens_served", "final_memory")


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory):
    t = poisson_trace("azure-conv", 20.0, seed=4, count=600)
    path = tmp_path_factory.mktemp("trace") / "t.csv"
    pl.DataFrame({"request_id": t.request_id, "arrival_timestamp": t.arrival, "prompt_size": t.prompt_size,
                  "token_size": t.token_size}).write_csv(path)
    return path


def grid_points(trace_file):
    """A mixed grid: schedulers x cluster sizes x seeds, plus a disaggregated and a failing configuration."""
    points, varied = [], []
    for sched in ("round_robin", "random", "jsq", "token_jsq"):
        for n in (1, 3):
            for seed in (0, 1):
                points.append({"cluster": {"dgx-h100": n}, "model": "llama2-70b", "scheduler": sched, "seed": seed,
                               "trace": {"path": str(trace_file)}})
                varied.append({"scheduler": sched, "cluster.dgx-h100": n, "seed": seed})
    points.append({"cluster": {"dgx-a100": 2, "dgx-h100": 1}, "model": "llama2-70b", "start_state": "splitwise",
                   "split_type": "heterogeneous", "scheduler": "mixed_pool", "trace": {"path": str(trace_file)}})
    varied.append({"scheduler": "mixed_pool", "cluster.dgx-h100": 1, "seed": 0})
    return points, varied


def jobs_for(points, varied):
    return make_jobs(points, [from_dict(p) for p in points], varied)


def test_batch_kernel_equals_separate_runs(trace_file):
    points, _ = grid_points(trace_file)
    cfgs = [from_dict(p) for p in points]
    trace = load_trace(trace_file)
    for a, cfg in zip(run_batch(cfgs, trace), cfgs):
        b = run(cfg, trace)
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
        assert a.end_clock == b.end_clock


@pytest.fixture(scope="module")
def reference_sweep(trace_file, tmp_path_factory):
    points, varied = grid_points(trace_file)
    out = tmp_path_factory.mktemp("ref") / "res"
    stats = run_sweep(jobs_for(points, varied), out, quiet=True, chunk_size=4)
    return out, stats


def test_sweep_merges_one_dataset(reference_sweep):
    out, stats = reference_sweep
    assert stats == {"total": 17, "skipped": 0, "ran": 17}
    s = pl.read_parquet(out / "summary.parquet")
    assert len(s) == 17 and s["config_hash"].n_unique() == 17
    assert s.schema["cluster.dgx-h100"] == pl.Int64 and s.schema["seed"] == pl.Int64
    assert s.schema["scheduler"] == pl.String
    assert (s["completed"] == 600).all()
    c = pl.read_parquet(out / "configs.parquet")
    assert set(c["config_hash"]) == set(s["config_hash"]) and "config_json" in c.columns
    assert len(pl.read_parquet(out / "failures.parquet")) == 0


def crash_after_commits(monkeypatch, n):
    """Interrupt a sweep (as Ctrl-C would) right after its n-th committed chunk."""
    from sweepsim.sweep.store import Store
    commit = Store.commit
    done = []

    def commit_then_crash(self, chunk_id, tables):
        commit(self, chunk_id, tables)
        done.append(chunk_id)
        if len(done) >= n:
            raise KeyboardInterrupt("simulated crash")
    monkeypatch.setattr(Store, "commit", commit_then_crash)


def test_resume_after_crash_gives_the_uninterrupted_result(trace_file, reference_sweep, tmp_path, monkeypatch):
    ref_out, _ = reference_sweep
    points, varied = grid_points(trace_file)
    out = tmp_path / "res"
    with pytest.raises(KeyboardInterrupt), monkeypatch.context() as m:
        crash_after_commits(m, 2)
        run_sweep(jobs_for(points, varied), out, quiet=True, chunk_size=4)
    partial = pl.read_parquet(out / "summary.parquet")
    assert 0 < len(partial) < 17 and partial["config_hash"].is_unique().all()
    stats = run_sweep(jobs_for(points, varied), out, quiet=True, chunk_size=4)
    assert stats == {"total": 17, "skipped": len(partial), "ran": 17 - len(partial)}
    got = pl.read_parquet(out / "summary.parquet").sort("config_hash")
    ref = pl.read_parquet(ref_out / "summary.parquet").sort("config_hash")
    assert got["config_hash"].is_unique().all()
    assert got.equals(ref.select(got.columns))
    again = run_sweep(jobs_for(points, varied), out, quiet=True)          # nothing left to do
    assert again["ran"] == 0 and len(pl.read_parquet(out / "summary.parquet")) == 17
    forced = run_sweep(jobs_for(points, varied), out, quiet=True, force=True)
    assert forced["ran"] == 17 and len(pl.read_parquet(out / "summary.parquet")) == 17


def test_seed_only_differences_are_simulated_once(trace_file, monkeypatch):
    """A deterministic scheduler ignores the seed: such configurations share one simulation, yet each keeps
    its own row (hash, seed column); the random scheduler's seeds are simulated separately."""
    import sweepsim.sweep.local as sweep
    calls = []
    real = sweep.run_batch
    monkeypatch.setattr(sweep, "run_batch", lambda cfgs, trace: calls.append(len(cfgs)) or real(cfgs, trace))
    points, varied = grid_points(trace_file)
    jobs = jobs_for(points, varied)
    out = sweep.simulate_chunk(jobs, load_trace(trace_file), keep_requests=False)
    assert sum(calls) == 17 - 6          # 3 deterministic schedulers x 2 sizes: seed 1 reuses seed 0
    s = out["summary"]
    assert len(s) == 17 and s["config_hash"].is_unique().all()
    det = s.filter(pl.col("scheduler") == "jsq", pl.col("cluster.dgx-h100") == 3).sort("seed")
    assert det["seed"].to_list() == [0, 1] and det["e2e_p99"][0] == det["e2e_p99"][1]
    rnd = s.filter(pl.col("scheduler") == "random", pl.col("cluster.dgx-h100") == 3).sort("seed")
    assert rnd["e2e_p99"][0] != rnd["e2e_p99"][1]


def test_failing_configuration_lands_in_failures(trace_file, tmp_path):
    points = [{"cluster": {"dgx-h100": 1}, "model": "llama2-70b", "trace": {"path": str(trace_file)}},
              # bloom-176b weights (329 GB) do not fit in 2 x 80 GiB: placement fails at run time
              {"cluster": {"dgx-h100": 1}, "model": "bloom-176b", "instance": {"tensor_parallel": 2},
               "trace": {"path": str(trace_file)}}]
    varied = [{"model": "llama2-70b"}, {"model": "bloom-176b"}]
    stats = run_sweep(jobs_for(points, varied), tmp_path / "res", quiet=True)
    assert stats["ran"] == 2
    f = pl.read_parquet(tmp_path / "res" / "failures.parquet")
    assert len(f) == 1 and "do not fit" in f["error"][0]
    s = pl.read_parquet(tmp_path / "res" / "summary.parquet")
    assert s["model"].to_list() == ["llama2-70b"]


def test_keep_requests_hive_dataset(trace_file, tmp_path):
    points, varied = grid_points(trace_file)
    run_sweep(jobs_for(points[:3], varied[:3]), tmp_path / "res", quiet=True, keep_requests=True)
    df = pl.scan_parquet(tmp_path / "res" / "requests" / "**" / "*.parquet", hive_partitioning=True).collect()
    assert df["config"].n_unique() == 3 and len(df) == 3 * 600


def _compare_to_reference(out, ref_out):
    got = pl.read_parquet(out / "summary.parquet").sort("config_hash")
    ref = pl.read_parquet(ref_out / "summary.parquet").sort("config_hash")
    assert got.equals(ref.select(got.columns))


def test_ray_local_backend(trace_file, reference_sweep, tmp_path):
    ray = pytest.importorskip("ray")
    points, varied = grid_points(trace_file)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_sweep(jobs_for(points, varied), tmp_path / "res", backend="ray", quiet=True, chunk_size=5)
    finally:
        ray.shutdown()
    _compare_to_reference(tmp_path / "res", reference_sweep[0])


def test_ray_two_node_cluster(trace_file, reference_sweep, tmp_path):
    pytest.importorskip("ray")
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        points, varied = grid_points(trace_file)
        run_sweep(jobs_for(points, varied), tmp_path / "res", backend="ray", quiet=True, chunk_size=3)
    finally:
        ray.shutdown()
        cluster.shutdown()
    _compare_to_reference(tmp_path / "res", reference_sweep[0])
