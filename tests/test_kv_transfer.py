"""Hand-computed KV-cache transfer timelines (constant performance model, exact binary fractions)."""
import numpy as np

from sweepsim.config import from_dict
from sweepsim.engine import run
from sweepsim.trace import Trace

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
