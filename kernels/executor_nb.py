"""End of a run of iterations: advance every batched task, finish completed tasks, walk the request DAG
(prompt -> [KV transfer ->] decode -> request done), then start the next run."""
from kernels.layout import PI, RF
from kernels.enums import TaskState
from kernels.instance_nb import (free_memory_nb, log_iteration_nb, requests_remove_nb,
                                 start_iteration_nb, start_waiting_nb)
from kernels.jit import internal
from kernels.state_nb import QU, RQI, SCF, STF, STI, TKB
from kernels.kv_transfer_nb import flow_arrive_nb
from kernels.serving_nb import request_completed_if_serving_nb


@internal(inline=True)
def finish_task_nb(sim, i, t, now):
    """Task t completed at instance i (already removed from the batch). Returns 1 if its request is done."""
    st = sim.st
    tk = sim.tk
    rq = sim.rq
    wl = sim.wl
    r = t >> 1
    tk.b[TKB.state, t] = TaskState.COMPLETED
    tk.f[RF.token_end if t & 1 else RF.prompt_end, r] = now   # the request's output row (``Tasks``)
    st.i[STI.resident, i] -= 1
    if t & 1 == 0:
        st.i[STI.sched_pending_tokens, i] -= wl.prompt_size[r]
        if wl.token_size[r] == 1:  # no decode task: the request is done
            free_memory_nb(sim, i, rq.i[RQI.memory, r])
            rq.i[RQI.memory, r] = 0
            requests_remove_nb(sim, i, r)
            rq.i[RQI.done, r] = 1
            return 1
        elif rq.i[RQI.token_inst, r] != i:  # disaggregated: transfer the KV cache
            requests_remove_nb(sim, i, r)
            flow_arrive_nb(sim, r, now)
        elif tk.b[TKB.state, t + 1] == TaskState.QUEUED:  # chained: the decode task becomes the head
            start_waiting_nb(sim, t + 1, i)
        return 0
    else:
        st.i[STI.sched_pending_tokens, i] -= 1
        free_memory_nb(sim, i, rq.i[RQI.memory, r])
        rq.i[RQI.memory, r] = 0
        requests_remove_nb(sim, i, r)
        rq.i[RQI.done, r] = 1
        return 1


@internal(inline=True)
def complete_iteration_nb(sim, i, now):
    """The current run of ``iter_n`` iterations of instance i ended at ``now``."""
    st = sim.st
    qu = sim.qu
    wl = sim.wl
    if sim.prm.i[PI.debug]:
        log_iteration_nb(sim, i, now)
    n_iter = st.i[STI.iter_n, i]
    blen = st.i[STI.batch_len, i]
    n_prompt = st.i[STI.n_prompts, i]
    ran = now - st.f[STF.iter_start, i]
    kind = 0 if n_prompt == blen else (1 if n_prompt == 0 else 2)   # prompt-only, decode-only, mixed
    st.f[STF.time_prompt + kind, i] += ran
    if sim.prm.i[PI.topology]:   # charged to the instance's endpoint too (it may move)
        sim.sc.f[SCF.prompt + kind, st.i[STI.owner, i]] += ran
    st.i[STI.iterations, i] += n_iter
    # every decode produced n_iter tokens, every prompt its prompt and first token
    st.i[STI.tokens_served, i] += (blen - n_prompt) * n_iter
    n_done = 0
    nb = 0
    for k in range(blen):
        t = qu.q[QU.batch, i, k]
        left = qu.q[QU.left, i, k] - n_iter
        if t & 1 == 0:
            st.i[STI.tokens_served, i] += wl.prompt_size[t >> 1] + 1
            left = 0
        if left == 0:
            qu.sel[n_done] = t
            n_done += 1
        else:
            qu.q[QU.batch, i, nb] = t
            qu.q[QU.left, i, nb] = left
            nb += 1
    st.i[STI.batch_len, i] = nb
    st.i[STI.n_prompts, i] = 0  # a prompt always finishes in the one iteration it runs
    if nb == 0:
        st.f[STF.busy_time, i] += now - st.f[STF.busy_start, i]
    # a topology's endpoint feeds queued requests for each completed request, by its utilisation once that
    # request's memory is freed; the event loop routes the fed requests once this instance has started its next
    # run
    serving = sim.prm.i[PI.topology]
    for k in range(n_done):
        if finish_task_nb(sim, i, qu.sel[k], now) and serving:
            request_completed_if_serving_nb(sim, i, qu.sel[k] >> 1)
    st.i[STI.pause, i] = 0
    start_iteration_nb(sim, i, now)

