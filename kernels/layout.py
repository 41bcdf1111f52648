"""Kernel inputs and outputs, each declared once by name.

Every per-configuration parameter, per-request and per-instance output and iteration-log column is one name
in one tuple below. The kernels index the packed arrays through the index tuples derived from them
(``PI.max_batch_size``, ``RF.prompt_end``, ...: compile-time constants for Numba), and the Python side
(``sweepsim.engine.simulate``) packs and unpacks by the same names, so there are no column numbers to keep in step:
adding a parameter or an output is one line here (plus the code that sets and uses it).
"""
from collections import namedtuple


def _index(name: str, columns: tuple) -> tuple:
    """A namedtuple instance mapping each column name to its position."""
    return namedtuple(name, columns)(*range(len(columns)))


#: Integer parameters of a configuration (codes from ``kernels.enums``; flags are 0 / 1).
PARAM_INT = (
    "instance_type",              # InstanceType: ORCA or SPLITWISE batching
    "scheduler",                  # Scheduler code
    "co_located",                 # 1: the scheduler puts both phases of a request on one instance
    "max_batch_size",             # tasks per batch
    "max_batch_tokens",           # token budget per iteration (Splitwise instances)
    "max_preemptions",            # iterations a head task may wait before it is starved
    "kv_bytes_per_token",         # KV-cache bytes per token of the model
    "prompt_max_pending_tokens",  # mixed_pool: pending prompt tokens above which it borrows
    "debug",                      # 1: keep the iteration log
    "network",                    # KV transfers: 0 dedicated links, 1 shared NICs
    "event_order",                # EventOrder: how simultaneous events are ordered
    "topology",                   # 1: regions, model endpoints and request classes (kernels.serving_nb)
    "n_regions",                  # topology: regions (columns of the region-order and endpoint tables)
    "n_orders",                   # topology: region priority orders of the trace (Workload.serve_code)
    "n_models",                   # topology: models (topology order: columns of the spot pools and lock-outs)
    "feed_on_enqueue",            # topology: a batch/dev request queued at its arrival may be fed at once
    "feed_count_1",               # topology: requests fed per completion in feed band 1..4 (0: unused band)
    "feed_count_2",
    "feed_count_3",
    "feed_count_4",
    "scale_level",                # autoscaling (kernels.scaling_nb): 0 none, 1 spot pool + same-model reclaim, 2 donation
    "scale_policy",               # ScalePolicy: the signal evaluated (KV utilisation, Chiron's, queue length)
    "scale_instant",              # 1: capacity changes at once, the delays are lock-outs only (SageServe parity)
    "scale_min",                  # serving instances an endpoint keeps
    "scale_max",                  # most serving + starting instances of an endpoint (0: no limit)
    "scale_seed",                 # seed of the donation draws (splitmix64)
    "plan_arbiter",               # PlanArbiter: how hourly plans are applied (kernels.scaling_nb; 0: no plans)
    "plan_ticks",                 # planning ticks (rows of plan targets in Scale.p)
    "plan_minutes",               # forecast minutes (rows of forecast tokens in Scale.p, after the targets)
)
#: Float parameters of a configuration.
PARAM_FLOAT = (
    "transfer_bandwidth",         # KV link bandwidth [bytes/s]
    "retry_delay",                # a KV transfer waiting for destination memory retries after [s]
    "end_time",                   # the run stops at the first event at or after [s]
    "mixed_factor",               # iteration time of a mixed batch = prompt time x this
    "iteration_overhead",         # seconds added to every iteration (SageServe's parity value: 0.01)
    "route_threshold",            # topology: a region is chosen if its endpoint's KV utilisation is below this
    "route_delay",                # topology: global router -> endpoint delay [s]
    "dev_sla_fraction",           # topology: a dev request's priority at an instance is arrival + this x sla
    "feed_util_1",                # topology: upper KV utilisation of feed band 1..4 (ascending; -1: unused)
    "feed_util_2",
    "feed_util_3",
    "feed_util_4",
    "scale_upper",                # autoscaling: scale up when the policy's signal is above this
    "scale_lower",                # ... down when below this
    "scale_interval",             # an endpoint is evaluated on arrival if more than this after its last evaluation [s]
    "scale_timer",                # every endpoint is evaluated every this many seconds (0: never) [s]
    "spin_up",                    # a donated instance serves after [s] (and the lock-out after a donation)
    "reclaim_delay",              # a reclaimed spot instance serves after [s] (and the lock-out after a reclaim)
    "spin_down",                  # a drained instance enters the spot pool after [s] (and the lock-out after a scale-down)
    "chiron_pending_time",        # chiron policy: a dev endpoint scales up above this estimated pending time [s]
    "chiron_prompt_time",         # ... estimated seconds per queued request
    "chiron_decode_throughput",   # ... estimated output tokens per second per instance
    "plan_start",                 # plans: time of the first planning tick [s]
    "plan_interval",              # plans: seconds between planning ticks
    "plan_override",              # LT-U: with no planned change left, scale up above this KV utilisation
    "plan_ratio",                 # LT-UA: ... above this ratio of observed to forecast tokens per minute
)
#: Per-instance inputs (int64; bytes, codes, indices) and per-server inputs (float64, bytes/s) of a configuration.
INSTANCE_IN = ("max_memory", "weights", "tag", "perf", "server", "kv_per_token", "endpoint")
SERVER_IN = ("nic_bw", "nvlink_bw")
#: Per-request outputs (float: times in seconds, NaN when the stage never happened).
REQUEST_FLOAT = ("prompt_start", "prompt_end", "token_start", "token_end", "kv_start", "kv_end",
                 "fed_time")      # topology: when the request entered global routing (NaN: never)
REQUEST_INT = ("completed", "prompt_instance", "token_instance",
               "endpoint")       # topology: the endpoint its region choice named (-1: never routed)
#: Per-instance outputs (seconds; counts; bytes).
INSTANCE_FLOAT = ("busy_time", "time_prompt", "time_token", "time_mixed",
                  "serving_time", "starting_time", "draining_time", "spot_time")   # lifecycle states [s]
INSTANCE_INT = ("iterations", "tokens_served", "final_memory")
#: Per-configuration topology tables (int64, packed one after another, ``kernels.serving_nb``): per endpoint
#: its region, service (model x workload silo), model (topology order), silo (0 any, 1 prod, 2 dev), group
#: scheduler code and group range; per group its
#: instance range; the endpoint of (service, region) (-1: none); the service of (model, workload) (-1: not
#: served); the regions of each priority order (-1 padded to n_regions columns).
TOPOLOGY = ("ep_region", "ep_service", "ep_model", "ep_silo", "ep_scheduler", "ep_first_group", "ep_groups",
            "group_first_instance", "group_instances", "endpoint_of", "service_of", "order_regions")
#: Autoscaling: one row per instance move (``kernels.scaling_nb``; action codes ``ScaleAction``), the endpoint's
#: serving / starting / draining counts and its region's spot-pool size after it.
SCALING_LOG = ("time", "endpoint", "action", "instance", "from_model", "serving", "starting", "draining", "spot")
#: Per endpoint: instance-seconds serving, starting and draining, seconds its serving instances ran a batch, and
#: seconds its instances (serving, draining) ran prompt-only, decode-only and mixed batches (for energy).
ENDPOINT_TIME = ("serving", "starting", "draining", "busy", "prompt", "token", "mixed")
#: Columns of the debug iteration log (one row per completed contiguous run of iterations).
ITERATION_LOG = ("instance", "start", "end", "num_iterations", "batch_size", "prompt_tasks", "batch_tokens",
                 "memory_bytes", "pending_requests", "pending_tasks", "borrowed")

PI = _index("PI", PARAM_INT)
PF = _index("PF", PARAM_FLOAT)
RF = _index("RF", REQUEST_FLOAT)
RI = _index("RI", REQUEST_INT)
IF = _index("IF", INSTANCE_FLOAT)
II = _index("II", INSTANCE_INT)
LOG = _index("LOG", ITERATION_LOG)
SLOG = _index("SLOG", SCALING_LOG)
ET = _index("ET", ENDPOINT_TIME)
TOPO = _index("TOPO", TOPOLOGY)
CI = _index("CI", INSTANCE_IN)
CS = _index("CS", SERVER_IN)
