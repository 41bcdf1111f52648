"""Energy and cost of a run, checked by hand on SplitwiseSim's example trace (Baseline-H100, bloom-176b)."""
import pytest

from sweepsim import PROJECT_ROOT
from sweepsim.config.run import from_dict, load_config
from sweepsim.engine.simulate import run
from sweepsim.results.tables import energy_and_cost, instance_energy_j, summary_table
from sweepsim.workload.trace import load_trace


def test_energy_and_cost_by_hand():
    cfg = from_dict({"cluster": {"dgx-h100": 1}, "model": "bloom-176b", "start_state": "baseline",
                     "scheduler": "token_jsq"})
    r = run(cfg, load_trace(PROJECT_ROOT / "traces" / "test_trace.csv"))
    end = 4.7818727274953154
    assert r.end_clock == end
    busy = r.time_prompt[0] + r.time_token[0] + r.time_mixed[0]
    assert busy == pytest.approx(0.6327793744012191 * end, abs=1e-12)
    # H100: 8 GPUs x (700 W prompt, 380 W token, 75 W idle)
    gpu = 8 * (700 * (r.time_prompt[0] + r.time_mixed[0]) + 380 * r.time_token[0] + 75 * (end - busy))
    assert instance_energy_j(r)[0] == pytest.approx(gpu, rel=1e-12)
    ec = energy_and_cost(r, output_tokens=32 + 8 + 16)
    assert ec["energy_j"] == pytest.approx(gpu + 2800 * end, rel=1e-12)       # + DGX-H100 non-GPU power
    assert ec["cost_usd"] == pytest.approx(4.76 * end / 3600, rel=1e-12)
    assert ec["cost_per_1m_tokens_usd"] == pytest.approx(4.76 * end / 3600 / 56 * 1e6, rel=1e-12)
    assert ec["energy_kwh"] == pytest.approx(ec["energy_j"] / 3.6e6)


def test_idle_servers_count_in_energy_and_cost():
    base = {"model": "llama2-70b", "start_state": "splitwise", "split_type": "homogeneous", "prompt_servers": 1,
            "token_servers": 1, "scheduler": "kv_jsq"}
    trace = load_trace(PROJECT_ROOT / "traces" / "test_trace.csv")
    two = run(from_dict({"cluster": {"dgx-a100": 2}, **base}), trace)
    three = run(from_dict({"cluster": {"dgx-a100": 3}, **base}), trace)  # third server has no instance
    assert two.end_clock == three.end_clock
    e2, e3 = energy_and_cost(two, 56), energy_and_cost(three, 56)
    assert e3["energy_j"] - e2["energy_j"] == pytest.approx((1500 + 8 * 63) * two.end_clock, rel=1e-9)
    assert e3["cost_usd"] - e2["cost_usd"] == pytest.approx(2.21 * two.end_clock / 3600, rel=1e-9)


def test_summary_has_energy_and_cost_columns():
    cfg = load_config(PROJECT_ROOT / "configs" / "examples" / "baseline_h100.toml")
    s = summary_table(run(cfg, load_trace(cfg.trace)))
    for c in ("energy_j", "energy_kwh", "mean_power_w", "energy_per_token_j", "cost_usd", "cost_per_1m_tokens_usd"):
        assert s[c][0] > 0


def test_shipped_cluster_by_name():
    cfg = from_dict({"cluster": "half_half", "start_state": "splitwise", "split_type": "heterogeneous",
                     "scheduler": "mixed_pool"})
    assert cfg.cluster == (("dgx-a100", 1), ("dgx-h100", 1))
