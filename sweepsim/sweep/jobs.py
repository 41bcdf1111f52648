"""Jobs of a sweep: one configuration each, with the hash that identifies its results (the resolved config
and the trace file's content), and the grouping of jobs into kernel calls: by trace and performance model,
identical simulations adjacent, chunks of at most N distinct simulations."""
import dataclasses
import hashlib
import json
from dataclasses import dataclass

from sweepsim.config.run import RunConfig
from sweepsim.workload.cache import ensure_trace, file_digest


@dataclass
class Job:
    """One configuration of a sweep."""
    hash: str
    config: RunConfig
    varied: dict
    raw: dict


def config_json(raw: dict) -> str:
    """The resolved configuration as JSON, keys sorted except the cluster's, whose order is the server order
    (it is written as a list of [sku, count] pairs)."""
    doc = dict(raw)
    if isinstance(doc.get("cluster"), dict):
        doc["cluster"] = [[sku, n] for sku, n in doc["cluster"].items()]
    return json.dumps(doc, sort_keys=True, default=str)


def run_config_json(raw: dict) -> str:
    """The resolved configuration as JSON in its own key order (configs.parquet ``config_json``): written back as
    TOML it reruns the configuration, including generator mixes whose order draws the trace."""
    return json.dumps(raw, default=str)


def config_hash(raw: dict, cfg: RunConfig) -> str:
    """Hash of the resolved configuration and of the content of the files it reads: the trace, the topology, a
    planning forecast and the performance database (or the roofline's efficiencies). The event order is hashed as resolved (its default changed once: results of the
    other order must not be taken for this one's when a sweep resumes)."""
    from sweepsim.engine.performance import DEFAULT_DB
    files = [cfg.trace] if cfg.trace else []
    if cfg.performance_model.kind == "db":
        files.append(cfg.performance_model.path or DEFAULT_DB)
    elif cfg.performance_model.kind == "roofline":   # its fitted factors (perf fit rewrites the default file)
        from sweepsim.engine.roofline import DEFAULT_EFFICIENCY
        files.append(cfg.performance_model.efficiency or DEFAULT_EFFICIENCY)
    if cfg.topology is not None and cfg.topology.planning.forecast:   # a planning forecast file
        files.append(cfg.topology.planning.forecast)
    # a topology named by file or shipped name is hashed as resolved: editing the file changes the hash
    topo = f"|topology={cfg.topology!r}" if cfg.topology is not None else ""
    doc = config_json(raw) + f"|event_order={cfg.event_order}{topo}|" + "|".join(file_digest(f) for f in files)
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def make_jobs(points: list[dict], configs: list[RunConfig], varied: list[dict]) -> list[Job]:
    """The sweep's jobs. As the sweep starts, before anything is written: generated traces are generated (once
    per spec) and every distinct trace is loaded once, so that a bad trace fails the command, not the sweep."""
    from sweepsim.workload.trace import load_trace
    for cfg in {c.trace: c for c in configs if c.trace}.values():
        load_trace(ensure_trace(cfg))
    return [Job(config_hash(raw, cfg), cfg, v, raw) for raw, cfg, v in zip(points, configs, varied)]


def simulation_key(cfg: RunConfig):
    """What the simulation depends on: the config without its name and, unless it draws random numbers (the
    random scheduler, autoscaling's donations at level 2), without its seed. Jobs with equal keys are simulated
    once (e.g. a seed axis over deterministic schedulers)."""
    draws = cfg.scheduler == "random" or (cfg.topology is not None and cfg.topology.scaling.level >= 2)
    return dataclasses.replace(cfg, name="", source=None, seed=cfg.seed if draws else 0)


def groups_of(jobs: list[Job]) -> list[list[Job]]:
    """Jobs grouped by (trace, performance model): one kernel call never mixes them. Within a group, jobs
    that simulate identically are adjacent."""
    groups: dict = {}
    for j in jobs:
        groups.setdefault((j.config.trace, j.config.performance_model), {}).setdefault(
            simulation_key(j.config), []).append(j)
    return [[j for js in g.values() for j in js] for g in groups.values()]


def cut(group: list[Job], size: int) -> list[list[Job]]:
    """Chunks of at most ``size`` distinct simulations (identical ones stay in one chunk)."""
    chunks, last, distinct = [], None, 0
    for j in group:
        k = simulation_key(j.config)
        if k != last:  # identical simulations are adjacent (groups_of)
            if not chunks or distinct == size:
                chunks.append([])
                distinct = 0
            distinct += 1
            last = k
        chunks[-1].append(j)
    return chunks


def chunk_id(chunk: list[Job]) -> str:
    return hashlib.sha256("".join(j.hash for j in chunk).encode()).hexdigest()[:16]


def default_chunk_size(n_jobs: int, n_requests: int, workers: int) -> int:
    """Enough chunks to keep every worker busy, each chunk's outputs under ~512 MB."""
    by_memory = max(1, (512 << 20) // max(1, 100 * n_requests))
    balanced = max(1, -(-n_jobs // (4 * workers)))
    return int(max(1, min(by_memory, max(balanced, 2 * workers if workers > 1 else 1), 64)))
