"""Traces, issue 12: size limit of generated traces, bad numbers, the trace cache (user cache directory, SHA-256
sidecars, regeneration of corrupt files), resolving specs without generating them (``no_generation``), and
output locations checked before anything is generated.

Every refusal must happen before anything is allocated: the tests that ask for billions of requests guard the
generator's drawing functions, so a broken check fails the test instead of exhausting the machine's memory.
"""
import hashlib
import os
import time
from pathlib import Path

import numpy as np
import pytest

import sweepsim
import sweepsim.workload.cache as tcache
import sweepsim.plots.trace as tplot
import sweepsim.workload.sampling as tsample
import sweepsim.workload.spec as tspec
from sweepsim.config.run import load_config
from sweepsim.errors import InputError
from sweepsim.workload.trace import load_trace
from tests.cli_helpers import assert_input_error, invoke, ok

PROJECT = Path(sweepsim.__file__).resolve().parent.parent
CODE = PROJECT / "traces" / "azure2023" / "azure_llm_2023_code.csv"
LIMIT_HINT = ("raise it with --max-requests, or SWEEPSIM_MAX_REQUESTS",)
CONFIG = """model = "llama2-70b"
[cluster]
dgx-h100 = 1

[trace]
{trace}
"""


@pytest.fixture(autouse=True)
def trace_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(tcache.CACHE_ENV, str(cache))
    monkeypatch.delenv(tsample.MAX_REQUESTS_ENV, raising=False)
    return cache


@pytest.fixture
def no_big_draws(monkeypatch):
    """Fail (instead of allocating) if the generator draws or replays more than 10M requests at once."""
    gaps, replay = tsample._gaps, tsample._replay

    def guarded_gaps(rng, mean, cv, n):
        assert n <= 10_000_000, f"drew {n} gaps"
        return gaps(rng, mean, cv, n)

    def guarded_replay(app, count, duration, src, fld):
        rel, _, _, scale, period = tsample._replay_source(app, src, fld)
        need = tsample._replay_need(len(rel), scale, period, count, duration)
        assert need <= 10_000_000, f"replays {need} rows"
        return replay(app, count, duration, src, fld)

    monkeypatch.setattr(tsample, "_gaps", guarded_gaps)
    monkeypatch.setattr(tsample, "_replay", guarded_replay)


def files(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def gen_args(tmp_path, *args, out="t.parquet"):
    return ["trace", "gen", *args, "--out", tmp_path / out]


# ------------------------------------------------------------------------------------------ size limit

OVER_LIMIT = {
    # name: (options, the option named, the estimate in the message)
    "count": (["--sizes", "azure-code", "--rate", "10", "--count", "500000000"], "--count", "about 500000000"),
    "rate_duration": (["--sizes", "azure-code", "--rate", "1e6", "--duration", "1e6"], "--duration",
                      "about 1200010000010"),
    "huge_rate_duration": (["--sizes", "fixed:1,1", "--rate", "1e300", "--duration", "1e300"], "--duration",
                           "more than 1e300"),
    "huge_count": (["--sizes", "azure-code", "--rate", "1", "--count", str(10 ** 40)], "--count", "about 1e+40"),
    "bursty": (["--sizes", "azure-code", "--rate", "10", "--cv", "1000", "--duration", "1e7"], "--duration",
               "about"),
    "replay_scale": (["--sizes", "azure-code", "--replay", "--scale", "1e5", "--duration", "1e5"], "--duration",
                     "about"),
    "replay_count": (["--sizes", "azure-conv", "--replay", "--count", "30000000"], "--count", "about 30000000"),
    "profile": (["--sizes", "fixed:1,1", "--profile", "PROFILE", "--duration", "1e6"], "--duration", "about"),
    # each application alone is under the limit, both together are not
    "two_apps": (["--app", "0:fixed:1,1:rate=60000", "--app", "1:azure-code:rate=60000", "--duration", "200"],
                 "--duration", "about"),
}


@pytest.mark.parametrize("case", sorted(OVER_LIMIT))
def test_over_limit_refused_before_allocation(tmp_path, monkeypatch, no_big_draws, case):
    args, field, estimate = OVER_LIMIT[case]
    prof = tmp_path / "profile.csv"
    prof.write_text("time,rate\n0,100\n10,50\n")
    monkeypatch.chdir(tmp_path)
    before = files(tmp_path)
    t0 = time.perf_counter()
    res = invoke(*gen_args(tmp_path, *[str(prof) if a == "PROFILE" else a for a in args]))
    assert time.perf_counter() - t0 < 10
    line = assert_input_error(res, f"error: {field}: would generate", estimate, "over the limit of 20000000",
                              *LIMIT_HINT)
    assert line.count("error:") == 1
    assert files(tmp_path) == before


def test_under_limit_two_apps_each_under_half(tmp_path, no_big_draws):
    # the sum of the applications is what counts: each below the limit, the pair above it (see "two_apps")
    spec = tspec.parse_spec({"duration": 200, "apps": [{"sizes": "fixed:1,1", "rate": 60000},
                                                          {"sizes": "azure-code", "rate": 60000}]})
    n, key = tsample.estimate_requests(spec)
    assert key == "duration" and 2 * 60000 * 200 < n < 2 * 1.21 * 60000 * 200
    for app in spec.apps:
        one = tspec.TraceSpec((app,), 0, 200, None)
        assert tsample.estimate_requests(one)[0] < tsample.DEFAULT_MAX_REQUESTS
    with pytest.raises(InputError, match="over the limit of 20000000"):
        tsample.generate_columns(spec)
    # the count caps the estimate
    spec = tspec.parse_spec({"duration": 200, "count": 1000, "apps": [{"sizes": "fixed:1,1", "rate": 60000},
                                                                         {"sizes": "azure-code", "rate": 60000}]})
    assert tsample.estimate_requests(spec) == (1000, "count")


def test_max_requests_option_and_environment(tmp_path, monkeypatch):
    args = ["--sizes", "fixed:10,2", "--rate", "100", "--count", "2000"]
    assert_input_error(invoke(*gen_args(tmp_path, *args, "--max-requests", 1000)), "--count",
                       "about 2000 requests, over the limit of 1000", *LIMIT_HINT)
    ok(invoke(*gen_args(tmp_path, *args, "--max-requests", 2000)))
    assert load_trace(tmp_path / "t.parquet").arrival.shape == (2000,)
    # with a duration, the estimate is what the generator draws: 1.2 x 10000 expected + 10 sigma + 10
    dur = ["--sizes", "fixed:10,2", "--rate", "100", "--duration", "100"]
    assert_input_error(invoke(*gen_args(tmp_path, *dur, "--max-requests", 13_009)), "--duration",
                       "about 13010 requests, over the limit of 13009")
    ok(invoke(*gen_args(tmp_path, *dur, "--max-requests", 13_010)))
    monkeypatch.setenv(tsample.MAX_REQUESTS_ENV, "1000")
    assert_input_error(invoke(*gen_args(tmp_path, *args)), "--count", "over the limit of 1000")
    ok(invoke(*gen_args(tmp_path, *args, "--max-requests", 5000)))  # the option wins over the environment
    monkeypatch.setenv(tsample.MAX_REQUESTS_ENV, "lots")
    assert_input_error(invoke(*gen_args(tmp_path, *args)), "SWEEPSIM_MAX_REQUESTS", "integer >= 1", "'lots'")
    monkeypatch.setenv(tsample.MAX_REQUESTS_ENV, "0")
    assert_input_error(invoke(*gen_args(tmp_path, *args)), "SWEEPSIM_MAX_REQUESTS", "integer >= 1")
    monkeypatch.delenv(tsample.MAX_REQUESTS_ENV)
    assert_input_error(invoke(*gen_args(tmp_path, *args, "--max-requests", 0)), "--max-requests")
    assert tsample.max_requests() == 20_000_000


def test_limit_applies_to_run_config_specs(tmp_path, trace_cache, monkeypatch, no_big_draws):
    cfg = tmp_path / "gen.toml"
    for trace, field in (('sizes = "azure-conv"\nrate = 5\ncount = 500000000', "trace.count"),
                         ('sizes = "azure-conv"\nrate = 1e6\nduration = 1e6', "trace.duration"),
                         ('duration = 1e6\n[[trace.apps]]\nsizes = "azure-code"\nrate = 15\n[[trace.apps]]\n'
                          'sizes = "azure-conv"\nrate = 15', "trace.duration")):
        cfg.write_text(CONFIG.format(trace=trace))
        t0 = time.perf_counter()
        assert_input_error(invoke("run", cfg, "--out", tmp_path / "o"), "gen.toml", field,
                           "over the limit of 20000000", *LIMIT_HINT)
        assert time.perf_counter() - t0 < 10
    assert not trace_cache.exists()
    cfg.write_text(CONFIG.format(trace='sizes = "azure-conv"\nrate = 5\ncount = 1000'))
    monkeypatch.setenv(tsample.MAX_REQUESTS_ENV, "999")
    with pytest.raises(InputError, match="trace.count: would generate about 1000 requests, over the limit of 999"):
        load_config(cfg)
    assert not trace_cache.exists()
    monkeypatch.setenv(tsample.MAX_REQUESTS_ENV, "1000")
    assert len(tcache.load_run_trace(load_config(cfg))) == 1000


def test_count_beyond_duration_draws_only_the_duration(no_big_draws):
    # a count the duration cannot reach does not set the number of draws: the trace is the duration's
    base = {"sizes": "azure-code", "rate": 10.0, "cv": 2.0, "duration": 100.0, "seed": 3}
    spec = tspec.parse_spec({**base, "count": 10 ** 9})
    assert tsample.estimate_requests(spec)[1] == "duration"
    capped = tsample.generate_columns(spec)
    free = tsample.generate_columns(tspec.parse_spec(base))
    assert 800 < len(capped["arrival_timestamp"]) < 1200
    for k in free:
        np.testing.assert_array_equal(np.asarray(capped[k]), np.asarray(free[k]), err_msg=k)
    # a count below the duration's arrivals still gives the first count requests
    first = tsample.generate_columns(tspec.parse_spec({**base, "count": 50}))
    assert len(first["arrival_timestamp"]) == 50
    # replay and rate profiles too
    rep = {"sizes": "azure-code", "replay": True, "scale": 2.0, "duration": 600.0}
    capped = tsample.generate_columns(tspec.parse_spec({**rep, "count": 10 ** 9}))
    free = tsample.generate_columns(tspec.parse_spec(rep))
    np.testing.assert_array_equal(capped["arrival_timestamp"], free["arrival_timestamp"])


def test_unlucky_draw_never_exceeds_the_limit(monkeypatch):
    """Draws beyond the first chunk (when it did not reach the duration) stop at the limit with a clean error."""
    spec = tspec.parse_spec({"sizes": "fixed:1,1", "rate": 10.0, "duration": 100.0, "seed": 1})
    normal = tsample.generate_columns(spec)["arrival_timestamp"]
    drawn = []
    gaps = tsample._gaps

    def counting_gaps(rng, mean, cv, n):
        drawn.append(n)
        return gaps(rng, mean, cv, n)

    # pretend the first chunk is far too short (as an unlucky draw would be): the generator must draw more
    monkeypatch.setattr(tsample, "_draw_bound", lambda lam, cv: 10.0)
    monkeypatch.setattr(tsample, "_gaps", counting_gaps)
    with pytest.raises(InputError, match=r"trace.duration: drew more than 300 requests \(an unlucky draw\), over "
                                         r"the limit of 300 \(raise it"):
        tsample.generate_columns(spec, limit=300)
    assert sum(drawn) <= 300
    drawn.clear()
    chunked = tsample.generate_columns(spec, limit=100_000)["arrival_timestamp"]
    assert len(drawn) > 1  # several chunks, the same process
    assert len(chunked) == len(normal)
    np.testing.assert_allclose(chunked, normal, rtol=1e-12)


BAD_NUMBERS = {
    # name: (options, needles)
    "rate_zero": (["--rate", "0", "--count", "5"], ["--rate", "> 0"]),
    "rate_negative": (["--rate", "-3", "--count", "5"], ["--rate", "> 0"]),
    "rate_nan": (["--rate", "nan", "--count", "5"], ["--rate", "finite number", "nan"]),
    "rate_inf": (["--rate", "inf", "--count", "5"], ["--rate", "finite number", "inf"]),
    "rate_denormal": (["--rate", "1e-320", "--count", "5"], ["--rate", "too small"]),
    "duration_zero": (["--rate", "1", "--duration", "0"], ["--duration", "> 0"]),
    "duration_negative": (["--rate", "1", "--duration", "-5"], ["--duration", "> 0"]),
    "duration_nan": (["--rate", "1", "--duration", "nan"], ["--duration", "finite number"]),
    "duration_inf": (["--rate", "1", "--duration", "inf"], ["--duration", "finite number"]),
    "count_zero": (["--rate", "1", "--count", "0"], ["--count", ">= 1"]),
    "count_negative": (["--rate", "1", "--count", "-2"], ["--count", ">= 1"]),
    "cv_zero": (["--rate", "1", "--count", "5", "--cv", "0"], ["--cv", "> 0"]),
    "cv_negative": (["--rate", "1", "--count", "5", "--cv", "-1"], ["--cv", "> 0"]),
    "cv_nan": (["--rate", "1", "--count", "5", "--cv", "nan"], ["--cv", "finite number"]),
    "cv_inf": (["--rate", "1", "--count", "5", "--cv", "inf"], ["--cv", "finite number"]),
    "cv_tiny": (["--rate", "1", "--count", "5", "--cv", "1e-200"], ["--cv", "between 1e-06 and 1e+06"]),
    "cv_huge": (["--rate", "1", "--count", "5", "--cv", "1e200"], ["--cv", "between 1e-06 and 1e+06"]),
    "scale_zero": (["--replay", "--scale", "0", "--count", "5"], ["--scale", "> 0"]),
    "scale_negative": (["--replay", "--scale", "-1", "--count", "5"], ["--scale", "> 0"]),
    "scale_nan": (["--replay", "--scale", "nan", "--count", "5"], ["--scale", "finite number"]),
    "scale_inf": (["--replay", "--scale", "inf", "--count", "5"], ["--scale", "finite number"]),
    "prompt_min_above_max": (["--rate", "1", "--count", "5", "--prompt-min", "100", "--prompt-max", "10"],
                             ["--prompt-max", ">= prompt_min (100)", "10"]),
    "token_min_above_max": (["--rate", "1", "--count", "5", "--token-min", "9", "--token-max", "3"],
                            ["--token-max", ">= token_min (9)"]),
    "prompt_max_huge": (["--rate", "1", "--count", "5", "--prompt-max", str(10 ** 20)], ["--prompt-max", "2**40"]),
    "seed_negative": (["--rate", "1", "--count", "5", "--seed", "-1"], ["--seed", ">= 0", "-1"]),
    "seed_2_64": (["--rate", "1", "--count", "5", "--seed", str(2 ** 64)], ["--seed", "2**64-1", str(2 ** 64)]),
    "seed_huge": (["--rate", "1", "--count", "5", "--seed", str(10 ** 30)], ["--seed", "2**64-1"]),
}


@pytest.mark.parametrize("case", sorted(BAD_NUMBERS))
def test_bad_numbers_one_line(tmp_path, monkeypatch, case):
    args, needles = BAD_NUMBERS[case]
    monkeypatch.chdir(tmp_path)
    assert_input_error(invoke(*gen_args(tmp_path, "--sizes", "azure-code", *args)), *needles)
    assert files(tmp_path) == []


def test_extreme_but_valid_numbers(tmp_path):
    ok(invoke(*gen_args(tmp_path, "--sizes", "fixed:1,1", "--rate", "1", "--count", "5", "--seed", 2 ** 64 - 1)))
    for cv in ("1e-6", "1e6"):
        ok(invoke(*gen_args(tmp_path, "--sizes", "fixed:1,1", "--rate", "1", "--count", "1000", "--cv", cv)))
        arr = load_trace(tmp_path / "t.parquet").arrival
        assert np.all(np.isfinite(arr)) and np.all(np.diff(arr) >= 0)
    # the same bounds hold in run configs
    spec = {"sizes": "fixed:1,1", "rate": 1, "count": 5}
    for key, value, needle in (("cv", 0.0, "trace.cv: must be > 0"), ("seed", -1, "trace.seed: must be >= 0"),
                               ("seed", 2 ** 64, "trace.seed: must be <= 2**64-1"),
                               ("rate", float("nan"), "trace.rate: must be a finite number"),
                               ("count", 0, "trace.count: must be >= 1")):
        with pytest.raises(InputError, match=needle.replace("*", r"\*")):
            tspec.parse_spec({**spec, key: value})


# ------------------------------------------------------------------------------------------ cache


def test_cache_dir_is_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(tcache.CACHE_ENV)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tcache.cache_dir() == tmp_path / "home" / ".cache" / "sweepsim" / "traces"
    spec = tspec.parse_spec({"sizes": "fixed:5,5", "rate": 2, "count": 10})
    path = tcache.resolve_spec(spec)
    assert path.parent == tmp_path / "home" / ".cache" / "sweepsim" / "traces" and path.is_file()
    assert not (PROJECT / "traces" / ".cache" / path.name).exists()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tcache.cache_dir() == tmp_path / "xdg" / "sweepsim" / "traces"
    assert tcache.resolve_spec(spec).parent == tmp_path / "xdg" / "sweepsim" / "traces"
    monkeypatch.setenv(tcache.CACHE_ENV, str(tmp_path / "mine"))
    assert tcache.cache_dir() == tmp_path / "mine"


def test_unwritable_cache_is_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(tcache.CACHE_ENV, str(blocker / "cache"))
    cfg = tmp_path / "gen.toml"
    cfg.write_text(CONFIG.format(trace='sizes = "fixed:5,5"\nrate = 2\ncount = 10'))
    assert_input_error(invoke("run", cfg, "--out", tmp_path / "o"), "SWEEPSIM_TRACE_CACHE", "not a directory")


def _arrays(path):
    tr = load_trace(path)
    return tr.request_id, tr.application_id, tr.arrival, tr.prompt_size, tr.token_size


def _assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_sidecar_digest_and_corrupt_files_are_regenerated(tmp_path, trace_cache, capsys):
    spec = tspec.parse_spec({"sizes": "azure-conv", "rate": 20, "duration": 60, "seed": 4,
                                "workload": "prod=0.5,batch=0.5"})
    path = tcache.resolve_spec(spec)
    side = tcache.digest_path(path)
    assert side == path.with_name(path.name + ".sha256")
    assert side.read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert capsys.readouterr().err == ""
    good = _arrays(path)
    good_bytes = path.read_bytes()
    # reused as is; the digest is not computed again (the sweep's config hash can use file_digest too)
    info = tcache._digest.cache_info()
    mtime = path.stat().st_mtime_ns
    assert tcache.resolve_spec(spec) == path and path.stat().st_mtime_ns == mtime
    assert tcache.file_digest(path) == side.read_text().split()[0]
    assert tcache._digest.cache_info().misses == info.misses
    assert capsys.readouterr().err == ""

    def corrupt_then_resolve(damage, new_process=False):
        damage()
        if new_process:  # in another process the digest is not cached; here a flip may keep mtime and size
            tcache._digest.cache_clear()
        assert tcache.resolve_spec(spec) == path
        assert capsys.readouterr().err == \
            f"warning: {path}: cached trace was corrupt or incomplete; regenerated\n"
        assert path.read_bytes() == good_bytes
        assert side.read_text().split()[0] == hashlib.sha256(good_bytes).hexdigest()
        _assert_same(_arrays(path), good)

    with open(path, "r+b") as f:  # truncated (an interrupted copy)
        corrupt_then_resolve(lambda: f.truncate(len(good_bytes) // 2))

    def flip():
        data = bytearray(good_bytes)
        data[len(data) // 2] ^= 0xFF
        with open(path, "r+b") as f:
            f.write(data)

    corrupt_then_resolve(flip, new_process=True)
    corrupt_then_resolve(side.unlink)  # no sidecar: incomplete
    corrupt_then_resolve(lambda: side.write_text("not a digest\n"))
    corrupt_then_resolve(lambda: side.write_text(""))
    # a sidecar without its file: generated again, silently
    path.unlink()
    assert tcache.resolve_spec(spec) == path
    assert capsys.readouterr().err == ""
    _assert_same(_arrays(path), good)
    assert sorted(p.name for p in trace_cache.iterdir()) == [path.name, side.name]  # no temporary files left


def test_corrupt_cache_regenerated_through_the_cli(tmp_path, trace_cache):
    cfg = tmp_path / "gen.toml"
    cfg.write_text(CONFIG.format(trace='sizes = "azure-code"\nrate = 2\nduration = 20\nseed = 1'))
    path = tcache.ensure_trace(load_config(cfg))
    good = _arrays(path)
    path.write_bytes(path.read_bytes()[:100])
    res = ok(invoke("run", cfg, "--out", tmp_path / "o"))
    assert f"warning: {path}: cached trace was corrupt or incomplete; regenerated" in res.stderr
    _assert_same(_arrays(path), good)


# ------------------------------------------------------------------------------------------ no generation


def test_parsing_a_config_generates_nothing(tmp_path, trace_cache):
    """Loading a run config that names a generator spec has no side effect; the trace is generated when a
    run starts (ensure_trace / load_run_trace, called by `sweepsim run` and by sweeps)."""
    cfg = tmp_path / "gen.toml"
    cfg.write_text(CONFIG.format(trace='sizes = "azure-conv"\nrate = 5\nduration = 30\nseed = 2'))
    c = load_config(cfg)
    assert not Path(c.trace).exists() and not trace_cache.exists()
    assert tcache.ensure_trace(c) == Path(c.trace) and Path(c.trace).is_file()
    assert len(tcache.load_run_trace(c)) > 0


def test_no_generation_validates_without_writing(tmp_path, trace_cache, no_big_draws):
    cfg = tmp_path / "gen.toml"
    cfg.write_text(CONFIG.format(trace='sizes = "azure-conv"\nrate = 5\nduration = 30\nseed = 2'))
    with tcache.no_generation():
        would = Path(load_config(cfg).trace)
        assert would.parent == trace_cache and would.suffix == ".parquet"
        assert not would.exists()
        # still validated: bad keys and values, and the size limit
        with pytest.raises(InputError, match="trace.rte"):
            load_config(cfg, ["trace.rte=5"])
        with pytest.raises(InputError, match="trace.duration: would generate about .* over the limit"):
            load_config(cfg, ["trace.rate=1e6", "trace.duration=1e6"])
        with pytest.raises(InputError, match="trace.rate: must be > 0"):
            load_config(cfg, ["trace.rate=0"])
        # a replay spec reads its source (to estimate its size) but writes nothing either
        tcache.resolve_spec(tspec.parse_spec({"sizes": "azure-code", "replay": True, "count": 100}))
    assert not trace_cache.exists()
    assert tcache.resolve_spec(tspec.parse_spec({"sizes": "fixed:1,1", "rate": 1, "count": 3})).is_file()
    # outside the block, the same spec is generated at the path announced when a run starts
    assert tcache.ensure_trace(load_config(cfg)) == would and would.is_file()
    # the flag is reset after an exception, and blocks nest
    with pytest.raises(RuntimeError):
        with tcache.no_generation():
            raise RuntimeError
    with tcache.no_generation():
        with tcache.no_generation():
            pass
        other = tcache.ensure_trace(load_config(cfg, ["trace.seed=3"]))
    assert not other.exists()
    assert tcache.ensure_trace(load_config(cfg, ["trace.seed=3"])).is_file()


# ------------------------------------------------------------------------------------------ output paths


@pytest.fixture
def nothing_generated(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("generated or imported before the output paths were checked")

    import sweepsim.workload.azure

    monkeypatch.setattr(tcache, "generate_columns", fail)
    monkeypatch.setattr(tcache, "check_limit", fail)
    monkeypatch.setattr(sweepsim.workload.azure, "import_azure", fail)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
@pytest.mark.parametrize("where", ["below_file", "proc"])
@pytest.mark.parametrize("which", ["gen_out", "gen_plot", "import_out", "import_plot"])
def test_output_paths_checked_before_generating(tmp_path, nothing_generated, where, which):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = blocker if where == "below_file" else Path("/proc")
    ext = ".parquet" if which.endswith("out") else ".png"
    bad = base / f"sub{ext}"
    out = bad if which.endswith("out") else tmp_path / "o.parquet"
    plot = ["--plot", bad] if which.endswith("plot") else []
    if which.startswith("gen"):
        args = ["trace", "gen", "--sizes", "azure-code", "--rate", "1", "--count", "5", "--out", out, *plot]
    else:
        args = ["trace", "import", "azure", CODE, "--out", out, *plot]
    needle = "is not a directory" if where == "below_file" else "cannot write in /proc"
    assert_input_error(invoke(*args), str(bad), "--out" if which.endswith("out") else "--plot", needle)
    assert files(tmp_path) == ["file"]


def test_check_plot_checks_writability(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="--plot: cannot be created"):
        tplot.check_plot(tmp_path / "file" / "p.png")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(InputError, match="--plot: is a directory"):
        tplot.check_plot(tmp_path / "d.png")
    assert tplot.check_plot(tmp_path / "new" / "p.png") == tmp_path / "new" / "p.png"
    assert not (tmp_path / "new").exists()
