"""Reactive autoscaling computed by hand (docs/semantics.md, "Reactive autoscaling (topologies)"): a reclaimed
instance serving exactly ``reclaim_delay`` later, a donation at level 2 serving ``spin_up`` later with its new model,
a draining instance finishing its request before entering the spot pool ``spin_down`` later, no donation at level 1,
nothing at level 0, the lock-out delays (``delays = "lockout"``), the evaluation interval, the timer, and SageServe's
group moves (section 3.3) against a pure-Python model of them. Each expected time and instance id is derived in the
comments; every case with scaling also runs the plain-Python reference (tests/reference_sim.py), which must agree
bit for bit. ``test_timer_ticks_at_exact_multiples_of_the_period`` is an expected failure: the kernel's timer ticks
drift from the documented t = kT when T is not a binary fraction (the reference ticks at kT).

Common ground (as tests/test_serving_hand.py): one DGX-A100 region ``r0``; TP2 instances (2 x 80 GiB); model A
holds 135,000,000,000 weight bytes and 2,621,440 KV bytes per token, so one A instance has ROOM = 36,798,691,840 KV
bytes = 14,037.6 tokens; model C holds 51,000,000,000 weight bytes. A request holds KV(prompt_size + 1) from its
prompt's start and KV(token_size - 1) more from its decode's start, until it completes. The constant performance
model makes every iteration with a prompt ``PROMPT`` = 1 s and every decode-only iteration ``TOKEN`` = 0.25 s; all
times are binary fractions, so sums are exact. Scaling thresholds are the utilization policy's defaults (up above
0.5, down below 0.25) unless stated. Utilisation is evaluated when a routed request reaches its endpoint, before
its instance is chosen (so it does not count that request). token_jsq raises an instance's scheduler count by
prompt_size + 1 (prompt_size for a one-token output) when a request is routed to it and lowers it by
prompt_size / 1 when its prompt / decode ends.
"""
import numpy as np
import pytest

from kernels.enums import ScaleAction
from kernels.layout import SCALING_LOG
from sweepsim.config.run import from_dict
from sweepsim.config.topology import replica_groups
from sweepsim.engine.simulate import run
from sweepsim.workload.trace import Serving, Trace
from tests.test_scaling_differential import assert_same as assert_same_as_reference
from tests.test_serving_differential import REQUEST_FIELDS

PERF = {"kind": "constant", "prompt_time": 1.0, "token_time": 0.25}
KV_A = 2_621_440
ROOM = 2 * 85_899_345_920 - 135_000_000_000       # KV bytes of one A TP2 instance
WEIGHTS_A, WEIGHTS_C = 135_000_000_000, 51_000_000_000
I, B, D = 0, 1, 2                                 # request classes: interactive, batch, dev
COL = {c: k for k, c in enumerate(SCALING_LOG)}
RECLAIM, DONATE, READY, DRAIN, SPOT = (ScaleAction.RECLAIM, ScaleAction.DONATE, ScaleAction.READY,
                                       ScaleAction.DRAIN, ScaleAction.SPOT)


def endpoint(model, instances, region="r0", **kw):
    return {"region": region, "model": model, "instances": instances, "tensor_parallel": 2, **kw}


def config_dict(endpoints, scaling=None, regions=("r0",), **extra):
    d = {"region": [{"name": r} for r in regions], "endpoint": list(endpoints), "performance_model": PERF, **extra}
    if scaling is not None:
        d["scaling"] = dict(scaling)
    return d


def trace(rows, models=("A",), orders=(("r0",),)):
    """rows: (arrival, prompt_size, token_size, model index, class, order index)."""
    a, p, t, m, c, o = (np.array(x) for x in zip(*rows))
    n = len(rows)
    serving = Serving(tuple(models), m.astype(np.int32), (c == D).astype(np.int8),
                      np.where(c == B, 0, -1).astype(np.int64), np.full(n, np.nan), tuple(orders), o.astype(np.int32))
    return Trace("hand", np.arange(n), np.zeros(n, np.int64), a.astype(np.float64), p.astype(np.int64),
                 t.astype(np.int64), serving=serving)


def simulate(d, tr):
    """The kernel's results, after checking that the reference agrees (bit for bit where it can)."""
    cfg = from_dict(d)
    if "scaling" in d and d["scaling"].get("level", 0) > 0:
        got, _ = assert_same_as_reference(cfg, tr, d)
        return got
    return run(cfg, tr)


def rows(res, action=None):
    """The scaling log as (time, action, instance, endpoint, from_model, serving, starting, draining, spot) tuples."""
    out = []
    for r in res.scaling_log:
        t = (float(r[COL["time"]]), int(r[COL["action"]]), int(r[COL["instance"]]), int(r[COL["endpoint"]]),
             int(r[COL["from_model"]]), int(r[COL["serving"]]), int(r[COL["starting"]]), int(r[COL["draining"]]),
             int(r[COL["spot"]]))
        if action is None or t[1] == action:
            out.append(t)
    return out


def moves(res):
    """(time, action, instance) per row."""
    return [r[:3] for r in rows(res)]


# ---------------------------------------------------------------------------------------------------------------
# 1. reclaim: the reclaimed instance serves exactly reclaim_delay later

#: one endpoint of A on 4 instances, SageServe's groups [0, 1] [2, 3]
RECLAIM_ROWS = [(0.0, 99, 1, 0, I, 0),      # r0: tiny
                (2.0, 99, 1, 0, I, 0),      # r1: tiny
                (10.0, 8999, 301, 0, I, 0),   # r2: 9000 + 300 KV tokens, 300 decode iterations (75 s)
                (10.5, 8999, 301, 0, I, 0),   # r3: the same
                (11.0, 99, 1, 0, I, 0),     # r4: finds utilisation above 0.5
                (12.0, 3999, 301, 0, I, 0),   # r5: 4000 + 300 KV tokens (fits beside r2 or r3: 13,600 <= 14,037)
                (30.0, 99, 1, 0, I, 0),     # r6, r7: inside the lock-out
                (50.0, 99, 1, 0, I, 0),
                (76.0, 99, 1, 0, I, 0),     # r8: at the ready time
                (77.0, 99, 1, 0, I, 0)]     # r9


def test_reclaimed_instance_serves_exactly_reclaim_delay_later():
    tr = trace(RECLAIM_ROWS)
    res = simulate(config_dict([endpoint("A", 4)], {"level": 1, "reclaim_delay": 65.0}), tr)
    # t=0, r0: utilisation 0 < 0.25 -> scale down (4 serving > min 2): groups [0,1][2,3] end in two groups of 2,
    # so 3 (the last group's last member) leaves and 2 joins the first group: [0,1,2]. 3 is idle: drain row, and
    # its spot row after spin_down = 0 (a lifecycle event at t=0). lock(r0, A) = 0 + spin_down = 0.
    # t=2, r1: utilisation 0 (r0 ended at 1) -> down again: [0,1,2] ends in a group of 3, its last member 2 leaves
    # -> [0,1]; spot list of (r0, A): [3, 2] (the order they entered it).
    # t=10, r2: utilisation 0 -> scale down, but 2 serving <= min_instances: nothing (lock = 10). r2 -> instance 0
    # (scheduler counts 0, 0: the first); prompt [10, 11]. t=10.5, r3: utilisation 9000 x KV / (2 ROOM) = 0.321:
    # nothing; r3 -> instance 1 (0 < 9000). t=11, r4: instance 0's prompt run ends first (its decode task: 300 more
    # tokens), then r4 finds (9300 + 9000) x KV / (2 ROOM) = 0.652 > 0.5 -> scale up: reclaim the head of the spot
    # list, instance 3 (it entered first), ready at 11 + 65 = 76; lock(r0, A) = 76. r4 -> 0 (count 1 < 9000).
    # t=12: r5 -> 1 (counts 100, 1). t=30, 50: r6, r7 find (9300 + 9300 + 4300) / 2 ROOM = 0.816 > 0.5 but are
    # inside the lock-out: no second reclaim; they go to 0 and 1 (instance 3 is starting, outside the groups).
    # t=76: the ready event (lifecycle events come before arrivals at the same time): 3 joins [0,1] -> [0,1,3].
    # Then r8: utilisation 22,900 tokens (r2, r3, r5 decode until after 86) over 3 ROOM = 0.544 > 0.5 -> reclaim 2
    # (ready at 141 = 76 + 65). r8 -> instance 3 (scheduler count 0; 0 and 1 count 1), starts at once: 76.
    assert moves(res) == [(0.0, DRAIN, 3), (0.0, SPOT, 3), (2.0, DRAIN, 2), (2.0, SPOT, 2),
                          (11.0, RECLAIM, 3), (76.0, READY, 3), (76.0, RECLAIM, 2), (141.0, READY, 2)]
    # counts after each row: (serving, starting, draining, region's spot)
    assert [r[5:] for r in rows(res)] == [(3, 0, 1, 0), (3, 0, 0, 1), (2, 0, 1, 1), (2, 0, 0, 2),
                                          (2, 1, 0, 1), (3, 0, 0, 1), (3, 1, 0, 0), (4, 0, 0, 0)]
    t_reclaim = rows(res, RECLAIM)[0][0]
    t_ready = rows(res, READY)[0][0]
    assert t_ready == t_reclaim + 65.0 == 76.0
    on3 = res.prompt_instance == 3
    assert np.flatnonzero(on3)[0] == 8 and res.prompt_start[8] == 76.0
    assert np.all(res.prompt_start[on3] >= t_ready)
    assert res.completed.all()
    # instance 3: serving [0, 0], spot [0, 11], starting [11, 76], serving from 76 to the end
    assert res.starting_time[3] == 65.0 and res.spot_time[3] == 11.0
    assert res.serving_time[3] == res.end_clock - 76.0


# ---------------------------------------------------------------------------------------------------------------
# 2. / 4. donation at level 2, none at level 1

#: endpoint 0: A on instances 0, 1 (one group); endpoint 1: C on instances 2-5 (groups [2,3] [4,5])
DONATE_EPS = [endpoint("A", 2), endpoint("C", 4)]
DONATE_ROWS = [(0.0, 99, 1, 1, I, 0),         # c0, c1: tiny C requests: C scales down to 2 instances
               (2.0, 99, 1, 1, I, 0),
               (10.0, 7999, 701, 0, I, 0),    # a2, a3: 8000 + 700 KV tokens, 700 decode iterations (175 s)
               (10.5, 7999, 701, 0, I, 0),
               (11.0, 99, 1, 0, I, 0),        # a4: A overloaded
               (166.0, 99, 1, 0, I, 0),       # a5, a6: after the donated instance is ready
               (167.0, 99, 1, 0, I, 0)]


def _donation(level):
    tr = trace(DONATE_ROWS, models=("A", "C"))      # model indices: A 0, C 1
    return simulate(config_dict(DONATE_EPS, {"level": level, "spin_up": 155.0}, seed=7), tr)


def test_donation_at_level_2_serves_spin_up_later_with_the_new_model():
    res = _donation(2)
    # t=0, c0 at C: utilisation 0 -> down: [2,3][4,5] -> 5 leaves (4 joins [2,3,4]), spot at once; t=2, c1: 4 leaves.
    # Spot lists: (r0, A) empty, (r0, C) [5, 4]. t=10, a2: A's utilisation 0 -> down, but A keeps min 2: nothing;
    # a2 -> 0, a3 -> 1. t=11, a4: (8700 + 8000) tokens / 2 ROOM = 0.595 > 0.5 -> scale up: A's own spot list is
    # empty, level 2: the non-empty lists of r0 are C's only (k = floor(u x 1) = 0 whatever the draw): donate its
    # head, instance 5, from model C (index 1); it serves A from 11 + 155 = 166 (lock(r0, A) = 166).
    # t=166: ready (before the arrival): 5 joins [0,1] -> [0,1,5]. a5: utilisation 2 x 8700 tokens (a2, a3 decode
    # until ~186) / 3 ROOM = 0.413: nothing; a5 -> 5 (scheduler count 0), starts at 166; a6 (167) -> 5 again.
    assert moves(res) == [(0.0, DRAIN, 5), (0.0, SPOT, 5), (2.0, DRAIN, 4), (2.0, SPOT, 4),
                          (11.0, DONATE, 5), (166.0, READY, 5)]
    donate = rows(res, DONATE)[0]
    assert donate[3] == 0 and donate[4] == 1             # endpoint A, from model C
    assert rows(res, READY)[0][4] == 0                   # ready with A's model
    assert list(res.prompt_instance[5:]) == [5, 5] and list(res.prompt_start[5:]) == [166.0, 167.0]
    assert not np.any((res.prompt_instance == 5) & (res.endpoint == 0) & (res.prompt_start < 166.0))
    assert res.completed.all()
    # the donated instance holds A's weights at the end, the one left in the spot list C's
    assert res.final_memory[5] == WEIGHTS_A and res.final_memory[4] == WEIGHTS_C
    assert res.starting_time[5] == 155.0 and res.spot_time[5] == 11.0


def test_level_1_never_donates():
    res = _donation(1)
    # the same until t=11: A's spot list is empty and level 1 does not look at C's: nothing (and no lock-out, so
    # a5, a6 at 166, 167 find 2 x 8700 tokens / 2 ROOM = 0.62 > 0.5 and try again, in vain)
    assert moves(res) == [(0.0, DRAIN, 5), (0.0, SPOT, 5), (2.0, DRAIN, 4), (2.0, SPOT, 4)]
    assert not np.isin(res.prompt_instance[2:], [2, 3, 4, 5]).any()
    assert res.final_memory[5] == WEIGHTS_C and res.completed.all()


# ---------------------------------------------------------------------------------------------------------------
# 3. draining finishes the admitted work first

DRAIN_ROWS = [(0.0, 99, 1, 0, I, 0),        # r0: tiny
              (0.25, 99, 81, 0, I, 0),      # r1, r2: 80 decode iterations (20 s)
              (0.5, 99, 81, 0, I, 0),
              (6.0, 99, 1, 0, I, 0)]        # r3: after the lock-out


@pytest.mark.parametrize("delays", ["real", "lockout"])
def test_draining_instance_finishes_its_request_before_the_spot_pool(delays):
    tr = trace(DRAIN_ROWS)
    res = simulate(config_dict([endpoint("A", 4)], {"level": 1, "spin_down": 5.0, "delays": delays}), tr)
    # t=0, r0: utilisation 0 -> down: 3 leaves ([0,1][2,3] -> [0,1,2]); lock(r0, A) = 0 + 5 = 5. r0 -> 0.
    # Real delays: 3 is idle, so it drains for spin_down: spot at 0 + 5 = 5.
    # t=0.25, 0.5 (inside the lock-out, no evaluation): r1 -> 1 (counts 99, 0, 0), r2 -> 2 (99, 100, 0). r2 runs
    # alone on 2: prompt [0.5, 1.5], 80 decode iterations [1.5, 21.5].
    # t=6, r3: utilisation (181 + 181) tokens / 3 ROOM < 0.25 -> down: [0,1,2] -> its last member 2 leaves while
    # holding r2 (lock = 11); r3 -> 0 (count 0 < instance 1's 1). Instance 2 gets nothing new and completes r2 at
    # t_c = 21.5; real delays: it enters the spot list at t_c + spin_down = 26.5.
    assert res.prompt_instance[2] == 2 and res.token_end[2] == 21.5 and res.completed.all()
    assert list(res.prompt_instance) == [0, 1, 2, 0]
    if delays == "real":
        assert moves(res) == [(0.0, DRAIN, 3), (5.0, SPOT, 3), (6.0, DRAIN, 2), (26.5, SPOT, 2)]
        t_d, t_spot = rows(res, DRAIN)[1][0], rows(res, SPOT)[1][0]
        assert t_d < res.token_end[2] and t_spot == res.token_end[2] + 5.0
        assert res.draining_time[2] == 26.5 - 6.0 and res.draining_time[3] == 5.0
    else:
        # lock-out delays: each leaving instance enters the spot list at once (no drain row) and still finishes
        # what it admitted there: r2 completes on 2 at 21.5 all the same
        assert moves(res) == [(0.0, SPOT, 3), (6.0, SPOT, 2)]
        assert res.draining_time.sum() == 0.0 and res.spot_time[2] == res.end_clock - 6.0


# ---------------------------------------------------------------------------------------------------------------
# 5. level 0 moves nothing

def test_level_0_moves_nothing_and_equals_no_scaling_table():
    tr = trace(RECLAIM_ROWS)
    base = config_dict([endpoint("A", 4)])
    scaled = config_dict([endpoint("A", 4)], {"level": 0, "policy": "queue", "timer": 3.0, "interval": 0.0,
                                              "min_instances": 2, "delays": "lockout"})
    a, b = simulate(base, tr), simulate(scaled, tr)
    assert b.scaling_log is None or len(b.scaling_log) == 0
    for f in REQUEST_FIELDS + ("busy_time", "iterations", "tokens_served", "final_memory", "serving_time"):
        x, y = getattr(a, f), getattr(b, f)
        assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), f
    assert a.end_clock == b.end_clock
    assert np.array_equal(a.endpoint_time, b.endpoint_time)
    # every instance serves the whole run
    assert np.array_equal(b.serving_time, np.full(4, b.end_clock))
    assert b.starting_time.sum() == b.draining_time.sum() == b.spot_time.sum() == 0.0


# ---------------------------------------------------------------------------------------------------------------
# 6. lock-out delays

def test_lockout_delays_change_capacity_at_once_and_block_a_second_scale_up():
    tr = trace(RECLAIM_ROWS)
    res = simulate(config_dict([endpoint("A", 4)], {"level": 1, "reclaim_delay": 65.0, "delays": "lockout"}), tr)
    # as in the first test, but a leaving instance enters the spot list at once (0: 3; 2: 2; no drain rows) and the
    # reclaim at t=11 joins at once: its row already counts 3 serving, 0 starting, and no ready row follows.
    # 3 joins [0,1] -> [0,1,3]; r4 (11) -> 3 (count 0), starts at once. r5 (12) -> 3 (count 0 again after r4
    # ended at 12; 0 and 1 count 1 for their decodes), starts at once. r6 (30), r7 (50) find 22,900 tokens / 3 ROOM
    # = 0.544 > 0.5, but lock(r0, A) = 11 + 65 = 76 blocks the scale-up; r8 at 76 is no longer locked (t < lock is
    # false) and finds the same 0.544 (r2, r3, r5 decode until after 86): reclaim 2, at once.
    assert moves(res) == [(0.0, SPOT, 3), (2.0, SPOT, 2), (11.0, RECLAIM, 3), (76.0, RECLAIM, 2)]
    assert [r[5:] for r in rows(res)] == [(3, 0, 0, 1), (2, 0, 0, 2), (3, 0, 0, 1), (4, 0, 0, 0)]
    assert res.prompt_instance[4] == 3 and res.prompt_start[4] == 11.0
    assert res.prompt_instance[5] == 3 and res.prompt_start[5] == 12.0
    assert res.starting_time.sum() == 0.0 and res.draining_time.sum() == 0.0
    assert res.spot_time[3] == 11.0 and res.spot_time[2] == 74.0


def test_lockout_donation_of_an_instance_still_running_its_old_model_waits_for_it():
    # endpoint 0: A on 0, 1; endpoint 1: C on 2-5 (groups [2,3] [4,5]); level 2, lock-out delays, spin_up 2 (a
    # lock-out only), evaluations at most every 5 s per endpoint (interval 5).
    rows_ = [(0.0, 99, 1, 1, I, 0),        # c0, c1: tiny C requests
             (0.25, 99, 1, 1, I, 0),
             (0.5, 99, 201, 1, I, 0),      # c2: 200 decode iterations (50 s)
             (6.0, 99, 1, 1, I, 0),        # c3
             (7.0, 5999, 201, 0, I, 0),    # a0-a3: 6000 + 200 KV tokens (two fit on one instance)
             (7.25, 5999, 201, 0, I, 0),
             (7.5, 5999, 201, 0, I, 0),
             (12.5, 5999, 201, 0, I, 0),
             (18.0, 99, 1, 0, I, 0)]       # a4
    tr = trace(rows_, models=("A", "C"))
    d = config_dict(DONATE_EPS, {"level": 2, "delays": "lockout", "spin_up": 2.0, "interval": 5.0}, seed=3)
    res = simulate(d, tr)
    # t=0, c0 evaluates C (utilisation 0): 5 leaves and enters C's spot list at once; c0 -> 2 ([2,3,4]).
    # c1 (0.25) -> 3, c2 (0.5) -> 4 (scheduler counts 99, 99, 0), not evaluated (not after 0 + 5); c2 runs alone
    # on 4: prompt [0.5, 1.5], decode [1.5, 51.5].
    # t=6, c3 evaluates C: (300 tokens of c2) / 3 C rooms < 0.25 -> 4 leaves, enters C's list at once while it still
    # runs c2 (lock-out delays): C's list [5, 4].
    # t=7, a0 evaluates A: utilisation 0, A keeps its min 2: nothing (lock(r0, A) = 7). a0 -> 0, a1 -> 1, a2 -> 0
    # (counts 6000, 6000: the first), not evaluated.
    # t=12.5, a3 evaluates A: 3 x 6200 tokens / 2 ROOM = 0.663 > 0.5, A's own list is empty -> donate C's head 5,
    # idle: it joins at once ([0,1,5]); lock(r0, A) = 14.5; a3 -> 5 (count 0).
    # t=18, a4 evaluates A: 4 x 6200 tokens / 3 ROOM = 0.589 > 0.5 -> donate 4 (C's list [4]): it still runs c2, so
    # it is starting (counted as such) until it holds no request: c2 ends at 51.5, then 4 joins A (ready row).
    assert moves(res) == [(0.0, SPOT, 5), (6.0, SPOT, 4), (12.5, DONATE, 5), (18.0, DONATE, 4), (51.5, READY, 4)]
    assert [r[3:] for r in rows(res)] == [(1, 1, 3, 0, 0, 1), (1, 1, 2, 0, 0, 2), (0, 1, 3, 0, 0, 1),
                                          (0, 1, 3, 1, 0, 0), (0, 0, 4, 0, 0, 0)]   # endpoint, model, counts
    assert res.prompt_instance[2] == 4 and res.token_end[2] == 51.5
    assert res.prompt_instance[7] == 5 and res.prompt_start[7] == 12.5
    assert not np.any((res.prompt_instance == 4) & (res.endpoint == 0))   # no A request on 4 (it joined after a4)
    assert res.completed.all() and res.final_memory[4] == WEIGHTS_A
    assert res.spot_time[4] == 12.0 and res.starting_time[4] == 33.5 and res.starting_time[5] == 0.0


# ---------------------------------------------------------------------------------------------------------------
# 7. evaluation interval

def test_interval_gates_evaluations_on_arrival():
    rows_ = [(0.0, 9, 1, 0, I, 0), (5.0, 9, 1, 0, I, 0), (10.0, 9, 1, 0, I, 0), (10.5, 9, 1, 0, I, 0)]
    tr = trace(rows_)
    eps = [endpoint("A", 4)]
    # every arrival finds utilisation 0 (each request ends 1 s after it starts): each evaluation scales down.
    # interval -1 (every arrival): t=0 -> 3 leaves, t=5 -> 2 leaves, then 2 serving = min: nothing more.
    res = simulate(config_dict(eps, {"level": 1}), tr)
    assert moves(res) == [(0.0, DRAIN, 3), (0.0, SPOT, 3), (5.0, DRAIN, 2), (5.0, SPOT, 2)]
    # interval 10: t=0 evaluates (last = -inf), last = 0; t=5 and t=10 are not after 0 + 10: no evaluation;
    # t=10.5 > 10: evaluates -> 2 leaves
    res = simulate(config_dict(eps, {"level": 1, "interval": 10.0}), tr)
    assert moves(res) == [(0.0, DRAIN, 3), (0.0, SPOT, 3), (10.5, DRAIN, 2), (10.5, SPOT, 2)]
    # interval 0: evaluate when t > last; two simultaneous arrivals evaluate once
    tr = trace([(0.0, 9, 1, 0, I, 0), (0.0, 9, 1, 0, I, 0), (0.5, 9, 1, 0, I, 0)])
    res = simulate(config_dict(eps, {"level": 1, "interval": 0.0}), tr)
    assert moves(res) == [(0.0, DRAIN, 3), (0.0, SPOT, 3), (0.5, DRAIN, 2), (0.5, SPOT, 2)]
    res = simulate(config_dict(eps, {"level": 1}), tr)
    assert moves(res) == [(0.0, DRAIN, 3), (0.0, SPOT, 3), (0.0, DRAIN, 2), (0.0, SPOT, 2)]


# ---------------------------------------------------------------------------------------------------------------
# 8. timer

def test_timer_scales_down_an_endpoint_without_arrivals():
    # endpoint 0: A in r0 on 5 instances, groups [0,1,2] [3,4]; endpoint 1: A in r1 on instances 5, 6. Every
    # request goes to r1 (order ("r1",)); the last one at t=20 keeps events (and so the timer) going until its
    # run ends at 21.
    eps = [endpoint("A", 5, "r0"), endpoint("A", 2, "r1")]
    tr = trace([(0.5, 9, 1, 0, I, 0), (20.0, 9, 1, 0, I, 0)], orders=(("r1",),))
    # without a timer endpoint 0 is never evaluated: nothing moves (endpoint 1 keeps its min 2)
    res = simulate(config_dict(eps, {"level": 1}, regions=("r0", "r1")), tr)
    assert moves(res) == []
    # timer 3: ticks at 3, 6, 9, ... (after every other event at their time) evaluate endpoint 0 (utilisation 0,
    # lock = t + spin_down 0): one scale-down per tick until min_instances: [0,1,2][3,4] ends in a 2 after a 3 ->
    # the 3's last member 2 leaves ([0,1][3,4]); then two 2s -> 4 leaves, 3 joins the first ([0,1,3]); then 3 leaves.
    res = simulate(config_dict(eps, {"level": 1, "timer": 3.0}, regions=("r0", "r1")), tr)
    assert moves(res) == [(3.0, DRAIN, 2), (3.0, SPOT, 2), (6.0, DRAIN, 4), (6.0, SPOT, 4),
                          (9.0, DRAIN, 3), (9.0, SPOT, 3)]
    assert [r[8] for r in rows(res)] == [0, 1, 1, 2, 2, 3]       # r0's spot pool
    # min_instances 4: one tick moves one instance, then the endpoint is at its minimum
    res = simulate(config_dict(eps, {"level": 1, "timer": 3.0, "min_instances": 4}, regions=("r0", "r1")), tr)
    assert moves(res) == [(3.0, DRAIN, 2), (3.0, SPOT, 2)]
    # the spot time of r0's pool: 2 from 3, 4 from 6, 3 from 9 until the end clock 21
    res = simulate(config_dict(eps, {"level": 1, "timer": 3.0}, regions=("r0", "r1")), tr)
    assert res.end_clock == 21.0
    np.testing.assert_allclose(res.region_spot_time, [18.0 + 15.0 + 12.0, 0.0], rtol=0, atol=0)


def test_timer_ticks_at_exact_multiples_of_the_period():
    # as above with endpoint 0 on 9 instances (min 2) and T = 0.1: one scale-down per tick k = 1..7, at t = k x 0.1
    # (docs/semantics.md: "at every t = kT (k >= 1)"); 0.1 + 0.1 + ... differs from k x 0.1 from k = 6 on
    eps = [endpoint("A", 9, "r0"), endpoint("A", 2, "r1")]
    tr = trace([(0.05, 9, 1, 0, I, 0), (2.0, 9, 1, 0, I, 0)], orders=(("r1",),))
    res = run(from_dict(config_dict(eps, {"level": 1, "timer": 0.1}, regions=("r0", "r1"))), tr)
    # [0,1,2][3,4,5][6,7,8] -> 8 leaves; [..][3,4,5][6,7] -> 5; [0,1,2][3,4][6,7] -> 7 (6 joins [3,4]);
    # [0,1,2][3,4,6] -> 6; [0,1,2][3,4] -> 2; [0,1][3,4] -> 4 (3 joins [0,1]); [0,1,3] -> 3
    assert [r[2] for r in rows(res, DRAIN)] == [8, 5, 7, 6, 2, 4, 3]
    assert [r[0] for r in rows(res, DRAIN)] == [k * 0.1 for k in range(1, 8)]


# ---------------------------------------------------------------------------------------------------------------
# 9. SageServe's group moves (section 3.3) over random sequences of scale-ups and scale-downs

class Groups:
    """A pure-Python model of docs/semantics.md "Group moves": groups g1..gk in order, members in order."""

    def __init__(self, sizes):
        self.g = []
        n = 0
        for s in sizes:
            self.g.append(list(range(n, n + s)))
            n += s

    def members(self):
        return [i for g in self.g for i in g]

    def shape(self):
        return tuple(len(g) for g in self.g)

    def join(self, n):
        g = self.g
        if len(g[-1]) == 3:                                # [.., a, b, last] -> [.., a, b] [last, n]
            g.append([g[-1].pop(), n])
        elif len(g) > 1 and len(g[-2]) == 2 and len(g[-1]) == 2:
            g[-2].append(n)
        else:
            g[-1].append(n)

    def leave(self):
        g = self.g
        if len(g[-1]) == 3:
            return g[-1].pop()
        if len(g) > 1 and len(g[-2]) == 2 and len(g[-1]) == 2:
            first, victim = g.pop()
            g[-1].append(first)
            return victim
        if len(g) > 1 and len(g[-2]) == 3:
            return g[-2].pop()
        return None


TICK = 10.0
BURST = 20          # requests resident at an "up" tick: 20 / serving instances (<= 8) > upper = 1


def group_scenario(seed):
    """(config dict, trace, steps, initial sizes): one endpoint of A whose scale-ups and scale-downs follow a random
    sequence. The queue policy (x = resident + queued requests per serving instance, up above 1, down below 0.5) is
    evaluated by the timer every TICK seconds only (interval 1e6: arrivals evaluate once, at the first one, t=0.5,
    when x = 0: a scale-down). Before an "up" tick k, BURST requests arrive at 10k - 1 and are still resident at 10k
    (prompt 1 s, 4 decode iterations: they end after 10k + 1): x >= 20 / 8 > 1; at a "down" tick nothing is resident:
    x = 0 < 0.5. Delays (reclaim 2 s, spin_down 0 or 1 s) end before the next tick, so every tick is evaluated."""
    rng = np.random.default_rng(500 + seed)
    n = int(rng.integers(4, 9))
    sizes = tuple(replica_groups(n)) if rng.random() < 0.5 else ()
    if not sizes:                                     # explicit groups of 2 and 3, the first a 2 (not SageServe's)
        left, out = n - 2, [2]
        while left:
            k = left if left in (2, 3) else (2 if left == 4 else int(rng.choice([2, 3])))
            out.append(k)
            left -= k
        sizes = tuple(out)
    scaling = {"level": 1, "policy": "queue", "upper": 1.0, "lower": 0.5, "interval": 1e6, "timer": TICK,
               "delays": "lockout" if seed % 2 else "real", "reclaim_delay": 2.0,
               "spin_down": float(rng.choice([0.0, 1.0])), "min_instances": int(rng.choice([2, 2, 3])),
               "max_instances": int(rng.choice([0, 0, n + 1, n]))}
    if scaling["max_instances"] and scaling["max_instances"] < scaling["min_instances"]:
        scaling["max_instances"] = 0
    steps = [bool(u) for u in rng.random(40) < 0.5]      # True: up
    rows_ = [(0.5, 9, 1, 0, I, 0)]
    for k, up in enumerate(steps, start=1):
        if up:
            rows_ += [(TICK * k - 1.0, 9, 5, 0, I, 0)] * BURST
    rows_.append((TICK * (len(steps) + 1) - 1.0, 9, 1, 0, I, 0))   # keeps the timer going past the last step
    d = config_dict([endpoint("A", n, groups=list(sizes))], scaling, seed=seed)
    return d, trace(rows_), steps, sizes


@pytest.mark.parametrize("seed", range(10))
def test_group_moves_follow_sageserve_over_random_sequences(seed):
    d, tr, steps, sizes = group_scenario(seed)
    sc = d["scaling"]
    res = simulate(d, tr)
    real = sc["delays"] == "real"
    model = Groups(sizes)
    pool = []                                         # the spot list, in the order instances entered it
    want = []
    default = sizes == replica_groups(sum(sizes))
    burst_rows = np.flatnonzero(tr.token_size == 5)
    burst_of = (tr.arrival[burst_rows] + 1.0) / TICK  # its tick
    for k, up in [(0, False)] + list(enumerate(steps, start=1)):
        t = 0.5 if k == 0 else TICK * k
        if up:
            # the burst before this tick went to the serving instances, in their groups
            got = set(res.prompt_instance[burst_rows[burst_of == k]].tolist())
            assert got <= set(model.members()) and len(got) > 0, (k, got, model.g)
            # (no instance is starting at a tick: the reclaim delay ends before the next one)
            if sc["max_instances"] and len(model.members()) >= sc["max_instances"]:
                continue
            if pool:
                i = pool.pop(0)
                want.append((t, RECLAIM, i))
                if real:
                    want.append((t + sc["reclaim_delay"], READY, i))
                model.join(i)
        elif len(model.members()) > sc["min_instances"]:
            i = model.leave()
            if i is None:
                continue
            if real:
                want += [(t, DRAIN, i), (t + sc["spin_down"], SPOT, i)]
            else:
                want.append((t, SPOT, i))
            pool.append(i)
        assert all(s in (2, 3) for s in model.shape())
        if default:   # from SageServe's split, the moves keep SageServe's split of the serving count
            assert model.shape() == replica_groups(len(model.members())), (k, model.g)
    assert moves(res) == want
    assert res.completed.all()
    # instances in the spot list at the end served nothing after they entered it
    for i in pool:
        entered = max(r[0] for r in rows(res, SPOT) if r[2] == i)
        assert not np.any((res.prompt_instance == i) & (res.prompt_start >= entered))
