"""Integer codes shared by the kernels and the Python layer (kernels never see strings)."""
from typing import NamedTuple


class _TaskState(NamedTuple):
    NONE: int = 0
    QUEUED: int = 1
    RUNNING: int = 2
    BLOCKED: int = 3
    COMPLETED: int = 4


TaskState = _TaskState()


class _InstanceType(NamedTuple):
    ORCA: int = 0        # FCFS by request arrival, no token budget, no preemption
    SPLITWISE: int = 1   # token budget, five-phase batch selection with preemption


InstanceType = _InstanceType()


class _Tag(NamedTuple):
    NONE: int = 0
    PROMPT: int = 1
    TOKEN: int = 2


Tag = _Tag()


class _Scheduler(NamedTuple):
    ROUND_ROBIN: int = 0
    RANDOM: int = 1
    JSQ: int = 2
    TOKEN_JSQ: int = 3
    KV_ROUND_ROBIN: int = 4
    KV_JSQ: int = 5
    KV_TOKEN_JSQ: int = 6
    MIXED_POOL: int = 7


Scheduler = _Scheduler()


class _PerfKind(NamedTuple):
    DB: int = 0
    CONSTANT: int = 1


PerfKind = _PerfKind()


class _FlowState(NamedTuple):
    NONE: int = 0
    WAITING: int = 1     # arrived, destination memory insufficient: retried every retry_delay seconds
    RUNNING: int = 2
    DONE: int = 3


FlowState = _FlowState()


class _EventOrder(NamedTuple):
    BY_KIND: int = 0     # run ends, then KV events, then arrivals; lower id first
    REFERENCE: int = 1   # SplitwiseSim's time-only heapq order (kernels.event_order_nb)


EventOrder = _EventOrder()


class _ScalePolicy(NamedTuple):
    UTILIZATION: int = 0   # KV utilisation (SageServe's BasicArbiter)
    CHIRON: int = 1        # dev endpoints: estimated pending time; others: fraction of instances holding interactive work
    QUEUE: int = 2         # resident + queued requests per serving instance


ScalePolicy = _ScalePolicy()


class _Lifecycle(NamedTuple):
    SERVING: int = 0
    STARTING: int = 1
    DRAINING: int = 2
    SPOT: int = 3


Lifecycle = _Lifecycle()


class _ScaleAction(NamedTuple):
    RECLAIM: int = 0     # a spot instance of the endpoint's model is taken back
    DONATE: int = 1      # a spot instance of another model is taken (level 2)
    READY: int = 2       # a starting instance joins its endpoint's groups
    DRAIN: int = 3       # a serving instance leaves its groups
    SPOT: int = 4        # a drained instance enters its region's spot pool


ScaleAction = _ScaleAction()


class _PlanArbiter(NamedTuple):
    NONE: int = 0          # no plans (reactive scaling only, or a fixed allocation)
    IMMEDIATE: int = 1     # LT-I: each plan applied at its tick, no reactive scaling
    DEFERRED: int = 2      # planned scale-ups made one per arrival (SageServe's short_term_scaling arbiter)
    UTILIZATION: int = 3   # LT-U: planned changes made when the utilisation agrees, or above plan_override
    FORECAST: int = 4      # LT-UA: ... or when observed tokens exceed plan_ratio x the forecast


PlanArbiter = _PlanArbiter()
