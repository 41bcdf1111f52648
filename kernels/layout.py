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
)
#: Float parameters of a configuration.
PARAM_FLOAT = (
    "transfer_bandwidth",         # KV link bandwidth [bytes/s]
    "retry_delay",                # a KV transfer waiting for destination memory retries after [s]
    "end_time",                   # the run stops at the first event at or after [s]
    "mixed_factor",               # iteration time of a mixed batch = prompt time x this
)
#: Per-request outputs (float: times in seconds, NaN when the stage never happened).
REQUEST_FLOAT = ("prompt_start", "prompt_end", "token_start", "token_end", "kv_start", "kv_end")
REQUEST_INT = ("completed", "prompt_instance", "token_instance")
#: Per-instance outputs (seconds; counts; bytes).
INSTANCE_FLOAT = ("busy_time", "time_prompt", "time_token", "time_mixed")
INSTANCE_INT = ("iterations", "tokens_served", "final_memory")
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
