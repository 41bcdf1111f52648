"""The roofline performance model (performance_model = "roofline"): the shipped efficiencies are what
`sweepsim perf fit` finds on the profiled table, its errors are those reported, times grow with the batch and
never beat the compute or memory bound, unknown names are one-line errors, and unprofiled models and GPUs run
end to end."""
import numpy as np
import polars as pl
import pytest

from sweepsim.config.catalog import get_model, models, processors
from sweepsim.config.run import from_dict
from sweepsim.engine.performance import DEFAULT_DB, PerfModelConfig, roofline_curve
from sweepsim.engine.roofline import (DEFAULT_EFFICIENCY, Efficiency, decode_time, evaluate, load_efficiency,
                                      prefill_time, profiled_points, relative_errors)
from tests.cli_helpers import assert_input_error, invoke, ok


@pytest.fixture(scope="module")
def fitted():
    return evaluate(DEFAULT_DB)


def test_shipped_efficiencies_are_the_fit(fitted):
    fits, _ = fitted
    shipped = load_efficiency(DEFAULT_EFFICIENCY)
    step = (1.0 / 0.02) ** (1 / 39)    # one step of the fit's geometric grids (float sums may tip a near-tie)
    for gpu, e in fits.items():
        s = shipped[gpu]
        for a, b in ((s.compute, e.compute), (s.memory, e.memory)):
            assert b / step * 0.999 <= a <= b * step * 1.001, gpu
        for a, b in ((s.prompt_overhead_s, e.prompt_overhead_s), (s.token_overhead_s, e.token_overhead_s)):
            assert b / 1.25 <= a <= b * 1.25, gpu
    assert shipped["h200-141gb"] == shipped["h100-80gb"] and shipped["b200-180gb"] == shipped["h100-80gb"]
    assert shipped["a100-40gb"] == shipped["a100-80gb"]


def test_fitted_model_reproduces_the_profiles_within_the_reported_error(fitted):
    fits, lines = fitted
    pts = profiled_points(DEFAULT_DB)
    for gpu, eff in fits.items():
        rows = np.flatnonzero(pts["gpu"] == gpu)
        ep, et = relative_errors(pts, rows, eff, models(), processors())
        assert np.median(ep) < 0.15 and np.median(et) < 0.11, gpu       # docs/performance-model.md's figures
        assert f"in sample {gpu}: prefill median {100 * np.median(ep):.1f}%" in "\n".join(lines)
    # held-out bloom-176b is predicted within 10% (median) in both phases; llama2-70b is not (see the docs)
    held = [ln for ln in lines if ln.startswith("leave-one-model-out, bloom-176b")][0]
    medians = [float(x.split("%")[0]) for x in held.split("median ")[1:]]
    assert max(medians) < 10


@pytest.mark.parametrize("model", ["llama2-70b", "bloom-176b", "llama-3.1-8b", "mixtral-8x7b", "C", "D"])
@pytest.mark.parametrize("gpu", ["a100-80gb", "h100-80gb", "h200-141gb", "b200-180gb"])
def test_times_grow_with_the_batch_and_respect_the_bounds(model, gpu):
    m, p = get_model(model), processors()[gpu]
    eff = load_efficiency(DEFAULT_EFFICIENCY)[gpu]
    ideal = Efficiency(1.0, 1.0, 0.0, 0.0)
    for tp in (1, 2, 4, 8):
        c = roofline_curve(PerfModelConfig(kind="roofline"), (model, gpu, tp))
        assert np.all(np.diff(c.prompt_s) >= 0) and np.all(np.diff(c.token_s) >= 0)
        assert np.all(c.prompt_s > 0) and np.all(c.token_s > 0)
        # never faster than the compute or memory bound at 100% efficiency on tp GPUs
        assert np.all(prefill_time(m, p, tp, eff, c.knots) >= prefill_time(m, p, tp, ideal, c.knots))
        assert np.all(decode_time(m, p, tp, eff, c.knots, 1024) >= decode_time(m, p, tp, ideal, c.knots, 1024))
        if tp > 1:   # halving TP never makes an iteration faster
            half = roofline_curve(PerfModelConfig(kind="roofline"), (model, gpu, tp // 2))
            assert np.all(half.prompt_s >= c.prompt_s * (1 - 1e-12))
            assert np.all(half.token_s >= c.token_s * (1 - 1e-12))
    # the compute bound of a long prefill: FLOPs / (peak x tp)
    flops = 2 * m.params() * 8192 + 2 * m.num_layers * m.hidden_size * 8192 ** 2
    assert prefill_time(m, p, 8, ideal, 8192) >= flops / (8 * p.peak_tflops * 1e12)


def test_model_catalog_derives_parameters_and_keeps_splitwisesim_kv():
    table = models()
    assert round(table["llama-3.1-70b"].params() / 1e9, 1) == 70.6
    assert round(table["llama-3.1-8b"].params() / 1e9, 2) == 8.03
    assert round(table["llama-3.2-3b"].params() / 1e9, 2) == 3.21
    assert round(table["mixtral-8x7b"].params(active=False) / 1e9, 1) == 46.7
    assert round(table["mixtral-8x7b"].params(active=True) / 1e9, 1) == 12.9
    assert round(table["bloom-176b"].params() / 1e9, 1) == 176.2
    # grouped-query attention: 8 KV heads of 64
    assert table["llama-3.1-70b"].kv_bytes_per_token == 2 * 80 * 8192 * 8 // 64 * 2
    # SplitwiseSim's counts, unchanged
    assert table["llama2-70b"].kv_bytes_per_token == 2 * 80 * 8192 * 2
    assert table["bloom-176b"].kv_bytes_per_token == 2 * 70 * 14336 * 2
    assert table["llama2-70b"].weight_bytes == 135_000_000_000
    assert table["C"].kv_bytes_per_token == 2 * 32 * 4096 * 8      # SageServe's 8-byte KV elements


@pytest.mark.parametrize("model, sku", [("C", "dgx-a100"), ("D", "dgx-a100"), ("llama2-70b", "dgx-h200"),
                                        ("llama2-70b", "dgx-b200"), ("mixtral-8x7b", "dgx-h100")])
def test_unprofiled_models_and_gpus_run_from_the_cli(tmp_path, model, sku):
    out = tmp_path / "run"
    ok(invoke("run", "configs/examples/baseline_h100.toml", "--set", f"model={model}", "--set",
              "performance_model.kind=roofline", "--set", "cluster.dgx-h100=0", "--set", f"cluster.{sku}=1",
              "--out", out))
    req = pl.read_parquet(out / "requests.parquet")
    assert req["completed"].all() and (req["ttft"] > 0).all()


def test_a_b200_serves_faster_than_an_a100(tmp_path):
    ttft = {}
    for sku in ("dgx-a100", "dgx-b200"):
        ok(invoke("run", "configs/examples/baseline_h100.toml", "--set", "model=llama2-70b", "--set",
                  "performance_model.kind=roofline", "--set", "cluster.dgx-h100=0", "--set", f"cluster.{sku}=1",
                  "--out", tmp_path / sku))
        ttft[sku] = pl.read_parquet(tmp_path / sku / "requests.parquet")["ttft"].to_numpy()
    assert np.all(ttft["dgx-b200"] < ttft["dgx-a100"])


def test_scale_and_efficiency_overrides_are_sweepable():
    base = {"cluster": {"dgx-h100": 1}, "model": "llama2-70b", "start_state": "baseline"}
    c1 = roofline_curve(from_dict({**base, "performance_model": {"kind": "roofline"}}).performance_model,
                        ("llama2-70b", "h100-80gb", 8))
    c2 = roofline_curve(from_dict({**base, "performance_model": {"kind": "roofline", "scale": 1.15}})
                        .performance_model, ("llama2-70b", "h100-80gb", 8))
    assert np.allclose(c2.prompt_s, 1.15 * c1.prompt_s, rtol=1e-12)
    c3 = roofline_curve(from_dict({**base, "performance_model": {"kind": "roofline", "compute_efficiency": 0.25}})
                        .performance_model, ("llama2-70b", "h100-80gb", 8))
    assert c3.prompt_s[-1] > c1.prompt_s[-1]     # less of the peak: slower compute-bound prefill


def test_unknown_names_are_one_line_errors(tmp_path):
    assert_input_error(invoke("perf", "show", "gpt-9", "h100-80gb"), "MODEL", "llama2-70b")
    assert_input_error(invoke("perf", "show", "llama2-70b", "tpu-v9"), "GPU", "h100-80gb")
    assert_input_error(invoke("perf", "show", "llama2-70b", "h100-80gb", "--tp", "3"), "--tp")
    assert_input_error(invoke("run", "configs/examples/baseline_h100.toml", "--set", "performance_model.kind=magic",
                              "--out", tmp_path / "x"), "performance_model.kind", "roofline")
    assert_input_error(invoke("run", "configs/examples/baseline_h100.toml", "--set",
                              "performance_model.compute_efficiency=1.5", "--out", tmp_path / "x"),
                       "performance_model.compute_efficiency")
    bad = tmp_path / "eff.toml"
    bad.write_text('["h100-80gb"]\ncompute = 2.0\nmemory = 0.5\nprompt_overhead_s = 0.0\ntoken_overhead_s = 0.0\n')
    assert_input_error(invoke("run", "configs/examples/baseline_h100.toml", "--set", "performance_model.kind=roofline",
                              "--set", f"performance_model.efficiency={bad}", "--out", tmp_path / "x"),
                       "compute and memory efficiencies")


def test_perf_show_prints_and_plots(tmp_path):
    png = tmp_path / "p.png"
    r = ok(invoke("perf", "show", "llama2-70b", "a100-80gb", "--tp", "8", "-o", png))
    assert "prefill [s]" in r.stdout and png.exists()
    lines = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("512 ")]
    assert len(lines) == 1 and len(lines[0].split()) == 5      # predicted and profiled, both phases


def test_a_sweep_varies_the_performance_model(tmp_path, monkeypatch):
    """performance_model.kind and .scale as grid axes: a "what if the model is 15% off" sweep."""
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / "cache"))
    exp = tmp_path / "pm.toml"
    exp.write_text('name = "pm"\n[config]\nmodel = "llama2-70b"\nstart_state = "baseline"\ncluster = { dgx-h100 = 1 }\n'
                   '[config.performance_model]\nkind = "db"\n[trace]\nsizes = "azure-conv"\nrate = 2\nduration = 20\n'
                   'seed = 1\n[grid]\n"performance_model.kind" = ["db", "roofline"]\n'
                   '"performance_model.scale" = [0.85, 1.0, 1.15]\n')
    ok(invoke("grid", exp, "--out", tmp_path / "out", "--quiet"))
    df = pl.read_parquet(tmp_path / "out" / "summary.parquet")
    assert df.height == 6
    for kind in ("db", "roofline"):
        ttft = {r["performance_model.scale"]: r["ttft_p50"]
                for r in df.filter(pl.col("performance_model.kind") == kind).iter_rows(named=True)}
        assert ttft[0.85] < ttft[1.0] < ttft[1.15]
    db = df.filter(pl.col("performance_model.kind") == "db").sort("performance_model.scale")["e2e_p50"].to_list()
    rf = df.filter(pl.col("performance_model.kind") == "roofline").sort("performance_model.scale")["e2e_p50"].to_list()
    assert db != rf


# ------------------------------------------------------------------------------------------ hostile inputs

EFF = '["h100-80gb"]\ncompute = {c}\nmemory = {m}\nprompt_overhead_s = {po}\ntoken_overhead_s = {to}\n'


@pytest.mark.parametrize("text, needle", [
    (EFF.format(c=0.5, m=1.0, po="nan", to=0.0), "prompt_overhead_s"),
    (EFF.format(c=0.5, m=1.0, po=-0.5, to=0.0), "prompt_overhead_s"),
    (EFF.format(c=1e-8, m=1.0, po=0.0, to=0.0), "compute"),
    (EFF.format(c="true", m=1.0, po=0.0, to=0.0), "compute"),
    (EFF.format(c=0.5, m=1.0, po=0.0, to="inf"), "token_overhead_s"),
    ("version = 1\n" + EFF.format(c=0.5, m=1.0, po=0.0, to=0.0), "version"),
    ('["h100-80gb"]\nlike = ["a100-80gb"]\n', "like"),
    ('["h100-80gb"]\nlike = "b"\n["b"]\nlike = "h100-80gb"\n', "loops"),
    (EFF.format(c=0.5, m=1.0, po=0.0, to=0.0) + "bogus = 7\n", "bogus"),
])
def test_bad_efficiency_files_are_one_line_errors(tmp_path, text, needle):
    f = tmp_path / "eff.toml"
    f.write_text(text)
    assert_input_error(invoke("run", "configs/examples/baseline_h100.toml", "--set", "performance_model.kind=roofline",
                              "--set", f"performance_model.efficiency={f}", "--out", tmp_path / "x"), needle)
    assert not (tmp_path / "x").exists()


def test_efficiency_chains_resolve_in_any_order(tmp_path):
    from sweepsim.engine.roofline import load_efficiency as load
    f = tmp_path / "eff.toml"
    f.write_text('["b200-180gb"]\nlike = "h200-141gb"\n["h200-141gb"]\nlike = "h100-80gb"\n'
                 + EFF.format(c=0.5, m=0.9, po=0.01, to=0.02))
    table = load(f)
    assert table["b200-180gb"] == table["h200-141gb"] == table["h100-80gb"] == Efficiency(0.5, 0.9, 0.01, 0.02)


def test_keys_of_another_kind_and_tiny_factors_are_refused(tmp_path):
    run_ = ("run", "configs/examples/baseline_h100.toml", "--out", tmp_path / "x")
    assert_input_error(invoke(*run_, "--set", "performance_model.compute_efficiency=0.5"),
                       "performance_model.compute_efficiency", "roofline")
    assert_input_error(invoke(*run_, "--set", "performance_model.kind=roofline", "--set",
                              "performance_model.path=data/perf_model.csv"), "performance_model.path", "db")
    assert_input_error(invoke(*run_, "--set", "performance_model.kind=roofline", "--set",
                              "performance_model.memory_efficiency=1e-8"), "performance_model.memory_efficiency")


def test_perf_fit_refuses_bad_tables_and_outputs_before_fitting(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(DEFAULT_EFFICIENCY.read_text())
    before = good.read_bytes()
    db = DEFAULT_DB.read_text().splitlines()
    for name, rows, needle in (("unknown_model.csv", [db[0]] + [r.replace("llama2-70b", "llama-9000b") for r in db[1:]],
                                "llama-9000b"),
                               ("tp3.csv", [db[0]] + [r[:-2] + ",3" if r.endswith(",8") else r for r in db[1:]],
                                "tensor_parallel")):
        bad = tmp_path / name
        bad.write_text("\n".join(rows) + "\n")
        assert_input_error(invoke("perf", "fit", "--db", bad, "--out", good), needle)
        assert good.read_bytes() == before
    assert_input_error(invoke("perf", "fit", "--out", tmp_path / "x.csv"), "--out", ".toml")
    assert_input_error(invoke("perf", "fit", "--out", tmp_path), "--out")


def test_sweep_resume_notices_a_changed_efficiency_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(tmp_path / "cache"))
    eff = tmp_path / "eff.toml"
    eff.write_text(DEFAULT_EFFICIENCY.read_text())
    exp = tmp_path / "e.toml"
    exp.write_text('name = "e"\n[config]\nmodel = "llama2-70b"\nstart_state = "baseline"\ncluster = { dgx-h100 = 1 }\n'
                   f'[config.performance_model]\nkind = "roofline"\nefficiency = "{eff}"\n[trace]\nsizes = "azure-conv"'
                   '\nrate = 2\nduration = 10\nseed = 1\n[grid]\n"performance_model.scale" = [1.0, 1.15]\n')
    ok(invoke("grid", exp, "--out", tmp_path / "o", "--quiet"))
    r = ok(invoke("grid", exp, "--out", tmp_path / "o", "--quiet"))
    assert "0 run, 2 already done" in r.stdout
    eff.write_text(eff.read_text().replace("compute = 0.49", "compute = 0.29"))
    r = ok(invoke("grid", exp, "--out", tmp_path / "o", "--quiet"))
    assert "2 run, 0 already done" in r.stdout


def test_slowdown_reference_ignores_what_if_factors():
    from sweepsim.engine.performance import slowdown_curve
    base = {"cluster": {"dgx-h100": 1}, "model": "llama2-70b", "start_state": "baseline"}
    a = slowdown_curve(from_dict({**base, "performance_model": {"kind": "roofline"}}))
    b = slowdown_curve(from_dict({**base, "performance_model": {"kind": "roofline", "compute_efficiency": 0.2,
                                                                "scale": 1.3}}))
    assert np.array_equal(a.prompt_s, b.prompt_s) and np.array_equal(a.token_s, b.token_s)
