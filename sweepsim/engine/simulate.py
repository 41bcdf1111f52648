"""The engine: configurations -> packed kernel inputs -> one kernel call -> ``RunResult`` per configuration.

``simulate(cfgs, trace)`` is the only path: ``pack`` builds the kernel's ``Inputs`` (parameters by the names of
``kernels.layout``, instances and servers flattened with offsets), ``simulate_one_nb`` fills the ``Outputs`` of
each configuration (many at once on Numba's number of threads: the kernel releases the GIL), and ``unpack`` reads
them back by name. ``run`` and ``run_batch`` are its one- and many-configuration forms.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numba
import numpy as np

from kernels.batch_nb import simulate_one_nb
from kernels.enums import EventOrder, InstanceType, Tag
from kernels.layout import INSTANCE_FLOAT, INSTANCE_IN, INSTANCE_INT, ITERATION_LOG, PARAM_FLOAT, PARAM_INT, \
    REQUEST_FLOAT, REQUEST_INT, SERVER_IN
from kernels.state_nb import Inputs, Outputs, ServingInputs
from sweepsim.engine.placement import Placement, place_instances
from sweepsim.config.run import RunConfig
from sweepsim.errors import InputError
from sweepsim.config.catalog import get_model
from sweepsim.engine.jit_notice import compile_notice
from sweepsim.engine.performance import MIXED_BATCH_FACTOR, build_tables, check_positive_times
from sweepsim.config.schedulers import SCHEDULERS
from sweepsim.engine.serving import request_room, serving_inputs, serving_params
from sweepsim.planning.apply import plan_inputs
from sweepsim.workload.trace import Trace

GIB = 1024 ** 3
NETWORK_CODES = {"dedicated": 0, "shared": 1}
EVENT_ORDER_CODES = {"reference": EventOrder.REFERENCE, "by_kind": EventOrder.BY_KIND}
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
    fed_time: np.ndarray | None = None   # topology, per request: when it entered global routing (NaN: never)
    endpoint: np.ndarray | None = None   # topology, per request: its endpoint (-1: never routed)
    # per instance: seconds in each lifecycle state (autoscaling; serving the whole run otherwise)
    serving_time: np.ndarray | None = None
    starting_time: np.ndarray | None = None
    draining_time: np.ndarray | None = None
    spot_time: np.ndarray | None = None
    scaling_log: np.ndarray | None = None     # autoscaling: one row per move (kernels.layout.SCALING_LOG)
    endpoint_time: np.ndarray | None = None   # topology: (ENDPOINT_TIME rows, endpoints) [s]
    region_spot_time: np.ndarray | None = None   # topology: spot instance-seconds per region


def random_draws(seed: int, n: int) -> np.ndarray:
    """One uniform draw per request for the random scheduler (numpy PCG64 seeded by the config seed)."""
    return np.random.Generator(np.random.PCG64(seed)).random(n)


def kernel_params(cfg: RunConfig, debug: bool = False) -> dict:
    """The configuration's kernel parameters by name (every name of ``PARAM_INT`` and ``PARAM_FLOAT``)."""
    orca = cfg.start_state == "orca"
    sched = SCHEDULERS[cfg.scheduler]
    link_gib = cfg.transfer_bandwidth_gib or sched.link_gib or 200.0
    return {"instance_type": InstanceType.ORCA if orca else InstanceType.SPLITWISE, "scheduler": sched.code,
            "co_located": int(sched.co_located), "max_batch_size": cfg.instance.max_batch_size,
            "max_batch_tokens": UNLIMITED_TOKENS if orca else cfg.instance.max_batch_tokens,
            "max_preemptions": cfg.instance.max_preemptions,
            "kv_bytes_per_token": get_model(cfg.model, cfg.source).kv_bytes_per_token,
            "prompt_max_pending_tokens": PROMPT_MAX_PENDING_TOKENS, "debug": int(debug),
            "network": NETWORK_CODES[cfg.network], "event_order": EVENT_ORDER_CODES[cfg.event_order],
            "transfer_bandwidth": link_gib * GIB,
            "retry_delay": RETRY_DELAY_S, "end_time": cfg.end_time, "mixed_factor": MIXED_BATCH_FACTOR,
            "iteration_overhead": cfg.performance_model.iteration_overhead,
            **serving_params(cfg)}

def kv_room_tokens(cfg: RunConfig, placement: Placement) -> np.ndarray:
    """KV tokens each instance holds beside the model weights when empty (in its own model's KV bytes)."""
    return (placement.max_memory - placement.weights) // placement.kv_per_token


def oversized_requests(cfg: RunConfig, placement: Placement, trace: Trace) -> np.ndarray:
    """Mask of the requests that can never run on this cluster: their KV cache does not fit beside the model
    weights on an instance the scheduler may send them to, even with the instance empty. A request's KV is
    ``prompt_size + token_size`` tokens where it decodes (prompt: KV(prompt_size + 1), decode:
    KV(token_size - 1)) and ``prompt_size + 1`` tokens on a prompt-pool instance of a KV scheduler.
    Co-located schedulers and mixed_pool (whose pools change) may use any instance for both."""
    room = kv_room_tokens(cfg, placement)
    big = 1 << 61                                                    # sizes beyond this never fit (no overflow)
    prompt = np.minimum(trace.prompt_size, big)
    total = prompt + np.minimum(trace.token_size, big)
    if cfg.topology is not None:   # the smallest instance of any endpoint its routing may choose
        return total > request_room(cfg, placement, trace, room)
    if SCHEDULERS[cfg.scheduler].co_located or cfg.scheduler == "mixed_pool":
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
    room = int(kv_room_tokens(cfg, placement).min())
    where = f"the smallest instance of {cfg.model} holds {room} tokens"
    if cfg.topology is not None:
        room = int(request_room(cfg, placement, trace, kv_room_tokens(cfg, placement))[k])
        where = f"the smallest instance its routing may choose holds {room} tokens"
    raise InputError(trace.path, "prompt_size", f"{int(bad.sum())} request(s) can never fit in an instance's KV "
                     f"cache, first request_id {int(trace.request_id[k])} (prompt {int(trace.prompt_size[k])} + output "
                     f"{int(trace.token_size[k])} tokens; {where} besides the weights); drop them with "
                     "oversized_requests = \"reject\" (--set oversized_requests=reject)")


def largest_batch_tokens(cfg: RunConfig, placement: Placement, trace: Trace) -> int:
    """An upper bound of the batch tokens one iteration of this configuration can have: the prompts of a batch
    hold their KV cache, so they fit in an instance's memory beside the weights; ORCA batches up to
    ``max_batch_size`` whole prompts, Splitwise batches stay in the token budget except that the first task is
    always admitted; each decode adds one token."""
    biggest = int(trace.prompt_size.max()) + 1 if len(trace) else 1
    mbs = cfg.instance.max_batch_size
    room = int(kv_room_tokens(cfg, placement).max())
    prompts = mbs * biggest if cfg.start_state == "orca" else max(cfg.instance.max_batch_tokens, biggest)
    return min(prompts, room) + mbs


def prepare(cfg: RunConfig, trace: Trace) -> tuple[Placement, np.ndarray | None]:
    """Everything that can fail before a configuration's kernel runs (placement, performance data and its
    times over the batch sizes the configuration can form, requests that can never fit), raising
    ``InputError``; returns the placement and the admitted requests (``admitted``)."""
    placement = place_instances(cfg)
    build_tables(cfg.performance_model, placement.perf_keys, cfg.source)
    if cfg.topology is None:
        check_positive_times(cfg.performance_model, placement.perf_keys, largest_batch_tokens(cfg, placement, trace),
                             cfg.source)
    else:  # per (model, GPU, TP): the batches its own instances can form (ORCA, max_batch_size 512)
        biggest = int(trace.prompt_size.max()) + 1 if len(trace) else 1
        mbs = cfg.instance.max_batch_size
        room = kv_room_tokens(cfg, placement)
        for j, key in enumerate(placement.perf_keys):
            largest = min(mbs * biggest, int(room[placement.perf_row == j].max())) + mbs
            check_positive_times(cfg.performance_model, [key], largest, cfg.source)
    return placement, admitted(cfg, placement, trace)


def check_runnable(cfg: RunConfig, trace: Trace) -> Placement:
    """``prepare``'s checks alone; returns the placement."""
    return prepare(cfg, trace)[0]


def _expand(res: RunResult, trace: Trace, keep: np.ndarray) -> RunResult:
    """Results of a run on the admitted sub-trace, back in full trace order: rejected requests have
    completed = False, instance -1 and NaN times."""
    out = {}
    for f in ("completed", "prompt_instance", "token_instance", "prompt_start", "prompt_end", "token_start",
              "token_end", "kv_start", "kv_end", "fed_time", "endpoint"):
        a = getattr(res, f)
        full = np.full(len(trace), False if a.dtype == bool else (-1 if a.dtype.kind == "i" else np.nan), a.dtype)
        full[keep] = a
        out[f] = full
    return replace(res, trace=trace, rejected=~keep, **out)


def _after_history(trace: Trace, end: float) -> Trace:
    """The requests arriving at or after ``end`` (a suffix: arrivals are sorted; views, not copies), with times
    counted from ``end`` (so the run's durations, costs and GPU-hours count the simulated period alone)."""
    part = _subtrace(trace, slice(int(np.searchsorted(trace.arrival, end, side="left")), None))
    return replace(part, arrival=part.arrival - end)


def _subtrace(trace: Trace, keep: np.ndarray | slice) -> Trace:
    """The requests ``keep`` selects (a mask, or a slice: views), with their annotations and serving columns."""
    sv = getattr(trace, "serving", None)
    return replace(trace, **{k: np.ascontiguousarray(getattr(trace, k)[keep]) for k in (
        "request_id", "application_id", "arrival", "prompt_size", "token_size")},
        annotations={k: v[keep] for k, v in trace.annotations.items()},
        serving=sv.take(keep) if sv is not None else None)


def run(cfg: RunConfig, trace: Trace, debug: bool = False) -> RunResult:
    """Simulate one configuration on a trace (with ``debug``, also its iteration log)."""
    return simulate([cfg], trace, debug)[0]


def run_batch(cfgs: list[RunConfig], trace: Trace) -> list[RunResult]:
    """Simulate several configurations on one trace, at once on Numba's number of threads; results are identical to
    separate ``run`` calls."""
    return simulate(cfgs, trace)


def history_end(cfg: RunConfig) -> float:
    """Where a topology run with ``planning.train_until`` starts: arrivals before it are the forecasts' history,
    not simulated, and the run's times count from it (0: the whole trace is simulated)."""
    t = cfg.topology
    return t.planning.train_until if t is not None else 0.0


def simulate(cfgs: list[RunConfig], trace: Trace, debug: bool = False) -> list[RunResult]:
    """The results of every configuration, in order. A configuration with a planning history
    (``history_end``) runs on the arrivals from its end, with times counted from there (its result's trace is
    that part, shifted); configurations with
    requests that can never fit (``admitted``) run on their own sub-trace; the others share one kernel call."""
    if not cfgs:
        return []
    ends = [history_end(c) for c in cfgs]
    if any(ends):
        out: dict[int, RunResult] = {}
        for end in dict.fromkeys(ends):
            idx = [c for c, e in enumerate(ends) if e == end]
            part = trace if end == 0 else _after_history(trace, end)
            if len(part.arrival) == 0:
                raise InputError(trace.path, "planning.train_until", f"no request arrives after {end:g} s: the "
                                 f"trace is all history (its last arrival: {float(trace.arrival.max()):g} s)")
            out.update(zip(idx, _simulate([cfgs[c] for c in idx], part, debug, history=trace)))
        return [out[c] for c in range(len(cfgs))]
    return _simulate(cfgs, trace, debug, history=trace)


def _simulate(cfgs, trace, debug, history) -> list[RunResult]:
    placements, keeps = zip(*(prepare(c, trace) for c in cfgs))
    out: dict[int, RunResult] = {}
    plain = [c for c, k in enumerate(keeps) if k is None]
    if plain:
        res = _call([cfgs[c] for c in plain], [placements[c] for c in plain], trace,
                    [_draws(cfgs[c], len(trace)) for c in plain], debug, history)
        out.update(zip(plain, res))
    for c, keep in enumerate(keeps):
        if keep is not None:  # rare; each request keeps the draw of its position in the full trace
            sub = _subtrace(trace, keep)
            draws = _draws(cfgs[c], len(trace))
            (res,) = _call([cfgs[c]], [placements[c]], sub, [draws[keep] if draws is not None else None], debug,
                           history)
            out[c] = _expand(res, trace, keep)
    return [out[c] for c in range(len(cfgs))]


def _draws(cfg: RunConfig, n: int) -> np.ndarray | None:
    """The random scheduler's draws of a configuration's requests (None for the other schedulers)."""
    return random_draws(cfg.seed, n) if cfg.scheduler == "random" else None


def _call(cfgs, placements, trace, draws, debug, history=None) -> list[RunResult]:
    inp, perf = pack(cfgs, placements, trace, draws, debug, history)
    n_inst = int(inp.inst_off[-1])
    out = Outputs(np.empty((len(cfgs), len(REQUEST_FLOAT), len(trace))),
                  np.empty((len(cfgs), len(REQUEST_INT), len(trace)), np.int32),   # flags and instance ids
                  np.empty((n_inst, len(INSTANCE_FLOAT))), np.empty((n_inst, len(INSTANCE_INT)), np.int64),
                  np.empty(len(cfgs)))
    workers = min(numba.get_num_threads(), len(cfgs))
    with compile_notice("serving engine" if isinstance(inp, ServingInputs) else "engine"):   # kernels.variants
        if workers == 1:
            logs = [simulate_one_nb(c, inp, perf, out) for c in range(len(cfgs))]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:  # the kernel releases the GIL
                logs = list(pool.map(lambda c: simulate_one_nb(c, inp, perf, out), range(len(cfgs))))
    results = unpack(cfgs, placements, trace, inp, out,
                     logs[0][0] if debug else np.empty((0, len(ITERATION_LOG))))
    for res, (_, slog, ep_time, spot) in zip(results, logs):
        if res.config.topology is not None:
            res.scaling_log, res.endpoint_time, res.region_spot_time = slog, ep_time, spot
    return results


def pack(cfgs, placements, trace: Trace, draws, debug: bool = False, history: Trace | None = None):
    """The kernel inputs of configurations sharing a trace and a performance model: parameters by name, each
    configuration's instances and servers flattened with offsets, its plans (``Inputs``; ``history``: the whole
    trace the plans' forecasts may be fitted on, default ``trace``), and one set of performance tables
    (``PerfTables``)."""
    perf_model = cfgs[0].performance_model
    if any(c.performance_model != perf_model for c in cfgs):
        raise ValueError("configurations of one kernel call must share the performance model")
    keys = list(dict.fromkeys(k for p in placements for k in p.perf_keys))
    perf = build_tables(perf_model, keys, cfgs[0].source)
    req, blobs, n_orders = serving_inputs(cfgs, placements, trace)
    params = [kernel_params(c, debug) | {"n_orders": n_orders} for c in cfgs]
    plans = []
    for c, (cfg, p) in enumerate(zip(cfgs, placements)):   # hourly plans and forecasts (sweepsim.planning)
        block, extra = plan_inputs(cfg, p, trace, history if history is not None else trace)
        plans.append(block.ravel())
        params[c].update(extra)
    prm_i = np.array([[p[k] for k in PARAM_INT] for p in params], np.int64)
    prm_f = np.array([[p[k] for k in PARAM_FLOAT] for p in params], np.float64)
    # one draw per request for the random scheduler (one unused element per configuration otherwise)
    uniform = np.zeros((len(cfgs), len(trace) if any(c.scheduler == "random" for c in cfgs) else 1))
    for c, cfg in enumerate(cfgs):
        if cfg.scheduler == "random":
            uniform[c] = draws[c]
    rows = {"perf": lambda p: np.array([keys.index(p.perf_keys[r]) for r in p.perf_row], np.int64)}
    inst_in = np.array([np.concatenate([rows.get(k, lambda p: getattr(p, k))(p) for p in placements])
                        for k in INSTANCE_IN], np.int64)     # (len(INSTANCE_IN), instances of every configuration)
    bandwidths = [dict(zip(SERVER_IN, p.server_bandwidths())) for p in placements]
    srv_in = np.array([np.concatenate([b[k] for b in bandwidths]) for k in SERVER_IN], np.float64)
    # the serving kernel only when a configuration has a topology; the plain one is compiled without the serving
    # and autoscaling code (kernels.variants)
    kind = ServingInputs if any(c.topology is not None for c in cfgs) else Inputs
    return kind(trace.arrival, trace.prompt_size, trace.token_size, uniform, prm_i, prm_f,
                _offsets([len(p.sku) for p in placements]), inst_in,
                _offsets([len(b["nic_bw"]) for b in bandwidths]), srv_in, *req,
                np.ascontiguousarray(np.concatenate(blobs), np.int64), _offsets([len(b) for b in blobs]),
                np.ascontiguousarray(np.concatenate(plans), np.float64), _offsets([len(b) for b in plans])), perf


def _offsets(sizes) -> np.ndarray:
    off = np.zeros(len(sizes) + 1, np.int64)
    off[1:] = np.cumsum(sizes)
    return off


def unpack(cfgs, placements, trace: Trace, inp: Inputs, out: Outputs, log) -> list[RunResult]:
    """One RunResult per configuration from the kernel outputs (by the names of ``kernels.layout``); a
    request with token_size 1 has its token stage equal to its prompt's end."""
    single = trace.token_size == 1
    results = []
    for c, (cfg, p) in enumerate(zip(cfgs, placements)):
        req = {k: out.req_f[c, j] for j, k in enumerate(REQUEST_FLOAT)}   # views: no second copy of a large run
        req.update({k: out.req_i[c, j].astype(np.int64) for j, k in enumerate(REQUEST_INT)})
        for k in ("token_start", "token_end"):
            req[k][single] = req["prompt_end"][single]
        a, b = inp.inst_off[c], inp.inst_off[c + 1]
        inst = {k: out.inst_f[a:b, j].copy() for j, k in enumerate(INSTANCE_FLOAT)}
        inst.update({k: out.inst_i[a:b, j].copy() for j, k in enumerate(INSTANCE_INT)})
        req["completed"] = req["completed"].astype(bool)
        results.append(RunResult(cfg, trace, p, **req, **inst, iteration_log=log, end_clock=float(out.end_clock[c])))
    return results
