"""Synthetic request traces (``sweepsim trace gen`` and ``[trace]`` generator specs in run configs).

A trace spec (``TraceSpec``) is one or more applications (``AppSpec``), each with
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
  by time-rescaling a unit-rate process;
- optional annotations: ``workload`` (prod|batch), ``model``, ``region`` (one value or fractions
  ``{name = fraction}``), ``slo_ttft`` / ``slo_e2e`` (seconds, or per workload ``{prod = 1, batch = 60}``);
and the whole trace has a ``seed`` and ``duration`` (arrivals in [0, duration)) and/or ``count`` (the first
count requests). Applications are merged in arrival order (ties: application order); request ids follow.

Everything is seeded (numpy Generator on PCG64) and vectorised (no Python loop per request). Application i
draws from its own stream (i = 0: ``PCG64(seed)``, so that a single Poisson application reproduces
``poisson_trace``; i > 0: ``SeedSequence(seed, spawn_key=(i,))``); annotations from a separate stream, so
adding them leaves arrivals and sizes unchanged.

Run configs name a spec instead of a file; ``resolve_spec`` generates it once and caches the Parquet file under
``traces/.cache/<content hash>.parquet`` (the spec is stored in the file's metadata, see ``spec_of``).
"""
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sweepsim import PROJECT_ROOT
from sweepsim.atomic import atomic_write
from sweepsim.errors import InputError, allowed, check_output_path
from sweepsim.trace import Trace

#: bumped whenever generation changes, so that cached traces are regenerated
GENERATOR_VERSION = 1
AZURE_2023 = {"azure-code": PROJECT_ROOT / "traces" / "azure2023" / "azure_llm_2023_code.csv",
              "azure-conv": PROJECT_ROOT / "traces" / "azure2023" / "azure_llm_2023_conv.csv"}
SIZES_FORMS = ("azure-code", "azure-conv", "trace:PATH", "fixed:P,T", "lognormal:MU_P,SIGMA_P,MU_T,SIGMA_T",
               "uniform:PMIN,PMAX,TMIN,TMAX")
PROFILE_INTERP = ("step", "linear")
WORKLOADS = ("prod", "batch")
CATEGORICAL = ("workload", "model", "region")
SLOS = ("slo_ttft", "slo_e2e")
ANNOTATIONS = ("workload", "slo_ttft", "slo_e2e", "model", "region")
TRACE_COLUMNS = ("request_id", "request_type", "application_id", "arrival_timestamp", "batch_size", "prompt_size",
                 "token_size")
OUTPUT_SUFFIXES = (".csv", ".parquet")
METADATA_KEY = b"sweepsim.trace_spec"
CACHE_ENV = "SWEEPSIM_TRACE_CACHE"
MAX_TOKENS = 2 ** 40


# ------------------------------------------------------------------------------------------------ spec


@dataclass(frozen=True)
class AppSpec:
    sizes: str                                   # canonical sizes string (see SIZES_FORMS)
    application_id: int = 0
    independent: bool = False
    rate: float | None = None
    cv: float = 1.0
    replay: bool = False
    scale: float | None = None
    profile: str | None = None                   # path of the (time, rate) CSV
    profile_interp: str = "step"
    prompt_min: int = 1
    prompt_max: int | None = None
    token_min: int = 1
    token_max: int | None = None
    workload: tuple | None = None                # ((name, fraction), ...)
    model: tuple | None = None
    region: tuple | None = None
    slo_ttft: tuple | None = None                # (("*", seconds),) or ((workload, seconds), ...)
    slo_e2e: tuple | None = None


@dataclass(frozen=True)
class TraceSpec:
    apps: tuple
    seed: int = 0
    duration: float | None = None
    count: int | None = None

    def to_dict(self) -> dict:
        return {"seed": self.seed, "duration": self.duration, "count": self.count,
                "apps": [asdict(a) for a in self.apps]}


APP_KEYS = tuple(f.name for f in fields(AppSpec))
TOP_KEYS = ("seed", "duration", "count", "apps")
SPEC_KEYS = TOP_KEYS + APP_KEYS


def _toml_field(key, app=None):
    return f"trace.{key}" if app is None else f"trace.apps[{app}].{key}"


def _num(src, fld, v, *, integer=False, minimum=None, strict=True):
    """A number from TOML (int/float) or command-line text; ``strict``: > minimum, else >= minimum."""
    x = v
    if isinstance(v, str):
        try:
            x = int(v) if integer else float(v)
        except ValueError:
            x = None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (integer and not isinstance(x, int)) \
            or not math.isfinite(x):
        raise InputError(src, fld, f"must be {'an integer' if integer else 'a number'}, got {v!r}")
    if minimum is not None and (x <= minimum if strict else x < minimum):
        raise InputError(src, fld, f"must be {'>' if strict else '>='} {minimum}, got {v!r}")
    return int(x) if integer else float(x)


def _bool(src, fld, v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "yes", "false", "0", "no"):
        return v.lower() in ("true", "1", "yes")
    raise InputError(src, fld, f"must be true or false, got {v!r}")


def _mapping(src, fld, v) -> dict:
    """``{a = x, b = y}`` (TOML table) or ``"a=x,b=y"`` (text) -> dict; a bare ``"a"`` -> {"a": None}."""
    if isinstance(v, dict):
        return dict(v)
    if not isinstance(v, str) or not v.strip():
        raise InputError(src, fld, f"must be a name, or name=value pairs like 'prod=0.8,batch=0.2', got {v!r}")
    out = {}
    for part in v.split(","):
        name, eq, val = part.partition("=")
        name = name.strip()
        if not name or (eq and not val.strip()):
            raise InputError(src, fld, f"bad entry {part!r}; expected name=value pairs like 'prod=0.8,batch=0.2'")
        if name in out:
            raise InputError(src, fld, f"{name!r} given twice")
        out[name] = val.strip() if eq else None
    return out


def _fractions(src, fld, v, names=None) -> tuple:
    m = _mapping(src, fld, v)
    if len(m) == 1 and next(iter(m.values())) is None:
        m = {next(iter(m)): 1.0}
    out = []
    for name, f in m.items():
        if names is not None and name not in names:
            raise InputError(src, fld, f"unknown value {name!r}; {allowed(names)}")
        if f is None:
            raise InputError(src, fld, f"{name!r} needs a fraction (name=fraction, fractions summing to 1)")
        out.append((str(name), _num(src, fld, f, minimum=0.0, strict=False)))
    total = sum(f for _, f in out)
    if abs(total - 1.0) > 1e-9:
        raise InputError(src, fld, f"fractions must sum to 1, got {total:g}")
    return tuple(out)


def _slo(src, fld, v) -> tuple:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (("*", _num(src, fld, v, minimum=0.0)),)
    if isinstance(v, str) and "=" not in v:
        return (("*", _num(src, fld, v, minimum=0.0)),)
    m = _mapping(src, fld, v)
    out = []
    for name, x in m.items():
        if name not in WORKLOADS:
            raise InputError(src, fld, f"unknown workload {name!r}; {allowed(WORKLOADS)} (or one number for all)")
        out.append((name, _num(src, fld, x, minimum=0.0)))
    return tuple(out)


def _parse_sizes(src, fld, v, resolve) -> str:
    if not isinstance(v, str) or not v.strip():
        raise InputError(src, fld, f"must be a size distribution; {allowed(SIZES_FORMS)}")
    v = v.strip()
    if v in AZURE_2023:
        return v
    kind, _, arg = v.partition(":")
    if kind == "trace" and arg:
        p = Path(resolve(arg))
        if not p.is_file():
            raise InputError(src, fld, f"trace file not found: {arg}")
        return f"trace:{p.resolve()}"
    nargs = {"fixed": 2, "lognormal": 4, "uniform": 4}
    if kind not in nargs or not arg:
        raise InputError(src, fld, f"unknown size distribution {v!r}; {allowed(SIZES_FORMS)}")
    parts = [x.strip() for x in arg.split(",")]
    if len(parts) != nargs[kind]:
        raise InputError(src, fld, f"{kind} needs {nargs[kind]} comma-separated numbers; "
                                   f"{allowed([s for s in SIZES_FORMS if s.startswith(kind)])}")
    if kind == "lognormal":
        mu_p, s_p, mu_t, s_t = (_num(src, fld, x) for x in parts)
        if s_p < 0 or s_t < 0:
            raise InputError(src, fld, f"lognormal sigmas must be >= 0, got {v!r}")
        return f"lognormal:{mu_p!r},{s_p!r},{mu_t!r},{s_t!r}"
    xs = [_num(src, fld, x, integer=True, minimum=1, strict=False) for x in parts]
    if kind == "uniform" and (xs[0] > xs[1] or xs[2] > xs[3]):
        raise InputError(src, fld, f"uniform needs PMIN <= PMAX and TMIN <= TMAX, got {v!r}")
    return f"{kind}:{','.join(map(str, xs))}"


def _parse_app(raw: dict, src, fld, resolve) -> AppSpec:
    unknown = sorted(set(raw) - set(APP_KEYS))
    if unknown:
        raise InputError(src, fld(unknown[0]), f"unknown key; {allowed(APP_KEYS)}")
    if "sizes" not in raw:
        raise InputError(src, fld("sizes"), f"missing (request sizes); {allowed(SIZES_FORMS)}")
    kw = {"sizes": _parse_sizes(src, fld("sizes"), raw["sizes"], resolve)}
    for k, v in raw.items():
        f = fld(k)
        if k == "application_id":
            kw[k] = _num(src, f, v, integer=True, minimum=0, strict=False)
        elif k in ("independent", "replay"):
            kw[k] = _bool(src, f, v)
        elif k in ("rate", "cv", "scale"):
            kw[k] = _num(src, f, v, minimum=0.0)
        elif k == "profile":
            p = Path(resolve(str(v)))
            if not p.is_file():
                raise InputError(src, f, f"rate profile not found: {v}")
            kw[k] = str(p.resolve())
        elif k == "profile_interp":
            if v not in PROFILE_INTERP:
                raise InputError(src, f, f"unknown value {v!r}; {allowed(PROFILE_INTERP)}")
            kw[k] = v
        elif k in ("prompt_min", "token_min", "prompt_max", "token_max"):
            kw[k] = _num(src, f, v, integer=True, minimum=1, strict=False)
        elif k == "workload":
            kw[k] = _fractions(src, f, v, WORKLOADS)
        elif k in ("model", "region"):
            kw[k] = _fractions(src, f, v)
        elif k in SLOS:
            kw[k] = _slo(src, f, v)
    app = AppSpec(**kw)
    _check_app(app, src, fld)
    return app


def _check_app(a: AppSpec, src, fld):
    empirical = a.sizes in AZURE_2023 or a.sizes.startswith("trace:")
    if a.replay:
        if not empirical:
            raise InputError(src, fld("replay"), "replays the timestamps of the size source: needs sizes "
                                                 "azure-code, azure-conv or trace:PATH")
        for k in ("independent", "profile"):
            if getattr(a, k):
                raise InputError(src, fld(k), "cannot be combined with replay (the trace is replayed as is)")
        if a.cv != 1.0:
            raise InputError(src, fld("cv"), "cannot be combined with replay (the trace is replayed as is)")
        if a.rate is not None and a.scale is not None:
            raise InputError(src, fld("scale"), "give rate (target mean req/s) or scale (x the original rate), "
                                                "not both")
    else:
        if a.scale is not None:
            raise InputError(src, fld("scale"), "only applies to replay (time compression of a real trace)")
        if a.rate is None and a.profile is None:
            raise InputError(src, fld("rate"), "missing: give rate (req/s), a rate profile (CSV time,rate) or "
                                               "replay")
    if a.independent and not empirical:
        raise InputError(src, fld("independent"), "only applies to empirical sizes (azure-code, azure-conv, "
                                                  "trace:PATH)")
    if a.profile is None and a.profile_interp != "step":
        raise InputError(src, fld("profile_interp"), "only applies with a rate profile")
    for lo, hi in (("prompt_min", "prompt_max"), ("token_min", "token_max")):
        if getattr(a, hi) is not None and getattr(a, hi) < getattr(a, lo):
            raise InputError(src, fld(hi), f"must be >= {lo} ({getattr(a, lo)}), got {getattr(a, hi)}")
    for k in SLOS:
        slo = getattr(a, k)
        if slo and slo[0][0] != "*" and a.workload is None:
            raise InputError(src, fld(k), "is given per workload, but the application has no workload (set "
                                          "workload, e.g. 'prod=0.8,batch=0.2', or give one number)")


def parse_spec(d: dict, src=None, *, fld=_toml_field, resolve=None) -> TraceSpec:
    """Validate a raw spec (a ``[trace]`` table or the ``trace gen`` options) into a ``TraceSpec``.

    Top-level keys: seed, duration, count, apps (a list of application tables); every application key
    (sizes, rate, ...) may also be given at the top level, where it is the default of every application (or
    describes the only application when apps is absent). ``fld(key, app_index)`` names a key in errors;
    ``resolve`` maps relative file names (trace:PATH, profile) to paths."""
    resolve = resolve or Path
    if not isinstance(d, dict):
        raise InputError(src, fld("sizes"), "must be a table")
    unknown = sorted(set(d) - set(SPEC_KEYS))
    if unknown:
        raise InputError(src, fld(unknown[0]), f"unknown key; {allowed(SPEC_KEYS + ('path',))}")
    seed = _num(src, fld("seed"), d.get("seed", 0), integer=True, minimum=0, strict=False)
    duration = _num(src, fld("duration"), d["duration"], minimum=0.0) if d.get("duration") is not None else None
    count = _num(src, fld("count"), d["count"], integer=True, minimum=1, strict=False) \
        if d.get("count") is not None else None
    if duration is None and count is None:
        raise InputError(src, fld("duration"), "missing: give duration (seconds) and/or count (requests)")
    defaults = {k: v for k, v in d.items() if k in APP_KEYS}
    raw_apps = d.get("apps")
    if raw_apps is None:
        apps = (_parse_app(defaults, src, lambda k: fld(k), resolve),)
    else:
        if not isinstance(raw_apps, list) or not raw_apps or not all(isinstance(a, dict) for a in raw_apps):
            raise InputError(src, fld("apps"), "must be a non-empty list of application tables")
        apps = tuple(_parse_app({"application_id": i, **defaults, **a}, src, lambda k, i=i: fld(k, i), resolve)
                     for i, a in enumerate(raw_apps))
    return TraceSpec(apps, seed, duration, count)


# ------------------------------------------------------------------------------------------ sources


@lru_cache(maxsize=8)
def _source(key: str, mtime_ns: int, size: int):
    """(arrival s from 0, prompt, token) of an empirical source file (Azure or sweepsim schema)."""
    path = AZURE_2023.get(key) or Path(key)
    if key in AZURE_2023:
        from sweepsim.trace_import import import_azure
        az = import_azure(path)
        return az.arrival, az.prompt, az.token
    from sweepsim.trace import load_trace
    tr = load_trace(path)
    return tr.arrival - tr.arrival[0], tr.prompt_size, tr.token_size


def empirical_source(sizes: str):
    key = sizes if sizes in AZURE_2023 else sizes.partition(":")[2]
    st = (AZURE_2023.get(key) or Path(key)).stat()
    return _source(key, st.st_mtime_ns, st.st_size)


def azure_sizes(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens, output tokens) of every request of a shipped Azure 2023 trace."""
    if name not in AZURE_2023:
        raise InputError(None, "sizes", f"unknown size distribution {name!r}; {allowed(AZURE_2023)}")
    _, prompt, token = empirical_source(name)
    return prompt, token


@lru_cache(maxsize=64)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path) -> str:
    st = Path(path).stat()
    return _digest(str(path), st.st_mtime_ns, st.st_size)


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


# ------------------------------------------------------------------------------------------ generation


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


def _renewal(rng, rate, cv, count, horizon):
    """Arrival times of a renewal process (``rate`` arrivals per unit time, gaps with coefficient of
    variation ``cv``): ``count`` arrivals if given (then truncated to < horizon), else every arrival < horizon.
    (The draws are exactly those of the original ``poisson_trace``: do not reorder them.)"""
    mean = 1.0 / rate
    if count is not None:
        a = np.cumsum(_gaps(rng, mean, cv, count))
        return a if horizon is None else a[a < horizon]
    lam = rate * horizon
    n = int(lam * 1.2 + 10 * cv * np.sqrt(lam) + 10)
    a = np.cumsum(_gaps(rng, mean, cv, n))
    chunks = [a]
    while a[-1] < horizon:  # practically never: the first chunk covers > 10 standard deviations
        a = a[-1] + np.cumsum(_gaps(rng, mean, cv, n // 4 + 10))
        chunks.append(a)
    a = np.concatenate(chunks) if len(chunks) > 1 else a
    return a[a < horizon]


def _replay(app: AppSpec, count, duration, src, fld):
    arr, prompt, token = empirical_source(app.sizes)
    n = len(arr)
    span = float(arr[-1] - arr[0]) if n else 0.0
    if n < 2 or span <= 0:
        raise InputError(src, fld("replay"), "the source trace has fewer than two distinct timestamps")
    rel = arr - arr[0]
    original = (n - 1) / span
    scale = app.rate / original if app.rate is not None else (app.scale or 1.0)
    period = span + span / (n - 1)  # passes repeat back to back, one mean gap apart
    if count is not None:
        need = count
    else:
        passes = int(duration * scale // period) + 1
        need = passes * n
    idx = np.arange(need, dtype=np.int64)
    pos = idx % n
    t = (rel[pos] + period * (idx // n)) / scale
    if duration is not None:
        keep = t < duration
        t, pos = t[keep], pos[keep]
    return t, prompt[pos], token[pos]


def _arrivals(app: AppSpec, rng, count, duration, src, fld):
    if app.profile is None:
        return _renewal(rng, app.rate, app.cv, count, duration)
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
    horizon = lam.cumulative(duration) if duration is not None else None
    s = _renewal(rng, 1.0, app.cv, count, horizon)
    if len(s) and s[-1] >= lam.total():
        raise InputError(app.profile, "rate", f"ends at 0 req/s: the profile produces only about "
                                              f"{lam.total():.0f} requests; give duration instead of count")
    return lam.invert(s)


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


def _annotate(app: AppSpec, rng, n) -> dict:
    """name -> (codes, names) for categorical columns, ndarray for SLOs."""
    out = {}
    for name in ("workload", "model", "region"):
        fr = getattr(app, name)
        if fr is not None:
            out[name] = (_categorical(rng, fr, n), [k for k, _ in fr])
    for name in SLOS:
        slo = getattr(app, name)
        if slo is None:
            continue
        if slo[0][0] == "*":
            out[name] = np.full(n, slo[0][1])
        else:
            codes, names = out["workload"]
            table = dict(slo)
            out[name] = np.array([table.get(w, np.nan) for w in names])[codes]
    return out


def _mean_rate(app: AppSpec):
    """(mean req/s, cv) of a constant-rate application, None for replay and rate profiles."""
    if app.replay or app.profile is not None:
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


def _generate_app(spec: TraceSpec, i: int, app: AppSpec, count, src, f) -> dict:
    rng = _app_rng(spec.seed, i)
    if app.replay:
        arrival, prompt, token = _replay(app, count, spec.duration, src, f)
    else:
        arrival = _arrivals(app, rng, count, spec.duration, src, f)
        prompt, token = _sizes(app, rng, len(arrival))
    part = {"arrival_timestamp": arrival, "prompt_size": prompt, "token_size": token}
    part.update(_annotate(app, _app_rng(spec.seed, i, 1), len(arrival)))
    return part


def generate_columns(spec: TraceSpec, src=None, fld=_toml_field) -> dict:
    """The trace's columns (NumPy arrays; categorical annotations as pyarrow dictionary arrays), merged over
    the applications in arrival order."""
    multi = len(spec.apps) > 1
    fields_of = [(lambda k, i=i: fld(k, i)) if multi else (lambda k: fld(k)) for i in range(len(spec.apps))]
    caps = _caps(spec)
    parts = [_generate_app(spec, i, a, caps[i], src, fields_of[i]) for i, a in enumerate(spec.apps)]
    if spec.count is not None and caps != [spec.count] * len(caps):
        horizon = min([spec.duration if spec.duration is not None else math.inf]
                      + [float(p["arrival_timestamp"][-1]) for p, c in zip(parts, caps)
                         if len(p["arrival_timestamp"]) == c])
        if sum(int(np.count_nonzero(p["arrival_timestamp"] < horizon)) for p in parts) < spec.count:
            parts = None  # a share was short (practically never): draw every application in full
            parts = [_generate_app(spec, i, a, spec.count, src, fields_of[i]) for i, a in enumerate(spec.apps)]
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
    for name in ANNOTATIONS:
        if not any(name in p for p in parts):
            continue
        if name in SLOS:
            out[name] = merged([p.pop(name) if name in p else np.full(k, np.nan) for p, k in zip(parts, sizes)],
                               np.float64)
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


def _cat(arrays, dtype):
    return arrays[0].astype(dtype, copy=False) if len(arrays) == 1 else np.concatenate(arrays).astype(dtype,
                                                                                                     copy=False)


def to_trace(cols: dict, name: str) -> Trace:
    ann = {}
    for k in ANNOTATIONS:
        if k in cols:
            v = cols[k]
            ann[k] = v if isinstance(v, np.ndarray) else np.asarray(v.to_pylist(), dtype=object)
    return Trace(name, cols["request_id"], cols["application_id"], cols["arrival_timestamp"], cols["prompt_size"],
                 cols["token_size"], ann)


def generate(spec: TraceSpec, src=None, fld=_toml_field) -> Trace:
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


# ------------------------------------------------------------------------------------------ output


def spec_json(spec: TraceSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))


def spec_hash(spec: TraceSpec) -> str:
    """Content hash of a spec: the spec, the generator version and the bytes of every input file."""
    inputs = []
    for a in spec.apps:
        if a.sizes in AZURE_2023:
            inputs.append(file_digest(AZURE_2023[a.sizes]))
        elif a.sizes.startswith("trace:"):
            inputs.append(file_digest(a.sizes[6:]))
        if a.profile:
            inputs.append(file_digest(a.profile))
    payload = json.dumps({"version": GENERATOR_VERSION, "spec": spec.to_dict(), "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def trace_table(cols: dict, spec: TraceSpec | None = None) -> pa.Table:
    # NaN SLOs (no SLO) are written as nulls (empty CSV cells)
    t = pa.table({k: (v if isinstance(v, pa.Array) else pa.array(v, from_pandas=k in SLOS))
                  for k, v in cols.items()})
    if spec is not None:
        t = t.replace_schema_metadata({METADATA_KEY: spec_json(spec).encode()})
    return t


def check_output(path, fld="--out"):
    return check_output_path(path, OUTPUT_SUFFIXES, fld)




def write_trace(table: pa.Table, path) -> Path:
    """Write a trace table as CSV or Parquet (by extension), atomically."""
    path = check_output(path)
    if path.suffix.lower() == ".parquet":
        dict_cols = [c for c in table.column_names if c not in ("request_id", "arrival_timestamp")]
        atomic_write(path, lambda tmp: pq.write_table(
            table, tmp, compression="zstd", use_dictionary=dict_cols,
            column_encoding={"request_id": "DELTA_BINARY_PACKED", "arrival_timestamp": "BYTE_STREAM_SPLIT"}))
    else:
        def write_csv(tmp):
            # plain header and values; quotes only if a text annotation holds a delimiter or quote
            for style in ("none", "needed"):
                try:
                    with open(tmp, "wb") as f:
                        f.write((",".join(table.column_names) + "\n").encode())
                        pacsv.write_csv(table, f, pacsv.WriteOptions(include_header=False, quoting_style=style))
                    return
                except pa.ArrowInvalid:
                    if style == "needed":
                        raise
        atomic_write(path, write_csv)
    return path


def spec_of(path) -> dict | None:
    """The generator spec stored in a generated Parquet trace (None for other files)."""
    try:
        md = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowInvalid):
        return None
    raw = md.get(METADATA_KEY)
    return json.loads(raw) if raw else None


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or PROJECT_ROOT / "traces" / ".cache")


def resolve_spec(spec: TraceSpec, src=None, fld=_toml_field) -> Path:
    """Path of the spec's trace, generated on first use and cached by content hash under traces/.cache/."""
    path = cache_dir() / f"{spec_hash(spec)}.parquet"
    if not path.exists():
        cols = generate_columns(spec, src, fld)
        if len(cols["arrival_timestamp"]) == 0:
            raise InputError(src, fld("duration"), "no request arrives within the duration; raise it or the rate")
        write_trace(trace_table(cols, spec), path)
    return path


# ------------------------------------------------------------------------------------------ plot


def plot_trace(cols: dict, path, title: str = ""):
    """Arrivals per second (per application) and the prompt / output size CDFs, written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    arrival = np.asarray(cols["arrival_timestamp"])
    app = np.asarray(cols["application_id"])
    fig = Figure(figsize=(14, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_rate, ax_p, ax_t = fig.subplots(1, 3)
    end = float(arrival[-1]) if len(arrival) else 1.0
    width = max(1.0, math.ceil(end / 2000.0))  # at most ~2000 bins
    nbins = int(end // width) + 1
    apps = np.unique(app)
    q = np.linspace(0.0, 1.0, 1001)
    for a in apps:
        sel = app == a
        label = f"app {a}" if len(apps) > 1 else None
        counts = np.bincount((arrival[sel] // width).astype(np.int64), minlength=nbins)
        ax_rate.step(np.arange(nbins) * width, counts / width, where="post", lw=0.8, label=label)
        for ax, col in ((ax_p, "prompt_size"), (ax_t, "token_size")):
            x = np.asarray(cols[col])[sel]
            if len(x):
                ax.plot(np.quantile(x, q), q, label=label)
    if len(apps) > 1:
        counts = np.bincount((arrival // width).astype(np.int64), minlength=nbins)
        ax_rate.step(np.arange(nbins) * width, counts / width, where="post", lw=0.8, color="k", alpha=0.6,
                     label="all")
    ax_rate.set(xlabel="time [s]", ylabel=f"arrivals per second ({width:g} s bins)", title="arrival rate")
    ax_p.set(xlabel="prompt size [tokens]", ylabel="CDF", title="prompt sizes", xscale="log")
    ax_t.set(xlabel="output size [tokens]", ylabel="CDF", title="output sizes", xscale="log")
    for ax in (ax_rate, ax_p, ax_t):
        ax.grid(alpha=0.3)
        if len(apps) > 1:
            ax.legend()
    if title:
        fig.suptitle(title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower(), dpi=110))


def check_plot(path, fld="--plot"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    ext = path.suffix.lstrip(".").lower()
    if ext not in formats:
        raise InputError(path, fld, f"unknown image format {path.suffix or '(no extension)'!r}; "
                                    f"{allowed('.' + f for f in sorted(formats))}")
    return path
