"""A generated or imported trace drawn: arrivals per second (per application) and the prompt / output size
CDFs (``sweepsim trace gen|import --plot``).
"""
import math
from pathlib import Path

import numpy as np

from sweepsim.atomic import atomic_write
from sweepsim.errors import InputError, allowed, check_writable


def plot_trace(cols: dict, path, title: str = ""):
    """Arrivals per second (per application) and the prompt / output size CDFs, written atomically (text
    drawn as given, never as mathtext)."""
    import matplotlib
    with matplotlib.rc_context({"text.parse_math": False}):
        return _plot_trace(cols, path, title)


def _plot_trace(cols: dict, path, title: str = ""):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    arrival = np.asarray(cols["arrival_timestamp"])
    app = np.asarray(cols["application_id"])
    fig = Figure(figsize=(14, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_rate, ax_p, ax_t = fig.subplots(1, 3)
    end = float(arrival[-1]) if len(arrival) else 1.0
    width = max(1.0, math.ceil(end / 2000.0))  # at most ~2000 bins
    nbins = int(end // width) + 1
    apps = np.unique(app)
    q = np.linspace(0.0, 1.0, 1001)
    for a in apps:
        sel = app == a
        label = f"app {a}" if len(apps) > 1 else None
        counts = np.bincount((arrival[sel] // width).astype(np.int64), minlength=nbins)
        ax_rate.step(np.arange(nbins) * width, counts / width, where="post", lw=0.8, label=label)
        for ax, col in ((ax_p, "prompt_size"), (ax_t, "token_size")):
            x = np.asarray(cols[col])[sel]
            if len(x):
                ax.plot(np.quantile(x, q), q, label=label)
    if len(apps) > 1:
        counts = np.bincount((arrival // width).astype(np.int64), minlength=nbins)
        ax_rate.step(np.arange(nbins) * width, counts / width, where="post", lw=0.8, color="k", alpha=0.6,
                     label="all")
    ax_rate.set(xlabel="time [s]", ylabel=f"arrivals per second ({width:g} s bins)", title="arrival rate")
    ax_p.set(xlabel="prompt size [tokens]", ylabel="CDF", title="prompt sizes", xscale="log")
    ax_t.set(xlabel="output size [tokens]", ylabel="CDF", title="output sizes", xscale="log")
    for ax in (ax_rate, ax_p, ax_t):
        ax.grid(alpha=0.3)
        if len(apps) > 1:
            ax.legend()
    if title:
        fig.suptitle(title)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower(), dpi=110))


def check_plot(path, fld="--plot"):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    ext = path.suffix.lstrip(".").lower()
    if ext not in formats:
        raise InputError(path, fld, f"unknown image format {path.suffix or '(no extension)'!r}; "
                                    f"{allowed('.' + f for f in sorted(formats))}")
    return check_writable(path, fld, is_dir=False)
