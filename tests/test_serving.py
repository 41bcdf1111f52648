"""Topologies (regions, model endpoints, request classes): equivalence with a single ORCA cluster, configuration
errors, results tables and the CLI end to end. Hand-computed dynamics: tests/test_serving_hand.py; the kernel
against the plain-Python reference: tests/test_serving_differential.py."""
import numpy as np
import polars as pl
import pytest

from sweepsim.config.run import from_dict, load_config
from sweepsim.config.topology import replica_groups
from sweepsim.engine.simulate import run
from sweepsim.errors import InputError
from sweepsim.results.tables import write_run
from sweepsim.workload.trace import Serving, Trace, load_trace
from pathlib import Path

from tests.cli_helpers import invoke, ok

ORACLE = Path(__file__).parent / "oracle"

CASES = ("baseline_h100_tokenjsq", "splitwise_hh_code")


def _one_endpoint(model, n, scheduler="token_jsq", trace=None, **extra):
    d = {"region": [{"name": "r0"}],
         "endpoint": [{"region": "r0", "model": model, "instances": n, "groups": [n], "scheduler": scheduler}],
         **extra}
    if trace:
        d["trace"] = str(trace)
    return from_dict(d)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("scheduler", ["token_jsq", "jsq"])
def test_one_region_one_group_is_bit_identical_to_an_orca_cluster(case, scheduler):
    trace = load_trace(ORACLE / case / "trace.csv")
    for model, n in (("llama2-70b", 3), ("bloom-176b", 2)):
        topo = _one_endpoint(model, n, scheduler)
        plain = from_dict({"model": model, "start_state": "orca", "scheduler": scheduler, "cluster": {"dgx-a100": n}})
        a, b = run(topo, trace), run(plain, trace)
        for f in ("prompt_start", "prompt_end", "token_start", "token_end", "prompt_instance", "completed",
                  "busy_time", "iterations", "tokens_served"):
            assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
        assert np.array_equal(a.fed_time, trace.arrival) and np.all(a.endpoint == 0)


def test_replica_groups_follow_sageserve():
    assert replica_groups(20) == (3, 3, 3, 3, 3, 3, 2)
    assert replica_groups(16) == (3, 3, 3, 3, 2, 2)
    assert replica_groups(8) == (3, 3, 2)
    assert replica_groups(4) == (2, 2)
    assert replica_groups(2) == (2,)
    assert replica_groups(3) == (3,)
    for n in range(2, 60):
        g = replica_groups(n)
        assert sum(g) == n and set(g) <= {2, 3}


def test_shipped_topologies_load():
    for name, eps in (("us3", 12), ("us3_dp", 24), ("us3_llama_bloom", 6), ("us3_llama_bloom_dp", 12)):
        cfg = from_dict({"topology": name})
        assert len(cfg.topology.endpoints) == eps and cfg.topology.regions == ("westus", "centralus", "eastus")
    cfg = from_dict({"topology": "us3", "instances": {"westus": {"A": 5}}, "routing": {"delay": 1.0}})
    assert cfg.topology.endpoints[0].instances == 5 and cfg.topology.endpoints[0].group_sizes() == (3, 2)
    assert cfg.topology.routing.delay == 1.0 and cfg.params()["instances.westus.A"] == 5


@pytest.mark.parametrize("d, key, text", [
    ({"topology": "nope"}, "topology", "unknown topology"),
    ({"topology": "us3", "cluster": {"dgx-a100": 1}}, "cluster", "does not apply"),
    ({"topology": "us3", "model": "A"}, "model", "does not apply"),
    ({"topology": "us3", "event_order": "reference"}, "event_order", "by_kind"),
    ({"topology": "us3", "instances": {"mars": {"A": 3}}}, "instances.mars", "unknown key"),
    ({"topology": "us3", "instances": {"westus": {"Z": 3}}}, "instances.westus.Z", "unknown key"),
    ({"topology": "us3", "routing": {"threshold": 2}}, "routing.threshold", "from 0 to 1"),
    ({"topology": "us3", "feeding": {"bands": "fast"}}, "feeding.bands", "unknown preset"),
    ({"topology": "us3", "feeding": {"bands": [[0.6, 1], [0.5, 2]]}}, "feeding.bands", "increase"),
    ({"region": [{"name": "a"}], "endpoint": [{"region": "b", "model": "A", "instances": 2}]}, "endpoint[0].region",
     "unknown region"),
    ({"region": [{"name": "a"}], "endpoint": [{"region": "a", "model": "A", "instances": 4, "groups": [2, 1]}]},
     "endpoint[0].groups", "sum to 3"),
    ({"region": [{"name": "a"}], "endpoint": [{"region": "a", "model": "A", "instances": 1}]}, "endpoint[0].instances",
     "at least 2"),
    ({"region": [{"name": "a"}], "endpoint": [{"region": "a", "model": "Q", "instances": 2}]}, "endpoint[0].model",
     "unknown model"),
    ({"region": [{"name": "a"}], "endpoint": [{"region": "a", "model": "A", "instances": 2},
                                              {"region": "a", "model": "A", "workload": "dev", "instances": 2}]},
     "endpoint[0]", "all shared or all siloed"),
])
def test_bad_topologies_name_the_key(d, key, text):
    with pytest.raises(InputError) as e:
        from_dict(d)
    assert e.value.field == key and text in str(e.value)


def _trace(n=400, seed=0, models=("A", "C"), classes=(0.7, 0.15, 0.15), orders=(("r0", "r1"), ("r1", "r0")),
           rate=40.0):
    rng = np.random.default_rng(seed)
    arrival = np.sort(rng.uniform(0, n / rate, n))
    u = rng.random(n)
    dev = u >= classes[0] + classes[1]
    batch = (u >= classes[0]) & ~dev
    sv = Serving(tuple(sorted(models)), rng.integers(0, len(models), n).astype(np.int32), dev.astype(np.int8),
                 np.where(batch, 7, -1).astype(np.int64), np.where(dev, 600.0, np.where(batch, 300.0, 30.0)),
                 orders, rng.integers(0, len(orders), n).astype(np.int32))
    return Trace("synthetic", np.arange(n, dtype=np.int64), np.zeros(n, np.int64), arrival,
                 rng.integers(20, 1500, n).astype(np.int64), rng.integers(1, 300, n).astype(np.int64), {}, sv)


TWO_REGIONS = {"region": [{"name": "r0"}, {"name": "r1"}],
               "endpoint": [{"region": r, "model": m, "instances": 2} for r in ("r0", "r1") for m in ("A", "C")]}


def test_every_class_is_served_and_tables_add_up(tmp_path):
    tr = _trace()
    res = run(from_dict(TWO_REGIONS), tr)
    assert res.completed.all()
    tabs = write_run(res, tmp_path)
    req = tabs["requests"]
    cls = tr.serving.request_class()
    fed = req["fed_time"].to_numpy()
    assert np.array_equal(fed[cls == 0], tr.arrival[cls == 0])        # interactive: routed at arrival
    assert np.all(fed[cls != 0] >= tr.arrival[cls != 0])                # never fed before its arrival
    assert np.allclose(req["ttft"].to_numpy() + fed, req["ttft_from_arrival"].to_numpy() + tr.arrival)
    s = tabs["summary"]
    total = s.filter(pl.col("region") == "all")
    assert total["requests"].item() == len(tr) and s.filter(pl.col("region") != "all")["requests"].sum() == len(tr)
    assert set(s["request_class"]) == {"interactive", "batch", "dev", "all"}
    ep = tabs["endpoints"]
    assert ep["instances"].sum() == 8 and ep["requests_completed"].sum() == len(tr)
    assert ((ep["kv_utilization"] > 0) & (ep["kv_utilization"] < 1)).all()
    assert (ep["batch_queued"] + ep["dev_queued"]).sum() == 0
    sla = req["sla"].to_numpy()
    met = req["slo_met"].to_numpy()
    assert np.array_equal(met.astype(bool), req["e2e_from_arrival"].to_numpy() <= sla)
    # energy and cost per endpoint add up to the cluster's
    assert ep["cost_usd"].sum() == pytest.approx(total["cost_usd"].item())
    assert ep["energy_j"].sum() == pytest.approx(total["energy_j"].item())


def test_without_feeding_queued_work_stays_queued(tmp_path):
    tr = _trace()
    cfg = from_dict({**TWO_REGIONS, "feeding": {"enabled": False}})
    res = run(cfg, tr)
    cls = tr.serving.request_class()
    assert res.completed[cls == 0].all() and not res.completed[cls != 0].any()
    assert np.isnan(res.fed_time[cls != 0]).all() and (res.endpoint[cls != 0] == -1).all()
    ep = write_run(res, tmp_path)["endpoints"]
    assert ep["batch_queued"].sum() == (cls == 1).sum() and ep["dev_queued"].sum() == (cls == 2).sum()


def test_sageserve_feeding_only_on_completions_starts_nothing_on_an_idle_endpoint():
    # every request is batch work: without on_enqueue nothing ever completes, so nothing is ever fed
    tr = _trace(classes=(0.0, 1.0, 0.0))
    res = run(from_dict({**TWO_REGIONS, "feeding": {"on_enqueue": False, "bands": "sageserve"}}), tr)
    assert not res.completed.any()
    res = run(from_dict({**TWO_REGIONS, "feeding": {"bands": "sageserve"}}), tr)
    assert res.completed.all()


def test_routing_delay_shifts_an_idle_request_by_the_delay():
    tr = _trace(n=1, classes=(1.0, 0.0, 0.0))
    a = run(from_dict(TWO_REGIONS), tr)
    b = run(from_dict({**TWO_REGIONS, "routing": {"delay": 1.0}}), tr)
    assert b.prompt_start[0] == a.prompt_start[0] + 1.0 and b.fed_time[0] == a.fed_time[0] == tr.arrival[0]


def test_trace_errors_name_the_request():
    tr = _trace(models=("A", "Q"))
    with pytest.raises(InputError, match="model 'Q' is not served"):
        run(from_dict(TWO_REGIONS), tr)
    tr = _trace(orders=(("r0", "mars"),))
    with pytest.raises(InputError, match="unknown region 'mars'"):
        run(from_dict(TWO_REGIONS), tr)
    plain = Trace("p", np.arange(3), np.zeros(3, np.int64), np.arange(3.0), np.full(3, 10), np.full(3, 5))
    with pytest.raises(InputError, match="serves several models"):
        run(from_dict(TWO_REGIONS), plain)
    one = from_dict({"region": [{"name": "r0"}], "endpoint": [{"region": "r0", "model": "A", "instances": 2}]})
    assert run(one, plain).completed.all()      # a plain trace on a one-model topology: interactive prod traffic


def test_siloed_endpoints_take_their_workload():
    d = {"region": [{"name": "r0"}, {"name": "r1"}],
         "endpoint": [{"region": r, "model": "A", "workload": w, "instances": 2} for r in ("r0", "r1")
                      for w in ("prod", "dev")] + [{"region": r, "model": "C", "instances": 2} for r in ("r0", "r1")]}
    cfg = from_dict(d)
    tr = _trace()
    res = run(cfg, tr)
    names = [f"{e.region}/{e.name}" for e in cfg.topology.endpoints]
    model = np.array(tr.serving.model_names)[tr.serving.model]
    dev = tr.serving.workload == 1
    got = np.array(names)[res.endpoint]
    assert all(g.endswith("A-d") for g in got[(model == "A") & dev])
    assert all(g.endswith("A-p") for g in got[(model == "A") & ~dev])
    assert all(g.endswith("/C") for g in got[model == "C"])


def test_cli_run_with_a_topology(tmp_path):
    tr = _trace()
    import pyarrow as pa
    import pyarrow.parquet as pq
    sv = tr.serving
    pq.write_table(pa.table({
        "request_id": tr.request_id, "arrival_timestamp": tr.arrival, "prompt_size": tr.prompt_size,
        "token_size": tr.token_size, "model": np.array(sv.model_names)[sv.model],
        "workload": np.where(sv.workload == 1, "dev", "prod"), "batch_id": sv.batch_id, "sla": sv.sla,
        "regions": np.array([",".join(o) for o in sv.region_orders])[sv.regions]}), tmp_path / "t.parquet")
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "two"\n[[region]]\nname = "r0"\n[[region]]\nname = "r1"\n'
                   + "".join(f'[[endpoint]]\nregion = "{r}"\nmodel = "{m}"\ninstances = 2\n'
                             for r in ("r0", "r1") for m in ("A", "C"))
                   + '[feeding]\nbands = "sageserve"\n[trace]\npath = "t.parquet"\n')
    out = ok(invoke("run", cfg, "--out", tmp_path / "out"))
    assert "| all" in out.output and "endpoints: 4" in out.output
    req = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    assert {"region", "endpoint", "model", "workload", "request_class", "fed_time", "slo_met"} <= set(req.columns)
    assert pl.read_parquet(tmp_path / "out" / "endpoints.parquet").height == 4
    # the report and the timeline read a topology run: endpoint KV utilisation and queued work panels
    ok(invoke("report", tmp_path / "out", "--out", tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert "Endpoints (4)" in page and "all requests" in page
    from sweepsim.plots.common import read_run
    from sweepsim.plots.timeline import timeline_series
    series = timeline_series(read_run(tmp_path / "out"))
    kv = [x for x in series if x.panel == "endpoint KV"]
    assert sorted(x.label for x in kv) == ["r0/A", "r0/C", "r1/A", "r1/C"]
    assert all(0 <= x.y.max() <= 100 for x in kv) and max(x.y.max() for x in kv) > 0
    assert {x.label.split()[0] for x in series if x.panel == "queued"} == {"batch", "dev"}
    # the same directory reused by a plain run loses the stale endpoints table
    plain = load_config(ORACLE / "baseline_h100_tokenjsq" / "case.toml")
    assert plain.topology is None


@pytest.mark.parametrize("d, key, text", [
    ({"region": [{"name": "all"}], "endpoint": [{"region": "all", "model": "A", "instances": 2}]}, "region[0].name",
     "not 'all'"),
    ({"region": [{"name": "west,us"}], "endpoint": [{"region": "west,us", "model": "A", "instances": 2}]},
     "region[0].name", "letters, digits"),
    ({"topology": "us3", "routing": 1}, "routing", "must be a table"),
    ({"topology": "us3", "feeding": "x"}, "feeding", "must be a table"),
])
def test_more_bad_topologies(d, key, text):
    with pytest.raises(InputError) as e:
        from_dict(d)
    assert e.value.field == key and text in str(e.value)


def test_region_tokens_are_ascii_names_or_indices(tmp_path):
    one = {"region": [{"name": "r0"}, {"name": "r1"}, {"name": "r2"}],
           "endpoint": [{"region": r, "model": "A", "instances": 2} for r in ("r0", "r1", "r2")]}
    for token in ("²", "٢"):
        tr = _trace(n=3, models=("A",), orders=((token,),))
        with pytest.raises(InputError, match="unknown region"):
            run(from_dict(one), tr)
    tr = _trace(n=3, models=("A",), orders=(("2", "0"),))
    assert set(run(from_dict(one), tr).endpoint) == {2}


def test_never_fed_requests_are_queued_not_stalled_and_rejected_ones_not_queued(tmp_path):
    sv = Serving(("A",), np.zeros(4, np.int32), np.array([0, 0, 1, 0], np.int8), np.array([-1, 3, -1, -1]),
                 np.full(4, np.nan), ((),), np.zeros(4, np.int32))
    tr = Trace("t", np.arange(4), np.zeros(4, np.int64), np.array([0.0, 0.5, 1.0, 3.0]),
               np.array([100, 10 ** 9, 100, 100]), np.full(4, 10), {}, sv)
    cfg = from_dict({**TWO_REGIONS, "oversized_requests": "reject", "feeding": {"enabled": False}})
    tr2 = Trace("t", tr.request_id, tr.application_id, tr.arrival, tr.prompt_size, tr.token_size, {},
                Serving(("A", "C"), sv.model, sv.workload, sv.batch_id, sv.sla, sv.region_orders, sv.regions))
    tabs = write_run(run(cfg, tr2), tmp_path)
    req = tabs["requests"]
    assert req["rejected"].to_list() == [False, True, False, False]
    assert req["stalled"].to_list() == [False, False, False, False]   # request 2 (dev) waits in its queue
    ep = tabs["endpoints"]
    assert ep["batch_queued"].sum() == 0 and ep["dev_queued"].sum() == 1


def test_editing_a_topology_file_reruns_the_sweep(tmp_path):
    from sweepsim.sweep.jobs import config_hash
    topo = tmp_path / "t.toml"
    topo.write_text('[[region]]\nname = "r0"\n[[endpoint]]\nregion = "r0"\nmodel = "A"\ninstances = 2\n')
    raw = {"topology": str(topo)}
    h1 = config_hash(raw, from_dict(raw))
    topo.write_text('[[region]]\nname = "r0"\n[[endpoint]]\nregion = "r0"\nmodel = "A"\ninstances = 6\n')
    assert config_hash(raw, from_dict(raw)) != h1


def test_unsigned_batch_ids_beyond_int64_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"request_id": [0], "arrival_timestamp": [0.0], "prompt_size": [10], "token_size": [10],
                             "batch_id": pa.array([2 ** 63], pa.uint64())}), tmp_path / "u.parquet")
    with pytest.raises(InputError, match="at most"):
        load_trace(tmp_path / "u.parquet")


@pytest.mark.parametrize("topology", [True, False])
def test_large_runs_write_requests_in_chunks_with_the_same_tables(tmp_path, monkeypatch, topology):
    import sweepsim.results.tables as tables
    tr = _trace(n=2500, seed=3)
    if topology:
        res = run(from_dict(TWO_REGIONS), tr)
    else:
        plain = Trace("p", tr.request_id, tr.application_id, tr.arrival, tr.prompt_size, tr.token_size)
        res = run(from_dict({"model": "llama2-70b", "start_state": "orca", "cluster": {"dgx-a100": 2}}), plain)
    whole = write_run(res, tmp_path / "whole")
    monkeypatch.setattr(tables, "CHUNK_ROWS", 700)
    chunked = write_run(res, tmp_path / "chunked")
    assert set(chunked["requests"].columns) < set(whole["requests"].columns)   # only what the summary reads
    for name in ("requests", "summary", "instances") + (("endpoints",) if topology else ()):
        a = pl.read_parquet(tmp_path / "whole" / f"{name}.parquet")
        b = pl.read_parquet(tmp_path / "chunked" / f"{name}.parquet")
        assert a.schema == b.schema and a.equals(b), name


def test_iteration_overhead_adds_to_every_iteration():
    """One request alone (prompt 100, 5 output tokens) on a constant model: 1 prompt iteration, then 4 decode
    iterations; each iteration 0.01 s longer with SageServe's parity overhead."""
    tr = Trace("t", np.arange(1), np.zeros(1, np.int64), np.zeros(1), np.array([100]), np.array([5]))
    pm = {"kind": "constant", "prompt_time": 0.1, "token_time": 0.03}
    base = {"region": [{"name": "r0"}], "endpoint": [{"region": "r0", "model": "A", "instances": 2}]}
    a = run(from_dict({**base, "performance_model": pm}), tr)
    b = run(from_dict({**base, "performance_model": {**pm, "iteration_overhead": 0.01}}), tr)
    assert a.prompt_end[0] == pytest.approx(0.1) and b.prompt_end[0] == pytest.approx(0.11)
    assert a.token_end[0] == pytest.approx(0.1 + 4 * 0.03) and b.token_end[0] == pytest.approx(0.11 + 4 * 0.04)
    with pytest.raises(InputError, match="from 0 to 10"):
        from_dict({**base, "performance_model": {**pm, "iteration_overhead": -1}})


@pytest.mark.parametrize("letter, profiled", [("A", "llama2-70b"), ("B", "bloom-176b")])
def test_models_a_and_b_run_as_their_profiled_models(letter, profiled):
    """SageServe's A and B use llama2-70b's and bloom-176b's profiled data (same weights and KV bytes): a topology
    of A (B) gives exactly the results of the same topology of llama2-70b (bloom-176b); C uses the roofline model."""
    trace = load_trace(ORACLE / "baseline_h100_tokenjsq" / "trace.csv")
    a, b = (run(_one_endpoint(m, 3), trace) for m in (letter, profiled))
    for f in ("prompt_end", "token_end", "prompt_instance"):
        assert np.array_equal(getattr(a, f), getattr(b, f), equal_nan=True), f
    from sweepsim.engine.performance import build_tables, profiled_key
    assert profiled_key(("C", "a100-80gb", 8)) == ("C", "a100-80gb", 8)
    cfg = from_dict({"topology": "us3"})
    t = build_tables(cfg.performance_model, [(letter, "a100-80gb", 8), ("C", "a100-80gb", 8)])
    db = build_tables(cfg.performance_model, [(profiled, "a100-80gb", 8)])
    from kernels.state_nb import PTI
    k = db.i[PTI.n_knots, 0]
    assert t.i[PTI.n_knots, 0] == k and np.array_equal(t.y[:, 0, :k], db.y[:, 0, :k])   # the profiled curve
    assert not np.array_equal(t.y[:, 1, :k], db.y[:, 0, :k])                             # C: the roofline's


def test_topology_db_model_falls_back_to_roofline_unless_told():
    for pm in (None, "db", {"iteration_overhead": 0.01}, {"kind": "db", "scale": 1.1}):
        d = {"topology": "us3"} | ({"performance_model": pm} if pm is not None else {})
        assert from_dict(d).performance_model.fallback == "roofline"
    assert from_dict({"topology": "us3", "performance_model": "roofline"}).performance_model.fallback is None
    strict = from_dict({"topology": "us3", "performance_model": {"kind": "db", "fallback": "none"}})
    with pytest.raises(InputError, match="no profiled data for model/hardware/tp C"):
        run(strict, _trace(models=("A", "C"), orders=(("westus",),)))
    cfg = load_config(Path(__file__).parent.parent / "configs" / "examples" / "us3_small.toml",
                      ["performance_model.iteration_overhead=0.01"])
    assert cfg.performance_model.fallback == "roofline" and cfg.performance_model.iteration_overhead == 0.01


def test_feed_bands_are_labelled_by_preset_name_in_summaries():
    base = {"region": [{"name": "r0"}], "endpoint": [{"region": "r0", "model": "A", "instances": 2}]}
    assert from_dict({**base, "feeding": {"bands": "sageserve"}}).params()["feeding.bands"] == "sageserve"
    assert from_dict({**base, "feeding": {"bands": [[0.5, 1], [0.6, 2]]}}).params()["feeding.bands"] == "sageserve"
    assert from_dict({**base, "feeding": {"bands": [[0.4, 3]]}}).params()["feeding.bands"] == "0.4:3"


def test_sweep_config_json_reruns_the_configuration(tmp_path):
    """configs.parquet keeps each configuration in its own key order: generator mixes draw in that order."""
    import json
    exp = tmp_path / "e.toml"
    exp.write_text('name = "e"\n[config]\ntopology = "us3"\n[config.instances.westus]\nA = 2\n'
                   '[trace]\nsizes = "azure-conv"\nrate = 5\nduration = 5\nseed = 0\n'
                   'workload = {prod = 0.85, batch = 0.05, dev = 0.10}\n'
                   'region = {westus = 0.5, centralus = 0.3, eastus = 0.2}\n'
                   'regions = ["westus", "centralus", "eastus"]\n'
                   'model = {D = 0.5, A = 0.5}\n[grid]\n"routing.threshold" = [0.5]\n')
    ok(invoke("grid", exp, "--out", tmp_path / "out"))
    doc = json.loads(pl.read_parquet(tmp_path / "out" / "configs.parquet")["config_json"][0])
    assert list(doc["trace"]["workload"]) == ["prod", "batch", "dev"]
    assert list(doc["trace"]["model"]) == ["D", "A"] and list(doc["trace"]["region"])[0] == "westus"


def test_timeline_colours_are_distinct_for_up_to_20_endpoints():
    from sweepsim.plots.timeline import _endpoint_color
    assert len({_endpoint_color(k, 12) for k in range(12)}) == 12
    assert _endpoint_color(3, 4) == "C3"
