"""KV-cache transfer of a request from its prompt instance to its token instance.

Each request has a private link of bandwidth ``transfer_bandwidth`` (bytes/s): transfers never contend.
A transfer starts when the destination can hold the prompt's KV (else it retries every ``retry_delay`` s),
reserves that memory at the destination on start, lasts KV(prompt_size) / bandwidth, then frees the
memory at the source, hands the decode task to the destination and notifies the source.
"""
from numba import njit

from kernels.enums import FlowState
from kernels.event_queue_nb import heap_set_nb
from kernels.instance_nb import free_memory_nb, notify_flow_completion_nb, task_arrival_nb


@njit(cache=True, _nrt=False)
def _try_start_nb(sim, r, now):
    rq = sim.rq
    dest = rq.token_inst[r]
    if sim.st.memory[dest] + rq.memory[r] <= sim.cl.max_memory[dest]:
        rq.flow_state[r] = FlowState.RUNNING
        rq.kv_start[r] = now
        sim.st.memory[dest] += rq.memory[r]
        size = sim.prm.kv_bytes_per_token * sim.wl.prompt_size[r]
        heap_set_nb(sim.fheap, r, now + size / sim.prm.transfer_bandwidth)
    else:
        heap_set_nb(sim.fheap, r, now + sim.prm.retry_delay)


@njit(cache=True, _nrt=False)
def flow_arrive_nb(sim, r, now):
    """The prompt of request r finished: its KV transfer is submitted."""
    sim.rq.flow_state[r] = FlowState.WAITING
    _try_start_nb(sim, r, now)


@njit(cache=True, _nrt=False, inline='always')
def flow_event_nb(sim, r, now):
    """A flow event fired: a retry of a waiting transfer, or the end of a running one."""
    rq = sim.rq
    if rq.flow_state[r] == FlowState.WAITING:
        _try_start_nb(sim, r, now)
        return
    rq.flow_state[r] = FlowState.DONE
    rq.kv_end[r] = now
    src = rq.prompt_inst[r]
    free_memory_nb(sim, src, rq.memory[r])
    task_arrival_nb(sim, rq.token_inst[r], 2 * r + 1, now)
    notify_flow_completion_nb(sim, src, now)
