"""The engine: pack one configuration into kernel arrays, run the kernel, unpack per-request and
per-instance results (``RunResult``)."""
from dataclasses import dataclass, replace

import numpy as np

from kernels.batch_nb import INST_FLOAT, INST_INT, PARAM_FLOAT, PARAM_INT, REQ_FLOAT, REQ_INT, simulate_batch_nb
from kernels.enums import InstanceType, Scheduler, Tag
from kernels.simulate_nb import N_LOG_COLUMNS, simulate_1d_nb
from kernels.state_nb import Params, Workload
from sweepsim.cluster import Placement, place_instances
from sweepsim.config import CO_LOCATED, RunConfig
from sweepsim.errors import InputError
from sweepsim.hardware import get_model
from sweepsim.jit_notice import compile_notice
from sweepsim.perf_model import MIXED_BATCH_FACTOR, build_tables
from sweepsim.trace import Trace

GIB = 1024 ** 3
#: KV link bandwidth per scheduler (GiB/s), as SplitwiseSim's scheduler configs ("overlap" = x10).
TRANSFER_BANDWIDTH_GIB = {
    "kv_round_robin": 200.0, "kv_round_robin_ethernet": 12.5, "kv_jsq": 200.0, "kv_token_jsq": 2000.0,
    "overlap_kv_jsq": 2000.0, "overlap_kv_token_jsq": 2000.0, "mixed_pool": 200.0,
}
SCHEDULER_CODES = {
    "round_robin": Scheduler.ROUND_ROBIN, "random": Scheduler.RANDOM, "jsq": Scheduler.JSQ,
    "token_jsq": Scheduler.TOKEN_JSQ, "kv_round_robin": Scheduler.KV_ROUND_ROBIN,
    "kv_round_robin_ethernet": Scheduler.KV_ROUND_ROBIN, "kv_jsq": Scheduler.KV_JSQ,
    "overlap_kv_jsq": Scheduler.KV_JSQ, "kv_token_jsq": Scheduler.KV_TOKEN_JSQ,
    "overlap_kv_token_jsq": Scheduler.KV_TOKEN_JSQ, "mixed_pool": Scheduler.MIXED_POOL,
}
NETWORK_CODES = {"dedicated": 0, "shared": 1}
UNLIMITED_TOKENS = 2 ** 62
RETRY_DELAY_S = 1.0
PROMPT_MAX_PENDING_TOKENS = 8192


@dataclass
class RunResult:
    """Raw results of one configuration (times in seconds, memory in bytes)."""
    config: RunConfig
    trace: Trace
    placement: Placement
    # per request (trace order)
    completed: np.ndarray
    prompt_instance: np.ndarray
    token_instance: np.ndarray
    prompt_start: np.ndarray
    prompt_end: np.ndarray
    token_start: np.ndarray
    token_end: np.ndarray
    kv_start: np.ndarray
    kv_end: np.ndarray
    # per instance
    busy_time: np.ndarray
    iterations: np.ndarray
    tokens_served: np.ndarray
    time_prompt: np.ndarray
    time_token: np.ndarray
    time_mixed: np.ndarray
    iteration_log: np.ndarray
    end_clock: float
    final_memory: np.ndarray       # bytes in use per instance at the end (weights when all requests finished)
    rejected: np.ndarray | None = None   # per request: dropped before the run (oversized_requests = "reject")


def random_draws(seed: int, n: int) -> np.ndarray:
    """One uniform draw per request for the random scheduler (numpy PCG64 seeded by the config seed)."""
    return np.random.Generator(np.random.PCG64(seed)).random(n)


def kernel_params(cfg: RunConfig, debug: bool = False) -> Params:
    model = get_model(cfg.model, cfg.source)
    orca = cfg.start_state == "orca"
    bw = cfg.transfer_bandwidth_gib or TRANSFER_BANDWIDTH_GIB.get(cfg.scheduler, 200.0)
    return Params(InstanceType.ORCA if orca else InstanceType.SPLITWISE, SCHEDULER_CODES[cfg.scheduler],
                  cfg.instance.max_batch_size, UNLIMITED_TOKENS if orca else cfg.instance.max_batch_tokens,
                  cfg.instance.max_preemptions, model.kv_bytes_per_token, bw * GIB, RETRY_DELAY_S,
                  cfg.end_time, MIXED_BATCH_FACTOR, PROMPT_MAX_PENDING_TOKENS, bool(debug),
                  NETWORK_CODES[cfg.network])


def _result(cfg, trace, placement, req: dict, inst: dict, log, end_clock) -> RunResult:
    """Assemble a RunResult; a request with token_size 1 has its token stage equal to its prompt's end."""
    single = trace.token_size == 1
    for k in ("token_start", "token_end"):
        req[k][single] = req["prompt_end"][single]
    return RunResult(cfg, trace, placement, req["completed"].astype(bool), req["prompt_instance"],
                     req["token_instance"], req["prompt_start"], req["prompt_end"], req["token_start"],
                     req["token_end"], req["kv_start"], req["kv_end"], inst["busy_time"], inst["iterations"],
                     inst["tokens_served"], inst["time_prompt"], inst["time_token"], inst["time_mixed"], log,
                     float(end_clock), inst["final_memory"])


def oversized_requests(cfg: RunConfig, placement: Placement, trace: Trace) -> np.ndarray:
    """Mask of the requests that can never run on this cluster: their KV cache does not fit beside the model
    weights on an instance the scheduler may send them to, even with the instance empty. A request's KV is
    ``prompt_size + token_size`` tokens where it decodes (prompt: KV(prompt_size + 1), decode:
    KV(token_size - 1)) and ``prompt_size + 1`` tokens on a prompt-pool instance of a KV scheduler.
    Co-located schedulers and mixed_pool (whose pools change) may use any instance for both."""
    kv = get_model(cfg.model, cfg.source).kv_bytes_per_token
    room = (placement.max_memory - placement.weights) // kv          # KV tokens an empty instance holds
    big = 1 << 61                                                    # sizes beyond this never fit (no overflow)
    prompt = np.minimum(trace.prompt_size, big)
    total = prompt + np.minimum(trace.token_size, big)
    if cfg.scheduler in CO_LOCATED or cfg.scheduler == "mixed_pool":
        return total > room.min()
    prompt_room = room[placement.tag == Tag.PROMPT].min()
    token_room = room[placement.tag == Tag.TOKEN].min()
    single = trace.token_size == 1                                   # no decode: finishes where its prompt ran
    return np.where(single, prompt + 1 > prompt_room, (prompt + 1 > prompt_room) | (total > token_room))


def admitted(cfg: RunConfig, placement: Placement, trace: Trace) -> np.ndarray | None:
    """The requests that run (None: all of them). A request that can never fit is an error naming it, or
    with ``oversized_requests = "reject"`` is dropped before the run and reported as rejected."""
    bad = oversized_requests(cfg, placement, trace)
    if not bad.any():
        return None
    if cfg.oversized_requests == "reject":
        return ~bad
    k = int(np.flatnonzero(bad)[0])
    kv = get_model(cfg.model, cfg.source).kv_bytes_per_token
    room = int(((placement.max_memory - placement.weights) // kv).min())
    raise InputError(trace.path, "prompt_size", f"{int(bad.sum())} request(s) can never fit in an instance's KV "
                     f"cache, first request_id {int(trace.request_id[k])} (prompt {int(trace.prompt_size[k])} + output "
                     f"{int(trace.token_size[k])} tokens; the smallest instance of {cfg.model} holds {room} tokens "
                     "besides the weights); drop them with oversized_requests = \"reject\" (--set "
                     "oversized_requests=reject)")


def check_runnable(cfg: RunConfig, trace: Trace) -> Placement:
    """Everything that can fail before a configuration's kernel runs (placement, performance data, requests
    that can never fit), raising ``InputError``; returns the placement."""
    placement = place_instances(cfg)
    build_tables(cfg.performance_model, placement.perf_keys, cfg.source)
    admitted(cfg, placement, trace)
    return placement


def _expand(res: RunResult, trace: Trace, keep: np.ndarray) -> RunResult:
    """Results of a run on the admitted sub-trace, back in full trace order: rejected requests have
    completed = False, instance -1 and NaN times."""
    out = {}
    for f in ("completed", "prompt_instance", "token_instance", "prompt_start", "prompt_end", "token_start",
              "token_end", "kv_start", "kv_end"):
        a = getattr(res, f)
        full = np.full(len(trace), False if a.dtype == bool else (-1 if a.dtype.kind == "i" else np.nan), a.dtype)
        full[keep] = a
        out[f] = full
    return replace(res, trace=trace, rejected=~keep, **out)


def _subtrace(trace: Trace, keep: np.ndarray) -> Trace:
    return Trace(trace.path, *(np.ascontiguousarray(a[keep]) for a in (
        trace.request_id, trace.application_id, trace.arrival, trace.prompt_size, trace.token_size)))


def run(cfg: RunConfig, trace: Trace, debug: bool = False) -> RunResult:
    """Simulate one configuration on a trace (requests that can never fit: see ``admitted``)."""
    placement = place_instances(cfg)
    perf = build_tables(cfg.performance_model, placement.perf_keys, cfg.source)
    keep = admitted(cfg, placement, trace)
    if keep is not None:
        draws = random_draws(cfg.seed, len(trace))[keep]   # each request keeps its own draw
        res = _run(cfg, _subtrace(trace, keep), placement, perf, debug, draws)
        return _expand(res, trace, keep)
    return _run(cfg, trace, placement, perf, debug, random_draws(cfg.seed, len(trace)))


def _run(cfg, trace, placement, perf, debug, draws) -> RunResult:
    with compile_notice("engine"):
        wl = Workload(trace.arrival, trace.prompt_size, trace.token_size, draws)
        tk, rq, st, log, end_clock = simulate_1d_nb(wl, kernel_params(cfg, debug),
                                                    placement.kernel_cluster(), perf)
    req = {"prompt_start": tk.first_start[0::2].copy(), "prompt_end": tk.end[0::2].copy(),
           "token_start": tk.first_start[1::2].copy(), "token_end": tk.end[1::2].copy(),
           "kv_start": rq.kv_start.copy(), "kv_end": rq.kv_end.copy(), "completed": rq.done,
           "prompt_instance": rq.prompt_inst.copy(), "token_instance": rq.token_inst.copy()}
    inst = {"busy_time": st.busy_time.copy(), "time_prompt": st.time_prompt.copy(),
            "time_token": st.time_token.copy(), "time_mixed": st.time_mixed.copy(),
            "iterations": st.iterations.copy(), "tokens_served": st.tokens_served.copy(),
            "final_memory": st.memory.copy()}
    return _result(cfg, trace, placement, req, inst, log.copy(), end_clock)


def run_batch(cfgs: list[RunConfig], trace: Trace) -> list[RunResult]:
    """Simulate several configurations on one trace in a single parallel kernel call
    (``kernels.batch_nb``); results are identical to separate ``run`` calls."""
    n = len(trace)
    placements = [place_instances(c) for c in cfgs]
    keeps = [admitted(c, p, trace) for c, p in zip(cfgs, placements)]
    if any(k is not None for k in keeps):  # rare: runs with rejected requests run alone on their sub-trace
        plain = [c for c, k in enumerate(keeps) if k is None]
        out = dict(zip(plain, run_batch([cfgs[c] for c in plain], trace) if plain else []))
        out.update({c: run(cfgs[c], trace) for c, k in enumerate(keeps) if k is not None})
        return [out[c] for c in range(len(cfgs))]
    perf_model = cfgs[0].performance_model
    if any(c.performance_model != perf_model for c in cfgs):
        raise ValueError("run_batch: configurations of one batch must share the performance model")
    keys = []
    for p in placements:
        keys += [k for k in p.perf_keys if k not in keys]
    perf = build_tables(perf_model, keys, cfgs[0].source)
    n_cfg = len(cfgs)
    prm_i = np.zeros((n_cfg, len(PARAM_INT)), np.int64)
    prm_f = np.zeros((n_cfg, len(PARAM_FLOAT)), np.float64)
    uniform = np.zeros((n_cfg, n))
    for c, cfg in enumerate(cfgs):
        prm = kernel_params(cfg)._asdict()
        prm_i[c] = [prm[k] for k in PARAM_INT]
        prm_f[c] = [prm[k] for k in PARAM_FLOAT]
        if cfg.scheduler == "random":
            uniform[c] = random_draws(cfg.seed, n)
    inst_off = np.zeros(n_cfg + 1, np.int64)
    inst_off[1:] = np.cumsum([len(p.sku) for p in placements])
    cat = lambda f: np.ascontiguousarray(np.concatenate([f(p) for p in placements]), np.int64)  # noqa: E731
    perf_row = cat(lambda p: np.array([keys.index(p.perf_keys[r]) for r in p.perf_row], np.int64))
    bandwidths = [p.server_bandwidths() for p in placements]
    srv_off = np.zeros(n_cfg + 1, np.int64)
    srv_off[1:] = np.cumsum([len(nic) for nic, _ in bandwidths])
    nic_bw = np.ascontiguousarray(np.concatenate([nic for nic, _ in bandwidths]))
    nvlink_bw = np.ascontiguousarray(np.concatenate([nv for _, nv in bandwidths]))
    req_f = np.empty((n_cfg, len(REQ_FLOAT), n))
    req_i = np.empty((n_cfg, len(REQ_INT), n), np.int64)
    inst_f = np.empty((inst_off[-1], len(INST_FLOAT)))
    inst_i = np.empty((inst_off[-1], len(INST_INT)), np.int64)
    end_clock = np.empty(n_cfg)
    with compile_notice("sweep"):
        simulate_batch_nb(trace.arrival, trace.prompt_size, trace.token_size, uniform, prm_i, prm_f, inst_off,
                          cat(lambda p: p.max_memory), cat(lambda p: p.weights), cat(lambda p: p.tag), perf_row,
                          cat(lambda p: p.server), srv_off, nic_bw, nvlink_bw, perf,
                          req_f, req_i, inst_f, inst_i, end_clock)
    out = []
    for c, (cfg, p) in enumerate(zip(cfgs, placements)):
        req = {k: req_f[c, j].copy() for j, k in enumerate(REQ_FLOAT)}
        req.update({k: req_i[c, j].copy() for j, k in enumerate(REQ_INT)})
        a, b = inst_off[c], inst_off[c + 1]
        inst = {k: inst_f[a:b, j].copy() for j, k in enumerate(INST_FLOAT)}
        inst.update({k: inst_i[a:b, j].copy() for j, k in enumerate(INST_INT)})
        out.append(_result(cfg, trace, p, req, inst, np.empty((0, N_LOG_COLUMNS)), end_clock[c]))
    return out
