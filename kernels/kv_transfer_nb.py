"""KV-cache transfer of a request from its prompt instance to its token instance.

A transfer starts when the destination can hold the prompt's KV (else it retries every ``retry_delay`` s),
reserves that memory at the destination on start, moves KV(prompt_size) bytes, then frees the memory at the
source, hands the decode task to the destination and notifies the source.

Network models (``prm.i[PI.network]``):
- dedicated (0, SplitwiseSim): a private link of ``transfer_bandwidth`` bytes/s per transfer, no contention.
- shared (1): transfers between servers go through the source server's NIC (egress) and the destination
  server's NIC (ingress), each of ``nic_bw`` bytes/s shared equally by the transfers using it; a transfer
  moves at the smaller of its two shares. Rates and finish times are recomputed for every transfer touching a
  server whenever a transfer starts or ends there. Transfers within a server use its NVLink (``nvlink_bw``)
  without contention.
"""
from kernels.layout import CI, CS, PF, PI
from kernels.enums import FlowState
from kernels.event_order_nb import schedule_flow_event_nb
from kernels.instance_nb import free_memory_nb, notify_flow_completion_nb, task_arrival_nb
from kernels.jit import internal
from kernels.state_nb import CTR_RUNNING_FLOWS, EP_KV, RQF, RQI, RQK, STI


@internal()
def _reshare_nb(sim, a, b, now, delta, r_new, r_old):
    """Servers a and b gain (delta = +1, transfer r_new) or lose (delta = -1, transfer r_old) a transfer:
    advance every transfer touching them at its old rate, update the NIC counts, then give each its new
    rate and finish time."""
    net = sim.net
    rq = sim.rq
    cl = sim.cl
    for k in range(net.n_active[0]):
        f = net.active[k]
        s = cl.i[CI.server, rq.i[RQI.prompt_inst, f]]
        d = cl.i[CI.server, rq.i[RQI.token_inst, f]]
        if s == a or s == b or d == a or d == b:
            rq.kf[RQF.flow_left, f] -= rq.kf[RQF.flow_rate, f] * (now - rq.kf[RQF.flow_t, f])
            rq.kf[RQF.flow_t, f] = now
    net.egress[a] += delta
    net.ingress[b] += delta
    if delta > 0:
        rq.ki[RQK.flow_pos, r_new] = net.n_active[0]
        net.active[net.n_active[0]] = r_new
        net.n_active[0] += 1
    else:
        p = rq.ki[RQK.flow_pos, r_old]
        last = net.active[net.n_active[0] - 1]
        net.active[p] = last
        rq.ki[RQK.flow_pos, last] = p
        net.n_active[0] -= 1
    for k in range(net.n_active[0]):
        f = net.active[k]
        s = cl.i[CI.server, rq.i[RQI.prompt_inst, f]]
        d = cl.i[CI.server, rq.i[RQI.token_inst, f]]
        if s == a or s == b or d == a or d == b:
            rate = min(cl.f[CS.nic_bw, s] / net.egress[s], cl.f[CS.nic_bw, d] / net.ingress[d])
            rq.kf[RQF.flow_rate, f] = rate
            schedule_flow_event_nb(sim, f, now + max(rq.kf[RQF.flow_left, f], 0.0) / rate)


@internal()
def _try_start_nb(sim, r, now):
    rq = sim.rq
    dest = rq.i[RQI.token_inst, r]
    if sim.st.i[STI.memory, dest] + rq.i[RQI.memory, r] <= sim.cl.i[CI.max_memory, dest]:
        rq.ki[RQK.flow_state, r] = FlowState.RUNNING
        sim.ctr[CTR_RUNNING_FLOWS] += 1
        rq.kf[RQF.kv_start, r] = now
        sim.st.i[STI.memory, dest] += rq.i[RQI.memory, r]
        sim.sv.ep[EP_KV, sim.cl.i[CI.endpoint, dest]] += rq.i[RQI.memory, r]
        size = sim.prm.i[PI.kv_bytes_per_token] * sim.wl.prompt_size[r]
        if sim.prm.i[PI.network] == 0:
            schedule_flow_event_nb(sim, r, now + size / sim.prm.f[PF.transfer_bandwidth])
            return
        a = sim.cl.i[CI.server, rq.i[RQI.prompt_inst, r]]
        b = sim.cl.i[CI.server, dest]
        if a == b:
            schedule_flow_event_nb(sim, r, now + size / sim.cl.f[CS.nvlink_bw, a])
            return
        rq.kf[RQF.flow_left, r] = float(size)
        rq.kf[RQF.flow_t, r] = now
        _reshare_nb(sim, a, b, now, 1, r, -1)
    else:
        schedule_flow_event_nb(sim, r, now + sim.prm.f[PF.retry_delay])


@internal()
def flow_arrive_nb(sim, r, now):
    """The prompt of request r finished: its KV transfer is submitted."""
    sim.rq.ki[RQK.flow_state, r] = FlowState.WAITING
    _try_start_nb(sim, r, now)


@internal()
def flow_event_nb(sim, r, now):
    """A flow event fired: a retry of a waiting transfer, or the end of a running one."""
    rq = sim.rq
    if rq.ki[RQK.flow_state, r] == FlowState.WAITING:
        _try_start_nb(sim, r, now)
        return
    rq.ki[RQK.flow_state, r] = FlowState.DONE
    sim.ctr[CTR_RUNNING_FLOWS] -= 1
    rq.kf[RQF.kv_end, r] = now
    src = rq.i[RQI.prompt_inst, r]
    if sim.prm.i[PI.network] != 0:
        a = sim.cl.i[CI.server, src]
        b = sim.cl.i[CI.server, rq.i[RQI.token_inst, r]]
        if a != b:
            _reshare_nb(sim, a, b, now, -1, -1, r)
    free_memory_nb(sim, src, rq.i[RQI.memory, r])
    task_arrival_nb(sim, rq.i[RQI.token_inst, r], 2 * r + 1, now)
    notify_flow_completion_nb(sim, src, now)
