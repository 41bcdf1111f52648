"""Entry points: configurations packed into arrays (``state_nb.Inputs``), simulated, outputs written by name
(``state_nb.Outputs``).

Inputs (the trace is shared and read-only; everything else has a row or a slice per configuration c):
``uniform[c]`` (random-scheduler draws), ``prm_i[c]`` / ``prm_f[c]`` (parameters, columns named by
``kernels.layout.PARAM_INT`` / ``PARAM_FLOAT``), instances ``inst_off[c]:inst_off[c + 1]`` of the flattened
instance arrays, servers ``srv_off[c]:srv_off[c + 1]``, and the performance tables of every configuration.
Outputs: ``req_f[c, RF.x, r]``, ``req_i[c, RI.x, r]`` (int32), ``inst_f[j, IF.x]``, ``inst_i[j, II.x]`` (flattened
instance j), ``end_clock[c]``.

``simulate_one_nb`` runs configuration c and returns its iteration log, without the GIL: the engine runs
several configurations at once on threads. Each allocates its own state (``simulate_nb.new_sim_nb``) and
writes only its own rows of the outputs, so threads never share writable state.
"""
import numpy as np
from numba import njit

from kernels.jit import internal
from kernels.layout import ENDPOINT_TIME, IF, II, PF, PI, RF, RI
from kernels.serving_nb import CLASS_DEV, request_class_nb
from kernels.scaling_nb import scale_finish_nb
from kernels.simulate_nb import DONE, finished_sim_nb, grow_sim_nb, new_sim_nb, run_events_nb
from kernels.state_nb import (CTR_LOG_LEN, CTR_SLOG_LEN, RQF, RQI, R_ENDPOINT, SCF, STF, STI, T_FED, Cluster,
                              Workload)
from kernels.variants import params_nb


@internal(nrt=True)
def config_inputs_nb(c, inp):
    """Configuration c's own copies of its rows of ``inp`` (``Inputs``): (parameters, workload, cluster, topology
    tables, plans)."""
    prm = params_nb(inp, inp.prm_i[c].copy(), inp.prm_f[c].copy())   # typed for the kernel variant
    order_key = inp.arrival
    if prm.i[PI.topology]:  # a dev request is admitted at an instance as if it arrived a fraction of its SLA later
        order_key = inp.arrival.copy()
        frac = prm.f[PF.dev_sla_fraction]
        for r in range(order_key.shape[0]):
            if request_class_nb(prm, inp.req_code, r) == CLASS_DEV and inp.req_sla[r] == inp.req_sla[r]:
                order_key[r] += frac * inp.req_sla[r]
    wl = Workload(inp.arrival, inp.prompt_size, inp.token_size, inp.uniform[c].copy(), order_key, inp.req_code)
    a = inp.inst_off[c]
    b = inp.inst_off[c + 1]
    sa = inp.srv_off[c]
    sb = inp.srv_off[c + 1]
    cl = Cluster(inp.inst_in[:, a:b].copy(), inp.srv_in[:, sa:sb].copy())
    topo = inp.topo[inp.topo_off[c]:inp.topo_off[c + 1]].copy()
    rows = prm.i[PI.plan_ticks] + prm.i[PI.plan_minutes]
    a_p = inp.plan_off[c]
    b_p = inp.plan_off[c + 1]
    plan = inp.plan[a_p:b_p].copy().reshape((rows, (b_p - a_p) // rows)) if rows > 0 else np.zeros((1, 1))
    return prm, wl, cl, topo, plan


@internal(nrt=True)
def write_outputs_nb(c, a, prm, rq, st, sv, scf, slog, log, clock, out):
    """Configuration c's outputs (its instances are rows ``a:`` of the instance outputs) from its final state;
    ``scf``: its scaling times (``Scale.f``), ``slog``: its scaling log. Returns copies of its iteration log and
    scaling log (``kernels.layout.SCALING_LOG``), time per endpoint (``ENDPOINT_TIME`` rows) and spot time per
    region. (The phases' times are already in ``out.req_f[c]``.)"""
    req_f = out.req_f
    req_i = out.req_i
    inst_f = out.inst_f
    inst_i = out.inst_i
    kv = rq.kf.shape[1] == req_f.shape[2]   # the KV-transfer fields were allocated per request
    for r in range(req_f.shape[2]):
        req_f[c, RF.kv_start, r] = rq.kf[RQF.kv_start, r] if kv else np.nan
        req_f[c, RF.kv_end, r] = rq.kf[RQF.kv_end, r] if kv else np.nan
        req_f[c, RF.fed_time, r] = sv.time[T_FED, r] if prm.i[PI.topology] else np.nan
        req_i[c, RI.completed, r] = rq.i[RQI.done, r]
        req_i[c, RI.prompt_instance, r] = rq.i[RQI.prompt_inst, r]
        req_i[c, RI.token_instance, r] = rq.i[RQI.token_inst, r]
        req_i[c, RI.endpoint, r] = sv.req[R_ENDPOINT, r] if prm.i[PI.topology] else -1
    for k in range(st.f.shape[1]):
        inst_f[a + k, IF.busy_time] = st.f[STF.busy_time, k]
        inst_f[a + k, IF.time_prompt] = st.f[STF.time_prompt, k]
        inst_f[a + k, IF.time_token] = st.f[STF.time_token, k]
        inst_f[a + k, IF.time_mixed] = st.f[STF.time_mixed, k]
        inst_f[a + k, IF.serving_time] = st.f[STF.serving_time, k]
        inst_f[a + k, IF.starting_time] = st.f[STF.starting_time, k]
        inst_f[a + k, IF.draining_time] = st.f[STF.draining_time, k]
        inst_f[a + k, IF.spot_time] = st.f[STF.spot_time, k]
        inst_i[a + k, II.iterations] = st.i[STI.iterations, k]
        inst_i[a + k, II.tokens_served] = st.i[STI.tokens_served, k]
        inst_i[a + k, II.final_memory] = st.i[STI.memory, k]
    out.end_clock[c] = clock
    n_ep = sv.ep.shape[1] - 1
    ep_time = np.empty((len(ENDPOINT_TIME), n_ep))
    for k in range(len(ENDPOINT_TIME)):
        for e in range(n_ep):
            ep_time[k, e] = scf[SCF.serving + k, e]
    return log.copy(), slog.copy(), ep_time, scf[SCF.spot, :prm.i[PI.n_regions]].copy()


@njit(cache=True, nogil=True)
def simulate_one_nb(c, inp, perf, out):
    """Simulate configuration c of ``inp`` (``Inputs``; ``perf``: the performance tables of every configuration)
    and write its outputs to ``out`` (``Outputs``); returns ``write_outputs_nb``'s logs and times. It releases the
    GIL, so that threads simulate several configurations at once (``sweepsim.engine.simulate``): one compiled
    entry serves a single run and a sweep. It is the event loop's only caller: Numba compiles a callee's code again
    into every function that calls it, so each extra level above the handlers would compile all of them again."""
    prm, wl, cl, topo, plan = config_inputs_nb(c, inp)
    sim = new_sim_nb(wl, prm, cl, perf, topo, plan, out.req_f[c])
    while True:
        status = run_events_nb(sim)
        if status == DONE:
            break
        sim = grow_sim_nb(sim, status)
    scale_finish_nb(sim, sim.clock[0])
    sim = finished_sim_nb(sim)   # (with this loop's shape Numba releases the earlier versions of the state)
    ctr = sim.ctr
    return write_outputs_nb(c, inp.inst_off[c], prm, sim.rq, sim.st, sim.sv, sim.sc.f, sim.sc.log[:ctr[CTR_SLOG_LEN]],
                            sim.log[:ctr[CTR_LOG_LEN]], sim.clock[0], out)
