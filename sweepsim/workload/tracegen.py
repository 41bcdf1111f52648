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

Size limit: before anything is allocated, ``estimate_requests`` bounds the number of requests a spec produces
(per application min(count, arrivals expected in the duration, with the generator's own margin)) and
``check_limit`` refuses specs over ``max_requests()`` (default 20,000,000; ``SWEEPSIM_MAX_REQUESTS``, or
``sweepsim trace gen --max-requests``). The generator never draws more than the limit per application, even on
an unlucky draw (it fails cleanly instead).

Run configs name a spec instead of a file; ``resolve_spec`` generates it once and caches the Parquet file as
``<cache_dir()>/<content hash>.parquet`` (``$SWEEPSIM_TRACE_CACHE``, else ``$XDG_CACHE_HOME/sweepsim/traces``,
else ``~/.cache/sweepsim/traces``; the spec is stored in the file's metadata, see ``spec_of``), with a sidecar
``<hash>.parquet.sha256`` holding the file's SHA-256: a cached file whose digest does not match (or without a
sidecar) is regenerated with a warning. Under ``with no_generation():`` (``sweepsim grid --dry-run``),
``resolve_spec`` validates the spec and its size but only returns the path it would use, writing nothing.
"""
import contextvars
import hashlib
import json
import math
import os
import sys
from contextlib import contextmanager
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
from sweepsim.errors import InputError, allowed, check_output_path, check_writable
from sweepsim.workload.limits import MAX_ARRIVAL_S, MAX_ID, MAX_TOKENS
from sweepsim.workload.trace import ANNOTATIONS, WORKLOADS, Trace

#: bumped whenever generation changes, so that cached traces are regenerated
#: (2: with both count and duration, a count the duration cannot reach no longer sets the number of draws)
GENERATOR_VERSION = 2
AZURE_2023 = {"azure-code": PROJECT_ROOT / "traces" / "azure2023" / "azure_llm_2023_code.csv",
              "azure-conv": PROJECT_ROOT / "traces" / "azure2023" / "azure_llm_2023_conv.csv"}
SIZES_FORMS = ("azure-code", "azure-conv", "trace:PATH", "fixed:P,T", "lognormal:MU_P,SIGMA_P,MU_T,SIGMA_T",
               "uniform:PMIN,PMAX,TMIN,TMAX")
PROFILE_INTERP = ("step", "linear")
SLOS = ("slo_ttft", "slo_e2e")
TRACE_COLUMNS = ("request_id", "request_type", "application_id", "arrival_timestamp", "batch_size", "prompt_size",
                 "token_size")
OUTPUT_SUFFIXES = (".csv", ".parquet")
METADATA_KEY = b"sweepsim.trace_spec"
CACHE_ENV = "SWEEPSIM_TRACE_CACHE"
MAX_REQUESTS_ENV = "SWEEPSIM_MAX_REQUESTS"
DEFAULT_MAX_REQUESTS = 20_000_000
MAX_SEED = 2 ** 64                               # seeds are 64-bit unsigned integers
CV_RANGE = (1e-6, 1e6)                           # beyond it the gamma shape 1/cv^2 under- or overflows


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


def _num(src, fld, v, *, integer=False, minimum=None, strict=True, maximum=None, max_text=None):
    """A number from TOML (int/float) or command-line text; ``strict``: > minimum, else >= minimum; at most
    ``maximum`` (named ``max_text`` in the error)."""
    x = v
    if isinstance(v, str):
        try:
            x = int(v) if integer else float(v)
        except (ValueError, OverflowError):
            x = None
    if not integer and isinstance(x, int) and not isinstance(x, bool):
        try:
            x = float(x)
        except OverflowError:
            x = None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (integer and not isinstance(x, int)) \
            or (isinstance(x, float) and not math.isfinite(x)):
        raise InputError(src, fld, f"must be {'an integer' if integer else 'a finite number'}, got {v!r}")
    if minimum is not None and (x <= minimum if strict else x < minimum):
        raise InputError(src, fld, f"must be {'>' if strict else '>='} {minimum}, got {v!r}")
    if maximum is not None and x > maximum:
        raise InputError(src, fld, f"must be <= {max_text or maximum}, got {v!r}")
    if not integer and strict and minimum == 0 and x < 1e-300:
        raise InputError(src, fld, f"is too small to compute with (< 1e-300), got {v!r}")
    return x


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
        mu_p, s_p, mu_t, s_t = (_num(src, fld, x) + 0.0 for x in parts)   # + 0.0: -0.0 is 0.0
        if s_p < 0 or s_t < 0:
            raise InputError(src, fld, f"lognormal sigmas must be >= 0, got {v!r}")
        return f"lognormal:{mu_p!r},{s_p!r},{mu_t!r},{s_t!r}"
    xs = [_num(src, fld, x, integer=True, minimum=1, strict=False, maximum=MAX_TOKENS, max_text="2**40")
          for x in parts]
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
            kw[k] = _num(src, f, v, integer=True, minimum=0, strict=False, maximum=MAX_ID, max_text="2**62")
        elif k in ("independent", "replay"):
            kw[k] = _bool(src, f, v)
        elif k == "cv":
            kw[k] = _num(src, f, v, minimum=0.0)
            if not CV_RANGE[0] <= kw[k] <= CV_RANGE[1]:
                raise InputError(src, f, f"must be between {CV_RANGE[0]:g} and {CV_RANGE[1]:g} (1 = Poisson), "
                                         f"got {v!r}")
        elif k in ("rate", "scale"):
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
            kw[k] = _num(src, f, v, integer=True, minimum=1, strict=False, maximum=MAX_TOKENS, max_text="2**40")
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
    seed = _num(src, fld("seed"), d.get("seed", 0), integer=True, minimum=0, strict=False, maximum=MAX_SEED - 1,
                max_text="2**64-1")
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
        seen = {}
        for i, a in enumerate(apps):
            if a.application_id in seen:
                raise InputError(src, fld("application_id", i), f"{a.application_id} is also the id of application "
                                                                f"{seen[a.application_id]}; ids must differ")
            seen[a.application_id] = i
    return TraceSpec(apps, seed, duration, count)


# ------------------------------------------------------------------------------------------ sources


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


@lru_cache(maxsize=4096)
def _digest(path: str, mtime_ns: int, size: int, inode: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path) -> str:
    """SHA-256 (hex) of a file's bytes, read once per (path, mtime, size, inode) in a process: a file replaced
    atomically (new inode) is read again even within the file system's timestamp resolution."""
    st = Path(path).stat()
    return _digest(str(path), st.st_mtime_ns, st.st_size, st.st_ino)


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
    """The rate profile's intensity, rescaled to a mean ``app.rate`` if given."""
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
    if app.profile is None:
        return _renewal(rng, app.rate, app.cv, count, duration, cap, over)
    lam = _intensity(app, duration)
    horizon = lam.cumulative(duration) if duration is not None else None
    s = _renewal(rng, 1.0, app.cv, count, horizon, cap, over)
    if len(s) and s[-1] >= lam.total():
        raise InputError(app.profile, "rate", f"ends at 0 req/s: the profile produces only about "
                                              f"{lam.total():.0f} requests; give duration instead of count")
    return lam.invert(s)


# ------------------------------------------------------------------------------------------ size limit


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
    if app.profile is None:
        bound = _draw_bound(app.rate * spec.duration, app.cv)
    else:
        bound = _draw_bound(_intensity(app, spec.duration).cumulative(spec.duration), app.cv)
    return bound if spec.count is None else min(spec.count, bound)


def estimate_requests(spec: TraceSpec, src=None, fld=_toml_field) -> tuple:
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


def check_limit(spec: TraceSpec, src=None, fld=_toml_field, limit=None) -> int:
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


def _generate_app(spec: TraceSpec, i: int, app: AppSpec, count, src, f, limit=math.inf, top=_toml_field) -> dict:
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


def generate_columns(spec: TraceSpec, src=None, fld=_toml_field, limit=None) -> dict:
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
    """Where generated traces are cached: ``$SWEEPSIM_TRACE_CACHE``, else ``$XDG_CACHE_HOME/sweepsim/traces``,
    else ``~/.cache/sweepsim/traces`` (never inside the installed package)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sweepsim" / "traces"


_NO_GENERATION = contextvars.ContextVar("sweepsim_tracegen_no_generation", default=False)


@contextmanager
def no_generation():
    """Within ``with no_generation():`` (e.g. around ``sweepsim grid --dry-run``'s validation),
    ``resolve_spec`` validates specs (keys, values, the size limit) and returns the cache path it would use,
    but generates and writes nothing (the path may not exist)."""
    token = _NO_GENERATION.set(True)
    try:
        yield
    finally:
        _NO_GENERATION.reset(token)


def digest_path(path) -> Path:
    """The sidecar holding the SHA-256 of a cached trace: ``<hash>.parquet.sha256``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def _cached_ok(path: Path) -> bool:
    """The cached file matches the digest in its sidecar (``file_digest`` caches by path, mtime, size, inode: a
    sweep hashing the trace afterwards does not read it again)."""
    try:
        want = digest_path(path).read_text().split()[0]
        return file_digest(path) == want
    except (OSError, IndexError, UnicodeDecodeError):
        return False


def spec_path(spec: TraceSpec, src=None, fld=_toml_field, limit=None) -> Path:
    """Where the spec's trace is cached (it may not exist yet), after checking the spec's size limit: no file
    is read or written, so parsing a run config that names a spec has no side effect."""
    check_limit(spec, src, fld, limit)
    return cache_dir() / f"{spec_hash(spec)}.parquet"


def ensure_trace(cfg) -> Path:
    """The trace file of a run config, generating (and caching) it first if the config names a generator
    spec: call it when a run or a sweep starts, before reading ``cfg.trace``."""
    if cfg.trace_spec is not None:
        return resolve_spec(cfg.trace_spec, cfg.source)
    return Path(cfg.trace)


def load_run_trace(cfg) -> Trace:
    """``load_trace`` of a run config's trace, generated first if needed (``ensure_trace``)."""
    from sweepsim.workload.trace import load_trace
    return load_trace(ensure_trace(cfg))


def resolve_spec(spec: TraceSpec, src=None, fld=_toml_field, limit=None) -> Path:
    """Path of the spec's trace, generated on first use and cached by content hash in ``cache_dir()``.

    A cached file is reused only if its sidecar ``<hash>.parquet.sha256`` matches its SHA-256; otherwise it is
    regenerated (atomically, with a warning on stderr). Specs over ``limit`` requests (default
    ``max_requests()``) are refused before anything is generated. Under ``no_generation()`` nothing is
    generated or written: the spec is validated and the path returned."""
    path = spec_path(spec, src, fld, limit)
    limit = max_requests() if limit is None else int(limit)
    if _NO_GENERATION.get():
        return path
    present = path.exists()
    if present and _cached_ok(path):
        return path
    check_writable(path.parent, CACHE_ENV, is_dir=True)
    cols = generate_columns(spec, src, fld, limit)
    if len(cols["arrival_timestamp"]) == 0:
        raise InputError(src, fld("duration"), "no request arrives within the duration; raise it or the rate")
    try:
        write_trace(trace_table(cols, spec), path)
        del cols
        digest = file_digest(path)
        atomic_write(digest_path(path), lambda tmp: Path(tmp).write_text(f"{digest}  {path.name}\n"))
    except OSError as e:
        raise InputError(path, CACHE_ENV, f"cannot write the cached trace: {e.strerror or e}") from None
    if present:
        print(f"warning: {path}: cached trace was corrupt or incomplete; regenerated", file=sys.stderr)
    return path


# ------------------------------------------------------------------------------------------ plot


def plot_trace(cols: dict, path, title: str = ""):
    """Arrivals per second (per application) and the prompt / output size CDFs, written atomically (text
    drawn as given, never as mathtext)."""
    import matplotlib
    with matplotlib.rc_context({"text.parse_math": False}):
        return _plot_trace(cols, path, title)


def _plot_trace(cols: dict, path, title: str = ""):
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
    return check_writable(path, fld, is_dir=False)
