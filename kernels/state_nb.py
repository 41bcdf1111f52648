"""Struct-of-arrays state of one simulated configuration, and its allocation.

Inputs (read-only):
  Workload  per request r (trace order, arrival sorted): arrival [s], prompt_size, token_size [tokens],
            uniform (one draw in [0, 1) per request for the random scheduler).
  Params    the configuration's parameters: int64 and float64 arrays named by ``kernels.layout``.
  Cluster   per instance i: max_memory, weights [bytes], tag (home pool), perf (row of PerfTables),
            server (index); per server: nic_bw, nvlink_bw [bytes/s] (shared-network model only).
  PerfTables per (model, hardware, TP) row c: knots/prompt_y/token_y (seconds) or constant times.

Mutable state:
  Tasks     per task: prompt of request r is task 2r, its token (decode) task is 2r+1.
  Requests  per request: KV memory held, chosen instances, KV-transfer times, done flag.
  Inst      per instance scalars (memory, batch counters, current run of iterations, busy time...).
  Queues    per instance variable-length lists as rows of 2-D arrays with lengths (and, except the
            batch, start offsets) in Inst: batch, pending (pending_queue), prompts (pending_prompt_queue),
            blocked, requests (pending_requests, sorted by arrival); ``left`` holds the remaining
            iterations of each batch slot; ``sel`` and ``cand`` are scratch space of batch selection.
            Capacity grows geometrically.
  Pools     instance lists in scheduler order: 0 all, 1 prompt, 2 token, 3 mixed.
"""
from collections import namedtuple

import numpy as np

from kernels.layout import TOPO, TOPOLOGY
from kernels.jit import internal

Workload = namedtuple("Workload", ["arrival", "prompt_size", "token_size", "uniform",
                                   "order_key",           # instance admission order: arrival (+ dev SLA offset)
                                   "model", "cls", "sla", "order"])  # topology: model code, class, SLA [s], order
#: ``i`` / ``f``: the configuration's integer / float parameters, indexed by ``kernels.layout.PI`` / ``PF``
Params = namedtuple("Params", ["i", "f"])
#: Packed inputs of many configurations on one trace, and their outputs (``kernels.batch_nb``).
Inputs = namedtuple("Inputs", ["arrival", "prompt_size", "token_size", "uniform", "prm_i", "prm_f", "inst_off",
                               "max_memory", "weights", "tag", "perf_row", "server", "srv_off", "nic_bw",
                               "nvlink_bw", "kv_per_token", "endpoint",
                               "req_model", "req_class", "req_sla", "req_order", "topo", "topo_off"])
Outputs = namedtuple("Outputs", ["req_f", "req_i", "inst_f", "inst_i", "end_clock"])
Cluster = namedtuple("Cluster", ["max_memory", "weights", "tag", "perf", "server", "nic_bw", "nvlink_bw",
                                 "kv_per_token", "endpoint"])   # per instance: its model's KV bytes per token
#: The topology tables of one configuration (``kernels.layout.TOPOLOGY``), slices of its packed int64 array.
Topo = namedtuple("Topo", TOPOLOGY)
#: Serving state: KV bytes in use and capacity per endpoint; batch/dev queues (FIFO linked lists over
#: requests, heads and tails per (service, region, class)); per request the time it entered global routing
#: and its endpoint; the FIFO of routed requests on their way to their endpoints.
Serve = namedtuple("Serve", ["ep_kv", "ep_cap", "q_head", "q_tail", "q_next", "fed_time", "req_ep",
                             "route_req", "route_time"])
PerfTables = namedtuple("PerfTables", ["kind", "knots", "n_knots", "prompt_y", "token_y",
                                       "const_prompt", "const_token"])
Tasks = namedtuple("Tasks", ["state", "inst", "left", "first_start", "end",
                             "np_acc", "np_since", "waiting", "pending_hint"])
Requests = namedtuple("Requests", ["memory", "chosen_stamp", "prompt_inst", "token_inst",
                                   "kv_start", "kv_end", "flow_state", "done",
                                   "flow_left", "flow_rate", "flow_t", "flow_pos"])
Inst = namedtuple("Inst", [
    "memory", "sched_memory", "sched_pending_tokens", "pending_tokens",
    "batch_len", "batch_tokens", "n_prompts", "pending_len", "prompts_len", "blocked_len", "requests_len",
    "resident", "iter_d", "iter_n", "iter_end", "iter_start", "pause", "it_count",
    "busy_time", "busy_start", "iterations", "tokens_served", "time_prompt", "time_token", "time_mixed",
    "sched_tag", "pending_off", "prompts_off", "blocked_off", "requests_off",
])
Queues = namedtuple("Queues", ["batch", "left", "pending", "prompts", "blocked", "requests", "sel", "cand"])
Pools = namedtuple("Pools", ["lists", "lens"])

POOL_ALL = 0
POOL_PROMPT = 1
POOL_TOKEN = 2
POOL_MIXED = 3

# Indices into the int64 counters array.
CTR_STAMP = 0       # selection stamp (batch membership marks without clearing)
CTR_RR = 1          # round-robin position, all instances
CTR_RR_PROMPT = 2
CTR_RR_TOKEN = 3
CTR_CAP = 4         # queue capacity per instance
CTR_LOG_LEN = 5     # rows used in the iteration log
CTR_MAX_RESIDENT = 6  # most tasks ever resident at one instance (queue capacity bound)
CTR_NEXT_ARRIVAL = 7  # index of the next request to arrive
CTR_RUNNING_FLOWS = 8  # KV transfers in flight
CTR_ROUTE_HEAD = 9    # routed requests on their way to an endpoint: FIFO head and tail (serving_nb)
CTR_ROUTE_TAIL = 10
N_CTR = 11


@internal(nrt=True)
def new_tasks_nb(token_size):
    """``left``: iterations a task still has to run (1 for a prompt, token_size - 1 for a decode); while
    the task is batched the up-to-date count is in its batch slot (``Queues.left``). ``state`` and ``waiting``
    are int8 (a 10M-request day keeps 20M tasks)."""
    m = 2 * token_size.shape[0]
    left = np.ones(m, np.int64)
    left[1::2] = token_size - 1
    return Tasks(np.zeros(m, np.int8), np.full(m, -1, np.int64), left,
                 np.full(m, np.nan), np.full(m, np.nan),
                 np.zeros(m, np.int64), np.zeros(m, np.int64), np.zeros(m, np.int8),
                 np.zeros(m, np.int64))


@internal(nrt=True)
def new_requests_nb(n_requests, n_kv):
    """Per-request state; the KV-transfer fields have ``n_kv`` entries (1 when no request is transferred)."""
    n = n_requests
    return Requests(np.zeros(n, np.int64), np.full(n, -1, np.int64), np.full(n, -1, np.int64),
                    np.full(n, -1, np.int64), np.full(n_kv, np.nan), np.full(n_kv, np.nan),
                    np.zeros(n_kv, np.int64), np.zeros(n, np.int64),
                    np.zeros(n_kv), np.zeros(n_kv), np.zeros(n_kv), np.full(n_kv, -1, np.int64))


@internal(nrt=True)
def new_inst_nb(cluster, cap):
    n = cluster.max_memory.shape[0]
    z = np.zeros(n, np.int64)
    zf = np.zeros(n, np.float64)
    mid = np.full(n, cap // 2, np.int64)
    return Inst(cluster.weights.copy(), cluster.weights.copy(), z.copy(), z.copy(),
                z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy(),
                z.copy(), zf.copy(), z.copy(), zf.copy(), zf.copy(), z.copy(), z.copy(),
                zf.copy(), zf.copy(), z.copy(), z.copy(), zf.copy(), zf.copy(), zf.copy(),
                z.copy(), mid.copy(), mid.copy(), mid.copy(), mid.copy())


@internal(nrt=True)
def new_queues_nb(n_instances, cap):
    return Queues(np.empty((n_instances, cap), np.int64), np.empty((n_instances, cap), np.int64),
                  np.empty((n_instances, cap), np.int64),
                  np.empty((n_instances, cap), np.int64), np.empty((n_instances, cap), np.int64),
                  np.empty((n_instances, cap), np.int64), np.empty(cap, np.int64), np.empty((2, cap), np.int64))


@internal(nrt=True)
def _recenter_nb(src, dst, off, lens, i):
    n = lens[i]
    o = (dst.shape[1] - n) // 2
    dst[i, o:o + n] = src[i, off[i]:off[i] + n]
    off[i] = o


@internal(nrt=True)
def grow_queues_nb(q, inst, cap):
    """A copy of ``q`` with room for ``cap`` entries per instance (double-ended lists re-centred)."""
    g = new_queues_nb(q.batch.shape[0], cap)
    for i in range(q.batch.shape[0]):
        g.batch[i, :inst.batch_len[i]] = q.batch[i, :inst.batch_len[i]]
        g.left[i, :inst.batch_len[i]] = q.left[i, :inst.batch_len[i]]
        _recenter_nb(q.pending, g.pending, inst.pending_off, inst.pending_len, i)
        _recenter_nb(q.prompts, g.prompts, inst.prompts_off, inst.prompts_len, i)
        _recenter_nb(q.blocked, g.blocked, inst.blocked_off, inst.blocked_len, i)
        _recenter_nb(q.requests, g.requests, inst.requests_off, inst.requests_len, i)
    return g


@internal(nrt=True)
def new_pools_nb(cluster):
    """Pool 0 holds every instance, pools 1/2 the prompt/token-tagged ones, in instance-id order."""
    n = cluster.tag.shape[0]
    lists = np.full((4, n), -1, np.int64)
    lens = np.zeros(4, np.int64)
    for i in range(n):
        lists[0, lens[0]] = i
        lens[0] += 1
        t = cluster.tag[i]
        if t == 1 or t == 2:
            lists[t, lens[t]] = i
            lens[t] += 1
    return Pools(lists, lens)

#: Shared-network state: transfers in flight between servers (dense list) and per-server counts.
Net = namedtuple("Net", ["active", "n_active", "egress", "ingress"])

#: Everything one configuration's event handlers read or write, passed as one argument.
Sim = namedtuple("Sim", ["wl", "prm", "cl", "perf", "tk", "rq", "st", "qu", "pools", "ctr",
                         "iheap", "fheap", "eheap", "log", "clock", "net", "topo", "sv"])


@internal(nrt=True)
def topo_from_blob_nb(b):
    """The named tables of a packed topology: section k is ``b[b[k]:b[k + 1]]``."""
    return Topo(b[b[TOPO.ep_region]:b[TOPO.ep_region + 1]], b[b[TOPO.ep_service]:b[TOPO.ep_service + 1]],
                b[b[TOPO.ep_scheduler]:b[TOPO.ep_scheduler + 1]],
                b[b[TOPO.ep_first_group]:b[TOPO.ep_first_group + 1]], b[b[TOPO.ep_groups]:b[TOPO.ep_groups + 1]],
                b[b[TOPO.group_first_instance]:b[TOPO.group_first_instance + 1]],
                b[b[TOPO.group_instances]:b[TOPO.group_instances + 1]],
                b[b[TOPO.endpoint_of]:b[TOPO.endpoint_of + 1]], b[b[TOPO.service_of]:b[TOPO.service_of + 1]],
                b[b[TOPO.order_regions]:b[TOPO.order_regions + 1]])


@internal(nrt=True)
def new_serve_nb(topo, cluster, n_requests, topology, delayed):
    """Serving state; per-request arrays only with a topology (size 1 otherwise: never indexed), the FIFO of
    routed requests only with a routing delay."""
    n_ep = max(topo.ep_region.shape[0], 1)
    cap = np.zeros(n_ep, np.int64)
    for i in range(cluster.max_memory.shape[0]):
        cap[cluster.endpoint[i]] += cluster.max_memory[i] - cluster.weights[i]
    n = n_requests if topology else 1
    nq = max(2 * topo.endpoint_of.shape[0], 1)
    return Serve(np.zeros(n_ep, np.int64), cap, np.full(nq, -1, np.int64), np.full(nq, -1, np.int64),
                 np.full(n, -1, np.int64), np.full(n, np.nan), np.full(n, -1, np.int64),
                 np.empty(n if delayed else 1, np.int64), np.empty(n if delayed else 1, np.float64))


@internal(nrt=True)
def new_net_nb(n_requests, n_servers):
    return Net(np.empty(max(n_requests, 1), np.int64), np.zeros(1, np.int64), np.zeros(n_servers, np.int64),
               np.zeros(n_servers, np.int64))


@internal()
def task_memory_nb(sim, i, t):
    """KV bytes a task allocates when it first runs at instance i: prompt KV(prompt_size + 1), decode
    KV(token_size - 1), in bytes per token of instance i's model."""
    r = t >> 1
    if t & 1 == 0:
        return sim.cl.kv_per_token[i] * (sim.wl.prompt_size[r] + 1)
    return sim.cl.kv_per_token[i] * (sim.wl.token_size[r] - 1)


@internal()
def tokens_per_iteration_nb(sim, t):
    """Batch tokens a task costs: its whole prompt for a prompt task, 1 for a decode task."""
    if t & 1 == 0:
        return sim.wl.prompt_size[t >> 1]
    return 1
