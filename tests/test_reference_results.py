"""Regression against SplitwiseSim's own results: the spec's section-10 values on the example trace and the
oracle cases in tests/oracle (per-request results of the real SplitwiseSim, see its README)."""

import tomllib

import pytest

from sweepsim import PROJECT_ROOT
from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import run
from sweepsim.workload.trace import load_trace
from sweepsim.results.validate import run_case

ORACLE = PROJECT_ROOT / "tests" / "oracle"
TEST_TRACE = PROJECT_ROOT / "traces" / "test_trace.csv"


def test_baseline_h100_on_example_trace():
    cfg = from_dict({"cluster": {"dgx-h100": 1}, "model": "bloom-176b", "start_state": "baseline",
                     "scheduler": "token_jsq"})
    trace = load_trace(TEST_TRACE)
    r = run(cfg, trace)
    assert list(r.token_end - trace.arrival) == [1.7447429609198237, 0.49925474455559815, 0.7818727274953154]
    assert list(r.prompt_end - trace.arrival) == [0.6495982770284172, 0.25196400948334485, 0.25196400948334485]
    assert list(r.token_start - r.prompt_end) == [0.0, 0.0, 0.0]
    assert list(r.prompt_start - trace.arrival) == [0.0, 0.0, 0.0]
    assert r.end_clock == 4.7818727274953154
    assert r.busy_time[0] / r.end_clock == 0.6327793744012191


def test_splitwise_ha_on_example_trace():
    cfg = from_dict({"cluster": {"dgx-a100": 1, "dgx-h100": 1}, "model": "bloom-176b", "start_state": "splitwise",
                     "split_type": "heterogeneous", "prompt_sku": "dgx-h100", "token_sku": "dgx-a100",
                     "scheduler": "mixed_pool"})
    trace = load_trace(TEST_TRACE)
    r = run(cfg, trace)
    assert list(r.token_end - trace.arrival) == [2.199226282820625, 0.6228729543396496, 1.003018891318284]
    assert list(r.prompt_end - trace.arrival) == [0.6495982770284172, 0.25196400948334485, 0.25196400948334485]
    overhead = r.token_start - r.prompt_end
    assert overhead[0] == 0.07656250000000009
    assert overhead[1] == 0.03828124999999982
    assert list(r.prompt_instance) == [1, 1, 1] and list(r.token_instance) == [0, 0, 0]
    assert r.token_start[0] == 1.7261607770284173 and r.token_end[0] == 3.199226282820625
    util = r.busy_time / r.end_clock
    assert util[0] == 0.5033894309001583 and util[1] == 0.2305660484306417


ORACLE_CASES = sorted(p.parent.name for p in ORACLE.glob("*/case.toml"))
# cases that do not match yet (case name -> reason); xfail(strict=True): a fix must remove its entry
KNOWN_MISMATCHES = tomllib.loads((ORACLE / "known_mismatches.toml").read_text())


def _case_param(case):
    reason = KNOWN_MISMATCHES.get(case)
    return pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=reason) if reason else ())


@pytest.mark.parametrize("case", [_case_param(c) for c in ORACLE_CASES])
def test_oracle_case(case, tmp_path):
    rep = run_case(ORACLE / case, tmp_path, tol=1e-6)
    # every request matches (the reference allows 0.1% only for exactly simultaneous events; none occur here)
    assert rep.matched == rep.n, rep.worst
    assert rep.max_e2e_diff < 1e-9
    assert (tmp_path / case / "requests.parquet").exists()


def test_oracle_cases_are_present():
    """The cases ship with the repository: the oracle tests must never silently shrink."""
    assert len(ORACLE_CASES) >= 14
    for case in ORACLE_CASES:
        assert {p.name for p in (ORACLE / case).iterdir()} >= {"case.toml", "trace.csv", "expected_requests.csv"}


def test_no_known_mismatches_left():
    """Simultaneous events follow the reference's heap order: every shipped case matches, none is excused."""
    assert KNOWN_MISMATCHES == {}


@pytest.mark.parametrize("case, tie", [("splitwise_ha_kvjsq", "KV transfer retry of request"),
                                       ("splitwise_hh_overload", "KV transfer retry of request"),
                                       ("splitwise_hh_kvrr", "KV transfer retry of request"),
                                       ("splitwise_hh_llama_kvjsq", "KV transfer retry of request"),
                                       ("splitwise_ha_ties", "arrival of request")])
def test_by_kind_order_diverges_at_a_tie(case, tie):
    """The documented by-kind order is not the reference's where events tie; validate says where it diverges
    and names the exact-time tie before it (KV transfers retrying together, or simultaneous arrivals)."""
    rep = run_case(ORACLE / case, event_order="by_kind")
    assert rep.event_order == "by_kind"
    assert rep.matched < rep.n
    assert rep.first_divergence.startswith("first divergence: request ")
    assert "latest exact-time tie before it" in rep.first_divergence
    tie_text = rep.first_divergence.split("latest exact-time tie before it")[1]
    assert tie_text.count(tie) >= 2   # two such events at one instant
