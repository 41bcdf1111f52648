"""Service-level objectives of a capacity search: ``"ttft_p99<=1.0,tbt_p99<=0.1"``.

Each objective is ``<summary column><op><number>`` with op one of ``<=``, ``<``, ``>=``, ``>``; the column is
any numeric column of a run's summary (``sweepsim.results.columns.summary_columns``: latency statistics in
seconds, throughput, energy, cost). A configuration meets the objectives at a load when every application's
summary row meets every objective (a NaN value, e.g. a latency with no completed request, meets none) and no
request was stalled or rejected.
"""
import math
import re
from dataclasses import dataclass

from sweepsim.errors import InputError
from sweepsim.results.columns import summary_columns

OPS = ("<=", ">=", "<", ">")
NOT_METRICS = {"config_hash", "config_json", "application_id"}
_TERM = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(<=|>=|<|>)\s*([^\s]+)\s*$")


def metric_names() -> tuple[str, ...]:
    return tuple(c for c in summary_columns() if c not in NOT_METRICS)


@dataclass(frozen=True)
class Objective:
    metric: str
    op: str
    bound: float

    def holds(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return {"<=": value <= self.bound, "<": value < self.bound,
                ">=": value >= self.bound, ">": value > self.bound}[self.op]

    def __str__(self):
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_slos(text: str, field: str = "--slo") -> tuple[Objective, ...]:
    """Parse a comma-separated list of objectives; a clear error names the bad term and the allowed metrics."""
    if not text or not text.strip():
        raise InputError(None, field, "give at least one objective, e.g. 'ttft_p99<=1.0,tbt_p99<=0.1'")
    names = metric_names()
    out = []
    for term in text.split(","):
        m = _TERM.match(term)
        if not m:
            raise InputError(None, field, f"{term.strip()!r} is not METRIC<=VALUE (operators {', '.join(OPS)}), "
                                          "e.g. ttft_p99<=1.0")
        metric, op, num = m.groups()
        if metric not in names:
            raise InputError(None, field, f"unknown metric {metric!r}; allowed: summary columns such as "
                                          f"ttft_p99, tbt_p90, e2e_p50, throughput_rps (all: {', '.join(names)})")
        try:
            bound = float(num)
        except ValueError:
            bound = math.nan
        if not math.isfinite(bound):
            raise InputError(None, field, f"{term.strip()!r}: the bound must be a finite number")
        if any(o.metric == metric for o in out):
            raise InputError(None, field, f"{metric} appears twice; give each metric once")
        out.append(Objective(metric, op, bound))
    return tuple(out)


def check_for_capacity(objectives, field: str = "--slo"):
    """The highest-rate search needs objectives that, once missed, stay missed at every higher rate: upper
    bounds. A lower bound (throughput_rps>=10) is met only from some rate up, the opposite; it is refused
    there (it is fine with --target-rate)."""
    for o in objectives:
        if o.op in (">=", ">"):
            raise InputError(None, field, f"{o}: a lower bound is met only above some rate, and the capacity search "
                                          "looks for the highest rate meeting every objective; use upper bounds "
                                          "(<=, <) here, or --target-rate")


def meets(rows: list[dict], objectives) -> bool:
    """Whether summary rows (one per application) meet every objective, with nothing stalled or rejected."""
    if not rows:
        return False
    for row in rows:
        if row.get("stalled", 0) or row.get("rejected", 0):
            return False
        if not all(o.holds(row.get(o.metric)) for o in objectives):
            return False
    return True


def worst(rows: list[dict], objective: Objective) -> float:
    """The objective's metric over the applications: the largest for an upper bound, the smallest for a lower
    one (the value that decides whether it holds)."""
    vals = [r.get(objective.metric) for r in rows]
    vals = [math.nan if v is None else float(v) for v in vals]
    if any(math.isnan(v) for v in vals) or not vals:
        return math.nan
    return max(vals) if objective.op in ("<=", "<") else min(vals)
