"""Hourly plans (sweepsim.planning.planner) and their post-processing (sweepsim.planning.postprocess):
the integer program against brute-force enumeration and the closed form, the over-demand rule, the
strategies on scripted plans, the throughput's monotonicity, and a small whole run."""
import dataclasses
import itertools

import numpy as np
import pytest

from sweepsim.config.run import load_config
from sweepsim.engine.performance import PerfModelConfig
from sweepsim.planning import postprocess as pp
from sweepsim.planning.planner import (SAGESERVE_TPS, closed_form, demand, dev_backlog, instance_throughput,
                                       objective, plan_run, planning_times, sageserve_tps, solve_region)
from sweepsim import PROJECT_ROOT


# ---------------------------------------------------------------- the integer program

def brute_force(d, tps, cur, total, floors, gpu, start, ceilings=None):
    """Every integer vector floors <= n <= ceilings with sum(n) <= total, ranked by (largest unmet fraction,
    sum of unmet fractions, cost) lexicographically; returns the best key and the vectors attaining it."""
    hi = [total] * len(d) if ceilings is None else [min(c, total) for c in ceilings]
    rows = []
    for n in itertools.product(*(range(f, h + 1) for f, h in zip(floors, hi))):
        if sum(n) > total:
            continue
        f = [0.0 if n[m] * tps[m] >= d[m] else 1.0 - n[m] * tps[m] / d[m] for m in range(len(d))]
        cost = sum(gpu[m] * n[m] + start[m] * max(0, n[m] - cur[m]) for m in range(len(d)))
        rows.append((max(f), sum(f), cost, n))
    best = rows
    for i in range(3):
        v = min(r[i] for r in best)
        best = [r for r in best if r[i] <= v + 1e-9]
    return best[0][:3], [r[3] for r in best]


def random_case(rng):
    m = int(rng.integers(2, 4))
    total = int(rng.integers(1, 9))
    floors = [0] * m
    for _ in range(int(rng.integers(0, total + 1))):       # floors summing to at most the total
        floors[int(rng.integers(m))] += int(rng.random() < 0.4)
    tps = rng.choice([50.0, 100.0, 120.0, 300.0, 1000.0], m)
    d = np.where(rng.random(m) < 0.15, 0.0, rng.uniform(0, 4 * total / m, m) * tps)
    cur = rng.integers(0, 6, m)
    gpu = rng.choice([0.0, 1.0, 10.0, 2.5], m) if rng.random() < 0.5 else np.full(m, 10.0)
    start = rng.choice([0.0, 3.0, 150.0], m)
    ceilings = None
    if rng.random() < 0.3:
        ceilings = [max(f, int(c)) for f, c in zip(floors, rng.integers(0, total + 1, m))]
    return d, tps, cur, total, floors, gpu, start, ceilings


def test_milp_matches_brute_force():
    rng = np.random.default_rng(7)
    unique = binding = 0
    for _ in range(250):
        case = random_case(rng)
        d, tps, cur, total, floors, gpu, start, ceilings = case
        n = solve_region(*case[:7], ceilings=ceilings)
        assert n.sum() <= total and np.all(n >= floors)
        if ceilings is not None:
            assert np.all(n <= ceilings)
        key, argmins = brute_force(*case)
        got = objective(n, d, tps, cur, gpu, start)
        assert got == pytest.approx(key, abs=1e-7), (case, n, argmins)
        binding += key[0] > 0
        if len(argmins) == 1:
            unique += 1
            assert tuple(n) == argmins[0], case
    assert unique > 100 and binding > 40      # the cases cover both regimes


def test_closed_form_when_the_total_does_not_bind():
    rng = np.random.default_rng(3)
    for _ in range(100):
        m = int(rng.integers(1, 6))
        tps = rng.uniform(10, 1000, m)
        d = rng.uniform(0, 20, m) * tps * (rng.random(m) < 0.9)
        floors = rng.integers(0, 3, m)
        cur = rng.integers(0, 25, m)
        want = closed_form(d, tps, floors)
        n = solve_region(d, tps, cur, want.sum() + int(rng.integers(0, 10)), floors, rng.uniform(0.1, 20, m),
                         rng.uniform(0, 200, m))
        np.testing.assert_array_equal(n, want)


def test_closed_form_exact_multiples_and_parity_values():
    # n TPS >= D in floating point: exact multiples need no extra instance
    np.testing.assert_array_equal(closed_form([0.3, 300.0, 0.0, 301.0], [0.1, 100.0, 5.0, 100.0], 0), [3, 3, 0, 4])
    np.testing.assert_array_equal(closed_form([205821.0, 0.0], SAGESERVE_TPS[:2], [0, 2]), [1, 2])
    assert solve_region([205821.0, 1.0, 4.9e7, 0.0], SAGESERVE_TPS, 5, 80, 0, 10, 150).tolist() == [1, 1, 2, 0]


def test_over_demand_spreads_the_shortfall():
    tps = SAGESERVE_TPS
    d = [10 * tps[0], 10 * tps[1], tps[2], tps[3]]           # needs 10, 10, 1, 1 instances; the region has 12
    n = solve_region(d, tps, [3, 3, 3, 3], 12, 0, 10, 150)
    assert n.tolist() == [5, 5, 1, 1]                        # every endpoint misses at most half its demand
    # a ceiling caps A at 2 (80% unmet); B, within that bound, then takes every spare instance
    n = solve_region(d, tps, [3, 3, 3, 3], 12, 0, 10, 150, ceilings=[2, 12, 12, 12])
    assert n.tolist() == [2, 8, 1, 1]
    assert objective(n, d, tps, 3, 10, 150)[:2] == pytest.approx((0.8, 1.0))   # A 0.8, B 0.2
    # ties in the shares are broken by the cost: keep the instances that already run
    assert solve_region([300.0, 300.0], [100.0, 200.0], [2, 2], 4, 1, 10, 150).tolist() == [2, 2]
    assert solve_region([300.0, 300.0], [100.0, 200.0], [3, 1], 4, 1, 10, 150).tolist() == [3, 1]
    with pytest.raises(ValueError, match="floors"):
        solve_region([1.0, 1.0], [1.0, 1.0], 0, 3, [2, 2], 10, 150)
    with pytest.raises(ValueError, match="ceilings"):
        solve_region([1.0, 1.0], [1.0, 1.0], 0, 3, [2, 0], 10, 150, ceilings=[1, 3])


# ---------------------------------------------------------------- demand

def test_demand_window_and_statistics():
    f = np.arange(100, dtype=float)                          # minute i predicts i tokens
    assert demand(f, 0) == 60                                # minutes 20..60, inclusive
    assert demand(f, 30) == 60                               # minutes ceil(1230/60) = 21 .. floor(3630/60) = 60
    assert demand(f, 0, quantile=0.5) == 40
    assert demand(f, 0, quantile=0.0) == 20
    assert demand(f, 0, window=(0, 600)) == 10
    assert demand(f, 3600) == 99                             # minutes 80..120, past the horizon from 100
    assert demand(f, 6000) == 0                              # nothing left
    assert demand(f, 0, upper=f + 5) == 65
    g = np.full(61, -3.0)
    g[25] = np.nan
    assert demand(g, 0) == 0
    g[30] = 7
    assert demand(g, 0) == 7
    with pytest.raises(ValueError):
        demand(f, 0, quantile=1.5)


def test_dev_backlog():
    a, p = [100.0, 2000.0, 5000.0], [50, 400, 1000]
    assert dev_backlog(a, p, 0) == pytest.approx(40)         # before the first hour: the whole first hour
    assert dev_backlog(a, p, 3600) == pytest.approx(40)
    assert dev_backlog(a, p, 7200) == pytest.approx(100)
    assert dev_backlog(a, p, 8000, fraction=0.5) == pytest.approx(500)
    assert dev_backlog(a, p, 20000) == 0
    assert dev_backlog([], [], 0) == 0


def test_planning_times():
    np.testing.assert_array_equal(planning_times(10000), [0, 3600, 7200])
    np.testing.assert_array_equal(planning_times(10000, 1800, max_time=3600), [0, 1800])


# ---------------------------------------------------------------- the whole run

def test_plan_run_on_a_synthetic_forecast():
    minutes = 180
    f = [np.full(minutes, 250.0), np.full(minutes, 100.0), np.full(minutes, 300.0), np.full(minutes, 300.0)]
    f[0][60] = 900          # the last minute of the first window
    f[0][70] = 5000         # in no window: minutes 20..60, 80..120, 140..180
    f[1][80] = 500          # the first minute of the second window
    times = planning_times(3 * 3600)
    plans = plan_run(f, times, initial=[5, 5, 2, 2], region=[0, 0, 1, 1], totals=[10, 4], floors=1,
                     tps=[100.0, 200.0, 100.0, 200.0])
    # region 1 needs 3 + 2 > 4: (3, 1) and (2, 2) each leave a third of one demand unmet; the start-up cost
    # keeps the previous plan's (2, 2)
    np.testing.assert_array_equal(plans, [[9, 1, 2, 2], [3, 3, 2, 2], [3, 1, 2, 2]])
    dev = [([10.0], [2000]), None, None, None]
    plans = plan_run(f, times, [5, 5, 2, 2], [0, 0, 1, 1], [10, 4], 1, [100.0, 200.0, 100.0, 200.0], dev=dev)
    # + 0.1 x 2000 tokens per minute while the dev request is in the trailing hour (0..3600 at the first two
    # ticks): 1100 at first needs 11 instances; the region has 10 and B's floor takes one
    np.testing.assert_array_equal(plans[:, :2], [[9, 1], [5, 3], [3, 1]])


# ---------------------------------------------------------------- post-processing

P = np.array([4, 6, 6, 3, 5, 5, 2, 2])[:, None]


@pytest.mark.parametrize("name, k, want", [
    ("immediate", 2, [4, 6, 6, 3, 5, 5, 2, 2]),
    ("delay_changes", 2, [4, 4, 6, 6, 5, 5, 5, 2]),
    ("keep_maximum_instances", 2, [4, 6, 6, 6, 5, 5, 5, 2]),
    ("keep_maximum_instances", 3, [4, 6, 6, 6, 6, 5, 5, 5]),
    ("keep_minimum_instances", 2, [4, 4, 6, 3, 3, 5, 2, 2]),
    ("keep_minimum_instances", 3, [4, 4, 4, 3, 3, 3, 2, 2]),
    ("keep_maximum_instances", 1, [4, 6, 6, 3, 5, 5, 2, 2]),
    ("keep_minimum_instances", 1, [4, 6, 6, 3, 5, 5, 2, 2]),
])
def test_strategies_on_a_scripted_sequence(name, k, want):
    assert pp.apply_strategy(name, P, initial=4, k=k)[:, 0].tolist() == want


def test_delay_changes_needs_two_plans():
    assert pp.delay_changes(np.array([[2], [2], [2]]), 10)[:, 0].tolist() == [10, 2, 2]
    assert pp.delay_changes(np.array([[5], [3], [5], [3]]), 4)[:, 0].tolist() == [4, 4, 4, 4]
    assert pp.delay_changes(np.array([[7], [9], [8]]), 4)[:, 0].tolist() == [4, 7, 8]


def test_region_totals_are_kept():
    plans = np.array([[2, 2, 2], [3, 3, 0], [3, 0, 3]])
    assert pp.delay_changes(plans, [2, 2, 2]).tolist() == [[2, 2, 2], [2, 2, 2], [3, 2, 2]]
    # in a region of 6: the instance for the confirmed scale-up comes from the endpoint the plan no longer needs
    assert pp.delay_changes(plans, [2, 2, 2], [0, 0, 0], [6]).tolist() == [[2, 2, 2], [2, 2, 2], [3, 1, 2]]
    plans = np.array([[5, 1], [1, 5]])
    assert pp.keep_maximum_instances(plans, [3, 3]).tolist() == [[5, 1], [5, 5]]
    assert pp.keep_maximum_instances(plans, [3, 3], region=[0, 0], totals=[8]).tolist() == [[5, 1], [3, 5]]
    assert pp.keep_minimum_instances(plans, [3, 3], region=[0, 0], totals=[6]).tolist() == [[5, 1], [1, 1]]
    got = pp.fit_totals([3, 3, 6, 6], [2, 2, 1, 1], [0, 0, 1, 1], [4, 10])
    assert got.tolist() == [2, 2, 5, 5]
    with pytest.raises(ValueError):
        pp.apply_strategy("evenly_distributed", plans, 1)


def test_strategies_never_exceed_totals_on_random_plans():
    rng = np.random.default_rng(11)
    region, totals = np.array([0, 0, 0, 1, 1]), [9, 5]
    for _ in range(50):
        plans = np.zeros((12, 5), np.int64)
        for k in range(12):
            for g, idx in ((0, [0, 1, 2]), (1, [3, 4])):
                plans[k, idx] = rng.multinomial(int(rng.integers(0, totals[g] + 1)), np.ones(len(idx)) / len(idx))
        for name in pp.STRATEGIES:
            out = pp.apply_strategy(name, plans, plans[0], k=int(rng.integers(1, 4)), region=region, totals=totals)
            assert out[:, :3].sum(axis=1).max() <= 9 and out[:, 3:].sum(axis=1).max() <= 5
            if name == "keep_minimum_instances":
                assert np.all(out <= plans)
            if name == "keep_maximum_instances":
                assert np.all(out >= plans)


# ---------------------------------------------------------------- throughput

@pytest.fixture(scope="module")
def us3():
    return load_config(PROJECT_ROOT / "configs" / "examples" / "us3_small.toml")


def test_throughput_is_monotone(us3):
    a = us3.topology.endpoints[0]
    base = instance_throughput(us3, a, 1000, 250)
    assert 1e5 < base < 1e6                                  # the order of SageServe's 225,500 for A
    assert instance_throughput(us3, dataclasses.replace(a, sku="dgx-h100"), 1000, 250) > base
    pm = us3.performance_model
    faster = dataclasses.replace(us3, performance_model=dataclasses.replace(pm, scale=0.5))
    assert instance_throughput(faster, a, 1000, 250) > base
    slower = dataclasses.replace(us3, performance_model=dataclasses.replace(pm, iteration_overhead=0.01))
    assert instance_throughput(slower, a, 1000, 250) < base
    assert instance_throughput(us3, a, 1000, 500) < base
    small = dataclasses.replace(us3, instance=dataclasses.replace(us3.instance, max_batch_size=8))
    assert instance_throughput(small, a, 1000, 250) < base
    for e in us3.topology.endpoints[:4]:                     # roofline (C, D) and profiled (A, B) curves
        assert instance_throughput(us3, e, 1000, 250) > 0


def test_throughput_by_hand(us3):
    a = us3.topology.endpoints[0]                            # model A: 8 x 80 GiB, 135 GB weights
    const = dataclasses.replace(us3, performance_model=PerfModelConfig(kind="constant", prompt_time=0.5,
                                                                       token_time=0.05),
                                instance=dataclasses.replace(us3.instance, max_batch_size=4))
    # 4 requests per 0.5 + 10 x 0.05 s, 100 prompt tokens each
    assert instance_throughput(const, a, 100, 11) == pytest.approx(60 * 4 * 100 / 1.0)
    # KV room (8 x 85,899,345,920 - 135e9) // 2,621,440 = 210,645 tokens: 2 requests of 100,001
    assert instance_throughput(const, a, 100_000, 1) == pytest.approx(60 * 2 * 100_000 / 0.5)
    with pytest.raises(ValueError, match="does not fit"):
        instance_throughput(const, a, 300_000, 1)
    assert sageserve_tps("ABCD").tolist() == list(SAGESERVE_TPS)
