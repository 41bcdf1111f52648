"""The engine: pack one configuration into kernel arrays, run the kernel, unpack per-request and
per-instance results (``RunResult``)."""
from dataclasses import dataclass

import numpy as np

from kernels.enums import InstanceType, Scheduler
from kernels.simulate_nb import simulate_1d_nb
from kernels.state_nb import Params, Workload
from sweepsim.cluster import Placement, place_instances
from sweepsim.config import RunConfig
from sweepsim.hardware import get_model
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
                  cfg.end_time, MIXED_BATCH_FACTOR, PROMPT_MAX_PENDING_TOKENS, bool(debug))


def workload(trace: Trace, seed: int) -> Workload:
    return Workload(trace.arrival, trace.prompt_size, trace.token_size, random_draws(seed, len(trace)))


def run(cfg: RunConfig, trace: Trace, debug: bool = False) -> RunResult:
    """Simulate one configuration on a trace."""
    placement = place_instances(cfg)
    perf = build_tables(cfg.performance_model, placement.perf_keys, cfg.source)
    tk, rq, st, log, end_clock = simulate_1d_nb(workload(trace, cfg.seed), kernel_params(cfg, debug),
                                                placement.kernel_cluster(), perf)
    prompt_end = tk.end[0::2].copy()
    token_start = tk.first_start[1::2].copy()
    token_end = tk.end[1::2].copy()
    single = trace.token_size == 1
    token_start[single] = prompt_end[single]
    token_end[single] = prompt_end[single]
    return RunResult(cfg, trace, placement, rq.done.astype(bool), rq.prompt_inst.copy(), rq.token_inst.copy(),
                     tk.first_start[0::2].copy(), prompt_end, token_start, token_end, rq.kv_start.copy(),
                     rq.kv_end.copy(), st.busy_time.copy(), st.iterations.copy(), st.tokens_served.copy(),
                     st.time_prompt.copy(), st.time_token.copy(), st.time_mixed.copy(), log.copy(),
                     float(end_clock), st.memory.copy())
