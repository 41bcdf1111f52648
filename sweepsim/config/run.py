"""Run configurations (TOML): parsing, validation and ``--set`` overrides.

A run config names the cluster (servers per SKU, in cluster order, or a shipped cluster name), the
model, the start state (instance placement), the scheduler, the performance model, the trace and the
seed. Unknown keys and bad values raise ``InputError`` naming the file, the key and the allowed values.
Oracle ``case.toml`` files are run configs without a trace.
"""
import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from sweepsim import PROJECT_ROOT
from sweepsim.errors import InputError, allowed, choice, read_toml
from sweepsim.config.catalog import get_model, get_sku, processors, skus
from sweepsim.engine.performance import PerfModelConfig
from sweepsim.config.schedulers import CO_LOCATED
from sweepsim.config.schedulers import SCHEDULERS as SCHEDULER_TABLE
from sweepsim.config.topology import TOP_KEYS as TOPOLOGY_KEYS, Topology, band_label, is_topology_config, \
    parse_topology

START_STATES = ("orca", "baseline", "splitwise", "splitwise_hhcap")
SCHEDULERS = tuple(SCHEDULER_TABLE)
SPLIT_TYPES = ("homogeneous", "heterogeneous")
NETWORKS = ("dedicated", "shared")
#: by_kind: simultaneous events as run ends, KV events, arrivals, by id; reference: SplitwiseSim's heap order
EVENT_ORDERS = ("by_kind", "reference")
OVERSIZED = ("error", "reject")
CLUSTERS_DIR = PROJECT_ROOT / "configs" / "clusters"


@dataclass(frozen=True)
class InstanceConfig:
    max_batch_size: int = 512
    max_batch_tokens: int = 2048
    max_preemptions: int = 4
    tensor_parallel: int = 8


@dataclass(frozen=True)
class RunConfig:
    source: str | None
    cluster: tuple[tuple[str, int], ...]
    model: str = "bloom-176b"
    start_state: str = "baseline"
    scheduler: str = "token_jsq"
    seed: int = 0
    name: str = "run"
    trace: str | None = None
    end_time: float = 86400.0
    performance_model: PerfModelConfig = field(default_factory=PerfModelConfig)
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    split_type: str = "homogeneous"
    prompt_servers: int | None = None
    token_servers: int | None = None
    prompt_sku: str = "dgx-h100"
    token_sku: str = "dgx-a100"
    transfer_bandwidth_gib: float | None = None   # override of the scheduler's KV link bandwidth (GiB/s)
    network: str = "dedicated"    # dedicated: a private link per KV transfer (SplitwiseSim); shared: NIC contention
    slowdown_hardware: str = "a100-80gb"   # slowdowns: latency / the same request alone on this GPU
    slowdown_tensor_parallel: int = 8       # ... with this tensor parallelism (the Splitwise paper's DGX-A100)
    event_order: str = "by_kind"  # simultaneous events: by kind then id, or SplitwiseSim's heap order (reference)
    oversized_requests: str = "error"   # a request that can never fit: error before the run, or reject (drop)
    trace_spec: object = field(default=None, compare=False, repr=False)  # workload.spec.TraceSpec of a generated trace
    topology: Topology | None = None    # regions and model endpoints (config.topology); None: one cluster, one model

    def params(self) -> dict:
        """Flat, typed parameters for summary columns (cluster counts as ``cluster.<sku>``)."""
        out = {"name": self.name, "model": self.model, "start_state": self.start_state,
               "scheduler": self.scheduler, "seed": self.seed, "performance_model": self.performance_model.kind,
               "max_batch_size": self.instance.max_batch_size, "max_batch_tokens": self.instance.max_batch_tokens,
               "max_preemptions": self.instance.max_preemptions, "tensor_parallel": self.instance.tensor_parallel,
               "network": self.network, "event_order": self.event_order,
               "slowdown_hardware": self.slowdown_hardware, "slowdown_tensor_parallel": self.slowdown_tensor_parallel,
               "oversized_requests": self.oversized_requests}
        if self.start_state.startswith("splitwise"):
            out.update(split_type=self.split_type, prompt_servers=self.prompt_servers,
                       token_servers=self.token_servers, prompt_sku=self.prompt_sku, token_sku=self.token_sku)
        for sku, count in self.cluster:
            out[f"cluster.{sku}"] = count
        if self.topology is not None:
            t = self.topology
            for k in ("model", "scheduler", "max_batch_tokens", "max_preemptions", "tensor_parallel", "network"):
                out.pop(k)
            out.update({"topology": t.name, "routing.threshold": t.routing.threshold, "routing.delay": t.routing.delay,
                        "feeding.enabled": t.feeding.enabled, "feeding.granularity": t.feeding.granularity,
                        "feeding.bands": band_label(t.feeding.bands),
                        "feeding.on_enqueue": t.feeding.on_enqueue,
                        "feeding.dev_sla_fraction": t.feeding.dev_sla_fraction})
            if t.scaling.level:
                out.update({f"scaling.{f.name}": getattr(t.scaling, f.name) for f in fields(type(t.scaling))})
            else:
                out["scaling.level"] = 0
            for e in t.endpoints:
                out[f"instances.{e.region}.{e.name}"] = e.instances
        return out


TOP_KEYS = ({f.name for f in fields(RunConfig)} - {"source", "trace_spec", "topology"}) | set(TOPOLOGY_KEYS)


#: Largest integer a config value may take: the kernels hold them in int64 and add to them.
MAX_INT = 2 ** 62
#: Servers per configuration (instances are placed one Python row each).
MAX_SERVERS = 100_000
#: Longest constant iteration time and finite end time [s] (sums of times stay far from overflow).
MAX_TIME_S = 1e6
MAX_END_TIME_S = 1e13


def _as_int(src, key, v, minimum=0, maximum=MAX_INT):
    if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum:
        raise InputError(src, key, f"must be an integer from {minimum} to {maximum}, got {v!r}")
    return v


def _as_time(src, key, v):
    """An iteration time [s]: finite, > 0 and at most MAX_TIME_S, so that sums of them stay finite."""
    x = _as_float(src, key, v)
    if x > MAX_TIME_S:
        raise InputError(src, key, f"must be at most {MAX_TIME_S:g} seconds, got {v!r}")
    return x


def _as_float(src, key, v, minimum=0.0, finite=True):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > minimum or (finite and not math.isfinite(v)):
        raise InputError(src, key, f"must be a {'finite ' if finite else ''}number > {minimum}, got {v!r}")
    return float(v)


def _as_str(src, key, v):
    if not isinstance(v, str) or not v.strip():
        raise InputError(src, key, f"must be a non-empty string, got {v!r}")
    return v


def _as_end_time(src, key, v):
    x = _as_float(src, key, v, finite=False)  # inf: until every request ends
    if MAX_END_TIME_S < x < math.inf:
        raise InputError(src, key, f"must be at most {MAX_END_TIME_S:g} seconds or inf, got {v!r}")
    return x


def _as_bandwidth(src, key, v):
    x = _as_float(src, key, v)
    if not 1e-3 <= x <= 1e9:
        raise InputError(src, key, f"must be from 0.001 to 1e9 GiB/s, got {v!r}")
    return x


#: Top-level scalar keys of a run config and their converters (tables and the trace are parsed on their own).
SCALARS = {
    "start_state": lambda s, k, v: choice(s, k, v, START_STATES),
    "scheduler": lambda s, k, v: choice(s, k, v, SCHEDULERS),
    "seed": _as_int,
    "name": _as_str,
    "end_time": _as_end_time,
    "network": lambda s, k, v: choice(s, k, v, NETWORKS),
    "event_order": lambda s, k, v: choice(s, k, v, EVENT_ORDERS),
    "slowdown_hardware": lambda s, k, v: choice(s, k, v, tuple(sorted(processors()))),
    "slowdown_tensor_parallel": lambda s, k, v: choice(s, k, v, (1, 2, 4, 8)),
    "oversized_requests": lambda s, k, v: choice(s, k, v, OVERSIZED),
    "transfer_bandwidth_gib": _as_bandwidth,
    "split_type": lambda s, k, v: choice(s, k, v, SPLIT_TYPES),
    "prompt_servers": lambda s, k, v: _as_int(s, k, v, maximum=MAX_SERVERS),
    "token_servers": lambda s, k, v: _as_int(s, k, v, maximum=MAX_SERVERS),
    "prompt_sku": lambda s, k, v: choice(s, k, v, tuple(skus())),
    "token_sku": lambda s, k, v: choice(s, k, v, tuple(skus())),
}


def load_cluster(name, src=None):
    path = CLUSTERS_DIR / f"{name}.toml"
    if not path.exists():
        have = sorted(p.stem for p in CLUSTERS_DIR.glob("*.toml"))
        raise InputError(src, "cluster", f"unknown cluster {name!r}; {allowed(have)}")
    with open(path, "rb") as f:
        return tomllib.load(f).get("servers", {})


def _parse_cluster(src, v):
    if isinstance(v, str):
        v = load_cluster(v, src)
    if not isinstance(v, dict) or not v:
        raise InputError(src, "cluster", "must be a table of servers per SKU (e.g. dgx-h100 = 4) or a cluster name")
    out = []
    for sku, count in v.items():
        get_sku(sku, src, f"cluster.{sku}")
        out.append((sku, _as_int(src, f"cluster.{sku}", count)))
    total = sum(c for _, c in out)
    if total == 0:
        raise InputError(src, "cluster", "has no servers")
    if total > MAX_SERVERS:
        raise InputError(src, "cluster", f"has {total} servers; at most {MAX_SERVERS} per configuration")
    return tuple(out)


MAX_TOKENS_CONTEXT = 10_000_000
#: performance_model keys that only one kind reads
PERF_KEY_KINDS = {"path": ("db",), "fallback": ("db",), "prompt_time": ("constant",), "token_time": ("constant",),
                  "efficiency": ("roofline",), "context_tokens": ("roofline",), "compute_efficiency": ("roofline",),
                  "memory_efficiency": ("roofline",)}


def _as_fraction(src, key, v):
    x = _as_float(src, key, v)
    if not 0.001 <= x <= 1:
        raise InputError(src, key, f"must be a fraction from 0.001 to 1, got {v!r}")
    return x


def _as_overhead(src, key, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 10:
        raise InputError(src, key, f"must be seconds from 0 to 10 added to every iteration, got {v!r}")
    return float(v)


def _as_scale(src, key, v):
    x = _as_float(src, key, v)
    if not 0.01 <= x <= 100:
        raise InputError(src, key, f"must be a factor from 0.01 to 100 on every iteration time, got {v!r}")
    return x


def _parse_table(src, key, v, cls, converters):
    if not isinstance(v, dict):
        raise InputError(src, key, "must be a table")
    names = {f.name for f in fields(cls)}
    kw = {}
    for k, x in v.items():
        if k not in names:
            raise InputError(src, f"{key}.{k}", f"unknown key; {allowed(sorted(names))}")
        kw[k] = converters[k](src, f"{key}.{k}", x)
    return cls(**kw)


def resolve_path(p, base: Path | None) -> Path:
    """A relative path is looked up next to the config file, then in the working directory, then in the
    project root (shipped traces and data)."""
    p = Path(p)
    if p.is_absolute():
        return p
    for root in ([base] if base else []) + [Path.cwd(), PROJECT_ROOT]:
        if (root / p).exists():
            return root / p
    return p


def from_dict(d: dict, src=None) -> RunConfig:
    """Validate a raw config dict (as read from TOML) into a RunConfig."""
    base = Path(src).parent if src else None
    unknown = sorted(set(d) - TOP_KEYS)
    if unknown:
        raise InputError(src, unknown[0], f"unknown key; {allowed(sorted(TOP_KEYS))}")
    if is_topology_config(d):
        kw = _topology_kw(d, src, base)
    else:
        if "cluster" not in d:
            raise InputError(src, "cluster", "missing (servers per SKU, e.g. [cluster] dgx-h100 = 1)")
        kw = {"source": str(src) if src else None, "cluster": _parse_cluster(src, d["cluster"])}
    if "model" in d:
        kw["model"] = get_model(d["model"], src).name
    for k, convert in SCALARS.items():
        if k in d:
            kw[k] = convert(src, k, d[k])
    if "trace" in d:
        t = d["trace"]
        if isinstance(t, dict) and "path" in t:
            extra = sorted(set(t) - {"path"})
            if extra:
                raise InputError(src, f"trace.{extra[0]}", "a [trace] table has either path = ... or generator "
                                                           "keys (sizes, rate, duration, ...), not both")
            t = t.get("path")
        elif isinstance(t, dict) and t:
            # a generated trace named by its spec: its cache path (<trace cache>/<hash>.parquet); the file is
            # generated when a run or sweep starts (workload.cache.ensure_trace), not here
            from sweepsim.workload.cache import spec_path
            from sweepsim.workload.spec import parse_spec
            kw["trace_spec"] = parse_spec(t, src, resolve=lambda p: resolve_path(p, base))
            t = str(spec_path(kw["trace_spec"], src))
        if not isinstance(t, str) or not t.strip():
            raise InputError(src, "trace", "must be a path, a table with path = ..., or a generator spec "
                                           "(sizes = ..., rate = ..., duration = ..., seed = ...)")
        kw["trace"] = str(resolve_path(t, base))
    pm = d.get("performance_model", "db")
    if isinstance(pm, str):
        pm = {"kind": pm}
    if "topology" in kw and isinstance(pm, dict) and pm.get("kind", "db") == "db" and "fallback" not in pm:
        # a topology's models A-D run on their profiled look-alikes; models nobody profiled on the roofline model
        pm = {**pm, "fallback": "roofline"}
    kw["performance_model"] = _parse_table(src, "performance_model", pm, PerfModelConfig, {
        "kind": lambda s, k, v: choice(s, k, v, ("db", "constant", "roofline")),
        "path": lambda s, k, v: str(resolve_path(_as_str(s, k, v), base)),
        "prompt_time": _as_time, "token_time": _as_time,
        "efficiency": lambda s, k, v: str(resolve_path(_as_str(s, k, v), base)),
        "context_tokens": lambda s, k, v: _as_int(s, k, v, 0, MAX_TOKENS_CONTEXT),
        "compute_efficiency": _as_fraction, "memory_efficiency": _as_fraction,
        "scale": _as_scale, "fallback": lambda s, k, v: choice(s, k, v, ("roofline", "none")),
        "iteration_overhead": _as_overhead})
    if kw["performance_model"].kind == "constant" and not (kw["performance_model"].prompt_time > 0
                                                          and kw["performance_model"].token_time > 0):
        raise InputError(src, "performance_model", "constant model needs prompt_time and token_time > 0 (seconds)")
    for k in pm:   # a key of another kind would be silently ignored
        kinds = PERF_KEY_KINDS.get(k)
        if kinds and kw["performance_model"].kind not in kinds:
            raise InputError(src, f"performance_model.{k}", f"applies to kind {' or '.join(kinds)}, not "
                                                            f"{kw['performance_model'].kind!r}")
    if "instance" in d:
        kw["instance"] = _parse_table(src, "instance", d["instance"], InstanceConfig, {
            "max_batch_size": lambda s, k, v: _as_int(s, k, v, 1),
            "max_batch_tokens": lambda s, k, v: _as_int(s, k, v, 1),
            "max_preemptions": lambda s, k, v: _as_int(s, k, v, 0),
            "tensor_parallel": lambda s, k, v: choice(s, k, v, (1, 2, 4, 8))})
    cfg = RunConfig(**kw)
    _check_combination(cfg)
    return cfg


def _topology_kw(d: dict, src, base) -> dict:
    """RunConfig fields of a topology config: the topology, and the servers it places (one SKU row per SKU)."""
    for k, why in (("cluster", "a topology places its endpoints' instances itself"),
                   ("model", "each endpoint names its model"), ("scheduler", "each endpoint names its group scheduler "
                                                                            "(endpoint.scheduler)"),
                   ("start_state", "topology instances are ORCA instances"),
                   ("instance", "each endpoint gives its tensor_parallel; the batch size is SageServe's 512")):
        if k in d:
            raise InputError(src, k, f"does not apply to a topology config: {why}")
    if d.get("event_order", "by_kind") != "by_kind":
        raise InputError(src, "event_order", "a topology runs in the by_kind event order (the reference order "
                                             "reproduces SplitwiseSim's single-cluster heap)")
    topo = parse_topology(d, src, base)
    servers: dict[str, int] = {}
    for e in topo.endpoints:
        gpus = get_sku(e.sku, src).num_processors
        if gpus % e.tensor_parallel:
            raise InputError(src, "endpoint.tensor_parallel", f"{e.tensor_parallel} does not divide the {gpus} GPUs "
                                                              f"of {e.sku}")
        per_server = gpus // e.tensor_parallel
        servers[e.sku] = servers.get(e.sku, 0) + -(-e.instances // per_server)
    return {"source": str(src) if src else None, "cluster": tuple(servers.items()), "topology": topo,
            "model": topo.endpoints[0].model, "start_state": "orca"}


def _check_combination(cfg: RunConfig):
    src = cfg.source
    if cfg.start_state in ("orca", "baseline") and cfg.scheduler not in CO_LOCATED:
        raise InputError(src, "scheduler", f"{cfg.scheduler!r} needs prompt and token pools (start_state splitwise"
                                           f" or splitwise_hhcap); with start_state {cfg.start_state!r}: "
                                           + allowed(CO_LOCATED))
    if cfg.start_state == "splitwise" and cfg.split_type == "homogeneous":
        if cfg.prompt_servers is None or cfg.token_servers is None:
            raise InputError(src, "prompt_servers", "homogeneous splitwise needs prompt_servers and token_servers")
        total = sum(c for _, c in cfg.cluster)
        if cfg.prompt_servers + cfg.token_servers > total:
            raise InputError(src, "prompt_servers", f"prompt_servers + token_servers exceed the cluster's {total} servers")


def load_config(path, overrides=()) -> RunConfig:
    """Read a TOML run config and apply ``key=value`` overrides (dotted keys, TOML values)."""
    path = Path(path)
    d = read_toml(path, None, "config file")
    for item in overrides:
        apply_override(d, item, path)
    return from_dict(d, path)


def parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(d: dict, item: str, src=None):
    if "=" not in item:
        raise InputError(src, "--set", f"expected key=value, got {item!r}")
    if any(c in item for c in "\n\r\x00"):
        raise InputError(src, "--set", f"a value must be one line (no newline or NUL), got {item!r}")
    key, _, text = item.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise InputError(src, "--set", f"empty key in {item!r}")
    node = d
    for p in parts[:-1]:
        if p == "cluster" and isinstance(node.get(p), str):
            node[p] = dict(load_cluster(node[p], src))
        if p == "performance_model" and isinstance(node.get(p), str):
            node[p] = {"kind": node[p]}
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise InputError(src, key, "is not a table")
    node[parts[-1]] = parse_value(text.strip())


def with_trace(cfg: RunConfig, trace) -> RunConfig:
    """The configuration on another trace file (replacing a generated trace too)."""
    return replace(cfg, trace=str(trace), trace_spec=None)
