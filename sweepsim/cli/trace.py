"""``sweepsim trace``: import real traces and generate synthetic ones (see sweepsim.workload.sampling and sweepsim.workload.azure)."""
from pathlib import Path

import click

from sweepsim.cli.common import OneLineErrorGroup, OutputPath
from sweepsim.errors import InputError, allowed
from sweepsim.workload.limits import MAX_ID




@click.group("trace", cls=OneLineErrorGroup)
def trace_group():
    """Import real request traces and generate synthetic ones (CSV or Parquet, sweepsim trace format)."""


def _summary(cols) -> str:
    import numpy as np

    arr = cols["arrival_timestamp"]
    n = len(arr)
    if n == 0:
        return "0 requests"
    span = float(arr[-1] - arr[0])
    rate = f", {(n - 1) / span:.3f} req/s" if span > 0 else ""
    apps = np.unique(cols["application_id"])
    return (f"{n} requests, {len(apps)} application(s), arrivals {float(arr[0]):.3f}-{float(arr[-1]):.3f} s{rate}; "
            f"prompt mean {float(np.mean(cols['prompt_size'])):.1f} tokens, output mean "
            f"{float(np.mean(cols['token_size'])):.1f} tokens")


@trace_group.command("import")
@click.argument("fmt", metavar="FORMAT")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=OutputPath(dir_okay=False, path_type=Path),
              help="Output trace (.csv or .parquet).")
@click.option("--drop-bad", is_flag=True, help="Drop rows with zero/negative tokens or unparseable timestamps "
                                               "(reported on stderr) instead of failing.")
@click.option("--sort", "sort", is_flag=True, help="Sort the requests by timestamp instead of failing on "
                                                   "out-of-order rows.")
@click.option("--app-id", default=0, show_default=True, type=click.IntRange(min=0, max=MAX_ID),
              help="application_id of every request.")
@click.option("--plot", type=OutputPath(dir_okay=False, path_type=Path),
              help="Also draw arrivals per second and the size CDFs to this image (e.g. out.png).")
@click.option("--model", help="Annotate model: one name or fractions 'A=0.4,B=0.6'.")
@click.option("--regions", help="Region priority order of every request, e.g. 'westus,centralus,eastus' (with "
                                "--region-mix: the order of the regions after the first).")
@click.option("--region-mix", help="Fractions of the first priority region, e.g. 'westus=0.5,eastus=0.5' (the "
                                   "other regions follow in --regions order, else in this order).")
@click.option("--workload", help="Annotate workload: prod | batch | dev | fractions 'prod=0.85,batch=0.05,dev=0.1' "
                                 "(batch: prod batch jobs of --batch-job-size requests).")
@click.option("--sla", help="Annotate an SLA [s]: one number or per class 'prod=10,batch=3600,dev=86400' (a class "
                            "left out: no SLA).")
@click.option("--batch-job-size", type=int, help="Consecutive batch requests per batch job (batch_id; default 128).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Random seed of the annotation draws (0 to 2**64-1).")
def import_cmd(fmt, path, out, drop_bad, sort, app_id, plot, seed, **annotation_opts):
    """Convert a real trace into the sweepsim trace format.

    FORMAT is 'azure': the Azure LLM inference traces (2023 or 2024 release; CSV or Parquet with columns
    TIMESTAMP, ContextTokens, GeneratedTokens). Arrivals become seconds since the first request, request
    ids follow arrival order, ContextTokens -> prompt_size, GeneratedTokens -> token_size.

    \b
    Multi-region serving annotations (drawn as `trace gen` draws them, seeded by --seed), e.g.
      sweepsim trace import azure week.csv --out week.parquet --model A=0.4,B=0.6 \\
        --regions westus,centralus,eastus --region-mix westus=0.5,eastus=0.3,centralus=0.2 \\
        --workload prod=0.85,batch=0.05,dev=0.1 --sla prod=10,batch=3600,dev=86400 --seed 1
    """
    import numpy as np

    from sweepsim.workload.azure import FORMATS, import_azure
    from sweepsim.plots.trace import check_plot, plot_trace
    from sweepsim.workload.files import check_output, trace_table, write_trace
    from sweepsim.workload.sampling import annotation_columns
    from sweepsim.workload.spec import MAX_SEED, parse_annotations

    if fmt not in FORMATS:
        raise InputError(None, "FORMAT", f"unknown trace format {fmt!r}; {allowed(FORMATS)}")
    if not 0 <= seed < MAX_SEED:
        raise InputError(None, "--seed", f"must be from 0 to 2**64-1, got {seed}")
    keys = {"region_mix": "region"}
    ann = parse_annotations({keys.get(k, k): v for k, v in annotation_opts.items() if v is not None}, None,
                            fld=lambda k: "--region-mix" if k == "region" else "--" + k.replace("_", "-"))
    # output locations are checked before the import
    check_output(out)
    if out.exists() and path.exists() and out.resolve() == path.resolve():
        raise InputError(out, "--out", "is the input trace; write the converted trace to another file")
    if plot is not None:
        check_plot(plot)
    az = import_azure(path, drop_bad=drop_bad, sort=sort)
    if az.dropped:
        click.echo(f"warning: {path}: dropped {az.report}", err=True)
    n = len(az.arrival)
    cols = {"request_id": np.arange(n, dtype=np.int64), "request_type": np.full(n, 2, np.int64),
            "application_id": np.full(n, app_id, np.int64), "arrival_timestamp": az.arrival,
            "batch_size": np.ones(n, np.int64), "prompt_size": az.prompt, "token_size": az.token}
    if ann.any():
        cols.update(annotation_columns(ann, n, seed))
    write_trace(trace_table(cols), out)
    if plot is not None:
        plot_trace(cols, plot, title=str(path.name))
    click.echo(f"{out}: {_summary(cols)}")


def _cli_field(key, app=None, labels=()):
    opt = "--" + key.replace("_", "-")
    return opt if app is None else f"--app {labels[app]}: {key}"


def _parse_app_option(text: str, i: int) -> dict:
    """``ID:SIZES[:key=value,...]``; SIZES may itself contain ':' (fixed:P,T)."""
    fld = f"--app {text}"
    head, sep, rest = text.partition(":")
    try:
        app_id = int(head)
    except ValueError:
        app_id = -1
    if not sep or app_id < 0:
        raise InputError(None, fld, "expected ID:SIZES[:key=value,...] with an integer ID >= 0, e.g. "
                                    "0:azure-code:rate=5")
    size_parts, opts = [], {}
    for seg in rest.split(":"):
        if "=" in seg:
            for kv in seg.split(","):
                k, eq, v = kv.partition("=")
                k = k.strip().replace("-", "_")
                if not eq or not k:
                    raise InputError(None, fld, f"bad option {kv!r}; expected key=value")
                if k in opts:
                    raise InputError(None, fld, f"option {k!r} is given twice")
                opts[k] = v.strip()
        elif opts:
            raise InputError(None, fld, f"options (key=value) must come after the sizes, got {seg!r}")
        else:
            size_parts.append(seg)
    d = {"application_id": app_id, **opts}
    if size_parts and any(size_parts):
        d["sizes"] = ":".join(size_parts)
    return d


SIZES_HELP = ("Request sizes: azure-code | azure-conv (resample (prompt, output) pairs of the shipped Azure 2023 "
              "traces) | trace:PATH (the same from any trace file) | fixed:P,T | "
              "lognormal:MU_P,SIGMA_P,MU_T,SIGMA_T | uniform:PMIN,PMAX,TMIN,TMAX.")


@trace_group.command("gen")
@click.option("--sizes", help=SIZES_HELP)
@click.option("--independent", is_flag=True, default=None,
              help="Sample prompt and output sizes independently (as SplitwiseSim's generator).")
@click.option("--rate", type=float, help="Mean arrival rate [req/s] (with --profile: rescales the profile to "
                                         "this mean; with --replay: time-compresses to this rate).")
@click.option("--cv", type=float, help="Coefficient of variation of the gaps: gamma arrivals (1 = Poisson, "
                                       "> 1 bursty).")
@click.option("--replay", is_flag=True, default=None,
              help="Replay the size source's own timestamps and sizes (azure-code, azure-conv, trace:PATH).")
@click.option("--scale", type=float, help="With --replay: time-compress to K x the original rate.")
@click.option("--profile", type=click.Path(dir_okay=False),
              help="Rate profile CSV with columns time [s, from 0], rate [req/s]; or 'diurnal': the built-in daily "
                   "profile rate * s(t) / mean(s), s(t) = q + (1 - q) (1 + cos(2 pi (t - 3600 h) / P)) / 2 with "
                   "--peak-hour h, --trough-ratio q, --period P (--rate: the mean rate).")
@click.option("--peak-hour", type=float, help="Diurnal profile: hour of the peak rate (default 14).")
@click.option("--trough-ratio", type=float, help="Diurnal profile: lowest / highest rate, 0 to 1 (default 0.3).")
@click.option("--period", type=float, help="Diurnal profile: period [s] (default 86400).")
@click.option("--profile-interp", type=str, help="Rate between profile points: step (default) or linear.")
@click.option("--duration", type=float, help="Arrivals in [0, S) seconds.")
@click.option("--count", type=int, help="Number of requests (with --duration: at most).")
@click.option("--app", "apps", multiple=True, metavar="ID:SIZES[:key=value,...]",
              help="One application (repeatable), e.g. --app 0:azure-code:rate=5 --app 1:azure-conv:rate=10,cv=2; "
                   "keys as the options (rate, cv, replay, scale, profile, independent, prompt_max, workload=batch, "
                   "slo_ttft, ...); the other options are defaults for every application.")
@click.option("--prompt-min", type=int, help="Clip prompt sizes below (default 1).")
@click.option("--prompt-max", type=int, help="Clip prompt sizes above.")
@click.option("--token-min", type=int, help="Clip output sizes below (default 1).")
@click.option("--token-max", type=int, help="Clip output sizes above.")
@click.option("--workload", help="Annotate workload: prod | batch | dev | fractions "
                                 "'prod=0.85,batch=0.05,dev=0.1' (prod: interactive; batch: prod batch jobs, "
                                 "batch_id >= 0; dev: opportunistic).")
@click.option("--batch-job-size", type=int, help="Consecutive batch requests of an application per batch job "
                                                 "(batch_id; default 128).")
@click.option("--sla", help="Annotate an SLA [s]: one number or per class 'prod=10,batch=3600,dev=86400' (a class "
                            "left out: no SLA).")
@click.option("--slo-ttft", help="Annotate a TTFT SLO [s]: one number or per workload 'prod=1,batch=60'.")
@click.option("--slo-e2e", help="Annotate an end-to-end SLO [s]: one number or per workload.")
@click.option("--model", help="Annotate model: one name or fractions 'llama2-70b=0.5,bloom-176b=0.5'.")
@click.option("--region", help="Annotate region (the first of the priority order): one name or fractions "
                              "'eastus=0.7,westus=0.3'.")
@click.option("--regions", help="Region priority order, e.g. 'westus,eastus,centralus': every request's, or, with "
                                "--region, the order of the regions after the first.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed (0 to 2**64-1).")
@click.option("--max-requests", type=click.IntRange(min=1),
              help="Refuse traces estimated above N requests (default: $SWEEPSIM_MAX_REQUESTS, else 20000000).")
@click.option("--out", "out", required=True, type=OutputPath(dir_okay=False, path_type=Path),
              help="Output trace (.csv or .parquet).")
@click.option("--plot", type=OutputPath(dir_okay=False, path_type=Path),
              help="Also draw arrivals per second and the size CDFs to this image (e.g. out.png).")
def gen_cmd(apps, seed, max_requests, out, plot, **opts):
    """Generate a synthetic trace (seeded, deterministic) in the sweepsim trace format.

    \b
    Examples:
      sweepsim trace gen --sizes azure-conv --rate 80 --duration 600 --seed 0 --out conv80.parquet
      sweepsim trace gen --sizes azure-code --rate 50 --cv 3 --count 100000 --out bursty.csv
      sweepsim trace gen --sizes azure-conv --replay --scale 10 --duration 120 --out replay.parquet
      sweepsim trace gen --app 0:azure-code:rate=5 --app 1:azure-conv:rate=10 --duration 600 --out mix.parquet
      sweepsim trace gen --sizes azure-conv --rate 115.74 --duration 86400 --profile diurnal \\
        --model A=0.25,B=0.25,C=0.25,D=0.25 --region westus=0.5,eastus=0.3,centralus=0.2 \\
        --regions westus,eastus,centralus --workload prod=0.85,batch=0.05,dev=0.1 \\
        --sla prod=10,batch=3600,dev=86400 --out day.parquet
    """
    from sweepsim.plots.trace import check_plot, plot_trace
    from sweepsim.workload.files import check_output, trace_table, write_trace
    from sweepsim.workload.sampling import check_limit, generate_columns
    from sweepsim.workload.spec import parse_spec

    # output locations and the size limit are checked before anything is generated
    check_output(out)
    if plot is not None:
        check_plot(plot)
    d = {k: v for k, v in opts.items() if v is not None}
    d["seed"] = seed
    labels = list(apps)
    if apps:
        d["apps"] = [_parse_app_option(a, i) for i, a in enumerate(apps)]
    elif "sizes" not in d:
        raise InputError(None, "--sizes", "missing (request sizes), or give applications with --app; "
                                          + SIZES_HELP[len("Request sizes: "):])

    def fld(key, app=None):
        return _cli_field(key, app, labels)

    spec = parse_spec(d, None, fld=fld)
    limit = check_limit(spec, None, fld, max_requests)
    cols = generate_columns(spec, None, fld, limit)
    if len(cols["arrival_timestamp"]) == 0:
        raise InputError(None, "--duration", "no request arrives within the duration; raise it or the rate")
    write_trace(trace_table(cols, spec), out)
    if plot is not None:
        plot_trace(cols, plot, title=out.name)
    click.echo(f"{out}: {_summary(cols)}")
