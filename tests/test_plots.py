"""``sweepsim plot gantt|latency|sweep|timeline`` and ``sweepsim report``.

Small runs are made with ``sweepsim run --debug`` (CliRunner) on SplitwiseSim's 3-request example trace: the
baseline (one DGX-H100, co-located) and a heterogeneous Splitwise cluster (DGX-A100 token + DGX-H100 prompt
instance, mixed_pool, KV transfers); a tiny sweep through ``sweepsim.sweep.runner.run_sweep``. Each command is checked
on the image file (format, pixel size) and on the matplotlib Figure built by its plotting function (axes, and
lines / collections per axis = the expected series); bad input exits 2 with one error line.
"""
import base64
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from PIL import Image

import sweepsim
from sweepsim.config.run import from_dict
from sweepsim.plots.common import config_label, read_run, run_labels
from sweepsim.plots.gantt import gantt_figure
from sweepsim.plots.latency import latency_figure
from sweepsim.plots.sweep import read_spec, sweep_figure
from sweepsim.plots.timeline import Series, timeline_figure
from sweepsim.results.query import (
    load_summary,
    pareto_front,
    parse_objectives,
    select,
    varied_columns,
)
from sweepsim.sweep.jobs import make_jobs
from sweepsim.sweep.runner import run_sweep
from tests.cli_helpers import assert_input_error, invoke, ok

PROJECT = Path(sweepsim.__file__).resolve().parent.parent
TRACE = PROJECT / "traces" / "test_trace.csv"
EXPERIMENTS = PROJECT / "configs" / "experiments"

SPLITWISE_TOML = f"""name = "sw"
model = "bloom-176b"
start_state = "splitwise"
split_type = "heterogeneous"
scheduler = "mixed_pool"

[cluster]
dgx-a100 = 1
dgx-h100 = 1

[trace]
path = "{TRACE}"
"""


def png_size(path) -> tuple[int, int]:
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def polys(ax, cls=PolyCollection):
    return [c for c in ax.collections if type(c) is cls]


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """baseline (debug), splitwise (debug), baseline without --debug."""
    root = tmp_path_factory.mktemp("runs")
    cfg = root / "sw.toml"
    cfg.write_text(SPLITWISE_TOML)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(PROJECT)
        ok(invoke("run", "configs/examples/baseline_h100.toml", "--debug", "--out", root / "base"))
        ok(invoke("run", cfg, "--debug", "--out", root / "sw"))
        ok(invoke("run", "configs/examples/baseline_h100.toml", "--out", root / "nodebug"))
    return {"base": root / "base", "sw": root / "sw", "nodebug": root / "nodebug"}


@pytest.fixture(scope="module")
def borrowed_run(runs, tmp_path_factory):
    """The splitwise run with a hand-edited debug log: the token instance's second run is borrowed into the
    mixed pool, and its third run is a mixed batch (1 prompt + 1 decode)."""
    out = tmp_path_factory.mktemp("borrowed") / "sw"
    shutil.copytree(runs["sw"], out)
    it = pl.read_parquet(out / "iterations.parquet")
    token_rows = [k for k, i in enumerate(it["instance"].to_list()) if i == 0]
    assert len(token_rows) == 3
    borrowed = [k == token_rows[1] for k in range(len(it))]
    mixed = [k == token_rows[2] for k in range(len(it))]
    it = it.with_columns(borrowed=pl.Series(borrowed),
                         batch_size=pl.when(pl.Series(mixed)).then(2).otherwise(pl.col("batch_size")),
                         prompt_tasks=pl.when(pl.Series(mixed)).then(1).otherwise(pl.col("prompt_tasks")))
    it.write_parquet(out / "iterations.parquet")
    return out, it.row(token_rows[1], named=True)


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    """2 schedulers x 2 cluster sizes on the example trace."""
    points, varied = [], []
    for sched in ("round_robin", "token_jsq"):
        for n in (1, 2):
            points.append({"cluster": {"dgx-h100": n}, "model": "bloom-176b", "scheduler": sched,
                           "trace": {"path": str(TRACE)}})
            varied.append({"scheduler": sched, "cluster.dgx-h100": n})
    out = tmp_path_factory.mktemp("sweep") / "res"
    run_sweep(make_jobs(points, [from_dict(p) for p in points], varied), out, quiet=True)
    return out


# ------------------------------------------------------------------------------------------ gantt


def test_gantt_cli_png_of_requested_size(runs, tmp_path):
    out = tmp_path / "gantt.png"
    result = ok(invoke("plot", "gantt", runs["sw"], "--size", "900x400", "-o", out))
    assert str(out) in result.stdout
    assert png_size(out) == (900, 400)
    ok(invoke("plot", "gantt", runs["base"], "-o", tmp_path / "default.png"))
    assert png_size(tmp_path / "default.png") == (1400, 300)  # default height grows with the instances


def test_gantt_figure_bars_by_composition_and_kv_transfers(runs):
    run = read_run(runs["sw"])
    fig = gantt_figure(run)
    (ax,) = fig.axes
    bars = polys(ax)
    assert [c.get_label() for c in bars] == ["prompt-only", "token-only"]
    assert [len(c.get_paths()) for c in bars] == [3, 3]     # 3 prompt runs (H100), 3 decode runs (A100)
    (kv,) = polys(ax, LineCollection)
    segs = kv.get_segments()
    assert len(segs) == 3
    rows = {int(r) for s in segs for r in s[:, 1]}
    assert rows == {0, 1}                                    # from the prompt row to the token row
    ref = run.kv_transfers.sort("request_id")
    np.testing.assert_allclose(sorted(s[0, 0] for s in segs), ref["start"].to_numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0: a100-80gb_0 (token)", "1: h100-80gb_1 (prompt)"]
    assert "[s]" in ax.get_xlabel()

    base = gantt_figure(read_run(runs["base"]))
    assert [c.get_label() for c in polys(base.axes[0])] == ["prompt-only", "token-only"]
    assert polys(base.axes[0], LineCollection) == []         # co-located: no KV transfer


def test_gantt_instances_and_window(runs):
    run = read_run(runs["sw"])
    one = gantt_figure(run, instances=[1])
    (ax,) = one.axes
    assert [c.get_label() for c in polys(ax)] == ["prompt-only"]
    assert polys(ax, LineCollection) == []                   # the token row is not shown
    win = gantt_figure(run, t_from=2.9, t_to=3.5)
    (ax,) = win.axes
    assert ax.get_xlim() == (2.9, 3.5)
    bars = polys(ax)
    assert [len(c.get_paths()) for c in bars] == [1, 2]      # runs overlapping [2.9, 3.5], clipped
    for c in bars:
        x = np.concatenate([p.vertices[:, 0] for p in c.get_paths()])
        assert x.min() >= 2.9 and x.max() <= 3.5


def test_gantt_mixed_batches_and_borrowed_runs(borrowed_run):
    path, _ = borrowed_run
    ax = gantt_figure(read_run(path)).axes[0]
    labels = [c.get_label() for c in ax.collections]
    assert labels == ["prompt-only", "token-only", "mixed prompt + token", "in the mixed pool (mixed_pool)",
                      "KV transfer"]


def test_gantt_without_debug_log_exit_2(runs, tmp_path):
    out = tmp_path / "g.png"
    line = assert_input_error(invoke("plot", "gantt", runs["nodebug"], "-o", out), "iterations.parquet",
                              "sweepsim run --debug")
    assert "no debug log" in line
    assert not out.exists()


@pytest.mark.parametrize("args, needles", [
    (("--instances", "0-5"), ("--instances", "unknown instance id(s) 2, 3, 4, 5", "0-1")),
    (("--instances", "a-b"), ("--instances", "0-7 or 0,2,5")),
    (("--from", "3", "--to", "2"), ("--to", "after --from")),
    (("--size", "big"), ("--size", "WIDTHxHEIGHT")),
    (("--bogus",), ("No such option", "--bogus")),
])
def test_gantt_bad_options_exit_2(runs, tmp_path, args, needles):
    assert_input_error(invoke("plot", "gantt", runs["sw"], *args, "-o", tmp_path / "g.png"), *needles)


# ------------------------------------------------------------------------------------------ latency


def test_latency_cli_two_runs_with_slo(runs, tmp_path):
    out = tmp_path / "cdf.png"
    ok(invoke("plot", "latency", runs["base"], runs["sw"], "--log-x", "--slo-ttft", "0.5", "-o", out))
    assert png_size(out) == (1500, 480)


def test_latency_figure_lines_per_run_and_slo(runs):
    rs = [read_run(runs["base"]), read_run(runs["sw"])]
    fig = latency_figure(rs, log_x=True, slo={"ttft": 0.5, "tbt": None, "e2e": None})
    assert len(fig.axes) == 3
    assert [len(ax.lines) for ax in fig.axes] == [3, 2, 2]   # 2 runs (+ the TTFT SLO line)
    ttft, _, e2e = fig.axes
    assert ttft.get_xscale() == "log"
    labels = [ln.get_label() for ln in ttft.lines]
    assert labels[0] == "token_jsq, baseline, 1 dgx-h100 (66.7% within SLO)"   # ttft 0.65 s misses 0.5 s
    assert labels[1].startswith("mixed_pool, splitwise, 1 dgx-a100 + 1 dgx-h100")
    assert labels[2] == "SLO 0.5 s"
    # each CDF is a step line over the 3 completed requests ending at 1
    req = rs[0].requests
    x, y = ttft.lines[0].get_data()
    assert y[-1] == 1.0 and sorted(x[1:]) == sorted(req["ttft"].to_list())
    x, _ = e2e.lines[1].get_data()
    np.testing.assert_allclose(np.sort(x[1:]), np.sort(rs[1].requests["e2e"].to_numpy()))


def test_latency_labels_from_config_or_directory(runs, tmp_path):
    copy = tmp_path / "again"
    shutil.copytree(runs["base"], copy)
    rs = [read_run(runs["base"]), read_run(copy), read_run(runs["sw"])]
    labels = run_labels(rs)
    assert labels[0] == "base: token_jsq, baseline, 1 dgx-h100"   # same configuration: directory added
    assert labels[1] == "again: token_jsq, baseline, 1 dgx-h100"
    assert labels[2] == config_label(rs[2].summary)
    (copy / "summary.parquet").unlink()                           # no summary: the directory name
    assert not (copy / "summary.parquet").exists()


def test_latency_bad_input_exit_2(runs, tmp_path):
    assert_input_error(invoke("plot", "latency", runs["base"], "-o", tmp_path / "cdf.jpg"),
                       "unknown image format '.jpg'", ".png, .svg, .pdf")
    assert_input_error(invoke("plot", "latency", tmp_path, "-o", tmp_path / "cdf.png"), "not a run directory")
    assert_input_error(invoke("plot", "latency", runs["base"], runs["sw"], "--label", "a", "-o",
                              tmp_path / "cdf.png"), "--label", "2 runs")


# ------------------------------------------------------------------------------------------ sweep


def test_sweep_cli_pareto_png(sweep_dir, tmp_path):
    out = tmp_path / "front.png"
    ok(invoke("plot", "sweep", sweep_dir, "--x", "cost_usd", "--y", "throughput_rps", "--hue", "scheduler",
              "--facet", "cluster.dgx-h100", "--pareto", "--size", "1200x500", "-o", out))
    assert png_size(out) == (1200, 500)


def test_sweep_figure_series_facets_and_front(sweep_dir):
    df = load_summary(sweep_dir)
    varied = varied_columns(sweep_dir, df)
    assert varied == ["scheduler", "cluster.dgx-h100"]
    fig = sweep_figure(df, "cost_usd", "throughput_rps", hue="scheduler", facet="cluster.dgx-h100", pareto=True,
                       varied=varied)
    assert len(fig.axes) == 2                                      # one panel per cluster size
    for ax, n in zip(fig.axes, (1, 2)):
        assert ax.get_title().startswith(f"cluster.dgx-h100 = {n}")
        points = [c for c in ax.collections if c.get_label() in ("round_robin", "token_jsq")]
        assert len(points) == 2                                    # one scatter per hue value
        rings = [c for c in ax.collections if c not in points]
        assert len(rings) == 1 and len(ax.lines) == 1              # the Pareto front
        part = df.filter(pl.col("cluster.dgx-h100") == n)
        front = pareto_front(part, parse_objectives("cost_usd,throughput_rps", part, "t"))
        assert sorted(map(tuple, rings[0].get_offsets().tolist())) == \
            sorted(zip(front["cost_usd"].to_list(), front["throughput_rps"].to_list()))
    assert fig.axes[0].get_xlabel() == "cost [$]" and fig.axes[0].get_ylabel() == "throughput [req/s]"


def test_sweep_lines_over_a_varied_parameter_and_aggregation(sweep_dir):
    df = load_summary(sweep_dir)
    varied = varied_columns(sweep_dir, df)
    fig = sweep_figure(df, "cluster.dgx-h100", "ttft_p99", hue="scheduler", varied=varied)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and not ax.collections                # x is swept: one line per scheduler
    assert ax.get_ylabel() == "ttft p99 [s]"
    fig = sweep_figure(df, "cluster.dgx-h100", "throughput_rps", agg="max", varied=varied)
    (ax,) = fig.axes
    (line,) = ax.lines
    x, y = line.get_data()
    ref = df.group_by("cluster.dgx-h100").agg(pl.col("throughput_rps").max()).sort("cluster.dgx-h100")
    assert list(x) == ref["cluster.dgx-h100"].to_list() and list(y) == ref["throughput_rps"].to_list()
    assert ax.get_ylabel() == "max of throughput [req/s]"
    fig = sweep_figure(df, "cost_usd", "ttft_p99", where="scheduler = 'token_jsq'", varied=varied)
    assert len(fig.axes[0].collections) == 1 and len(fig.axes[0].collections[0].get_offsets()) == 2


def test_sweep_facets_filtered_empty_keep_their_panel(sweep_dir):
    df = load_summary(sweep_dir)
    fig = sweep_figure(df, "cost_usd", "throughput_rps", hue="scheduler", facet="cluster.dgx-h100",
                       where='"cluster.dgx-h100" = 1')
    one, two = fig.axes
    assert len(one.collections) == 2 and not two.collections
    assert two.get_title() == "cluster.dgx-h100 = 2 (0 points)"
    assert [t.get_text() for t in two.texts] == ["no rows match the filter"]


def test_sweep_bad_column_lists_available_columns(sweep_dir, tmp_path):
    out = tmp_path / "f.png"
    line = assert_input_error(invoke("plot", "sweep", sweep_dir, "--x", "cost", "--y", "throughput_rps", "-o", out),
                              "--x", "unknown column 'cost'", "available:", "cost_usd", "throughput_rps")
    assert "varied parameters: scheduler, cluster.dgx-h100" in line
    assert_input_error(invoke("plot", "sweep", sweep_dir, "--x", "cost_usd", "--y", "throughput_rps", "--hue",
                              "sched", "-o", out), "--hue", "unknown column 'sched'", "scheduler")
    assert_input_error(invoke("plot", "sweep", sweep_dir, "--x", "cost_usd", "--y", "throughput_rps", "--where",
                              "nope > 1", "-o", out), "--where")
    assert_input_error(invoke("plot", "sweep", sweep_dir, "--x", "cost_usd", "-o", out), "--y", "missing")
    assert_input_error(invoke("plot", "sweep", tmp_path, "--x", "a", "--y", "b", "-o", out), "no summary")
    assert not out.exists()


def test_sweep_spec_file_and_overrides(sweep_dir, tmp_path):
    spec = tmp_path / "s.plot.toml"
    spec.write_text(f'results = "{sweep_dir}"\ntitle = "best"\nx = "cluster.dgx-h100"\ny = "throughput_rps"\n'
                    f'agg = "max"\nhue = "scheduler"\nylabel = "best throughput [req/s]"\nsize = "800x400"\n')
    out = tmp_path / "spec.png"
    ok(invoke("plot", "sweep", "--spec", spec, "-o", out))
    assert png_size(out) == (800, 400)
    ok(invoke("plot", "sweep", sweep_dir, "--spec", spec, "--agg", "none", "--hue", "none", "-o", out))
    bad = tmp_path / "bad.plot.toml"
    bad.write_text('x = "cost_usd"\ny = "throughput_rps"\ncolour = "scheduler"\n')
    assert_input_error(invoke("plot", "sweep", sweep_dir, "--spec", bad, "-o", out), "colour", "unknown key",
                       "hue")
    bad.write_text('x = "cost_usd"\ny = "throughput_rps"\nagg = "sum"\n')
    assert_input_error(invoke("plot", "sweep", sweep_dir, "--spec", bad, "-o", out), "agg", "'sum'", "max")


SPECS = sorted(EXPERIMENTS.glob("*.plot.toml"))


@pytest.mark.parametrize("spec", SPECS, ids=[p.name for p in SPECS])
def test_shipped_plot_specs_match_their_experiments(spec):
    """Every shipped spec names columns of its experiment's results and a valid SQL filter."""
    from sweepsim.config.experiment import load_experiment
    opts = read_spec(spec)
    exp = load_experiment(EXPERIMENTS / spec.name.replace(".plot.toml", ".toml"), small=True)
    metrics = [f"{m}{s}_{p}" for m in ("ttft", "tbt", "e2e") for s in ("", "_slowdown") for p in ("p50", "p90", "p99")]
    metrics += ["throughput_rps", "cost_usd", "mean_power_w", "slo_attainment", "gpu_hours_serving",
                "wasted_gpu_hours"]
    row = {**exp.varied[0], **{m: 0.0 for m in metrics}, "region": "all"}   # (topology summaries: a totals row)
    df = pl.DataFrame([row])
    for k in ("x", "y", "hue", "facet"):
        if k in opts:
            assert opts[k] in df.columns, (k, opts[k], df.columns)
    assert len(select(df, opts.get("where"), spec)) == 1            # parses; zero latencies meet every SLO
    assert opts["results"] == f"results/{exp.name}"


# ------------------------------------------------------------------------------------------ timeline


def test_timeline_cli_png(runs, tmp_path):
    out = tmp_path / "t.png"
    ok(invoke("plot", "timeline", runs["sw"], "-o", out))
    assert png_size(out) == (1400, 4 * 250 + 80)
    ok(invoke("plot", "timeline", runs["nodebug"], "-o", out))
    assert png_size(out) == (1400, 3 * 250 + 80)                  # no memory panel without the debug log


def test_timeline_figure_panels_and_series(runs):
    run = read_run(runs["sw"])
    fig = timeline_figure(run)
    assert [ax.get_ylabel() for ax in fig.axes] == ["instances", "queue length [requests]",
                                                    "memory utilisation [%]", "rate [req/s]"]
    assert [len(ax.lines) for ax in fig.axes] == [2, 2, 2, 2]
    inst, queue, mem, arr = fig.axes
    assert [ln.get_label() for ln in inst.lines] == ["prompt pool", "token pool"]
    assert all(set(ln.get_ydata()) == {1.0} for ln in inst.lines)  # nothing borrowed
    t, y = queue.lines[0].get_data()                               # resident requests: request 0 decodes on
    assert y[np.searchsorted(t, 3.1, side="right") - 1] == 2       # the A100 while request 1's prompt runs
    assert y.max() == 2 and y[-1] == 0
    t, y = arr.lines[0].get_data()
    assert (y[:-1] * 1.0).sum() == 3                               # 3 arrivals in 1 s bins
    util = mem.lines[0].get_ydata()
    assert 0 < util.min() and util.max() < 100
    # memory = run's memory_bytes / (8 GPUs x 80 GiB) during the prompt instance's first run
    it = run.iterations.filter(pl.col("instance") == 1).sort("start")
    t, y = mem.lines[0].get_data()
    k = np.searchsorted(t, it["start"][0], side="right") - 1
    assert y[k] == pytest.approx(100 * it["memory_bytes"][0] / (8 * 80 * 2 ** 30))

    base = timeline_figure(read_run(runs["nodebug"]))
    assert [len(ax.lines) for ax in base.axes] == [1, 2, 2]
    assert base.axes[0].lines[0].get_label() == "co-located (no pool)"


def test_timeline_mixed_pool_counts(borrowed_run):
    path, row = borrowed_run
    inst = timeline_figure(read_run(path)).axes[0]
    by = {ln.get_label(): ln.get_data() for ln in inst.lines}
    assert list(by) == ["prompt pool", "token pool", "mixed pool (borrowed)"]

    def at(label, t):
        x, y = by[label]
        return y[np.searchsorted(x, t, side="right") - 1]

    mid = (row["start"] + row["end"]) / 2
    assert (at("token pool", mid), at("mixed pool (borrowed)", mid), at("prompt pool", mid)) == (0, 1, 1)
    before = row["start"] - 0.01
    assert (at("token pool", before), at("mixed pool (borrowed)", before)) == (1, 0)


def test_timeline_extra_series_new_panel_and_events(runs):
    run = read_run(runs["sw"])
    extra = [Series("instances", "llama2-70b eastus", np.array([0.0, 2.0, 5.0]), np.array([1.0, 2.0, 2.0])),
             Series("autoscaler", "target instances", np.array([0.0, 5.0]), np.array([1.0, 3.0]), kind="line",
                    ylabel="target [instances]"),
             Series("autoscaler", "scale-up", np.array([2.0, 4.0]), kind="events")]
    fig = timeline_figure(run, extra=extra)
    assert len(fig.axes) == 5
    assert len(fig.axes[0].lines) == 3                              # + the extra instance series
    auto = fig.axes[-1]
    assert auto.get_ylabel() == "target [instances]"
    assert len(auto.lines) == 1 and len(polys(auto, LineCollection)) == 1


# ------------------------------------------------------------------------------------------ formats


@pytest.mark.parametrize("ext, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_vector_formats_by_extension(runs, tmp_path, ext, magic):
    out = tmp_path / f"t{ext}"
    ok(invoke("plot", "timeline", runs["base"], "-o", out))
    assert out.read_bytes().startswith(magic)


# ------------------------------------------------------------------------------------------ report


def _images(page: str) -> list[tuple[int, int]]:
    import io
    sizes = []
    for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        with Image.open(io.BytesIO(base64.b64decode(data))) as im:
            sizes.append(im.size)
    return sizes


def test_report_run_dir(runs, tmp_path):
    out = tmp_path / "r.html"
    ok(invoke("report", runs["sw"], "-o", out))
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    assert "src=\"http" not in page and "<script" not in page    # self-contained
    assert _images(page) == [(1500, 480), (1400, 1080), (1400, 300)]   # latency, timeline, gantt
    assert "throughput_rps" in page and "mixed_pool" in page
    ok(invoke("report", runs["nodebug"], "-o", out))
    page = out.read_text()
    assert len(_images(page)) == 2 and "sweepsim run --debug" in page


def test_report_sweep_dir(sweep_dir, tmp_path):
    out = tmp_path / "s.html"
    ok(invoke("report", sweep_dir, "-o", out))
    page = out.read_text()
    assert len(_images(page)) == 1
    assert "4 configurations" in page and "throughput_rps vs cost_usd" in page
    assert page.count("<tr>") == 1 + 4                               # header + the 4 configurations


def test_report_bad_input_exit_2(runs, tmp_path):
    assert_input_error(invoke("report", runs["sw"], "-o", tmp_path / "r.pdf"), "unknown report format", ".html")
    assert_input_error(invoke("report", tmp_path, "-o", tmp_path / "r.html"), "neither a run directory")
