"""Struct-of-arrays state of one simulated configuration, and its allocation. Each group of scalars is the rows
of a few 2-D arrays by type, named by index tuples (``STI.memory``, ``TKB.state``...): every array of the state
tuple costs compile time in every out-of-line handler (docs/semantics.md, "Implementation notes").

Inputs (read-only):
  Workload  per request r (trace order, arrival sorted): arrival [s], prompt_size, token_size [tokens],
            uniform (one draw in [0, 1) per request for the random scheduler), order_key (admission order at an
            instance), serve_code (topologies: model, class and region order).
  Params    the configuration's parameters: int64 and float64 arrays named by ``kernels.layout``.
  Cluster   per instance i: ``i[CI.max_memory | weights | tag | perf | server | kv_per_token | endpoint, i]``;
            per server: ``f[CS.nic_bw | nvlink_bw, s]`` [bytes/s] (shared-network model only).
  PerfTables per (model, hardware, TP) row c: curves (batch tokens, prompt and token seconds) or constant times.
  topo      a topology's packed tables (``kernels.layout.TOPOLOGY``, read through ``topo_nb``).

Mutable state:
  Tasks     per task (prompt of request r is task 2r, its decode task 2r+1): instance, iterations left,
            pending-queue hint; state and wait flag (int8); first start and end times; wait counts (Splitwise).
  Requests  per request: KV memory held, selection stamp, chosen instances, done flag; KV-transfer fields.
  Inst      per instance scalars (memory, batch counters, current run of iterations, busy time...): rows of
            two 2-D arrays (``InstRows``) named by ``STI`` / ``STF``.
  Queues    per instance variable-length lists, rows of one 3-D array ``q[QU.x, i, k]`` with lengths (and,
            except the batch, start offsets) in Inst: batch, pending (pending_queue), prompts
            (pending_prompt_queue), blocked, requests (pending_requests, by admission key); ``left`` holds the
            remaining iterations of each batch slot; ``sel`` and ``cand`` are scratch space of batch selection.
            Capacity grows geometrically.
  Pools     instance lists in scheduler order: 0 all, 1 prompt, 2 token, 3 mixed.
  Serve     a topology's endpoint utilisation, batch/dev queues, fed times and routed-request FIFO.
"""
from collections import namedtuple

import numpy as np

from kernels.layout import CI, RF, SCALING_LOG, TOPO, _index
from kernels.jit import internal

Workload = namedtuple("Workload", ["arrival", "prompt_size", "token_size", "uniform",
                                   "order_key",     # instance admission order: arrival (+ dev SLA offset)
                                   "serve_code"])   # topology: (model x 3 + class) x n_orders + region order
#: ``i`` / ``f``: the configuration's integer / float parameters, indexed by ``kernels.layout.PI`` / ``PF``
Params = namedtuple("Params", ["i", "f"])
#: Packed inputs of many configurations on one trace, and their outputs (``kernels.batch_nb``).
Inputs = namedtuple("Inputs", ["arrival", "prompt_size", "token_size", "uniform", "prm_i", "prm_f", "inst_off",
                               "inst_in", "srv_off", "srv_in", "req_code", "req_sla", "topo",
                               "topo_off", "plan", "plan_off"])
#: The same, and the parameters, typed for the serving kernel (a configuration has a topology; ``kernels.variants``).
ServingInputs = namedtuple("ServingInputs", Inputs._fields)
ServingParams = namedtuple("ServingParams", Params._fields)
Outputs = namedtuple("Outputs", ["req_f", "req_i", "inst_f", "inst_i", "end_clock"])
#: One configuration's instances and servers: ``i[CI.max_memory, i]`` (``kernels.layout.INSTANCE_IN``),
#: ``f[CS.nic_bw, s]`` (``SERVER_IN``).
Cluster = namedtuple("Cluster", ["i", "f"])
#: Serving state (``kernels.serving_nb``; each a few rows of one array, to keep the state tuple short):
#: ``ep[EP_x, e]`` per endpoint (one more column, the *sink*, charged by instances outside every endpoint's
#: groups): KV bytes in use and KV capacity of its serving instances, their resident requests and how many hold
#: an interactive request, its batch/dev queues' requests and output tokens, its replica groups (first slot of
#: ``Scale.g`` and count), its serving / starting / draining instances, its model, and its model's instance
#: template (weights, KV bytes per token, performance row), the feeds decided in the current event (1 + count
#: once the endpoint is listed; the list of such endpoints in ``feed_order``, in listing order); ``queue[Q_HEAD | Q_TAIL, q]`` the batch/dev FIFO
#: queues (linked lists over requests) per (service, region, class); ``req[R_NEXT | R_ENDPOINT | R_ROUTED, r]`` the
#: next request in r's queue, r's endpoint, and the FIFO of routed requests on their way to their endpoints;
#: ``time[T_FED | T_ROUTED, r]`` when r entered global routing, and the FIFO's times.
Serve = namedtuple("Serve", ["ep", "queue", "req", "time"])
ENDPOINT_ROWS = ("kv", "cap", "requests", "interactive", "queued", "queued_tokens", "group_base", "groups",
                 "serving", "starting", "draining", "model", "weights", "kv_per_token", "perf",
                 "feeds", "feed_order", "changes")
EPR = _index("EPR", ENDPOINT_ROWS)
EP_KV, EP_CAP = EPR.kv, EPR.cap
Q_HEAD, Q_TAIL = 0, 1
R_NEXT, R_ENDPOINT, R_ROUTED = 0, 1, 2
T_FED, T_ROUTED = 0, 1
#: Autoscaling state (``kernels.scaling_nb``): ``g[slot, 0]`` the size of a replica group and ``g[slot, 1:]`` its
#: members in order (endpoint e's groups are slots ``ep[EPR.group_base, e]`` on); ``i[SCI.x, rm]`` per (region,
#: model) its spot pool (a FIFO linked through ``STI.spot_next``); ``f[SCF.x, k]`` per (region, model) the lock-out
#: end, per endpoint the time charged to it by state and its last evaluation, per region its spot time, and (column
#: 0) the next timer evaluation and planning tick; ``log`` the scaling events (``kernels.layout.SCALING_LOG``);
#: ``p`` the plans (rows 0..plan_ticks-1: target instances per endpoint) and the forecast (then plan_minutes rows:
#: tokens per minute per (region, model)); ``f[SCF.window + s, rm]`` the prompt tokens that reached (region, model)'s
#: endpoints in the s-th second of a 60-second ring (LT-UA).
Scale = namedtuple("Scale", ["g", "i", "f", "log", "p"])
SCI = _index("SCI", ("spot_head", "spot_tail", "spot_n"))
WINDOW_S = 60
SCF = _index("SCF", ("lock", "serving", "starting", "draining", "busy", "prompt", "token", "mixed", "last_eval", "spot",
                     "timer", "plan_next", "window_sum", "window_second") + tuple(f"window{k}" for k in range(WINDOW_S)))
#: Iteration-time tables, one row c per (model, hardware, TP): ``i[PTI.kind | PTI.n_knots, c]``,
#: ``f[PTF.const_prompt | PTF.const_token, c]`` (constant model, seconds), ``y[PTY.knots | PTY.prompt | PTY.token,
#: c, k]`` (profiled or roofline curves: batch tokens and seconds).
PerfTables = namedtuple("PerfTables", ["i", "f", "y"])
PTI = _index("PTI", ("kind", "n_knots"))
PTF = _index("PTF", ("const_prompt", "const_token"))
PTY = _index("PTY", ("knots", "prompt", "token"))
#: Per-task state, rows of 2-D arrays by type (``tk.i[TKI.left, t]``, ``tk.b[TKB.state, t]``; few arrays keep the
#: handlers' argument lists short). The times are written straight into the configuration's request outputs
#: (``tk.f``: its ``Outputs.req_f`` rows, ``kernels.layout.REQUEST_FLOAT``; ``task_time_row``): no per-task copy.
TASK_INT = ("inst", "left", "pending_hint")
TASK_WAIT = ("np_acc", "np_since")              # Splitwise instances only (one column on ORCA instances)
TASK_FLAG = ("state", "waiting")                 # int8 (a 10M-request day keeps 20M tasks)
Tasks = namedtuple("Tasks", ["i", "b", "f", "w"])
TKI = _index("TKI", TASK_INT)
TKB = _index("TKB", TASK_FLAG)
TKW = _index("TKW", TASK_WAIT)
#: Per-request state: ``rq.i[RQI.memory, r]``; the KV-transfer fields (``ki``, ``kf``) have one column when no
#: request of the configuration is transferred.
REQUEST_STATE_INT = ("memory", "chosen_stamp", "prompt_inst", "token_inst", "done")
REQUEST_KV_INT = ("flow_state", "flow_pos")
REQUEST_KV_FLOAT = ("kv_start", "kv_end", "flow_left", "flow_rate", "flow_t")
Requests = namedtuple("Requests", ["i", "ki", "kf"])
RQI = _index("RQI", REQUEST_STATE_INT)
RQK = _index("RQK", REQUEST_KV_INT)
RQF = _index("RQF", REQUEST_KV_FLOAT)
#: Per-instance scalars: the int64 and the float64 ones are the rows of two 2-D arrays (``InstRows``),
#: ``st.i[STI.memory, i]``, ``st.f[STF.busy_time, i]``: two arrays in the state tuple instead of thirty keep
#: the argument lists of the out-of-line handlers short (compile time).
INST_INT = (
    "memory", "sched_memory", "sched_pending_tokens", "pending_tokens", "batch_len", "batch_tokens",
    "n_prompts", "pending_len", "prompts_len", "blocked_len", "requests_len", "resident", "iter_n", "pause",
    "it_count", "iterations", "tokens_served", "sched_tag", "pending_off", "prompts_off", "blocked_off",
    "requests_off",
    "interactive",   # topologies: resident interactive requests
    "life", "spot_next", "owner", "region", "model",   # autoscaling: Lifecycle state, spot-pool link, endpoint...
)
INST_FLOAT = ("iter_d", "iter_end", "iter_start", "busy_time", "busy_start",
              "time_prompt", "time_token", "time_mixed",
              "since", "busy_mark",                                                   # autoscaling
              "serving_time", "starting_time", "draining_time", "spot_time")          # in Lifecycle order
InstRows = namedtuple("InstRows", ["i", "f"])
STI = _index("STI", INST_INT)
STF = _index("STF", INST_FLOAT)
#: Per-instance lists, rows of a 3-D array ``q[QU.pending, i, k]`` (``QUEUES``), and the scratch of batch selection.
QUEUES = ("batch", "left", "pending", "prompts", "blocked", "requests")
Queues = namedtuple("Queues", ["q", "sel", "cand"])
QU = _index("QU", QUEUES)
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
CTR_FEED_N = 11      # endpoints with feeds decided in this event (serving_nb: ``EPR.feed_order`` / ``EPR.feeds``)
CTR_RNG = 12          # autoscaling: the donation stream's splitmix64 state
CTR_SLOG_LEN = 13     # rows used in the scaling log
CTR_TIMER_TICKS = 14  # autoscaling: timer evaluations so far
CTR_PLAN_TICKS = 15   # plans: planning ticks so far
N_CTR = 16


@internal(nrt=True)
def new_tasks_nb(token_size, waits, times):
    """``left``: iterations a task still has to run (1 for a prompt, token_size - 1 for a decode); while
    the task is batched the up-to-date count is in its batch slot (``Queues.left``). The wait counts only with
    ``waits`` (Splitwise instances). ``times``: the configuration's request-time outputs (``REQUEST_FLOAT`` rows),
    the phases' first starts and ends set to NaN (never happened) here."""
    m = 2 * token_size.shape[0]
    for k in (RF.prompt_start, RF.prompt_end, RF.token_start, RF.token_end):
        times[k] = np.nan
    tk = Tasks(np.zeros((len(TASK_INT), m), np.int64), np.zeros((len(TASK_FLAG), m), np.int8), times,
               np.zeros((len(TASK_WAIT), m if waits else 1), np.int64))
    tk.i[TKI.inst] = -1
    tk.i[TKI.left] = 1
    for r in range(token_size.shape[0]):
        tk.i[TKI.left, 2 * r + 1] = token_size[r] - 1
    return tk


@internal(nrt=True)
def new_requests_nb(n_requests, n_kv):
    """Per-request state; the KV-transfer fields have ``n_kv`` columns (1 when no request is transferred)."""
    rq = Requests(np.zeros((len(REQUEST_STATE_INT), n_requests), np.int64),
                  np.zeros((len(REQUEST_KV_INT), n_kv), np.int64), np.zeros((len(REQUEST_KV_FLOAT), n_kv)))
    for k in (RQI.chosen_stamp, RQI.prompt_inst, RQI.token_inst):
        rq.i[k] = -1
    rq.ki[RQK.flow_pos] = -1
    rq.kf[RQF.kv_start] = np.nan
    rq.kf[RQF.kv_end] = np.nan
    return rq


@internal(nrt=True)
def new_inst_nb(cluster, cap):
    n = cluster.i.shape[1]
    a = InstRows(np.zeros((len(INST_INT), n), np.int64), np.zeros((len(INST_FLOAT), n), np.float64))
    for k in range(n):
        a.i[STI.memory, k] = cluster.i[CI.weights, k]
        a.i[STI.sched_memory, k] = cluster.i[CI.weights, k]
    for k in (STI.pending_off, STI.prompts_off, STI.blocked_off, STI.requests_off):
        a.i[k] = cap // 2
    return a


@internal(nrt=True)
def new_queues_nb(n_instances, cap):
    return Queues(np.empty((len(QUEUES), n_instances, cap), np.int64), np.empty(cap, np.int64),
                  np.empty((2, cap), np.int64))


@internal(nrt=True)
def _recenter_nb(src, dst, off, lens, i):
    n = lens[i]
    o = (dst.shape[1] - n) // 2
    for k in range(n):
        dst[i, o + k] = src[i, off[i] + k]
    off[i] = o


@internal(nrt=True)
def grow_queues_nb(q, inst, cap):
    """A copy of ``q`` with room for ``cap`` entries per instance (double-ended lists re-centred)."""
    n = q.q.shape[1]
    g = new_queues_nb(n, cap)
    for i in range(n):
        b = inst.i[STI.batch_len, i]
        for k in range(b):
            g.q[QU.batch, i, k] = q.q[QU.batch, i, k]
            g.q[QU.left, i, k] = q.q[QU.left, i, k]
        for k, off, lens in ((QU.pending, STI.pending_off, STI.pending_len),
                             (QU.prompts, STI.prompts_off, STI.prompts_len),
                             (QU.blocked, STI.blocked_off, STI.blocked_len),
                             (QU.requests, STI.requests_off, STI.requests_len)):
            _recenter_nb(q.q[k], g.q[k], inst.i[off], inst.i[lens], i)
    return g


@internal(nrt=True)
def new_pools_nb(cluster):
    """Pool 0 holds every instance, pools 1/2 the prompt/token-tagged ones, in instance-id order."""
    n = cluster.i.shape[1]
    lists = np.full((4, n), -1, np.int64)
    lens = np.zeros(4, np.int64)
    for i in range(n):
        lists[0, lens[0]] = i
        lens[0] += 1
        t = cluster.i[CI.tag, i]
        if t == 1 or t == 2:
            lists[t, lens[t]] = i
            lens[t] += 1
    return Pools(lists, lens)

#: Shared-network state: transfers in flight between servers (dense list) and per-server counts.
Net = namedtuple("Net", ["active", "n_active", "egress", "ingress"])

#: Everything one configuration's event handlers read or write, passed as one argument.
Sim = namedtuple("Sim", ["wl", "prm", "cl", "perf", "tk", "rq", "st", "qu", "pools", "ctr",
                         "iheap", "fheap", "eheap", "log", "clock", "net", "topo", "sv", "sc"])


@internal(inline=True)
def topo_nb(b, section, k):
    """Entry k of a section of a packed topology (``kernels.layout.TOPOLOGY``): section j is ``b[b[j]:b[j + 1]]``."""
    return b[b[section] + k]


@internal(nrt=True)
def new_serve_nb(topo, cluster, n_requests, topology, delayed):
    """Serving state; per-request columns only with a topology (one column otherwise: never indexed), the rows
    of the routed-request FIFO (``R_ROUTED``, ``T_ROUTED``, the last ones) only with a routing delay."""
    n_ep = topo[TOPO.ep_region + 1] - topo[TOPO.ep_region]
    ep = np.zeros((len(ENDPOINT_ROWS), n_ep + 1), np.int64)
    for i in range(cluster.i.shape[1]):
        e = cluster.i[CI.endpoint, i]
        ep[EP_CAP, e] += cluster.i[CI.max_memory, i] - cluster.i[CI.weights, i]
        ep[EPR.serving, e] += 1
        ep[EPR.weights, e] = cluster.i[CI.weights, i]
        ep[EPR.kv_per_token, e] = cluster.i[CI.kv_per_token, i]
        ep[EPR.perf, e] = cluster.i[CI.perf, i]
    for e in range(n_ep):
        ep[EPR.model, e] = topo_nb(topo, TOPO.ep_model, e)
    slots = 0
    for e in range(n_ep):
        ep[EPR.group_base, e] = slots
        ep[EPR.groups, e] = topo_nb(topo, TOPO.ep_groups, e)
        reg = topo_nb(topo, TOPO.ep_region, e)
        total = 0   # the region's instances: an endpoint never has more than total / 2 groups (of 2 or 3)
        for f in range(n_ep):
            if topo_nb(topo, TOPO.ep_region, f) == reg:
                total += ep[EPR.serving, f]
        slots += max(total // 2 + 1, ep[EPR.groups, e])
    n = n_requests if topology else 1
    nq = max(2 * (topo[TOPO.endpoint_of + 1] - topo[TOPO.endpoint_of]), 1)
    fifo = 1 if delayed else 0
    return Serve(ep, np.full((2, nq), -1, np.int64), np.full((2 + fifo, n), -1, np.int64),
                 np.full((1 + fifo, n), np.nan)), slots


@internal(nrt=True)
def new_scale_nb(topo, sv, slots, n_regions, n_models, scaling, plan):
    """Autoscaling state: the topology's replica groups (group slots per endpoint: ``new_serve_nb``), empty spot
    pools, no lock-outs; the scaling log only with scaling."""
    n_ep = sv.ep.shape[1] - 1
    widest = 3   # groups of up to 3 with scaling
    for g in range(topo[TOPO.group_instances + 1] - topo[TOPO.group_instances]):
        widest = max(widest, topo_nb(topo, TOPO.group_instances, g))
    gm = np.zeros((max(slots, 1), 1 + widest), np.int64)
    for e in range(n_ep):
        g0 = topo_nb(topo, TOPO.ep_first_group, e)
        for k in range(sv.ep[EPR.groups, e]):
            a = topo_nb(topo, TOPO.group_first_instance, g0 + k)
            size = topo_nb(topo, TOPO.group_instances, g0 + k)
            slot = sv.ep[EPR.group_base, e] + k
            gm[slot, 0] = size
            for j in range(size):
                gm[slot, 1 + j] = a + j
    n_rm = max(n_regions * n_models, 1)
    width = max(n_rm, n_ep + 1, n_regions, 1)
    si = np.full((len(SCI), n_rm), -1, np.int64)
    si[SCI.spot_n] = 0
    f = np.zeros((len(SCF), width))
    f[SCF.last_eval] = -np.inf
    f[SCF.window_second] = -1
    return Scale(gm, si, f, np.empty((64 if scaling else 1, len(SCALING_LOG))), plan)


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
        return sim.cl.i[CI.kv_per_token, i] * (sim.wl.prompt_size[r] + 1)
    return sim.cl.i[CI.kv_per_token, i] * (sim.wl.token_size[r] - 1)


@internal()
def tokens_per_iteration_nb(sim, t):
    """Batch tokens a task costs: its whole prompt for a prompt task, 1 for a decode task."""
    if t & 1 == 0:
        return sim.wl.prompt_size[t >> 1]
    return 1
