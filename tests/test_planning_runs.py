"""Forecast-aware planning in topology runs (docs/planning.md; ``sweepsim.planning.apply``, the kernel's
``_plan_tick_nb`` / ``_planned_nb`` / ``_window_add_nb`` in ``kernels/scaling_nb.py``), computed by hand.

Plans are controlled exactly by writing the forecast file ourselves (``write_forecast``): with
``planning.throughput = "sageserve"`` an endpoint of model m needs ceil(D / TPS_m) instances for a demand D, so a
forecast of (n - 1/2) x TPS_m prompt tokens per minute plans n instances (``planned``). Unless stated, planning ticks
come every ``interval = 60`` s from 0 and ``window = [0, 0]``: the plan of tick k (t = 60 k) is the forecast of
minute k alone (every forecast row issued at 0, so always visible). The floor of every plan is
``scaling.min_instances`` = 2 and the region's total the sum of its endpoints' instances.

Two set-ups (helpers of tests/test_scaling_hand.py: one region ``r0``, the constant performance model, every
iteration with a prompt 1 s and every decode-only iteration 0.25 s):
- ``AB``: endpoints A (instances 0-5) and B (6-11), 6 TP8 instances each, SageServe's groups [0,1,2][3,4,5] and
  [6,7,8][9,10,11]; a tiny request (99 + 1 tokens, 1 s) every 10 s from t = 5 alternately for A and B, so ticks
  (at multiples of 60) never coincide with arrivals and the utilisation stays ~0.
- ``AC``: endpoints A (instances 0-3, groups [0,1][2,3]) and C (4-5), TP2; one A instance has ROOM = 14,037.6 KV
  tokens beside the weights (tests/test_scaling_hand.py), so utilisation is controlled by a few large requests.

Group moves (docs/semantics.md): leaving [0,1,2][3,4,5] takes 5, then 2, then 4, then 3 (-> [0,1]); leaving
[0,1][2,3] takes 3 then 2 (-> [0,1]); joining [0,1] appends (-> [0,1,n]), joining [0,1,n] makes [0,1][n,m].
A planning tick runs after every other event at its time; its scale-downs come first (endpoint order), then its
scale-ups; forced moves set no lock-out. Log rows are compared as (time, action, instance, endpoint, from_model,
serving, starting, draining, region's spot) after the move (tests/test_scaling_hand.py ``rows``).

Expected failures: ``test_planning_start_before_the_history_end`` (``planning.start`` < ``planning.train_until``
applies the history's ticks at negative run times and charges negative instance-seconds) and
``test_forecast_file_missing_columns_names_the_planning_key`` (the error names the file and the column, not the key).
"""
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import run, run_batch
from sweepsim.errors import InputError
from sweepsim.planning.apply import planned_targets
from sweepsim.planning.forecast import COLUMNS
from sweepsim.planning.planner import SAGESERVE_TPS_BY_MODEL as TPS
from sweepsim.results.scaling import run_scaling_totals
from tests.cli_helpers import invoke, ok
from tests.test_scaling_hand import DONATE, DRAIN, I, READY, RECLAIM, SPOT, config_dict, endpoint, rows, trace
from tests.test_scaling_outputs import _write_trace
from tests.test_serving_differential import REQUEST_FIELDS

A, B, C = 0, 1, 1          # model indices: ("A", "B") in the AB set-up, ("A", "C") in the AC set-up
EA, EB = 0, 1              # endpoint indices
TINY, BIG, MED = (99, 1), (8999, 301), (3999, 301)   # (prompt_size, token_size)
SCHEMA = {"model": pl.String, "region": pl.String, "method": pl.String, "minute": pl.Int64, "time": pl.Float64,
          "observed": pl.Float64, "predicted": pl.Float64, "lower": pl.Float64, "upper": pl.Float64,
          "issued": pl.Float64, "lead": pl.Int64}


def write_forecast(path, predicted, upper=None, issued=None, first=0, region="r0"):
    """A `sweepsim forecast`-like file: per model, per minute first, first + 1, ... its ``predicted`` value (None:
    null), ``upper`` (default: the prediction) and ``issued`` time (default: the first minute's start)."""
    recs = []
    for m, values in predicted.items():
        for k, v in enumerate(values):
            minute = first + k
            iss = float(issued[m][k]) if issued else 60.0 * first
            recs.append({"model": m, "region": region, "method": "arima", "minute": minute, "time": 60.0 * minute,
                         "observed": 0.0, "predicted": v, "lower": None if v is None else 0.0,
                         "upper": upper[m][k] if upper else v, "issued": iss, "lead": int(minute - iss // 60)})
    pl.DataFrame(recs, schema=SCHEMA).select(COLUMNS).write_parquet(path)
    return Path(path)


def planned(model, counts):
    """Forecast values planning ``counts`` instances of ``model`` (SageServe's throughputs): (n - 1/2) TPS."""
    return [(n - 0.5) * TPS[model] for n in counts]


def planning(path, arbiter, **kw):
    return {"arbiter": arbiter, "forecast": str(path), "throughput": "sageserve", "interval": 60,
            "window": [0, 0], **kw}


AB_EPS = [endpoint("A", 6, tensor_parallel=8), endpoint("B", 6, tensor_parallel=8)]
AC_EPS = [endpoint("A", 4), endpoint("C", 2)]


def ab_trace(n=26):
    """A tiny request every 10 s from t = 5, alternately for A and B (last arrival 5 + 10 (n - 1))."""
    return trace([(5.0 + 10 * k, *TINY, k % 2, I, 0) for k in range(n)], models=("A", "B"))


def counts_after(res, t):
    """Per endpoint: serving + starting instances after the log's last row at or before t (initially its count)."""
    out = [e.instances for e in res.config.topology.endpoints]
    for r in rows(res):
        if r[0] <= t:
            out[r[3]] = r[5] + r[6]
    return out


# ---------------------------------------------------------------------------------------------------------------
# 1. LT-I: the plan applied at each tick

#: plans per tick 0..4 (t = 0, 60, ..., 240; the last arrival is at 255): A 2, 4, 8, 9, 9; B 6, 3, 3, 3, 3
LTI_PLANS = {"A": [2, 4, 8, 9, 9], "B": [6, 3, 3, 3, 3]}


def _lti(tmp_path, scaling):
    f = write_forecast(tmp_path / "f.parquet", {m: planned(m, c) for m, c in LTI_PLANS.items()})
    cfg = from_dict(config_dict(AB_EPS, scaling, planning=planning(f, "lt-i")))
    return cfg, run(cfg, ab_trace())


def test_lt_i_applies_each_plan_at_its_tick_lockout(tmp_path):
    cfg, res = _lti(tmp_path, {"level": 2, "delays": "lockout"})
    # the plans: every demand (n - 1/2) TPS needs n instances, 8 <= sum <= 12 fits the region: the raw plans
    targets, _, start = planned_targets(cfg, ab_trace())
    assert start == 0.0 and targets.T.tolist() == [LTI_PLANS["A"], LTI_PLANS["B"]]
    # tick 0 (t=0, after nothing: the first arrival is at 5): A 6 -> 2: 5, 2, 4, 3 leave into the spot pool at once
    # (lockout); A's spot list [5, 2, 4, 3]. B stays 6.
    # tick 1 (60): downs first: B 6 -> 3: 11, 8, 10 leave (B's list [11, 8, 10]); then A 2 -> 4: reclaim A's head
    # 5, then 2 (joining at once).
    # tick 2 (120): A 4 -> 8: reclaim 4, 3 (A's list empties), then donate (level 2; B's list is the only non-empty
    # one, whatever the draw) 11, 8.  tick 3 (180): A 8 -> 9: donate 10.  tick 4 (240): A 9, B 3: nothing.
    assert rows(res) == [(0.0, SPOT, 5, EA, A, 5, 0, 0, 1), (0.0, SPOT, 2, EA, A, 4, 0, 0, 2),
                         (0.0, SPOT, 4, EA, A, 3, 0, 0, 3), (0.0, SPOT, 3, EA, A, 2, 0, 0, 4),
                         (60.0, SPOT, 11, EB, B, 5, 0, 0, 5), (60.0, SPOT, 8, EB, B, 4, 0, 0, 6),
                         (60.0, SPOT, 10, EB, B, 3, 0, 0, 7),
                         (60.0, RECLAIM, 5, EA, A, 3, 0, 0, 6), (60.0, RECLAIM, 2, EA, A, 4, 0, 0, 5),
                         (120.0, RECLAIM, 4, EA, A, 5, 0, 0, 4), (120.0, RECLAIM, 3, EA, A, 6, 0, 0, 3),
                         (120.0, DONATE, 11, EA, B, 7, 0, 0, 2), (120.0, DONATE, 8, EA, B, 8, 0, 0, 1),
                         (180.0, DONATE, 10, EA, B, 9, 0, 0, 0)]
    for k, t in enumerate((0.0, 60.0, 120.0, 180.0, 240.0)):   # the counts after each tick are its plan
        assert counts_after(res, t) == [LTI_PLANS["A"][k], LTI_PLANS["B"][k]]
    assert res.completed.all()


def test_lt_i_with_real_delays_serves_reclaim_delay_after_the_tick(tmp_path):
    _, res = _lti(tmp_path, {"level": 2, "delays": "real", "reclaim_delay": 30.0, "spin_up": 45.0})
    # tick 0: 5, 2, 4, 3 drain (idle: spot after spin_down = 0, lifecycle events at 0 after the tick, lower
    # instance first): A's list [2, 3, 4, 5].  tick 1 (60): B's 11, 8, 10 drain (spot at 60: 8, 10, 11), then A
    # reclaims 2, 3, starting, ready at 60 + 30 = 90.  tick 2 (120): A has 4 serving: reclaim 4, 5 (ready 150),
    # donate B's 8, 10 (ready 120 + spin_up 45 = 165).  tick 3 (180): donate 11 (ready 225).
    assert rows(res) == [(0.0, DRAIN, 5, EA, A, 5, 0, 1, 0), (0.0, DRAIN, 2, EA, A, 4, 0, 2, 0),
                         (0.0, DRAIN, 4, EA, A, 3, 0, 3, 0), (0.0, DRAIN, 3, EA, A, 2, 0, 4, 0),
                         (0.0, SPOT, 2, EA, A, 2, 0, 3, 1), (0.0, SPOT, 3, EA, A, 2, 0, 2, 2),
                         (0.0, SPOT, 4, EA, A, 2, 0, 1, 3), (0.0, SPOT, 5, EA, A, 2, 0, 0, 4),
                         (60.0, DRAIN, 11, EB, B, 5, 0, 1, 4), (60.0, DRAIN, 8, EB, B, 4, 0, 2, 4),
                         (60.0, DRAIN, 10, EB, B, 3, 0, 3, 4),
                         (60.0, RECLAIM, 2, EA, A, 2, 1, 0, 3), (60.0, RECLAIM, 3, EA, A, 2, 2, 0, 2),
                         (60.0, SPOT, 8, EB, B, 3, 0, 2, 3), (60.0, SPOT, 10, EB, B, 3, 0, 1, 4),
                         (60.0, SPOT, 11, EB, B, 3, 0, 0, 5),
                         (90.0, READY, 2, EA, A, 3, 1, 0, 5), (90.0, READY, 3, EA, A, 4, 0, 0, 5),
                         (120.0, RECLAIM, 4, EA, A, 4, 1, 0, 4), (120.0, RECLAIM, 5, EA, A, 4, 2, 0, 3),
                         (120.0, DONATE, 8, EA, B, 4, 3, 0, 2), (120.0, DONATE, 10, EA, B, 4, 4, 0, 1),
                         (150.0, READY, 4, EA, A, 5, 3, 0, 1), (150.0, READY, 5, EA, A, 6, 2, 0, 1),
                         (165.0, READY, 8, EA, A, 7, 1, 0, 1), (165.0, READY, 10, EA, A, 8, 0, 0, 1),
                         (180.0, DONATE, 11, EA, B, 8, 1, 0, 0), (225.0, READY, 11, EA, A, 9, 0, 0, 0)]
    # every move is a tick's, or a ready time tick + reclaim_delay / spin_up (no reactive step under LT-I)
    for r in rows(res):
        assert r[0] % 60 == 0 or r[1] == READY


def test_lt_i_plan_above_the_spot_pool_is_capped(tmp_path):
    _, res = _lti(tmp_path, {"level": 1, "delays": "lockout"})
    # as the lockout case up to tick 2's reclaims; then level 1 takes only A's own (now empty) spot list: A stays
    # at 6 for the plans of 8 and 9, B's 3 spot instances stay unused
    assert rows(res) == [(0.0, SPOT, 5, EA, A, 5, 0, 0, 1), (0.0, SPOT, 2, EA, A, 4, 0, 0, 2),
                         (0.0, SPOT, 4, EA, A, 3, 0, 0, 3), (0.0, SPOT, 3, EA, A, 2, 0, 0, 4),
                         (60.0, SPOT, 11, EB, B, 5, 0, 0, 5), (60.0, SPOT, 8, EB, B, 4, 0, 0, 6),
                         (60.0, SPOT, 10, EB, B, 3, 0, 0, 7),
                         (60.0, RECLAIM, 5, EA, A, 3, 0, 0, 6), (60.0, RECLAIM, 2, EA, A, 4, 0, 0, 5),
                         (120.0, RECLAIM, 4, EA, A, 5, 0, 0, 4), (120.0, RECLAIM, 3, EA, A, 6, 0, 0, 3)]
    assert counts_after(res, 1e9) == [6, 3]


# ---------------------------------------------------------------------------------------------------------------
# 2. deferred: planned scale-ups one per arrival at the endpoint, after the lock-out; downs at the tick

DEFERRED_EVENTS = [(5, A), (15, B), (65, A), (70, A), (75, B), (85, A), (100, A), (125, A), (130, A), (135, B)]


@pytest.mark.parametrize("arbiter", ["deferred", "lt-i"])
def test_deferred_scales_up_on_arrivals(tmp_path, arbiter):
    f = write_forecast(tmp_path / "f.parquet", {"A": planned("A", [2, 4, 3]), "B": planned("B", [6, 6, 6])})
    cfg = from_dict(config_dict(AB_EPS, {"level": 2, "delays": "lockout", "reclaim_delay": 12.0},
                                planning=planning(f, arbiter)))
    res = run(cfg, trace([(float(t), *TINY, m, I, 0) for t, m in DEFERRED_EVENTS], models=("A", "B")))
    downs = [(0.0, SPOT, 5, EA, A, 5, 0, 0, 1), (0.0, SPOT, 2, EA, A, 4, 0, 0, 2),
             (0.0, SPOT, 4, EA, A, 3, 0, 0, 3), (0.0, SPOT, 3, EA, A, 2, 0, 0, 4)]
    if arbiter == "deferred":
        # tick 0: A 6 -> 2 at once (list [5, 2, 4, 3]); A's arrival at 5 has no planned change.
        # tick 1 (60): A's plan 4: 2 planned ups kept. A's arrival at 65: reclaim 5 (lock-out until 65 + 12 = 77);
        # 70: locked; 75 is B's (its changes are 0); 85: reclaim 2 (lock 97); 100: no change left.
        # tick 2 (120): A 4 -> 3 at the tick. A's groups: [0,1] + 5 -> [0,1,5], + 2 -> [0,1][5,2]; leaving
        # [0,1][5,2]: 2 leaves and 5 is appended to [0,1].
        assert rows(res) == downs + [(65.0, RECLAIM, 5, EA, A, 3, 0, 0, 3), (85.0, RECLAIM, 2, EA, A, 4, 0, 0, 2),
                                     (120.0, SPOT, 2, EA, A, 3, 0, 0, 3)]
    else:   # LT-I: both reclaims at the tick itself
        assert rows(res) == downs + [(60.0, RECLAIM, 5, EA, A, 3, 0, 0, 3), (60.0, RECLAIM, 2, EA, A, 4, 0, 0, 2),
                                     (120.0, SPOT, 2, EA, A, 3, 0, 0, 3)]


# ---------------------------------------------------------------------------------------------------------------
# 3. LT-U: planned ups only above scaling.upper; with no planned change left, an up above planning.override

#: A's requests in the AC set-up (all model A): tiny probes and large requests (BIG: 9000 KV tokens from the prompt,
#: 9300 in decode, 300 decode iterations ~ 75 s; MED: 4000 / 4300)
LTU_EVENTS = [(5, TINY), (65, TINY), (70, BIG), (71, BIG), (75, TINY), (80, TINY), (90, TINY), (91, BIG),
              (95, TINY), (96, MED), (96.5, MED), (100, TINY), (110, TINY)]


def _ltu(tmp_path, override):
    f = write_forecast(tmp_path / "f.parquet", {"A": planned("A", [2, 3]), "C": planned("C", [2, 2])})
    cfg = from_dict(config_dict(AC_EPS, {"level": 2, "delays": "lockout", "reclaim_delay": 10.0},
                                planning=planning(f, "lt-u", override=override)))
    return run(cfg, trace([(float(t), p, o, A, I, 0) for t, (p, o) in LTU_EVENTS], models=("A", "C")))


@pytest.mark.parametrize("override", [0.8, 0.86, 0.87])
def test_lt_u_scales_up_with_utilisation_and_the_override(tmp_path, override):
    res = _ltu(tmp_path, override)
    # tick 0: A 4 -> 2 at once (3 then 2 into the spot list [3, 2]); 5: no planned change, u = 0: nothing (LT-U
    # has no reactive scale-down).  tick 1 (60): A's plan 3: one planned up.
    # 65: u = 0 <= upper 0.5: kept.  70: BIG -> 0 (u = 0).  71: BIG -> 1; u = 9300 / (2 ROOM) = 0.33: kept.
    # 75: u = 18,600 / 28,075 = 0.66 > 0.5: the planned up, reclaim 3 (joins at once; lock until 85).
    # 80: locked.  90: u = 18,600 / (3 ROOM) = 0.44, no planned change, below the override: nothing.
    # 91: BIG -> 3 (its scheduler count 0).  95: u = 27,900 / 42,113 = 0.66 > upper, but no planned change and
    # below the override: nothing.  96: MED -> 1 (0 still holds the tiny request of 95, whose prompt ends at
    # 96.25); 96.5: MED -> 0 (1's count is 4000).
    # 100: u = (27,900 + 8,600) / 42,113 = 0.8667 (exactly 36,500 KV_A / (3 ROOM)): above an override of 0.8 or
    # 0.86, reclaim 2; not above 0.87.
    base = [(0.0, SPOT, 3, EA, A, 3, 0, 0, 1), (0.0, SPOT, 2, EA, A, 2, 0, 0, 2),
            (75.0, RECLAIM, 3, EA, A, 3, 0, 0, 1)]
    over = [(100.0, RECLAIM, 2, EA, A, 4, 0, 0, 0)] if override < 0.8667 else []
    assert rows(res) == base + over
    assert list(res.prompt_instance[[7, 9, 10]]) == [3, 1, 0]     # BIG at 91, the two MEDs
    assert res.completed.all()


def test_lt_u_makes_a_leftover_planned_scale_down_when_utilisation_is_low(tmp_path):
    """A tick that cannot go down to its plan (the serving instances are at min_instances while one starts) leaves
    a planned scale-down that LT-U makes at the first arrival with utilisation below scaling.lower."""
    f = write_forecast(tmp_path / "f.parquet", {"A": planned("A", [2, 3, 2]), "C": planned("C", [2, 2, 2])})
    cfg = from_dict(config_dict(AC_EPS, {"level": 2, "delays": "real", "reclaim_delay": 30.0, "spin_down": 0.0},
                                planning=planning(f, "lt-u")))
    big = (8999, 101)   # 100 decode iterations
    ev = [(5, TINY), (100, big), (101, big), (105, TINY), (125, TINY), (140, TINY), (150, TINY), (160, TINY)]
    res = run(cfg, trace([(float(t), p, o, A, I, 0) for t, (p, o) in ev], models=("A", "C")))
    # tick 0: A 4 -> 2: 3, 2 drain and (idle, spin_down 0) enter the spot list at 0 in instance order: [2, 3].
    # tick 1 (60): one planned up.  100, 101: BIGs (u 0, 0.33).  105: u = 0.66 > 0.5: reclaim 2 (ready 135).
    # tick 2 (120): plan 2 but serving 2 + starting 1 = 3: the serving instances are at min_instances, so the
    # planned change -1 is kept.  125: u = 0.66 (the BIGs decode until ~127): not below 0.25, and the planned
    # change is a down: nothing.  135: 2 is ready ([0,1,2]).  140: the BIGs are done, u = 0 < 0.25: the planned
    # down, 2 leaves (drain, spot at once: idle).  150, 160: no planned change: nothing.
    assert rows(res) == [(0.0, DRAIN, 3, EA, A, 3, 0, 1, 0), (0.0, DRAIN, 2, EA, A, 2, 0, 2, 0),
                         (0.0, SPOT, 2, EA, A, 2, 0, 1, 1), (0.0, SPOT, 3, EA, A, 2, 0, 0, 2),
                         (105.0, RECLAIM, 2, EA, A, 2, 1, 0, 1), (135.0, READY, 2, EA, A, 3, 0, 0, 1),
                         (140.0, DRAIN, 2, EA, A, 2, 0, 1, 1), (140.0, SPOT, 2, EA, A, 2, 0, 0, 2)]


# ---------------------------------------------------------------------------------------------------------------
# 4. LT-UA: the ratio override against the next minute's forecast

#: minute 0 plans A 2 (and C 2); minutes 1-4 are the forecasts the ratio compares with: A 1000, 1000, none (null),
#: 0 tokens per minute; C's are huge (C never overrides)
LTUA_FORECAST = {"A": [1.5 * TPS["A"], 1000.0, 1000.0, None, 0.0], "C": [1.5 * TPS["C"]] * 5}
#: (arrival, prompt_size, model); all 1-token outputs
LTUA_EVENTS = [(5, 1000, A), (10, 1000, A), (15, 1, A), (62, 5000, C), (66, 1, A), (130, 5000, A), (190, 1, A),
               (200, 1, A)]
LTUA_ROWS = [(0.0, SPOT, 3, EA, A, 3, 0, 0, 1), (0.0, SPOT, 2, EA, A, 2, 0, 0, 2),
             (15.0, RECLAIM, 3, EA, A, 3, 0, 0, 1), (190.0, RECLAIM, 2, EA, A, 4, 0, 0, 0)]


def _ltua(tmp_path, shift=0.0, ratio=2.0):
    f = write_forecast(tmp_path / f"ua{shift:g}.parquet", LTUA_FORECAST, first=int(shift // 60))
    pp = planning(f, "lt-ua", ratio=ratio, interval=3600, train_until=shift)
    cfg = from_dict(config_dict(AC_EPS, {"level": 2, "delays": "lockout", "reclaim_delay": 10.0}, planning=pp))
    history = [(100.0, 77, 1, A, I, 0), (shift - 60.0, 50, 1, C, I, 0)] if shift else []
    tr = trace(history + [(t + shift, p, 1, m, I, 0) for t, p, m in LTUA_EVENTS], models=("A", "C"))
    return cfg, tr, run(cfg, tr)


def test_lt_ua_ratio_override_against_the_next_minutes_forecast(tmp_path):
    _, _, res = _ltua(tmp_path)
    # one tick (interval 3600): A 4 -> 2 at 0 (spot [3, 2]); afterwards no planned change is left, so each A arrival
    # compares the prompt tokens reaching (r0, A) in the last 60 whole seconds (itself included) with ratio 2 x the
    # forecast of the next minute, floor(t / 60) + 1:
    # 5: 1000 > 2 x 1000? no.  10: 2000 > 2000? no (strict).  15: 2001 > 2000: reclaim 3 (lock until 25).
    # 62: C's 5000 tokens count for (r0, C) only (C's forecast is huge).  66: seconds 7..66 hold A's 1000 (at 10)
    # + 1 (15) + 1 = 1002 <= 2 x 1000 (minute 2): nothing (the 1000 at 5 left the window; C's tokens never count).
    # 130: minute 3 has no forecast (null): no override, whatever the tokens.  190: minute 4's forecast is 0: any
    # token exceeds it: reclaim 2.  200: A's spot list is empty.
    assert rows(res) == LTUA_ROWS


def test_lt_ua_ratio_is_a_threshold(tmp_path):
    _, _, res = _ltua(tmp_path, ratio=2.002)
    # 15: 2001 <= 2 x 1000 x 1.001: no override there; 66: 1002; 130: no forecast; 190: the zero forecast, reclaim 3
    # (A's list [3, 2]; lock until 200); 200: 2 tokens in the window > 0 again, and the lock-out has just ended
    # (200 < 200 is false): reclaim 2
    assert rows(res) == LTUA_ROWS[:2] + [(190.0, RECLAIM, 3, EA, A, 3, 0, 0, 1),
                                         (200.0, RECLAIM, 2, EA, A, 4, 0, 0, 0)]


# ---------------------------------------------------------------------------------------------------------------
# 5. post-processing strategies and which forecasts a tick may use

#: raw plans of ticks 0..5 (t = 0 .. 300; the last arrival at 355): A 2, 5, 3, 3, 6, 2; B 2, 2, 2, 2, 2, 10
STRATEGY_RAW = {"A": [2, 5, 3, 3, 6, 2], "B": [2, 2, 2, 2, 2, 10]}
#: applied targets (docs/planning.md "Post-processing", a[-1] = the initial 6, K = 2), per endpoint
STRATEGY_TARGETS = {
    "immediate": ([2, 5, 3, 3, 6, 2], [2, 2, 2, 2, 2, 10]),
    # A: k0 initial 6; k1 2, 5 both below 6 -> max 5; k2 5 not below 5 -> 5; k3 3, 3 below -> 3; k4 3, 6 mixed;
    # k5 6, 2 mixed -> 3.  B: k0 6; k1 -> 2; k5 2, 10 mixed -> 2
    "delay_changes": ([6, 5, 5, 3, 3, 3], [6, 2, 2, 2, 2, 2]),
    # A: k0 2 < 6 -> min(6, 2) = 2; k1 up 5; k2 3 < 5 -> min(5, max(5, 3)) = 5; k3 min(5, max(3, 3)) = 3; k4 up 6;
    # k5 min(6, max(6, 2)) = 6, but with B's 10 the region needs 16 > 12: the repair removes 4 instances from the
    # endpoint furthest above its plan (A: 6 - 2 = 4; B: 0) -> A 2.  B: 2, ..., 2, then up 10
    "keep_maximum_instances": ([2, 5, 5, 3, 6, 2], [2, 2, 2, 2, 2, 10]),
    # A: k0 2; k1 5 > 2 -> max(2, min(2, 5)) = 2; k2 max(2, min(5, 3)) = 3; k3 3 <= 3 -> 3; k4 max(3, min(3, 6)) = 3;
    # k5 2 <= 3 -> 2.  B: k5 10 > 2 -> max(2, min(2, 10)) = 2
    "keep_minimum_instances": ([2, 2, 3, 3, 3, 2], [2, 2, 2, 2, 2, 2]),
}


def _strategy_cfg(tmp_path, strategy, arbiter="lt-i"):
    f = write_forecast(tmp_path / "s.parquet", {m: planned(m, c) for m, c in STRATEGY_RAW.items()})
    return from_dict(config_dict(AB_EPS, {"level": 2, "delays": "lockout"},
                                 planning=planning(f, arbiter, strategy=strategy)))


@pytest.mark.parametrize("strategy", list(STRATEGY_TARGETS))
def test_strategies_change_the_applied_targets(tmp_path, strategy):
    targets, _, _ = planned_targets(_strategy_cfg(tmp_path, strategy), ab_trace(36))
    assert [targets[:, EA].tolist(), targets[:, EB].tolist()] == list(STRATEGY_TARGETS[strategy])


@pytest.mark.parametrize("strategy", ["keep_maximum_instances", "delay_changes"])
def test_lt_i_reaches_each_strategy_target_after_its_tick(tmp_path, strategy):
    res = run(_strategy_cfg(tmp_path, strategy), ab_trace(36))
    a, b = STRATEGY_TARGETS[strategy]
    # lockout delays, level 2: every target fits the region, drained instances are spot at once and can be
    # donated within the same tick (e.g. keep_maximum's tick 5: A 6 -> 2 first, then B 2 -> 10 takes its own 4
    # spot instances and 4 of A's)
    for k in range(6):
        assert counts_after(res, 60.0 * k) == [a[k], b[k]], k
    assert {r[0] for r in rows(res)} <= {60.0 * k for k in range(6)}
    assert len(rows(res)) == sum(abs(np.diff([6] + list(x))).sum() for x in (a, b))


def test_a_tick_uses_forecasts_issued_by_then_and_the_demand_column(tmp_path):
    # window [0, 120]: tick t sees the minutes t/60 .. t/60 + 2 issued at or before t.  A's minute 2 (9.5 TPS,
    # 10 instances) is issued only at 120; its upper bounds are 2 TPS above the predictions everywhere.
    pred = {"A": planned("A", [2, 2, 10, 2, 2]), "B": planned("B", [2] * 5)}
    upper = {"A": [v + 2.0 * TPS["A"] for v in pred["A"]], "B": pred["B"]}
    issued = {"A": [0, 0, 120, 120, 120], "B": [0] * 5}
    f = write_forecast(tmp_path / "w.parquet", pred, upper, issued)
    tr = ab_trace(13)   # the last arrival at 125: ticks 0, 60, 120
    for demand, expect in (("peak", [2, 2, 10]), ("upper", [4, 4, 10])):
        cfg = from_dict(config_dict(AB_EPS, {"level": 2},
                                    planning=planning(f, "lt-i", window=[0, 120], demand=demand)))
        targets, fc, _ = planned_targets(cfg, tr)
        # peak: ticks 0 and 60 see only minutes 0-1 (minutes 2-3 are issued at 120) of 1.5 TPS -> 2; tick 120 sees
        # 9.5 TPS -> 10.  upper: 3.5 TPS -> 4 at ticks 0 and 60; tick 120: 11.5 TPS, 12 instances, but A 12 + B's
        # floor 2 > 12: the shortage program minimises A's unmet fraction 1 - n / 11.5 (B's is 0 from 2 on): 10
        assert targets[:, EA].tolist() == expect, demand
        # the kernel's forecast for LT-UA is the point forecast per minute, whatever the demand column, known
        # while the minute before it runs: minute m's forecast only if issued by 60 (m - 1) (else NaN: minutes 0, 2)
        want = [p if iss <= 60.0 * (m - 1) else np.nan for m, (p, iss) in enumerate(zip(pred["A"], issued["A"]))]
        np.testing.assert_array_equal(fc[:, 0], want)


# ---------------------------------------------------------------------------------------------------------------
# 6. history: train_until = T

def test_history_is_not_simulated_and_times_count_from_train_until(tmp_path):
    T = 3600.0
    cfg, tr, res = _ltua(tmp_path, shift=T)
    # the trace: two history requests (100, 3540) then LTUA_EVENTS shifted by T: the run is those, at their
    # unshifted times, with the same moves (the plans tick from train_until; the forecast's minutes from T / 60)
    keep = tr.arrival >= T
    assert len(res.trace.arrival) == int(keep.sum()) == len(LTUA_EVENTS)
    np.testing.assert_array_equal(res.trace.arrival, tr.arrival[keep] - T)
    np.testing.assert_array_equal(res.trace.prompt_size, tr.prompt_size[keep])
    assert rows(res) == LTUA_ROWS
    assert res.completed.all() and res.end_clock < 210.0
    # GPU-hours cover the simulated period only: 6 TP2 instances for end_clock seconds in all states together,
    # the serving ones below that
    tot = run_scaling_totals(res)
    gpu_s = 6 * 2 * res.end_clock
    assert sum(tot[k] for k in ("gpu_hours_serving", "gpu_hours_starting", "gpu_hours_draining",
                                "gpu_hours_spot")) * 3600 == pytest.approx(gpu_s, rel=1e-12)
    assert 0 < tot["gpu_hours_serving"] * 3600 <= gpu_s
    for f in ("serving_time", "starting_time", "draining_time", "spot_time"):
        assert (getattr(res, f) >= 0).all()
    np.testing.assert_allclose(res.serving_time + res.starting_time + res.draining_time + res.spot_time,
                               res.end_clock)


def test_history_dev_requests_count_in_the_first_plan(tmp_path):
    # the dev term at tick t looks at the dev requests of the whole trace (history included) arriving in the
    # trailing planning interval [t - 60, t] (the code's lookback is planning.interval, the Planning field's
    # comment; SageServe's hour with the default interval): a dev request of 50,000 prompt tokens at 3570 s with
    # dev_fraction 10 adds 500,000 tokens per minute to A's 1.5 TPS_A at tick 3600:
    # (1.5 x 225,500.1 + 500,000) / 225,500.1 = 3.72 -> 4 instances; at tick 3660 it is out of the window: 2
    T = 3600.0
    f = write_forecast(tmp_path / "h.parquet", {"A": planned("A", [2] * 3), "C": planned("C", [2] * 3)}, first=60)
    d = config_dict(AC_EPS, {"level": 1}, planning=planning(f, "lt-i", train_until=T, dev_fraction=10.0))
    rows_ = [(3570.0, 49_999, 1, A, 2, 0), (3605.0, 99, 1, A, I, 0), (3700.0, 99, 1, A, I, 0)]
    targets, _, start = planned_targets(from_dict(d), trace(rows_, models=("A", "C")))
    assert start == T and targets[:, EA].tolist() == [4, 2]    # ticks 3600, 3660 (the last arrival at 3700)
    rows_[0] = (3570.0, 49_999, 1, A, I, 0)                   # the same request as prod: no dev term
    targets, _, _ = planned_targets(from_dict(d), trace(rows_, models=("A", "C")))
    assert targets[:, EA].tolist() == [2, 2]


def test_planning_start_before_the_history_end(tmp_path):
    T = 3600.0
    f = write_forecast(tmp_path / "s.parquet", {"A": planned("A", [2] * 80), "C": planned("C", [2] * 80)})
    d = config_dict(AC_EPS, {"level": 2, "delays": "lockout"},
                    planning=planning(f, "lt-i", train_until=T, start=0.0, interval=600))
    tr = trace([(t, *TINY, A, I, 0) for t in (100.0, 3605.0, 3700.0, 4300.0)], models=("A", "C"))
    try:
        res = run(from_dict(d), tr)
    except InputError as e:      # rejecting the configuration would be fine too
        assert "planning.start" in str(e)
        return
    # otherwise: no move before the run starts, no negative time in any state
    assert all(r[0] >= 0 for r in rows(res))
    for f in ("serving_time", "starting_time", "draining_time", "spot_time"):
        assert (getattr(res, f) >= 0).all(), f


# ---------------------------------------------------------------------------------------------------------------
# 7. a batch of planned configurations equals separate runs

def _batch_trace():
    rng = np.random.default_rng(5)
    out = []
    t = 0.0
    while t < 400.0:
        burst = (t // 60) % 2 == 1
        t += rng.exponential(0.4 if burst else 3.0)
        m = int(rng.random() < 0.3)
        out.append((round(t, 3), int(rng.integers(50, 4000)), int(rng.integers(1, 60)), m, I, 0))
    return trace(out, models=("A", "C"))


def test_batch_of_planned_configurations_equals_separate_runs(tmp_path):
    f = write_forecast(tmp_path / "b.parquet", {"A": planned("A", [2, 3, 2, 4, 2, 3, 2, 3]),
                                                "C": planned("C", [2, 3, 2, 2, 3, 2, 2, 2])})
    sc = {"level": 2, "reclaim_delay": 3.0, "spin_up": 5.0, "spin_down": 0.5}
    variants = [("lt-i", "immediate", {}), ("deferred", "keep_maximum_instances", {}),
                ("lt-u", "delay_changes", {"override": 0.3}), ("lt-ua", "keep_minimum_instances", {"ratio": 0.5}),
                ("none", "immediate", {}), ("lt-i", "keep_maximum_instances", {"train_until": 60}),
                ("lt-u", "immediate", {"train_until": 60})]
    cfgs = [from_dict(config_dict(AC_EPS, sc, seed=3, planning=planning(f, arb, strategy=s, **kw)))
            for arb, s, kw in variants]
    tr = _batch_trace()
    batch = run_batch(cfgs, tr)
    logs = []
    for cfg, got in zip(cfgs, batch):
        alone = run(cfg, tr)
        for k in REQUEST_FIELDS:
            np.testing.assert_array_equal(getattr(got, k), getattr(alone, k), err_msg=k)
        for k in ("scaling_log", "endpoint_time", "region_spot_time", "serving_time", "spot_time"):
            np.testing.assert_array_equal(getattr(got, k), getattr(alone, k), err_msg=k)
        assert got.end_clock == alone.end_clock
        logs.append(got.scaling_log.tobytes())
    assert len(set(logs)) == len(cfgs)    # every variant moved instances differently


# ---------------------------------------------------------------------------------------------------------------
# 8. bad [planning] values: one-line InputErrors naming the key

@pytest.mark.parametrize("scaling, pp, key", [
    ({"level": 1}, {"arbiter": "lt-x", "forecast": "f.parquet"}, "planning.arbiter"),
    ({"level": 1}, {"arbiter": "lt-i", "forecast": "f.parquet", "window": [100, 50]}, "planning.window"),
    ({"level": 1}, {"arbiter": "lt-i", "forecast": "f.parquet", "window": [100]}, "planning.window"),
    ({"level": 1}, {"arbiter": "lt-i", "forecast": "f.parquet", "window": 600}, "planning.window"),
    ({"level": 0}, {"arbiter": "lt-i", "forecast": "f.parquet"}, "planning.arbiter"),
    (None, {"arbiter": "lt-u", "forecast": "f.parquet"}, "planning.arbiter"),
    ({"level": 1}, {"arbiter": "lt-ua"}, "planning.forecast"),
    ({"level": 1}, {"arbiter": "lt-ua", "train_until": 90}, "planning.train_until"),
    ({"level": 1}, {"arbiter": "lt-i", "train_until": 120, "strategy": "evenly"}, "planning.strategy"),
    ({"level": 1}, {"arbiter": "lt-i", "train_until": 120, "throughput": "roofline"}, "planning.throughput"),
    ({"level": 1}, {"arbiter": "lt-i", "train_until": 120, "interval": 10}, "planning.interval"),
    ({"level": 1}, {"arbiter": "lt-i", "train_until": 120, "forecast": 3}, "planning.forecast"),
    ({"level": 1}, {"arbiter": "lt-i", "train_until": 120, "horizon": 3}, "planning.horizon"),
])
def test_bad_planning_values_are_one_line_errors(scaling, pp, key):
    with pytest.raises(InputError) as e:
        from_dict(config_dict(AC_EPS, scaling, planning=pp))
    assert e.value.field == key and key in str(e.value) and "\n" not in str(e.value)


def _run_error(d, tr):
    with pytest.raises(InputError) as e:
        run(from_dict(d), tr)
    assert "\n" not in str(e.value)
    return e.value


def test_bad_planning_inputs_at_run_time(tmp_path):
    tr = trace([(5.0, *TINY, A, I, 0)], models=("A", "C"))
    good = write_forecast(tmp_path / "f.parquet", {"A": planned("A", [2]), "C": planned("C", [2])})
    # SageServe's throughputs exist for models A-D only
    d = config_dict([endpoint("A", 4), endpoint("llama2-70b", 2)], {"level": 1}, planning=planning(good, "lt-i"))
    e = _run_error(d, trace([(5.0, *TINY, 0, I, 0)], models=("A", "llama2-70b")))
    assert e.field == "planning.throughput" and "llama2-70b" in str(e)
    # a missing forecast file; a forecast without the planning method's rows
    e = _run_error(config_dict(AC_EPS, {"level": 1}, planning=planning(tmp_path / "no.parquet", "lt-i")), tr)
    assert e.field == "planning.forecast" and "no.parquet" in str(e)
    e = _run_error(config_dict(AC_EPS, {"level": 1}, planning=planning(good, "lt-i", method="naive")), tr)
    assert e.field == "planning.method" and "naive" in str(e)
    # a forecast file without the columns the plans read: names the file and the column
    bad = tmp_path / "bad.parquet"
    pl.read_parquet(good).drop("upper").write_parquet(bad)
    e = _run_error(config_dict(AC_EPS, {"level": 1}, planning=planning(bad, "lt-i")), tr)
    assert "bad.parquet" in str(e) and "upper" in str(e)
    # a trace that is all history
    e = _run_error(config_dict(AC_EPS, {"level": 1}, planning=planning(good, "lt-i", train_until=600)), tr)
    assert e.field == "planning.train_until"


def test_forecast_file_missing_columns_names_the_planning_key(tmp_path):
    good = write_forecast(tmp_path / "f.parquet", {"A": planned("A", [2]), "C": planned("C", [2])})
    bad = tmp_path / "bad.parquet"
    pl.read_parquet(good).drop("upper").write_parquet(bad)
    e = _run_error(config_dict(AC_EPS, {"level": 1}, planning=planning(bad, "lt-i")),
                   trace([(5.0, *TINY, A, I, 0)], models=("A", "C")))
    assert "planning.forecast" in str(e)


# ---------------------------------------------------------------------------------------------------------------
# 9. end to end from the CLI

def test_cli_run_with_a_planning_table(tmp_path):
    write_forecast(tmp_path / "fc.parquet", {m: planned(m, c) for m, c in LTI_PLANS.items()})
    _write_trace(ab_trace(), tmp_path / "t.parquet")
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "planned"\n[[region]]\nname = "r0"\n'
                   + "".join(f'[[endpoint]]\nregion = "r0"\nmodel = "{m}"\ninstances = 6\ntensor_parallel = 8\n'
                             for m in "AB")
                   + '[performance_model]\nkind = "constant"\nprompt_time = 1.0\ntoken_time = 0.25\n'
                   + '[trace]\npath = "t.parquet"\n[scaling]\nlevel = 2\ndelays = "lockout"\n'
                   + '[planning]\narbiter = "lt-i"\nforecast = "fc.parquet"\nthroughput = "sageserve"\n'
                   + 'interval = 60\nwindow = [0, 0]\n')
    ok(invoke("run", cfg, "--out", tmp_path / "out"))
    ev = pl.read_parquet(tmp_path / "out" / "scaling_events.parquet")
    # the moves of test_lt_i_applies_each_plan_at_its_tick_lockout (the forecast path relative to the config)
    assert ev["time"].to_list() == [0.0] * 4 + [60.0] * 5 + [120.0] * 4 + [180.0]
    assert ev["action"].cast(pl.String).to_list() == ["spot"] * 7 + ["reclaim"] * 4 + ["donate"] * 3
    assert ev["instance"].to_list() == [5, 2, 4, 3, 11, 8, 10, 5, 2, 4, 3, 11, 8, 10]
    eps = pl.read_parquet(tmp_path / "out" / "endpoints.parquet")
    assert eps["final_instances"].to_list() == [9, 3]


def test_cli_forecast_then_run_with_one_hour_of_history(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / "cache"))
    tr = tmp_path / "g.parquet"
    ok(invoke("trace", "gen", "--sizes", "fixed:500,20", "--rate", "2", "--duration", "4200", "--model", "A",
              "--region", "r0", "--regions", "r0", "--workload", "prod", "--seed", "3", "--out", tr))
    fc = tmp_path / "fc.parquet"
    ok(invoke("forecast", tr, "--train-until", "3600", "--out", fc, "--method", "arima", "--quiet"))
    table = pl.read_parquet(fc)
    arima = table.filter(pl.col("method") == "arima")
    assert arima["minute"].to_list() == list(range(60, 70)) and (arima["issued"] == 3600).all()
    cfg = tmp_path / "c.toml"
    cfg.write_text('name = "history"\n[[region]]\nname = "r0"\n[[endpoint]]\nregion = "r0"\nmodel = "A"\n'
                   'instances = 4\n[trace]\npath = "g.parquet"\n[scaling]\nlevel = 1\n'
                   '[planning]\narbiter = "lt-u"\nforecast = "fc.parquet"\ntrain_until = 3600\nwindow = [0, 600]\n')
    ok(invoke("run", cfg, "--out", tmp_path / "out"))
    req = pl.read_parquet(tmp_path / "out" / "requests.parquet")
    gen = pl.read_parquet(tr)
    later = gen.filter(pl.col("arrival_timestamp") >= 3600)
    assert len(req) == len(later) > 1000
    # the requests arriving at or after 3600 s, their times counted from there
    np.testing.assert_array_equal(req["arrival"].to_numpy(), later["arrival_timestamp"].to_numpy() - 3600.0)
    # one tick at 3600 (run time 0): A's demand, the peak forecast of minutes 60-70 (~60,000 prompt tokens per
    # minute), needs one instance at A's model throughput (hundreds of thousands per minute): the floor, 2
    from sweepsim.config.run import load_config
    from sweepsim.workload.trace import load_trace
    targets, _, start = planned_targets(load_config(cfg), load_trace(tr))
    assert start == 3600.0 and targets.tolist() == [[2]]
    ev = pl.read_parquet(tmp_path / "out" / "scaling_events.parquet")
    # (real delays: the two leave at 0 and drain; nothing else moves them before the run's first events)
    downs = ev.filter((pl.col("time") == 0.0) & (pl.col("action") == "drain"))
    assert downs["serving"].to_list() == [3, 2] and (ev.filter(pl.col("action") == "drain")["time"] == 0.0).all()


def test_lt_i_gives_instances_a_tick_drained_to_the_endpoints_still_short_of_their_plan(tmp_path):
    # tick 0 plans A 6 -> 2 and B 6 -> 10 (level 2, real delays, spin_down 0): A's 4 leave and drain (idle: they
    # enter the spot pool at 0, after the tick); B, short of 4 with nothing in the pool at the tick, takes each one
    # as it enters the pool (a donation), ready at 0 + spin_up = 45
    f = write_forecast(tmp_path / "f.parquet", {"A": planned("A", [2]), "B": planned("B", [10])})
    d = config_dict(AB_EPS, {"level": 2, "delays": "real", "spin_up": 45.0, "reclaim_delay": 30.0},
                    planning=planning(f, "lt-i"))
    res = run(from_dict(d), ab_trace(3))
    donated = [r for r in rows(res) if r[1] == DONATE]
    assert len(donated) == 4 and all(r[0] == 0.0 and r[3] == EB for r in donated)
    assert sorted(r[0] for r in rows(res) if r[1] == READY) == [45.0] * 4
    assert counts_after(res, 1e9) == [2, 10]
