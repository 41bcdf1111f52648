"""Capacity search (``sweepsim search``): a capacity known by construction, agreement with an exhaustive rate
grid, pruning that never drops the cheapest feasible shape, an SLO no rate meets, resume, bad input."""
import math

import numpy as np
import polars as pl
import pytest

from sweepsim import PROJECT_ROOT
from sweepsim.config.experiment import load_experiment, validate_points
from sweepsim.search.capacity import ProbeRunner, candidates, max_rate_search, rate_grid
from sweepsim.search.cheapest import cheapest_search
from sweepsim.search.slo import parse_slos
from tests.cli_helpers import assert_input_error, invoke, ok

SERVICE_S = 0.1 + 10 * 0.01   # prompt iteration + 10 decode iterations (token_size 11), one request at a time


@pytest.fixture(autouse=True)
def trace_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / "trace-cache"))


def single_server_experiment(path, duration=60):
    """One instance serving one request at a time (max_batch_size 1), constant iteration times, fixed sizes and
    (nearly) deterministic arrivals: with arrivals every 1/rate s the e2e stays SERVICE_S exactly as long as
    1/rate >= SERVICE_S, and grows without bound beyond: the capacity is 1 / SERVICE_S = 5 requests/s."""
    path.write_text(f'''name = "single"
[config]
model = "llama2-70b"
start_state = "orca"
scheduler = "round_robin"
cluster = {{ dgx-h100 = 1 }}
performance_model = {{ kind = "constant", prompt_time = 0.1, token_time = 0.01 }}
instance = {{ max_batch_size = 1, tensor_parallel = 8 }}
[trace]
sizes = "fixed:100,11"
rate = 1
cv = 0.000001
duration = {duration}
seed = 3
''')
    return path


#: 3 x 3 Splitwise-HA shapes (its --small variant), 30-second conversation traces
SHAPES = PROJECT_ROOT / "configs" / "experiments" / "splitwise_ha_search.toml"


def load(path, small=True):
    exp = load_experiment(path, small=small)
    return candidates(exp.points, validate_points(exp), exp.varied, exp.source)


def test_capacity_known_by_construction(tmp_path):
    exp = single_server_experiment(tmp_path / "exp.toml")
    r = ok(invoke("search", exp, "--slo", "e2e_max<=0.25", "--rate-range", "1:20", "--tol", "0.02",
                  "--out", tmp_path / "out", "--quiet"))
    cap = pl.read_parquet(tmp_path / "out" / "capacity.parquet")
    assert cap.height == 1
    rate = cap["max_rate_rps"][0]
    assert 1 / SERVICE_S / 1.02 <= rate <= 1 / SERVICE_S, rate
    assert cap["e2e_max"][0] == pytest.approx(SERVICE_S, abs=1e-9)
    # at most ceil(log2(n + 1)) probes for n grid rates
    n = len(rate_grid(1, 20, 0.02))
    assert math.floor(math.log2(n + 1)) <= cap["probes"][0] <= math.ceil(math.log2(n + 1))
    assert "capacity.parquet" in r.stdout
    # resume: everything comes from probes.parquet
    r = ok(invoke("search", exp, "--slo", "e2e_max<=0.25", "--rate-range", "1:20", "--tol", "0.02",
                  "--out", tmp_path / "out", "--quiet"))
    assert "(0 simulated now" in r.stdout
    assert pl.read_parquet(tmp_path / "out" / "capacity.parquet")["max_rate_rps"][0] == rate


@pytest.mark.parametrize("prune", [True, False])
def test_bisection_agrees_with_an_exhaustive_rate_grid(tmp_path, prune):
    """With prune, shapes are searched coarse to fine and start from the brackets of the shapes they lie between."""
    cands = load(SHAPES)
    slos = parse_slos("ttft_p90<=1.5,tbt_p90<=0.2")
    rates = rate_grid(2, 60, 0.2)
    runner = ProbeRunner(tmp_path / "out")
    caps = max_rate_search(cands, rates, slos, runner, prune=prune)
    ran = runner.simulated_probes
    runner.run([(c, float(r)) for c in cands for r in rates])   # the whole grid
    for c, cap in zip(cands, caps):
        ok_ = np.array([runner.outcome(c.key, float(r), slos) for r in rates])
        assert ok_[0], c.varied                                    # the case is meaningful:
        assert not ok_[-1], c.varied                               # a boundary inside the range
        assert np.all(np.diff(ok_.astype(int)) <= 0), (c.varied, ok_)   # and monotone
        assert cap.max_rate == rates[np.flatnonzero(ok_)[-1]]
    assert ran < len(cands) * len(rates) / 2   # bisection simulated less than half of the grid's probes
    assert len({c.max_rate for c in caps}) > 2
    if prune:   # the shapes between known ones need fewer probes than a bisection of their own
        assert ran < sum(math.ceil(math.log2(len(rates) + 1)) for _ in cands) * 0.8


@pytest.mark.parametrize("rate, minimize", [(6.0, "cost"), (14.0, "cost"), (14.0, "gpus"), (10.0, "energy")])
def test_pruning_never_drops_the_cheapest_feasible_shape(tmp_path, rate, minimize):
    cands = load(SHAPES)
    slos = parse_slos("ttft_p90<=1.5,tbt_p90<=0.2")
    pruned_runner = ProbeRunner(tmp_path / "a")
    pruned = cheapest_search(cands, rate, slos, pruned_runner, minimize, prune=True, batch=2)
    full = cheapest_search(cands, rate, slos, ProbeRunner(tmp_path / "b"), minimize, prune=False, batch=2)
    assert {v.status for v in full} <= {"feasible", "infeasible"}
    best_full = min((v for v in full if v.status == "feasible"), key=lambda v: v.objective)
    best_pruned = min((v for v in pruned if v.status == "feasible"), key=lambda v: v.objective)
    assert best_pruned.candidate.key == best_full.candidate.key
    assert best_pruned.objective == best_full.objective
    # pruning is consistent with the exhaustive answers and saves simulations
    truth = {v.candidate.key: v.status for v in full}
    for v in pruned:
        if v.status in ("feasible", "infeasible"):
            assert truth[v.candidate.key] == v.status
        elif v.status == "pruned_infeasible":
            assert truth[v.candidate.key] == "infeasible"
    if minimize != "energy":
        assert pruned_runner.simulated_probes < len(cands)


def test_cli_target_rate_reports_the_cheapest_and_what_was_pruned(tmp_path):
    r = ok(invoke("search", SHAPES, "--small", "--slo", "ttft_p90<=1.5,tbt_p90<=0.2", "--target-rate", "14", "--out",
                  tmp_path / "out", "--quiet"))
    df = pl.read_parquet(tmp_path / "out" / "cheapest.parquet")
    assert df.height == 9
    assert "cheapest meeting the SLOs at 14 req/s" in r.stdout
    assert set(df["status"]) <= {"feasible", "infeasible", "pruned_costlier", "pruned_infeasible", "pruned_bound"}
    assert (df["status"].str.starts_with("pruned")).sum() > 0
    assert df.filter(pl.col("simulated"))["status"].is_in(["feasible", "infeasible"]).all()


def test_an_slo_no_rate_meets_gives_rate_zero_with_a_message(tmp_path):
    exp = single_server_experiment(tmp_path / "exp.toml", duration=20)
    r = ok(invoke("search", exp, "--slo", "e2e_max<=0.1", "--rate-range", "1:10", "--out", tmp_path / "out",
                  "--quiet"))
    cap = pl.read_parquet(tmp_path / "out" / "capacity.parquet")
    assert cap["max_rate_rps"][0] == 0.0
    assert "not met even at 1 req/s" in cap["note"][0]
    assert "meet the SLOs at no rate of the range" in r.stderr


def test_shapes_of_different_workloads_are_not_compared(tmp_path):
    """Pruning compares server counts only between configurations that are otherwise identical, workload
    included: the same cluster serving another trace is another group."""
    from sweepsim.search.capacity import dominance
    exp = tmp_path / "two.toml"
    exp.write_text(SHAPES.read_text().replace('[grid]\n', '[grid]\n"trace.sizes" = ["azure-conv", "azure-code"]\n')
                   .replace('[small.grid]\n', '[small.grid]\n"trace.sizes" = ["azure-conv", "azure-code"]\n'))
    cands = load(exp)
    assert len(cands) == 18
    dom = dominance(cands)
    sizes = [c.varied["trace.sizes"] for c in cands]
    for i in range(18):
        for j in range(18):
            if sizes[i] != sizes[j]:
                assert not dom[i, j]
    assert dom.sum() == 2 * 36     # within each workload: 3 x 3 shapes, 36 ordered pairs (i covers j, i == j too)


def test_bad_search_input_is_one_line(tmp_path):
    exp = single_server_experiment(tmp_path / "exp.toml")
    out = tmp_path / "out"
    assert_input_error(invoke("search", exp, "--slo", "latency<=1", "--out", out), "--slo", "unknown metric")
    assert_input_error(invoke("search", exp, "--slo", "e2e_max=1", "--out", out), "--slo", "METRIC<=VALUE")
    assert_input_error(invoke("search", exp, "--slo", "e2e_max<=1", "--rate-range", "9:3", "--out", out),
                       "--rate-range")
    assert_input_error(invoke("search", exp, "--slo", "e2e_max<=1", "--rate-range", "fast", "--out", out),
                       "--rate-range", "LO:HI")
    fixed = tmp_path / "file.toml"
    fixed.write_text(exp.read_text().replace('[trace]\nsizes = "fixed:100,11"\nrate = 1\ncv = 0.000001\n'
                                             'duration = 60\nseed = 3\n', '[trace]\npath = "traces/test_trace.csv"\n'))
    assert "path" in fixed.read_text()
    assert_input_error(invoke("search", fixed, "--slo", "e2e_max<=1", "--out", out), "generator table")
    counted = tmp_path / "count.toml"
    counted.write_text(exp.read_text().replace("duration = 60", "count = 100"))
    assert_input_error(invoke("search", counted, "--slo", "e2e_max<=1", "--out", out), "trace.duration")
    db = tmp_path / "no_a100.csv"
    db.write_text("\n".join(line for line in (PROJECT_ROOT / "data" / "perf_model.csv").read_text().splitlines()
                            if "a100-80gb" not in line) + "\n")
    dbexp = tmp_path / "db.toml"
    dbexp.write_text(exp.read_text().replace('model = "llama2-70b"', 'model = "llama2-70b"\nperformance_model = '
                                             f'{{ kind = "db", path = "{db}" }}').replace(
        'performance_model = { kind = "constant", prompt_time = 0.1, token_time = 0.01 }\n', ''))
    assert_input_error(invoke("search", dbexp, "--slo", "ttft_slowdown_p99<=6", "--out", out), "slowdown_hardware",
                       "a100-80gb/tp8")
    assert not out.exists()


def test_capacity_front_plot_and_results_table(tmp_path):
    out = tmp_path / "out"
    ok(invoke("search", SHAPES, "--small", "--slo", "ttft_p90<=1.5,tbt_p90<=0.2", "--out", out, "--quiet"))
    png = tmp_path / "front.png"
    ok(invoke("plot", "sweep", out, "--table", "capacity", "--x", "cost_per_hour_usd", "--y", "max_rate_rps",
              "--hue", "cluster.dgx-h100", "--pareto", "-o", png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = ok(invoke("results", out, "--table", "capacity", "--sort", "max_rate_rps", "--desc", "--top", "3"))
    lines = r.stdout.splitlines()
    assert "cluster.dgx-h100" in lines[0] and "max_rate_rps" in lines[0]
    cap = pl.read_parquet(out / "capacity.parquet").sort("max_rate_rps", descending=True)
    assert f"{cap['max_rate_rps'][0]:.4f}" in lines[2]
    # the front's objectives default to the right directions: capacity up, cost down
    r = ok(invoke("results", out, "--table", "capacity", "--pareto", "cost_per_hour_usd,max_rate_rps"))
    assert "max_rate_rps" in r.stdout
    assert_input_error(invoke("results", out), "summary.parquet", "sweepsim grid")


def test_screening_on_short_traces(tmp_path):
    """--screen: a first pass on traces a quarter as long bounds each capacity from above; the full-length
    search starts just below it, and every reported answer is simulated at full length."""
    exp = single_server_experiment(tmp_path / "exp.toml")
    ok(invoke("search", exp, "--slo", "e2e_max<=0.25", "--rate-range", "1:20", "--screen", "0.25",
              "--out", tmp_path / "out", "--quiet"))
    cap = pl.read_parquet(tmp_path / "out" / "capacity.parquet")
    assert 1 / SERVICE_S / 1.02 <= cap["max_rate_rps"][0] <= 1 / SERVICE_S
    probes = pl.read_parquet(tmp_path / "out" / "probes.parquet")
    full = probes.filter(~pl.col("key").str.contains("~"))
    assert full["rate"].max() <= cap["max_rate_rps"][0] * 1.03   # nothing simulated at full length far above it
    assert cap["max_rate_rps"][0] in full["rate"].to_list()      # the answer itself was
    # target rate: hopeless shapes are screened out; the cheapest feasible shape is the same as without screening
    cands = load(SHAPES)
    slos = parse_slos("ttft_p90<=1.5,tbt_p90<=0.2")
    plain = cheapest_search(cands, 14.0, slos, ProbeRunner(tmp_path / "a"), prune=False)
    screened = cheapest_search(cands, 14.0, slos, ProbeRunner(tmp_path / "b"), prune=False, screen=0.25)
    assert any(v.status == "screened_out" for v in screened)
    truth = {v.candidate.key: v.status for v in plain}
    assert all(truth[v.candidate.key] == "infeasible" for v in screened if v.status == "screened_out")
    best = [min((v for v in vs if v.status == "feasible"), key=lambda v: v.objective).candidate.key
            for vs in (plain, screened)]
    assert best[0] == best[1]


def test_ray_backend_gives_the_same_capacities(tmp_path):
    pytest.importorskip("ray")
    for backend in ("local", "ray"):
        ok(invoke("search", SHAPES, "--small", "--slo", "ttft_p90<=1.5,tbt_p90<=0.2", "--rate-range", "2:60",
                  "--tol", "0.1", "--backend", backend, "--out", tmp_path / backend, "--quiet"))
    a, b = (pl.read_parquet(tmp_path / k / "capacity.parquet").sort("config_key") for k in ("local", "ray"))
    assert a["max_rate_rps"].to_list() == b["max_rate_rps"].to_list()
    assert a["probes"].to_list() == b["probes"].to_list()


# ------------------------------------------------------------------------------------------ hostile inputs


def test_energy_is_never_pruned_as_costlier(tmp_path):
    """More servers cost more dollars and GPUs, not necessarily more joules per request."""
    cands = load(SHAPES)
    verdicts = cheapest_search(cands, 10.0, parse_slos("ttft_p90<=1.5"), ProbeRunner(tmp_path / "e"), "energy")
    assert not any(v.status == "pruned_costlier" for v in verdicts)


def test_probe_keys_follow_the_files_and_the_mix(tmp_path):
    from sweepsim.search.capacity import candidate_key
    sizes = tmp_path / "sz.csv"
    sizes.write_text((PROJECT_ROOT / "traces" / "test_trace.csv").read_text())
    exp = tmp_path / "f.toml"
    exp.write_text(single_server_experiment(tmp_path / "base.toml").read_text().replace(
        'sizes = "fixed:100,11"', f'sizes = "trace:{sizes}"'))
    before = load(exp, small=False)[0].key
    sizes.write_text(sizes.read_text().replace(",4096,", ",4000,"))
    assert load(exp, small=False)[0].key != before              # the sizes file changed: no stale probes
    mix = tmp_path / "mix.toml"
    text = single_server_experiment(tmp_path / "b2.toml").read_text().split("[trace]")[0]
    keys = []
    for top in (1, 50):   # the second application inherits the top-level rate: the mix changes with it
        mix.write_text(text + f'[trace]\nduration = 30\nseed = 1\nrate = {top}\n[[trace.apps]]\n'
                              'sizes = "fixed:100,11"\nrate = 5\n[[trace.apps]]\nsizes = "fixed:50,5"\n')
        keys.append(load(mix, small=False)[0].key)
    assert keys[0] != keys[1]
    assert candidate_key is not None


@pytest.mark.parametrize("rows, error, needle", [
    ('not json', None, "rows"), ('{"a": 1}', None, "rows"), ('[1, 2]', None, "rows"), ('[]', None, "rows"),
    ('[{"ttft_p90": [1]}]', None, "rows")])
def test_a_damaged_probes_file_is_a_one_line_error(tmp_path, rows, error, needle):
    exp = single_server_experiment(tmp_path / "exp.toml", duration=20)
    out = tmp_path / "out"
    ok(invoke("search", exp, "--slo", "e2e_max<=0.25", "--rate-range", "1:10", "--out", out, "--quiet"))
    probes = pl.read_parquet(out / "probes.parquet")
    bad = probes.with_columns(pl.lit(rows).alias("rows"), pl.lit(error, dtype=pl.String).alias("error"))
    bad.write_parquet(out / "probes.parquet")
    snapshot = (out / "probes.parquet").read_bytes()
    assert_input_error(invoke("search", exp, "--slo", "e2e_max<=0.25", "--rate-range", "1:10", "--out", out),
                       "probes.parquet", needle, "delete it")
    assert (out / "probes.parquet").read_bytes() == snapshot      # not overwritten
    probes.drop("rows").write_parquet(out / "probes.parquet")
    assert_input_error(invoke("search", exp, "--slo", "e2e_max<=0.25", "--rate-range", "1:10", "--out", out),
                       "probes.parquet", "rows")
    probes.with_columns(pl.col("rate").cast(pl.String)).write_parquet(out / "probes.parquet")
    assert_input_error(invoke("search", exp, "--slo", "e2e_max<=0.25", "--rate-range", "1:10", "--out", out),
                       "probes.parquet", "rate")


def test_refused_searches_write_nothing(tmp_path):
    exp = single_server_experiment(tmp_path / "exp.toml", duration=20)
    out = tmp_path / "out"
    cases = [
        (["--slo", "throughput_rps>=10,e2e_max<=1"], ("--slo", "lower bound")),
        (["--slo", "e2e_max<=1,e2e_max<=2"], ("--slo", "twice")),
        (["--slo", "e2e_max<=1", "--rate-range", "0.001:10"], ("--rate-range", "no request")),
        (["--slo", "e2e_max<=1", "--rate-range", "1e-300:1e300"], ("--rate-range", "million")),
        (["--slo", "e2e_max<=1", "--target-rate", "0.001"], ("--target-rate", "no request")),
        (["--slo", "e2e_max<=1", "--target-rate", "1e12"], ("--target-rate",)),
        (["--slo", "e2e_max<=1", "--top", "1000000000000000000000"], ("--top",)),
    ]
    for args, needles in cases:
        assert_input_error(invoke("search", exp, *args, "--out", out), *needles)
        assert not out.exists(), args
    named = tmp_path / "named.toml"
    named.write_text(exp.read_text() + '[grid]\n"vars.max_rate_rps" = [1, 2]\n')
    assert_input_error(invoke("search", named, "--slo", "e2e_max<=1", "--out", out), "max_rate_rps", "rename")
    assert not out.exists()
    # a lower bound is fine at one target rate
    ok(invoke("search", exp, "--slo", "throughput_rps>=1,e2e_max<=1", "--target-rate", "3", "--out", out, "--quiet"))


def test_force_replaces_another_experiments_results(tmp_path):
    exp = single_server_experiment(tmp_path / "exp.toml", duration=20)
    other = tmp_path / "other.toml"
    other.write_text(exp.read_text().replace('name = "single"', 'name = "other"'))
    out = tmp_path / "out"
    ok(invoke("search", exp, "--slo", "e2e_max<=1", "--rate-range", "1:4", "--out", out, "--quiet"))
    assert_input_error(invoke("search", other, "--slo", "e2e_max<=1", "--rate-range", "1:4", "--out", out), "--force")
    ok(invoke("search", other, "--slo", "e2e_max<=1", "--rate-range", "1:4", "--out", out, "--force", "--quiet"))
