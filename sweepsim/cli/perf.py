"""``sweepsim perf fit|show``: the roofline performance model's efficiency factors, fitted on a profiled table,
and its predictions against the profiled times."""
from pathlib import Path

import click

from sweepsim.cli.common import OneLineErrorGroup, OutputPath
from sweepsim.errors import InputError


@click.group("perf", cls=OneLineErrorGroup)
def perf_group():
    """The roofline performance model (performance_model = "roofline"): fit it, compare it with profiles."""


@perf_group.command("fit")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Profiled table (default data/perf_model.csv).")
@click.option("--out", "out", type=OutputPath(dir_okay=False, path_type=Path),
              help="Efficiency file to write (default configs/perf/roofline.toml).")
@click.option("--grid", default=40, show_default=True, type=click.IntRange(min=5, max=200),
              help="Grid points per efficiency factor.")
def fit_cmd(db_path, out, grid):
    """Fit per GPU the achieved fraction of peak FLOP/s and of HBM bandwidth and the per-iteration overheads on
    the profiled table, print the errors (in sample, leave-one-model-out, leave-one-GPU-out) and write them.
    GPUs nobody profiled take their family's profiled GPU's factors (a100-40gb: a100-80gb), else the H100's
    (H200, B200)."""
    from sweepsim.config.catalog import processors
    from sweepsim.engine.performance import DEFAULT_DB, load_db
    from sweepsim.engine.roofline import DEFAULT_EFFICIENCY, evaluate, write_efficiency
    from sweepsim.errors import check_output_path
    db_path = db_path or DEFAULT_DB
    out = out or DEFAULT_EFFICIENCY
    check_output_path(out, (".toml",), "--out", "efficiency file")   # before the fit; a regular .toml file
    if Path(out).exists() and Path(out).resolve() == Path(db_path).resolve():
        raise InputError(out, "--out", "must be a new or regular .toml file other than --db")
    load_db(db_path)   # the table's checks: a clear error before fitting
    fits, lines = evaluate(db_path, grid)
    for line in lines:
        click.echo(line)
    # unprofiled GPUs: the same family's profiled GPU (a100-40gb -> a100-80gb), else the H100 (H200, B200)
    like: dict[str, str] = {}
    for g in processors():
        if g not in fits:
            family = [f for f in fits if f.split("-")[0] == g.split("-")[0]]
            pick = family[0] if family else ("h100-80gb" if "h100-80gb" in fits else None)
            if pick:
                like[g] = pick
    write_efficiency(fits, out, like, Path(db_path).name)
    for g, e in fits.items():
        click.echo(f"{g}: compute {e.compute:.3f}, memory {e.memory:.3f}, overheads prompt {e.prompt_overhead_s:.4f} s, "
                   f"token {e.token_overhead_s:.4f} s")
    click.echo(f"wrote {out}")


@perf_group.command("show")
@click.argument("model")
@click.argument("gpu")
@click.option("--tp", default=8, show_default=True, type=click.Choice(["1", "2", "4", "8"]), help="Tensor parallelism.")
@click.option("--context", default=1024, show_default=True, type=click.IntRange(min=0, max=10_000_000),
              help="Context tokens of each decoding sequence.")
@click.option("-o", "--out", "out", type=OutputPath(dir_okay=False, path_type=Path), help="Also plot to this PNG.")
def show_cmd(model, gpu, tp, context, out):
    """Predicted prefill and decode iteration times of MODEL on GPU over batch tokens, beside the profiled ones
    where the table has them (data/perf_model.csv), so that you can see where the model can be trusted."""
    import numpy as np

    from sweepsim.config.catalog import get_model, processors
    from sweepsim.engine.performance import DEFAULT_DB, PerfModelConfig, load_db, roofline_curve
    from sweepsim.errors import allowed
    tp = int(tp)
    if out is not None:
        from sweepsim.plots.common import check_output
        check_output(out)
    m = get_model(model, None, "MODEL")
    if gpu not in processors():
        raise InputError(None, "GPU", f"unknown GPU {gpu!r}; {allowed(processors())}")
    c = roofline_curve(PerfModelConfig(kind="roofline", context_tokens=context), (m.name, gpu, tp))
    prof = load_db(DEFAULT_DB).get((m.name, gpu, tp))
    click.echo(f"{m.name} on {tp} x {gpu} (roofline; decode context {context} tokens)")
    click.echo("profiled: the table's medians at these batch tokens (prompt_size x batch_size); its decode times "
               "ignore the context, the roofline's decode is bt sequences of --context tokens each")
    click.echo(f"{'batch tokens':>12} {'prefill [s]':>12} {'profiled':>10} {'decode [s]':>11} {'profiled':>10}")
    for k, p, t in zip(c.knots, c.prompt_s, c.token_s):
        pp = tt = ""
        if prof is not None and np.any(prof.knots == k):
            j = int(np.flatnonzero(prof.knots == k)[0])
            pp, tt = f"{prof.prompt_s[j]:.4f}", f"{prof.token_s[j]:.4f}"
        if k <= 65536:
            click.echo(f"{int(k):>12} {p:>12.4f} {pp:>10} {t:>11.4f} {tt:>10}")
    if out is not None:   # (checked before anything was printed)
        from sweepsim.plots.common import save
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
        for a, y, name, py in ((ax[0], c.prompt_s, "prefill", None if prof is None else prof.prompt_s),
                               (ax[1], c.token_s, "decode", None if prof is None else prof.token_s)):
            a.plot(c.knots, y, label="roofline")
            if py is not None:
                a.plot(prof.knots, py, "o", label="profiled (median)")
            a.set_xscale("log")
            a.set_yscale("log")
            a.set_xlabel("batch tokens")
            a.set_ylabel(f"{name} iteration [s]")
            a.grid(alpha=0.3)
            a.legend()
        fig.suptitle(f"{m.name} on {tp} x {gpu}")
        save(fig, out)
        click.echo(f"wrote {out}")
