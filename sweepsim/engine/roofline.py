"""Roofline performance model: iteration times from the FLOPs and bytes of an iteration, for models and GPUs
nobody profiled (``performance_model = { kind = "roofline" }``; formulas in docs/semantics.md).

Per iteration on ``tp`` GPUs (N = parameters used per token, W = bytes of weights read, KV = the model's KV
bytes per token with its real attention heads, L layers, h hidden size, b = bytes per value):
- prefill of ``batch`` prompts of ``p`` tokens (t = batch x p tokens): FLOPs = 2 N t + 2 L h batch p^2 (causal
  attention); bytes = W + KV t (cache written) + 4 L t h b (activations in and out of attention and MLP);
- decode of ``batch`` sequences with ``c`` tokens of context: FLOPs = 2 N batch + 4 L h batch c; bytes = W +
  KV batch c (cache read) + KV batch + 4 L batch h b; for a mixture of experts W counts the experts that
  ``batch`` tokens touch on average, E (1 - (1 - k / E)^batch);
- time = max(FLOPs / (tp x peak x e_c), bytes / (tp x bandwidth x e_m)) + all-reduce + overhead, with two
  ring all-reduces per layer of t h b bytes over NVLink (2 (tp - 1) / tp of them per GPU at half the
  bidirectional NVLink bandwidth) when tp > 1.
e_c, e_m and the overheads (prefill, decode) are fitted per GPU on the profiled table (``fit``) and kept in
``configs/perf/roofline.toml``.
"""
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from sweepsim import PROJECT_ROOT
from sweepsim.errors import InputError, allowed

DEFAULT_EFFICIENCY = PROJECT_ROOT / "configs" / "perf" / "roofline.toml"
#: batch-token knots of the tables the kernels interpolate (every power of two up to 2^20, and the midpoints)
KNOTS = np.unique(np.concatenate([2.0 ** np.arange(21), 1.5 * 2.0 ** np.arange(1, 20)]))


@dataclass(frozen=True)
class Efficiency:
    compute: float          # achieved fraction of peak FLOP/s
    memory: float           # achieved fraction of HBM bandwidth
    prompt_overhead_s: float
    token_overhead_s: float


def _model_bytes(model):
    pb = model.param_bytes
    kv_real = 2 * model.num_layers * model.hidden_size * (model.kv_heads or model.num_heads) / model.num_heads * pb
    return pb, kv_real


def _weights_read(model, tokens):
    """Bytes of weights an iteration of ``tokens`` tokens reads (experts touched, for a mixture of experts)."""
    pb = model.param_bytes
    attention, mlp_active = model.layer_params(active=True)
    _, mlp_all = model.layer_params(active=False)
    emb = (model.vocab_size or 0) * model.hidden_size * (1 if model.tied_embeddings else 2)
    if model.num_experts > 1:
        per_expert = mlp_all / model.num_experts
        touched = model.num_experts * (1 - (1 - model.experts_active / model.num_experts) ** np.maximum(tokens, 1))
        mlp = per_expert * touched
    else:
        mlp = mlp_all
    return (model.num_layers * (attention + mlp) + emb) * pb


def _time(model, proc, tp, eff: Efficiency, flops, nbytes, tokens, overhead):
    peak = proc.peak_tflops * 1e12
    bw = proc.hbm_gbs * 1e9
    t = np.maximum(flops / (tp * peak * eff.compute), nbytes / (tp * bw * eff.memory))
    if tp > 1:
        size = 2 * model.num_layers * tokens * model.hidden_size * model.param_bytes
        t = t + size * 2 * (tp - 1) / tp / (proc.nvlink_gbs * 1e9 / 2)
    return t + overhead


def prefill_time(model, proc, tp, eff: Efficiency, prompt, batch=1):
    """Seconds of one prefill iteration of ``batch`` prompts of ``prompt`` tokens each (arrays allowed)."""
    prompt = np.asarray(prompt, dtype=np.float64)
    batch = np.asarray(batch, dtype=np.float64)
    pb, kv = _model_bytes(model)
    tokens = prompt * batch
    flops = 2 * model.params(active=True) * tokens + 2 * model.num_layers * model.hidden_size * batch * prompt ** 2
    nbytes = _weights_read(model, tokens) + kv * tokens + 4 * model.num_layers * tokens * model.hidden_size * pb
    return _time(model, proc, tp, eff, flops, nbytes, tokens, eff.prompt_overhead_s)


def decode_time(model, proc, tp, eff: Efficiency, batch, context):
    """Seconds of one decode iteration of ``batch`` sequences with ``context`` tokens each (arrays allowed)."""
    batch = np.asarray(batch, dtype=np.float64)
    context = np.asarray(context, dtype=np.float64)
    pb, kv = _model_bytes(model)
    flops = 2 * model.params(active=True) * batch + 4 * model.num_layers * model.hidden_size * batch * context
    nbytes = (_weights_read(model, batch) + kv * batch * (context + 1)
              + 4 * model.num_layers * batch * model.hidden_size * pb)
    return _time(model, proc, tp, eff, flops, nbytes, batch, eff.token_overhead_s)


EFFICIENCY_KEYS = ("compute", "memory", "prompt_overhead_s", "token_overhead_s")
#: Bounds of the factors: an efficiency below 0.1% or an overhead above 10 s per iteration is not a GPU.
MIN_EFFICIENCY = 1e-3
MAX_OVERHEAD_S = 10.0


@lru_cache(maxsize=8)
def load_efficiency(path=DEFAULT_EFFICIENCY) -> dict[str, Efficiency]:
    """GPU -> fitted factors; an entry ``like = "<gpu>"`` takes another GPU's (for GPUs nobody profiled)."""
    from sweepsim.errors import read_toml
    path = Path(path)
    fld = "performance_model.efficiency"
    raw = read_toml(path, fld, "roofline efficiency file (`sweepsim perf fit` writes one)")
    out, like = {}, {}
    for gpu, d in raw.items():
        if not isinstance(d, dict):
            raise InputError(path, gpu, "must be a table of one GPU: compute, memory, prompt_overhead_s, "
                                        'token_overhead_s, or like = "<gpu>"')
        if "like" in d:
            if set(d) != {"like"} or not isinstance(d["like"], str):
                raise InputError(path, f"{gpu}.like", 'a GPU taking another\'s factors has only like = "<gpu>"')
            like[gpu] = d["like"]
            continue
        bad = sorted(set(d) - set(EFFICIENCY_KEYS))
        if bad:
            raise InputError(path, f"{gpu}.{bad[0]}", f"unknown key; {allowed(EFFICIENCY_KEYS)}")
        vals = {}
        for k in EFFICIENCY_KEYS:
            v = d.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(path, f"{gpu}.{k}", f"must be a finite number, got {v!r}")
            vals[k] = float(v)
        for k in ("compute", "memory"):
            if not MIN_EFFICIENCY <= vals[k] <= 1:
                raise InputError(path, f"{gpu}.{k}", f"compute and memory efficiencies must be from {MIN_EFFICIENCY} "
                                                     f"to 1, got {vals[k]!r}")
        for k in ("prompt_overhead_s", "token_overhead_s"):
            if not 0 <= vals[k] <= MAX_OVERHEAD_S:
                raise InputError(path, f"{gpu}.{k}", f"must be from 0 to {MAX_OVERHEAD_S:g} s, got {vals[k]!r}")
        out[gpu] = Efficiency(**vals)   # EFFICIENCY_KEYS are its fields
    for gpu in like:   # chains resolve in any order; a loop or an unknown GPU is an error
        seen, g = [gpu], like[gpu]
        while g in like:
            if g in seen:
                raise InputError(path, f"{gpu}.like", f"loops: {' -> '.join(seen + [g])}")
            seen.append(g)
            g = like[g]
        if g not in out:
            raise InputError(path, f"{gpu}.like", f"unknown GPU {g!r}; fitted GPUs: {', '.join(sorted(out)) or 'none'}")
        out[gpu] = out[g]
    return out


def efficiency_for(gpu: str, path=None, compute=None, memory=None, source=None) -> Efficiency:
    table = load_efficiency(Path(path) if path else DEFAULT_EFFICIENCY)
    if gpu not in table:
        raise InputError(source, "performance_model", f"no roofline efficiency for GPU {gpu!r} in "
                                                      f"{path or DEFAULT_EFFICIENCY}; {allowed(table)}")
    e = table[gpu]
    return Efficiency(compute if compute is not None else e.compute, memory if memory is not None else e.memory,
                      e.prompt_overhead_s, e.token_overhead_s)


def curve(model, proc, tp, eff: Efficiency, context_tokens: float, scale: float = 1.0):
    """(knots, prompt times, token times) over batch tokens for the kernels' tables: a prefill of one prompt of
    bt tokens; a decode of bt sequences with ``context_tokens`` of context each."""
    if not proc.has_roofline_figures:
        raise InputError(None, "performance_model", f"GPU {proc.name} has no peak_tflops / hbm_gbs / nvlink_gbs "
                                                    "in configs/hardware/processors.toml: the roofline needs them")
    if model.intermediate_size is None:
        raise InputError(None, "model", f"{model.name} has no intermediate_size in configs/models/models.toml: "
                                        "the roofline needs its architecture")
    return (KNOTS.copy(), prefill_time(model, proc, tp, eff, KNOTS) * scale,
            decode_time(model, proc, tp, eff, KNOTS, context_tokens) * scale)


# ------------------------------------------------------------------------------------------------ fitting


def profiled_points(db_path):
    """Every row of a profiled table as arrays: model, gpu, tp, prompt_size, batch_size, prompt_s, token_s;
    checked (after ``performance.load_db``'s checks of its columns and numbers, which the caller runs): every
    model and GPU in the catalogs, the GPU with roofline figures, tensor parallelism 1, 2, 4 or 8. An error names
    the first bad value and what is allowed."""
    import polars as pl
    from sweepsim.config.catalog import models, processors
    df = pl.read_csv(db_path, infer_schema_length=0)
    num = {c: df[c].str.strip_chars().cast(pl.Float64).to_numpy()
           for c in ("tensor_parallel", "prompt_size", "batch_size", "prompt_time", "token_time")}
    model = np.array([m.strip() for m in df["model"].to_list()])
    gpu = np.array([g.strip() for g in df["hardware"].to_list()])
    field = "--db"
    for name, values, table in (("model", model, models()), ("hardware", gpu, processors())):
        bad = sorted(set(values) - set(table))
        if bad:
            raise InputError(db_path, field, f"{name} {bad[0]!r} is not in the catalog ({allowed(table)}); add it "
                                             "to configs/ or drop its rows")
    for g in sorted(set(gpu)):
        if not processors()[g].has_roofline_figures:
            raise InputError(db_path, field, f"GPU {g} has no peak_tflops / hbm_gbs / nvlink_gbs in "
                                             "configs/hardware/processors.toml")
    tp = num["tensor_parallel"]
    if not np.all(np.isin(tp, (1, 2, 4, 8))):
        raise InputError(db_path, field, f"tensor_parallel {tp[~np.isin(tp, (1, 2, 4, 8))][0]:g}; allowed: 1, 2, 4, 8")
    return {"model": model, "gpu": gpu, "tp": tp.astype(np.int64), "prompt": num["prompt_size"],
            "batch": num["batch_size"], "prompt_s": num["prompt_time"] / 1000, "token_s": num["token_time"] / 1000}


def _groups(pts, rows, models, procs):
    """Rows split by (model, GPU, TP): [(model, processor, tp, positions in rows)]."""
    keys = [(pts["model"][i], pts["gpu"][i], int(pts["tp"][i])) for i in rows]
    out = []
    for key in sorted(set(keys)):
        pos = np.array([k == key for k in keys])
        out.append((models[key[0]], procs[key[1]], key[2], np.flatnonzero(pos)))
    return out


def _predict(pts, rows, eff, groups):
    pp = np.empty(len(rows))
    tt = np.empty(len(rows))
    for m, p, tp, pos in groups:
        sel = rows[pos]
        pp[pos] = prefill_time(m, p, tp, eff, pts["prompt"][sel], pts["batch"][sel])
        tt[pos] = decode_time(m, p, tp, eff, pts["batch"][sel], pts["prompt"][sel])
    return pp, tt


OVERHEADS = np.concatenate([[0.0], np.geomspace(1e-4, 0.2, 40)])


def _best_overhead(pred, y):
    """(overhead, loss): the overhead among OVERHEADS minimising the sum of |log(predicted / profiled)| (robust:
    the profiled tables hold points no hardware can reach, e.g. llama2-70b prefill of 32k tokens on 2 A100s in
    0.8 s, and a squared loss would follow them)."""
    loss = np.abs(np.log((pred[None, :] + OVERHEADS[:, None]) / y[None, :])).sum(axis=1)
    k = int(np.argmin(loss))
    return float(OVERHEADS[k]), float(loss[k])


def fit_gpu(pts, rows, models, procs, grid: int = 40) -> Efficiency:
    """Efficiencies of one GPU minimising the absolute log error of prefill and decode times over ``rows`` (a
    grid over e_c and e_m from 2% to 100%, and over each phase's overhead)."""
    rows = np.asarray(rows)
    yp, yt = pts["prompt_s"][rows], pts["token_s"][rows]
    groups = _groups(pts, rows, models, procs)
    levels = np.geomspace(0.02, 1.0, grid)
    best = None
    for ec in levels:
        for em in levels:
            pp, tt = _predict(pts, rows, Efficiency(ec, em, 0.0, 0.0), groups)
            op, lp = _best_overhead(pp, yp)
            ot, lt = _best_overhead(tt, yt)
            if best is None or lp + lt < best[0]:
                best = (lp + lt, Efficiency(float(ec), float(em), op, ot))
    return best[1]


def relative_errors(pts, rows, eff, models, procs):
    """(prefill, decode) relative errors |predicted / profiled - 1| over ``rows``."""
    rows = np.asarray(rows)
    pp, tt = _predict(pts, rows, eff, _groups(pts, rows, models, procs))
    return np.abs(pp / pts["prompt_s"][rows] - 1), np.abs(tt / pts["token_s"][rows] - 1)


def _summary(errs) -> str:
    return f"median {100 * np.median(errs):.1f}%, p90 {100 * np.percentile(errs, 90):.1f}%"


def evaluate(db_path, grid: int = 40):
    """Fit per GPU on everything, then leave-one-model-out and leave-one-GPU-out; returns (fits, report
    lines)."""
    from sweepsim.config.catalog import models as model_table, processors
    pts = profiled_points(db_path)   # every row: a catalog model on a catalog GPU
    models, procs = model_table(), processors()
    if not len(pts["model"]):
        raise InputError(db_path, "--db", "no profiled rows to fit")
    gpus = sorted(set(pts["gpu"]))
    names = sorted(set(pts["model"]))
    fits, lines = {}, []
    for g in gpus:
        rows = np.flatnonzero(pts["gpu"] == g)
        fits[g] = fit_gpu(pts, rows, models, procs, grid)
        ep, et = relative_errors(pts, rows, fits[g], models, procs)
        lines.append(f"in sample {g}: prefill {_summary(ep)}; decode {_summary(et)} ({len(rows)} points)")
    for held in names:   # leave one model out: fit each GPU on the other models, predict this one
        eps, ets = [], []
        for g in gpus:
            train = np.flatnonzero((pts["gpu"] == g) & (pts["model"] != held))
            test = np.flatnonzero((pts["gpu"] == g) & (pts["model"] == held))
            if not len(train) or not len(test):
                continue
            ep, et = relative_errors(pts, test, fit_gpu(pts, train, models, procs, grid), models, procs)
            eps.append(ep)
            ets.append(et)
        if eps:
            lines.append(f"leave-one-model-out, {held} held out: prefill {_summary(np.concatenate(eps))}; "
                         f"decode {_summary(np.concatenate(ets))}")
    for held in gpus:    # leave one GPU out: that GPU predicted with each other GPU's factors
        test = np.flatnonzero(pts["gpu"] == held)
        for other in gpus:
            if other != held:
                ep, et = relative_errors(pts, test, fits[other], models, procs)
                lines.append(f"leave-one-GPU-out, {held} with {other}'s factors: prefill {_summary(ep)}; "
                             f"decode {_summary(et)}")
    return fits, lines


def write_efficiency(fits: dict[str, Efficiency], path, like: dict[str, str], source: str):
    lines = [f"# Roofline efficiencies per GPU, fitted by `sweepsim perf fit` on {source}.",
             "# compute / memory: achieved fraction of peak dense FP16 FLOP/s / of HBM bandwidth; overheads: seconds",
             "# added to every prefill / decode iteration. GPUs nobody profiled take a profiled GPU's factors (like).", ""]
    for g, e in fits.items():
        lines += [f'["{g}"]', f"compute = {e.compute!r}", f"memory = {e.memory!r}",
                  f"prompt_overhead_s = {e.prompt_overhead_s!r}", f"token_overhead_s = {e.token_overhead_s!r}", ""]
    for g, other in like.items():
        lines += [f'["{g}"]', f'like = "{other}"', ""]
    from sweepsim.atomic import atomic_write
    text = "\n".join(lines)
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))
    load_efficiency.cache_clear()

