"""Hand-computed scenarios with the constant performance model.

Every expected number below was derived by hand from docs/semantics.md and
../shared/spec/SEMANTICS.md (sections 3 and 4), never from the code under test. The comments
walk through the timeline so that a failure can be checked against the spec.

Conventions used in the comments:
  P = prompt_time = 0.5 s (any iteration containing a prompt, also mixed batches),
  T = token_time  = 0.1 s (decode-only iteration).
  Rk = request k, Rkp = its prompt task, Rkd = its decode task (token_size - 1 tokens).
  A decode-only run lasts T x N with N = smallest remaining decode count in the batch; a run with a
  prompt is a single iteration. A task arriving during a decode-only run truncates it at the next
  iteration boundary (k = elapsed // T, N' = k + 1).
Metrics: queue_time = prompt start - arrival, ttft = prompt end - arrival,
e2e = decode end - arrival, nth_token_overhead = decode first start - prompt end,
tbt = (e2e - ttft) / token_size.
Arrivals are placed strictly inside iterations, so the truncation arithmetic never sits on a float
boundary.
"""
import dataclasses
import math

import numpy as np
import pytest

from sweepsim.config.run import from_dict
from sweepsim.errors import InputError
from sweepsim.engine.simulate import run
from sweepsim.results.tables import requests_table
from sweepsim.workload.trace import Trace

ABS = 1e-12

# llama2-70b: KV bytes per token = 2 x 80 layers x 8192 hidden x 2 bytes.
KV_LLAMA = 2_621_440
# dgx-a100 instance with tensor_parallel 2: 2 x 80 GiB, minus the 135 GB of llama2-70b weights.
A100_TP2_MAX_MEMORY = 171_798_691_840
LLAMA_WEIGHTS = 135_000_000_000
A100_TP2_KV_ROOM = 36_798_691_840   # = 14,037.55 tokens of llama2-70b KV -> 14,037 whole tokens


def make_config(start_state="baseline", cluster=None, scheduler="token_jsq", instance=None,
                model="llama2-70b", prompt_time=0.5, token_time=0.1):
    d = {"cluster": cluster or {"dgx-h100": 1}, "model": model, "start_state": start_state,
         "scheduler": scheduler,
         "performance_model": {"kind": "constant", "prompt_time": prompt_time, "token_time": token_time}}
    if instance:
        d["instance"] = instance
    return from_dict(d)


def make_trace(rows):
    """rows: (arrival [s], prompt_size, token_size) in arrival order."""
    n = len(rows)
    return Trace("hand-computed", np.arange(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                 np.array([r[0] for r in rows], dtype=np.float64),
                 np.array([r[1] for r in rows], dtype=np.int64),
                 np.array([r[2] for r in rows], dtype=np.int64))


def simulate(cfg, rows):
    res = run(cfg, make_trace(rows))
    table = requests_table(res)
    metrics = {c: table[c].to_numpy() for c in ("queue_time", "ttft", "e2e", "nth_token_overhead", "tbt",
                                                 "tpot")}
    return res, metrics


def check(metrics, **expected):
    for name, values in expected.items():
        assert metrics[name] == pytest.approx(values, abs=ABS, nan_ok=True), name


# --------------------------------------------------------------------------- single request

def test_single_request():
    # R0 arrives at 1.0 (prompt 100, token_size 5 -> decode of 4 tokens) on an idle instance.
    #   prompt run [1.0, 1.5] (P); the chained decode's arrival cannot truncate a prompt run.
    #   decode-only run from 1.5 with N = 4: ends 1.5 + 4 x 0.1 = 1.9.
    # queue 0, ttft 0.5, e2e 0.9, nth 0, tbt = (0.9 - 0.5) / 5 = 0.08, tpot = 0.4 / 4 = 0.1.
    res, m = simulate(make_config(), [(1.0, 100, 5)])
    assert res.completed.tolist() == [True]
    assert res.prompt_start.tolist() == [1.0]
    assert res.prompt_end.tolist() == [1.5]
    assert res.token_start.tolist() == [1.5]
    assert res.token_end[0] == pytest.approx(1.9, abs=ABS)
    check(m, queue_time=[0.0], ttft=[0.5], e2e=[0.9], nth_token_overhead=[0.0], tbt=[0.08], tpot=[0.1])
    # busy from 1.0 to 1.9 (the batch is never empty in between); the run ends at the last event.
    assert res.busy_time[0] == pytest.approx(0.9, abs=ABS)
    assert res.end_clock == pytest.approx(1.9, abs=ABS)
    # 1 prompt iteration + 4 decode iterations; prompt tokens 100 + output tokens 5.
    assert res.iterations.tolist() == [5]
    assert res.tokens_served.tolist() == [105]


def test_single_request_orca_same_timeline():
    # ORCA has the same single-request timeline: prompt [1.0, 1.5], decode N = 4 -> 1.9.
    res, m = simulate(make_config("orca"), [(1.0, 100, 5)])
    check(m, queue_time=[0.0], ttft=[0.5], e2e=[0.9], nth_token_overhead=[0.0], tbt=[0.08])


# --------------------------------------------------------------------------- two requests

def test_second_request_truncates_decode_run():
    # R0: arrival 1.0, prompt 100, token_size 11 (decode 10).  R1: arrival 1.75, prompt 200, token_size 4
    # (decode 3).
    # 1.0  R0p runs alone, [1.0, 1.5].
    # 1.5  R0d runs alone, decode-only, N = 10 -> planned end 1.5 + 1.0 = 2.5.
    # 1.75 R1p arrives: batch_tokens 1 + 200 <= 2048 -> truncate: start = 2.5 - 1.0 = 1.5, elapsed 0.25,
    #      k = 0.25 // 0.1 = 2, N' = 3, new end = 1.75 + (0.3 - 0.25) = 1.8 (R0d has 3 tokens).
    #      R1d's arrival changes nothing (already paused).
    # 1.8  selection: phase 2 takes R1p (200), phase 4 keeps R0d (201) -> mixed batch, one iteration of
    #      P: [1.8, 2.3]. R1 queue = 1.8 - 1.75 = 0.05. R0d -> 4 tokens.
    # 2.3  R1p done: ttft(R1) = 2.3 - 1.75 = 0.55. Batch [R0d, R1d] decode-only, N = min(10-4, 3) = 3 ->
    #      [2.3, 2.6]. R1d first start 2.3 = R1 prompt end -> nth 0.
    # 2.6  R1d done (3 tokens): e2e(R1) = 2.6 - 1.75 = 0.85. R0d has 7; alone N = 3 -> [2.6, 2.9].
    # 2.9  R0d done: e2e(R0) = 1.9.
    # tbt R0 = (1.9 - 0.5) / 11 = 1.4 / 11; tbt R1 = (0.85 - 0.55) / 4 = 0.075.
    res, m = simulate(make_config(), [(1.0, 100, 11), (1.75, 200, 4)])
    assert res.completed.tolist() == [True, True]
    check(m, queue_time=[0.0, 0.05], ttft=[0.5, 0.55], e2e=[1.9, 0.85], nth_token_overhead=[0.0, 0.0],
          tbt=[1.4 / 11, 0.075])
    assert res.prompt_start == pytest.approx([1.0, 1.8], abs=ABS)
    assert res.token_end == pytest.approx([2.9, 2.6], abs=ABS)
    # iterations: 1 (R0p) + 3 (truncated run) + 1 (mixed) + 3 + 3 = 11
    assert res.iterations.tolist() == [11]
    # tokens: prompts 100 + 200, outputs 11 + 4
    assert res.tokens_served.tolist() == [315]
    # time split: prompt-only [1.0,1.5]; mixed [1.8,2.3]; decode-only [1.5,1.8] + [2.3,2.6] + [2.6,2.9]
    assert res.time_prompt[0] == pytest.approx(0.5, abs=ABS)
    assert res.time_mixed[0] == pytest.approx(0.5, abs=ABS)
    assert res.time_token[0] == pytest.approx(0.9, abs=ABS)
    assert res.busy_time[0] == pytest.approx(1.9, abs=ABS)
    assert res.end_clock == pytest.approx(2.9, abs=ABS)


# --------------------------------------------------------------------------- three requests

def test_three_overlapping_requests():
    # R0: 1.0, prompt 100, token_size 6 (decode 5). R1: 1.2, prompt 50, token_size 3 (decode 2).
    # R2: 2.05, prompt 80, token_size 4 (decode 3).
    # 1.0  R0p alone [1.0, 1.5].
    # 1.2  R1 arrives during a prompt run: no truncation, it waits.
    # 1.5  R0p done (ttft 0.5). Selection: phase 2 R1p (50), phase 5 R0d (51) -> batch [R1p, R0d], mixed,
    #      [1.5, 2.0]. R1 queue 0.3. R0d first start 1.5 -> nth 0.
    # 2.0  R1p done (ttft 0.8), R0d 1 token. Batch [R0d, R1d], N = min(4, 2) = 2 -> planned end 2.2.
    # 2.05 R2p arrives (2 + 80 <= 2048): truncate, elapsed 0.05, k = 0, N' = 1 -> end 2.1.
    # 2.1  R0d 2, R1d 1. Batch [R0d, R1d, R2p], mixed [2.1, 2.6]. R2 queue 0.05.
    # 2.6  R0d 3, R1d 2 = done: e2e(R1) = 2.6 - 1.2 = 1.4. R2p done: ttft(R2) = 0.55.
    #      Batch [R0d, R2d], N = min(2, 3) = 2 -> [2.6, 2.8].
    # 2.8  R0d 5 = done: e2e(R0) = 1.8. R2d 2; alone N = 1 -> [2.8, 2.9].
    # 2.9  R2d done: e2e(R2) = 0.85.
    # tbt: R0 (1.8-0.5)/6 = 1.3/6; R1 (1.4-0.8)/3 = 0.2; R2 (0.85-0.55)/4 = 0.075.
    res, m = simulate(make_config(), [(1.0, 100, 6), (1.2, 50, 3), (2.05, 80, 4)])
    assert res.completed.tolist() == [True, True, True]
    check(m, queue_time=[0.0, 0.3, 0.05], ttft=[0.5, 0.8, 0.55], e2e=[1.8, 1.4, 0.85],
          nth_token_overhead=[0.0, 0.0, 0.0], tbt=[1.3 / 6, 0.2, 0.075])
    assert res.token_start == pytest.approx([1.5, 2.0, 2.6], abs=ABS)
    assert res.end_clock == pytest.approx(2.9, abs=ABS)


# --------------------------------------------------------------------------- admission limits

def test_max_batch_size_one_delays_decode():
    # max_batch_size 1. R0: 1.0, prompt 100, token_size 3 (decode 2). R1: 1.2, prompt 100, token_size 2.
    # 1.0  R0p alone [1.0, 1.5].
    # 1.2  R1 arrives: batch full (1 = max) and no decode in the batch -> no truncation.
    # 1.5  R0p done (ttft 0.5). Phase 1 stops at R0d (0 waits < 4); phase 2 takes R1p; the batch is then
    #      full, so R0d waits. [1.5, 2.0]. R1 queue 0.3.
    # 2.0  R1p done (ttft 0.8). R0d has waited 1 iteration (< 4) so phase 1 stops; phases 2-4 empty;
    #      phase 5 (arrival order) takes R0d, then full. R0d N = 2: [2.0, 2.2]. nth(R0) = 2.0 - 1.5 = 0.5.
    # 2.2  R0 done: e2e 1.2. R1d N = 1: [2.2, 2.3]. nth(R1) = 2.2 - 2.0 = 0.2; e2e(R1) = 2.3 - 1.2 = 1.1.
    # tbt: R0 (1.2 - 0.5)/3 = 0.7/3; R1 (1.1 - 0.8)/2 = 0.15.
    cfg = make_config(instance={"max_batch_size": 1})
    res, m = simulate(cfg, [(1.0, 100, 3), (1.2, 100, 2)])
    assert res.completed.tolist() == [True, True]
    check(m, queue_time=[0.0, 0.3], ttft=[0.5, 0.8], e2e=[1.2, 1.1], nth_token_overhead=[0.5, 0.2],
          tbt=[0.7 / 3, 0.15])


def _memory_rows(first_prompt, first_token_size=3):
    # Round robin over the 4 TP2 instances of one dgx-a100: R0 -> 0, R1 -> 1, R2 -> 2, R3 -> 3, R4 -> 0.
    # R1..R3 are small fillers that each run alone on their instance.
    return [(1.0, first_prompt, first_token_size), (1.1, 10, 2), (1.2, 10, 2), (1.3, 10, 2), (1.4, 8000, 2)]


MEMORY_CFG = dict(cluster={"dgx-a100": 1}, scheduler="round_robin",
                  instance={"tensor_parallel": 2, "max_batch_tokens": 16384})


def test_memory_config_numbers():
    # The premise of the memory tests: 4 instances of 2 x 80 GiB each, llama2-70b weights resident.
    cfg = make_config(**MEMORY_CFG)
    res = run(cfg, make_trace([(1.0, 10, 2)]))
    assert res.placement.max_memory.tolist() == [A100_TP2_MAX_MEMORY] * 4
    assert res.placement.weights.tolist() == [LLAMA_WEIGHTS] * 4
    assert A100_TP2_MAX_MEMORY - LLAMA_WEIGHTS == A100_TP2_KV_ROOM
    assert 14_037 * KV_LLAMA <= A100_TP2_KV_ROOM < 14_038 * KV_LLAMA


def _filler_checks(res, m):
    # Fillers R1..R3 (prompt 10, token_size 2) alone on instances 1..3: prompt P, one decode T.
    assert res.prompt_instance.tolist()[1:4] == [1, 2, 3]
    check({k: v[1:4] for k, v in m.items()}, queue_time=[0.0] * 3, ttft=[0.5] * 3, e2e=[0.6] * 3,
          nth_token_overhead=[0.0] * 3)


def test_memory_bound_admission_waits_for_free():
    # Instance 0 has room for 14,037 KV tokens. R0 (prompt 8000, token_size 3) holds KV(8001) from 1.0.
    # R4 (prompt 8000) arrives at 1.4 during R0's prompt run (no truncation of a prompt run).
    # 1.5  R0p done. Phase 2: R4p needs KV(8001): 8001 + 8001 = 16002 > 14037 tokens -> stop. Phase 5:
    #      R0d needs KV(2): 8003 <= 14037 -> admitted; R4p (8000 tokens within the 16384 budget) does
    #      not fit -> stop. R0d alone, N = 2: [1.5, 1.7].
    # 1.7  R0 done (e2e 0.7), its KV(8003) is freed; R4p fits: [1.7, 2.2] (queue 0.3, ttft 0.8);
    #      R4d (KV(1)) [2.2, 2.3]: e2e 0.9, nth 0.
    # tbt: R0 (0.7 - 0.5)/3 = 0.2/3; R4 (0.9 - 0.8)/2 = 0.05.
    res, m = simulate(make_config(**MEMORY_CFG), _memory_rows(8000))
    assert res.completed.all()
    assert res.prompt_instance.tolist() == [0, 1, 2, 3, 0]
    _filler_checks(res, m)
    r = [0, 4]
    check({k: v[r] for k, v in m.items()}, queue_time=[0.0, 0.3], ttft=[0.5, 0.8], e2e=[0.7, 0.9],
          nth_token_overhead=[0.0, 0.0], tbt=[0.2 / 3, 0.05])


def test_memory_exact_fit_admits_prompt_then_blocks_decode():
    # R0 prompt 6033: at 1.5 phase 2 admits R4p (KV(6034) + KV(8001) = 14035 tokens), then phase 5 admits
    # R0d (+KV(2) = 14037 tokens, exactly the room) -> mixed batch [R4p, R0d] [1.5, 2.0] (R4 queue 0.1).
    # 2.0  R4p done (ttft 0.6). R0d kept (1 token). Phase 5: R4d needs KV(1): 14038 > 14037 -> stop.
    #      R0d alone, N = 1: [2.0, 2.1].
    # 2.1  R0 done (e2e 1.1) and freed; R4d runs [2.1, 2.2]: nth(R4) = 2.1 - 2.0 = 0.1, e2e 0.8.
    # tbt: R0 (1.1 - 0.5)/3 = 0.2; R4 (0.8 - 0.6)/2 = 0.1.
    assert (6034 + 8001 + 2) * KV_LLAMA <= A100_TP2_KV_ROOM < (6034 + 8001 + 2 + 1) * KV_LLAMA
    res, m = simulate(make_config(**MEMORY_CFG), _memory_rows(6033))
    assert res.completed.all()
    _filler_checks(res, m)
    r = [0, 4]
    check({k: v[r] for k, v in m.items()}, queue_time=[0.0, 0.1], ttft=[0.5, 0.6], e2e=[1.1, 0.8],
          nth_token_overhead=[0.0, 0.1], tbt=[0.2, 0.1])


def test_memory_head_of_line_deadlock():
    # R0 prompt 6034: at 1.5 phase 2 admits R4p (KV(6035) + KV(8001) = 14036 tokens), phase 5 cannot add
    # R0d (+2 -> 14038 > 14037) -> prompt-only [R4p] [1.5, 2.0].
    # 2.0  R4p done (ttft 0.6). Nothing runs: phase 5 looks at R0 first (arrival order), R0d (never run,
    #      so memory-tested) needs 2 more tokens -> break, so R4d (which would fit: 1 token) is never
    #      considered. The batch is empty, no event is left: R0 and R4 never finish (SEMANTICS 3.6
    #      phase 5: "fits -> add; else break"; 3.3: an idle instance only re-checks on a task arrival).
    res, m = simulate(make_config(**MEMORY_CFG), _memory_rows(6034))
    assert res.completed.tolist() == [False, True, True, True, False]
    _filler_checks(res, m)
    assert res.prompt_start[[0, 4]].tolist() == [1.0, 1.5]
    assert res.prompt_end[[0, 4]].tolist() == [1.5, 2.0]
    assert np.isnan(res.token_start[[0, 4]]).all()
    assert np.isnan(res.token_end[[0, 4]]).all()
    assert np.isnan(m["e2e"][[0, 4]]).all()
    # instance 0 was busy [1.0, 1.5] and [1.5, 2.0]; the last event is R4p's end at 2.0.
    assert res.busy_time[0] == pytest.approx(1.0, abs=ABS)
    assert res.end_clock == 2.0


def test_prompt_memory_limit_on_idle_instance():
    # Three requests, round robin -> instances 0, 1, 2 (each alone on its instance); room: KV(14037).
    # R0 prompt 14036, token_size 1: KV(14037) fits exactly -> prompt [1.0, 1.5]; done with its prompt.
    # R1 prompt 14037 (+ 2 output tokens): KV(14039) > room even on an empty instance -> can never run.
    # R2 prompt 14036, token_size 2: KV(14037) for the prompt plus KV(1) for its decode > room -> can never
    #    finish (its prompt would run, its decode never). The reference stalls both silently; sweepsim
    #    refuses the trace before the run, or rejects both with oversized_requests = "reject".
    rows = [(1.0, 14036, 1), (1.1, 14037, 2), (1.2, 14036, 2)]
    with pytest.raises(InputError, match="2 request.* first request_id 1 .*prompt 14037 \\+ output 2"):
        simulate(make_config(**MEMORY_CFG), rows)
    cfg = dataclasses.replace(make_config(**MEMORY_CFG), oversized_requests="reject")
    res, m = simulate(cfg, rows)
    assert res.rejected.tolist() == [False, True, True]
    assert res.completed.tolist() == [True, False, False]
    assert res.prompt_instance.tolist() == [0, -1, -1]
    assert m["ttft"][0] == pytest.approx(0.5, abs=ABS)
    assert m["e2e"][0] == pytest.approx(0.5, abs=ABS)
    assert all(math.isnan(x) for x in (*res.prompt_start[1:], *res.prompt_end[1:], *res.token_end[1:]))
    assert res.end_clock == pytest.approx(1.5, abs=ABS)


# --------------------------------------------------------------------------- preemption vs ORCA

PREEMPT_ROWS = [(1.0, 2, 6), (1.1, 2, 6), (2.05, 3, 2)]
PREEMPT_INSTANCE = {"max_batch_tokens": 4}


def test_splitwise_preemption_of_newest_decode():
    # Baseline (Splitwise instance), max_batch_tokens 4.
    # R0: 1.0, prompt 2, token_size 6 (decode 5). R1: 1.1, prompt 2, token_size 6. R2: 2.05, prompt 3,
    # token_size 2 (decode 1).
    # 1.0  R0p alone [1.0, 1.5].  1.1 R1 waits (prompt run).
    # 1.5  R0p done (ttft 0.5). Phase 2 R1p (2 tokens), phase 5 R0d (3) -> mixed [R1p, R0d] [1.5, 2.0].
    #      R1 queue 0.4.
    # 2.0  R1p done (ttft 0.9), R0d 1. Batch [R0d, R1d] (2 tokens), N = min(4, 5) = 4 -> planned 2.4.
    # 2.05 R2p (3 tokens) arrives: 2 + 3 > 4, but prompt rule: 2 - 2 decodes + 3 <= 4 -> truncate:
    #      elapsed 0.05, k = 0, N' = 1 -> end 2.1.
    # 2.1  R0d 2, R1d 1. Phase 2 R2p (3), phase 4 R0d (4), R1d would make 5 > 4 -> stop; phase 5 budget
    #      -> stop. R1d (the newest decode) is preempted. Mixed [R0d, R2p] [2.1, 2.6]. R2 queue 0.05.
    # 2.6  R0d 3, R2p done (ttft 0.55). Phase 1 stops (R1d waited 1 < 4); phase 3 R1d (1), phase 4 R0d
    #      (2), phase 5 R2d (3). Batch [R0d, R1d, R2d], N = min(2, 4, 1) = 1 -> [2.6, 2.7].
    # 2.7  R2d done: e2e(R2) = 0.65. R0d 4, R1d 2. N = min(1, 3) = 1 -> [2.7, 2.8].
    # 2.8  R0d done: e2e(R0) = 1.8. R1d 3, alone N = 2 -> [2.8, 3.0]: e2e(R1) = 3.0 - 1.1 = 1.9.
    # tbt: R0 (1.8 - 0.5)/6 = 1.3/6; R1 (1.9 - 0.9)/6 = 1/6; R2 (0.65 - 0.55)/2 = 0.05.
    res, m = simulate(make_config("baseline", instance=PREEMPT_INSTANCE), PREEMPT_ROWS)
    assert res.completed.tolist() == [True, True, True]
    check(m, queue_time=[0.0, 0.4, 0.05], ttft=[0.5, 0.9, 0.55], e2e=[1.8, 1.9, 0.65],
          nth_token_overhead=[0.0, 0.0, 0.0], tbt=[1.3 / 6, 1.0 / 6, 0.05])
    assert res.token_end == pytest.approx([2.8, 3.0, 2.7], abs=ABS)
    # iterations: R0p 1, mixed 1, truncated run 1, mixed 1, 1, 1, 2 = 8
    assert res.iterations.tolist() == [8]
    assert res.end_clock == pytest.approx(3.0, abs=ABS)


def test_orca_same_trace_no_token_budget():
    # ORCA on the same trace and instance config: no token budget (max_batch_tokens ignored), no
    # preemption, FCFS over resident requests.
    # 1.0  R0p [1.0, 1.5].  1.1 R1 waits.
    # 1.5  R0 head = R0d, then R1p -> mixed [R0d, R1p] [1.5, 2.0]. R1 queue 0.4.
    # 2.0  R1p done (ttft 0.9); R0d 1. Batch [R0d, R1d], N = min(4, 5) = 4 -> planned 2.4.
    # 2.05 R2 arrives, batch below max_batch_size -> truncate at 2.1.
    # 2.1  R0d 2, R1d 1; R2p added -> mixed [R0d, R1d, R2p] [2.1, 2.6] (no preemption).
    # 2.6  R0d 3, R1d 2, R2p done (ttft 0.55). [R0d, R1d, R2d], N = min(2, 3, 1) = 1 -> 2.7.
    # 2.7  R2 done (e2e 0.65). R0d 4, R1d 3; N = min(1, 2) = 1 -> 2.8.
    # 2.8  R0 done (e2e 1.8). R1d 4; N = 1 -> 2.9: R1 done, e2e = 2.9 - 1.1 = 1.8 (vs 1.9 with
    #      preemption).
    # tbt: R0 1.3/6; R1 (1.8 - 0.9)/6 = 0.15; R2 0.05.
    res, m = simulate(make_config("orca", instance=PREEMPT_INSTANCE), PREEMPT_ROWS)
    assert res.completed.tolist() == [True, True, True]
    check(m, queue_time=[0.0, 0.4, 0.05], ttft=[0.5, 0.9, 0.55], e2e=[1.8, 1.8, 0.65],
          nth_token_overhead=[0.0, 0.0, 0.0], tbt=[1.3 / 6, 0.15, 0.05])
    assert res.token_end == pytest.approx([2.8, 2.9, 2.7], abs=ABS)
    assert res.end_clock == pytest.approx(2.9, abs=ABS)


def test_splitwise_blocked_decode_beats_running_decode():
    # Baseline, max_batch_tokens 2: phase 3 (preempted decodes) comes before phase 4 (running decodes).
    # Ra: 1.0, prompt 1, token_size 6 (decode 5). Rb: 1.1, prompt 1, token_size 6.
    # Rc: 2.05, prompt 1, token_size 2 (decode 1). Rd: 2.2, prompt 1, token_size 2.
    # 1.0  Ra_p alone [1.0, 1.5].  1.1 Rb waits (prompt run).
    # 1.5  Ra_p done (ttft 0.5). Phase 2 Rb_p (1), phase 5 Ra_d (2) -> mixed [1.5, 2.0]; Rb queue 0.4.
    # 2.0  Rb_p done (ttft 0.9), Ra_d 1. Batch [Ra_d, Rb_d] (2 tokens), N = 4 -> planned 2.4.
    # 2.05 Rc_p: 2 + 1 > 2, prompt rule 2 - 2 + 1 <= 2 -> truncate at 2.1.
    # 2.1  Ra_d 2, Rb_d 1. Phase 2 Rc_p (1), phase 4 Ra_d (2), Rb_d over budget -> Rb_d preempted.
    #      Mixed [Ra_d, Rc_p] [2.1, 2.6]; Rc queue 0.05.
    # 2.2  Rd arrives during a prompt-containing run: waits.
    # 2.6  Ra_d 3; Rc_p done (ttft 0.55). Phase 1 stops (first pending task Rb_d waited 1 < 4).
    #      Phase 2 Rd_p (1), phase 3 Rb_d (2), phase 4 Ra_d over budget -> Ra_d preempted.
    #      Mixed [Rd_p, Rb_d] [2.6, 3.1]; Rd queue 0.4.
    # 3.1  Rd_p done (ttft 0.9); Rb_d 2. Phase 3 Ra_d (1), phase 4 Rb_d (2); Rc_d (phase 5) over budget.
    #      Batch [Rb_d, Ra_d], N = min(3, 2) = 2 -> [3.1, 3.3].
    # 3.3  Ra_d 5 = done: e2e(Ra) = 2.3. Rb_d 4. Phase 4 Rb_d (1), phase 5 Rc_d (2), Rd_d over.
    #      N = min(1, 1) = 1 -> [3.3, 3.4]. nth(Rc) = 3.3 - 2.6 = 0.7.
    # 3.4  Rb_d done: e2e(Rb) = 3.4 - 1.1 = 2.3. Rc_d done: e2e(Rc) = 3.4 - 2.05 = 1.35.
    #      Rd_d [3.4, 3.5]: nth(Rd) = 3.4 - 3.1 = 0.3, e2e(Rd) = 3.5 - 2.2 = 1.3.
    # tbt: Ra (2.3 - 0.5)/6 = 0.3; Rb (2.3 - 0.9)/6 = 1.4/6; Rc (1.35 - 0.55)/2 = 0.4; Rd (1.3 - 0.9)/2 = 0.2.
    rows = [(1.0, 1, 6), (1.1, 1, 6), (2.05, 1, 2), (2.2, 1, 2)]
    res, m = simulate(make_config("baseline", instance={"max_batch_tokens": 2}), rows)
    assert res.completed.tolist() == [True, True, True, True]
    check(m, queue_time=[0.0, 0.4, 0.05, 0.4], ttft=[0.5, 0.9, 0.55, 0.9], e2e=[2.3, 2.3, 1.35, 1.3],
          nth_token_overhead=[0.0, 0.0, 0.7, 0.3], tbt=[0.3, 1.4 / 6, 0.4, 0.2])
    assert res.token_end == pytest.approx([3.3, 3.4, 3.4, 3.5], abs=ABS)


# --------------------------------------------------------------------------- token_size == 1

def test_token_size_one_finishes_with_prompt_and_token_jsq_counts_prompt_only():
    # dgx-h100 with TP 4 -> 2 instances. token_jsq: fewest pending tokens, ties to instance 0.
    # R0 (1.0, prompt 100, token_size 1) -> instance 0, pending 100 (no +1: no decode task).
    # R1 (1.1, prompt 99, token_size 2) -> instance 1 (0 < 100), pending 99 + 1 = 100.
    # R2 (1.2, prompt 10, token_size 2): tie 100 / 100 -> instance 0 (would be instance 1 if R0 had
    #    counted 101).
    # Instance 0: R0p [1.0, 1.5]; R0 completes with its prompt: ttft = e2e = 0.5, token_start =
    #   token_end = prompt_end (nth 0), tbt 0 / 1 = 0, tpot NaN. R2p [1.5, 2.0] (queue 0.3, ttft 0.8),
    #   R2d [2.0, 2.1] (e2e 0.9, tbt 0.05).
    # Instance 1: R1p [1.1, 1.6], R1d [1.6, 1.7]: ttft 0.5, e2e 0.6, tbt 0.05, tpot 0.1.
    cfg = make_config(instance={"tensor_parallel": 4})
    res, m = simulate(cfg, [(1.0, 100, 1), (1.1, 99, 2), (1.2, 10, 2)])
    assert res.prompt_instance.tolist() == [0, 1, 0]
    assert res.token_instance.tolist() == [0, 1, 0]
    assert res.completed.tolist() == [True, True, True]
    assert res.prompt_end[0] == 1.5 and res.token_start[0] == 1.5 and res.token_end[0] == 1.5
    check(m, queue_time=[0.0, 0.0, 0.3], ttft=[0.5, 0.5, 0.8], e2e=[0.5, 0.6, 0.9],
          nth_token_overhead=[0.0, 0.0, 0.0], tbt=[0.0, 0.05, 0.05], tpot=[math.nan, 0.1, 0.1])
    assert math.isnan(m["tpot"][0])


def test_token_size_one_frees_kv_with_prompt():
    # One dgx-a100 with TP 2 (room for 14,037 tokens per instance), token_jsq.
    # R0 (1.0, prompt 8000, token_size 1) -> instance 0, holds KV(8001); done at 1.5 and must free it
    # (its pending tokens go back to 0, so every instance is tied at 0).
    # R1 (2.0, prompt 8000, token_size 2) -> instance 0 again; KV(8001) fits only if R0's KV was freed:
    # prompt [2.0, 2.5], decode [2.5, 2.6] -> queue 0, ttft 0.5, e2e 0.6.
    cfg = make_config(cluster={"dgx-a100": 1}, instance={"tensor_parallel": 2})
    res, m = simulate(cfg, [(1.0, 8000, 1), (2.0, 8000, 2)])
    assert res.prompt_instance.tolist() == [0, 0]
    assert res.completed.tolist() == [True, True]
    check(m, queue_time=[0.0, 0.0], ttft=[0.5, 0.5], e2e=[0.5, 0.6], nth_token_overhead=[0.0, 0.0])


# --------------------------------------------------------------------------- determinism

def test_kernel_is_deterministic():
    rng = np.random.default_rng(12345)
    n = 40
    arrival = np.cumsum(rng.exponential(0.05, n))
    rows = [(float(a), int(p), int(t)) for a, p, t in
            zip(arrival, rng.integers(1, 3000, n), rng.integers(1, 40, n))]
    for start_state in ("baseline", "orca"):
        cfg = from_dict({"cluster": {"dgx-h100": 1}, "model": "bloom-176b", "start_state": start_state,
                         "scheduler": "token_jsq", "instance": {"tensor_parallel": 8}})
        a = run(cfg, make_trace(rows))
        b = run(cfg, make_trace(rows))
        assert a.completed.all()
        for field in ("completed", "prompt_instance", "token_instance", "prompt_start", "prompt_end",
                      "token_start", "token_end", "kv_start", "kv_end", "busy_time", "iterations",
                      "tokens_served", "time_prompt", "time_token", "time_mixed"):
            assert np.array_equal(getattr(a, field), getattr(b, field), equal_nan=True), field
        assert a.end_clock == b.end_clock
