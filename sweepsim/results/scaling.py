"""Autoscaling outputs of a topology run: scaling events, instance counts over time, GPU-hours, waste, and the energy
and cost of the instance-hours actually allocated.

- ``scaling_events.parquet``: one row per instance move (``kernels.layout.SCALING_LOG``): time [s], region,
  endpoint, model, action (reclaim, donate, ready, drain, spot), instance, source_model (the model the instance
  served before the move: the donor for a donation), then the endpoint's serving / starting / draining instances
  and the region's spot-pool size after the move.
- ``endpoints_timeline.parquet``: every ``period`` seconds from 0 to the end clock, per endpoint its serving,
  starting and draining instances and its KV capacity [bytes] (of its serving instances); per region a row with
  endpoint ``spot`` whose ``spot`` column is the pool's size (0 on endpoint rows).
- GPU-hours: instance-seconds per state x the instance's GPUs / 3600. Wasted GPU-hours: serving while idle (no batch
  running), starting and draining. Cost [$] and energy [J] of a scaling run count allocated (non-spot) time: an
  instance's share of its server's hourly price and base power (its GPUs over the server's), and its GPUs at idle
  power while not running a batch, at prompt / token power while running one (mixed batches at prompt power).
"""
import numpy as np
import polars as pl

from kernels.enums import ScaleAction
from kernels.layout import ENDPOINT_TIME, SCALING_LOG

ACTIONS = tuple(ScaleAction._fields[k].lower() for k in range(len(ScaleAction)))
SPOT = "spot"
#: default sampling period of endpoints_timeline.parquet [s]; at most MAX_SAMPLES samples per run
TIMELINE_PERIOD_S = 60.0
MAX_SAMPLES = 10_000


def scaling_on(res) -> bool:
    t = res.config.topology
    return t is not None and t.scaling.level > 0


def scaling_events_table(res) -> pl.DataFrame:
    """One row per instance move, in order (empty without scaling)."""
    t = res.config.topology
    log = res.scaling_log if res.scaling_log is not None else np.empty((0, len(SCALING_LOG)))
    c = {name: log[:, k] for k, name in enumerate(SCALING_LOG)}
    ep = c["endpoint"].astype(np.int64)
    eps = t.endpoints
    models = t.models()
    enum = pl.Enum
    return pl.DataFrame({
        "time": c["time"],
        "region": pl.Series([eps[e].region for e in ep], dtype=enum(list(t.regions))),
        "endpoint": pl.Series([eps[e].name for e in ep], dtype=enum(list(dict.fromkeys(e.name for e in eps)))),
        "model": pl.Series([eps[e].model for e in ep], dtype=enum(list(models))),
        "action": pl.Series([ACTIONS[int(a)] for a in c["action"]], dtype=enum(list(ACTIONS))),
        "instance": c["instance"].astype(np.int64),
        "source_model": pl.Series([models[int(m)] for m in c["from_model"]], dtype=enum(list(models))),
        **{k: c[k].astype(np.int64) for k in ("serving", "starting", "draining", "spot")},
    })


def count_steps(res):
    """Per endpoint, the step function of its (serving, starting, draining) instances: (times, counts (n, 3)), from
    the topology's counts at 0 and every scaling event; per region the spot pool's (times, sizes)."""
    t = res.config.topology
    log = res.scaling_log if res.scaling_log is not None else np.empty((0, len(SCALING_LOG)))
    k = {name: j for j, name in enumerate(SCALING_LOG)}
    eps = {}
    for j, e in enumerate(t.endpoints):
        mine = log[log[:, k["endpoint"]] == j]
        times = np.concatenate([[0.0], mine[:, k["time"]]])
        counts = np.vstack([[e.instances, 0, 0], mine[:, [k["serving"], k["starting"], k["draining"]]]])
        eps[j] = (times, counts)
    region_of = np.array([t.regions.index(e.region) for e in t.endpoints])
    spot = {}
    for r in range(len(t.regions)):
        mine = log[region_of[log[:, k["endpoint"]].astype(np.int64)] == r] if len(log) else log
        spot[r] = (np.concatenate([[0.0], mine[:, k["time"]]]), np.concatenate([[0], mine[:, k["spot"]]]))
    return eps, spot


def _sample(times, values, at):
    """The step function's value at each time of ``at`` (the last change at or before it)."""
    return values[np.searchsorted(times, at, side="right") - 1]


def endpoints_timeline_table(res, period: float = TIMELINE_PERIOD_S) -> pl.DataFrame:
    """Instance counts per endpoint and the spot pool per region, every ``period`` seconds (at most
    ``MAX_SAMPLES`` samples: the period grows if needed)."""
    t = res.config.topology
    end = float(res.end_clock)
    period = max(period, end / MAX_SAMPLES) if end > 0 else period
    at = np.arange(0.0, end + period * 0.5, period) if end > 0 else np.zeros(1)
    eps, spot = count_steps(res)
    kv_room = _kv_room_per_instance(res)
    frames = []
    for j, e in enumerate(t.endpoints):
        times, counts = eps[j]
        c = _sample(times, counts, at)
        frames.append(pl.DataFrame({"time": at, "region": e.region, "endpoint": e.name, "model": e.model,
                                    "serving": c[:, 0].astype(np.int64), "starting": c[:, 1].astype(np.int64),
                                    "draining": c[:, 2].astype(np.int64), "spot": np.zeros(len(at), np.int64),
                                    "kv_capacity_bytes": c[:, 0].astype(np.int64) * kv_room[j]}))
    for r, name in enumerate(t.regions):
        times, sizes = spot[r]
        z = np.zeros(len(at), np.int64)
        frames.append(pl.DataFrame({"time": at, "region": name, "endpoint": SPOT, "model": "", "serving": z,
                                    "starting": z, "draining": z, "spot": _sample(times, sizes, at).astype(np.int64),
                                    "kv_capacity_bytes": z}))
    return pl.concat(frames).sort("time", maintain_order=True)


def _kv_room_per_instance(res) -> np.ndarray:
    """Per endpoint, the KV bytes one of its instances holds beside its model's weights."""
    p = res.placement
    room = np.zeros(len(res.config.topology.endpoints), np.int64)
    for j in range(len(room)):
        ids = np.flatnonzero(p.endpoint == j)
        room[j] = int(p.max_memory[ids[0]] - p.weights[ids[0]]) if len(ids) else 0
    return room


def _endpoint_gpus(res) -> np.ndarray:
    return np.array([e.tensor_parallel for e in res.config.topology.endpoints], np.float64)


def _server_share(res):
    """Per instance: (its share of its server's hourly price [$/h], of its server's base power [W])."""
    from sweepsim.config.catalog import get_sku
    p = res.placement
    price = np.empty(len(p.sku))
    base = np.empty(len(p.sku))
    for i, s in enumerate(p.server):
        sku = get_sku(p.server_sku[int(s)])
        share = p.num_gpus[i] / sku.num_processors
        price[i] = sku.cost_per_hour * share
        base[i] = sku.server_base_power_w * share
    return price, base


def endpoint_scaling_columns(res) -> dict[str, np.ndarray]:
    """Per endpoint: GPU-hours by state, idle and wasted GPU-hours, mean and final serving instances, scale-ups and
    -downs; with scaling also energy [J] and cost [$] of its allocated instance-hours (``energy_j``, ``cost_usd``)."""
    t = res.config.topology
    n = len(t.endpoints)
    et = res.endpoint_time if res.endpoint_time is not None else np.zeros((len(ENDPOINT_TIME), n))
    row = {name: et[k] for k, name in enumerate(ENDPOINT_TIME)}
    gpus = _endpoint_gpus(res)
    h = gpus / 3600.0
    idle = np.maximum(row["serving"] - row["busy"], 0.0)
    log = res.scaling_log if res.scaling_log is not None else np.empty((0, len(SCALING_LOG)))
    k = {name: j for j, name in enumerate(SCALING_LOG)}
    act = log[:, k["action"]].astype(np.int64)
    ep = log[:, k["endpoint"]].astype(np.int64)
    down = ScaleAction.SPOT if t.scaling.delays == "lockout" else ScaleAction.DRAIN
    ups = np.bincount(ep[(act == ScaleAction.RECLAIM) | (act == ScaleAction.DONATE)], minlength=n)
    downs = np.bincount(ep[act == down], minlength=n)
    eps, _ = count_steps(res)
    end = float(res.end_clock)
    out = {"gpu_hours_serving": row["serving"] * h, "gpu_hours_starting": row["starting"] * h,
           "gpu_hours_draining": row["draining"] * h, "gpu_hours_idle": idle * h,
           "wasted_gpu_hours": (idle + row["starting"] + row["draining"]) * h,
           "mean_instances": row["serving"] / end if end > 0 else np.zeros(n),
           "final_instances": np.array([int(eps[j][1][-1, 0]) for j in range(n)], np.int64),
           "scale_ups": ups.astype(np.int64), "scale_downs": downs.astype(np.int64)}
    if scaling_on(res):
        from sweepsim.config.catalog import get_sku
        energy = np.empty(n)
        cost = np.empty(n)
        price, base = _server_share(res)
        p = res.placement
        for j, e in enumerate(t.endpoints):
            proc = get_sku(e.sku).processor
            alloc = row["serving"][j] + row["starting"][j] + row["draining"][j]
            ran = row["prompt"][j] + row["token"][j] + row["mixed"][j]
            i0 = int(np.flatnonzero(p.endpoint == j)[0])
            energy[j] = gpus[j] * (proc.power_idle_w * max(alloc - ran, 0.0)
                                   + proc.power_prompt_w * (row["prompt"][j] + row["mixed"][j])
                                   + proc.power_token_w * row["token"][j]) + base[i0] * alloc
            cost[j] = price[i0] * alloc / 3600.0
        out["energy_j"] = energy
        out["cost_usd"] = cost
    return out


def run_scaling_totals(res) -> dict:
    """Run totals: GPU-hours by state (spot from the regions' pools), wasted GPU-hours, scaling actions."""
    c = endpoint_scaling_columns(res)
    p = res.placement
    spot = float(np.sum(res.spot_time * p.num_gpus) / 3600.0) if res.spot_time is not None else 0.0
    return {"gpu_hours_serving": float(c["gpu_hours_serving"].sum()),
            "gpu_hours_starting": float(c["gpu_hours_starting"].sum()),
            "gpu_hours_draining": float(c["gpu_hours_draining"].sum()), "gpu_hours_spot": spot,
            "wasted_gpu_hours": float(c["wasted_gpu_hours"].sum()),
            "scaling_actions": int(c["scale_ups"].sum() + c["scale_downs"].sum())}


def scaling_energy_and_cost(res, output_tokens: int, instance_energy: np.ndarray) -> dict:
    """``tables.energy_and_cost`` of a scaling run (``instance_energy``: GPU energy per instance [J]): allocated
    (non-spot) instance-hours only."""
    price, base = _server_share(res)
    alloc = res.serving_time + res.starting_time + res.draining_time
    energy = float(instance_energy.sum() + np.sum(base * alloc))
    cost = float(np.sum(price * alloc) / 3600.0)
    t = res.end_clock
    per_tok = output_tokens if output_tokens > 0 else float("nan")
    return {"energy_j": energy, "energy_kwh": energy / 3.6e6, "mean_power_w": energy / t if t > 0 else float("nan"),
            "energy_per_token_j": energy / per_tok, "cost_usd": cost, "cost_per_1m_tokens_usd": cost / per_tok * 1e6,
            "servers": res.placement.n_servers}
