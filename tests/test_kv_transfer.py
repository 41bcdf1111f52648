"""Hand-computed KV-cache transfer timelines (constant performance model, exact binary fractions)."""
import numpy as np
import pytest

from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import run
from sweepsim.workload.trace import Trace

KV_LLAMA = 2_621_440          # bytes per token: 2 x 80 layers x 8192 hidden x 2 bytes
BW = 200 * 1024 ** 3          # kv_jsq link, bytes/s


def one_request(arrival, prompt, tokens):
    n = len(arrival)
    return Trace("hand", np.arange(n), np.zeros(n, np.int64), np.array(arrival, float), np.array(prompt),
                 np.array(tokens))


def test_one_request_through_kv_transfer():
    cfg = from_dict({"cluster": {"dgx-h100": 2}, "model": "llama2-70b", "start_state": "splitwise",
                     "split_type": "homogeneous", "prompt_servers": 1, "token_servers": 1, "scheduler": "kv_jsq",
                     "performance_model": {"kind": "constant", "prompt_time": 0.5, "token_time": 0.1}})
    r = run(cfg, one_request([1.0], [1000], [5]))
    duration = KV_LLAMA * 1000 / BW
    assert duration == 12.5 / 1024                       # 2^20*2500 B / (200*2^30 B/s)
    assert r.prompt_instance[0] == 0 and r.token_instance[0] == 1
    assert r.prompt_start[0] == 1.0 and r.prompt_end[0] == 1.5          # one prompt iteration
    assert r.kv_start[0] == 1.5 and r.kv_end[0] == 1.5 + 12.5 / 1024
    assert r.token_start[0] == r.kv_end[0]                             # idle token instance starts at once
    assert r.token_end[0] == r.kv_end[0] + 0.1 * 4                     # token_size - 1 = 4 decode iterations
    assert r.completed[0]
    np.testing.assert_array_equal(r.final_memory, r.placement.weights)  # source and destination freed


def test_transfer_waits_for_destination_memory():
    # Free KV room per TP-8 llama2-70b instance: 8 x 80 GiB - 135e9 B = 552,194,767,360 B = 210,645 tokens.
    # Request 0 holds KV(150,001) + KV(60,000) = 210,001 tokens on the token instance; request 1's prompt KV
    # (KV(70,001)) cannot join it, so its transfer retries every 1.0 s until request 0 frees the destination.
    cfg = from_dict({"cluster": {"dgx-h100": 2}, "model": "llama2-70b", "start_state": "splitwise",
                     "split_type": "homogeneous", "prompt_servers": 1, "token_servers": 1, "scheduler": "kv_jsq",
                     "performance_model": {"kind": "constant", "prompt_time": 0.5, "token_time": 0.001}})
    r = run(cfg, one_request([1.0, 1.2], [150_000, 70_000], [60_001, 10]))
    assert r.kv_end[0] < r.token_start[0] + 1e-12 and r.completed.all()
    first_try = r.prompt_end[1]
    assert r.kv_start[1] > first_try
    retries = r.kv_start[1] - first_try
    assert retries >= 1.0 and abs(retries - round(retries)) < 1e-9        # started on a 1 s retry tick
    assert r.kv_start[1] >= r.token_end[0]                              # only after request 0 freed its KV
    assert r.kv_start[1] - 1.0 < r.token_end[0]                         # at the first tick after that


SHARED = {"cluster": {"dgx-h100": 4}, "model": "llama2-70b", "start_state": "splitwise",
          "split_type": "homogeneous", "prompt_servers": 1, "token_servers": 3, "scheduler": "kv_round_robin",
          "network": "shared", "instance": {"max_batch_tokens": 200_000},
          "performance_model": {"kind": "constant", "prompt_time": 0.5, "token_time": 0.1}}
NIC_H100 = 3200e9 / 8        # 8 x 400 Gb/s NDR = 4e11 B/s


def test_shared_network_two_overlapping_transfers():
    # A (1,000 tokens) runs alone at 1.0-1.5; B (40,000) and C (60,000) arrive during it and share the next
    # prompt iteration (1.5-2.0), so their transfers leave the prompt server's NIC together at 2.0 (A's is done).
    r = run(from_dict(SHARED), one_request([1.0, 1.1, 1.2], [1_000, 40_000, 60_000], [3, 3, 3]))
    b, c = KV_LLAMA * 40_000, KV_LLAMA * 60_000
    assert r.kv_end[0] == pytest.approx(1.5 + KV_LLAMA * 1_000 / NIC_H100, abs=1e-12)
    assert r.kv_start[1] == r.kv_start[2] == 2.0
    t_b = 2.0 + b / (NIC_H100 / 2)                      # both at half the NIC until B is done
    t_c = t_b + (c - b) / NIC_H100                      # then C alone at the full NIC
    assert r.kv_end[1] == pytest.approx(t_b, abs=1e-9) and t_b == pytest.approx(2.524288)
    assert r.kv_end[2] == pytest.approx(t_c, abs=1e-9) and t_c == pytest.approx(2.65536)
    assert list(r.token_instance) == [1, 2, 3]


def test_shared_network_three_overlapping_transfers():
    # A (100,000 tokens) starts alone at 1.5 at the full NIC; at 2.0 B and C join: three ways until A ends,
    # then two ways until B ends, then C alone.
    r = run(from_dict(SHARED), one_request([1.0, 1.1, 1.2], [100_000, 40_000, 60_000], [3, 3, 3]))
    a, b, c = KV_LLAMA * 100_000, KV_LLAMA * 40_000, KV_LLAMA * 60_000
    left_a = a - NIC_H100 * 0.5
    t_a = 2.0 + left_a / (NIC_H100 / 3)
    moved = (NIC_H100 / 3) * (t_a - 2.0)
    t_b = t_a + (b - moved) / (NIC_H100 / 2)
    t_c = t_b + (c - b) / NIC_H100
    assert (t_a, t_b, t_c) == pytest.approx((2.46608, 2.679648, 2.81072))
    np.testing.assert_allclose(r.kv_end, [t_a, t_b, t_c], rtol=0, atol=1e-9)
    # the dedicated (SplitwiseSim) network gives each transfer its own 200 GiB/s link
    d = run(from_dict({**SHARED, "network": "dedicated"}),
            one_request([1.0, 1.1, 1.2], [100_000, 40_000, 60_000], [3, 3, 3]))
    np.testing.assert_array_equal(d.kv_end - d.kv_start, np.array([a, b, c]) / (200 * 1024 ** 3))



def test_mixed_pool_borrows_a_token_instance_and_returns_it():
    """SEMANTICS 6.4: when the best prompt instance has a queue and its pending prompt tokens would exceed 8192,
    mixed_pool borrows the token instance with the fewest pending tokens into the mixed pool; the request then
    runs both phases there (no KV transfer). Once idle with nothing resident it goes back to the token pool."""
    cfg = from_dict({"cluster": {"dgx-h100": 2}, "model": "llama2-70b", "start_state": "splitwise",
                     "split_type": "homogeneous", "prompt_servers": 1, "token_servers": 1, "scheduler": "mixed_pool",
                     "performance_model": {"kind": "constant", "prompt_time": 1.0, "token_time": 0.1}})
    # A runs on the prompt instance 0 at 1.0; B queues there (pending tokens 10,000 > 8,192 with C's prompt);
    # C at 1.2 finds instance 0 queue-long and borrows token instance 1; D at 30 finds everything back home.
    r = run(cfg, one_request([1.0, 1.1, 1.2, 30.0], [5_000, 5_000, 5_000, 100], [4, 4, 4, 4]), debug=True)
    assert list(r.prompt_instance) == [0, 0, 1, 0]
    assert list(r.token_instance) == [1, 1, 1, 1]
    assert np.isnan(r.kv_start[2]) and not np.isnan(r.kv_start[[0, 1, 3]]).any()
    assert r.prompt_start[2] == 1.2 and r.prompt_end[2] == 2.2           # C's prompt ran at once on instance 1
    log = r.iteration_log
    on1 = log[log[:, 0] == 1]
    borrowed = on1[:, 10] == 1
    assert borrowed.any() and not borrowed.all()
    assert on1[borrowed][:, 1].min() == 1.2                             # borrowed from C's prompt on
    assert on1[~borrowed][:, 1].min() > on1[borrowed][:, 2].max()      # returned home before D's decode
    assert r.completed.all()
