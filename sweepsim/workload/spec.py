"""Synthetic trace specs: what ``sweepsim trace gen`` options and ``[trace]`` generator tables describe
(``TraceSpec``: applications ``AppSpec`` with sizes, arrivals and annotations; a seed, a duration and/or a
count), parsed and validated with errors naming the option or TOML key. See ``sampling`` for what each
setting means for the generated requests. The annotation keys alone (``Annotations``, ``parse_annotations``)
also annotate imported traces (``sweepsim trace import azure --model ... --workload ...``).
"""
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from sweepsim import PROJECT_ROOT
from sweepsim.errors import InputError, allowed
from sweepsim.workload.limits import MAX_ID, MAX_TOKENS
from sweepsim.workload.trace import REGION_SEPARATORS, WORKLOADS


SIZES_FORMS = ("azure-code", "azure-conv", "trace:PATH", "fixed:P,T", "lognormal:MU_P,SIGMA_P,MU_T,SIGMA_T",
               "uniform:PMIN,PMAX,TMIN,TMAX")


PROFILE_INTERP = ("step", "linear")


#: ``profile = "diurnal"``: the built-in day-shaped rate profile (see ``sampling``), with these defaults
DIURNAL = "diurnal"
DIURNAL_DEFAULTS = {"peak_hour": 14.0, "trough_ratio": 0.3, "period": 86400.0}


DEFAULT_BATCH_JOB_SIZE = 128                     # consecutive batch requests per batch job (batch_id)


SLOS = ("slo_ttft", "slo_e2e")


MAX_SEED = 2 ** 64                               # seeds are 64-bit unsigned integers


CV_RANGE = (1e-6, 1e6)                           # beyond it the gamma shape 1/cv^2 under- or overflows


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
    workload: tuple | None = None                # ((name, fraction), ...) over WORKLOADS
    model: tuple | None = None
    region: tuple | None = None                  # fractions of the first region of the priority order
    slo_ttft: tuple | None = None                # (("*", seconds),) or ((workload, seconds), ...)
    slo_e2e: tuple | None = None
    sla: tuple | None = None                     # as slo_ttft
    regions: tuple | None = None                 # (region, ...): the priority order (after the first region)
    batch_job_size: int = DEFAULT_BATCH_JOB_SIZE
    diurnal: bool = False                        # profile = "diurnal" (not a key of its own)
    peak_hour: float | None = None               # diurnal profile parameters (defaults filled in)
    trough_ratio: float | None = None
    period: float | None = None


#: the annotation keys, which also annotate imported traces
ANNOTATION_KEYS = ("workload", "model", "region", "regions", "slo_ttft", "slo_e2e", "sla", "batch_job_size")


@dataclass(frozen=True)
class Annotations:
    """The annotation keys of an application, alone (``sweepsim trace import azure`` options)."""
    workload: tuple | None = None
    model: tuple | None = None
    region: tuple | None = None
    regions: tuple | None = None
    slo_ttft: tuple | None = None
    slo_e2e: tuple | None = None
    sla: tuple | None = None
    batch_job_size: int = DEFAULT_BATCH_JOB_SIZE

    def any(self) -> bool:
        return any(getattr(self, k) is not None for k in ANNOTATION_KEYS if k != "batch_job_size")


@dataclass(frozen=True)
class TraceSpec:
    apps: tuple
    seed: int = 0
    duration: float | None = None
    count: int | None = None

    def to_dict(self) -> dict:
        return {"seed": self.seed, "duration": self.duration, "count": self.count,
                "apps": [asdict(a) for a in self.apps]}


APP_KEYS = tuple(f.name for f in fields(AppSpec) if f.name != "diurnal")


TOP_KEYS = ("seed", "duration", "count", "apps")


SPEC_KEYS = TOP_KEYS + APP_KEYS


def toml_field(key, app=None):
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


REGION_NAME_CHARS = (",", ";")


def _region_name(src, fld, name) -> str:
    name = str(name).strip()
    if not name or any(c in name for c in REGION_NAME_CHARS) or any(c.isspace() for c in name):
        raise InputError(src, fld, f"bad region name {name!r}: region names are not empty and hold no ',', ';' "
                                   f"or spaces")
    return name


def _regions(src, fld, v) -> tuple:
    """A region priority order: a TOML list of names, or text with names separated by ',', ';' or spaces."""
    if isinstance(v, str):
        parts = REGION_SEPARATORS.split(v.strip())
        if "" in parts and v.strip():
            raise InputError(src, fld, f"empty region name in {v!r}; separate region names with ',', ';' or spaces")
    elif isinstance(v, list) and all(isinstance(x, str) for x in v):
        parts = list(v)
    else:
        raise InputError(src, fld, f"must be a list of region names (e.g. 'westus,eastus,centralus'), got {v!r}")
    if not parts or parts == [""]:
        raise InputError(src, fld, "must name at least one region, e.g. 'westus,eastus,centralus'")
    names = tuple(_region_name(src, fld, x) for x in parts)
    twice = [x for i, x in enumerate(names) if x in names[:i]]
    if twice:
        raise InputError(src, fld, f"region {twice[0]!r} is listed twice")
    return names


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
            if v == DIURNAL:
                kw["diurnal"] = True
                continue
            p = Path(resolve(str(v)))
            if not p.is_file():
                raise InputError(src, f, f"rate profile not found: {v} (or \"{DIURNAL}\" for the built-in "
                                         f"diurnal profile)")
            kw[k] = str(p.resolve())
        elif k in DIURNAL_DEFAULTS:
            kw[k] = _num(src, f, v, minimum=0.0, strict=k == "period")
        elif k == "profile_interp":
            if v not in PROFILE_INTERP:
                raise InputError(src, f, f"unknown value {v!r}; {allowed(PROFILE_INTERP)}")
            kw[k] = v
        elif k in ("prompt_min", "token_min", "prompt_max", "token_max"):
            kw[k] = _num(src, f, v, integer=True, minimum=1, strict=False, maximum=MAX_TOKENS, max_text="2**40")
        elif k in ANNOTATION_KEYS:
            kw[k] = _annotation(src, f, k, v)
    if kw.get("diurnal"):
        kw.update({k: kw.get(k, d) for k, d in DIURNAL_DEFAULTS.items()})
    app = AppSpec(**kw)
    _check_app(app, src, fld)
    return app


def _annotation(src, f, k, v):
    """The value of annotation key ``k`` (see ``ANNOTATION_KEYS``)."""
    if k == "workload":
        return _fractions(src, f, v, WORKLOADS)
    if k == "model":
        return _fractions(src, f, v)
    if k == "region":
        fr = _fractions(src, f, v)
        return tuple((_region_name(src, f, name), x) for name, x in fr)
    if k == "regions":
        return _regions(src, f, v)
    if k == "batch_job_size":
        return _num(src, f, v, integer=True, minimum=1, strict=False, maximum=MAX_ID, max_text="2**62")
    return _slo(src, f, v)   # slo_ttft, slo_e2e, sla


def _check_annotations(a, src, fld):
    for k in SLOS:
        slo = getattr(a, k)
        if slo and slo[0][0] != "*" and a.workload is None:
            raise InputError(src, fld(k), "is given per workload, but the application has no workload (set "
                                          "workload, e.g. 'prod=0.8,batch=0.2', or give one number)")
    if a.region is not None and a.regions is not None:
        extra = [r for r, _ in a.region if r not in a.regions]
        if extra:
            raise InputError(src, fld("region"), f"region {extra[0]!r} is not in regions ({', '.join(a.regions)}); "
                                                 f"regions lists every region of the priority orders")
    orders = [(r,) for r, _ in a.region] if a.region is not None and a.regions is None \
        else [a.regions] if a.regions is not None else []
    for o in orders:
        if len(o) == 1 and len(o[0]) > 1 and o[0].isascii() and o[0].isdigit():
            raise InputError(src, fld("regions" if a.regions is not None else "region"),
                             f"a priority order of the one region {o[0]!r} would read as the region indices "
                             f"{', '.join(o[0])}; name the region")


def parse_annotations(d: dict, src=None, fld=toml_field) -> Annotations:
    """The annotation keys of ``d`` (``ANNOTATION_KEYS``; values as in a ``[trace]`` table or as option text),
    validated with errors naming ``fld(key)``."""
    unknown = sorted(set(d) - set(ANNOTATION_KEYS))
    if unknown:
        raise InputError(src, fld(unknown[0]), f"unknown key; {allowed(ANNOTATION_KEYS)}")
    ann = Annotations(**{k: _annotation(src, fld(k), k, v) for k, v in d.items()})
    _check_annotations(ann, src, fld)
    return ann


def _check_app(a: AppSpec, src, fld):
    empirical = a.sizes in AZURE_2023 or a.sizes.startswith("trace:")
    if a.diurnal:
        if a.rate is None:
            raise InputError(src, fld("rate"), f"missing: profile = \"{DIURNAL}\" needs the mean rate (req/s)")
        if a.period < 1e-3:
            raise InputError(src, fld("period"), f"must be at least 0.001 s, got {a.period!r}")
        if not a.peak_hour * 3600.0 < a.period:
            raise InputError(src, fld("peak_hour"), f"must be within the period: from 0 to below "
                                                    f"{a.period / 3600.0:g} (hours), got {a.peak_hour!r}")
        if a.trough_ratio > 1:
            raise InputError(src, fld("trough_ratio"), f"must be from 0 to 1 (trough rate / peak rate), got "
                                                       f"{a.trough_ratio!r}")
    else:
        for k in DIURNAL_DEFAULTS:
            if getattr(a, k) is not None:
                raise InputError(src, fld(k), f"only applies with profile = \"{DIURNAL}\"")
    if a.replay:
        if not empirical:
            raise InputError(src, fld("replay"), "replays the timestamps of the size source: needs sizes "
                                                 "azure-code, azure-conv or trace:PATH")
        for k in ("independent", "profile", "diurnal"):
            if getattr(a, k):
                raise InputError(src, fld("profile" if k == "diurnal" else k),
                                 "cannot be combined with replay (the trace is replayed as is)")
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
        raise InputError(src, fld("profile_interp"), "only applies with a rate profile CSV")
    for lo, hi in (("prompt_min", "prompt_max"), ("token_min", "token_max")):
        if getattr(a, hi) is not None and getattr(a, hi) < getattr(a, lo):
            raise InputError(src, fld(hi), f"must be >= {lo} ({getattr(a, lo)}), got {getattr(a, hi)}")
    _check_annotations(a, src, fld)


def parse_spec(d: dict, src=None, *, fld=toml_field, resolve=None) -> TraceSpec:
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


def spec_json(spec: TraceSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))


AZURE_2023 = {"azure-code": PROJECT_ROOT / "traces" / "azure2023" / "azure_llm_2023_code.csv",
              "azure-conv": PROJECT_ROOT / "traces" / "azure2023" / "azure_llm_2023_conv.csv"}
