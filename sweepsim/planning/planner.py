"""Hourly capacity plans (SageServe's long-term scaling, ../shared/spec/SAGESERVE.md 4.4; docs/planning.md,
"Hourly plans").

Plans are computed in Python before a run (the forecasts do not depend on simulated state): at each planning
time, the demand of every (region, endpoint) over the window ahead (``demand``, ``dev_backlog``), then per
region an integer program for the target instance counts (``solve_region``, scipy.optimize.milp with HiGHS),
with per-instance throughputs from the performance model (``instance_throughput``). ``plan_run`` gives the
whole run's raw plans; ``sweepsim.planning.postprocess`` turns them into applied targets.
"""
import dataclasses
import math

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

#: SageServe's hard-coded per-instance throughputs of models A-D [prompt tokens per minute] (parity preset)
SAGESERVE_TPS = (30 * 7516.67, 30 * 5398.07, 30 * 1.6e6, 30 * 1.6e6)
SAGESERVE_TPS_BY_MODEL = dict(zip("ABCD", SAGESERVE_TPS))
SAGESERVE_GPU_COST = 10.0          # per instance held for a planning interval
SAGESERVE_STARTUP_COST = 150.0     # per instance started (SageServe's model_interchange_time)
SAGESERVE_WINDOW = (1200.0, 3600.0)   # seconds after the planning time: minutes 20-60
SAGESERVE_DEV_FRACTION = 0.1
SAGESERVE_DEV_LOOKBACK = 3600.0
PLANNING_INTERVAL = 3600.0
FORECAST_STEP = 60.0               # seconds per forecast row (minute i is Time = 60 i)
#: lexicographic stages of the over-demand program: a stage's optimum is kept within this (HiGHS' own
#: feasibility tolerance is 1e-7)
STAGE_TOL = 1e-7


# ---------------------------------------------------------------- demand

def demand(forecast, t: float, window=SAGESERVE_WINDOW, quantile: float | None = None, upper=None,
           step: float = FORECAST_STEP) -> float:
    """Demand of one endpoint at planning time ``t`` [s], in prompt tokens per minute: the peak (``quantile``
    None) or the ``quantile`` (0..1, numpy's linear rule) of the per-minute forecast over the minutes i with
    t + window[0] <= step x i <= t + window[1] (SageServe: the peak over minutes 20-60 ahead). ``upper``: an
    upper-bound series (a prediction interval's) used instead of ``forecast``. NaN minutes are skipped,
    negative values count as 0; 0 when the window holds no forecast minute (past the horizon)."""
    series = np.asarray(forecast if upper is None else upper, dtype=np.float64)
    lo = max(math.ceil((t + window[0]) / step), 0)
    hi = min(math.floor((t + window[1]) / step), len(series) - 1)
    if hi < lo:
        return 0.0
    v = series[lo:hi + 1]
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return 0.0
    if quantile is None:
        d = float(v.max())
    else:
        if not 0.0 <= quantile <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {quantile}")
        d = float(np.quantile(v, quantile))
    return max(d, 0.0)


def dev_backlog(arrivals, prompt_sizes, t: float, fraction: float = SAGESERVE_DEV_FRACTION,
                lookback: float = SAGESERVE_DEV_LOOKBACK) -> float:
    """SageServe's dev term added to an endpoint's demand at planning time ``t`` [s]: ``fraction`` x the
    largest prompt size of the endpoint's dev requests arriving in [t - lookback, max(t, lookback)] (the
    trailing hour; before the first hour, the whole first hour, as SageServe); 0 without such requests."""
    a = np.asarray(arrivals, dtype=np.float64)
    p = np.asarray(prompt_sizes, dtype=np.float64)
    at = (a >= t - lookback) & (a <= max(t, lookback))
    return float(fraction * p[at].max()) if at.any() else 0.0


def demand_matrix(forecasts, times, window=SAGESERVE_WINDOW, quantile: float | None = None, uppers=None,
                  dev=None, dev_fraction: float = SAGESERVE_DEV_FRACTION) -> np.ndarray:
    """(n_ticks, n_endpoints) demands [prompt tokens per minute]: ``demand`` of each endpoint's forecast
    (``uppers[e]`` when given and not None) at each time, plus ``dev_backlog`` of ``dev[e]`` = (arrivals,
    prompt sizes) when given and not None."""
    n = len(forecasts)
    out = np.zeros((len(times), n))
    for e in range(n):
        up = None if uppers is None else uppers[e]
        dv = None if dev is None else dev[e]
        for k, t in enumerate(times):
            out[k, e] = demand(forecasts[e], float(t), window, quantile, up)
            if dv is not None:
                out[k, e] += dev_backlog(dv[0], dv[1], float(t), dev_fraction)
    return out


def planning_times(end_time: float, interval: float = PLANNING_INTERVAL, max_time: float | None = None) -> np.ndarray:
    """Planning ticks 0, interval, 2 interval, ... before ``end_time`` (and before ``max_time`` if given:
    SageServe plans nothing from 604,800 s on)."""
    if interval <= 0:
        raise ValueError("the planning interval must be positive")
    stop = end_time if max_time is None else min(end_time, max_time)
    return np.arange(0.0, max(stop, 0.0), interval)


# ---------------------------------------------------------------- throughput

def instance_throughput(cfg, endpoint, mean_prompt: float, mean_output: float) -> float:
    """Prompt tokens per minute one instance of ``endpoint`` (a ``sweepsim.config.topology.Endpoint``) sustains
    under run config ``cfg``'s performance model, on requests of ``mean_prompt`` prompt and ``mean_output``
    output tokens: batches of b requests served together, one prompt iteration of b x P batch tokens then T - 1
    decode iterations of b batch tokens (each iteration plus the config's iteration overhead), so
    b x P prompt tokens per prompt(bP) + (T - 1) token(b) + T x overhead seconds; the best b from 1 to
    min(max_batch_size, KV room // (P + T)), KV room = the tokens beside the weights (docs/planning.md)."""
    from sweepsim.config.catalog import get_model, get_sku
    from sweepsim.engine.performance import _interp_extrapolate, build_tables
    from kernels.enums import PerfKind
    from kernels.state_nb import PTF, PTI, PTY

    P, T = float(mean_prompt), float(mean_output)
    if not (P >= 1 and T >= 1 and math.isfinite(P) and math.isfinite(T)):
        raise ValueError(f"mean prompt and output sizes must be finite and >= 1, got {mean_prompt}, {mean_output}")
    model = get_model(endpoint.model, cfg.source)
    sku = get_sku(endpoint.sku, cfg.source)
    tp = endpoint.tensor_parallel
    room = (sku.processor.memory_bytes * tp - model.weight_bytes) // model.kv_bytes_per_token
    b_max = min(cfg.instance.max_batch_size, int(room // (P + T)))
    if b_max < 1:
        raise ValueError(f"a request of {P:g} + {T:g} tokens does not fit on an instance of {endpoint.region}/"
                         f"{endpoint.name} ({room} KV tokens)")
    tab = build_tables(cfg.performance_model, [(model.name, sku.processor.name, tp)], cfg.source)
    b = np.arange(1, b_max + 1, dtype=np.float64)
    if tab.i[PTI.kind, 0] == PerfKind.CONSTANT:
        prompt = np.full(len(b), tab.f[PTF.const_prompt, 0])
        token = np.full(len(b), tab.f[PTF.const_token, 0])
    else:
        n = tab.i[PTI.n_knots, 0]
        knots = tab.y[PTY.knots, 0, :n]
        prompt = _interp_extrapolate(knots, tab.y[PTY.prompt, 0, :n], b * P)
        token = _interp_extrapolate(knots, tab.y[PTY.token, 0, :n], b)
    cycle = prompt + (T - 1) * token + T * cfg.performance_model.iteration_overhead
    return float(np.max(60.0 * b * P / cycle))


def endpoint_throughputs(cfg, mean_prompt, mean_output) -> np.ndarray:
    """``instance_throughput`` of every endpoint of ``cfg``'s topology (endpoint order); the mean sizes are
    scalars, per-endpoint sequences, or dicts by model name."""
    eps = cfg.topology.endpoints

    def pick(v, j, e):
        if isinstance(v, dict):
            return v[e.model]
        return v[j] if np.ndim(v) else v
    return np.array([instance_throughput(cfg, e, pick(mean_prompt, j, e), pick(mean_output, j, e))
                     for j, e in enumerate(eps)])


def sageserve_tps(models) -> np.ndarray:
    """SageServe's constants for endpoints of models A-D (in the given order)."""
    return np.array([SAGESERVE_TPS_BY_MODEL[m] for m in models])


# ---------------------------------------------------------------- the integer program

def instances_needed(demand, tps) -> np.ndarray:
    """The fewest instances n with n x tps >= demand (evaluated in floating point), per endpoint."""
    d = np.asarray(demand, dtype=np.float64)
    r = np.asarray(tps, dtype=np.float64)
    k = np.maximum(np.ceil(d / r), 0.0)
    k = np.where((k >= 1) & ((k - 1) * r >= d), k - 1, k)   # ceil of a quotient rounded up past an integer
    return k.astype(np.int64)


def closed_form(demand, tps, floors) -> np.ndarray:
    """max(ceil(D / TPS), floor) per endpoint: ``solve_region``'s answer when neither the region total nor a
    ceiling binds and every gpu_cost is positive (SageServe's plan, with floors)."""
    return np.maximum(instances_needed(demand, tps), np.asarray(floors, dtype=np.int64))


def unmet_fraction(n, demand, tps) -> np.ndarray:
    """Per endpoint, the fraction of its demand that n instances leave unserved: max(0, 1 - n TPS / D)
    (0 where D = 0)."""
    d = np.asarray(demand, dtype=np.float64)
    served = np.asarray(n, dtype=np.float64) * np.asarray(tps, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(d > 0, 1.0 - served / np.where(d > 0, d, 1.0), 0.0)
    return np.where(served >= d, 0.0, np.clip(f, 0.0, 1.0))


def plan_cost(n, current, gpu_cost, startup_cost) -> float:
    """sum(gpu_cost n + startup_cost max(0, n - current))."""
    n = np.asarray(n, dtype=np.float64)
    new = np.maximum(n - np.asarray(current, dtype=np.float64), 0.0)
    return float(np.sum(np.asarray(gpu_cost, dtype=np.float64) * n + np.asarray(startup_cost, dtype=np.float64) * new))


def objective(n, demand, tps, current, gpu_cost, startup_cost) -> tuple[float, float, float]:
    """The lexicographic objective ``solve_region`` minimises: (largest unmet fraction, sum of unmet fractions,
    cost); the first two are 0 when every demand is met."""
    f = unmet_fraction(n, demand, tps)
    return float(f.max(initial=0.0)), float(f.sum()), plan_cost(n, current, gpu_cost, startup_cost)


@dataclasses.dataclass(frozen=True)
class _Region:
    demand: np.ndarray
    tps: np.ndarray
    current: np.ndarray
    floors: np.ndarray
    ceilings: np.ndarray
    gpu_cost: np.ndarray
    startup_cost: np.ndarray
    total: int


def _validated(demand, tps, current, total, floors, gpu_cost, startup_cost, ceilings) -> _Region:
    d = np.atleast_1d(np.asarray(demand, dtype=np.float64))
    m = len(d)

    def vec(v, name, dtype=np.float64):
        a = np.broadcast_to(np.asarray(v, dtype=dtype), (m,)).copy()
        if dtype is np.float64 and not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be finite")
        if np.any(a < 0):
            raise ValueError(f"{name} must be >= 0")
        return a
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("demand must be finite and >= 0")
    r = vec(tps, "tps")
    if np.any(r <= 0):
        raise ValueError("tps must be positive")
    total = int(total)
    lo = vec(floors, "floors", np.int64)
    hi = np.full(m, total, np.int64) if ceilings is None else np.minimum(vec(ceilings, "ceilings", np.int64), total)
    if np.any(lo > hi):
        raise ValueError(f"floors {lo.tolist()} above the ceilings {hi.tolist()} (or the region total {total})")
    if lo.sum() > total:
        raise ValueError(f"the floors {lo.tolist()} need {lo.sum()} instances; the region has {total}")
    return _Region(d, r, vec(current, "current", np.int64), lo, hi, vec(gpu_cost, "gpu_cost"),
                   vec(startup_cost, "startup_cost"), total)


def solve_region(demand, tps, current, total, floors, gpu_cost, startup_cost, ceilings=None) -> np.ndarray:
    """Target instance counts n of one region's endpoints (int64 array), from the integer program (variables n
    and new, per endpoint, integers):

        minimise   sum(gpu_cost n + startup_cost new)
        subject to n TPS >= D, new >= n - current, new >= 0, floors <= n <= ceilings, sum(n) <= total

    solved with scipy.optimize.milp (HiGHS). ``demand`` D and ``tps`` in the same unit (prompt tokens per
    minute), costs per instance; scalars broadcast. When the demands cannot all be met (the total or a ceiling
    binds), the demand constraints are relaxed by unmet fractions f = max(0, 1 - n TPS / D) and the objective
    becomes lexicographic: first the largest f (every endpoint gets as nearly as possible the same share of
    its demand), then the sum of f (spare instances go where they serve the largest share), then the cost
    (``objective``). Floors above the total or above the ceilings are an error (ValueError)."""
    r = _validated(demand, tps, current, total, floors, gpu_cost, startup_cost, ceilings)
    m = len(r.demand)
    need = closed_form(r.demand, r.tps, r.floors)
    met = bool(np.all(need <= r.ceilings) and need.sum() <= r.total)
    # variables: n (m), new (m), then unmet fractions f (m) and their maximum z (1) when demand is not met
    nv = 2 * m if met else 3 * m + 1
    lb = np.zeros(nv)
    ub = np.full(nv, np.inf)
    lb[:m], ub[:m] = r.floors, r.ceilings
    ub[m:2 * m] = r.total
    integrality = np.zeros(nv)
    integrality[:2 * m] = 1
    eye = np.eye(m)
    rows = [np.zeros((m, nv)), np.zeros((1, nv))]
    rows[0][:, :m], rows[0][:, m:2 * m] = -eye, eye                       # new - n >= -current
    rows[1][0, :m] = 1                                                   # sum(n) <= total
    cons = [LinearConstraint(rows[0], -r.current, np.inf), LinearConstraint(rows[1], -np.inf, r.total)]
    cost = np.zeros(nv)
    cost[:m], cost[m:2 * m] = r.gpu_cost, r.startup_cost
    if met:
        # n TPS >= D as bounds: for integer n the same as n >= ceil(D / TPS) (``instances_needed``, exact)
        lb[:m] = np.maximum(lb[:m], instances_needed(r.demand, r.tps))
        return _solve(cost, cons, lb, ub, integrality, m)
    f0, z = 2 * m, 3 * m
    ub[f0:z], ub[z] = 1.0, 1.0
    pos = r.demand > 0
    ub[f0:z][~pos] = 0.0                                                # nothing to miss without demand
    a = np.zeros((m, nv))
    # coefficient TPS / D, at most 1: one instance meeting the whole demand needs no larger one (same integer
    # solutions, better scaled)
    with np.errstate(over="ignore"):
        a[:, :m] = np.diag(np.where(pos, np.minimum(r.tps / np.where(pos, r.demand, 1.0), 1.0), 0.0))
    a[:, f0:z] = eye
    cons.append(LinearConstraint(a[pos], 1.0, np.inf))                  # n TPS / D + f >= 1
    b = np.zeros((m, nv))
    b[:, f0:z], b[:, z] = eye, -1.0
    cons.append(LinearConstraint(b, -np.inf, 0.0))                      # f <= z
    stage = np.zeros(nv)
    stage[z] = 1.0
    n1 = _solve(stage, cons, lb, ub, integrality, m)
    ub[f0:z] = np.minimum(ub[f0:z], unmet_fraction(n1, r.demand, r.tps).max() + STAGE_TOL)
    stage = np.zeros(nv)
    stage[f0:z] = 1.0
    n2 = _solve(stage, cons, lb, ub, integrality, m)
    s = np.zeros((1, nv))
    s[0, f0:z] = 1.0
    cons.append(LinearConstraint(s, -np.inf, unmet_fraction(n2, r.demand, r.tps).sum() + STAGE_TOL))
    return _solve(cost, cons, lb, ub, integrality, m)


def _solve(c, cons, lb, ub, integrality, m) -> np.ndarray:
    res = milp(c, constraints=cons, bounds=Bounds(lb, ub), integrality=integrality)
    if res.x is None:
        raise RuntimeError(f"the planning program has no solution ({res.message})")
    return np.rint(res.x[:m]).astype(np.int64)


def plan_from_demand(demands, initial, region, totals, floors, tps, gpu_cost=SAGESERVE_GPU_COST,
                     startup_cost=SAGESERVE_STARTUP_COST, ceilings=None) -> np.ndarray:
    """(n_ticks, n_endpoints) raw plans from a demand matrix: per tick and region, ``solve_region`` with
    ``current`` = the previous tick's plan (``initial`` at the first tick). Endpoint e is in region
    ``region[e]`` (an index into ``totals``); per-endpoint arguments are arrays over all endpoints (or
    scalars)."""
    d = np.asarray(demands, dtype=np.float64)
    n_ticks, n = d.shape
    region = np.asarray(region, dtype=np.int64)

    def vec(v):
        return None if v is None else np.broadcast_to(np.asarray(v), (n,))
    floors, tps, gpu_cost, startup_cost, ceilings = map(vec, (floors, tps, gpu_cost, startup_cost, ceilings))
    out = np.zeros((n_ticks, n), np.int64)
    current = np.broadcast_to(np.asarray(initial, dtype=np.int64), (n,)).copy()
    for k in range(n_ticks):
        for g in np.unique(region):
            at = region == g
            out[k, at] = solve_region(d[k, at], tps[at], current[at], totals[g], floors[at], gpu_cost[at],
                                      startup_cost[at], None if ceilings is None else ceilings[at])
        current = out[k]
    return out


def plan_run(forecasts, times, initial, region, totals, floors, tps, gpu_cost=SAGESERVE_GPU_COST,
             startup_cost=SAGESERVE_STARTUP_COST, ceilings=None, window=SAGESERVE_WINDOW,
             quantile: float | None = None, uppers=None, dev=None,
             dev_fraction: float = SAGESERVE_DEV_FRACTION) -> np.ndarray:
    """The run's raw plans, (len(times), n_endpoints) target instance counts: ``demand_matrix`` of the
    per-endpoint forecasts (and dev requests) at ``times``, then ``plan_from_demand``. Plans are computed
    before the run, so the start-up cost counts instances above the previous plan, not above the simulated
    count."""
    d = demand_matrix(forecasts, times, window, quantile, uppers, dev, dev_fraction)
    return plan_from_demand(d, initial, region, totals, floors, tps, gpu_cost, startup_cost, ceilings)
