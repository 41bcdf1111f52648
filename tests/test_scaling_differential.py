"""Differential test of reactive autoscaling: the Numba kernel (``kernels/scaling_nb.py`` with the serving and
instance kernels) and the plain-Python reference (``tests/reference_sim.py``, T1-T8 and S1-S7, written from
docs/semantics.md "Reactive autoscaling") give bit-identical per-request results and scaling logs, and the same
per-state times, on random scaling scenarios.

Each scenario draws (fixed seeds): 1-3 regions, each on one deployment (SKU and tensor parallelism 2 or 4, as
scaling requires); 2-4 models among A, B, C, D and llama2-70b (B only on TP4), each shared (one ``any`` endpoint per
hosting region) or siloed (prod and dev endpoints); 2-7 instances per endpoint in SageServe's default groups or
explicit groups of 2 and 3; token_jsq or jsq; a routing delay (mostly 0); then a ``[scaling]`` table: level 1 or 2,
policy utilization / chiron / queue with default or drawn thresholds, delays "real" or "lockout", evaluation interval
-1, 0 or positive, a timer off or on, small delays (spin_up ~3 s, reclaim_delay ~1.5 s, spin_down 0 or 0.5 s) so
that many moves happen within the trace, min_instances 2-3 and max_instances 0 (no cap) or small.  The trace
alternates bursts (several requests per second per instance) and quiet periods, so that endpoints scale up, drain
and scale down, reclaim and donate; sometimes its arrivals sit on exact binary fractions with a constant
performance model and binary-fraction delays (lifecycle events tie with run ends, routed requests, arrivals and the
timer), and sometimes ``end_time`` cuts the run.  Two small families add what random draws rarely reach:
``handover_dict`` (lockout, level 2, bursts passing straight from one model to another: instances donated while
still running their old model's requests, ready once they are done) and ``silo_dict`` (a model's prod and dev silos
sharing a spot list under Chiron's policy with lockout delays, at seeds where one run completes requests routed to
both silos while work is queued: each completion feeds its own request's endpoint).
``test_scenarios_exercise_the_scaling_dynamics`` checks that the scenarios reclaim, donate, drain instances still
running requests, get instances ready and put them into spot lists in both delay modes, donate busy instances and
complete requests of two endpoints in one run, and that every region keeps its instances.

Compared: the per-request fields bit for bit, the scaling log bit for bit (``kernels.layout.SCALING_LOG`` rows in
order), per-instance busy time / iterations and the end clock exactly, and the lifecycle time accumulators (per
endpoint, per region spot pool, per instance) to rtol 1e-9.
"""
import numpy as np
import pytest

from kernels.layout import ENDPOINT_TIME, SCALING_LOG
from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import check_runnable, run
from sweepsim.errors import InputError
from sweepsim.workload.trace import Serving, Trace
from tests.reference_inputs import reference_inputs
from tests.reference_sim import SCALING_LOG_COLUMNS
from tests.reference_sim import simulate as reference_simulate
from tests.test_serving_differential import REQUEST_FIELDS, random_sizes, size_limits

N_SCENARIOS = 40
N_HANDOVER = 8
#: seeds of ``silo_dict`` where a run completes requests routed to both silos while requests are queued
SILO_SEEDS = (902, 932, 938, 959, 985, 1018, 1029, 1453, 1454)
CLASS_INTERACTIVE, CLASS_BATCH, CLASS_DEV = 0, 1, 2
#: KV tokens per instance beside the weights (DGX-A100 / DGX-H100): TP2 A / llama2-70b ~14k, C ~58k, D ~290k, B does
#: not fit; TP4 A / llama2-70b ~80k, B ~3.6k, C ~140k, D ~618k
MODELS = ("A", "B", "C", "D", "llama2-70b")
#: per policy: the defaults docs/semantics.md gives (upper, lower)
DEFAULT_BOUNDS = {"utilization": (0.5, 0.25), "chiron": (0.6, 0.3), "queue": (8.0, 2.0)}
#: the rows of ``endpoint_time`` the reference computes (``ENDPOINT_TIME`` names)
REFERENCE_ENDPOINT_TIME = ("serving", "starting", "draining", "busy")
#: lifecycle time accumulators (``RunResult`` names): per endpoint, per region, per instance
TIME_FIELDS = ("endpoint_time", "region_spot_time", "serving_time", "starting_time", "draining_time", "spot_time")
ACTIONS = ("reclaim", "donate", "ready", "drain", "spot")


def group_sizes(rng, n):
    """SageServe's default split (()), or an explicit sequence of groups of 2 and 3 summing to n >= 2."""
    if rng.random() < 0.6:
        return ()
    sizes = []
    left = n
    while left:
        if left in (2, 3):
            k = left if rng.random() < 0.6 else (2 if left == 2 else 3)
        elif left == 4:
            k = 2
        else:
            k = int(rng.choice([2, 3]))
        sizes.append(k)
        left -= k
    return tuple(sizes)


def random_scaling(rng):
    """A ``[scaling]`` table (some keys left to their defaults)."""
    policy = ("utilization", "utilization", "queue", "chiron")[int(rng.integers(4))]
    sc = {"level": int(rng.choice([1, 2, 2])), "policy": policy,
          "delays": "lockout" if rng.random() < 0.4 else "real",
          "spin_up": float(rng.choice([3.0, 2.0, 4.5])), "reclaim_delay": float(rng.choice([1.5, 1.0, 2.25])),
          "spin_down": float(rng.choice([0.0, 0.5])), "min_instances": int(rng.choice([2, 2, 3]))}
    if rng.random() < 0.3:
        sc["max_instances"] = int(rng.integers(3, 8))
    interval = [-1.0, -1.0, 0.0, float(rng.choice([0.5, 1.0, 2.5]))][int(rng.integers(4))]
    if interval != -1.0 or rng.random() < 0.5:
        sc["interval"] = interval
    if rng.random() < 0.5:
        sc["timer"] = float(rng.choice([0.5, 1.0, 2.0, 0.75, 0.3]))   # 0.3: ticks kT are not sums of T
    if rng.random() < 0.6:                        # thresholds drawn around the policy's scale
        if policy == "utilization":
            lo = float(rng.choice([0.05, 0.1, 0.2, 0.25]))
            sc["lower"], sc["upper"] = lo, float(lo + rng.choice([0.1, 0.2, 0.3]))
        elif policy == "queue":
            lo = float(rng.choice([0.5, 1.0, 2.0]))
            sc["lower"], sc["upper"] = lo, float(lo + rng.choice([1.0, 2.0, 4.0]))
        else:
            lo = float(rng.choice([0.2, 0.3, 0.5]))
            sc["lower"], sc["upper"] = lo, float(lo + rng.choice([0.1, 0.3, 0.5]))
    if policy == "chiron":
        sc["pending_time"] = float(rng.choice([5.0, 20.0, 60.0]))
        sc["prompt_time"] = float(rng.choice([1.0, 2.0, 10.0]))
        sc["decode_throughput"] = float(rng.choice([20.0, 100.0, 500.0]))
    return sc


def random_topology(rng):
    """A random topology with scaling (a config dict) and, per model, the regions serving its prod and dev work."""
    n_reg = int(rng.integers(1, 4))
    regions = [f"r{k}" for k in range(n_reg)]
    models = sorted(rng.choice(MODELS, size=int(rng.integers(2, 5)), replace=False).tolist())
    tp4 = "B" in models
    deploy = {r: (str(rng.choice(["dgx-a100", "dgx-h100"])), 4 if tp4 or rng.random() < 0.4 else 2)
              for r in regions}
    endpoints = []
    serves = {}
    for m in models:
        hosts = [r for r in regions if rng.random() < 0.6] or [str(rng.choice(regions))]
        siloed = rng.random() < 0.35
        prod, dev = [], []
        for r in hosts:
            for w in (("prod", "dev") if siloed else ("any",)):
                n = int(rng.integers(2, 8))
                sku, tp = deploy[r]
                e = {"region": r, "model": m, "instances": n, "workload": w, "sku": sku, "tensor_parallel": tp,
                     "scheduler": "token_jsq" if rng.random() < 0.6 else "jsq"}
                g = group_sizes(rng, n)
                if g:
                    e["groups"] = list(g)
                endpoints.append(e)
                (prod if w in ("any", "prod") else dev).append(r)
                if w == "any":
                    dev.append(r)
        serves[m] = {"prod": prod, "dev": dev}
    delay = 0.0 if rng.random() < 0.7 else float(rng.choice([0.25, 0.5]))
    d = {"region": [{"name": r} for r in regions], "endpoint": endpoints,
         "routing": {"threshold": float(rng.choice([0.5, 0.7, 0.9])), "delay": delay},
         "feeding": {"bands": "readme" if rng.random() < 0.6 else "sageserve",
                     "on_enqueue": bool(rng.random() < 0.7), "granularity": int(rng.integers(1, 3))},
         "scaling": random_scaling(rng), "seed": int(rng.integers(0, 2**31))}
    return d, regions, models, serves


def bursty_arrivals(rng, n, per_model, ties):
    """n arrivals and their models: phases alternating a burst of one model (a few requests per second per
    instance of it, over low background traffic) and quiet periods (background traffic only)."""
    k = len(per_model)
    times, models = [], []
    t = 0.0
    quiet = rng.random() < 0.5                    # the first phase: quiet half of the time (scale-downs first)
    while len(times) < n:
        rate = np.array([p * float(rng.uniform(0.02, 0.15)) for p in per_model])
        if not quiet:
            hot = int(rng.integers(k))
            rate[hot] = per_model[hot] * float(rng.uniform(1.0, 4.0))
        end = t + (float(rng.uniform(2.0, 6.0)) if not quiet else float(rng.uniform(4.0, 12.0)))
        total = float(rate.sum())
        while len(times) < n:
            t += float(rng.exponential(1.0 / total))
            if t > end:
                t = end
                break
            times.append(t)
            models.append(int(rng.choice(k, p=rate / total)))
        # a burst is followed by a quiet period or at once by another model's burst (a handover: the idle
        # model's instances go to the spot pool while still running its requests, the hot model takes them)
        quiet = False if quiet else rng.random() < 0.5
    arrival = np.array(times)
    if ties:
        arrival = np.round(arrival * 8) / 8
    return arrival, np.array(models, np.int32)


def random_trace(rng, cfg, regions, models, serves):
    n = int(rng.integers(250, 500))
    per_model = [sum(e.instances for e in cfg.topology.endpoints if e.model == m) for m in models]
    ties = rng.random() < 0.35
    arrival, model = bursty_arrivals(rng, n, per_model, ties)
    cls = rng.choice([CLASS_INTERACTIVE, CLASS_BATCH, CLASS_DEV], size=n, p=[0.5, 0.25, 0.25])
    workload = (cls == CLASS_DEV).astype(np.int8)
    batch_id = np.where(cls == CLASS_BATCH, rng.integers(0, 6, n), -1).astype(np.int64)
    sla = rng.uniform(0.5, 30.0, n)
    sla[rng.random(n) < 0.2] = np.nan
    orders = tuple(dict.fromkeys([tuple(regions)] + [tuple(regions[k] for k in rng.permutation(len(regions)))
                                                      for _ in range(3)]))
    order = rng.integers(0, len(orders), n).astype(np.int32)
    prompt, tokens = random_sizes(rng, cfg, models, model, 0.1, 0.5, 4.0, 400)
    serving = Serving(tuple(models), model, workload, batch_id, sla, orders, order)
    return Trace("random-scaling", np.arange(n), np.zeros(n, np.int64), arrival, prompt, tokens,
                 serving=serving), ties


def scenario_dict(seed):
    """(config dict with its [scaling] table, trace); ``config(d)`` parses it."""
    rng = np.random.default_rng(11000 + seed)
    while True:
        d, regions, models, serves = random_topology(rng)
        base = from_dict({k: v for k, v in d.items() if k != "scaling"})   # placement: scaling plays no part
        trace, ties = random_trace(rng, base, regions, models, serves)
        if ties and rng.random() < 0.7:           # run ends on binary fractions: ties with every other event
            d["performance_model"] = {"kind": "constant", "prompt_time": float(rng.choice([0.125, 0.25])),
                                      "token_time": float(rng.choice([0.03125, 0.0625]))}
        if rng.random() < 0.15:
            d["end_time"] = float(trace.arrival[-1] * rng.uniform(0.4, 0.9))
        try:
            check_runnable(from_dict({k: v for k, v in d.items() if k != "scaling"}), trace)
        except InputError:
            continue
        return d, trace


def handover_dict(seed):
    """A handover scenario (config dict with [scaling], trace): one region on one deployment, 2-3 models of 2-5
    instances, lockout delays at level 2 and bursts passing straight from one model to the next, so that an idle
    model's instances enter the spot pool still running its requests and a hot model takes them over (a donated
    instance starting, then ready once its old requests are done)."""
    rng = np.random.default_rng(13000 + seed)
    while True:
        models = sorted(rng.choice(["A", "C", "D", "llama2-70b"], size=int(rng.integers(2, 4)), replace=False).tolist())
        sku = str(rng.choice(["dgx-a100", "dgx-h100"]))
        endpoints = [{"region": "r0", "model": m, "instances": int(rng.integers(2, 6)), "sku": sku,
                      "tensor_parallel": 2, "scheduler": "token_jsq" if rng.random() < 0.5 else "jsq"} for m in models]
        policy = str(rng.choice(["utilization", "queue"]))
        sc = {"level": 2, "policy": policy, "delays": "lockout", "spin_up": float(rng.choice([0.5, 1.0])),
              "reclaim_delay": 1.0, "spin_down": float(rng.choice([0.0, 0.5])),
              "interval": float(rng.choice([-1.0, 0.0, 0.25]))}
        if policy == "utilization":
            sc["lower"], sc["upper"] = 0.3, 0.4
        else:
            sc["lower"], sc["upper"] = 2.0, 3.0
        if rng.random() < 0.5:
            sc["timer"] = 0.5
        d = {"region": [{"name": "r0"}], "endpoint": endpoints, "scaling": sc, "seed": int(rng.integers(0, 2**31)),
             "feeding": {"on_enqueue": True}}
        base = from_dict({k: v for k, v in d.items() if k != "scaling"})
        n = int(rng.integers(200, 350))
        per_model = [e["instances"] for e in endpoints]
        times, which = [], []
        t, hot = 0.0, int(rng.integers(len(models)))
        while len(times) < n:                     # back-to-back bursts of a different model each
            hot = (hot + int(rng.integers(1, len(models)))) % len(models)
            end = t + float(rng.uniform(2.0, 5.0))
            rate = per_model[hot] * float(rng.uniform(2.0, 5.0))
            while len(times) < n:
                t += float(rng.exponential(1.0 / rate))
                if t > end:
                    t = end
                    break
                times.append(t)
                which.append(hot)
        model = np.array(which, np.int32)
        limits = size_limits(base, models)
        prompt = np.array([int(np.clip(rng.lognormal(np.log(0.1 * limits[models[m]]), 0.6), 1,
                                       0.4 * limits[models[m]])) for m in model], np.int64)
        tokens = rng.integers(60, 400, n).astype(np.int64)
        cls = rng.choice([CLASS_INTERACTIVE, CLASS_DEV], size=n, p=[0.8, 0.2])
        serving = Serving(tuple(models), model, (cls == CLASS_DEV).astype(np.int8), np.full(n, -1, np.int64),
                          np.full(n, np.nan), (("r0",),), np.zeros(n, np.int32))
        trace = Trace("handover", np.arange(n), np.zeros(n, np.int64), np.array(times), prompt, tokens,
                      serving=serving)
        try:
            check_runnable(base, trace)
        except InputError:
            continue
        return d, trace


def silo_dict(seed):
    """A silo scenario (config dict, trace): one region, model A in a prod silo (token_jsq) and a dev silo (one spot
    list for both), Chiron's policy with lockout delays (the dev silo scales down whenever its queue is empty, often
    an instance still running dev requests, and the prod silo takes it back at once), a constant performance model,
    short requests and a low feed band (queues build up). A run of such an instance can complete requests routed to
    both silos: each completion feeds the endpoint its request was routed to. ``SILO_SEEDS`` are seeds where it
    happens with work queued (found by a search with the reference)."""
    rng = np.random.default_rng(seed)
    sc = {"level": 1, "policy": "chiron", "delays": "lockout", "reclaim_delay": 0.0, "spin_down": 0.0,
          "interval": -1.0, "pending_time": float(rng.choice([0.5, 1.5, 3.0])), "prompt_time": 1.0,
          "decode_throughput": 100.0, "min_instances": 2}
    d = {"region": [{"name": "r0"}],
         "endpoint": [{"region": "r0", "model": "A", "workload": "prod", "instances": int(rng.integers(2, 5)),
                       "tensor_parallel": 2, "scheduler": "token_jsq"},
                      {"region": "r0", "model": "A", "workload": "dev", "instances": int(rng.integers(3, 6)),
                       "tensor_parallel": 2, "scheduler": str(rng.choice(["jsq", "token_jsq"]))}],
         "scaling": sc, "seed": 1,
         "feeding": {"on_enqueue": True, "bands": [[float(rng.choice([0.05, 0.1, 0.2])), int(rng.integers(1, 3))]]},
         "performance_model": {"kind": "constant", "prompt_time": 1.0, "token_time": 0.25}}
    n = int(rng.integers(40, 120))
    arrival = np.sort(np.round(rng.uniform(0, 20, n) * 16) / 16)
    cls = rng.choice([CLASS_INTERACTIVE, CLASS_BATCH, CLASS_DEV], size=n, p=[0.3, 0.35, 0.35])
    lim = 14037                                   # KV tokens of an A instance at TP2
    prompt = np.where(cls == CLASS_DEV, rng.integers(int(0.05 * lim), int(0.2 * lim), n),
                      rng.integers(1, int(0.1 * lim), n)).astype(np.int64)
    tokens = np.where(cls == CLASS_DEV, rng.integers(2, 6, n),
                      np.where(rng.random(n) < 0.7, 1, rng.integers(2, 4, n))).astype(np.int64)
    serving = Serving(("A",), np.zeros(n, np.int32), (cls == CLASS_DEV).astype(np.int8),
                      np.where(cls == CLASS_BATCH, 1, -1).astype(np.int64), np.full(n, np.nan), (("r0",),),
                      np.zeros(n, np.int32))
    return d, Trace("silo", np.arange(n), np.zeros(n, np.int64), arrival, prompt, tokens, serving=serving)


def resolved_scaling(d):
    """The scaling parameters the reference gets for a scenario dict (docs/semantics.md defaults)."""
    sc = dict(d["scaling"])
    policy = sc.get("policy", "utilization")
    upper, lower = DEFAULT_BOUNDS[policy]
    out = {"level": 0, "policy": policy, "upper": upper, "lower": lower, "interval": -1.0, "timer": 0.0,
           "delays": "real", "spin_up": 155.0, "reclaim_delay": 65.0, "spin_down": 0.0, "min_instances": 2,
           "max_instances": 0, "pending_time": 86400.0, "prompt_time": 10.0, "decode_throughput": 100.0}
    out.update(sc)
    out["seed"] = int(d.get("seed", 0))
    return out


def scenario(seed):
    d, trace = scenario_dict(seed)
    return from_dict(d), trace, d


def handover(seed):
    d, trace = handover_dict(seed)
    return from_dict(d), trace, d


def silo(seed):
    d, trace = silo_dict(seed)
    return from_dict(d), trace, d


def all_scenarios():
    return ([scenario(s) for s in range(N_SCENARIOS)] + [handover(s) for s in range(N_HANDOVER)]
            + [silo(s) for s in SILO_SEEDS])


def two_endpoint_runs(ref):
    """Runs (instance, end time) that completed requests routed to two or more endpoints."""
    runs = {}
    for r in np.flatnonzero(ref["completed"]):
        runs.setdefault((int(ref["token_instance"][r]), float(ref["token_end"][r])), set()).add(int(ref["endpoint"][r]))
    return sum(len(v) > 1 for v in runs.values())


def reference(cfg, trace, d):
    requests, instances, params = reference_inputs(cfg, trace)
    got = params["topology"]["scaling"]
    want = resolved_scaling(d)
    assert {k: got[k] for k in want} == want, "the parsed [scaling] table differs from its documented meaning"
    return reference_simulate(requests, instances, params)


def first_difference(a, b):
    bad = ~((a == b) | (np.isnan(a) & np.isnan(b))) if a.dtype.kind == "f" else a != b
    return np.flatnonzero(bad)


def assert_same(cfg, trace, d):
    got = run(cfg, trace)
    ref = reference(cfg, trace, d)
    for f in REQUEST_FIELDS:
        a, b = getattr(got, f), ref[f]
        if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            bad = first_difference(a, b)
            r = int(bad[0])
            raise AssertionError(f"{f} differs at {len(bad)} request(s), first {r}: kernel {a[r]!r}, "
                                 f"reference {b[r]!r}")
    a, b = np.asarray(got.scaling_log, np.float64), ref["scaling_log"]
    if a.shape != b.shape or not np.array_equal(a, b):
        k = next((k for k in range(min(len(a), len(b))) if not np.array_equal(a[k], b[k])), min(len(a), len(b)))
        show = lambda x: dict(zip(SCALING_LOG, x[k].tolist())) if k < len(x) else None   # noqa: E731
        raise AssertionError(f"scaling logs differ ({len(a)} kernel rows, {len(b)} reference rows), first at row "
                             f"{k}: kernel {show(a)}, reference {show(b)}")
    np.testing.assert_array_equal(got.busy_time, ref["busy_time"])
    np.testing.assert_array_equal(got.iterations, ref["iterations"])
    assert got.end_clock == ref["end_clock"]
    for f in TIME_FIELDS:
        a = getattr(got, f)
        if f == "endpoint_time":                  # the rows the reference computes, by name
            a = a[[ENDPOINT_TIME.index(k) for k in REFERENCE_ENDPOINT_TIME]]
        np.testing.assert_allclose(a, ref[f], rtol=1e-9, atol=1e-9, err_msg=f)
    return got, ref


def test_layouts_agree():
    assert tuple(SCALING_LOG) == SCALING_LOG_COLUMNS
    assert set(REFERENCE_ENDPOINT_TIME) <= set(ENDPOINT_TIME)


@pytest.mark.parametrize("seed", range(N_SCENARIOS))
def test_random_scaling_matches_reference(seed):
    cfg, trace, d = scenario(seed)
    assert_same(cfg, trace, d)


@pytest.mark.parametrize("seed", range(N_HANDOVER))
def test_handovers_match_reference(seed):
    cfg, trace, d = handover(seed)
    assert_same(cfg, trace, d)


@pytest.mark.parametrize("seed", SILO_SEEDS)
def test_silos_match_reference(seed):
    cfg, trace, d = silo(seed)
    assert_same(cfg, trace, d)


def test_scenarios_exercise_the_scaling_dynamics():
    """The scenarios (reference runs; the kernel agrees with them above) reclaim, donate, get instances ready and
    fill spot lists in both delay modes, drain instances still running requests (real delays), put instances
    still running requests into the spot pool and donate some of them (lockout delays); every run conserves
    its instances (state seconds add up to the end clock for each instance)."""
    counts = {(mode, a): 0 for mode in ("real", "lockout") for a in ACTIONS if (mode, a) != ("lockout", "drain")}
    busy_drains = busy_spots = busy_donations = mixed = 0
    col = {c: k for k, c in enumerate(SCALING_LOG_COLUMNS)}
    for cfg, trace, d in all_scenarios():
        ref = reference(cfg, trace, d)
        log = ref["scaling_log"]
        mode = d["scaling"].get("delays", "real")
        for a, name in enumerate(ACTIONS):
            if (mode, name) in counts:
                counts[(mode, name)] += int(np.sum(log[:, col["action"]] == a))
        total = ref["serving_time"] + ref["starting_time"] + ref["draining_time"] + ref["spot_time"]
        np.testing.assert_allclose(total, ref["end_clock"], rtol=1e-12)
        mixed += two_endpoint_runs(ref)
        # after every move, a region's endpoints (serving + starting + draining) and spot pool hold its instances
        topo = cfg.topology
        region = [topo.regions.index(e.region) for e in topo.endpoints]
        held_by = {j: e.instances for j, e in enumerate(topo.endpoints)}
        spot = {}
        for row in log:
            j = int(row[col["endpoint"]])
            held_by[j] = int(row[col["serving"]] + row[col["starting"]] + row[col["draining"]])
            spot[region[j]] = int(row[col["spot"]])
            g = region[j]
            assert (sum(held_by[k] for k in held_by if region[k] == g) + spot[g]
                    == sum(e.instances for k, e in enumerate(topo.endpoints) if region[k] == g)), (d, row)
        # requests an instance held when it moved: they reached it (fed time + routing delay) before and ended after
        reached = ref["fed_time"] + cfg.topology.routing.delay
        for row in log:
            inst, t, a = int(row[col["instance"]]), row[col["time"]], int(row[col["action"]])
            held = bool(np.any((ref["prompt_instance"] == inst) & (reached < t) & ~(ref["token_end"] <= t)))
            if a == 3 and held:
                busy_drains += 1
            elif a == 4 and mode == "lockout" and held:
                busy_spots += 1
            elif a == 1 and mode == "lockout" and held:
                busy_donations += 1
    print(counts, "drains of busy instances", busy_drains, "busy instances into the spot pool", busy_spots,
          "donations of busy instances", busy_donations, "runs completing requests of two endpoints", mixed)
    assert all(v > 0 for v in counts.values()), counts
    assert busy_drains > 20 and busy_spots > 20 and busy_donations >= 3 and mixed >= len(SILO_SEEDS), \
        (busy_drains, busy_spots, busy_donations, mixed)
