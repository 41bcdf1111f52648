"""Serving topologies (SageServe): regions, model endpoints, replica groups, global routing and async feeding.

A run config has a topology when it names one (``topology = "us3"``: ``configs/topologies/us3.toml``, or a
path) or describes one inline with ``[[region]]`` and ``[[endpoint]]`` tables; ``[routing]``, ``[feeding]``
and ``[instances]`` (instance counts per endpoint, ``instances.<region>.<endpoint> = N``, e.g. for sweep axes)
apply to either. Semantics: docs/semantics.md, "Regions, endpoints and request classes"; keys: docs/topologies.md.
"""
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from sweepsim import PROJECT_ROOT
from sweepsim.errors import InputError, allowed, choice, read_toml

TOPOLOGIES_DIR = PROJECT_ROOT / "configs" / "topologies"
#: Endpoint workload silos: "any" serves every class of its model; "prod" / "dev" only that workload (SageServe's
#: ``siloed`` mode: the endpoint is named ``<model>-p`` / ``<model>-d``).
SILOS = ("any", "prod", "dev")
GROUP_SCHEDULERS = ("token_jsq", "jsq")
#: Feed bands: (upper utilisation, requests fed per completion in units of ``granularity``), ascending.
FEED_BANDS = {"readme": ((0.5, 1),),               # the intent stated in SageServe's README: feed below 0.5
              "sageserve": ((0.5, 1), (0.6, 2))}   # SageServe's code: twice between 0.5 and 0.6 (parity)
MAX_FEED_BANDS = 4
#: Region names: what trace region orders can name (they split on commas, semicolons and spaces) and grid axes
#: can address (instances.<region>.<endpoint>)
REGION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
ALL = "all"     # the label of summary.parquet's totals row
MAX_INSTANCES = 100_000
MAX_DELAY_S = 1e6


@dataclass(frozen=True)
class Endpoint:
    """One model (or one workload silo of it) in one region, on ``instances`` ORCA instances in replica groups."""
    region: str
    model: str
    instances: int
    workload: str = "any"
    scheduler: str = "token_jsq"      # within the chosen group
    sku: str = "dgx-a100"
    tensor_parallel: int = 8
    groups: tuple[int, ...] = ()      # group sizes in order; () = SageServe's rule (``replica_groups``)

    @property
    def name(self) -> str:
        return self.model if self.workload == "any" else f"{self.model}-{self.workload[0]}"

    def group_sizes(self) -> tuple[int, ...]:
        return self.groups or replica_groups(self.instances)


@dataclass(frozen=True)
class Routing:
    threshold: float = 0.7            # first priority region whose endpoint's KV utilisation is below this
    delay: float = 0.0                # seconds from the global router to the endpoint (SageServe: 1.0)


@dataclass(frozen=True)
class Feeding:
    enabled: bool = True
    granularity: int = 1              # requests per feed unit
    bands: tuple[tuple[float, int], ...] = FEED_BANDS["readme"]
    on_enqueue: bool = True           # a queued request may be fed at once (SageServe: only on completions)
    dev_sla_fraction: float = 0.8     # dev admission key at an instance: arrival + this x sla


SCALING_POLICIES = ("utilization", "chiron", "queue")
SCALING_DELAYS = ("real", "lockout")
#: (upper, lower) signal thresholds per policy: KV utilisation (SageServe's BasicArbiter), Chiron's fraction of
#: instances holding interactive requests, requests per serving instance
SCALING_THRESHOLDS = {"utilization": (0.5, 0.25), "chiron": (0.6, 0.3), "queue": (8.0, 2.0)}


@dataclass(frozen=True)
class Scaling:
    """Reactive autoscaling (docs/semantics.md, "Reactive autoscaling"); level 0 moves nothing."""
    level: int = 0                    # 0 none; 1 spot pool + same-model reclaim; 2 also donation between models
    policy: str = "utilization"
    upper: float = 0.5                # scale up above this signal (policy default: SCALING_THRESHOLDS)
    lower: float = 0.25               # scale down below it
    interval: float = -1.0            # evaluate an endpoint on arrival if more than this after its last evaluation [s]
    timer: float = 0.0                # evaluate every endpoint every this many seconds (0: only on arrivals) [s]
    delays: str = "real"              # "real": instances start and drain for real; "lockout": SageServe (instant)
    spin_up: float = 155.0            # a donated instance serves after [s]
    reclaim_delay: float = 65.0       # a reclaimed spot instance serves after [s]
    spin_down: float = 0.0            # a drained instance enters the spot pool after [s]
    min_instances: int = 2            # serving instances an endpoint keeps
    max_instances: int = 0            # most serving + starting instances of an endpoint (0: no limit)
    pending_time: float = 86400.0     # chiron: a dev endpoint scales up above this estimated pending time [s]
    prompt_time: float = 10.0         # chiron: estimated seconds per queued request
    decode_throughput: float = 100.0  # chiron: estimated output tokens per second per instance


PLAN_ARBITERS = ("none", "lt-i", "deferred", "lt-u", "lt-ua")
PLAN_STRATEGIES = ("immediate", "delay_changes", "keep_maximum_instances", "keep_minimum_instances")
PLAN_DEMANDS = ("peak", "upper")
PLAN_THROUGHPUTS = ("model", "sageserve")
FORECAST_METHODS = ("arima", "naive")


@dataclass(frozen=True)
class Planning:
    """Forecast-aware planning (docs/planning.md): hourly plans from forecasts, applied by an arbiter."""
    arbiter: str = "none"             # "lt-i" plan only; "deferred"; "lt-u"; "lt-ua" (plan + forecast ratio)
    forecast: str = ""                # a `sweepsim forecast` Parquet file (relative to the config), or "" to compute
    method: str = "arima"             # the forecaster whose predictions plan
    train_until: float = 0.0          # forecasts computed here: training window [0, train_until) [s]
    start: float = -1.0               # first planning tick [s] (-1: train_until)
    interval: float = 3600.0          # seconds between planning ticks
    window: tuple[float, float] = (1200.0, 3600.0)   # demand: forecast minutes in [t + a, t + b] of tick t
    demand: str = "peak"              # "peak": the largest point forecast; "upper": the largest interval bound
    dev_fraction: float = 0.1         # + this x the largest dev prompt of the trailing interval (SageServe: 0.1)
    strategy: str = "immediate"       # post-processing of the plans
    keep: int = 2                     # keep_* strategies: plans considered
    throughput: str = "model"         # per-instance tokens per minute: from the performance model, or SageServe's
    gpu_cost: float = 10.0            # objective: cost per planned instance
    startup_cost: float = 150.0       # objective: cost per new instance
    override: float = 0.9             # LT-U: with no planned change left, scale up above this KV utilisation
    ratio: float = 5.0                # LT-UA: ... when observed tokens per minute exceed this x the forecast


@dataclass(frozen=True)
class Topology:
    name: str
    regions: tuple[str, ...]
    endpoints: tuple[Endpoint, ...]
    routing: Routing = field(default_factory=Routing)
    feeding: Feeding = field(default_factory=Feeding)
    scaling: Scaling = field(default_factory=Scaling)
    planning: Planning = field(default_factory=Planning)

    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.model for e in self.endpoints))

    def services(self) -> tuple[tuple[str, str], ...]:
        """Distinct (model, silo) pairs, in endpoint order."""
        return tuple(dict.fromkeys((e.model, e.workload) for e in self.endpoints))


def replica_groups(n: int) -> tuple[int, ...]:
    """SageServe's split of an endpoint's n >= 2 instances into groups of 3 and 2 (SAGESERVE.md 1.4):
    n = 3k: k threes; 3k + 2: k threes and a two; 3k + 1: k - 1 threes and two twos."""
    if n < 2:
        raise ValueError("an endpoint split into replica groups needs at least 2 instances")
    k, rest = divmod(n, 3)
    if rest == 0:
        return (3,) * k
    if rest == 2:
        return (3,) * k + (2,)
    return (3,) * (k - 1) + (2, 2)


TOP_KEYS = ("topology", "region", "endpoint", "routing", "feeding", "scaling", "planning", "instances")


def is_topology_config(d: dict) -> bool:
    return any(k in d for k in TOP_KEYS)


def _num(src, key, v, lo, hi, integer=False):
    ok = not isinstance(v, bool) and (isinstance(v, int) if integer else isinstance(v, (int, float)))
    if not ok or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        raise InputError(src, key, f"must be {kind} from {lo:g} to {hi:g}, got {v!r}")
    return v if integer else float(v)


def _table(src, key, v, names):
    if not isinstance(v, dict):
        raise InputError(src, key, "must be a table")
    for k in v:
        if k not in names:
            raise InputError(src, f"{key}.{k}", f"unknown key; {allowed(sorted(names))}")
    return v


def _bands(src, key, v):
    if isinstance(v, str):
        if v not in FEED_BANDS:
            raise InputError(src, key, f"unknown preset {v!r}; {allowed(sorted(FEED_BANDS))}, or a list of "
                                       "[utilisation, count] pairs")
        return FEED_BANDS[v]
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_FEED_BANDS:
        raise InputError(src, key, f"must be a preset name or a list of 1 to {MAX_FEED_BANDS} [utilisation, count] "
                                   "pairs, e.g. [[0.5, 1], [0.6, 2]]")
    out = []
    for j, b in enumerate(v):
        if not isinstance(b, list) or len(b) != 2:
            raise InputError(src, f"{key}[{j}]", f"must be a pair [utilisation, count], got {b!r}")
        out.append((_num(src, f"{key}[{j}]", b[0], 0.0, 1.0), _num(src, f"{key}[{j}]", b[1], 0, 1000, True)))
    if any(b[0] <= a[0] for a, b in zip(out, out[1:])):
        raise InputError(src, key, "band utilisations must increase")
    return tuple(out)


def band_label(bands) -> str:
    """Feed bands as summaries show them: the preset's name, or ``u:count;u:count``."""
    for name, preset in FEED_BANDS.items():
        if tuple(bands) == preset:
            return name
    return ";".join(f"{u:g}:{k}" for u, k in bands)


def _endpoint(src, key, v, regions):
    from sweepsim.config.catalog import get_model, get_sku
    names = {"region", "model", "instances", "workload", "scheduler", "sku", "tensor_parallel", "groups"}
    _table(src, key, v, names)
    for need in ("region", "model", "instances"):
        if need not in v:
            raise InputError(src, f"{key}.{need}", "missing (an endpoint needs region, model and instances)")
    if v["region"] not in regions:
        raise InputError(src, f"{key}.region", f"unknown region {v['region']!r}; {allowed(list(regions))}")
    kw = {"region": v["region"], "model": get_model(v["model"], src, f"{key}.model").name,
          "instances": _num(src, f"{key}.instances", v["instances"], 1, MAX_INSTANCES, True)}
    for k, options in (("workload", SILOS), ("scheduler", GROUP_SCHEDULERS)):
        if k in v:
            if v[k] not in options:
                raise InputError(src, f"{key}.{k}", f"unknown value {v[k]!r}; {allowed(list(options))}")
            kw[k] = v[k]
    if "sku" in v:
        kw["sku"] = get_sku(v["sku"], src, f"{key}.sku").name
    if "tensor_parallel" in v:
        if v["tensor_parallel"] not in (1, 2, 4, 8) or isinstance(v["tensor_parallel"], bool):
            raise InputError(src, f"{key}.tensor_parallel",
                             f"unknown value {v['tensor_parallel']!r}; allowed: 1, 2, 4, 8")
        kw["tensor_parallel"] = v["tensor_parallel"]
    if "groups" in v:
        g = v["groups"]
        if not isinstance(g, list) or not g or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                                                      for x in g):
            raise InputError(src, f"{key}.groups", f"must be a list of group sizes >= 1, got {g!r}")
        kw["groups"] = tuple(g)
    return Endpoint(**kw)


def _check_endpoint(src, key, e: Endpoint):
    if e.groups and sum(e.groups) != e.instances:
        raise InputError(src, f"{key}.groups", f"group sizes sum to {sum(e.groups)}, not the endpoint's "
                                               f"{e.instances} instances")
    if not e.groups and e.instances < 2:
        raise InputError(src, f"{key}.instances", "an endpoint needs at least 2 instances for SageServe's replica "
                                                  "groups of 2-3 (or give groups = [1])")


def load_topology_file(name_or_path: str, src=None, base: Path | None = None) -> dict:
    """The raw tables of a shipped topology (by name) or of a topology file (by path)."""
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = TOPOLOGIES_DIR / f"{name_or_path}.toml"
    elif not p.is_absolute():
        for root in ([base] if base else []) + [Path.cwd(), PROJECT_ROOT]:
            if (root / p).exists():
                p = root / p
                break
    if not p.exists():
        have = sorted(q.stem for q in TOPOLOGIES_DIR.glob("*.toml"))
        raise InputError(src, "topology", f"unknown topology {name_or_path!r}; {allowed(have)} or a .toml path")
    d = read_toml(p, None, "topology file")
    extra = sorted(set(d) - {"region", "endpoint", "routing", "feeding", "scaling", "description"})
    if extra:
        raise InputError(p, extra[0], "unknown key; allowed: description, region, endpoint, routing, feeding, "
                                      "scaling")
    return d | {"_path": str(p)}


def parse_topology(d: dict, src=None, base: Path | None = None) -> Topology:
    """A run config's topology from its raw keys (``TOP_KEYS``); a named topology's tables come first and the
    config's own ``[routing]``, ``[feeding]`` and ``[instances]`` override them."""
    raw = {}
    name = "inline"
    where = src
    if "topology" in d:
        if not isinstance(d["topology"], str) or not d["topology"].strip():
            raise InputError(src, "topology", "must be a shipped topology name or a .toml path")
        raw = load_topology_file(d["topology"], src, base)
        where = raw.pop("_path")
        name = Path(d["topology"]).stem
        for k in ("region", "endpoint"):
            if k in d:
                raise InputError(src, k, f"give either topology = ... or [[{k}]] tables, not both")
    regions_raw = d.get("region", raw.get("region"))
    eps_raw = d.get("endpoint", raw.get("endpoint"))
    rsrc = src if "region" in d else where
    esrc = src if "endpoint" in d else where
    if not isinstance(regions_raw, list) or not regions_raw:
        raise InputError(rsrc, "region", "a topology needs [[region]] tables (name = ...) or topology = <name>")
    regions = []
    for j, r in enumerate(regions_raw):
        _table(rsrc, f"region[{j}]", r, {"name"})
        name = r.get("name")
        if not isinstance(name, str) or not REGION_NAME.fullmatch(name) or name == ALL:
            raise InputError(rsrc, f"region[{j}].name", f"must be a name of letters, digits, '_' and '-' starting with "
                                                        f"a letter, not {ALL!r} (the summary's totals), got {name!r}")
        if r["name"] in regions:
            raise InputError(rsrc, f"region[{j}].name", f"region {r['name']!r} appears twice")
        regions.append(r["name"])
    if not isinstance(eps_raw, list) or not eps_raw:
        raise InputError(esrc, "endpoint", "a topology needs [[endpoint]] tables (region, model, instances)")
    eps = [_endpoint(esrc, f"endpoint[{j}]", e, regions) for j, e in enumerate(eps_raw)]
    seen = {}
    for j, e in enumerate(eps):
        if (e.region, e.name) in seen:
            raise InputError(esrc, f"endpoint[{j}]", f"region {e.region!r} has endpoint {e.name!r} twice")
        seen[(e.region, e.name)] = j
        silos = {x.workload for x in eps if x.model == e.model}
        if "any" in silos and len(silos) > 1:   # a request's endpoint kind is decided per model, not per region
            raise InputError(esrc, f"endpoint[{j}]", f"{e.model} has both shared and prod/dev (siloed) endpoints; "
                                                     "a model's endpoints are all shared or all siloed")
    if "instances" in d:   # overrides: instances.<region>.<endpoint name> = N
        ov = d["instances"]
        _table(src, "instances", ov, set(regions))
        for reg, per in ov.items():
            _table(src, f"instances.{reg}", per, {e.name for e in eps if e.region == reg})
            for ename, n in per.items():
                j = seen[(reg, ename)]
                eps[j] = replace(eps[j], instances=_num(src, f"instances.{reg}.{ename}", n, 1, MAX_INSTANCES, True),
                                 groups=())
    for j, e in enumerate(eps):
        _check_endpoint(esrc if "instances" not in d else src, f"endpoint[{j}]", e)
    for k in ("routing", "feeding", "scaling", "planning"):
        for where, tab in ((where, raw), (src, d)):
            if k in tab and not isinstance(tab[k], dict):
                raise InputError(where, k, f"must be a table ([{k}] with its keys), got {tab[k]!r}")
    routing = Routing()
    rr = {**raw.get("routing", {}), **d.get("routing", {})}
    if rr:
        _table(src, "routing", rr, {"threshold", "delay"})
        routing = Routing(_num(src, "routing.threshold", rr.get("threshold", 0.7), 0.0, 1.0),
                          _num(src, "routing.delay", rr.get("delay", 0.0), 0.0, MAX_DELAY_S))
    feeding = Feeding()
    ff = {**raw.get("feeding", {}), **d.get("feeding", {})}
    if ff:
        _table(src, "feeding", ff, {"enabled", "granularity", "bands", "on_enqueue", "dev_sla_fraction"})
        for k in ("enabled", "on_enqueue"):
            if k in ff and not isinstance(ff[k], bool):
                raise InputError(src, f"feeding.{k}", f"must be true or false, got {ff[k]!r}")
        feeding = Feeding(ff.get("enabled", True),
                          _num(src, "feeding.granularity", ff.get("granularity", 1), 1, 10_000, True),
                          _bands(src, "feeding.bands", ff.get("bands", "readme")), ff.get("on_enqueue", True),
                          _num(src, "feeding.dev_sla_fraction", ff.get("dev_sla_fraction", 0.8), 0.0, 10.0))
    scaling = _scaling(src, {**raw.get("scaling", {}), **d.get("scaling", {})}, regions, eps)
    planning = _planning(src, d.get("planning", {}), scaling, base)
    return Topology(name, tuple(regions), tuple(eps), routing, feeding, scaling, planning)


def _planning(src, pp: dict, scaling: Scaling, base: Path | None) -> Planning:
    """``[planning]``: its keys checked; an arbiter other than "none" needs ``scaling.level >= 1`` (plans move
    instances the way scaling does) and a forecast (a file, or ``train_until`` to compute one)."""
    if not pp:
        return Planning()
    _table(src, "planning", pp, {f.name for f in fields(Planning)})
    d = Planning()
    window = pp.get("window", list(d.window))
    if not (isinstance(window, list) and len(window) == 2 and all(isinstance(x, (int, float)) and not
                                                                  isinstance(x, bool) for x in window)
            and 0 <= window[0] <= window[1] <= MAX_DELAY_S):
        raise InputError(src, "planning.window", f"must be [a, b] seconds after a tick with 0 <= a <= b, got {window!r}")
    forecast = pp.get("forecast", "")
    if not isinstance(forecast, str):
        raise InputError(src, "planning.forecast", f"must be a path to a `sweepsim forecast` file, got {forecast!r}")
    if forecast:
        path = Path(forecast)
        if not path.is_absolute() and base is not None:
            path = base / path
        forecast = str(path)
    out = Planning(choice(src, "planning.arbiter", pp.get("arbiter", d.arbiter), PLAN_ARBITERS), forecast,
                   choice(src, "planning.method", pp.get("method", d.method), FORECAST_METHODS),
                   _num(src, "planning.train_until", pp.get("train_until", d.train_until), 0.0, 1e9),
                   _num(src, "planning.start", pp.get("start", d.start), -1.0, 1e9),
                   _num(src, "planning.interval", pp.get("interval", d.interval), 60.0, 1e7),
                   (float(window[0]), float(window[1])),
                   choice(src, "planning.demand", pp.get("demand", d.demand), PLAN_DEMANDS),
                   _num(src, "planning.dev_fraction", pp.get("dev_fraction", d.dev_fraction), 0.0, 1e6),
                   choice(src, "planning.strategy", pp.get("strategy", d.strategy), PLAN_STRATEGIES),
                   _num(src, "planning.keep", pp.get("keep", d.keep), 1, 1000, True),
                   choice(src, "planning.throughput", pp.get("throughput", d.throughput), PLAN_THROUGHPUTS),
                   _num(src, "planning.gpu_cost", pp.get("gpu_cost", d.gpu_cost), 0.0, 1e12),
                   _num(src, "planning.startup_cost", pp.get("startup_cost", d.startup_cost), 0.0, 1e12),
                   _num(src, "planning.override", pp.get("override", d.override), 0.0, 1e9),
                   _num(src, "planning.ratio", pp.get("ratio", d.ratio), 0.0, 1e12))
    if 0 <= out.start < out.train_until:
        raise InputError(src, "planning.start", f"the first planning tick must be at or after the history's end "
                                                f"(planning.train_until = {out.train_until:g} s), or -1 for it; got "
                                                f"{out.start:g}")
    if out.train_until % 60:
        raise InputError(src, "planning.train_until", f"must be a whole number of minutes (a multiple of 60 s), got "
                                                      f"{out.train_until:g}")
    if out.arbiter != "none":
        if scaling.level < 1:
            raise InputError(src, "planning.arbiter", f"{out.arbiter!r} moves instances: set scaling.level = 1 or 2")
        if not out.forecast and out.train_until <= 0:
            raise InputError(src, "planning.forecast", "plans need a forecast: a `sweepsim forecast` file, or "
                                                       "planning.train_until > 0 to fit one on the trace")
    return out


def _scaling(src, ss: dict, regions, eps) -> Scaling:
    """``[scaling]``: its keys checked, the policy's thresholds as defaults; with level >= 1 every region's
    endpoints must share one SKU and tensor parallelism (instances move between them) and have replica groups of
    2 or 3 instances (SageServe's group moves)."""
    if not ss:
        return Scaling()
    names = {f.name for f in fields(Scaling)}
    _table(src, "scaling", ss, names)
    level = _num(src, "scaling.level", ss.get("level", 0), 0, 2, True)
    policy = choice(src, "scaling.policy", ss.get("policy", "utilization"), SCALING_POLICIES)
    delays = choice(src, "scaling.delays", ss.get("delays", "real"), SCALING_DELAYS)
    up, low = SCALING_THRESHOLDS[policy]
    hi = 1e9
    out = Scaling(level, policy, _num(src, "scaling.upper", ss.get("upper", up), 0.0, hi),
                  _num(src, "scaling.lower", ss.get("lower", low), 0.0, hi),
                  _num(src, "scaling.interval", ss.get("interval", -1.0), -1.0, MAX_DELAY_S),
                  _num(src, "scaling.timer", ss.get("timer", 0.0), 0.0, MAX_DELAY_S), delays,
                  *(_num(src, f"scaling.{k}", ss.get(k, getattr(Scaling, k)), 0.0, MAX_DELAY_S)
                    for k in ("spin_up", "reclaim_delay", "spin_down")),
                  _num(src, "scaling.min_instances", ss.get("min_instances", 2), 2, MAX_INSTANCES, True),
                  _num(src, "scaling.max_instances", ss.get("max_instances", 0), 0, MAX_INSTANCES, True),
                  _num(src, "scaling.pending_time", ss.get("pending_time", 86400.0), 0.0, 1e12),
                  _num(src, "scaling.prompt_time", ss.get("prompt_time", 10.0), 0.0, 1e6),
                  _num(src, "scaling.decode_throughput", ss.get("decode_throughput", 100.0), 1e-9, 1e12))
    if out.lower > out.upper:
        raise InputError(src, "scaling.lower", f"must be at most scaling.upper ({out.upper:g}), got {out.lower:g}")
    if out.max_instances and out.max_instances < out.min_instances:
        raise InputError(src, "scaling.max_instances", f"must be 0 (no limit) or at least scaling.min_instances "
                                                       f"({out.min_instances}), got {out.max_instances}")
    if level == 0:
        return out
    for reg in regions:
        mine = [e for e in eps if e.region == reg]
        kinds = {(e.sku, e.tensor_parallel) for e in mine}
        if len(kinds) > 1:
            raise InputError(src, "scaling.level", f"instances move between the endpoints of a region, so they need "
                                                   f"one SKU and tensor parallelism; region {reg!r} has "
                                                   f"{sorted(kinds)}")
        for e in mine:
            if any(g not in (2, 3) for g in e.group_sizes()):
                raise InputError(src, "scaling.level", f"scaling moves instances between replica groups of 2 or 3; "
                                                       f"endpoint {e.name!r} of region {reg!r} has groups "
                                                       f"{list(e.group_sizes())}")
    return out
