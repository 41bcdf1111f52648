"""Names of the per-request latency metrics and of the statistics that summaries report for each
(``<metric>_<statistic>`` columns of summary.parquet; seconds, normalized_e2e in seconds per output token)."""

LATENCY_METRICS = ("ttft", "tbt", "tpot", "e2e", "queue_time", "normalized_e2e",
                   "ttft_slowdown", "tbt_slowdown", "e2e_slowdown")
#: (name, percentile): mean and max, and numpy's linear percentiles over the completed requests
STATS = (("mean", None), ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("max", None))

#: Columns of summary.parquet besides the latency statistics and the configuration's parameters.
SUMMARY_COUNTS = ("config_hash", "config_json", "application_id", "requests", "completed", "rejected", "stalled",
                  "duration",
                  "throughput_rps", "throughput_tps", "goodput_rps", "energy_j", "energy_kwh", "mean_power_w",
                  "energy_per_token_j",
                  "cost_usd", "cost_per_1m_tokens_usd", "servers")


def summary_columns() -> tuple[str, ...]:
    """Every output column of a run's summary that is not a configuration parameter."""
    return SUMMARY_COUNTS + tuple(f"{m}_{s}" for m in LATENCY_METRICS for s, _ in STATS)


#: The columns every run directory table has (readers check them: a damaged or foreign file is an error).
RUN_TABLE_COLUMNS = {
    "requests": ("request_id", "application_id", "arrival", "prompt_size", "token_size", "completed", "rejected",
                 "stalled", "prompt_instance", "token_instance", "queue_time", "ttft", "tbt", "tpot", "e2e",
                 "nth_token_overhead", "kv_transfer_time", "completion_time", "prompt_start", "prompt_end",
                 "token_start", "token_end", "kv_start", "kv_end"),
    "summary": ("requests", "completed", "duration", "throughput_rps", "throughput_tps"),  # + application_id or
    # (topology runs) region, model, request_class
    "instances": ("instance_id", "name", "sku", "processor", "server", "pool", "num_gpus", "utilization",
                  "busy_time", "iterations", "tokens_served", "prompt_time", "token_time", "mixed_time", "energy_j"),
    "iterations": ("instance", "start", "end", "num_iterations", "batch_size", "prompt_tasks", "batch_tokens",
                   "memory_bytes", "pending_requests", "pending_tasks", "borrowed"),
    "kv_transfers": ("request_id", "source", "destination", "start", "end", "bytes"),
    "endpoints": ("region", "endpoint", "model", "workload", "instances", "kv_capacity_bytes", "kv_utilization"),
}
