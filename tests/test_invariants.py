"""Invariants on a 10k-request overloaded run, for each kind of instance and a disaggregated cluster:
memory never exceeds capacity and returns to the weights, every request completes, causality
(arrival <= prompt start < prompt end <= token start < token end), tokens are conserved."""
import numpy as np
import pytest

from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import run
from tests.test_differential import random_trace

CONFIGS = {
    "baseline": {"cluster": {"dgx-h100": 2}, "start_state": "baseline", "scheduler": "token_jsq"},
    "orca": {"cluster": {"dgx-h100": 2}, "start_state": "orca", "scheduler": "jsq"},
    "splitwise": {"cluster": {"dgx-a100": 2, "dgx-h100": 1}, "start_state": "splitwise",
                  "split_type": "heterogeneous", "scheduler": "mixed_pool"},
}


@pytest.fixture(scope="module")
def trace():
    return random_trace(7, 10_000, 30.0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_invariants_10k(name, trace):
    cfg = from_dict({"model": "llama2-70b", "instance": {"tensor_parallel": 4}, **CONFIGS[name]})
    r = run(cfg, trace, debug=True)
    cap = r.placement.max_memory
    assert r.completed.all()
    # memory: at every run end (before frees) within capacity; back to the weights at the end
    log = r.iteration_log
    inst = log[:, 0].astype(np.int64)
    assert np.all(log[:, 7] <= cap[inst])
    np.testing.assert_array_equal(r.final_memory, r.placement.weights)
    # causality
    a = trace.arrival
    assert np.all(r.prompt_start >= a)
    assert np.all(r.prompt_end > r.prompt_start)
    assert np.all(r.token_start >= r.prompt_end)
    multi = trace.token_size > 1
    assert np.all(r.token_end[multi] > r.token_start[multi])
    assert np.all(r.token_end - a >= r.prompt_end - a)
    # KV transfers only between different instances, inside [prompt end, token start]
    kv = ~np.isnan(r.kv_start)
    assert np.all(r.prompt_instance[kv] != r.token_instance[kv])
    assert np.all((r.kv_start[kv] >= r.prompt_end[kv]) & (r.kv_end[kv] <= r.token_start[kv]))
    # tokens: every prompt token processed once, every output token generated once
    assert r.tokens_served.sum() == trace.prompt_size.sum() + trace.token_size.sum()
    # busy time and iteration log agree; time is monotone per instance
    assert np.all(r.busy_time <= r.end_clock)
    for i in np.unique(inst):
        rows = log[inst == i]
        assert np.all(rows[:, 2] >= rows[:, 1]) and np.all(np.diff(rows[:, 2]) >= 0)
    assert r.iterations.sum() == log[:, 3].sum()


def test_mixed_pool_borrowing_is_logged(trace):
    """Under overload mixed_pool borrows instances into its mixed pool; the iteration log says when."""
    cfg = from_dict({"model": "llama2-70b", "instance": {"tensor_parallel": 4}, **CONFIGS["splitwise"]})
    r = run(cfg, trace, debug=True)
    borrowed = r.iteration_log[:, 10] == 1
    assert borrowed.any() and not borrowed.all()
    # a borrowed instance runs mixed batches: some of its runs hold prompts and decodes together
    mixed = (r.iteration_log[:, 5] > 0) & (r.iteration_log[:, 5] < r.iteration_log[:, 4])
    assert (mixed & borrowed).any()
