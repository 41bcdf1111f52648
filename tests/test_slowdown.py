"""Per-request slowdowns (the Splitwise paper's SLO method): latency / the same request served alone on the
slowdown reference machine (default: the config's model on a DGX-A100, TP 8), hand-computed."""
import numpy as np
import pytest

from sweepsim.config.run import from_dict
from sweepsim.engine.performance import DEFAULT_DB, load_db
from sweepsim.engine.simulate import run
from sweepsim.errors import InputError
from sweepsim.results.tables import requests_table, summary_table
from sweepsim.workload.trace import Trace


def one(prompt, tokens, at=1.0):
    return Trace("one", np.array([0]), np.array([0]), np.array([at]), np.array([prompt]), np.array([tokens]))


def test_constant_model_slowdowns_are_latency_over_the_constant_times():
    cfg = from_dict({"cluster": {"dgx-h100": 1}, "model": "llama2-70b", "start_state": "baseline",
                     "performance_model": {"kind": "constant", "prompt_time": 0.5, "token_time": 0.125}})
    trace = Trace("two", np.array([0, 1]), np.zeros(2, np.int64), np.array([1.0, 1.0]), np.array([100, 200]),
                  np.array([3, 5]))
    req = requests_table(run(cfg, trace))
    # request 0's prompt runs alone [1, 1.5] (request 1 arrives while it runs); [1.5, 2]: mixed batch (prompt
    # time) of request 1's prompt and request 0's first decode; [2, 2.125]: both decode, request 0 finishes;
    # [2.125, 2.5]: request 1's last 3 decodes
    assert list(req["ttft"]) == [0.5, 1.0]
    assert list(req["e2e"]) == [1.125, 1.5]
    assert list(req["ttft_slowdown"]) == [1.0, 2.0]
    assert list(req["tbt_slowdown"]) == [((1.125 - 0.5) / 3) / 0.125, ((1.5 - 1.0) / 5) / 0.125]
    assert list(req["e2e_slowdown"]) == [1.125 / (0.5 + 0.125 * 2), 1.5 / (0.5 + 0.125 * 4)]


def test_a_request_alone_on_the_reference_machine_has_ttft_slowdown_one():
    cfg = from_dict({"cluster": {"dgx-a100": 1}, "model": "bloom-176b", "start_state": "baseline"})
    req = requests_table(run(cfg, one(1500, 40)))
    c = load_db(DEFAULT_DB)[("bloom-176b", "a100-80gb", 8)]
    prompt = np.interp(1500, c.knots, c.prompt_s)     # 1500 lies inside the knots: interpolation
    token_at_prompt = np.interp(1500, c.knots, c.token_s)
    assert req["ttft_slowdown"][0] == pytest.approx(1.0, rel=1e-12)
    assert req["ttft"][0] == pytest.approx(prompt, rel=1e-12)
    # the paper's baseline decode time is the token predictor at bt = prompt_size (not 1)
    assert req["tbt_slowdown"][0] == pytest.approx(req["tbt"][0] / token_at_prompt, rel=1e-12)
    assert req["e2e_slowdown"][0] == pytest.approx(req["e2e"][0] / (prompt + token_at_prompt * 39), rel=1e-12)
    s = summary_table(run(cfg, one(1500, 40)))
    assert s["ttft_slowdown_p99"][0] == pytest.approx(1.0, rel=1e-12)


def test_another_reference_machine_and_missing_profiles(tmp_path):
    base = {"cluster": {"dgx-h100": 1}, "model": "bloom-176b", "start_state": "baseline"}
    h = requests_table(run(from_dict({**base, "slowdown_hardware": "h100-80gb"}), one(1500, 40)))
    assert h["ttft_slowdown"][0] == pytest.approx(1.0, rel=1e-12)   # alone on the reference machine itself
    a = requests_table(run(from_dict(base), one(1500, 40)))
    assert a["ttft_slowdown"][0] < 1.0                               # an H100 is faster than the A100 reference
    with pytest.raises(InputError, match="slowdown_hardware"):
        from_dict({**base, "slowdown_hardware": "tpu"})
    with pytest.raises(InputError, match="slowdown_tensor_parallel"):
        from_dict({**base, "slowdown_tensor_parallel": 3})
    # a database without the reference machine: the run works, its slowdowns are NaN
    db = tmp_path / "db.csv"
    rows = [line for line in DEFAULT_DB.read_text().splitlines() if "a100-80gb" not in line]
    db.write_text("\n".join(rows) + "\n")
    cfg = from_dict({**base, "performance_model": {"kind": "db", "path": str(db)}})
    r = requests_table(run(cfg, one(1500, 40)))
    assert r["completed"][0] and np.isnan(r["ttft_slowdown"][0])


def test_goodput_counts_requests_within_their_own_slos():
    cfg = from_dict({"cluster": {"dgx-h100": 1}, "model": "llama2-70b", "start_state": "baseline",
                     "performance_model": {"kind": "constant", "prompt_time": 0.5, "token_time": 0.125}})
    # the two requests of test_constant_model_slowdowns_are_latency_over_the_constant_times: ttft 0.5 and 1.0 s,
    # e2e 1.125 and 1.5 s, from the first arrival (1 s) to the last completion (2.5 s): 1.5 s
    trace = Trace("two", np.array([0, 1]), np.zeros(2, np.int64), np.array([1.0, 1.0]), np.array([100, 200]),
                  np.array([3, 5]),
                  annotations={"slo_ttft": np.array([0.75, 0.75]), "slo_e2e": np.array([np.nan, 2.0])})
    s = summary_table(run(cfg, trace))
    assert s["throughput_rps"][0] == 2 / 1.5
    assert s["goodput_rps"][0] == 1 / 1.5                  # request 1 misses its 0.75 s TTFT
    none = Trace("two", trace.request_id, trace.application_id, trace.arrival, trace.prompt_size, trace.token_size)
    assert summary_table(run(cfg, none))["goodput_rps"][0] == 2 / 1.5   # no per-request SLOs: every completion
    tight = Trace("two", trace.request_id, trace.application_id, trace.arrival, trace.prompt_size, trace.token_size,
                  annotations={"slo_e2e": np.array([1.0, 2.0])})
    assert summary_table(run(cfg, tight))["goodput_rps"][0] == 1 / 1.5  # request 0 misses its 1.0 s e2e
