"""Invariants of reactive autoscaling (docs/semantics.md, "Reactive autoscaling (topologies)") on random scenarios.

Scenarios (fixed seeds): a few random topologies (1-2 regions, each on one SKU and tensor parallelism as scaling
requires; 2-3 models among A, B, C, D, each shared or siloed into prod and dev endpoints; 2-6 instances per
endpoint in SageServe's groups or explicit groups of 2 and 3) with a short bursty trace of a few hundred
interactive, batch and dev requests, each run under several ``[scaling]`` tables (levels 1 and 2; utilization,
chiron and queue policies; real and lock-out delays; timer on or off; small delays so that many moves happen).

Checked on every run, from the scaling log replayed from the topology's initial instance counts:
- the log's counts (serving, starting, draining per endpoint, spot per region) are the replayed ones, every move is
  a legal lifecycle transition (a reclaim takes the head of its model's spot list; a donation, at level 2 only and
  only when that list is empty, the head of the list the configuration's splitmix64 draw picks; scale-downs keep
  ``min_instances``, scale-ups stay within ``max_instances``), and a region's instances are conserved at every row;
- lifecycle delays: real delays serve exactly ``reclaim_delay`` / ``spin_up`` after the move, and a drained instance
  enters the spot list exactly ``spin_down`` after its last admitted request completes (or after the drain when it
  held none); lock-out delays join at once, except a donated instance still holding its old model's requests, which
  joins when the last of them completes;
- instance-seconds per state (per endpoint, per region spot pool, per instance) equal the integrals of the replayed
  counts to rtol 1e-9, and each instance's state times sum to the end clock; busy seconds <= serving seconds, and
  they are exactly the parts of the instances' runs (debug iteration log) inside their serving stints;
- every request completes exactly once, on the one instance it was routed to, which was serving its endpoint when
  the request reached it; every instance ends holding only its current model's weights;
- ``run_batch`` of a scenario's configurations gives the results of separate ``run`` calls, bit for bit.
"""
import functools

import numpy as np
import pytest

from kernels.enums import ScaleAction
from kernels.layout import ENDPOINT_TIME, ITERATION_LOG, SCALING_LOG
from sweepsim.config.catalog import get_model
from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import check_runnable, run, run_batch
from sweepsim.errors import InputError
from sweepsim.workload.trace import Serving, Trace
from tests.test_serving_differential import random_sizes

N_TOPOLOGIES = 5
N_VARIANTS = 4                     # [scaling] tables per topology: 20 runs
COL = {c: k for k, c in enumerate(SCALING_LOG)}
ET = {c: k for k, c in enumerate(ENDPOINT_TIME)}
RECLAIM, DONATE, READY, DRAIN, SPOT = (ScaleAction.RECLAIM, ScaleAction.DONATE, ScaleAction.READY,
                                       ScaleAction.DRAIN, ScaleAction.SPOT)
CLASS_INTERACTIVE, CLASS_BATCH, CLASS_DEV = 0, 1, 2
REQUEST_ARRAYS = ("completed", "prompt_instance", "token_instance", "prompt_start", "prompt_end", "token_start",
                  "token_end", "fed_time", "endpoint")
INSTANCE_ARRAYS = ("busy_time", "iterations", "serving_time", "starting_time", "draining_time", "spot_time",
                   "final_memory")
#: models each tensor parallelism holds (B only on TP4)
FITS = {2: ("A", "C", "D"), 4: ("A", "B", "C", "D")}
POLICIES = ("utilization", "chiron", "queue")


def explicit_groups(rng, n):
    if n < 4 or rng.random() < 0.5:
        return ()
    sizes, left = [], n
    while left:
        k = left if left in (2, 3) else (2 if left == 4 else int(rng.choice([2, 3])))
        sizes.append(k)
        left -= k
    return tuple(sizes)


def random_topology(rng):
    """(topology tables without [scaling], regions, sorted models)."""
    regions = [f"r{k}" for k in range(int(rng.integers(1, 3)))]
    tp = 4 if rng.random() < 0.4 else 2
    models = sorted(rng.choice(FITS[tp], size=int(rng.integers(2, 4)), replace=False).tolist())
    deploy = {r: (str(rng.choice(["dgx-a100", "dgx-h100"])), tp) for r in regions}
    endpoints = []
    for m in models:
        hosts = [r for r in regions if rng.random() < 0.7] or [str(rng.choice(regions))]
        silos = ("prod", "dev") if rng.random() < 0.3 else ("any",)
        for r in hosts:
            for w in silos:
                n = int(rng.integers(2, 7))
                sku, t = deploy[r]
                e = {"region": r, "model": m, "instances": n, "workload": w, "sku": sku, "tensor_parallel": t,
                     "scheduler": "token_jsq" if rng.random() < 0.6 else "jsq"}
                g = explicit_groups(rng, n)
                if g:
                    e["groups"] = list(g)
                endpoints.append(e)
    d = {"region": [{"name": r} for r in regions], "endpoint": endpoints,
         "routing": {"threshold": float(rng.choice([0.5, 0.7, 0.9])),
                     "delay": 0.0 if rng.random() < 0.7 else 0.25},
         "feeding": {"bands": "readme" if rng.random() < 0.5 else "sageserve"}}
    return d, regions, models


def random_trace(rng, base, regions, models):
    """A few hundred requests alternating bursts of one model and quiet periods (scale-ups and scale-downs)."""
    n = int(rng.integers(200, 400))
    per_model = [sum(e.instances for e in base.topology.endpoints if e.model == m) for m in models]
    times, which = [], []
    t, quiet = 0.0, bool(rng.random() < 0.5)
    while len(times) < n:
        rate = np.array([p * float(rng.uniform(0.02, 0.15)) for p in per_model])
        if not quiet:
            hot = int(rng.integers(len(models)))
            rate[hot] = per_model[hot] * float(rng.uniform(1.0, 4.0))
        end = t + (float(rng.uniform(4.0, 12.0)) if quiet else float(rng.uniform(2.0, 6.0)))
        while len(times) < n:
            t += float(rng.exponential(1.0 / rate.sum()))
            if t > end:
                t = end
                break
            times.append(t)
            which.append(int(rng.choice(len(models), p=rate / rate.sum())))
        quiet = not quiet or rng.random() < 0.3
    arrival = np.array(times)
    if rng.random() < 0.3:                                  # simultaneous arrivals
        arrival = np.round(arrival * 4) / 4
    model = np.array(which, np.int32)
    cls = rng.choice([CLASS_INTERACTIVE, CLASS_BATCH, CLASS_DEV], size=n, p=[0.5, 0.25, 0.25])
    sla = rng.uniform(1.0, 30.0, n)
    sla[rng.random(n) < 0.2] = np.nan
    orders = tuple(dict.fromkeys([tuple(regions), tuple(reversed(regions))]))
    order = rng.integers(0, len(orders), n).astype(np.int32)
    prompt, tokens = random_sizes(rng, base, models, model, 0.1, 0.5, 4.5, 400)
    serving = Serving(tuple(models), model, (cls == CLASS_DEV).astype(np.int8),
                      np.where(cls == CLASS_BATCH, rng.integers(0, 4, n), -1).astype(np.int64), sla, orders, order)
    return Trace("random-scaling-invariants", np.arange(n), np.zeros(n, np.int64), arrival, prompt, tokens,
                 serving=serving)


def random_scaling(rng, k):
    """The k-th [scaling] table of a topology: the policies and delay modes rotate, the rest is drawn."""
    policy = POLICIES[k % 3]
    sc = {"level": int(rng.choice([1, 2, 2])), "policy": policy, "delays": ("real", "lockout")[(k // 2) % 2],
          "spin_up": float(rng.choice([2.0, 3.0])), "reclaim_delay": float(rng.choice([1.0, 1.5])),
          "spin_down": float(rng.choice([0.0, 0.5])), "min_instances": int(rng.choice([2, 2, 3]))}
    if rng.random() < 0.5:
        sc["timer"] = float(rng.choice([0.5, 1.0, 2.0]))
    if rng.random() < 0.3:
        sc["interval"] = float(rng.choice([0.0, 1.0]))
    if rng.random() < 0.25:
        sc["max_instances"] = int(rng.integers(sc["min_instances"] + 1, 8))
    if policy == "utilization":
        sc["lower"], sc["upper"] = float(rng.choice([0.05, 0.1])), float(rng.choice([0.2, 0.3]))
    elif policy == "queue":
        sc["lower"], sc["upper"] = 1.0, float(rng.choice([2.0, 3.0]))
    else:
        sc["pending_time"] = float(rng.choice([5.0, 20.0]))
        sc["prompt_time"] = float(rng.choice([1.0, 2.0]))
        sc["decode_throughput"] = float(rng.choice([20.0, 100.0]))
    return sc


@functools.lru_cache(maxsize=None)
def scenario(topo_seed):
    """(configurations, trace) of one topology: N_VARIANTS [scaling] tables on one trace."""
    rng = np.random.default_rng(9100 + topo_seed)
    while True:
        d, regions, models = random_topology(rng)
        base = from_dict(d)
        tr = random_trace(rng, base, regions, models)
        try:
            check_runnable(base, tr)
        except InputError:
            continue
        break
    cfgs = []
    for k in range(N_VARIANTS):
        cfgs.append(from_dict({**d, "scaling": random_scaling(rng, k + topo_seed), "seed": int(rng.integers(2**31))}))
    return tuple(cfgs), tr


@functools.lru_cache(maxsize=None)
def results(topo_seed):
    cfgs, tr = scenario(topo_seed)
    return [run(c, tr) for c in cfgs]


CASES = [(s, k) for s in range(N_TOPOLOGIES) for k in range(N_VARIANTS)]


class SplitMix64:
    """The donation draws of docs/semantics.md: splitmix64 seeded with the config seed, u = (z >> 11) / 2^53."""
    MASK = 2 ** 64 - 1

    def __init__(self, seed):
        self.state = seed & self.MASK

    def uniform(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & self.MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self.MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self.MASK
        z ^= z >> 31
        return (z >> 11) / 2.0 ** 53


class Replay:
    """The scaling log replayed from the topology's initial state, with each row's transition checked."""

    def __init__(self, res):
        cfg = res.config
        topo = cfg.topology
        sc = topo.scaling
        self.lockout = sc.delays == "lockout"
        names = res.trace.serving.model_names
        self.ep_region = [topo.regions.index(e.region) for e in topo.endpoints]
        self.ep_model = [names.index(e.model) for e in topo.endpoints]
        n_ep, n_reg = len(topo.endpoints), len(topo.regions)
        inst_ep = np.asarray(res.placement.endpoint)
        n_inst = len(inst_ep)
        self.inst_region = [self.ep_region[e] for e in inst_ep]
        self.region_total = np.bincount(self.inst_region, minlength=n_reg)
        log = np.asarray(res.scaling_log)
        counts = np.zeros((n_ep, 3), np.int64)      # serving, starting, draining
        for e in range(n_ep):
            counts[e, 0] = topo.endpoints[e].instances
        spot = np.zeros(n_reg, np.int64)
        state = ["serving"] * n_inst                # serving, starting, draining, spot
        owner = list(inst_ep)
        model = [self.ep_model[e] for e in inst_ep]
        pools = {}                                  # (region, model) -> FIFO of instances
        draws = SplitMix64(int(cfg.seed) & (2 ** 63 - 1))
        self.donations = self.choices = 0          # donations; those among several non-empty spot lists
        # integrals of the counts and per-instance state times
        self.ep_time = np.zeros((3, n_ep))
        self.spot_time = np.zeros(n_reg)
        self.inst_time = {s: np.zeros(n_inst) for s in ("serving", "starting", "draining", "spot")}
        since = np.zeros(n_inst)
        self.stints = []                            # (instance, endpoint, serving from, to)
        serving_from = np.zeros(n_inst)
        self.moves = []                             # (time, action, instance, endpoint, row)
        prev_t = 0.0
        for k, row in enumerate(log):
            t, e, a, i, fm = (float(row[COL["time"]]), int(row[COL["endpoint"]]), int(row[COL["action"]]),
                              int(row[COL["instance"]]), int(row[COL["from_model"]]))
            assert t >= prev_t, f"row {k}: time goes back"
            self.ep_time += (t - prev_t) * counts.T
            self.spot_time += (t - prev_t) * spot
            prev_t = t
            g = self.ep_region[e]
            assert self.inst_region[i] == g, f"row {k}: instance {i} moved out of its region"

            def charge(new):
                self.inst_time[state[i]][i] += t - since[i]
                since[i] = t
                if state[i] == "serving" and new != "serving":
                    self.stints.append((i, owner[i], serving_from[i], t))
                if new == "serving":
                    serving_from[i] = t
                state[i] = new

            if a in (RECLAIM, DONATE):
                assert state[i] == "spot", f"row {k}: {a} of instance {i} in state {state[i]}"
                pool = pools[(g, model[i])]
                if a == RECLAIM:
                    assert model[i] == self.ep_model[e] and fm == model[i]
                    assert pool[0] == i, f"row {k}: reclaimed {i}, not the head of its spot list {pool}"
                else:
                    assert cfg.topology.scaling.level == 2, "a donation below level 2"
                    assert not pools.get((g, self.ep_model[e])), "a donation while the model's own list is not empty"
                    # the k-th non-empty spot list of the region in model order, k = floor(u x their count)
                    lists = [m for m in range(len(names)) if pools.get((g, m))]
                    pick = lists[int(draws.uniform() * len(lists))]
                    assert fm == pick == model[i] and pool[0] == i, \
                        f"row {k}: donated {i} of model {fm}, the draw picks model {pick}'s head {pools[(g, pick)][0]}"
                    self.donations += 1
                    self.choices += len(lists) > 1
                pool.pop(0)
                spot[g] -= 1
                owner[i] = e
                joins_now = self.lockout and not (a == DONATE and self._ready_follows(log, k, i))
                if joins_now:
                    charge("serving")
                    model[i] = self.ep_model[e]
                    counts[e, 0] += 1
                else:
                    charge("starting")
                    counts[e, 1] += 1
            elif a == READY:
                assert state[i] == "starting" and owner[i] == e, f"row {k}: ready from {state[i]}"
                charge("serving")
                model[i] = self.ep_model[e]
                assert fm == model[i]
                counts[e, 1] -= 1
                counts[e, 0] += 1
            elif a == DRAIN:
                assert not self.lockout, "a drain row with lock-out delays"
                assert state[i] == "serving" and owner[i] == e
                charge("draining")
                counts[e, 0] -= 1
                counts[e, 2] += 1
            elif a == SPOT:
                assert owner[i] == e and fm == model[i]
                if self.lockout:
                    assert state[i] == "serving", f"row {k}: spot from {state[i]}"
                    counts[e, 0] -= 1
                else:
                    assert state[i] == "draining", f"row {k}: spot from {state[i]}"
                    counts[e, 2] -= 1
                charge("spot")
                spot[g] += 1
                pools.setdefault((g, model[i]), []).append(i)
            else:
                raise AssertionError(f"row {k}: unknown action {a}")
            self.moves.append((t, a, i, e, k))
            # the row's counts are the replayed ones
            got = (int(row[COL["serving"]]), int(row[COL["starting"]]), int(row[COL["draining"]]))
            assert got == tuple(counts[e]), f"row {k}: logged counts {got}, replayed {tuple(counts[e])}"
            assert int(row[COL["spot"]]) == spot[g], f"row {k}: logged spot {int(row[COL['spot']])}, replayed {spot[g]}"
            assert (counts >= 0).all() and (spot >= 0).all()
            if a == DRAIN or (a == SPOT and self.lockout):      # a scale-down keeps min_instances serving
                assert counts[e, 0] >= sc.min_instances, f"row {k}: {counts[e, 0]} serving after a scale-down"
            if a in (RECLAIM, DONATE) and sc.max_instances:     # a scale-up stays within max_instances
                assert counts[e, 0] + counts[e, 1] <= sc.max_instances, f"row {k}: above max_instances"
            # conservation: a region's instances are all in its endpoints or its spot pool
            in_region = sum(counts[e2].sum() for e2 in range(n_ep) if self.ep_region[e2] == g) + spot[g]
            assert in_region == self.region_total[g], f"row {k}: region {g} holds {in_region} instances"
            assert sum(1 for s in state if s == "spot") == spot.sum()
        end = res.end_clock
        assert end >= prev_t
        self.ep_time += (end - prev_t) * counts.T
        self.spot_time += (end - prev_t) * spot
        for i in range(n_inst):
            self.inst_time[state[i]][i] += end - since[i]
            if state[i] == "serving":
                self.stints.append((i, owner[i], serving_from[i], np.inf))
        self.state, self.owner, self.model = state, owner, model

    @staticmethod
    def _ready_follows(log, k, i):
        """Whether instance i's next row after row k is its ready row (a lock-out donation waiting for its old
        requests)."""
        for row in log[k + 1:]:
            if int(row[COL["instance"]]) == i:
                return int(row[COL["action"]]) == READY
        return False


@functools.lru_cache(maxsize=None)
def replayed(topo_seed, k):
    res = results(topo_seed)[k]
    return res, Replay(res)


def reach_time(res):
    """When each request reached its endpoint (fed time + routing delay)."""
    return res.fed_time + res.config.topology.routing.delay


def test_scenarios_move_instances():
    """The scenarios exercise the dynamics: every action happens, in both delay modes, and donations at level 2."""
    seen = set()
    for s, k in CASES:
        res = results(s)[k]
        sc = res.config.topology.scaling
        for a in np.unique(res.scaling_log[:, COL["action"]]).astype(int):
            seen.add((sc.delays, int(a)))
    for a in (RECLAIM, DONATE, SPOT):
        assert ("lockout", a) in seen, seen
    for a in (RECLAIM, DONATE, READY, DRAIN, SPOT):
        assert ("real", a) in seen, seen
    assert sum(len(results(s)[k].scaling_log) for s, k in CASES) > 200
    assert sum(replayed(s, k)[1].donations for s, k in CASES) > 20
    assert sum(replayed(s, k)[1].choices for s, k in CASES) > 0, "no donation drew among several spot lists"


@pytest.mark.parametrize("topo_seed,k", CASES)
def test_instances_are_conserved_and_counts_replay(topo_seed, k):
    replayed(topo_seed, k)      # every row checked while replaying


@pytest.mark.parametrize("topo_seed,k", CASES)
def test_lifecycle_delays(topo_seed, k):
    res, rp = replayed(topo_seed, k)
    sc = res.config.topology.scaling
    reach = reach_time(res)
    moves = rp.moves
    for j, (t, a, i, e, row) in enumerate(moves):
        nxt = next(((t2, a2) for t2, a2, i2, _, _ in moves[j + 1:] if i2 == i), None)
        # requests instance i admitted up to t (it admits nothing new outside its groups)
        mine = (res.prompt_instance == i) & (reach <= t)
        last_end = float(res.token_end[mine].max()) if mine.any() else -np.inf
        if a in (RECLAIM, DONATE) and not rp.lockout:
            delay = sc.reclaim_delay if a == RECLAIM else sc.spin_up
            assert nxt == (t + delay, READY), (j, moves[j], nxt)
        elif a == DONATE and rp.lockout:
            # its old model's requests (the request whose evaluation donated it may reach it at t, as e's model)
            fm = int(res.scaling_log[row, COL["from_model"]])
            old = mine & (res.trace.serving.model == fm)
            last_end = float(res.token_end[old].max()) if old.any() else -np.inf
            if nxt is not None and nxt[1] == READY:
                # a donated instance still running its old model's requests joins once it holds none
                assert last_end > t and nxt[0] == last_end, (j, moves[j], nxt, last_end)
            else:       # it held none: it joined at once
                assert last_end <= t, (j, moves[j], last_end)
        elif a == DRAIN:
            assert nxt is not None and nxt[1] == SPOT, (j, moves[j], nxt)
            assert nxt[0] == max(t, last_end) + sc.spin_down, (j, moves[j], nxt, last_end)


@pytest.mark.parametrize("topo_seed,k", CASES)
def test_instance_seconds_equal_the_integral_of_the_replayed_counts(topo_seed, k):
    res, rp = replayed(topo_seed, k)
    for row, name in enumerate(("serving", "starting", "draining")):
        np.testing.assert_allclose(res.endpoint_time[ET[name]], rp.ep_time[row], rtol=1e-9, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(res.region_spot_time, rp.spot_time, rtol=1e-9, atol=1e-9)
    for name in ("serving", "starting", "draining", "spot"):
        np.testing.assert_allclose(getattr(res, f"{name}_time"), rp.inst_time[name], rtol=1e-9, atol=1e-9,
                                   err_msg=name)
    total = res.serving_time + res.starting_time + res.draining_time + res.spot_time
    np.testing.assert_allclose(total, res.end_clock, rtol=1e-12)
    # per-instance and per-endpoint / per-region accounts agree
    np.testing.assert_allclose(res.endpoint_time[ET["serving"]].sum() + res.endpoint_time[ET["starting"]].sum()
                               + res.endpoint_time[ET["draining"]].sum() + res.region_spot_time.sum(),
                               res.end_clock * len(res.serving_time), rtol=1e-9)
    assert np.all(res.endpoint_time[ET["busy"]] <= res.endpoint_time[ET["serving"]] * (1 + 1e-12) + 1e-9)


@pytest.mark.parametrize("topo_seed,k", CASES)
def test_endpoint_busy_seconds_are_its_runs_inside_serving_stints(topo_seed, k):
    """An endpoint's busy seconds are the parts of its instances' runs (the debug iteration log) that fall in their
    serving stints at that endpoint (the debug run gives the same results)."""
    res, rp = replayed(topo_seed, k)
    cfgs, tr = scenario(topo_seed)
    dbg = run(cfgs[k], tr, debug=True)
    assert np.array_equal(dbg.scaling_log, res.scaling_log) and np.array_equal(dbg.token_end, res.token_end)
    col = {c: j for j, c in enumerate(ITERATION_LOG)}
    stints = {}
    for i, e, a, b in rp.stints:
        stints.setdefault(i, []).append((e, a, b))
    busy = np.zeros(res.endpoint_time.shape[1])
    for row in dbg.iteration_log:
        i, a, b = int(row[col["instance"]]), row[col["start"]], row[col["end"]]
        for e, x, y in stints.get(i, []):
            busy[e] += max(0.0, min(b, y) - max(a, x))
    np.testing.assert_allclose(res.endpoint_time[ET["busy"]], busy, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("topo_seed,k", CASES)
def test_every_request_completes_once_on_a_serving_instance(topo_seed, k):
    res, rp = replayed(topo_seed, k)
    n = len(res.trace)
    assert res.completed.all() and int(res.completed.sum()) == n
    assert np.all(res.prompt_instance >= 0) and np.array_equal(res.prompt_instance, res.token_instance)
    assert np.all(res.token_end >= res.prompt_start) and np.all(res.prompt_start >= res.fed_time)
    assert np.all(res.endpoint >= 0)
    # the instance a request was routed to served its endpoint when the request reached it (within the moves at
    # that instant: a move caused by the request's own evaluation comes before it is routed, others after)
    reach = reach_time(res)
    stints = {}
    for i, e, a, b in rp.stints:
        stints.setdefault(i, []).append((e, a, b))
    for r in range(n):
        i, e, t = int(res.prompt_instance[r]), int(res.endpoint[r]), float(reach[r])
        assert any(e2 == e and a <= t <= b for e2, a, b in stints.get(i, [])), \
            f"request {r} reached instance {i} of endpoint {e} at {t}, outside its serving stints {stints.get(i)}"
    # every instance holds only the weights of its current model at the end: each request's KV freed once
    names = res.trace.serving.model_names
    weights = [get_model(names[m]).weight_bytes for m in rp.model]
    assert np.array_equal(res.final_memory, weights)


@pytest.mark.parametrize("topo_seed", range(N_TOPOLOGIES))
def test_run_batch_equals_separate_runs(topo_seed):
    cfgs, tr = scenario(topo_seed)
    batch = run_batch(list(cfgs), tr)
    for c, (a, b) in enumerate(zip(batch, results(topo_seed))):
        assert np.array_equal(a.scaling_log, b.scaling_log), f"config {c}: scaling logs differ"
        for f in REQUEST_ARRAYS + INSTANCE_ARRAYS:
            x, y = getattr(a, f), getattr(b, f)
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f"config {c}: {f} differs"
        assert np.array_equal(a.endpoint_time, b.endpoint_time) and np.array_equal(a.region_spot_time,
                                                                                   b.region_spot_time)
        assert a.end_clock == b.end_clock
