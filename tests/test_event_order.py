"""Event order: SplitwiseSim's time-only heap (``event_order = "reference"``) against ``"by_kind"``.

Hand-computed scenarios where simultaneous events meet, and saturated KV-scheduler runs checked against the
plain-Python reference (tests/reference_sim.py, real ``heapq``) in both orders.

Heap notation in the comments: aR = arrival of request R, IK = end of instance K's run, FR = KV event of
request R (transfer end or retry), (t) = time; a list is the heap array (root first, then its children, ...)
after the pushes of the event just handled. A primed entry (I1') is a newer version of the same event; the
old one stays in the heap and is skipped when popped. CPython heapq: heappush appends and sifts the entry up
while strictly earlier than its parent; heappop moves the last entry to the root, walks it down taking the
right child unless the left one is strictly earlier, to a leaf, then sifts it up while strictly earlier.
"""
from dataclasses import replace

import numpy as np
import pytest

from kernels.enums import Tag
from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import kv_room_tokens, run
from sweepsim.workload.trace import Trace
from tests.test_differential import KV, assert_same, random_trace

ORDERS = ("reference", "by_kind")


def make_trace(rows):
    """rows: (arrival [s], prompt_size, token_size)."""
    n = len(rows)
    return Trace("event-order", np.arange(n), np.zeros(n, np.int64), np.array([r[0] for r in rows], float),
                 np.array([r[1] for r in rows], np.int64), np.array([r[2] for r in rows], np.int64))


def run_both(cfg, trace):
    """Each order's results, after checking both against the plain-Python reference."""
    assert_same(cfg, trace)
    return {order: run(replace(cfg, event_order=order), trace) for order in ORDERS}


def constant(prompt_time, token_time):
    return {"kind": "constant", "prompt_time": prompt_time, "token_time": token_time}


def splitwise_1p1t(**extra):
    """One TP-8 llama2-70b prompt instance (0) and one token instance (1) on two DGX-H100."""
    d = {"cluster": {"dgx-h100": 2}, "model": "llama2-70b", "start_state": "splitwise",
         "split_type": "homogeneous", "prompt_servers": 1, "token_servers": 1, "scheduler": "kv_round_robin"}
    d.update(extra)
    return from_dict(d)


# --------------------------------------------------------------------------- simultaneous arrivals

def test_two_arrivals_at_one_timestamp():
    # Constant model, prompt 1.5 s, decode 0.125 s; every request: prompt 100, token_size 2 (one decode).
    # Round robin over 3 single-instance servers; R0 at 1, R1..R3 at 2.
    # Reference heap:
    #   up front                                           [a0(1), a1(2), a2(2), a3(2)]
    #   pop a0: a3 to the root; a1, a2 tie -> right child a2 moves up; a3 stays in a2's slot
    #     R0 -> instance 0, prompt run 1-2.5: push I0(2.5) [a2, a1, a3, I0(2.5)]
    #   pop a2: I0 to the root; a1, a3 tie -> a3 up        [a3, a1, I0]
    #     R2 -> instance 1, push I1(3.5)                   [a3, a1, I0, I1(3.5)]
    #   pop a3: I1 to the root; a1 (2) < I0 (2.5) -> a1 up [a1, I1, I0]
    #     R3 -> instance 2, push I2(3.5)                   [a1, I1, I0, I2(3.5)]
    #   pop a1: R1 -> instance 0 (the round robin wraps), busy until 2.5.
    # So the t = 2 arrivals pop a2, a3, a1 (a2, a1, a3 only if nothing were pushed between the pops: I0, the
    # last entry at the second pop, sends a3 up). by_kind: a1, a2, a3.
    # Instance 0 at 2.5: R0's prompt done; [R1 prompt, R0 decode] mixed, 1.5 s -> 4.0; then R1's decode 4.125.
    # Instances 1, 2: prompt 2-3.5, decode 3.5-3.625.
    cfg = from_dict({"cluster": {"dgx-h100": 3}, "model": "llama2-70b", "start_state": "baseline",
                     "scheduler": "round_robin", "performance_model": constant(1.5, 0.125)})
    r = run_both(cfg, make_trace([(1.0, 100, 2), (2.0, 100, 2), (2.0, 100, 2), (2.0, 100, 2)]))
    ref, kind = r["reference"], r["by_kind"]
    assert len(ref.placement.tag) == 3
    assert ref.prompt_instance.tolist() == [0, 0, 1, 2]
    assert ref.prompt_start.tolist() == [1.0, 2.5, 2.0, 2.0]
    assert ref.token_end.tolist() == [4.0, 4.125, 3.625, 3.625]
    assert kind.prompt_instance.tolist() == [0, 1, 2, 0]
    assert kind.prompt_start.tolist() == [1.0, 2.0, 2.0, 2.5]
    assert kind.token_end.tolist() == [4.0, 3.625, 3.625, 4.125]

    # A pair of simultaneous arrivals with jsq on 2 instances: R0 at 1, R1 and R2 at 2, R3 at 5.
    #   up front                                           [a0(1), a1(2), a2(2), a3(5)]
    #   pop a0: a3 to the root; a1, a2 tie -> a2 up        [a2, a1, a3]
    #     R0 -> instance 0 (both empty: the first), push I0(2.5)   [a2, a1, a3, I0(2.5)]
    #   pop a2: R2 -> instance 1 (instance 0 holds R0); I0 to the root, a1 (2) < a3 (5) -> a1 up;
    #     push I1(3.5)                                     [a1, I0, a3, I1(3.5)]
    #   pop a1: R1 -> instance 0 (one request each: the first), runs at 2.5 with R0's decode.
    # by_kind: R1 -> instance 1, R2 -> instance 0. R3 (at 5, both idle again) -> instance 0 in both.
    cfg = from_dict({"cluster": {"dgx-h100": 2}, "model": "llama2-70b", "start_state": "baseline",
                     "scheduler": "jsq", "performance_model": constant(1.5, 0.125)})
    r = run_both(cfg, make_trace([(1.0, 100, 2), (2.0, 100, 2), (2.0, 100, 2), (5.0, 100, 2)]))
    assert r["reference"].prompt_instance.tolist() == [0, 0, 1, 0]
    assert r["reference"].prompt_start.tolist() == [1.0, 2.5, 2.0, 5.0]
    assert r["by_kind"].prompt_instance.tolist() == [0, 1, 0, 0]
    assert r["by_kind"].prompt_start.tolist() == [1.0, 2.0, 2.5, 5.0]


# --------------------------------------------------------------------------- KV retries at one instant

# Constant model (prompt 0.5 s, decode 0.125 s), KV link 2500 GiB/s: a transfer of p prompt tokens takes
# 2,621,440 p / (2500 x 2^30) = p / 1,024,000 s (exact for multiples of 1000 tokens).
# KV room of each instance: (8 x 80 GiB - 135e9 B) // 2,621,440 B = 210,645 tokens. A request holds
# p + 1 tokens where its prompt ran (until its transfer ends) and p + 1 + token_size - 1 where it decodes.
#   R0 99,000 / 101: prompt 0-0.5, KV 0.5-0.5966796875 (99/1024 s), decode 100 iterations from
#      0.5966796875 (-> 13.0966796875), holding 99,101 tokens of instance 1 until then.
#   R1 60,000 / 9 (arrives 0.125, during R0's prompt): prompt 0.5-1.0, KV 1.0-1.05859375; its decode
#      truncates R0's run at 1.0966796875 (4 iterations), then [R0, R1] run 8 iterations to 2.0966796875,
#      where R1 finishes; it holds 60,009 tokens of instance 1 until then.
#   R2, R3 60,000 / 2 (arrive 0.625, 0.75, during R1's prompt): one prompt batch 1.0-1.5 (instance 0 holds
#      60,001 + 2 x 60,001 = 180,003 <= 210,645). At 1.5 instance 1 holds 99,101 + 60,009, and neither prompt's
#      60,001 fits (219,111 > 210,645): both retry at 2.5. At 2.5 it holds R0's 99,101: one fits (159,102),
#      not both (219,103). The winner's transfer ends 2.55859375 and its one decode iteration ends by
#      2.7216796875, so the loser's retry at 3.5 fits.
COMPETE_ROWS = [(0.0, 99_000, 101), (0.125, 60_000, 9), (0.625, 60_000, 2), (0.75, 60_000, 2)]
# R4, R5: late requests (run alone at 20 and 21) whose arrival entries reshape the heap.
LATE_ROWS = [(20.0, 1_000, 2), (21.0, 1_000, 2)]


def test_two_transfers_from_one_batch_compete_for_one_destination():
    cfg = splitwise_1p1t(transfer_bandwidth_gib=2500, instance={"max_batch_tokens": 1_000_000},
                         performance_model=constant(0.5, 0.125))
    r = run_both(cfg, make_trace(COMPETE_ROWS))
    ref = r["reference"]
    assert kv_room_tokens(cfg, ref.placement).tolist() == [210_645, 210_645]
    assert ref.prompt_instance.tolist() == [0] * 4 and ref.token_instance.tolist() == [1] * 4
    assert ref.prompt_end.tolist() == [0.5, 1.0, 1.5, 1.5]
    # First scenario (no late requests): the reference pops R2's retry first too, like by_kind. Popping
    # I0(1.5) leaves [I1''(2.0966796875), I1(13.0966796875)] (I1: the stale end of R0's first run); F2(2.5)
    # is appended under I1'', F3(2.5) sifts above I1: [I1'', F3, F2, I1]; popping I1'' moves I1 to the root,
    # F3 and F2 tie -> the right child F2 moves up and pops first.
    for order in ORDERS:
        assert r[order].kv_start.tolist() == [0.5, 1.0, 2.5, 3.5], order
        assert r[order].kv_end.tolist() == [0.5966796875, 1.05859375, 2.55859375, 3.55859375], order

    # With R4 and R5 in the heap the reference starts R3 first. Reference heap:
    #   up front                                   [a0(0), a1(.125), a2(.625), a3(.75), a4(20), a5(21)]
    #   pop a0: a5 to the root, down a1, a3        [a1, a3, a2, a5, a4]
    #     R0's prompt: push I0(.5)                 [a1, a3, I0(.5), a5, a4, a2]
    #   pop a1: a2 to the root, down I0            [I0, a3, a2, a5, a4]   (R1 waits)
    #   pop I0: a4 to the root, down a2            [a2, a3, a4, a5]
    #     push F0(.5967) (to the root), I0(1)      [F0, a2, I0(1), a5, a3, a4]
    #   pop F0: a4 to the root, down a2, a3        [a2, a3, I0, a5, a4]
    #     R0's decode: push I1(13.0967)            [a2, a3, I0, a5, a4, I1]
    #   pop a2: I1 to the root, down a3, a4; I1 sifts above a4   [a3, I1, I0, a5, a4]   (R2 waits)
    #   pop a3: a4 to the root, down I0            [I0, I1, a4, a5]   (R3 waits)
    #   pop I0(1): a5 to the root, down I1         [I1, a5, a4]
    #     push F1(1.0586) (to the root), I0(1.5)   [F1, I0(1.5), a4, a5, I1]
    #   pop F1: I1 to the root, down I0, a5; I1 sifts above a5   [I0, I1, a4, a5]
    #     truncation: push I1'(1.0967) (to the root)             [I1', I0, a4, a5, I1]
    #   pop I1': I1 to the root, down I0, a5; sifts above a5     [I0, I1, a4, a5]
    #     [R0, R1] run: push I1''(2.0967)          [I0, I1'', a4, a5, I1]
    #   pop I0(1.5): I1 to the root, down I1'', a5; sifts above a5  [I1'', I1, a4, a5]
    #     R2's retry F2(2.5) at slot 4 sifts above I1; R3's F3(2.5) at slot 5 sifts above a4
    #                                              [I1'', F2, F3, a5, I1, a4]
    #   pop I1'': a4 to the root; F2, F3 tie -> right child F3 moves up   [F3, F2, a4, a5, I1]
    #     R1 finishes, R0 continues: push I1'''(13.0967)       [F3, F2, I1''', a5, I1, a4]
    #   pop F3(2.5): R3's transfer starts (2.5); then F2(2.5): R2 does not fit, retries at 3.5.
    # by_kind: KV events of one instant go lower request first: R2 at 2.5, R3 at 3.5.
    r = run_both(cfg, make_trace(COMPETE_ROWS + LATE_ROWS))
    ref, kind = r["reference"], r["by_kind"]
    assert ref.prompt_end.tolist()[:4] == [0.5, 1.0, 1.5, 1.5]
    assert ref.kv_start.tolist() == [0.5, 1.0, 3.5, 2.5, 20.5, 21.5]
    assert ref.kv_end.tolist()[:4] == [0.5966796875, 1.05859375, 3.55859375, 2.55859375]
    assert kind.kv_start.tolist() == [0.5, 1.0, 2.5, 3.5, 20.5, 21.5]
    assert kind.kv_end.tolist()[:4] == [0.5966796875, 1.05859375, 2.55859375, 3.55859375]
    for res in (ref, kind):
        assert res.completed.all()
        assert (res.kv_start[2:4] - res.prompt_end[2:4]).tolist() in ([1.0, 2.0], [2.0, 1.0])


# --------------------------------------------------------------------------- run end = KV completion

def test_iteration_end_coinciding_with_kv_completion():
    # Constant model (prompt 0.5 s, decode 0.125 s), KV link 10 GiB/s: p prompt tokens take
    # 2,621,440 p / (10 x 2^30) = p / 4096 s. max_batch_tokens 16,384 lets R1 and R2 share a prompt batch.
    #   R0 1024 / 17: prompt 0-0.5, KV 0.5-0.75, decode of 16 on instance 1 from 0.75 (planned end 2.75).
    #   R1 1024 / 3 (at 0.25) and R2 2560 / 5 (at 0.375) wait for R0's prompt, run together 0.5-1.0.
    #   R1's KV 1.0-1.25; its decode truncates R0's run: elapsed 0.5, k = 4 -> end 1.25 + 0.125 = 1.375.
    #   1.375: [R0 (11 left), R1 (2)] run 2 iterations -> 1.625, where R1 finishes.
    #   R2's KV 1.0-1.625 (2560 / 4096): it completes exactly at that run end.
    # Reference heap:
    #   up front [a0(0), a1(.25), a2(.375)]; pop a0 -> [a1, a2], push I0(.5) -> [a1, a2, I0]
    #   pop a1 -> [a2, I0]; pop a2 -> [I0] (both wait); pop I0(.5) -> [], push F0(.75), I0(1) -> [F0, I0]
    #   pop F0 -> [I0], R0's decode: push I1(2.75)   [I0(1), I1(2.75)]
    #   pop I0(1) -> [I1]; push F1(1.25) (to the root), F2(1.625)   [F1, I1, F2]
    #   pop F1: F2 to the root, I1 moves up, F2 sifts back above it   [F2, I1]
    #     truncation: push I1'(1.375) (to the root)                   [I1', I1, F2]
    #   pop I1': F2 to the root, I1 up, F2 sifts above it             [F2, I1]
    #     [R0, R1] run: push I1''(1.625), not above F2 (equal)        [F2(1.625), I1(2.75), I1''(1.625)]
    #   pop F2 first: R2's decode arrives during the run [1.375, 1.625] (N = 2): elapsed 0.25, k = 2,
    #     k + 1 = 3 > 2 -> the run ends as planned; then pop I1'': R1 finishes and the next run batches
    #     [R0 (9 left), R2 (4)] at once: 4 iterations 1.625-2.125, then R0 alone to 2.75.
    # by_kind: I1'' first: R1 finishes, R0 runs alone (9 -> 2.75); then R2's decode truncates that run
    #   after one iteration (1.75), and [R0 (8), R2 (4)] run 1.75-2.25, R0 alone to 2.75.
    cfg = splitwise_1p1t(transfer_bandwidth_gib=10, instance={"max_batch_tokens": 16_384},
                         performance_model=constant(0.5, 0.125))
    r = run_both(cfg, make_trace([(0.0, 1024, 17), (0.25, 1024, 3), (0.375, 2560, 5)]))
    ref, kind = r["reference"], r["by_kind"]
    for res in (ref, kind):
        assert res.prompt_start.tolist() == [0.0, 0.5, 0.5]
        assert res.kv_end.tolist() == [0.75, 1.25, 1.625]
        assert res.kv_end[2] == res.token_end[1]                         # the coincidence
    assert ref.token_start.tolist() == [0.75, 1.375, 1.625]
    assert ref.token_end.tolist() == [2.75, 1.625, 2.125]
    assert kind.token_start.tolist() == [0.75, 1.375, 1.75]
    assert kind.token_end.tolist() == [2.75, 1.625, 2.25]


# --------------------------------------------------------------------------- saturated KV schedulers

def saturated_trace():
    """240 requests at 40/s with arrivals rounded to 0.5 s: about 20 simultaneous arrivals per instant."""
    t = random_trace(12, 240, 40.0)
    return Trace("ties", t.request_id, t.application_id, np.round(t.arrival * 2) / 2, t.prompt_size, t.token_size)


@pytest.mark.parametrize("scheduler", KV)
def test_saturated_kv_schedulers_match_reference_in_both_orders(scheduler):
    # 4 prompt + 4 token instances of llama2-70b at TP 2 (14,037 KV tokens each beside the weights).
    cfg = from_dict({"cluster": {"dgx-h100": 2}, "model": "llama2-70b", "start_state": "splitwise",
                     "split_type": "homogeneous", "prompt_servers": 1, "token_servers": 1, "scheduler": scheduler,
                     "instance": {"tensor_parallel": 2}})
    trace = saturated_trace()
    assert len(np.unique(trace.arrival)) < len(trace) // 4
    r = run_both(cfg, trace)
    ref, kind = r["reference"], r["by_kind"]
    assert ref.completed.all() and kind.completed.all()
    # saturated: KV transfers waited for destination memory (at least one 1 s retry)
    assert np.nanmax(ref.kv_start - ref.prompt_end) >= 1.0
    assert np.nanmax(kind.kv_start - kind.prompt_end) >= 1.0
    # the tie order matters here for every KV scheduler
    assert not np.array_equal(ref.kv_start, kind.kv_start, equal_nan=True)
    assert not np.array_equal(ref.token_end, kind.token_end)
    if scheduler == "mixed_pool":   # overloaded: it borrows (a decode on a prompt instance or a prompt on a token one)
        tag = ref.placement.tag
        decodes = ref.trace.token_size > 1
        borrowed = (tag[ref.prompt_instance] == Tag.TOKEN) | ((tag[ref.token_instance] == Tag.PROMPT) & decodes)
        assert borrowed.any()
