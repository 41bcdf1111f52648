"""Differential test of topologies: the Numba kernel (``kernels/serving_nb.py`` and the instance kernels) and the
plain-Python reference (``tests/reference_sim.py``, T1-T8) give bit-identical per-request results on random
topologies and traces.

Each scenario draws (fixed seeds): 1-3 regions; 1-4 models among A, B, C, D and llama2-70b, each either shared
(one ``any`` endpoint per hosting region) or siloed (prod and/or dev endpoints per hosting region); 1-5 ORCA
instances per endpoint on small KV capacities (tensor parallelism 1-4), with explicit replica groups or
SageServe's default ones; token_jsq or jsq inside groups; a routing threshold (0, 1, or between) and delay (0 or
positive, sometimes an exact binary fraction tying with arrivals); feed bands (presets "readme", "sageserve", or
1-4 custom bands), a granularity, on_enqueue on or off, sometimes feeding disabled, a dev SLA fraction; then a
trace of a few hundred requests of the three classes (interactive, batch, dev) with random region priority
orders (full, partial, by name or index, or empty = the topology's order), some NaN SLAs, one-token outputs,
sometimes simultaneous arrivals and a constant performance model (run ends tying with arrivals), sometimes an
early ``end_time``, and rarely no serving columns at all (interactive traffic of the only model). Arrival rates
scale with the instance count so that instances queue and KV utilisation crosses the routing threshold and the
feed bands; ``test_scenarios_exercise_the_serving_dynamics`` checks that they do (spill-over, late feeds,
requests never fed, dev requests overtaken). ``exact_scenario`` adds topologies whose utilisations take a few exact
values, with routing thresholds and feed-band bounds set to them (the equality cases: strictly below the threshold,
at or below a band), and one case runs the shipped us3 topology with small instance counts.

Configurations the engine's pre-run checks refuse are drawn again (``scenario``): for a topology they bound the batch
tokens with the first endpoint's model for every instance and may refuse a profiled curve no batch reaches.
"""
from dataclasses import replace

import numpy as np
import pytest

from sweepsim.config.catalog import get_model, get_sku
from sweepsim.config.run import from_dict
from sweepsim.engine.placement import place_instances
from sweepsim.engine.simulate import check_runnable, run
from sweepsim.errors import InputError
from sweepsim.workload.trace import Serving, Trace
from tests.reference_inputs import reference_inputs
from tests.reference_sim import simulate as reference_simulate

REQUEST_FIELDS = ("completed", "prompt_instance", "token_instance", "prompt_start", "prompt_end", "token_start",
                  "token_end", "fed_time", "endpoint")
MODELS = ("A", "B", "C", "D", "llama2-70b")
#: (SKU, tensor parallelism) per model, chosen for small KV capacities (tokens per instance beside the weights):
#: A / llama2-70b TP2 ~14k, TP4 ~80k; B TP4 ~3.6k; C TP1 ~16.6k; D TP1 ~127k
DEPLOYMENTS = {"A": (("dgx-a100", 2), ("dgx-h100", 2), ("dgx-a100", 4)),
               "llama2-70b": (("dgx-a100", 2), ("dgx-h100", 2)),
               "B": (("dgx-a100", 4), ("dgx-h100", 4)),
               "C": (("dgx-a100", 1), ("dgx-h100", 1), ("dgx-a100", 2)),
               "D": (("dgx-a100", 1), ("dgx-h100", 1))}
CLASS_INTERACTIVE, CLASS_BATCH, CLASS_DEV = 0, 1, 2
N_SCENARIOS = 48


def random_groups(rng, n):
    """Explicit group sizes (a random composition of n), or () for SageServe's default split (n >= 2)."""
    if n >= 2 and rng.random() < 0.5:
        return ()
    sizes = []
    left = n
    while left:
        k = int(rng.integers(1, left + 1))
        sizes.append(k)
        left -= k
    return tuple(sizes)


def random_topology(rng):
    """A random topology config dict and, per model, the regions hosting its prod and its dev requests."""
    n_reg = int(rng.integers(1, 4))
    regions = [f"r{k}" for k in range(n_reg)]
    models = sorted(rng.choice(MODELS, size=int(rng.integers(1, 5)), replace=False).tolist())
    endpoints = []
    serves = {}                                   # model -> {"prod": regions, "dev": regions}
    for m in models:
        hosts = [r for r in regions if rng.random() < 0.7] or [str(rng.choice(regions))]
        siloed = rng.random() < 0.3
        prod, dev = [], []
        for r in hosts:
            if siloed:
                silos = [("prod",), ("dev",), ("prod", "dev")][int(rng.integers(3))]
            else:
                silos = ("any",)
            for w in silos:
                sku, tp = DEPLOYMENTS[m][int(rng.integers(len(DEPLOYMENTS[m])))]
                n = int(rng.integers(1, 6))
                e = {"region": r, "model": m, "instances": n, "workload": w, "sku": sku, "tensor_parallel": tp,
                     "scheduler": "token_jsq" if rng.random() < 0.6 else "jsq"}
                g = random_groups(rng, n)
                if g:
                    e["groups"] = list(g)
                endpoints.append(e)
                if w in ("any", "prod"):
                    prod.append(r)
                if w in ("any", "dev"):
                    dev.append(r)
        if siloed and not prod:                   # every model serves both workloads somewhere
            endpoints.append({"region": hosts[0], "model": m, "instances": 1, "groups": [1], "workload": "prod",
                              "sku": DEPLOYMENTS[m][0][0], "tensor_parallel": DEPLOYMENTS[m][0][1]})
            prod.append(hosts[0])
        if siloed and not dev:
            endpoints.append({"region": hosts[-1], "model": m, "instances": 1, "groups": [1], "workload": "dev",
                              "sku": DEPLOYMENTS[m][0][0], "tensor_parallel": DEPLOYMENTS[m][0][1]})
            dev.append(hosts[-1])
        serves[m] = {"prod": prod, "dev": dev}
    threshold = [0.0, 0.3, 0.5, 0.7, 1.0, float(rng.uniform(0.05, 0.95))][int(rng.integers(6))]
    delay = 0.0 if rng.random() < 0.5 else [0.25, 0.5, 1.0, float(rng.uniform(0.01, 2.0))][int(rng.integers(4))]
    feeding = {"granularity": int(rng.integers(1, 4)), "on_enqueue": bool(rng.random() < 0.6),
               "dev_sla_fraction": [0.8, 0.8, 0.0, 0.5, 2.0][int(rng.integers(5))]}
    kind = int(rng.integers(4))
    if kind == 0:
        feeding["bands"] = "readme"
    elif kind == 1:
        feeding["bands"] = "sageserve"
    elif kind == 2:
        k = int(rng.integers(1, 5))
        utils = np.sort(rng.choice(np.arange(5, 101), size=k, replace=False)) / 100.0
        feeding["bands"] = [[float(u), int(rng.integers(0, 4))] for u in utils]
    if rng.random() < 0.08:
        feeding["enabled"] = False
    d = {"region": [{"name": r} for r in regions], "endpoint": endpoints,
         "routing": {"threshold": threshold, "delay": delay}, "feeding": feeding}
    return d, regions, models, serves


def size_limits(cfg, models):
    """Per model, the largest prompt + output tokens a request may have: it fits in every instance of the model
    (KV beside the weights), and passes the engine's oversized-request check (which counts every instance's room
    in the KV size of the config's first model)."""
    p = place_instances(cfg)
    room = p.max_memory - p.weights
    check = int((room // get_model(cfg.model).kv_bytes_per_token).min())
    names = [e.model for e in cfg.topology.endpoints]
    limits = {}
    for m in models:
        own = [int(room[i] // p.kv_per_token[i]) for i in range(len(room)) if names[p.endpoint[i]] == m]
        limits[m] = min(min(own), check)
    return limits


def random_sizes(rng, cfg, models, model, prompt_frac, prompt_cap, token_mu, token_cap):
    """Prompt and output sizes per request of model codes ``model``: lognormal, within the model's ``size_limits``
    (prompts around ``prompt_frac`` of the limit, at most ``prompt_cap`` of it; outputs around e^token_mu, at most
    ``token_cap``), and 5% one-token outputs."""
    limits = size_limits(cfg, models)
    n = len(model)
    prompt = np.empty(n, np.int64)
    tokens = np.empty(n, np.int64)
    for r in range(n):
        lim = limits[models[model[r]]]
        prompt[r] = int(np.clip(rng.lognormal(np.log(prompt_frac * lim), 0.8), 1, prompt_cap * lim))
        tokens[r] = int(np.clip(rng.lognormal(token_mu, 1.0), 1, min(token_cap, lim - prompt[r])))
    tokens[rng.random(n) < 0.05] = 1
    return prompt, tokens


def random_trace(rng, cfg, regions, models, serves):
    n = int(rng.integers(200, 700))
    n_inst = sum(e.instances for e in cfg.topology.endpoints)
    rate = n_inst * float(rng.uniform(0.5, 4.0))
    arrival = np.cumsum(rng.exponential(1.0 / rate, n))
    ties = rng.random() < 0.3
    if ties:                                      # simultaneous arrivals, on exact binary fractions
        arrival = np.round(arrival * 8) / 8
    model = rng.integers(0, len(models), n).astype(np.int32)
    cls = rng.choice([CLASS_INTERACTIVE, CLASS_BATCH, CLASS_DEV], size=n, p=[0.5, 0.25, 0.25])
    workload = (cls == CLASS_DEV).astype(np.int8)
    batch_id = np.where(cls == CLASS_BATCH, rng.integers(0, 6, n), -1).astype(np.int64)
    sla = rng.uniform(0.5, 30.0, n)
    sla[rng.random(n) < 0.2] = np.nan
    # region priority orders: permutations of every region, partial ones, by index, and the empty order
    orders = [tuple(regions)]
    for _ in range(int(rng.integers(1, 4))):
        perm = [regions[k] for k in rng.permutation(len(regions))]
        if rng.random() < 0.3:
            perm = perm[:int(rng.integers(1, len(regions) + 1))]
        if rng.random() < 0.2:
            perm = [str(regions.index(r)) for r in perm]
        orders.append(tuple(perm))
    if rng.random() < 0.3:
        orders.append(())
    orders = tuple(dict.fromkeys(orders))
    order = rng.integers(0, len(orders), n).astype(np.int32)
    for r in range(n):                            # an order must reach a region serving the request
        hosts = serves[models[model[r]]]["dev" if workload[r] else "prod"]
        toks = orders[order[r]] or tuple(regions)
        names = [t if not t.isdigit() else regions[int(t)] for t in toks]
        if not set(names) & set(hosts):
            order[r] = 0
    prompt, tokens = random_sizes(rng, cfg, models, model, 0.12, 0.6, 3.8, 300)
    serving = Serving(tuple(models), model, workload, batch_id, sla, orders, order)
    if len(models) == 1 and rng.random() < 0.15:
        serving = None                            # no serving columns: interactive traffic of the only model
    return Trace("random-serving", np.arange(n), np.zeros(n, np.int64), arrival, prompt, tokens, serving=serving), ties


def scenario(seed):
    rng = np.random.default_rng(7000 + seed)
    while True:
        d, regions, models, serves = random_topology(rng)
        cfg = from_dict(d)
        trace, ties = random_trace(rng, cfg, regions, models, serves)
        if ties and rng.random() < 0.8:           # routed requests reach their endpoints as others arrive
            d["routing"]["delay"] = [0.125, 0.25, 0.5, 1.0][int(rng.integers(4))]
            cfg = from_dict(d)
        if ties and rng.random() < 0.6:           # iteration times on binary fractions: run ends tie with arrivals
            d["performance_model"] = {"kind": "constant", "prompt_time": [0.125, 0.25][int(rng.integers(2))],
                                      "token_time": [0.03125, 0.0625][int(rng.integers(2))]}
            cfg = from_dict(d)
        if rng.random() < 0.2:
            cfg = replace(cfg, end_time=float(trace.arrival[-1] * rng.uniform(0.3, 1.0)))
        try:
            # the engine's pre-run checks bound the batch tokens with the first endpoint's model for every
            # instance, and may refuse a profiled curve that no batch of its own endpoint reaches: draw again
            check_runnable(cfg, trace)
        except InputError:
            continue
        return cfg, trace


def assert_same(cfg, trace):
    got = run(cfg, trace)
    ref = reference_simulate(*reference_inputs(cfg, trace))
    for f in REQUEST_FIELDS:
        a, b = getattr(got, f), ref[f]
        if not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            bad = np.flatnonzero(~((a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a != b))
            r = int(bad[0])
            raise AssertionError(f"{f} differs at {len(bad)} request(s), first {r}: kernel {a[r]!r}, "
                                 f"reference {b[r]!r}")
    np.testing.assert_array_equal(got.busy_time, ref["busy_time"])
    np.testing.assert_array_equal(got.iterations, ref["iterations"])
    assert got.end_clock == ref["end_clock"]
    return got


@pytest.mark.parametrize("seed", range(N_SCENARIOS))
def test_random_topologies_match_reference(seed):
    cfg, trace = scenario(seed)
    assert_same(cfg, trace)


#: Endpoints of 2 instances of A at TP2 (DGX-A100 or DGX-H100: 80 GiB per GPU) all have the same KV capacity, and
#: requests hold multiples of UNIT KV tokens (prompt + 1 and output - 1 are multiples), so an endpoint's utilisation
#: is always j x UNIT x kv / capacity: thresholds and band bounds set to such values (computed with the same float
#: division) are hit with equality.
UNIT = 1123
N_EXACT = 10


def exact_utilisation(j):
    """The utilisation of an endpoint of 2 A TP2 instances holding j x UNIT KV tokens (the kernel's division)."""
    model = get_model("A")
    cap = 2 * (get_sku("dgx-a100").processor.memory_bytes * 2 - model.weight_bytes)
    assert get_sku("dgx-h100").processor.memory_bytes == get_sku("dgx-a100").processor.memory_bytes
    return float(j * UNIT * model.kv_bytes_per_token) / float(cap)


def exact_scenario(seed):
    rng = np.random.default_rng(9000 + seed)
    n_reg = int(rng.integers(2, 4))
    regions = [f"r{k}" for k in range(n_reg)]
    endpoints = []
    for r in regions:
        e = {"region": r, "model": "A", "instances": 2, "tensor_parallel": 2,
             "sku": "dgx-a100" if rng.random() < 0.5 else "dgx-h100",
             "scheduler": "token_jsq" if rng.random() < 0.5 else "jsq"}
        if rng.random() < 0.5:
            e["groups"] = [1, 1]
        endpoints.append(e)
    k = int(rng.integers(1, 5))
    bounds = np.sort(rng.choice(np.arange(1, 25), size=k, replace=False))
    d = {"region": [{"name": r} for r in regions], "endpoint": endpoints,
         "routing": {"threshold": exact_utilisation(int(rng.choice([4, 8, 12, 16]))),
                     "delay": [0.0, 0.0, 0.125, 0.5][int(rng.integers(4))]},
         "feeding": {"bands": [[exact_utilisation(int(b)), int(rng.integers(0, 4))] for b in bounds],
                     "on_enqueue": bool(rng.random() < 0.6), "granularity": int(rng.integers(1, 3))},
         "performance_model": {"kind": "constant", "prompt_time": 0.25, "token_time": 0.0078125}}
    cfg = from_dict(d)
    n = int(rng.integers(150, 300))
    arrival = np.round(np.cumsum(rng.exponential(1.0 / float(rng.uniform(3, 12)), n)) * 8) / 8
    prompt = rng.integers(1, 6, n) * UNIT - 1
    tokens = np.where(rng.random(n) < 0.8, 1, UNIT + 1)
    cls = rng.choice([CLASS_INTERACTIVE, CLASS_BATCH, CLASS_DEV], size=n, p=[0.5, 0.25, 0.25])
    sla = rng.uniform(0.5, 20.0, n)
    sla[rng.random(n) < 0.2] = np.nan
    orders = tuple(dict.fromkeys(tuple(regions[j] for j in rng.permutation(n_reg)) for _ in range(3)))
    serving = Serving(("A",), np.zeros(n, np.int32), (cls == CLASS_DEV).astype(np.int8),
                      np.where(cls == CLASS_BATCH, 1, -1).astype(np.int64), sla, orders,
                      rng.integers(0, len(orders), n).astype(np.int32))
    return cfg, Trace("exact-utilisation", np.arange(n), np.zeros(n, np.int64), arrival, prompt, tokens, serving=serving)


@pytest.mark.parametrize("seed", range(N_EXACT))
def test_utilisations_on_thresholds_and_bands_match_reference(seed):
    cfg, trace = exact_scenario(seed)
    assert_same(cfg, trace)


def test_shipped_topology_with_small_instance_counts_matches_reference():
    """us3 (3 regions x models A-D) with 1-3 instances per endpoint, SageServe's feeding and routing delay."""
    rng = np.random.default_rng(5)
    regions = ["westus", "centralus", "eastus"]
    inst = {r: {m: int(rng.integers(2, 4)) for m in "ABCD"} for r in regions}
    cfg = from_dict({"topology": "us3", "instances": inst, "routing": {"delay": 1.0, "threshold": 0.7},
                     "feeding": {"bands": "sageserve", "on_enqueue": False}})
    serves = {m: {"prod": regions, "dev": regions} for m in "ABCD"}
    trace, _ = random_trace(rng, cfg, regions, list("ABCD"), serves)
    assert_same(cfg, trace)


def test_scenarios_exercise_the_serving_dynamics():
    """The random scenarios (kernel runs; the reference agrees with them above) cover what they are meant to."""
    spilled = late = never = overtaken = fallback = 0
    for seed in range(N_SCENARIOS):
        cfg, trace = scenario(seed)
        if trace.serving is None:
            continue
        got = run(cfg, trace)
        topo = cfg.topology
        sv = trace.serving
        routed = got.endpoint >= 0
        cls = sv.request_class()
        services = topo.services()
        hosts = {}
        for e in topo.endpoints:
            hosts.setdefault((e.model, e.workload), set()).add(e.region)
        for r in np.flatnonzero(routed):
            # spill-over: routed outside the first region of its order that hosts its service
            m = sv.model_names[sv.model[r]]
            w = "dev" if cls[r] == CLASS_DEV else "prod"
            s = (m, w) if (m, w) in services else (m, "any")
            toks = sv.region_orders[sv.regions[r]] or topo.regions
            names = [topo.regions[int(t)] if t.isdigit() else t for t in toks]
            home = next(x for x in names if x in hosts[s])
            spilled += topo.endpoints[got.endpoint[r]].region != home
        late += int(np.sum(routed & (got.fed_time > trace.arrival)))
        never += int(np.sum(~routed & (cls != CLASS_INTERACTIVE)))
        fallback += int(topo.routing.threshold == 0.0 and np.any(routed))
        # a dev request that reached its instance before a later interactive one was admitted after it
        dev = np.flatnonzero((cls == CLASS_DEV) & got.completed)
        inter = np.flatnonzero((cls == CLASS_INTERACTIVE) & got.completed)
        for r in dev:
            same = inter[(got.prompt_instance[inter] == got.prompt_instance[r]) & (trace.arrival[inter] > got.fed_time[r])]
            overtaken += bool(np.any(got.prompt_start[same] < got.prompt_start[r]))
    print(f"spilled {spilled}, fed late {late}, never fed {never}, dev overtaken {overtaken}, threshold 0: {fallback}")
    assert spilled > 100 and late > 100 and never > 20 and overtaken > 10 and fallback >= 1, \
        (spilled, late, never, overtaken, fallback)
