"""Reactive autoscaling of a topology (SageServe section 3): instances move between their region's model endpoints
and a spot pool during the run.

Semantics: docs/semantics.md, "Reactive autoscaling". Every instance is a slot with a lifecycle state
(``Lifecycle``: serving in one of its endpoint's replica groups, starting, draining, spot) in ``st.i[STI.life]``;
endpoint sums (KV bytes and capacity, resident requests, instances holding interactive work) count serving
instances only and change by an instance's own values when it joins or leaves (O(1) per move). Lifecycle events
(a starting instance's ready time, a drained instance's entry to the spot pool) are the instance's entry in the
run-end heap: an instance waiting for one runs no batch. Time is charged per state to the endpoint (serving,
starting, draining) or the region's pool (spot) at every move and at the end of the run.

One out-of-line entry, ``scaling_event_nb`` (what: a routed request reaching its endpoint, the timer, an instance's
lifecycle event, an instance outside its groups holding no request any more, a planning tick), and
``scale_init_nb`` and ``scale_finish_nb`` (the end of the run, in every run: instances report their serving time).
"""
from collections import namedtuple

import numpy as np

from kernels.enums import Lifecycle, PlanArbiter, ScaleAction, ScalePolicy
from kernels.event_queue_nb import heap_set_nb
from kernels.jit import internal
from kernels.layout import CI, PF, PI, SLOG, TOPO
from kernels.variants import serving_only
from kernels.state_nb import CTR_PLAN_TICKS, CTR_RNG, CTR_SLOG_LEN, CTR_TIMER_TICKS, R_ENDPOINT, WINDOW_S, EPR, SCF, SCI, STF, STI, topo_nb

#: The state autoscaling reads and writes (``v.ep`` is ``Serve.ep``).
Parts = namedtuple("Parts", ["prm", "topo", "ctr", "st", "cl", "ep", "sc", "iheap"])
#: ``TOPO.ep_silo`` of a dev-only endpoint (``sweepsim.config.topology.SILOS``)
_SILO_DEV = 2


@internal()
def scale_init_nb(st, cl, sv, topo):
    """Every instance serves its topology endpoint from time 0."""
    n_ep = sv.ep.shape[1] - 1
    for i in range(cl.i.shape[1]):
        e = cl.i[CI.endpoint, i]
        st.i[STI.life, i] = Lifecycle.SERVING
        st.i[STI.spot_next, i] = -1
        st.i[STI.owner, i] = e
        st.i[STI.region, i] = topo_nb(topo, TOPO.ep_region, e) if e < n_ep else 0
        st.i[STI.model, i] = sv.ep[EPR.model, e]


@internal(inline=True)
def _pool_nb(v, region, m):
    """The column of (region, model) in ``Scale.i`` and the lock-out row."""
    return region * v.prm.i[PI.n_models] + m


@internal(inline=True)
def _uniform_nb(ctr):
    """The next draw in [0, 1) of the configuration's splitmix64 stream."""
    s = np.uint64(ctr[CTR_RNG]) + np.uint64(0x9E3779B97F4A7C15)
    ctr[CTR_RNG] = np.int64(s)
    z = s
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@internal(inline=True)
def _busy_now_nb(st, i, now):
    """Seconds instance i has run a batch so far, the current run included."""
    b = st.f[STF.busy_time, i]
    if st.i[STI.batch_len, i] > 0:
        b += now - st.f[STF.busy_start, i]
    return b


@internal()
def _charge_nb(v, i, now):
    """Charge instance i's time since its last move to its state (and its endpoint, or its region's pool)."""
    st = v.st
    d = now - st.f[STF.since, i]
    life = st.i[STI.life, i]
    st.f[STF.serving_time + life, i] += d
    if life == Lifecycle.SPOT:
        v.sc.f[SCF.spot, st.i[STI.region, i]] += d
    else:
        v.sc.f[SCF.serving + life, st.i[STI.owner, i]] += d
    st.f[STF.since, i] = now


@internal(inline=True)
def _spot_count_nb(v, region):
    c = 0
    for m in range(v.prm.i[PI.n_models]):
        c += v.sc.i[SCI.spot_n, _pool_nb(v, region, m)]
    return c


@internal()
def _log_nb(v, now, e, action, i, from_model):
    k = v.ctr[CTR_SLOG_LEN]
    log = v.sc.log
    ep = v.ep
    log[k, SLOG.time] = now
    log[k, SLOG.endpoint] = e
    log[k, SLOG.action] = action
    log[k, SLOG.instance] = i
    log[k, SLOG.from_model] = from_model
    log[k, SLOG.serving] = ep[EPR.serving, e]
    log[k, SLOG.starting] = ep[EPR.starting, e]
    log[k, SLOG.draining] = ep[EPR.draining, e]
    log[k, SLOG.spot] = _spot_count_nb(v, v.st.i[STI.region, i])
    v.ctr[CTR_SLOG_LEN] = k + 1


@internal(inline=True)
def _group_join_nb(sc, ep, e, n):
    """Instance n joins endpoint e's groups (SageServe section 3.3)."""
    g = sc.g
    k = ep[EPR.groups, e]
    last = ep[EPR.group_base, e] + k - 1
    if g[last, 0] == 3:
        moved = g[last, 3]
        g[last, 0] = 2
        g[last + 1, 0] = 2
        g[last + 1, 1] = moved
        g[last + 1, 2] = n
        ep[EPR.groups, e] = k + 1
        return
    if k > 1 and g[last, 0] == 2 and g[last - 1, 0] == 2:
        last -= 1
    g[last, 0] += 1
    g[last, g[last, 0]] = n


@internal(inline=True)
def _group_leave_nb(sc, ep, e):
    """The instance that leaves endpoint e's groups (SageServe section 3.3), removed; -1: none can."""
    g = sc.g
    k = ep[EPR.groups, e]
    last = ep[EPR.group_base, e] + k - 1
    if g[last, 0] == 3:
        g[last, 0] = 2
        return g[last, 3]
    if k > 1 and g[last, 0] == 2 and g[last - 1, 0] == 2:
        victim = g[last, 2]
        g[last - 1, 0] = 3
        g[last - 1, 3] = g[last, 1]
        g[last, 0] = 0
        ep[EPR.groups, e] = k - 1
        return victim
    if k > 1 and g[last - 1, 0] == 3:
        g[last - 1, 0] = 2
        return g[last - 1, 3]
    return -1


@internal()
def _join_nb(v, i, e, now):
    """Instance i starts serving endpoint e (taking e's model), in e's groups."""
    st = v.st
    cl = v.cl
    ep = v.ep
    _charge_nb(v, i, now)
    if st.i[STI.life, i] == Lifecycle.STARTING:
        ep[EPR.starting, e] -= 1
    st.i[STI.life, i] = Lifecycle.SERVING
    st.i[STI.owner, i] = e
    dw = ep[EPR.weights, e] - cl.i[CI.weights, i]
    st.i[STI.memory, i] += dw
    st.i[STI.sched_memory, i] += dw
    cl.i[CI.weights, i] = ep[EPR.weights, e]
    cl.i[CI.kv_per_token, i] = ep[EPR.kv_per_token, e]
    cl.i[CI.perf, i] = ep[EPR.perf, e]
    st.i[STI.model, i] = ep[EPR.model, e]
    cl.i[CI.endpoint, i] = e
    ep[EPR.kv, e] += st.i[STI.memory, i] - cl.i[CI.weights, i]
    ep[EPR.cap, e] += cl.i[CI.max_memory, i] - cl.i[CI.weights, i]
    ep[EPR.requests, e] += st.i[STI.requests_len, i]
    if st.i[STI.interactive, i] > 0:
        ep[EPR.interactive, e] += 1
    ep[EPR.serving, e] += 1
    st.f[STF.busy_mark, i] = _busy_now_nb(st, i, now)
    _group_join_nb(v.sc, ep, e, i)


@internal(inline=True)
def _leave_nb(v, i, now):
    """Serving instance i (already out of its groups) leaves its endpoint's sums; its frees go to the sink."""
    st = v.st
    cl = v.cl
    ep = v.ep
    e = st.i[STI.owner, i]
    _charge_nb(v, i, now)
    v.sc.f[SCF.busy, e] += _busy_now_nb(st, i, now) - st.f[STF.busy_mark, i]
    ep[EPR.kv, e] -= st.i[STI.memory, i] - cl.i[CI.weights, i]
    ep[EPR.cap, e] -= cl.i[CI.max_memory, i] - cl.i[CI.weights, i]
    ep[EPR.requests, e] -= st.i[STI.requests_len, i]
    if st.i[STI.interactive, i] > 0:
        ep[EPR.interactive, e] -= 1
    ep[EPR.serving, e] -= 1
    cl.i[CI.endpoint, i] = ep.shape[1] - 1


@internal(inline=True)
def _idle_nb(st, i):
    return st.i[STI.batch_len, i] == 0 and st.i[STI.requests_len, i] == 0


@internal()
def _spot_push_nb(v, i, now):
    """Instance i enters its region's spot pool (the list of its model)."""
    st = v.st
    _charge_nb(v, i, now)
    st.i[STI.life, i] = Lifecycle.SPOT
    rm = _pool_nb(v, st.i[STI.region, i], st.i[STI.model, i])
    si = v.sc.i
    st.i[STI.spot_next, i] = -1
    if si[SCI.spot_tail, rm] >= 0:
        st.i[STI.spot_next, si[SCI.spot_tail, rm]] = i
    else:
        si[SCI.spot_head, rm] = i
    si[SCI.spot_tail, rm] = i
    si[SCI.spot_n, rm] += 1


@internal(inline=True)
def _spot_pop_nb(v, rm):
    si = v.sc.i
    i = si[SCI.spot_head, rm]
    si[SCI.spot_head, rm] = v.st.i[STI.spot_next, i]
    if si[SCI.spot_head, rm] < 0:
        si[SCI.spot_tail, rm] = -1
    si[SCI.spot_n, rm] -= 1
    return i


@internal()
def _scale_up_nb(v, e, now, lock):
    """One more instance for endpoint e: reclaim its model's oldest spot instance, else (level 2) donate another
    model's, drawn from the configuration's stream; with ``lock``, the model's lock-out starts. Returns whether an
    instance was taken."""
    prm = v.prm
    ep = v.ep
    si = v.sc.i
    st = v.st
    if prm.i[PI.scale_max] > 0 and ep[EPR.serving, e] + ep[EPR.starting, e] >= prm.i[PI.scale_max]:
        return False
    region = topo_nb(v.topo, TOPO.ep_region, e)
    own = _pool_nb(v, region, ep[EPR.model, e])
    rm = own
    if si[SCI.spot_n, own] > 0:
        action = ScaleAction.RECLAIM
        delay = prm.f[PF.reclaim_delay]
    elif prm.i[PI.scale_level] >= 2:
        n_models = v.prm.i[PI.n_models]
        nonempty = 0
        for m in range(n_models):
            if si[SCI.spot_n, _pool_nb(v, region, m)] > 0:
                nonempty += 1
        if nonempty == 0:
            return False
        pick = int(_uniform_nb(v.ctr) * nonempty)
        for m in range(n_models):
            if si[SCI.spot_n, _pool_nb(v, region, m)] > 0:
                if pick == 0:
                    rm = _pool_nb(v, region, m)
                    break
                pick -= 1
        action = ScaleAction.DONATE
        delay = prm.f[PF.spin_up]
    else:
        return False
    if lock:
        v.sc.f[SCF.lock, own] = now + delay   # the lock-out is the requesting model's
    i = _spot_pop_nb(v, rm)
    from_model = st.i[STI.model, i]
    _charge_nb(v, i, now)
    st.i[STI.life, i] = Lifecycle.STARTING
    st.i[STI.owner, i] = e
    ep[EPR.starting, e] += 1
    instant = prm.i[PI.scale_instant] != 0
    if instant and (action == ScaleAction.RECLAIM or _idle_nb(st, i)):
        _join_nb(v, i, e, now)
    elif not instant:
        heap_set_nb(v.iheap, i, now + delay)
    # (instant: a donated instance still running its old model's requests joins once it holds none)
    _log_nb(v, now, e, action, i, from_model)
    return True


@internal()
def _scale_down_nb(v, e, now, lock):
    """One instance fewer for endpoint e (if it keeps ``scale_min``): the group move's instance drains; with
    ``lock``, the model's lock-out starts (even if nothing could leave). Returns whether an instance left."""
    prm = v.prm
    ep = v.ep
    rm = _pool_nb(v, topo_nb(v.topo, TOPO.ep_region, e), ep[EPR.model, e])
    if lock:
        v.sc.f[SCF.lock, rm] = now + prm.f[PF.spin_down]
    if ep[EPR.serving, e] <= prm.i[PI.scale_min]:
        return False
    i = _group_leave_nb(v.sc, ep, e)
    if i < 0:
        return False
    _leave_nb(v, i, now)
    st = v.st
    if prm.i[PI.scale_instant]:
        _spot_push_nb(v, i, now)
        _log_nb(v, now, e, ScaleAction.SPOT, i, st.i[STI.model, i])
        return True
    st.i[STI.life, i] = Lifecycle.DRAINING
    ep[EPR.draining, e] += 1
    _log_nb(v, now, e, ScaleAction.DRAIN, i, st.i[STI.model, i])
    if _idle_nb(st, i):
        heap_set_nb(v.iheap, i, now + prm.f[PF.spin_down])
    return True


@internal()
def _evaluate_nb(v, e, now):
    """The arbiter's decision for endpoint e at ``now``: nothing during its model's lock-out in its region, else
    the policy's signal against ``scale_upper`` / ``scale_lower`` (docs/semantics.md)."""
    prm = v.prm
    ep = v.ep
    rm = _pool_nb(v, topo_nb(v.topo, TOPO.ep_region, e), ep[EPR.model, e])
    if now < v.sc.f[SCF.lock, rm]:
        return
    if prm.i[PI.plan_arbiter] != PlanArbiter.NONE:
        _planned_nb(v, e, rm, now)
        return
    policy = prm.i[PI.scale_policy]
    n = ep[EPR.serving, e]
    upper = prm.f[PF.scale_upper]
    if policy == ScalePolicy.UTILIZATION:
        x = ep[EPR.kv, e] / ep[EPR.cap, e]
    elif policy == ScalePolicy.QUEUE:
        x = (ep[EPR.requests, e] + ep[EPR.queued, e]) / n
    elif topo_nb(v.topo, TOPO.ep_silo, e) == _SILO_DEV:
        # Chiron's batch endpoint: estimated pending time; down when nothing is queued
        x = ep[EPR.queued, e] * prm.f[PF.chiron_prompt_time] \
            + ep[EPR.queued_tokens, e] / (prm.f[PF.chiron_decode_throughput] * n)
        if x > prm.f[PF.chiron_pending_time]:
            _scale_up_nb(v, e, now, True)
        elif ep[EPR.queued, e] == 0:
            _scale_down_nb(v, e, now, True)
        return
    else:   # Chiron's interactive endpoints: the fraction of instances holding interactive requests
        x = ep[EPR.interactive, e] / n
    if x > upper:
        _scale_up_nb(v, e, now, True)
    elif x < prm.f[PF.scale_lower]:
        _scale_down_nb(v, e, now, True)


@internal()
def _planned_nb(v, e, rm, now):
    """A planned arbiter's reactive step for endpoint e (lock-out passed): LT-I none; deferred: one planned
    scale-up; LT-U / LT-UA: a planned scale-up when the utilisation is above ``scale_upper``, a planned scale-down
    when below ``scale_lower``, and with no planned change left a scale-up anyway above ``plan_override`` (LT-U) or
    when the observed tokens per minute exceed ``plan_ratio`` x the forecast (LT-UA). A planned change is used
    up only when the move happened."""
    prm = v.prm
    ep = v.ep
    arb = prm.i[PI.plan_arbiter]
    if arb == PlanArbiter.IMMEDIATE:
        return
    c = ep[EPR.changes, e]
    if arb == PlanArbiter.DEFERRED:
        if c > 0 and _scale_up_nb(v, e, now, True):
            ep[EPR.changes, e] = c - 1
        return
    u = ep[EPR.kv, e] / ep[EPR.cap, e]
    if c > 0:
        if u > prm.f[PF.scale_upper] and _scale_up_nb(v, e, now, True):
            ep[EPR.changes, e] = c - 1
    elif c < 0:
        if u < prm.f[PF.scale_lower] and _scale_down_nb(v, e, now, True):
            ep[EPR.changes, e] = c + 1
    else:
        if arb == PlanArbiter.UTILIZATION:
            over = u > prm.f[PF.plan_override]
        else:
            over = False
            m = int(now // 60.0) + 1   # the next minute's forecast (none past the forecast's end)
            if m < prm.i[PI.plan_minutes]:
                expect = v.sc.p[prm.i[PI.plan_ticks] + m, rm]
                have = v.sc.f[SCF.window_sum, rm]
                if expect == expect:   # NaN: no forecast of that minute
                    over = have > prm.f[PF.plan_ratio] * expect if expect > 0.0 else have > 0.0
        if over:
            _scale_up_nb(v, e, now, True)


@internal()
def _window_add_nb(f, rm, tokens, now):
    """Prompt tokens reaching (region, model)'s endpoints: the last 60 whole seconds in a ring of per-second sums
    (``SCF.window_sum`` their total)."""
    sec = int(now)
    last = int(f[SCF.window_second, rm])
    if sec != last:
        if last < 0 or sec - last >= WINDOW_S:
            for k in range(WINDOW_S):
                f[SCF.window0 + k, rm] = 0.0
            f[SCF.window_sum, rm] = 0.0
        else:
            for s in range(last + 1, sec + 1):
                k = SCF.window0 + s % WINDOW_S
                f[SCF.window_sum, rm] -= f[k, rm]
                f[k, rm] = 0.0
        f[SCF.window_second, rm] = sec
    f[SCF.window0 + sec % WINDOW_S, rm] += tokens
    f[SCF.window_sum, rm] += tokens


@internal()
def _plan_tick_nb(v, now):
    """Planning tick k: every endpoint's planned changes are reset to plan[k] - (serving + starting); planned
    scale-downs happen at once (endpoint order), then planned scale-ups at once (LT-I) or are kept for the
    arrivals (the other arbiters). Forced moves ignore and set no lock-out."""
    prm = v.prm
    ep = v.ep
    k = v.ctr[CTR_PLAN_TICKS]
    n_ep = ep.shape[1] - 1
    for e in range(n_ep):
        d = int(v.sc.p[k, e]) - (ep[EPR.serving, e] + ep[EPR.starting, e])
        ep[EPR.changes, e] = 0
        while d < 0 and _scale_down_nb(v, e, now, False):
            d += 1
    for e in range(n_ep):
        d = int(v.sc.p[k, e]) - (ep[EPR.serving, e] + ep[EPR.starting, e])
        if d > 0 and prm.i[PI.plan_arbiter] == PlanArbiter.IMMEDIATE:
            while d > 0 and _scale_up_nb(v, e, now, False):
                d -= 1
            ep[EPR.changes, e] = d   # LT-I: what the spot pool could not give yet (``_lifecycle_nb``)
        elif d > 0:
            ep[EPR.changes, e] = d
        elif d < 0:
            ep[EPR.changes, e] = d   # could not go lower now (min_instances): LT-U / LT-UA may later
    v.ctr[CTR_PLAN_TICKS] = k + 1
    v.sc.f[SCF.plan_next, 0] = prm.f[PF.plan_start] + (k + 1) * prm.f[PF.plan_interval] \
        if k + 1 < prm.i[PI.plan_ticks] else np.inf


@internal(inline=True)
def _on_arrival_nb(v, e, tokens, now):
    """A routed request reaches endpoint e: evaluate e if more than ``scale_interval`` passed since its last
    evaluation (LT-UA: its prompt tokens count in the 60-second window first)."""
    f = v.sc.f
    if v.prm.i[PI.plan_arbiter] == PlanArbiter.FORECAST:
        _window_add_nb(f, _pool_nb(v, topo_nb(v.topo, TOPO.ep_region, e), v.ep[EPR.model, e]), tokens, now)
    if now > f[SCF.last_eval, e] + v.prm.f[PF.scale_interval]:
        _evaluate_nb(v, e, now)
        f[SCF.last_eval, e] = now


@internal(inline=True)
def _timer_nb(v, now):
    """The periodic evaluation: every endpoint, in order; the next one ``scale_timer`` seconds later."""
    for e in range(v.ep.shape[1] - 1):
        _evaluate_nb(v, e, now)
    v.ctr[CTR_TIMER_TICKS] += 1    # the next tick at exactly (k + 1) x timer (no accumulated rounding)
    v.sc.f[SCF.timer, 0] = (v.ctr[CTR_TIMER_TICKS] + 1) * v.prm.f[PF.scale_timer]


@internal(inline=True)
def _lifecycle_nb(v, i, now):
    """Instance i's lifecycle event: a starting instance joins its endpoint; a drained one enters the spot pool."""
    st = v.st
    e = st.i[STI.owner, i]
    if st.i[STI.life, i] == Lifecycle.STARTING:
        _join_nb(v, i, e, now)
        _log_nb(v, now, e, ScaleAction.READY, i, st.i[STI.model, i])
    else:
        v.ep[EPR.draining, e] -= 1
        _spot_push_nb(v, i, now)
        _log_nb(v, now, e, ScaleAction.SPOT, i, st.i[STI.model, i])
        if v.prm.i[PI.plan_arbiter] == PlanArbiter.IMMEDIATE:
            # LT-I: the first endpoint of the region still short of its plan takes the new spot instance
            region = st.i[STI.region, i]
            for f in range(v.ep.shape[1] - 1):
                if v.ep[EPR.changes, f] > 0 and topo_nb(v.topo, TOPO.ep_region, f) == region:
                    if _scale_up_nb(v, f, now, False):
                        v.ep[EPR.changes, f] -= 1
                        break


@internal(inline=True)
def _instance_idle_nb(v, i, now):
    """Instance i, outside its endpoint's groups, holds no request any more: a draining instance enters the spot
    pool after ``spin_down``; (parity delays) a donated one waiting for its old requests joins now."""
    life = v.st.i[STI.life, i]
    if life == Lifecycle.DRAINING:
        heap_set_nb(v.iheap, i, now + v.prm.f[PF.spin_down])
    elif life == Lifecycle.STARTING:
        heap_set_nb(v.iheap, i, now)


@internal(inline=True)
def _finish_nb(v, now):
    """Charge every instance's time up to the end of the run."""
    st = v.st
    for i in range(st.i.shape[1]):
        if st.i[STI.life, i] == Lifecycle.SERVING:
            e = st.i[STI.owner, i]
            v.sc.f[SCF.busy, e] += _busy_now_nb(st, i, now) - st.f[STF.busy_mark, i]
            st.f[STF.busy_mark, i] = _busy_now_nb(st, i, now)
        _charge_nb(v, i, now)



#: what ``scaling_event_nb`` handles
SC_ARRIVAL = 0     # routed request x reaches its endpoint
SC_TIMER = 1       # the periodic evaluation
SC_LIFECYCLE = 2   # instance x's lifecycle event (ready, or into the spot pool)
SC_IDLE = 3        # instance x, outside its endpoint's groups, holds no request any more
SC_PLAN = 4        # a planning tick


@internal()
def scaling_event_nb(sim, what, x, now):
    """The one entry of autoscaling from the event handlers: its functions take only the parts of the state they
    touch (``Parts``; a function of the whole state tuple costs about a second of compile time)."""
    v = Parts(sim.prm, sim.topo, sim.ctr, sim.st, sim.cl, sim.sv.ep, sim.sc, sim.iheap)
    if what == SC_ARRIVAL:
        _on_arrival_nb(v, sim.sv.req[R_ENDPOINT, x], sim.wl.prompt_size[x], now)
    elif what == SC_PLAN:
        _plan_tick_nb(v, now)
    elif what == SC_TIMER:
        _timer_nb(v, now)
    elif what == SC_LIFECYCLE:
        _lifecycle_nb(v, x, now)
    else:   # SC_IDLE
        _instance_idle_nb(v, x, now)


@internal()
def scale_finish_nb(sim, now):
    """The end of the run: charge every instance's time (every run, with or without a topology)."""
    _finish_nb(Parts(sim.prm, sim.topo, sim.ctr, sim.st, sim.cl, sim.sv.ep, sim.sc, sim.iheap), now)


#: ``scaling_event_nb`` in the serving kernel, nothing in the plain one (``kernels.variants``)
scaling_event_if_serving_nb = serving_only(scaling_event_nb)
