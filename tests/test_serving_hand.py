"""Topology dynamics computed by hand (docs/semantics.md, "Regions, endpoints and request classes"): spill-over
exactly at the routing threshold, feed bands, dev priority inside an instance, group choice by pending tokens,
the routing delay, and routed requests going before simultaneous arrivals. Each expected value is derived in the
comments; every case also runs the plain-Python reference (tests/reference_sim.py), which must agree.

Common ground: model A at TP2 on a DGX-A100 (80 GiB GPUs) holds 2 x 85,899,345,920 - 135,000,000,000 =
36,798,691,840 KV bytes beside its weights, i.e. 14,037.6 tokens at 2,621,440 bytes per token; a request holds
KV(prompt_size + 1) from its prompt's start and KV(token_size - 1) more from its decode's start, until it completes.
The constant performance model makes every prompt iteration ``PROMPT`` seconds and every decode iteration
``TOKEN`` seconds; all times are binary fractions, so sums are exact.
"""
import numpy as np

from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import run
from sweepsim.workload.trace import Serving, Trace
from tests.test_serving_differential import assert_same

KV = 2_621_440                           # bytes per token of A
ROOM = 2 * 85_899_345_920 - 135_000_000_000   # KV bytes of one A TP2 instance
PROMPT, TOKEN = 1.0, 0.25
PERF = {"kind": "constant", "prompt_time": PROMPT, "token_time": TOKEN}
I, B, D = 0, 1, 2                        # request classes: interactive, batch, dev


def config(regions, endpoints, **extra):
    """A topology of A TP2 endpoints: ``endpoints`` = (region, instances, groups, scheduler) tuples."""
    eps = [{"region": r, "model": "A", "instances": n, "tensor_parallel": 2, "scheduler": s,
            **({"groups": list(g)} if g else {})} for r, n, g, s in endpoints]
    return from_dict({"region": [{"name": r} for r in regions], "endpoint": eps, "performance_model": PERF,
                      **extra})


def trace(rows, orders=(("r0",),)):
    """rows: (arrival, prompt_size, token_size, class, sla, order index)."""
    a, p, t, c, s, o = (np.array(x) for x in zip(*rows))
    n = len(rows)
    serving = Serving(("A",), np.zeros(n, np.int32), (c == D).astype(np.int8), np.where(c == B, 0, -1).astype(np.int64),
                      s.astype(np.float64), tuple(orders), o.astype(np.int32))
    return Trace("hand", np.arange(n), np.zeros(n, np.int64), a.astype(np.float64), p.astype(np.int64),
                 t.astype(np.int64), serving=serving)


def simulate(cfg, tr):
    """The kernel's results, after checking that the reference agrees bit for bit."""
    assert_same(cfg, tr)
    return run(cfg, tr)


def test_utilisation_equal_to_the_threshold_spills_to_the_next_region():
    # r0 -> region r0 at t=0 (both endpoints empty: 0 < threshold); its prompt runs [0, 1] holding 5000 tokens:
    # utilisation u0 = 5000 x KV / ROOM = 0.35619... Request 1 arrives at 0.125 with the same order (r0, r1).
    u0 = 5000 * KV / ROOM
    rows = [(0.0, 4999, 1, I, np.nan, 0), (0.125, 99, 1, I, np.nan, 0)]
    tr = trace(rows, orders=(("r0", "r1"),))
    eps = [("r0", 1, (1,), "token_jsq"), ("r1", 1, (1,), "token_jsq")]
    # threshold == u0: r0's endpoint is not strictly below it, r1's (0) is: request 1 spills to endpoint 1 and
    # starts at once on its idle instance 1
    res = simulate(config(["r0", "r1"], eps, routing={"threshold": u0}), tr)
    assert list(res.endpoint) == [0, 1] and list(res.prompt_instance) == [0, 1]
    assert res.prompt_start[1] == 0.125 and res.prompt_end[1] == 1.125
    # one ulp above u0: r0's endpoint is below the threshold, request 1 stays and waits for the prompt run at
    # instance 0 to end (t=1), then runs [1, 2]
    res = simulate(config(["r0", "r1"], eps, routing={"threshold": float(np.nextafter(u0, 1.0))}), tr)
    assert list(res.endpoint) == [0, 0] and res.prompt_start[1] == 1.0 and res.prompt_end[1] == 2.0
    # threshold 0: no endpoint is ever below it, the least utilised one is taken, the first on ties: request 0
    # (both at 0) -> endpoint 0; request 1 (u0 against 0) -> endpoint 1
    res = simulate(config(["r0", "r1"], eps, routing={"threshold": 0.0}), tr)
    assert list(res.endpoint) == [0, 1]


def _band_trace():
    # one endpoint of 3 instances in one group of 3 (SageServe's split of 3), token_jsq; its KV capacity is
    # 3 x ROOM = 42,112.8 tokens: 0.5 -> 21,056.4 tokens, 0.6 -> 25,267.7 tokens.
    # Interactive: r0 (t=0, 3000 KV tokens) -> instance 0 (all at 0 pending scheduler tokens, the first),
    # prompt run [0, 1]; r1 (t=0.125, 12000 tokens) -> instance 1 (0 < 2999), [0.125, 1.125];
    # r2 (t=0.25, 11000 tokens) -> instance 2, [0.25, 1.25]. In use from 0.25: 26000 tokens, u = 0.6174.
    # Batch b1, b2, b3 at 0.375, 0.5, 0.625 (prompt 9, one decode token: 10 + 1 KV tokens).
    rows = [(0.0, 2999, 1, I, np.nan, 0), (0.125, 11999, 1, I, np.nan, 0), (0.25, 10999, 1, I, np.nan, 0),
            (0.375, 9, 2, B, np.nan, 0), (0.5, 9, 2, B, np.nan, 0), (0.625, 9, 2, B, np.nan, 0)]
    return trace(rows)


def test_sageserve_bands_feed_nothing_above_0_6_and_two_between_0_5_and_0_6():
    tr = _band_trace()
    res = simulate(config(["r0"], [("r0", 3, (), "token_jsq")], feeding={"bands": "sageserve"}), tr)
    # at their arrivals u = 0.6174 is above the top band (0.6): on_enqueue feeds none, they stay queued.
    # t=1: r0 completes, 3000 tokens freed -> 23000 in use, u = 0.5462 in (0.5, 0.6]: 2 feeds, after instance 0
    # has started its next run (nothing to run: idle). b1 -> scheduler tokens (0, 11999, 10999) -> instance 0,
    # starts at once [1, 2]; b2 -> (10, 11999, 10999) -> instance 0, waits for that prompt run.
    # t=1.125: r1 completes -> 11000 + 10 tokens, u = 0.2614 <= 0.5: 1 feed: b3 -> (20, 0, 10999) -> instance 1.
    # t=2: b1's prompt ends; its decode and b2's prompt run together from 2.
    assert list(res.fed_time[3:]) == [1.0, 1.0, 1.125]
    assert list(res.prompt_instance[3:]) == [0, 0, 1]
    assert list(res.prompt_start[3:]) == [1.0, 2.0, 1.125]


def test_readme_band_feeds_one_per_completion_below_0_5():
    tr = _band_trace()
    res = simulate(config(["r0"], [("r0", 3, (), "token_jsq")], feeding={"bands": "readme"}), tr)
    # at the arrivals u = 0.6174 > 0.5: no feed. t=1: r0 completes, u = 0.5462 > 0.5: no feed.
    # t=1.125: r1 completes, u = 0.2612 (11000 tokens): 1 feed: b1 -> scheduler tokens (0, 0, 10999) ->
    # instance 0 (first on ties), starts at once: prompt [1.125, 2.125], decode [2.125, 2.375].
    # t=1.25: r2 completes, u = 10 tokens' worth: 1 feed: b2 -> (10, 0, 0) -> instance 1: prompt [1.25, 2.25].
    # b3 waits for the next completion, b1's at 2.375: fed then -> (0, 1, 0) -> instance 0 (idle): starts 2.375.
    assert list(res.fed_time[3:]) == [1.125, 1.25, 2.375]
    assert list(res.prompt_instance[3:]) == [0, 1, 0]
    assert list(res.prompt_start[3:]) == [1.125, 1.25, 2.375]
    assert res.token_end[3] == 2.375


def test_dev_request_is_admitted_by_arrival_plus_a_fraction_of_its_sla():
    # one instance (room 14037 tokens); feeding band [1.0, 1]: every trigger feeds one, so the dev request is
    # fed (and reaches the instance) at its arrival. r0 (t=0, 10000 KV tokens) runs its prompt [0, 1].
    # d: dev, t=0.25, SLA 2 s, 9000 tokens; i: interactive, t=0.5, 9000 tokens. Both wait for t=1, and only
    # one of them fits beside the other (18000 > 14037): ORCA admits in order-key order and stops at the first
    # that does not fit. d's key = 0.25 + 0.8 x 2 = 1.85 > i's 0.5: i runs [1, 2], then d [2, 3].
    rows = [(0.0, 9999, 1, I, np.nan, 0), (0.25, 8999, 1, D, 2.0, 0), (0.5, 8999, 1, I, np.nan, 0)]
    eps = [("r0", 1, (1,), "token_jsq")]
    res = simulate(config(["r0"], eps, feeding={"bands": [[1.0, 1]]}), trace(rows))
    assert res.fed_time[1] == 0.25 and res.prompt_instance[1] == 0
    assert res.prompt_start[2] == 1.0 and res.prompt_start[1] == 2.0
    # dev_sla_fraction 0: d's key is its arrival 0.25 < 0.5: d runs first [1, 2], i [2, 3]
    res = simulate(config(["r0"], eps, feeding={"bands": [[1.0, 1]], "dev_sla_fraction": 0.0}), trace(rows))
    assert res.prompt_start[1] == 1.0 and res.prompt_start[2] == 2.0
    # a dev request without an SLA gets no offset: d first again
    rows[1] = (0.25, 8999, 1, D, np.nan, 0)
    res = simulate(config(["r0"], eps, feeding={"bands": [[1.0, 1]]}), trace(rows))
    assert res.prompt_start[1] == 1.0 and res.prompt_start[2] == 2.0


def test_group_is_chosen_by_its_smallest_pending_token_count():
    # groups [2, 1]: g0 = instances 0, 1; g1 = instance 2. Every request has one output token (no decode task),
    # so an instance's pending tokens are the prompt sizes queued behind its running prompt.
    rows = [(0.0, 1000, 1, I, np.nan, 0), (0.125, 500, 1, I, np.nan, 0), (0.25, 300, 1, I, np.nan, 0),
            (0.375, 200, 1, I, np.nan, 0), (0.5, 100, 1, I, np.nan, 0), (0.625, 100, 1, I, np.nan, 0)]
    res = simulate(config(["r0"], [("r0", 3, (2, 1), "token_jsq")]), trace(rows))
    # token_jsq inside the group (scheduler tokens s, pending tokens p per instance):
    # r0: g0 min p 0 = g1 0 -> g0 (first); s (0, 0) -> instance 0, runs [0, 1]; s0 = 1000
    # r1: g0 min p 0 -> g0; s (1000, 0) -> instance 1, runs [0.125, 1.125]; s1 = 500
    # r2: g0 min p 0 -> g0 (although instance 2 is idle); s (1000, 500) -> instance 1, waits: p1 = 300
    # r3: g0 min(p0 0, p1 300) = 0 -> g0; s (1000, 800) -> instance 1, waits: p1 = 500
    # r4: g0 min(0, 500) = 0 -> g0; s (1000, 1000) -> instance 0 (first on ties), waits: p0 = 100
    # r5: g0 min(100, 500) = 100 > g1 0 -> g1 -> instance 2, starts at once
    # instance 0 runs r4 from 1; instance 1 runs r2 and r3 together from 1.125
    assert list(res.prompt_instance) == [0, 1, 1, 1, 0, 2]
    assert list(res.prompt_start) == [0.0, 0.125, 1.125, 1.125, 1.0, 0.625]
    # jsq inside the group (resident requests q):
    # r0 -> g0, q (0, 0) -> 0; r1 -> g0 (p 0, 0), q (1, 0) -> 1; r2 -> g0 (p 0, 0), q (1, 1) -> 0, waits: p0 = 300
    # r3 -> g0 min(300, 0) = 0, q (2, 1) -> 1, waits: p1 = 200; r4 -> g0 min(300, 200) = 200 > g1 0 -> 2, starts
    # at 0.5; r5 -> g1 (p2 0: r4 is running) -> instance 2, waits for r4's prompt run to end at 1.5
    res = simulate(config(["r0"], [("r0", 3, (2, 1), "jsq")]), trace(rows))
    assert list(res.prompt_instance) == [0, 1, 0, 1, 2, 2]
    assert list(res.prompt_start) == [0.0, 0.125, 1.0, 1.125, 0.5, 1.5]


def test_routing_delay_shifts_ttft_by_exactly_the_delay_on_an_idle_system():
    # requests 8 s apart on an idle endpoint, one of each class (fed at arrival: utilisation 0 <= 0.5): each
    # prompt runs [s, s + 1], its 4 decode iterations [s + 1, s + 2], s = arrival (+ delay). Fed time = arrival.
    rows = [(8.0 * k, 100, 5, c, 10.0, 0) for k, c in enumerate([I, B, D, I])]
    tr = trace(rows)
    eps = [("r0", 2, (), "token_jsq")]
    a = simulate(config(["r0"], eps), tr)
    b = simulate(config(["r0"], eps, routing={"delay": 0.5}), tr)
    assert np.array_equal(a.fed_time, tr.arrival) and np.array_equal(b.fed_time, tr.arrival)
    assert np.array_equal(a.prompt_start, tr.arrival) and np.array_equal(a.token_end, tr.arrival + 2.0)
    assert np.array_equal(b.prompt_end - b.fed_time, a.prompt_end - a.fed_time + 0.5)    # TTFT + delay
    assert np.array_equal(b.token_end, a.token_end + 0.5)


def test_a_routed_request_reaches_its_endpoint_before_a_simultaneous_arrival():
    # delay 0.5: r0 (interactive, t=0, 10000 KV tokens) reaches the single instance at 0.5, exactly when batch
    # request b arrives. Routed requests go first: r0's prompt starts at 0.5 (u = 10000 x KV / ROOM = 0.7124),
    # so b's on_enqueue feed sees u > 0.5 and feeds nothing; b is fed when r0 completes at 1.5 (u = 0 again)
    # and reaches the instance at 2.0.
    rows = [(0.0, 9999, 1, I, np.nan, 0), (0.5, 9, 2, B, np.nan, 0)]
    res = simulate(config(["r0"], [("r0", 1, (1,), "token_jsq")], routing={"delay": 0.5}), trace(rows))
    assert res.prompt_start[0] == 0.5 and res.prompt_end[0] == 1.5
    assert res.fed_time[1] == 1.5 and res.prompt_start[1] == 2.0
