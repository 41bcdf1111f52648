"""Names of the per-request latency metrics and of the statistics that summaries report for each
(``<metric>_<statistic>`` columns of summary.parquet; seconds, normalized_e2e in seconds per output token)."""

LATENCY_METRICS = ("ttft", "tbt", "tpot", "e2e", "queue_time", "normalized_e2e")
#: (name, percentile): mean and max, and numpy's linear percentiles over the completed requests
STATS = (("mean", None), ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("max", None))
