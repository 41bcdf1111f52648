"""Plots from the Parquet outputs of ``sweepsim run`` and ``sweepsim grid`` (Polars in, matplotlib out, headless).

- :func:`gantt.gantt_figure`: iterations per instance of a debug run, KV transfers between rows.
- :func:`latency.latency_figure`: TTFT / TBT / E2E CDFs of one or more runs, SLO lines.
- :func:`sweep.sweep_figure`: any two summary columns of a sweep, hue / facet / Pareto front.
- :func:`timeline.timeline_figure`: instances per pool, queue length, memory, arrivals over time.

Each returns a ``matplotlib.figure.Figure``; :func:`common.save` writes it as PNG, SVG or PDF.
"""
