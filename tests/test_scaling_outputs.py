"""Autoscaling end to end: `sweepsim run` with `[scaling]` writes scaling_events.parquet and endpoints_timeline.parquet,
endpoints and summary tables whose GPU-hours, waste and costs add up, timeline panels of the moving instances; bad
`[scaling]` keys are one-line errors; the shipped experiment sweeps levels in one kernel call."""
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sweepsim.config.run import from_dict
from sweepsim.errors import InputError
from tests.cli_helpers import invoke, ok
from tests.test_serving import _trace

ROOT = Path(__file__).parent.parent


def _write_trace(tr, path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    sv = tr.serving
    pq.write_table(pa.table({
        "request_id": tr.request_id, "arrival_timestamp": tr.arrival, "prompt_size": tr.prompt_size,
        "token_size": tr.token_size, "model": np.array(sv.model_names)[sv.model],
        "workload": np.where(sv.workload == 1, "dev", "prod"), "batch_id": sv.batch_id, "sla": sv.sla,
        "regions": np.array([",".join(o) for o in sv.region_orders])[sv.regions]}), path)


def _config(tmp_path, scaling: str) -> Path:
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "scaled"\n[[region]]\nname = "r0"\n[[region]]\nname = "r1"\n'
                   + "".join(f'[[endpoint]]\nregion = "{r}"\nmodel = "{m}"\ninstances = 5\ntensor_parallel = 2\n'
                             for r in ("r0", "r1") for m in ("A", "C"))
                   + f'[trace]\npath = "t.parquet"\n{scaling}')
    return cfg


def test_cli_run_with_autoscaling_writes_consistent_tables(tmp_path):
    _write_trace(_trace(n=600, rate=20.0), tmp_path / "t.parquet")
    cfg = _config(tmp_path, '[scaling]\nlevel = 2\nreclaim_delay = 5\nspin_up = 10\nspin_down = 1\ntimer = 5\n')
    out = ok(invoke("run", cfg, "--out", tmp_path / "out", "--timeline-period", "2.5"))
    assert "scaling: " in out.output and "actions" in out.output
    d = tmp_path / "out"
    ev = pl.read_parquet(d / "scaling_events.parquet")
    assert set(ev["action"].cast(pl.String)) == {"drain", "spot", "reclaim", "donate", "ready"}
    assert ev["time"].is_sorted()
    eps = pl.read_parquet(d / "endpoints.parquet")
    summary = pl.read_parquet(d / "summary.parquet")
    total = summary.filter(pl.col("region") == "all").row(0, named=True)
    assert total["scaling_actions"] == int(eps["scale_ups"].sum() + eps["scale_downs"].sum()) > 0
    assert total["gpu_hours_serving"] == pytest.approx(float(eps["gpu_hours_serving"].sum()), rel=1e-12)
    assert (eps["wasted_gpu_hours"] >= eps["gpu_hours_starting"] + eps["gpu_hours_draining"] - 1e-12).all()
    assert total["gpu_hours_spot"] > 0
    # the run's cost: allocated (non-spot) instance-hours only, the endpoints' costs add up to it
    assert total["cost_usd"] == pytest.approx(float(eps["cost_usd"].sum()), rel=1e-9)
    inst = pl.read_parquet(d / "instances.parquet")
    assert total["energy_j"] > inst["energy_j"].sum() > 0
    # every sample: each region's instances are all somewhere (an endpoint's states, or the spot pool)
    tl = pl.read_parquet(d / "endpoints_timeline.parquet")
    per = tl.group_by("time", "region").agg((pl.col("serving") + pl.col("starting") + pl.col("draining")
                                             + pl.col("spot")).sum().alias("n"))
    assert (per["n"] == 10).all()
    assert np.allclose(np.diff(np.unique(tl["time"].to_numpy())), 2.5)
    # the timeline: serving instances per endpoint, the spot pools with the events; no static pool panel
    from sweepsim.plots.common import read_run
    from sweepsim.plots.timeline import timeline_series
    series = timeline_series(read_run(d))
    panels = {s.panel for s in series}
    assert {"endpoint instances", "spot pool", "endpoint KV"} <= panels and "instances" not in panels
    lines = {s.label: s for s in series if s.panel == "endpoint instances"}
    assert sorted(lines) == ["r0/A", "r0/C", "r1/A", "r1/C"]
    assert any(s.kind == "events" for s in series if s.panel == "spot pool")
    assert all(np.nanmax(s.y) <= 100 for s in series if s.panel == "endpoint KV")
    ok(invoke("plot", "timeline", d, "--out", tmp_path / "t.png"))
    assert (tmp_path / "t.png").stat().st_size > 0
    # the same directory reused without scaling loses the scaling tables
    ok(invoke("run", _config(tmp_path, ""), "--out", d))
    assert not (d / "scaling_events.parquet").exists() and not (d / "endpoints_timeline.parquet").exists()


@pytest.mark.parametrize("scaling, key, text", [
    ({"level": 3}, "scaling.level", "from 0 to 2"),
    ({"level": 1, "policy": "magic"}, "scaling.policy", "allowed"),
    ({"level": 1, "delays": "none"}, "scaling.delays", "allowed"),
    ({"level": 1, "upper": 0.2, "lower": 0.3}, "scaling.lower", "at most scaling.upper"),
    ({"level": 1, "min_instances": 1}, "scaling.min_instances", "from 2"),
    ({"level": 1, "min_instances": 3, "max_instances": 2}, "scaling.max_instances", "at least"),
    ({"level": 1, "speed": 2}, "scaling.speed", "unknown key"),
])
def test_bad_scaling_keys_are_clear_errors(scaling, key, text):
    d = {"region": [{"name": "r0"}], "endpoint": [{"region": "r0", "model": "A", "instances": 4}], "scaling": scaling}
    with pytest.raises(InputError) as e:
        from_dict(d)
    assert e.value.field == key and text in str(e.value)


def test_scaling_needs_one_instance_kind_per_region_and_groups_of_two_or_three():
    mixed = {"region": [{"name": "r0"}], "scaling": {"level": 1},
             "endpoint": [{"region": "r0", "model": "A", "instances": 4},
                          {"region": "r0", "model": "C", "instances": 4, "tensor_parallel": 2}]}
    with pytest.raises(InputError, match="one SKU and tensor parallelism"):
        from_dict(mixed)
    groups = {"region": [{"name": "r0"}], "scaling": {"level": 1},
              "endpoint": [{"region": "r0", "model": "A", "instances": 4, "groups": [4]}]}
    with pytest.raises(InputError, match="groups of 2 or 3"):
        from_dict(groups)
    from_dict({**groups, "scaling": {"level": 0}})   # level 0 moves nothing: any groups


def test_cli_bad_scaling_value_exits_2(tmp_path):
    _write_trace(_trace(n=20), tmp_path / "t.parquet")
    r = invoke("run", _config(tmp_path, '[scaling]\nlevel = 1\npolicy = "magic"\n'), "--out", tmp_path / "o")
    assert r.exit_code == 2 and "scaling.policy" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o").exists()


def test_shipped_scaling_experiment_small(tmp_path):
    out = tmp_path / "grid"
    ok(invoke("grid", ROOT / "configs" / "experiments" / "sageserve_scaling.toml", "--small", "--out", out))
    s = pl.read_parquet(out / "summary.parquet").filter(pl.col("region") == "all").sort("scaling.level")
    assert s["scaling.level"].to_list() == [0, 1, 2]
    assert s["scaling_actions"][0] == 0 and s["scaling_actions"][1] > 0
    assert s["gpu_hours_serving"][1] < s["gpu_hours_serving"][0]
    res = ok(invoke("results", out))
    assert "wasted_gpu_hours" in res.output


def test_models_are_indexed_in_topology_order_whatever_the_trace_order(tmp_path):
    """Spot pools, lock-outs and the events' models follow the topology's model order (here C before A, while the
    trace lists A first); an endpoint's own moves name its own model."""
    from sweepsim.engine.simulate import run
    from sweepsim.results.scaling import scaling_events_table
    tr = _trace(n=600, rate=40.0)
    assert tr.serving.model_names == ("A", "C")
    d = {"region": [{"name": "r0"}, {"name": "r1"}],
         "endpoint": [{"region": r, "model": m, "instances": 5, "tensor_parallel": 2}
                      for r in ("r0", "r1") for m in ("C", "A")],
         "scaling": {"level": 1, "reclaim_delay": 5, "spin_down": 1}}
    cfg = from_dict(d)
    assert cfg.topology.models() == ("C", "A")
    ev = scaling_events_table(run(cfg, tr))
    assert len(ev) > 0 and set(ev["model"].cast(pl.String)) == {"A", "C"}
    assert (ev["model"].cast(pl.String) == ev["source_model"].cast(pl.String)).all()   # level 1: no donation


def test_donation_draws_make_the_seed_matter_in_sweeps():
    """A sweep simulates configurations that differ only by seed once, unless they draw random numbers: level-2
    autoscaling draws its donations from the seed's stream."""
    from dataclasses import replace

    from sweepsim.sweep.jobs import simulation_key
    d = {"region": [{"name": "r0"}], "endpoint": [{"region": "r0", "model": m, "instances": 4} for m in ("A", "C")]}
    for level, differ in ((0, False), (1, False), (2, True)):
        cfg = from_dict({**d, "scaling": {"level": level}})
        assert (simulation_key(cfg) != simulation_key(replace(cfg, seed=cfg.seed + 1))) == differ
