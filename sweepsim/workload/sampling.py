"""Synthetic request traces generated from a spec (``spec.TraceSpec``: ``sweepsim trace gen`` and ``[trace]``
generator tables in run configs), and the size limit checked before anything is drawn.

A trace spec is one or more applications, each with
- sizes: ``azure-code`` / ``azure-conv`` (empirical: (prompt, output) pairs resampled with replacement from the
  shipped Azure 2023 traces, keeping their joint distribution; ``independent`` samples the two columns
  separately, as SplitwiseSim's generate_trace.py does), ``trace:PATH`` (the same from any trace file),
  ``fixed:P,T``, ``lognormal:MU_P,SIGMA_P,MU_T,SIGMA_T`` (parameters of the underlying normal, rounded to whole
  tokens) or ``uniform:PMIN,PMAX,TMIN,TMAX`` (whole numbers, bounds included), then clipped to
  [prompt_min, prompt_max] and [token_min, token_max] (minimum 1);
- arrivals: Poisson at ``rate`` req/s; a gamma renewal process with coefficient of variation ``cv``
  (cv > 1 is burstier than Poisson); ``replay``: the source trace's own timestamps and sizes, time-compressed
  to ``scale`` x its rate (or to ``rate``), repeated back to back if more requests are needed; or a rate
  ``profile`` CSV (columns time [s] from 0, rate [req/s]; ``profile_interp`` step or linear, the last rate
  holds afterwards), optionally rescaled to a mean ``rate``, with Poisson (or gamma ``cv``) arrivals obtained
  by time-rescaling a unit-rate process; or the built-in ``profile = "diurnal"`` (no file; ``_diurnal``):
  with trough ratio q (``trough_ratio``, default 0.3), peak hour h (``peak_hour``, default 14) and period P
  (``period``, default 86400 s),
      rate(t) = rate * s(t) / mean(s),  s(t) = q + (1 - q) * (1 + cos(2 pi (t - 3600 h) / P)) / 2,
  i.e. for P = 1 day s(t) = q + (1 - q) (1 + cos(2 pi (t/3600 - h) / 24)) / 2: the rate peaks at hour h, is q x
  the peak half a period later, and ``rate`` is its mean over every whole period (mean(s) = (1 + q) / 2; the
  profile is tabulated at P/1440 steps (one minute for a day), linearly interpolated and repeated every P);
- optional annotations: ``workload`` (prod|batch|dev), ``model``, ``region`` (one value or fractions
  ``{name = fraction}``), ``slo_ttft`` / ``slo_e2e`` (seconds, or per workload ``{prod = 1, batch = 60}``);
- multi-region serving columns (SageServe; see ``sweepsim.workload.trace``): ``workload`` fractions over prod
  (interactive), batch (prod batch jobs) and dev; batch requests get ``batch_id`` k // ``batch_job_size``
  (default 128) for the k-th batch request of their application in arrival order (consecutive batch requests
  form a job; the applications' jobs are numbered one after the other), the others -1; ``sla`` (seconds, or
  per class ``{prod = 10, batch = 3600, dev = 86400}``; a class left out has no SLA, empty cell); ``region``
  fractions draw the first region of each request's priority order, the rest being the other regions in the
  order ``regions`` lists them (or, without ``regions``, the order ``region`` lists them); ``regions`` alone is
  every request's order. Written columns: workload (prod|batch|dev), batch_id, sla, region (the first
  region), regions ("westus,eastus,centralus");
and the whole trace has a ``seed`` and ``duration`` (arrivals in [0, duration)) and/or ``count`` (the first
count requests). Applications are merged in arrival order (ties: application order); request ids follow.

Everything is seeded (numpy Generator on PCG64) and vectorised (no Python loop per request). Application i
draws from its own stream (i = 0: ``PCG64(seed)``, so that a single Poisson application reproduces
``poisson_trace``; i > 0: ``SeedSequence(seed, spawn_key=(i,))``); annotations from a separate stream, so
adding them leaves arrivals and sizes unchanged (and the serving columns add no draws: ``batch_id``, ``sla`` and
``regions`` follow from the workload and region draws).

Size limit: before anything is allocated, ``estimate_requests`` bounds the number of requests a spec produces
(per application min(count, arrivals expected in the duration, with the generator's own margin)) and
``check_limit`` refuses specs over ``max_requests()`` (default 20,000,000; ``SWEEPSIM_MAX_REQUESTS``, or
``sweepsim trace gen --max-requests``). The generator never draws more than the limit per application, even on
an unlucky draw (it fails cleanly instead).
"""
import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from sweepsim.errors import InputError, allowed
from sweepsim.workload.limits import MAX_ARRIVAL_S, MAX_TOKENS
from sweepsim.workload.spec import AZURE_2023, Annotations, AppSpec, SLOS, TraceSpec, toml_field
from sweepsim.workload.trace import ANNOTATIONS, Trace, read_extras


MAX_REQUESTS_ENV = "SWEEPSIM_MAX_REQUESTS"


DEFAULT_MAX_REQUESTS = 20_000_000


@lru_cache(maxsize=8)
def _source(key: str, mtime_ns: int, size: int):
    """(arrival s from 0, prompt, token) of an empirical source file (Azure or sweepsim schema)."""
    path = AZURE_2023.get(key) or Path(key)
    if key in AZURE_2023:
        from sweepsim.workload.azure import import_azure
        az = import_azure(path)
        return az.arrival, az.prompt, az.token
    from sweepsim.workload.trace import load_trace
    tr = load_trace(path)
    return tr.arrival - tr.arrival[0], tr.prompt_size, tr.token_size


def empirical_source(sizes: str):
    key = sizes if sizes in AZURE_2023 else sizes.partition(":")[2]
    st = (AZURE_2023.get(key) or Path(key)).stat()
    return _source(key, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _profile(path: str, mtime_ns: int):
    try:
        df = pl.read_csv(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(path, None, f"cannot read rate profile: {str(e).splitlines()[0]}") from None
    missing = [c for c in ("time", "rate") if c not in df.columns]
    if missing:
        raise InputError(path, ", ".join(missing), f"missing column(s); a rate profile has columns time "
                                                   f"(seconds from 0), rate (req/s) (found: {', '.join(df.columns)})")
    if df.height == 0:
        raise InputError(path, None, "rate profile has no rows")
    try:
        t = df["time"].cast(pl.Float64).to_numpy().astype(np.float64)
        r = df["rate"].cast(pl.Float64).to_numpy().astype(np.float64)
    except pl.exceptions.PolarsError:
        raise InputError(path, "time, rate", "must be numbers") from None
    if not np.all(np.isfinite(t)) or t[0] != 0:
        raise InputError(path, "time", f"must start at 0 (seconds), got {t[0]!r}")
    bad = np.flatnonzero(np.diff(t) <= 0)
    if len(bad):
        raise InputError(path, "time", f"must be strictly increasing (line {bad[0] + 3} is not after the line "
                                       f"above it)")
    if not np.all(np.isfinite(r)) or np.any(r < 0) or not np.any(r > 0):
        raise InputError(path, "rate", "must be finite req/s >= 0, not all 0")
    return t, r


class _Intensity:
    """Piecewise rate r(t) (step or linear between the profile's points, constant after the last one) and the
    inverse of its integral, for time-rescaling a unit-rate process."""

    def __init__(self, t, r, interp, factor=1.0):
        self.t = t
        self.r = r * factor
        if interp == "linear" and len(t) > 1:
            self.g = np.append(np.diff(self.r) / np.diff(t), 0.0)
        else:
            self.g = np.zeros(len(t))
        dt = np.diff(t)
        self.L = np.concatenate(([0.0], np.cumsum(self.r[:-1] * dt + 0.5 * self.g[:-1] * dt * dt)))

    def cumulative(self, x: float) -> float:
        k = max(int(np.searchsorted(self.t, x, side="right")) - 1, 0)
        u = x - self.t[k]
        return float(self.L[k] + self.r[k] * u + 0.5 * self.g[k] * u * u)

    def total(self) -> float:
        return math.inf if self.r[-1] > 0 else float(self.L[-1])

    def invert(self, s: np.ndarray) -> np.ndarray:
        k = np.maximum(np.searchsorted(self.L, s, side="right") - 1, 0)
        d = s - self.L[k]
        r, g = self.r[k], self.g[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = 2.0 * d / (r + np.sqrt(np.maximum(r * r + 2.0 * g * d, 0.0)))
        return self.t[k] + np.where(d > 0, u, 0.0)


class _Periodic:
    """An intensity over one period [0, P] (``_Intensity``), repeated every P."""

    def __init__(self, one: _Intensity, period: float):
        self.one = one
        self.P = period
        self.LP = one.cumulative(period)

    def cumulative(self, x: float) -> float:
        k = math.floor(x / self.P)
        return k * self.LP + self.one.cumulative(x - k * self.P)

    def total(self) -> float:
        return math.inf

    def invert(self, s: np.ndarray) -> np.ndarray:
        k = np.floor(s / self.LP)
        t = self.one.invert(s - k * self.LP)
        np.minimum(t, self.P, out=t)
        t += k * self.P
        return np.maximum.accumulate(t) if len(t) else t   # non-decreasing despite rounding at period ends


DIURNAL_STEPS = 1440                             # table points per period (one per minute for a day)


def diurnal_rate(t, peak_hour: float, trough_ratio: float, period: float) -> np.ndarray:
    """The diurnal profile's shape s(t) (1 at the peak, ``trough_ratio`` at the trough; see the module
    docstring): q + (1 - q) (1 + cos(2 pi (t - 3600 peak_hour) / period)) / 2."""
    q = trough_ratio
    return q + (1.0 - q) * (1.0 + np.cos(2.0 * np.pi * (np.asarray(t, np.float64) - 3600.0 * peak_hour) / period)) / 2


def _diurnal(app: AppSpec) -> _Periodic:
    """The diurnal intensity of an application: its shape tabulated over one period, scaled to a mean
    ``app.rate`` over the period (exactly, for the interpolated table), repeated."""
    t = np.linspace(0.0, app.period, DIURNAL_STEPS + 1)
    r = diurnal_rate(t, app.peak_hour, app.trough_ratio, app.period)
    unit = _Intensity(t, r, "linear")
    return _Periodic(_Intensity(t, r, "linear", app.rate * app.period / unit.cumulative(app.period)), app.period)


def _app_rng(seed: int, i: int, stream: int = 0) -> np.random.Generator:
    if i == 0 and stream == 0:
        return np.random.Generator(np.random.PCG64(seed))
    key = (i,) if stream == 0 else (i, stream)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


def _gaps(rng, mean, cv, n):
    if cv == 1.0:
        return rng.exponential(mean, n)
    k = 1.0 / (cv * cv)
    return rng.gamma(k, mean / k, n)


def _draw_bound(lam: float, cv: float) -> float:
    """Draws that cover ``lam`` expected arrivals of a renewal process with gap cv ``cv`` with a wide margin
    (> 10 standard deviations): what the generator draws first in duration mode, and the size estimate."""
    return lam * 1.2 + 10 * cv * math.sqrt(lam) + 10


def _renewal(rng, rate, cv, count, horizon, cap=math.inf, over=None):
    """Arrival times of a renewal process (``rate`` arrivals per unit time, gaps with coefficient of
    variation ``cv``): the first ``count`` arrivals (< horizon if given), or every arrival < horizon.
    With a horizon, at most ``_draw_bound(rate * horizon, cv)`` gaps are drawn first (count, if smaller), then
    more only if they did not reach the horizon (practically never), never more than ``cap`` in all:
    ``over(n, key, unlucky)`` makes the error raised then. (With count <= that bound, or without horizon, the
    draws are exactly those of the original ``poisson_trace``: do not reorder them.)"""
    mean = 1.0 / rate
    bound = _draw_bound(rate * horizon, cv) if horizon is not None else math.inf
    if count is not None and count <= bound:
        if count > cap:
            raise over(count, "count")
        a = np.cumsum(_gaps(rng, mean, cv, count))
        return a if horizon is None else a[a < horizon]
    if bound > cap:
        raise over(bound, "duration")
    n = int(bound)
    a = np.cumsum(_gaps(rng, mean, cv, n))
    chunks, drawn = [a], n
    while a[-1] < horizon and (count is None or drawn < count):  # the first chunk covers > 10 std deviations
        m = min(n // 4 + 10, cap - drawn)
        if m <= 0:
            raise over(drawn, "duration", True)
        a = a[-1] + np.cumsum(_gaps(rng, mean, cv, int(m)))
        chunks.append(a)
        drawn += m
    a = np.concatenate(chunks) if len(chunks) > 1 else a
    a = a[a < horizon]
    return a if count is None else a[:count]


def _replay_source(app: AppSpec, src, fld):
    """(arrivals from 0, prompt, token, scale, period) of a replayed source: time is divided by scale, and
    passes repeat every period (source time)."""
    arr, prompt, token = empirical_source(app.sizes)
    n = len(arr)
    span = float(arr[-1] - arr[0]) if n else 0.0
    if n < 2 or span <= 0:
        raise InputError(src, fld("replay"), "the source trace has fewer than two distinct timestamps")
    original = (n - 1) / span
    scale = app.rate / original if app.rate is not None else (app.scale or 1.0)
    period = span + span / (n - 1)  # passes repeat back to back, one mean gap apart
    return arr - arr[0], prompt, token, scale, period


def _replay_need(n, scale, period, count, duration):
    """Source rows a replay reads: count, or whole passes covering the duration (a float: may be huge)."""
    need = (duration * scale // period + 1) * n if duration is not None else math.inf
    return need if count is None else min(count, need)


def _replay(app: AppSpec, count, duration, src, fld):
    rel, prompt, token, scale, period = _replay_source(app, src, fld)
    n = len(rel)
    idx = np.arange(int(_replay_need(n, scale, period, count, duration)), dtype=np.int64)
    pos = idx % n
    t = (rel[pos] + period * (idx // n)) / scale
    if duration is not None:
        keep = t < duration
        t, pos = t[keep], pos[keep]
    return t, prompt[pos], token[pos]


def _intensity(app: AppSpec, duration):
    """The rate profile's intensity, rescaled to a mean ``app.rate`` if given (the diurnal profile: its mean
    over a period is ``app.rate``)."""
    if app.diurnal:
        return _diurnal(app)
    st = Path(app.profile).stat()
    t, r = _profile(app.profile, st.st_mtime_ns)
    lam = _Intensity(t, r, app.profile_interp)
    if app.rate is not None:
        h = duration if duration is not None else float(t[-1])
        if h <= 0:
            factor = app.rate / r[0]
        else:
            mean = lam.cumulative(h) / h
            if mean <= 0:
                raise InputError(app.profile, "rate", f"is 0 over the first {h:g} s; cannot rescale it to a mean "
                                                      f"rate")
            factor = app.rate / mean
        lam = _Intensity(t, r, app.profile_interp, factor)
    return lam


def _arrivals(app: AppSpec, rng, count, duration, src, fld, cap=math.inf, over=None):
    if app.profile is None and not app.diurnal:
        return _renewal(rng, app.rate, app.cv, count, duration, cap, over)
    lam = _intensity(app, duration)
    horizon = lam.cumulative(duration) if duration is not None else None
    s = _renewal(rng, 1.0, app.cv, count, horizon, cap, over)
    if len(s) and s[-1] >= lam.total():
        raise InputError(app.profile, "rate", f"ends at 0 req/s: the profile produces only about "
                                              f"{lam.total():.0f} requests; give duration instead of count")
    return lam.invert(s)


def max_requests() -> int:
    """The default limit on the requests of a generated trace: ``$SWEEPSIM_MAX_REQUESTS``, else 20,000,000."""
    v = os.environ.get(MAX_REQUESTS_ENV, "").strip()
    if not v:
        return DEFAULT_MAX_REQUESTS
    try:
        n = int(v)
    except ValueError:
        try:
            x = float(v)
            n = int(x) if math.isfinite(x) and x.is_integer() else 0
        except ValueError:
            n = 0
    if n < 1:
        raise InputError(None, MAX_REQUESTS_ENV, f"must be an integer >= 1 (requests), got {v!r}")
    return n


def _app_bound(spec: TraceSpec, app: AppSpec, src, fld) -> float:
    """Upper bound (with the generator's margin) of the requests one application produces."""
    if app.replay:
        rel, _, _, scale, period = _replay_source(app, src, fld)
        return _replay_need(len(rel), scale, period, spec.count, spec.duration)
    if spec.duration is None:
        return spec.count
    if app.profile is None and not app.diurnal:
        bound = _draw_bound(app.rate * spec.duration, app.cv)
    else:
        bound = _draw_bound(_intensity(app, spec.duration).cumulative(spec.duration), app.cv)
    return bound if spec.count is None else min(spec.count, bound)


def estimate_requests(spec: TraceSpec, src=None, fld=toml_field) -> tuple:
    """(upper bound of the requests the spec produces, the key that sets it: "count" or "duration"), without
    generating anything: per application min(count, expected arrivals in the duration with the margin the
    generator draws), summed, at most count. Reads the replay sources and rate profiles (cached)."""
    multi = len(spec.apps) > 1
    total = 0
    for i, app in enumerate(spec.apps):
        total += _app_bound(spec, app, src, (lambda k, i=i: fld(k, i)) if multi else (lambda k: fld(k)))
    if spec.count is not None and spec.count <= total:
        return spec.count, "count"
    return total, "duration"


def _fmt_requests(n) -> str:
    if n < 10 ** 15:
        return f"about {int(n)}"
    return f"about {float(n):.3g}" if n < 1e300 else "more than 1e300"


def _over_limit(src, field, n, limit, unlucky=False) -> InputError:
    what = (f"drew more than {limit} requests (an unlucky draw)" if unlucky
            else f"would generate {_fmt_requests(n)} requests")
    return InputError(src, field, f"{what}, over the limit of {limit} (raise it with --max-requests, or "
                                  f"{MAX_REQUESTS_ENV})")


def check_limit(spec: TraceSpec, src=None, fld=toml_field, limit=None) -> int:
    """Refuse (InputError naming count or duration) a spec whose ``estimate_requests`` exceeds ``limit``
    (default ``max_requests()``), before anything is allocated. Returns the limit."""
    limit = max_requests() if limit is None else int(limit)
    n, key = estimate_requests(spec, src, fld)
    if n > limit:
        raise _over_limit(src, fld(key), n, limit)
    return limit


def _sizes(app: AppSpec, rng, n):
    kind, _, arg = app.sizes.partition(":")
    if app.sizes in AZURE_2023 or kind == "trace":
        _, P, T = empirical_source(app.sizes)
        if app.independent:
            prompt = P[rng.integers(0, len(P), n)]
            token = T[rng.integers(0, len(T), n)]
        else:
            pick = rng.integers(0, len(P), n)
            prompt, token = P[pick], T[pick]
    elif kind == "fixed":
        p, t = map(int, arg.split(","))
        prompt, token = np.full(n, p, np.int64), np.full(n, t, np.int64)
    elif kind == "uniform":
        p0, p1, t0, t1 = map(int, arg.split(","))
        prompt = rng.integers(p0, p1 + 1, n, dtype=np.int64)
        token = rng.integers(t0, t1 + 1, n, dtype=np.int64)
    else:  # lognormal
        mp, sp, mt, s_t = map(float, arg.split(","))
        prompt = np.rint(np.minimum(rng.lognormal(mp, sp, n), MAX_TOKENS)).astype(np.int64)
        token = np.rint(np.minimum(rng.lognormal(mt, s_t, n), MAX_TOKENS)).astype(np.int64)
    return _clip(prompt, app.prompt_min, app.prompt_max), _clip(token, app.token_min, app.token_max)


def _clip(a, lo, hi):
    if len(a) == 0 or (a.min() >= lo and (hi is None or a.max() <= hi)):
        return a
    return np.clip(a, lo, hi if hi is not None else None)


def _categorical(rng, fractions, n):
    """Codes into ``fractions``'s names, drawn with the given probabilities."""
    if len(fractions) == 1:
        return np.zeros(n, np.int32)
    cum = np.cumsum([f for _, f in fractions])
    return np.minimum(np.searchsorted(cum / cum[-1], rng.random(n), side="right"), len(fractions) - 1) \
        .astype(np.int32)


#: float annotation columns (NaN: none, written as empty cells)
FLOAT_COLUMNS = SLOS + ("sla",)


#: generated annotation columns, in the order they are written
COLUMNS = ANNOTATIONS + ("batch_id", "sla", "regions")


def _annotate(app, rng, n) -> dict:
    """name -> (codes, names) for categorical columns, ndarray for SLOs, SLA and batch ids (local job numbers,
    -1 outside batch jobs). ``app``: an ``AppSpec`` or ``Annotations``. The draws (from ``rng``, in the order
    workload, model, region) are those of the original annotations: the serving columns add none."""
    out = {}
    for name in ("workload", "model", "region"):
        fr = getattr(app, name)
        if fr is not None:
            out[name] = (_categorical(rng, fr, n), [k for k, _ in fr])
    for name in FLOAT_COLUMNS:
        slo = getattr(app, name)
        if slo is None:
            continue
        if slo[0][0] == "*":
            out[name] = np.full(n, slo[0][1])
        elif "workload" in out:
            codes, names = out["workload"]
            table = dict(slo)
            out[name] = np.array([table.get(w, np.nan) for w in names])[codes]
        else:  # sla per class without workload: every request is interactive prod
            out[name] = np.full(n, dict(slo).get("prod", np.nan))
    if "workload" in out:
        codes, names = out["workload"]
        batch_id = np.full(n, -1, np.int64)
        if "batch" in names:
            is_batch = codes == names.index("batch")
            batch_id[is_batch] = np.arange(np.count_nonzero(is_batch), dtype=np.int64) // app.batch_job_size
        out["batch_id"] = batch_id
    if app.regions is not None or app.region is not None:
        if app.region is None:
            out["region"] = (np.zeros(n, np.int32), [app.regions[0]])
        codes, firsts = out["region"]
        rest = app.regions if app.regions is not None else firsts
        out["regions"] = (codes, [",".join([f] + [r for r in rest if r != f]) for f in firsts])
    return out


def _merge_annotations(parts: list, sizes: list, merged) -> dict:
    """The annotation columns of the merged trace (pyarrow dictionary arrays for categorical ones, NumPy
    arrays otherwise) from the applications' ``_annotate`` parts (popped), ``merged(arrays, dtype)`` merging
    per-application arrays in trace order."""
    out = {}
    for name in COLUMNS:
        if not any(name in p for p in parts):
            continue
        if name in FLOAT_COLUMNS:
            out[name] = merged([p.pop(name) if name in p else np.full(k, np.nan) for p, k in zip(parts, sizes)],
                               np.float64)
            continue
        if name == "batch_id":   # job numbers follow each other across applications
            arrays, jobs = [], 0
            for p, k in zip(parts, sizes):
                b = p.pop(name) if name in p else np.full(k, -1, np.int64)
                top = int(b.max()) + 1 if len(b) else 0
                if jobs and top > 0:
                    b = np.where(b >= 0, b + jobs, -1)
                arrays.append(b)
                jobs += max(top, 0)
            out[name] = merged(arrays, np.int64)
            continue
        names = []
        for p in parts:
            names += [x for x in p.get(name, (None, []))[1] if x not in names]
        codes = []
        for p, k in zip(parts, sizes):
            if name in p:
                c, local = p.pop(name)
                remap = np.array([names.index(x) for x in local], np.int32)
                codes.append(c if np.array_equal(remap, np.arange(len(local))) else remap[c])
            else:
                codes.append(np.full(k, -1, np.int32))
        c = merged(codes, np.int32)
        mask = c < 0
        out[name] = pa.DictionaryArray.from_arrays(pa.array(c, mask=mask if mask.any() else None),
                                                   pa.array(names, pa.string()))
    return out


def annotation_columns(ann: Annotations, n: int, seed: int = 0) -> dict:
    """The annotation columns of ``n`` requests (e.g. an imported trace's) drawn as the generator draws those of
    its first application with this seed (``sweepsim trace import azure --model ... --workload ...``)."""
    part = _annotate(ann, _app_rng(seed, 0, 1), n)
    return _merge_annotations([part], [n], lambda arrays, dtype: _cat(arrays, dtype))


def _mean_rate(app: AppSpec):
    """(mean req/s, cv) of a constant-rate application, None for replay and rate profiles."""
    if app.replay or app.profile is not None or app.diurnal:
        return None
    return app.rate, app.cv


def _caps(spec: TraceSpec) -> list:
    """Requests to draw per application in count mode. With several constant-rate applications, each draws
    its expected share of the first ``count`` merged arrivals plus a wide margin (instead of ``count``), so
    that memory and time stay proportional to ``count``; ``generate_columns`` checks the result and
    falls back to full draws if a share was short."""
    n = spec.count
    caps = [n] * len(spec.apps)
    if n is None or len(spec.apps) < 2:
        return caps
    rates = [_mean_rate(a) for a in spec.apps]
    if any(r is None for r in rates):  # replay or profile: no constant share to estimate
        return caps
    total = sum(r for r, _ in rates)
    maxcv = max(max(cv, 1.0) for _, cv in rates)
    for i, (r, cv) in enumerate(rates):
        share = r / total
        m = n * share
        caps[i] = min(n, int(m * 1.02 + 10 * (max(cv, 1.0) * math.sqrt(m) + share * maxcv * math.sqrt(n)) + 100))
    return caps


def _generate_app(spec: TraceSpec, i: int, app: AppSpec, count, src, f, limit=math.inf, top=toml_field) -> dict:
    rng = _app_rng(spec.seed, i)

    def over(n, key, unlucky=False):
        return _over_limit(src, top(key), n, limit, unlucky)

    with np.errstate(over="ignore"):
        if app.replay:
            arrival, prompt, token = _replay(app, count, spec.duration, src, f)
        else:
            arrival = _arrivals(app, rng, count, spec.duration, src, f, limit, over)
    if len(arrival) and not arrival[-1] <= MAX_ARRIVAL_S:
        raise InputError(src, f("scale" if app.replay and app.scale is not None else "rate"),
                         f"is so small that arrivals go beyond {MAX_ARRIVAL_S:g} s; raise it")
    if not app.replay:
        prompt, token = _sizes(app, rng, len(arrival))
    part = {"arrival_timestamp": arrival, "prompt_size": prompt, "token_size": token}
    part.update(_annotate(app, _app_rng(spec.seed, i, 1), len(arrival)))
    return part


def generate_columns(spec: TraceSpec, src=None, fld=toml_field, limit=None) -> dict:
    """The trace's columns (NumPy arrays; categorical annotations as pyarrow dictionary arrays), merged over
    the applications in arrival order. Refuses specs over ``limit`` requests (default ``max_requests()``,
    see ``check_limit``) before drawing anything."""
    limit = check_limit(spec, src, fld, limit)
    multi = len(spec.apps) > 1
    fields_of = [(lambda k, i=i: fld(k, i)) if multi else (lambda k: fld(k)) for i in range(len(spec.apps))]
    caps = _caps(spec)

    def gen_app(i, a, count):
        return _generate_app(spec, i, a, count, src, fields_of[i], limit, fld)

    parts = [gen_app(i, a, caps[i]) for i, a in enumerate(spec.apps)]
    if spec.count is not None and caps != [spec.count] * len(caps):
        horizon = min([spec.duration if spec.duration is not None else math.inf]
                      + [float(p["arrival_timestamp"][-1]) for p, c in zip(parts, caps)
                         if len(p["arrival_timestamp"]) == c])
        if sum(int(np.count_nonzero(p["arrival_timestamp"] < horizon)) for p in parts) < spec.count:
            # a share was short (practically never): draw every application in full
            parts = [gen_app(i, a, spec.count) for i, a in enumerate(spec.apps)]
    sizes = [len(p["arrival_timestamp"]) for p in parts]
    order = None
    if multi:
        order = np.argsort(_cat([p["arrival_timestamp"] for p in parts], np.float64), kind="stable")
        if spec.count is not None:
            order = order[:spec.count]

    def merged(arrays, dtype):
        a = _cat(arrays, dtype)
        return a if order is None else a[order]

    cols = {}
    for name, dtype in (("arrival_timestamp", np.float64), ("prompt_size", np.int64), ("token_size", np.int64)):
        cols[name] = merged([p.pop(name) for p in parts], dtype)
    n = len(cols["arrival_timestamp"])
    if multi:
        app_id = merged([np.full(k, a.application_id, np.int64) for k, a in zip(sizes, spec.apps)], np.int64)
    else:
        app_id = np.full(n, spec.apps[0].application_id, np.int64)
    out = {"request_id": np.arange(n, dtype=np.int64), "request_type": np.full(n, 2, np.int64),
           "application_id": app_id, "arrival_timestamp": cols["arrival_timestamp"],
           "batch_size": np.ones(n, np.int64), "prompt_size": cols["prompt_size"], "token_size": cols["token_size"]}
    del cols
    out.update(_merge_annotations(parts, sizes, merged))
    return out


def _cat(arrays, dtype):
    return arrays[0].astype(dtype, copy=False) if len(arrays) == 1 else np.concatenate(arrays).astype(dtype,
                                                                                                     copy=False)


def to_trace(cols: dict, name: str) -> Trace:
    """The in-memory trace of generated columns, annotations and serving columns as ``load_trace`` reads
    them from the written file."""
    extra = {k: v for k, v in cols.items() if k in COLUMNS}
    ann, serving = read_extras(name, pa.table(extra)) if extra else ({}, None)
    return Trace(name, cols["request_id"], cols["application_id"], cols["arrival_timestamp"], cols["prompt_size"],
                 cols["token_size"], ann, serving)


def generate(spec: TraceSpec, src=None, fld=toml_field) -> Trace:
    """Generate the spec's trace in memory."""
    return to_trace(generate_columns(spec, src, fld), "generated")


def poisson_trace(sizes: str, rate: float, seed: int = 0, count: int | None = None,
                  duration: float | None = None) -> Trace:
    """Poisson arrivals at ``rate`` req/s for ``count`` requests or ``duration`` seconds; (prompt, output)
    pairs resampled jointly with replacement from the named Azure trace."""
    if count is None and duration is None:
        raise ValueError("give count or duration")
    if sizes not in AZURE_2023:
        raise InputError(None, "sizes", f"unknown size distribution {sizes!r}; {allowed(AZURE_2023)}")
    spec = TraceSpec((AppSpec(sizes, rate=float(rate)),), seed, duration, count)
    return to_trace(generate_columns(spec), f"{sizes}@{rate}")
