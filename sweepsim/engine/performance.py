"""Performance models: the time of one iteration of a batch, precomputed into kernel tables.

``db``: SplitwiseSim's profiled table (data/perf_model.csv, times in ms). Per (model, hardware, tensor
parallelism): rows grouped by batch tokens = prompt_size x batch_size, the median (after ms -> s) of
prompt_time and of token_time per group gives the knots of two piecewise-linear predictors prompt(bt) and
token(bt), extrapolated linearly outside the knots. A prompt-only batch takes prompt(bt), a decode-only
batch token(bt), a mixed batch prompt(bt) x 1.1, where bt = prompt sizes + 1 per decode.
``constant``: fixed prompt-iteration and token-iteration times (mixed batch = prompt time).
"""
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from kernels.enums import PerfKind
from kernels.state_nb import PTY, PerfTables
from kernels.perf_nb import interp_extrapolate_nb
from sweepsim import PROJECT_ROOT
from sweepsim.errors import InputError, check_input_file

DEFAULT_DB = PROJECT_ROOT / "data" / "perf_model.csv"
MIXED_BATCH_FACTOR = 1.1
DB_COLUMNS = ("model", "hardware", "tensor_parallel", "prompt_size", "batch_size", "prompt_time", "token_time")


@dataclass(frozen=True)
class PerfCurve:
    """Knots (batch tokens) and per-iteration times (seconds) of one (model, hardware, TP)."""
    knots: np.ndarray
    prompt_s: np.ndarray
    token_s: np.ndarray


@lru_cache(maxsize=8)
def load_db(path=DEFAULT_DB) -> dict[tuple[str, str, int], PerfCurve]:
    path = Path(path)
    check_input_file(path, "performance_model.path", "performance database")
    try:
        df = pl.read_csv(path, infer_schema_length=0)   # text: every value is parsed and checked below
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(path, "performance_model.path", f"cannot read: {str(e).splitlines()[0]}") from None
    missing = [c for c in DB_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(path, "performance_model.path", f"missing columns {missing}; a performance database "
                                                         f"has {', '.join(DB_COLUMNS)}")
    num = {}
    for c in ("tensor_parallel", "prompt_size", "batch_size", "prompt_time", "token_time"):
        x = df[c].str.strip_chars().cast(pl.Float64, strict=False).fill_null(np.nan).to_numpy()
        if not (np.all(np.isfinite(x)) and np.all(x > 0) and np.all(x < 1e12)):
            raise InputError(path, "performance_model.path", f"column {c} must hold positive finite numbers")
        num[c] = x
    prompt_s, token_s = num["prompt_time"] / 1000, num["token_time"] / 1000
    batch_tokens = num["prompt_size"] * num["batch_size"]
    keys = list(zip(df["model"].to_list(), df["hardware"].to_list(), num["tensor_parallel"].astype(np.int64)))
    out = {}
    for key in sorted(set(keys)):
        rows = np.array([k == key for k in keys])
        knots = np.unique(batch_tokens[rows])   # sorted; per knot the median of its rows (numpy's median)
        at = [rows & (batch_tokens == b) for b in knots]
        curve = PerfCurve(knots, np.array([np.median(prompt_s[m]) for m in at]),
                          np.array([np.median(token_s[m]) for m in at]))
        _check_curve(path, f"{key[0]}/{key[1]}/tp{key[2]}", curve)
        out[(str(key[0]), str(key[1]), int(key[2]))] = curve
    return out


def _check_curve(path, name, curve: PerfCurve):
    """Interpolation with linear extrapolation must give positive times for every batch size: at least two
    batch-token knots, positive at 1 token, and not falling after the last knot."""
    k = curve.knots
    if len(k) < 2:
        raise InputError(path, "performance_model.path", f"{name}: needs at least two batch sizes (prompt_size x "
                                                         "batch_size) to interpolate between")
    for what, y in (("prompt_time", curve.prompt_s), ("token_time", curve.token_s)):
        at_one = y[0] + (y[1] - y[0]) / (k[1] - k[0]) * (1.0 - k[0])
        if at_one <= 0:
            raise InputError(path, "performance_model.path", f"{name}: {what} extrapolates to {at_one:.3g} ms at "
                                                             "1 batch token; times must stay positive")


def check_positive_times(cfg: "PerfModelConfig", keys, largest_batch_tokens: int, source=None):
    """Every curve of ``keys`` gives positive times from 1 to ``largest_batch_tokens`` batch tokens (a
    piecewise-linear curve is smallest at a knot or an end, and the knots are positive): a curve that falls
    after its last knot would otherwise give negative iteration times for large batches."""
    if cfg.kind != "db":
        return
    db = load_db(Path(cfg.path) if cfg.path else DEFAULT_DB)
    for key in keys:
        c = db.get(profiled_key(key))
        if c is None:
            continue
        for what, y in (("prompt_time", c.prompt_s), ("token_time", c.token_s)):
            # the kernel's own arithmetic, run as Python: no compiled kernel to load for a sign check
            v = interp_extrapolate_nb.py_func(c.knots, y, len(c.knots), float(largest_batch_tokens))
            if not v > 0:
                raise InputError(cfg.path or DEFAULT_DB, "performance_model.path",
                                 f"{key[0]}/{key[1]}/tp{key[2]}: {what} extrapolates to {v * 1000:.3g} ms at "
                                 f"{largest_batch_tokens} batch tokens, the largest batch this configuration can "
                                 "form; give profiled data up to that size or lower the batch limits")


def _interp_extrapolate(knots: np.ndarray, ys: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``kernels.perf_nb.interp_extrapolate_nb`` vectorised over x (the same segment choice and arithmetic)."""
    n = len(knots)
    i = np.clip(np.searchsorted(knots, x, side="left"), 1, n - 1)
    lo = i - 1
    slope = (ys[i] - ys[lo]) / (knots[i] - knots[lo])
    return slope * (x - knots[lo]) + ys[lo]


def reference_model(pm: "PerfModelConfig") -> "PerfModelConfig":
    """The performance model of the slowdown reference machine: as configured, without the what-if factors
    (``scale``, efficiency overrides, the iteration overhead), which describe the simulated cluster, not the
    reference."""
    return dataclasses.replace(pm, scale=1.0, compute_efficiency=None, memory_efficiency=None, iteration_overhead=0.0)


_UNCONTENDED: dict = {}   # (reference machine, sizes arrays' identity) -> latencies: a sweep's configs share them


def uncontended_latencies(cfg, prompt_size: np.ndarray, token_size: np.ndarray, models=None):
    """``_uncontended_latencies``, remembered for the last few (reference machine, trace) pairs: the
    configurations of a sweep share their trace's size arrays, so each is computed once per sweep chunk.
    ``models``: (model names, model code per request) when requests run different models (topologies)."""
    if models is not None:
        names, code = models
        out = tuple(np.full(len(prompt_size), np.nan) for _ in range(3))
        for m, name in enumerate(names):
            at = code == m
            if at.any():
                for o, v in zip(out, _uncontended_latencies(dataclasses.replace(cfg, model=name), prompt_size[at],
                                                            token_size[at])):
                    o[at] = v
        return out
    key = (cfg.model, cfg.slowdown_hardware, cfg.slowdown_tensor_parallel, reference_model(cfg.performance_model),
           id(prompt_size), id(token_size))
    hit = _UNCONTENDED.get(key)
    if hit is not None and hit[0] is prompt_size and hit[1] is token_size:
        return hit[2]
    out = _uncontended_latencies(cfg, prompt_size, token_size)
    if len(_UNCONTENDED) >= 8:
        _UNCONTENDED.clear()
    _UNCONTENDED[key] = (prompt_size, token_size, out)
    return out


def _uncontended_latencies(cfg, prompt_size: np.ndarray, token_size: np.ndarray):
    """(ttft, tbt, e2e) [s] of each request served alone on the slowdown reference machine (the config's model on
    ``slowdown_hardware`` x ``slowdown_tensor_parallel``), after the Splitwise paper: ttft = prompt time at
    bt = prompt_size, tbt = token time at bt = prompt_size (the paper's choice, not bt = 1), e2e = ttft + tbt x
    (token_size - 1). With the constant model, its prompt and token times. NaN when the performance database
    has no data for the reference machine (``slowdown_curve`` says why)."""
    pm = cfg.performance_model
    p = np.asarray(prompt_size, dtype=np.float64)
    if pm.kind == "constant":
        ttft = np.full(len(p), float(pm.prompt_time))
        tbt = np.full(len(p), float(pm.token_time))
    else:
        try:
            curve = slowdown_curve(cfg)
        except InputError:
            nan = np.full(len(p), np.nan)
            return nan, nan, nan
        ttft = _interp_extrapolate(curve.knots, curve.prompt_s, p)
        tbt = _interp_extrapolate(curve.knots, curve.token_s, p)
    return ttft, tbt, ttft + tbt * (np.asarray(token_size, dtype=np.float64) - 1)


def slowdown_curve(cfg) -> PerfCurve:
    """The profiled curve of the slowdown reference machine, or a clear error naming what is available."""
    pm = cfg.performance_model
    key = (cfg.model, cfg.slowdown_hardware, cfg.slowdown_tensor_parallel)
    if pm.kind == "roofline":
        return roofline_curve(reference_model(pm), key, cfg.source)
    db = load_db(Path(pm.path) if pm.path else DEFAULT_DB)
    if profiled_key(key) not in db and pm.fallback == "roofline":
        return roofline_curve(dataclasses.replace(reference_model(pm), kind="roofline"), key, cfg.source)
    key = profiled_key(key)
    if key not in db:
        have = sorted(f"{h}/tp{t}" for m, h, t in db if m == key[0])
        raise InputError(cfg.source, "slowdown_hardware", f"no profiled data for {cfg.model} on "
                                                          f"{key[1]}/tp{key[2]} (the slowdown reference machine); "
                                                          f"available for {cfg.model}: {', '.join(have) or 'none'}")
    return db[key]


@dataclass(frozen=True)
class PerfModelConfig:
    kind: str = "db"                 # "db", "constant" or "roofline"
    path: str | None = None          # db: CSV path (default data/perf_model.csv)
    prompt_time: float = 0.0         # constant: seconds per prompt (or mixed) iteration
    token_time: float = 0.0          # constant: seconds per decode iteration
    efficiency: str | None = None    # roofline: fitted factors (default configs/perf/roofline.toml)
    context_tokens: int = 1024       # roofline: context of each decoding sequence (KV read per iteration)
    compute_efficiency: float | None = None   # roofline: overrides of the fitted factors (sweep axes)
    memory_efficiency: float | None = None
    scale: float = 1.0               # every iteration time x this ("what if the model is 15% off": 1.15)
    fallback: str | None = None      # db: "roofline" for (model, GPU, TP) keys the database lacks ("none": error;
                                     # topologies default to "roofline")
    iteration_overhead: float = 0.0  # seconds added to every iteration (SageServe: |t| + 0.01 s; parity: 0.01)


def roofline_curve(cfg: PerfModelConfig, key: tuple[str, str, int], source=None) -> PerfCurve:
    """The roofline model's times over batch tokens for (model, GPU, TP) (``sweepsim.engine.roofline``)."""
    from sweepsim.config.catalog import get_model, processors
    from sweepsim.engine import roofline
    model, gpu, tp = key
    eff = roofline.efficiency_for(gpu, cfg.efficiency, cfg.compute_efficiency, cfg.memory_efficiency, source)
    knots, prompt, token = roofline.curve(get_model(model, source), processors()[gpu], tp, eff,
                                          cfg.context_tokens, cfg.scale)
    return PerfCurve(knots, prompt, token)


def profiled_key(key: tuple[str, str, int]) -> tuple[str, str, int]:
    """The database key of (model, GPU, TP): a catalog model may be profiled under another name (``profiled_as``)."""
    from sweepsim.config.catalog import models
    m = models().get(key[0])
    return (m.profiled_as, key[1], key[2]) if m is not None and m.profiled_as else key


def build_tables(cfg: PerfModelConfig, keys: list[tuple[str, str, int]], source=None) -> PerfTables:
    """Kernel tables with one row per (model, hardware, TP) key, in the order given."""
    n = len(keys)
    if cfg.kind == "constant":
        return PerfTables(np.array([np.full(n, PerfKind.CONSTANT), np.full(n, 2)], np.int64),
                          np.array([np.full(n, float(cfg.prompt_time) * cfg.scale),
                                    np.full(n, float(cfg.token_time) * cfg.scale)]), np.zeros((3, n, 2)))
    if cfg.kind == "roofline":
        return _tables([roofline_curve(cfg, key, source) for key in keys])
    db = load_db(Path(cfg.path) if cfg.path else DEFAULT_DB)
    curves = []
    for key in keys:
        if profiled_key(key) not in db and cfg.fallback == "roofline":
            curves.append(roofline_curve(dataclasses.replace(cfg, kind="roofline"), key, source))
            continue
        key = profiled_key(key)
        if key not in db:
            have = sorted(f"{m}/{h}/tp{t}" for m, h, t in db)
            raise InputError(source, "performance_model",
                             f"no profiled data for model/hardware/tp {key[0]}/{key[1]}/tp{key[2]}; available: "
                             + ", ".join(have) + '; or performance_model = "roofline" for models and GPUs nobody '
                             'profiled (performance_model.fallback = "roofline": for those alone)')
        c = db[key]
        curves.append(c if cfg.scale == 1.0 else PerfCurve(c.knots, c.prompt_s * cfg.scale, c.token_s * cfg.scale))
    return _tables(curves)


def _tables(curves: list[PerfCurve]) -> PerfTables:
    """``kernels.state_nb.PerfTables`` of curves (knots padded with zeros to the longest curve)."""
    n = len(curves)
    k = max(len(c.knots) for c in curves)
    y = np.zeros((3, n, k))
    for j, c in enumerate(curves):
        m = len(c.knots)
        y[PTY.knots, j, :m], y[PTY.prompt, j, :m], y[PTY.token, j, :m] = c.knots, c.prompt_s, c.token_s
    return PerfTables(np.array([np.full(n, PerfKind.DB), [len(c.knots) for c in curves]], np.int64),
                      np.zeros((2, n)), y)