"""Capacity search: for every configuration of an experiment at once, the highest arrival rate that meets the
SLOs (``max_rate_search``), or, at a target rate, the cheapest configuration that meets them
(``cheapest_search``, in ``sweepsim.search.cheapest``).

Loads. A search varies the rate of the experiment's generated trace (``[trace]`` generator table: its sizes,
seed and duration stay; every application's rate is scaled so that they sum to the probed rate), so every
configuration sees the same arrivals at a given rate. Rates lie on a geometric grid ``lo x (1 + tol)^k`` up
to ``hi``, so a bisection over grid indices finds the capacity within the relative tolerance.

Bisection. Each configuration keeps the highest grid index known to meet the SLOs (``lo``, -1 below the
grid) and the lowest known to miss them (``hi``, past the grid), and probes the middle until they are
adjacent: at most ceil(log2(n + 1)) probes for n grid rates. It assumes that the SLOs, once missed at a rate, are
missed at every higher one. Every round simulates the current probe of every unfinished configuration
together: one kernel call per distinct trace (``sweepsim.sweep`` backends, local threads or Ray).

Probes are kept in ``probes.parquet`` of the results directory (one row per configuration x rate with its
summary rows): a rerun, even with other SLOs, reuses them (a search resumes like a sweep).
"""
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sweepsim.config.run import RunConfig
from sweepsim.errors import InputError
from sweepsim.search.slo import meets, worst
from sweepsim.sweep.jobs import Job, config_json
from sweepsim.workload.cache import ensure_trace, spec_path

RATE_AXIS = "trace.rate"
PROBES_FILE = "probes.parquet"
CAPACITY_FILE = "capacity.parquet"


def rate_grid(lo: float, hi: float, tol: float) -> np.ndarray:
    """Rates lo, lo (1 + tol), ... up to and including hi (the last step may be shorter)."""
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise InputError(None, "--rate-range", f"needs 0 < LO <= HI, got {lo:g}:{hi:g}")
    if not 0 < tol < 1:
        raise InputError(None, "--tol", f"must be in (0, 1), got {tol:g}")
    steps = math.log(hi / lo) / math.log1p(tol) if math.isfinite(hi / lo) else math.inf
    if not steps < 1_000_000:
        raise InputError(None, "--rate-range", f"{lo:g}:{hi:g} in steps of {tol:g} is over a million rates; "
                                               "narrow the range or raise --tol")
    n = int(math.floor(steps + 1e-9))
    rates = lo * (1.0 + tol) ** np.arange(n + 1)
    if rates[-1] < hi * (1 - 1e-12):
        rates = np.append(rates, hi)
    return rates


@dataclass
class Candidate:
    """One configuration of the search: its parameters without the trace rate."""
    key: str
    config: RunConfig
    varied: dict
    raw: dict


def candidates(points: list[dict], configs: list[RunConfig], varied: list[dict], source,
               objectives=()) -> list[Candidate]:
    """The experiment's configurations with the trace rate left out (points differing only by it are one
    candidate), each checked to have a generated trace with a rate and a duration (and, for slowdown
    objectives, profiled data for the slowdown reference machine)."""
    from sweepsim.engine.performance import slowdown_curve
    slowdowns = any("slowdown" in o.metric for o in objectives)
    out: dict[str, Candidate] = {}
    for raw, cfg, var in zip(points, configs, varied):
        if slowdowns and cfg.performance_model.kind == "db":
            slowdown_curve(cfg)
        spec = cfg.trace_spec
        if spec is None:
            raise InputError(source, "trace", "a capacity search varies the rate of a generated trace: give "
                                              "[trace] as a generator table (sizes, rate, duration, seed), not a file")
        if spec.duration is None or spec.count is not None:
            raise InputError(source, "trace.duration", "a capacity search compares rates over one duration: give "
                                                       "trace.duration and no trace.count")
        if any(a.rate is None for a in spec.apps):
            raise InputError(source, "trace.rate", "every application of the trace needs a rate (replayed or "
                                                   "profile-driven arrivals cannot be scaled to a probed rate)")
        doc = dict(raw)
        trace = dict(doc.get("trace") or {})
        trace.pop("rate", None)
        doc["trace"] = trace
        key = candidate_key(raw, cfg)
        if key not in out:
            out[key] = Candidate(key, cfg, {k: v for k, v in var.items() if k != RATE_AXIS}, doc)
    return list(out.values())


def workload_mix(spec):
    """The trace spec at any total rate: every application's rate as a fraction of their sum."""
    total = sum(a.rate for a in spec.apps)
    return dataclasses.replace(spec, apps=tuple(dataclasses.replace(a, rate=a.rate / total) for a in spec.apps))


def candidate_key(raw: dict, cfg: RunConfig) -> str:
    """What a probe's result depends on besides its rate: the configuration without its trace, the trace spec
    with the applications' rates as fractions of their sum (the mix), the event order, and the content of every
    file either reads (sizes or profiles of the trace, performance database, roofline efficiencies)."""
    from sweepsim.engine.performance import DEFAULT_DB
    from sweepsim.engine.roofline import DEFAULT_EFFICIENCY
    from sweepsim.workload.cache import file_digest
    from sweepsim.workload.spec import spec_json
    spec = cfg.trace_spec
    doc = {k: v for k, v in raw.items() if k != "trace"}
    files = [a.sizes[len("trace:"):] for a in spec.apps if a.sizes.startswith("trace:")]
    files += [a.profile for a in spec.apps if a.profile]
    pm = cfg.performance_model
    if pm.kind == "db":
        files.append(pm.path or DEFAULT_DB)
    elif pm.kind == "roofline":
        files.append(pm.efficiency or DEFAULT_EFFICIENCY)
    digests = "|".join(file_digest(f) for f in files)
    text = f"{config_json(doc)}|{spec_json(workload_mix(spec))}|{cfg.event_order}|{digests}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Output columns of the search tables: a varied parameter of the same name would be overwritten.
RESERVED = ("config_key", "max_rate_rps", "at_range_max", "probes", "cost_per_hour_usd", "gpus", "note",
            "throughput_rps", "mean_power_w", "energy_per_request_j", "cost_per_hour_per_rps_usd",
            "power_per_rps_w", "status", "objective", "objective_value", "simulated")


def check_names(cands: list[Candidate], objectives, source):
    """Varied parameters must not be named like the search's output columns or SLO metrics."""
    taken = set(RESERVED) | {o.metric for o in objectives}
    for c in cands[:1]:
        for k in c.varied:
            if k in taken or k.split(".", 1)[-1] in RESERVED:
                raise InputError(source, k, "a varied parameter named like an output column of the search "
                                            f"({', '.join(sorted(set(RESERVED)))}); rename it")


def check_rates(cands: list[Candidate], lo: float, hi: float, field: str):
    """Every candidate's trace at ``lo`` has at least one request and at ``hi`` stays within the trace size
    limit: a clear error naming the option before anything is simulated."""
    for c in cands:
        dur = c.config.trace_spec.duration
        if lo * dur < 1:
            raise InputError(None, field, f"{lo:g} req/s over the trace's {dur:g} s gives no request: raise the "
                                          "rate or trace.duration")
        try:
            at_rate(c.config, hi)
        except InputError as e:
            raise InputError(None, field, f"{hi:g} req/s: {e.message}") from None


def at_rate(cfg: RunConfig, rate: float) -> RunConfig:
    """The configuration with its generated trace at ``rate`` requests/s in total."""
    spec = cfg.trace_spec
    total = sum(a.rate for a in spec.apps)
    apps = tuple(dataclasses.replace(a, rate=a.rate * rate / total) for a in spec.apps)
    spec = dataclasses.replace(spec, apps=apps)
    return dataclasses.replace(cfg, trace_spec=spec, trace=str(spec_path(spec, cfg.source)))


class ProbeRunner:
    """Simulates probes (candidate, rate) in rounds, keeping every result in ``probes.parquet``."""

    def __init__(self, out: Path, backend: str = "local", address: str | None = None, quiet: bool = True):
        self.out = Path(out)
        self.backend, self.address, self.quiet = backend, address, quiet
        self.results: dict[tuple[str, float], dict] = {}
        self.simulated_probes = 0
        self.simulated_requests = 0
        path = self.out / PROBES_FILE
        if path.exists():
            self.results = read_probes(path)

    def run(self, probes: list[tuple[Candidate, float]]) -> None:
        """Simulate the probes not done yet (one batch per distinct trace) and record them."""
        todo = [(c, r) for c, r in dict(((c.key, r), (c, r)) for c, r in probes).values()
                if (c.key, r) not in self.results]
        if not todo:
            return
        jobs = []
        for c, r in todo:
            cfg = at_rate(c.config, r)
            ensure_trace(cfg)
            jobs.append(Job(f"{c.key}@{r!r}", cfg, {}, c.raw))
        by_hash = {j.hash: (c.key, r) for j, (c, r) in zip(jobs, todo)}
        if self.backend == "ray":
            from sweepsim.sweep.ray_backend import run_chunks_ray as run_chunks
        else:
            from sweepsim.sweep.local import run_chunks_local as run_chunks
        for chunk, tables, n_requests in run_chunks(jobs, False, None, self.address):
            self.simulated_requests += n_requests
            summary = tables["summary"]
            if summary is not None:
                for h, part in summary.partition_by("config_hash", as_dict=True).items():
                    h = h[0] if isinstance(h, tuple) else h
                    rows = part.drop("config_hash").to_dicts()
                    self.results[by_hash[h]] = {"rows": rows, "error": None,
                                                "requests": int(part["requests"].sum())}
            for f in tables["failures"].iter_rows(named=True):
                self.results[by_hash[f["config_hash"]]] = {"rows": [], "error": f["error"], "requests": 0}
        self.simulated_probes += len(todo)
        self._save()

    def _save(self):
        from sweepsim.results.tables import write_parquet_atomic
        keys = list(self.results)
        df = pl.DataFrame({"key": [k for k, _ in keys], "rate": [r for _, r in keys],
                           "rows": [json.dumps(self.results[k]["rows"], default=_json_value) for k in keys],
                           "error": [self.results[k]["error"] for k in keys],
                           "requests": [self.results[k]["requests"] for k in keys]}, schema=PROBE_SCHEMA)
        write_parquet_atomic(df, self.out / PROBES_FILE)

    def outcome(self, key: str, rate: float, objectives) -> bool:
        res = self.results[(key, rate)]
        return res["error"] is None and meets(res["rows"], objectives)


PROBE_SCHEMA = {"key": pl.String, "rate": pl.Float64, "rows": pl.String, "error": pl.String, "requests": pl.Int64}


def read_probes(path: Path) -> dict:
    """probes.parquet, checked: a damaged or foreign file is a one-line error (delete it to search afresh)."""
    from sweepsim.errors import read_parquet
    df = read_parquet(path, "probes", tuple(PROBE_SCHEMA))
    fix = "delete it to search afresh"
    for col, dtype in PROBE_SCHEMA.items():
        if df[col].dtype != dtype:
            raise InputError(path, col, f"has type {df[col].dtype}, not {dtype}: not a probes file of sweepsim "
                                        f"search; {fix}")
    if df["key"].null_count() or df["rate"].null_count() or df["requests"].null_count():
        raise InputError(path, "key", f"has empty keys, rates or request counts; {fix}")
    out = {}
    for row in df.iter_rows(named=True):
        try:
            rows = json.loads(row["rows"]) if row["rows"] is not None else None
        except ValueError:
            rows = None
        ok = isinstance(rows, list) and all(isinstance(r, dict) for r in rows) and all(
            v is None or isinstance(v, (int, float, str, bool)) for r in rows for v in r.values())
        if not ok or (not rows and row["error"] is None):
            raise InputError(path, "rows", f"probe {row['key']} at {row['rate']:g} req/s has no valid summary rows; "
                                           f"{fix}")
        out[(row["key"], row["rate"])] = {"rows": rows, "error": row["error"], "requests": row["requests"]}
    return out


def _json_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return str(v)


@dataclass
class Capacity:
    candidate: Candidate
    max_rate: float          # requests/s; 0 when the lowest rate misses the SLOs
    at_range_max: bool       # the highest rate of the range meets them: the capacity may be higher
    probes: int
    note: str = ""


SHAPE_PARAMS = ("prompt_servers", "token_servers")


def shape(cfg: RunConfig) -> tuple[tuple, dict]:
    """(the rest of the configuration: its parameters and its workload, the trace spec's mix at any rate; its server
    counts by kind: per SKU, and the prompt / token servers of a homogeneous split)."""
    from sweepsim.workload.spec import spec_json
    params = cfg.params()
    counts = {k: v for k, v in params.items() if k.startswith("cluster.") or (k in SHAPE_PARAMS and v is not None)}
    rest = tuple(sorted((k, str(v)) for k, v in params.items() if k not in counts and k != "name"))
    if cfg.trace_spec is not None:
        rest += (("trace", spec_json(workload_mix(cfg.trace_spec))),)
    return rest, counts


def _shape_matrix(cands: list[Candidate]) -> tuple[np.ndarray, np.ndarray]:
    """(server counts per candidate and kind, group of otherwise identical configurations)."""
    shapes = [shape(c.config) for c in cands]
    kinds = sorted({k for _, counts in shapes for k in counts})
    m = np.array([[counts.get(k, 0) for k in kinds] for _, counts in shapes], dtype=np.int64)
    _, group = np.unique(np.array([hash(rest) for rest, _ in shapes]), return_inverse=True)
    return m.reshape(len(cands), len(kinds)), group


def dominance(cands: list[Candidate]) -> np.ndarray:
    """``D[i, j]``: candidate i has at least as many servers of every kind as candidate j, and is otherwise the
    same configuration."""
    m, group = _shape_matrix(cands)
    return (m[:, None, :] >= m[None, :, :]).all(axis=2) & (group[:, None] == group[None, :])


def lattice_levels(cands: list[Candidate]) -> np.ndarray:
    """Coarse-to-fine order over the shapes: per kind of server, the rank of a shape's count among the counts
    its group uses; a shape's level is the largest k with every rank a multiple of 2^k (rank 0 counts as any).
    Shapes of the highest level are searched first, and each finer level lies between shapes already known."""
    m, group = _shape_matrix(cands)
    level = np.full(len(cands), 62, np.int64)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        for k in range(m.shape[1]):
            rank = np.searchsorted(np.unique(m[rows, k]), m[rows, k])
            tz = np.where(rank == 0, 62, np.array([(int(r) & -int(r)).bit_length() - 1 if r else 62 for r in rank]))
            level[rows] = np.minimum(level[rows], tz)
    return level


def max_rate_search(cands: list[Candidate], rates: np.ndarray, objectives, runner: ProbeRunner,
                    progress=None, prune: bool = True, upper: np.ndarray | None = None) -> list[Capacity]:
    """Bisection over the rate grid, candidates advancing together (one round = one probe each).

    With ``prune`` (the same monotonicity as ``cheapest``): a shape serves at least what any shape with fewer
    servers of every kind serves and at most what any shape with more of every kind serves, so the shapes are
    searched coarse to fine (``lattice_levels``) and each starts from the bracket the shapes known so far give
    it; an answer inferred that way is then simulated (and searched again below if it misses the SLOs). Without
    it every shape bisects the whole range on its own.

    ``upper`` (per candidate, a grid index known to miss the SLOs, e.g. from a screening pass on a shorter
    trace): the search starts just below it and gallops down (1, 2, 4, ... steps) to a rate that meets them,
    then bisects."""
    n = len(rates)
    lo = np.full(len(cands), -1)
    hi = np.full(len(cands), n) if upper is None else np.asarray(upper, np.int64).copy()
    gallop = np.zeros(len(cands), np.int64) if upper is None else np.where(hi < n, 1, 0)
    probes = np.zeros(len(cands), np.int64)
    dom = dominance(cands) if prune else None
    levels = lattice_levels(cands) if prune else np.zeros(len(cands), np.int64)
    rounds = 0

    def bisect(wave, dom):
        nonlocal lo, hi, rounds
        while True:
            if dom is not None:   # lo from the shapes it covers, hi from those covering it; never past its own
                lo = np.maximum(lo, np.minimum(np.where(dom, lo[None, :], -1).max(axis=1), hi - 1))
                hi = np.minimum(hi, np.maximum(np.where(dom.T, hi[None, :], n).min(axis=1), lo + 1))
            todo = [(i, max(lo[i] + 1, hi[i] - gallop[i]) if gallop[i] else (lo[i] + hi[i]) // 2)
                    for i in np.flatnonzero(wave) if hi[i] - lo[i] > 1]
            if not todo:
                return
            rounds += 1
            runner.run([(cands[i], float(rates[k])) for i, k in todo])
            for i, k in todo:
                probes[i] += 1
                if runner.outcome(cands[i].key, float(rates[k]), objectives):
                    lo[i] = k
                    gallop[i] = 0
                else:
                    hi[i] = k
                    gallop[i] *= 2
            if progress:
                progress(rounds, len(todo))

    for level in sorted(set(levels.tolist()), reverse=True):
        bisect(levels >= level, dom)
    # an answer inferred from other shapes is simulated, so that its metrics are real; where it misses the SLOs
    # (the monotonicity assumed does not hold there) the shape bisects below it on its own
    while prune:
        unseen = [i for i in range(len(cands))
                  if lo[i] >= 0 and (cands[i].key, float(rates[lo[i]])) not in runner.results]
        if not unseen:
            break
        runner.run([(cands[i], float(rates[lo[i]])) for i in unseen])
        wrong = np.zeros(len(cands), bool)
        for i in unseen:
            probes[i] += 1
            if not runner.outcome(cands[i].key, float(rates[lo[i]]), objectives):
                wrong[i] = True
                hi[i], lo[i] = lo[i], -1
        bisect(wrong, None)
    out = []
    for i, c in enumerate(cands):
        k = int(lo[i])
        note = ""
        if k < 0:
            res = runner.results.get((c.key, float(rates[0])))
            err = res["error"] if res else None
            note = f"fails: {err}" if err else f"the SLOs are not met even at {rates[0]:g} req/s"
        out.append(Capacity(c, float(rates[k]) if k >= 0 else 0.0, k == n - 1, int(probes[i]), note))
    return out


def screening(cands: list[Candidate], fraction: float) -> list[Candidate]:
    """The candidates on a trace of ``fraction`` of their duration (same seed, sizes and rates)."""
    out = []
    for c in cands:
        spec = dataclasses.replace(c.config.trace_spec, duration=c.config.trace_spec.duration * fraction)
        out.append(Candidate(f"{c.key}~{fraction!r}", dataclasses.replace(c.config, trace_spec=spec), c.varied,
                             c.raw))
    return out


def screened_max_rate_search(cands, rates, objectives, runner, fraction: float, progress=None,
                             prune: bool = True) -> list[Capacity]:
    """A first search on traces ``fraction`` as long, then the full-length one starting below each screened
    capacity (``upper``): a short run builds less queueing than a long one, so a rate that misses the SLOs on
    the short trace is taken to miss them on the full one. Every reported capacity is simulated at full
    length."""
    short = max_rate_search(screening(cands, fraction), rates, objectives, runner, progress, prune)
    upper = np.array([int(np.searchsorted(rates, cap.max_rate)) + 1 if cap.max_rate > 0 else 0 for cap in short])
    upper = np.minimum(upper, len(rates))
    caps = max_rate_search(cands, rates, objectives, runner, progress, prune, upper=upper)
    for cap, s in zip(caps, short):
        cap.probes += s.probes
        if cap.max_rate == 0 and (cap.candidate.key, float(rates[0])) not in runner.results:
            cap.note = f"screened out: the SLOs are not met even at {rates[0]:g} req/s on the short trace"
    return caps


def cost_per_hour(cfg: RunConfig) -> float:
    """Dollars per hour of the configuration's servers (the SKUs' prices)."""
    from sweepsim.config.catalog import get_sku
    return float(sum(get_sku(sku).cost_per_hour * n for sku, n in cfg.cluster))


def gpus(cfg: RunConfig) -> int:
    from sweepsim.config.catalog import get_sku
    return int(sum(get_sku(sku).num_processors * n for sku, n in cfg.cluster))


def energy_per_request(rows: list[dict]) -> float:
    """Cluster energy of a probe (the same on every application's row) over its completed requests [J]."""
    done = sum(int(r.get("completed") or 0) for r in rows)
    return float(rows[0].get("energy_j") or math.nan) / done if rows and done else math.nan


def capacity_table(caps: list[Capacity], objectives, runner: ProbeRunner) -> pl.DataFrame:
    """capacity.parquet: one row per configuration (columns documented in docs/search.md)."""
    rows = []
    for cap in caps:
        c = cap.candidate
        row = {"config_key": c.key, **c.varied, "max_rate_rps": cap.max_rate, "at_range_max": cap.at_range_max,
               "probes": cap.probes, "cost_per_hour_usd": cost_per_hour(c.config), "gpus": gpus(c.config),
               "note": cap.note}
        res = runner.results.get((c.key, cap.max_rate)) if cap.max_rate > 0 else None
        summ = res["rows"] if res else []
        for o in objectives:
            row[o.metric] = worst(summ, o) if summ else math.nan
        if summ:
            row["throughput_rps"] = sum(float(r.get("throughput_rps") or 0.0) for r in summ)
            row["mean_power_w"] = float(summ[0].get("mean_power_w") or math.nan)
            row["energy_per_request_j"] = energy_per_request(summ)
        else:
            row["throughput_rps"] = row["mean_power_w"] = row["energy_per_request_j"] = math.nan
        rate = cap.max_rate
        row["cost_per_hour_per_rps_usd"] = row["cost_per_hour_usd"] / rate if rate > 0 else math.nan
        row["power_per_rps_w"] = row["mean_power_w"] / rate if rate > 0 else math.nan
        row.update({k: v for k, v in c.config.params().items() if k not in row})
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)
