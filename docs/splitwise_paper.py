"""Reproduce the Splitwise paper's provisioning comparison with `sweepsim search` and print the table of
docs/splitwise-paper.md: for every design at iso-cost and iso-power, the highest load meeting the paper's
slowdown SLOs (best split per design), its throughput per cost and per power relative to Baseline-H100.

    python docs/splitwise_paper.py [--out results/paper]      # about 3 minutes on 2 cores

Searches resume: rerunning reuses every simulated probe (results/paper/<experiment>/probes.parquet).
"""
import argparse
import sys
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sweepsim.config.catalog import get_sku  # noqa: E402
from sweepsim.config.experiment import load_experiment, validate_points  # noqa: E402
from sweepsim.search.capacity import ProbeRunner, candidates, capacity_table, max_rate_search, rate_grid  # noqa: E402
from sweepsim.search.slo import parse_slos  # noqa: E402

#: The paper's SLOs on slowdowns (SplitwiseSim notebooks, get_slo): p50 / p90 / p99
SLO = ("ttft_slowdown_p50<=2,ttft_slowdown_p90<=3,ttft_slowdown_p99<=6,"
       "tbt_slowdown_p50<=1.25,tbt_slowdown_p90<=1.5,tbt_slowdown_p99<=5,"
       "e2e_slowdown_p50<=1.25,e2e_slowdown_p90<=1.5,e2e_slowdown_p99<=5")
#: design -> (iso-cost experiment, iso-power experiment); the baselines are their fixed-size experiments
DESIGNS = {
    "Baseline-A100": ("baseline_a100", "baseline_a100"),
    "Baseline-H100": ("baseline_h100", "baseline_h100"),
    "Splitwise-AA": ("splitwise_aa_isocost", "splitwise_aa_isopower"),
    "Splitwise-HH": ("splitwise_hh_isocost", "splitwise_hh_isopower"),
    "Splitwise-HA": ("splitwise_ha_isocost", "splitwise_ha_isopower"),
    "Splitwise-HHcap": ("splitwise_hhcap_isocost", "splitwise_hhcap_isopower"),
}
#: the baselines' cluster sizes at the budget of 40 DGX-H100 (the paper: iso-cost A100 86, iso-power A100 70)
BASELINE_SIZE = {("Baseline-A100", "iso-cost"): 86, ("Baseline-A100", "iso-power"): 70,
                 ("Baseline-H100", "iso-cost"): 40, ("Baseline-H100", "iso-power"): 40}


def servers(row: dict) -> dict:
    return {k.split(".", 1)[1]: int(v) for k, v in row.items() if k.startswith("cluster.") and v}


def budget(row: dict, what: str) -> float:
    """Dollars per hour, or the paper's relative power (sum of the servers' power weights)."""
    return sum((get_sku(s).cost_per_hour if what == "cost" else get_sku(s).power_weight) * n
               for s, n in servers(row).items())


def search(name: str, out: Path, rates, objectives) -> pl.DataFrame:
    exp = load_experiment(ROOT / "configs" / "experiments" / f"{name}.toml")
    cands = candidates(exp.points, validate_points(exp), exp.varied, exp.source, objectives)
    runner = ProbeRunner(out / name)
    (out / name).mkdir(parents=True, exist_ok=True)
    caps = max_rate_search(cands, rates, objectives, runner)
    print(f"{name}: {len(cands)} configurations, {runner.simulated_probes} probes simulated", file=sys.stderr)
    return capacity_table(caps, objectives, runner)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/paper", help="results directory (default results/paper)")
    a = ap.parse_args()
    out = Path(a.out)
    objectives = parse_slos(SLO)
    rates = rate_grid(10, 600, 0.02)
    tables = {}
    rows = []
    for design, (iso_cost, iso_power) in DESIGNS.items():
        for prov, name in (("iso-cost", iso_cost), ("iso-power", iso_power)):
            if name not in tables:
                tables[name] = search(name, out, rates, objectives)
            df = tables[name]
            for sizes in ("azure-conv", "azure-code"):
                sub = df.filter(pl.col("trace.sizes") == sizes)
                if (design, prov) in BASELINE_SIZE:
                    sku = "dgx-a100" if design.endswith("A100") else "dgx-h100"
                    sub = sub.filter(pl.col(f"cluster.{sku}") == BASELINE_SIZE[(design, prov)])
                if sub.is_empty():   # the experiment has no such trace (splitwise_ha_isopower: conversation only)
                    continue
                best = sub.sort("max_rate_rps", descending=True).row(0, named=True)
                shown = " + ".join(f"{n} {s}" for s, n in servers(best).items())
                if best.get("prompt_servers") is not None:   # homogeneous split
                    shown += f" ({best['prompt_servers']} prompt + {best['token_servers']} token)"
                rows.append({"design": design, "provisioning": prov, "trace": sizes.split("-")[1],
                             "servers": shown,
                             "max_rate_rps": best["max_rate_rps"], "cost": budget(best, "cost"),
                             "power": budget(best, "power")})
    t = pl.DataFrame(rows)
    base = t.filter(pl.col("design") == "Baseline-H100").select("provisioning", "trace",
                                                                pl.col("max_rate_rps").alias("base_rate"),
                                                                pl.col("cost").alias("base_cost"),
                                                                pl.col("power").alias("base_power"))
    t = t.join(base, on=["provisioning", "trace"]).with_columns(
        (pl.col("max_rate_rps") / pl.col("base_rate")).alias("throughput_x"),
        ((pl.col("max_rate_rps") / pl.col("cost")) / (pl.col("base_rate") / pl.col("base_cost"))).alias(
            "throughput_per_cost_x"),
        ((pl.col("max_rate_rps") / pl.col("power")) / (pl.col("base_rate") / pl.col("base_power"))).alias(
            "throughput_per_power_x"),
        (pl.col("cost") / pl.col("base_cost")).alias("cost_x"),
        (pl.col("power") / pl.col("base_power")).alias("power_x"))
    print("| provisioning | trace | design | best servers | max load [req/s] | throughput | cost | power | "
          "throughput / cost | throughput / power |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in t.sort(["provisioning", "trace"], maintain_order=True).iter_rows(named=True):
        print(f"| {r['provisioning']} | {r['trace']} | {r['design']} | {r['servers']} | {r['max_rate_rps']:.1f} | "
              f"{r['throughput_x']:.2f}x | {r['cost_x']:.2f}x | {r['power_x']:.2f}x | "
              f"{r['throughput_per_cost_x']:.2f}x | {r['throughput_per_power_x']:.2f}x |")


if __name__ == "__main__":
    main()
