"""Many configurations in one kernel call: ``prange`` over the configuration axis.

Every configuration runs ``simulate_1d_nb`` on the same trace (shared, read-only) with its own parameters,
instances and random draws, allocated per configuration inside the call; results go to its own rows of
the output arrays, so threads never share writable state. The kernel does not know it runs a sweep.

Inputs per configuration c: ``prm_i[c]`` / ``prm_f[c]`` (integer / float parameters, columns in
``PARAM_INT`` / ``PARAM_FLOAT`` order), ``uniform[c]`` (random-scheduler draws), instances
``inst_off[c]:inst_off[c + 1]`` of the flattened instance arrays, servers ``srv_off[c]:srv_off[c + 1]``.
Outputs: ``req_f[c, k, r]`` (REQ_FLOAT columns), ``req_i[c, k, r]`` (REQ_INT), ``inst_f[j, k]``
(INST_FLOAT), ``inst_i[j, k]`` (INST_INT) for flattened instance j, ``end_clock[c]``.
"""
from numba import njit, prange

from kernels.simulate_nb import simulate_1d_nb
from kernels.state_nb import Cluster, Params, Workload

PARAM_INT = ("instance_type", "scheduler", "max_batch_size", "max_batch_tokens", "max_preemptions",
             "kv_bytes_per_token", "prompt_max_pending_tokens", "debug", "network")
PARAM_FLOAT = ("transfer_bandwidth", "retry_delay", "end_time", "mixed_factor")
REQ_FLOAT = ("prompt_start", "prompt_end", "token_start", "token_end", "kv_start", "kv_end")
REQ_INT = ("completed", "prompt_instance", "token_instance")
INST_FLOAT = ("busy_time", "time_prompt", "time_token", "time_mixed")
INST_INT = ("iterations", "tokens_served", "final_memory")


@njit(cache=True, parallel=True)
def simulate_batch_nb(arrival, prompt_size, token_size, uniform, prm_i, prm_f, inst_off, max_memory, weights,
                      tag, perf_row, server, srv_off, nic_bw, nvlink_bw, perf, req_f, req_i, inst_f, inst_i,
                      end_clock):
    n_cfg = prm_i.shape[0]
    for c in prange(n_cfg):
        wl = Workload(arrival, prompt_size, token_size, uniform[c].copy())
        prm = Params(prm_i[c, 0], prm_i[c, 1], prm_i[c, 2], prm_i[c, 3], prm_i[c, 4], prm_i[c, 5],
                     prm_f[c, 0], prm_f[c, 1], prm_f[c, 2], prm_f[c, 3], prm_i[c, 6], prm_i[c, 7] != 0, prm_i[c, 8])
        a = inst_off[c]
        b = inst_off[c + 1]
        sa = srv_off[c]
        sb = srv_off[c + 1]
        cl = Cluster(max_memory[a:b].copy(), weights[a:b].copy(), tag[a:b].copy(), perf_row[a:b].copy(),
                     server[a:b].copy(), nic_bw[sa:sb].copy(), nvlink_bw[sa:sb].copy())
        tk, rq, st, log, clock = simulate_1d_nb(wl, prm, cl, perf)
        n = arrival.shape[0]
        for r in range(n):
            req_f[c, 0, r] = tk.first_start[2 * r]
            req_f[c, 1, r] = tk.end[2 * r]
            req_f[c, 2, r] = tk.first_start[2 * r + 1]
            req_f[c, 3, r] = tk.end[2 * r + 1]
            req_f[c, 4, r] = rq.kv_start[r]
            req_f[c, 5, r] = rq.kv_end[r]
            req_i[c, 0, r] = rq.done[r]
            req_i[c, 1, r] = rq.prompt_inst[r]
            req_i[c, 2, r] = rq.token_inst[r]
        for k in range(b - a):
            inst_f[a + k, 0] = st.busy_time[k]
            inst_f[a + k, 1] = st.time_prompt[k]
            inst_f[a + k, 2] = st.time_token[k]
            inst_f[a + k, 3] = st.time_mixed[k]
            inst_i[a + k, 0] = st.iterations[k]
            inst_i[a + k, 1] = st.tokens_served[k]
            inst_i[a + k, 2] = st.memory[k]
        end_clock[c] = clock
