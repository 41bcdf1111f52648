"""Cheapest configuration for a target load: every configuration of the experiment is a candidate shape,
simulated at the target rate (one probe each, same arrivals for all), cheapest first, and the cheapest one that
meets the SLOs is the answer.

Objectives: ``cost`` (dollars per hour of the servers, from the SKU prices) and ``gpus`` are known before a
shape is simulated; ``energy`` (joules per completed request at the target rate) is simulated.

Pruning (``prune=True``; without it every shape is simulated) assumes that adding servers never breaks the
SLOs. Among shapes that differ only in their server counts (per SKU, and prompt/token servers of a homogeneous
split; same parameters and workload otherwise):
- a shape with at least as many servers of every kind as a shape known to meet the SLOs is never cheaper in
  dollars or GPUs: it is not simulated (``pruned_costlier``; not for energy, which more servers may lower);
- a shape with at most as many servers of every kind as one known to miss them misses them too
  (``pruned_infeasible``);
and, for the objectives known in advance, once a shape meets the SLOs every shape that costs at least as much
is not simulated (``pruned_bound``). Rounds simulate the cheapest unresolved shapes together.
"""
from dataclasses import dataclass

import numpy as np
import polars as pl

from sweepsim.search.capacity import (Candidate, ProbeRunner, cost_per_hour, dominance, energy_per_request, gpus,
                                      screening)
from sweepsim.search.slo import worst

@dataclass
class Verdict:
    candidate: Candidate
    status: str              # feasible, infeasible, screened_out, pruned_costlier, pruned_infeasible, pruned_bound,
    #                          failed
    objective: float         # dollars/h, GPUs, or J per request (NaN until simulated for energy)
    note: str = ""


def cheapest_search(cands: list[Candidate], rate: float, objectives, runner: ProbeRunner, minimize: str = "cost",
                    prune: bool = True, batch: int = 8, progress=None, screen: float | None = None) -> list[Verdict]:
    """``screen``: each round first simulates its shapes on a trace ``screen`` times as long; a shape missing
    the SLOs there is taken to miss them at full length (``screened_out``: a short run builds less queueing)."""
    static = {"cost": cost_per_hour, "gpus": gpus, "energy": cost_per_hour}[minimize]
    order = sorted(cands, key=lambda c: (static(c.config), c.key))
    dom = dominance(order)   # dom[i, j]: shape i has at least the servers of shape j, otherwise the same
    index = {c.key: i for i, c in enumerate(order)}
    verdict = {c.key: Verdict(c, "", float(static(c.config)) if minimize != "energy" else np.nan) for c in cands}
    feasible, infeasible = [], []
    best = None
    rounds = 0
    while True:
        open_ = [c for c in order if not verdict[c.key].status]
        if prune and minimize != "energy" and best is not None:
            for c in open_:
                if verdict[c.key].objective >= verdict[best.key].objective:
                    verdict[c.key].status = "pruned_bound"
            open_ = [c for c in open_ if not verdict[c.key].status]
        if not open_:
            break
        todo = open_[:batch]
        rounds += 1
        if screen:
            short = dict(zip((c.key for c in todo), screening(todo, screen)))
            runner.run([(short[c.key], rate) for c in todo])
            for c in todo:
                if not runner.outcome(short[c.key].key, rate, objectives):
                    verdict[c.key].status = "screened_out"
                    infeasible.append(c)
            todo = [c for c in todo if not verdict[c.key].status]
        runner.run([(c, rate) for c in todo])
        for c in todo:
            res = runner.results[(c.key, rate)]
            v = verdict[c.key]
            if res["error"] is not None:
                v.status, v.note = "failed", res["error"]
                continue
            ok = runner.outcome(c.key, rate, objectives)
            v.status = "feasible" if ok else "infeasible"
            (feasible if ok else infeasible).append(c)
            if minimize == "energy":
                v.objective = energy_per_request(res["rows"])
            if ok and (best is None or v.objective < verdict[best.key].objective):
                best = c
        if prune:
            ok = [index[f.key] for f in feasible]
            bad = [index[f.key] for f in infeasible]
            for c in [c for c in order if not verdict[c.key].status]:
                i = index[c.key]
                # more servers cost more dollars and GPUs, but not necessarily more joules per request
                if minimize != "energy" and dom[i, ok].any():
                    verdict[c.key].status = "pruned_costlier"
                elif dom[bad, i].any():
                    verdict[c.key].status = "pruned_infeasible"
        if progress:
            progress(rounds, len(todo))
    return [verdict[c.key] for c in order]


def cheapest_table(verdicts: list[Verdict], objectives, runner: ProbeRunner, rate: float,
                   minimize: str) -> pl.DataFrame:
    rows = []
    for v in verdicts:
        c = v.candidate
        res = runner.results.get((c.key, rate))
        summ = res["rows"] if res else []
        row = {"config_key": c.key, **c.varied, "status": v.status, "objective": minimize,
               "objective_value": v.objective, "cost_per_hour_usd": cost_per_hour(c.config), "gpus": gpus(c.config),
               "simulated": res is not None, "note": v.note}
        for o in objectives:
            row[o.metric] = worst(summ, o) if summ else np.nan
        row.update({k: val for k, val in c.config.params().items() if k not in row})
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)
