"""Performance models: the profiled db tables (SEMANTICS.md 4.2-4.3) and the constant model.

Expected values are the literal knot values of SEMANTICS.md 4.2 and hand evaluations of scipy's
linear interpolation formula on those literals: with lo/hi the segment's knots,
value = (y[hi] - y[lo]) / (knot[hi] - knot[lo]) * (x - knot[lo]) + y[lo], the segment being
searchsorted_left(knots, x) clipped to [1, n - 1] (a point on a knot uses the segment ending there).
"""
import csv
import statistics

import numpy as np
import pytest

from kernels.perf_nb import interp_extrapolate_nb, iteration_duration_nb
from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import run
from sweepsim.engine.performance import DEFAULT_DB, MIXED_BATCH_FACTOR, PerfModelConfig, build_tables, load_db
from sweepsim.workload.trace import Trace


def prompt(curve, bt):
    """A profiled curve's prompt time [s] at ``bt`` batch tokens (the kernels' interpolation)."""
    return interp_extrapolate_nb(curve.knots, curve.prompt_s, len(curve.knots), bt)


def token(curve, bt):
    return interp_extrapolate_nb(curve.knots, curve.token_s, len(curve.knots), bt)

KNOTS = [128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0]

# SEMANTICS.md 4.2, seconds.
BLOOM_H100_PROMPT = [0.04828443902079016, 0.05117948295082897, 0.07614180399104953, 0.1322169970080722,
                     0.25196400948334485, 0.6495982770284172, 1.4115745809976943, 2.5219093060004525,
                     4.99645071401028]
BLOOM_H100_TOKEN = [0.03573924211114205, 0.03615448040398219, 0.036166175006905436, 0.03633388049151624,
                    0.03673894313809381, 0.03752989886950987, 0.039016441875421554, 0.045841567142679555,
                    0.06382134215911762]
LLAMA_H100_PROMPT = [0.05818541598273441, 0.051658510987181216, 0.05385797604685649, 0.07768386948737316,
                     0.13442320300964639, 0.3762156415032223, 0.8314855720091145, 1.5517261609784327,
                     2.9363297179806978]
LLAMA_H100_TOKEN = [0.02987266007185672, 0.028266553230323337, 0.03056174722271708, 0.02997299270359726,
                    0.03163489250889723, 0.03132911609342977, 0.03259232873922052, 0.03861935059888303,
                    0.05016084560871447]
LLAMA_H100_PCAP_PROMPT_4096 = 0.489080333954189
LLAMA_H100_PCAP_PROMPT_2048 = 0.1747501639125403

BLOOM_H100 = ("bloom-176b", "h100-80gb", 8)
LLAMA_H100 = ("llama2-70b", "h100-80gb", 8)


@pytest.fixture(scope="module")
def db():
    return load_db()


@pytest.fixture(scope="module")
def bloom(db):
    return db[BLOOM_H100]


@pytest.fixture(scope="module")
def bloom_tables():
    return build_tables(PerfModelConfig(), [BLOOM_H100])


# --------------------------------------------------------------------------- knot values

@pytest.mark.parametrize("key,prompt,token", [(BLOOM_H100, BLOOM_H100_PROMPT, BLOOM_H100_TOKEN),
                                              (LLAMA_H100, LLAMA_H100_PROMPT, LLAMA_H100_TOKEN)])
def test_knot_values_match_spec_table(db, key, prompt, token):
    c = db[key]
    assert c.knots.tolist() == KNOTS
    assert c.prompt_s.tolist() == prompt      # exact float equality
    assert c.token_s.tolist() == token


def test_db_combinations(db):
    # bloom-176b: TP 8 only, 3 hardware; llama2-70b: TP 2/4/8, 3 hardware (SEMANTICS.md 4.2 step 2).
    hws = ("a100-80gb", "h100-80gb", "h100-80gb-pcap")
    expected = {("bloom-176b", hw, 8) for hw in hws} | {("llama2-70b", hw, tp) for hw in hws for tp in (2, 4, 8)}
    assert set(db) == expected
    for c in db.values():
        assert c.knots.tolist() == KNOTS


def test_knots_rederived_from_csv(db):
    # Independent re-derivation with the csv module: ms -> s per row, then the median per batch-token
    # group (prompt_size x batch_size), for every (model, hardware, TP).
    groups = {}
    with open(DEFAULT_DB, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["model"], row["hardware"], int(row["tensor_parallel"]))
            bt = int(row["prompt_size"]) * int(row["batch_size"])
            g = groups.setdefault(key, {}).setdefault(bt, ([], []))
            g[0].append(float(row["prompt_time"]) / 1000)
            g[1].append(float(row["token_time"]) / 1000)
    assert set(groups) == set(db)
    for key, by_bt in groups.items():
        bts = sorted(by_bt)
        assert [float(b) for b in bts] == db[key].knots.tolist()
        assert [statistics.median(by_bt[b][0]) for b in bts] == db[key].prompt_s.tolist(), key
        assert [statistics.median(by_bt[b][1]) for b in bts] == db[key].token_s.tolist(), key


# --------------------------------------------------------------------------- interpolation

def test_value_at_first_knot(bloom):
    # x = 128: segment clipped to [128, 256], slope * 0 + y[0] = y[0] exactly.
    assert prompt(bloom, 128) == BLOOM_H100_PROMPT[0]
    assert token(bloom, 128) == BLOOM_H100_TOKEN[0]


def test_value_at_inner_knot_uses_segment_ending_there(bloom, db):
    # x = 1024 lies on the [512, 1024] segment: (y[3] - y[2]) / 512 * 512 + y[2].
    y = BLOOM_H100_PROMPT
    assert prompt(bloom, 1024) == (y[3] - y[2]) / (1024.0 - 512.0) * (1024.0 - 512.0) + y[2]
    assert prompt(bloom, 1024) == pytest.approx(0.1322169970080722, rel=1e-15)
    # llama2-70b / h100-80gb-pcap / TP8 prompt at 4096: the segment [2048, 4096] gives
    # (0.489080333954189 - 0.1747501639125403) / 2048 * 2048 + 0.1747501639125403 = 0.48908033395418893,
    # one ulp above the knot's value 0.489080333954189 (the segment starting at 4096 would give the latter).
    pcap = db[("llama2-70b", "h100-80gb-pcap", 8)]
    assert pcap.prompt_s[4] == LLAMA_H100_PCAP_PROMPT_2048
    assert pcap.prompt_s[5] == LLAMA_H100_PCAP_PROMPT_4096
    assert prompt(pcap, 4096) == 0.48908033395418893
    assert prompt(pcap, 4096) != LLAMA_H100_PCAP_PROMPT_4096


def test_value_at_last_knot(bloom):
    y = BLOOM_H100_TOKEN
    assert token(bloom, 32768) == (y[8] - y[7]) / (32768.0 - 16384.0) * (32768.0 - 16384.0) + y[7]
    assert token(bloom, 32768) == pytest.approx(0.06382134215911762, rel=1e-15)


def test_value_between_knots(bloom):
    # prompt(1500): segment [1024, 2048]: (0.25196400948334485 - 0.1322169970080722) / 1024 * 476
    # + 0.1322169970080722 = 0.18788064733837473.
    y = BLOOM_H100_PROMPT
    assert prompt(bloom, 1500) == (y[4] - y[3]) / 1024.0 * (1500.0 - 1024.0) + y[3]
    assert prompt(bloom, 1500) == pytest.approx(0.18788064733837473, abs=1e-16)
    # token(1500), same segment: 0.036522171331136284
    t = BLOOM_H100_TOKEN
    assert token(bloom, 1500) == (t[4] - t[3]) / 1024.0 * (1500.0 - 1024.0) + t[3]
    assert token(bloom, 1500) == pytest.approx(0.036522171331136284, abs=1e-16)


def test_extrapolation_below_first_knot(bloom):
    # x < 128 uses the [128, 256] segment with x - 128 < 0.
    y = BLOOM_H100_PROMPT
    slope = (y[1] - y[0]) / 128.0
    assert prompt(bloom, 64) == slope * (64.0 - 128.0) + y[0]
    assert prompt(bloom, 64) == pytest.approx(0.046836917055770755, abs=1e-16)
    assert prompt(bloom, 1) == pytest.approx(0.04541201262145478, abs=1e-16)
    # token(1) (one decode in the batch): 0.035327247867464724
    t = BLOOM_H100_TOKEN
    assert token(bloom, 1) == (t[1] - t[0]) / 128.0 * (1.0 - 128.0) + t[0]
    assert token(bloom, 1) == pytest.approx(0.035327247867464724, abs=1e-16)


def test_extrapolation_above_last_knot(bloom):
    # x > 32768 uses the [16384, 32768] segment: prompt(40000) = 6.088728757389617.
    y = BLOOM_H100_PROMPT
    assert prompt(bloom, 40000) == (y[8] - y[7]) / 16384.0 * (40000.0 - 16384.0) + y[7]
    assert prompt(bloom, 40000) == pytest.approx(6.088728757389617, abs=1e-14)


def test_non_monotone_knots_used_as_is(db):
    # llama2-70b / h100 prompt time falls from 128 to 256; prompt(192) is the midpoint of the segment.
    c = db[LLAMA_H100]
    y = LLAMA_H100_PROMPT
    assert prompt(c, 192) == (y[1] - y[0]) / 128.0 * 64.0 + y[0]
    assert prompt(c, 192) == pytest.approx((0.05818541598273441 + 0.051658510987181216) / 2, abs=1e-16)
    assert prompt(c, 192) < prompt(c, 128)


# --------------------------------------------------------------------------- iteration_duration_nb

def test_iteration_duration_prompt_token_and_mixed(bloom_tables):
    y = BLOOM_H100_PROMPT
    t = BLOOM_H100_TOKEN
    prompt_1500 = (y[4] - y[3]) / 1024.0 * 476.0 + y[3]
    token_1500 = (t[4] - t[3]) / 1024.0 * 476.0 + t[3]
    assert iteration_duration_nb(bloom_tables, 0, 1500, True, False, 1.1) == prompt_1500
    assert iteration_duration_nb(bloom_tables, 0, 1500, False, True, 1.1) == token_1500
    # mixed batch: prompt(bt) x 1.1 (bt counts the decodes as well)
    assert iteration_duration_nb(bloom_tables, 0, 1500, True, True, 1.1) == prompt_1500 * 1.1
    assert iteration_duration_nb(bloom_tables, 0, 1500, True, True, 1.1) == pytest.approx(
        0.18788064733837473 * 1.1, rel=1e-15)
    # a mixed batch of 1000 prompt tokens + 1 decode: bt = 1001 on [512, 1024]
    mixed_1001 = ((y[3] - y[2]) / 512.0 * (1001.0 - 512.0) + y[2]) * 1.1
    assert iteration_duration_nb(bloom_tables, 0, 1001, True, True, 1.1) == mixed_1001
    assert mixed_1001 == pytest.approx(0.14266779361643672, abs=1e-16)


def test_mixed_batch_factor_constant():
    assert MIXED_BATCH_FACTOR == 1.1


def test_build_tables_rows_in_key_order(db):
    keys = [LLAMA_H100, BLOOM_H100]
    tab = build_tables(PerfModelConfig(), keys)
    # row 0 = llama2-70b: a prompt-only batch of 128 tokens is its first knot
    assert iteration_duration_nb(tab, 0, 128, True, False, 1.1) == LLAMA_H100_PROMPT[0]
    assert iteration_duration_nb(tab, 1, 128, True, False, 1.1) == BLOOM_H100_PROMPT[0]
    assert iteration_duration_nb(tab, 0, 128, False, True, 1.1) == LLAMA_H100_TOKEN[0]
    assert iteration_duration_nb(tab, 1, 128, False, True, 1.1) == BLOOM_H100_TOKEN[0]


def test_constant_model_durations():
    tab = build_tables(PerfModelConfig(kind="constant", prompt_time=0.5, token_time=0.1), [BLOOM_H100])
    for bt in (1, 100, 5000, 100000):
        assert iteration_duration_nb(tab, 0, bt, True, False, 1.1) == 0.5   # prompt-only
        assert iteration_duration_nb(tab, 0, bt, True, True, 1.1) == 0.5    # mixed: no 1.1 factor
        assert iteration_duration_nb(tab, 0, bt, False, True, 1.1) == 0.1   # decode-only


# --------------------------------------------------------------------------- through the engine

def test_db_model_in_engine_single_and_mixed():
    # One dgx-h100 (one TP8 instance), bloom-176b, db model, baseline / token_jsq.
    # R0: arrival 1.0, prompt 1500, token_size 3 (decode 2). R1: arrival 1.1, prompt 1000, token_size 2.
    # 1.0  R0p alone: d = prompt(1500) = 0.18788064733837473 -> ends 1.0 + d.
    # 1.1  R1 arrives during the prompt run: waits.
    # e1   R0p done. Batch [R1p, R0d]: mixed, bt = 1000 + 1 = 1001, d = prompt(1001) x 1.1 -> ends e1 + d.
    # e2   R1p done; R0d has 1 token. Batch [R0d, R1d]: decode-only bt = 2, N = min(1, 1) = 1,
    #      d = token(2) -> both finish at e2 + token(2).
    y = BLOOM_H100_PROMPT
    t = BLOOM_H100_TOKEN
    d_p = (y[4] - y[3]) / 1024.0 * (1500.0 - 1024.0) + y[3]
    d_mixed = ((y[3] - y[2]) / 512.0 * (1001.0 - 512.0) + y[2]) * 1.1
    d_tok2 = (t[1] - t[0]) / 128.0 * (2.0 - 128.0) + t[0]
    e1 = 1.0 + d_p * 1
    e2 = e1 + d_mixed * 1
    e3 = e2 + d_tok2 * 1
    cfg = from_dict({"cluster": {"dgx-h100": 1}, "model": "bloom-176b", "start_state": "baseline",
                     "scheduler": "token_jsq", "performance_model": "db"})
    tr = Trace("db", np.array([0, 1]), np.array([0, 0]), np.array([1.0, 1.1]), np.array([1500, 1000]),
               np.array([3, 2]))
    res = run(cfg, tr)
    assert res.completed.tolist() == [True, True]
    assert res.prompt_end.tolist() == [e1, e2]
    assert res.token_start.tolist() == [e1, e2]
    assert res.token_end.tolist() == [e3, e3]
    # sanity against decimal hand values
    assert e1 == pytest.approx(1.18788064733837473, abs=1e-15)
    assert e2 - e1 == pytest.approx(0.14266779361643672, abs=1e-14)
