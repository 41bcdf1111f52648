"""Plain-Python reference implementation of the SplitwiseSim semantics.

This is the slow, readable, object-per-request discrete-event engine used as the second
engine in differential tests against the Numba kernel.  It implements
``../shared/spec/SEMANTICS.md`` (the SplitwiseSim behavioural specification) sections 1-6 (section numbers are cited in the
docstrings below as "spec X.Y") with the deliberate sweepsim deviations listed here:

D1. Event ordering, ``params["event_order"]``: ``"reference"`` is the reference's own heap:
    ``heapq`` over entries compared by time only, every arrival pushed up front in trace order,
    a moved event's old entry left in the heap and skipped when popped. ``"by_kind"``: a heap
    keyed ``(time, kind, id, seq)`` instead.  kind 0 = iteration completion (id = instance id),
    kind 1 = KV flow event, completion or retry (id = request index), kind 2 = a routed request
    reaching its endpoint (topologies only, id = routing sequence number), kind 3 = request
    arrival (id = request index).  At most one live event exists per ``(kind, id)``.  Zero-delay
    actions still run synchronously inside their caller (all overheads are 0).
D2. Requests with ``token_size == 1`` have no token task and no KV flow: the request
    completes with its prompt, and the prompt instance frees the request's memory then.
D3. ``pause_iteration``: if the new run length N' exceeds N the pause flag is set but the
    completion event is left alone.
D4. ``random`` scheduler: ``instances[int(u * len(instances))]`` with ``u`` from the input.
D5. ``kv_token_jsq`` / ``overlap_kv_token_jsq`` increment ``sched_pending_tokens``.

Topologies (``params["topology"]``; docs/semantics.md, "Regions, endpoints and request classes"),
written from that page, not from ``kernels/serving_nb.py``.  Without ``params["topology"]`` none of
this applies and the engine above is unchanged.

T1. Topology: regions; endpoints, each serving one *service* (a model, or its prod-only or dev-only
    silo) in one region, on ORCA instances split into replica groups (lists of instances).  The
    inputs give every request its service (its model and workload resolved to a silo, as the
    engine's tables), its class (``"interactive"``, ``"batch"``, ``"dev"``), its SLA and its
    region priority order (region indices).  Each instance has its own model's KV bytes per token:
    a request's task memories are set when it reaches its instance.
T2. Utilisation of an endpoint = sum over its instances of (memory - weights), i.e. KV bytes in
    use, over the sum of (max_memory - weights); recomputed from the instances whenever asked.
T3. Trace arrival (an arrival event): an interactive request enters global routing at once; a
    batch or dev request is appended to the FIFO queue ``(service, queue region, class)``, the
    queue region being the first region of its priority order that has an endpoint of its service.
    With ``on_enqueue`` that endpoint then feeds ``feed_count`` requests (T6).
T4. Global routing at time t: the candidates are the endpoints of the request's service in the
    regions of its priority order, in that order; the first with utilisation < threshold, else the
    least utilised (first on ties).  The request's fed time is t, its endpoint the chosen one.  With
    delay 0 it reaches the endpoint at once (T5); else a kind-2 event at t + delay (routing order
    among equal times: its id is the routing sequence number).
T5. Endpoint routing: the group whose smallest instance pending-token count is smallest (first on
    ties); pending tokens of an instance = the tokens of the tasks in its pending_queue (prompt:
    prompt_size, decode: 1), summed when asked.  Then the instance of the group: ``token_jsq``
    (fewest sched_pending_tokens, raised by prompt_size + 1, prompt_size for one output token) or
    ``jsq`` (fewest pending_requests), first on ties.  Prompt then decode are submitted there
    (co-located, chained).
T6. Feeding: ``feed_count(endpoint)`` = the count of the first band (bound, count x granularity)
    with utilisation <= bound, 0 above every band (and with feeding disabled).  A feed of n takes,
    n times, the head of the endpoint's ``(service, region, "batch")`` queue, else of its
    ``(service, region, "dev")`` queue (stop when both are empty), and routes it (T4) at once.
    When a run ends, each request completed by it adds the feed_count of the instance's endpoint
    right after that request's memory is freed; the sum is fed once the instance has started its
    next run.
T7. Admission order at an instance: pending_requests is sorted (insort_right) by the request's
    order key: its trace arrival, plus ``dev_sla_fraction x sla`` for a dev request with an SLA.
T8. Topologies run in the by_kind order only: iteration ends, KV events, routed requests, arrivals.
    Outputs add ``fed_time`` (NaN: never routed) and ``endpoint`` (-1: never routed).

Reactive autoscaling (``params["topology"]["scaling"]``; docs/semantics.md, "Reactive autoscaling"), written from
that page (class :class:`Autoscaler`).  Level 0 (or no ``scaling``) creates nothing: T1-T8 unchanged.

S1. Slots: every instance keeps its region and is serving (in its endpoint's groups), starting (assigned to an
    endpoint, not yet in its groups), draining (out of its groups, running what it admitted) or spot (in the FIFO
    spot list of (region, its model)).  Utilisation (T2), feeding decisions, resident / interactive-holding counts
    sum over the serving instances only; a completed request feeds the endpoint it was routed to (T6).
S2. Triggers: a routed request reaching endpoint e at t (T5, before the group choice) evaluates e when
    ``t > last(e) + interval`` (``last`` from -inf, set to t after each evaluation); with ``timer = T > 0`` a
    timer event (kind 4, after arrivals at equal times) at every kT evaluates every endpoint in endpoint order; the
    loop stops when only the timer is left.
S3. Evaluation of e (model m, region g) at t: nothing while ``t < lock(g, m)``; the policy's signal x: above the
    upper bound scale up (the max_instances cap; reclaim the head of (g, m)'s spot list, lock t + reclaim_delay;
    else at level 2 donate the head of the k-th non-empty spot list of g in model order, k = floor(u x count),
    u from splitmix64(seed), lock t + spin_up), else below the lower bound (chiron dev endpoints: nothing queued)
    scale down (more than min_instances serving: the group move's instance leaves; lock t + spin_down either way).
S4. Group moves (joining / leaving) on the last two groups, as SAGESERVE.md 3.3 (``ServingEndpoint.join`` /
    ``leave``).
S5. Real delays: a reclaimed / donated instance starts; a lifecycle event (kind 0, id = instance: the instance has
    no run then) at t + delay makes it join its groups (``ready``).  A leaving instance drains; once it holds no
    request (now, or at the end of the run that completed its last one) a lifecycle event after spin_down puts it
    into its spot list.  A donated instance takes the endpoint's model (weights, KV bytes per token, performance
    model; memory in use changes by the weight difference) when donated.
S6. Lockout delays: reclaims and idle donations join at once, a leaving instance enters its spot list at once (still
    running what it admitted); a donated instance still holding old-model requests starts, and takes the model and
    joins its groups by a lifecycle event at the end of the run that completed its last request.
S7. Outputs (topologies, names as ``RunResult``'s): ``scaling_log`` (rows of ``SCALING_LOG``), ``endpoint_time``
    (per endpoint: serving / starting / draining instance-seconds and the seconds its serving instances ran a batch,
    a batch still running at the end counting until the end clock), ``region_spot_time`` (per region: spot
    instance-seconds) and per instance ``serving_time``, ``starting_time``, ``draining_time``, ``spot_time``.

Public entry point: :func:`simulate`.
"""

import heapq
import math
from collections import deque

import numpy as np

# Node states (spec 2.3).
NONE, QUEUED, RUNNING, BLOCKED, COMPLETED = "none", "queued", "running", "blocked", "completed"

# Event kinds (deviation D1); the kind is the second component of the heap key.  EV_ITERATION also carries an
# instance's lifecycle events (S5); EV_TIMER is the autoscaling timer (S2).
EV_ITERATION, EV_FLOW, EV_ROUTE, EV_ARRIVAL, EV_TIMER = 0, 1, 2, 3, 4

# Autoscaling (S1-S7): lifecycle states, scaling-log actions and columns (kernels.enums / kernels.layout).
SERVING, STARTING, DRAINING, SPOT = 0, 1, 2, 3
A_RECLAIM, A_DONATE, A_READY, A_DRAIN, A_SPOT = 0, 1, 2, 3, 4
SCALING_LOG_COLUMNS = ("time", "endpoint", "action", "instance", "from_model", "serving", "starting", "draining",
                       "spot")
MASK64 = (1 << 64) - 1


class TimeOnlyEntry:
    """A heap entry that compares by time only, as the reference's ``Event.__lt__`` (D1, "reference")."""
    __slots__ = ("time", "kind", "ident", "seq")

    def __init__(self, time, kind, ident, seq):
        self.time, self.kind, self.ident, self.seq = time, kind, ident, seq

    def __lt__(self, other):
        return self.time < other.time

CO_LOCATED_SCHEDULERS = ("round_robin", "random", "jsq", "token_jsq")
KV_SCHEDULERS = ("kv_round_robin", "kv_round_robin_ethernet", "kv_jsq", "overlap_kv_jsq",
                 "kv_token_jsq", "overlap_kv_token_jsq")


# --------------------------------------------------------------------------------------
# Requests, tasks, performance model
# --------------------------------------------------------------------------------------

class Task:
    """A prompt or token task of one request (spec 2.2, 2.3).

    ``token_size`` is the number of tokens the task generates: 1 for a prompt (it is complete
    when ``generated_tokens == 1``), ``request.token_size - 1`` for a token task.
    """

    def __init__(self, request, kind, kv_bytes_per_token):
        self.request = request
        self.kind = kind                      # "prompt" or "token"
        self.is_prompt = kind == "prompt"
        if self.is_prompt:
            self.token_size = 1
            self.tokens_per_iteration = request.prompt_size
            self.memory = kv_bytes_per_token * (request.prompt_size + 1)   # spec 3.1
        else:
            self.token_size = request.token_size - 1
            self.tokens_per_iteration = 1
            self.memory = kv_bytes_per_token * (request.token_size - 1)    # spec 3.1
        self.state = NONE
        self.instance = None
        self.generated_tokens = 0
        self.processed_tokens = 0
        self.generating_tokens = 0
        self.processing_tokens = 0
        self.num_preemptions = 0
        self.in_batch = False                 # membership flag for the instance's batch
        self.arrival_timestamp = math.nan
        self.start_timestamp = math.nan       # first run (spec 2.3)
        self.completion_timestamp = math.nan

    def queue_key(self):
        """Splitwise pending-queue key, evaluated at insertion time (spec 3.2)."""
        return (self.num_preemptions, self.request.arrival)


class Request:
    """One trace request with its DAG: prompt -> [flow ->] token (spec 2.2, 2.4)."""

    def __init__(self, index, arrival, prompt_size, token_size, uniform, kv_bytes_per_token):
        self.index = index
        self.arrival = arrival
        self.prompt_size = prompt_size
        self.token_size = token_size
        self.uniform = uniform
        self.memory = 0                       # bytes allocated for this request (spec 3.1)
        self.prompt_task = Task(self, "prompt", kv_bytes_per_token)
        # Deviation D2: a one-token request has no token task.
        self.token_task = Task(self, "token", kv_bytes_per_token) if token_size > 1 else None
        self.prompt_instance = None
        self.token_instance = None
        self.chained = False                  # prompt.chain = [token] (spec 2.2)
        self.has_flow = False                 # KV flow node exists (spec 2.2, 5)
        self.flow_size = 0
        self.flow_running = False
        self.kv_start = math.nan
        self.kv_end = math.nan
        self.completed = False
        self.completion_time = math.nan
        # topologies (T1-T7); order_key is the admission key at an instance (T7)
        self.order_key = arrival
        self.cls = "interactive"
        self.service = None
        self.priority = ()
        self.sla = math.nan
        self.fed_time = math.nan
        self.endpoint = None

    def use_kv(self, kv_bytes_per_token):
        """T1: the task memories on an instance of a model with this KV size per token."""
        self.prompt_task.memory = kv_bytes_per_token * (self.prompt_size + 1)
        if self.token_task is not None:
            self.token_task.memory = kv_bytes_per_token * (self.token_size - 1)


class PerfModel:
    """Iteration duration of a batch (spec 4.2 step 3, spec 4.3; constant model per README)."""

    def __init__(self, perf, mixed_factor, overhead=0.0):
        self.kind = perf[0]
        self.mixed_factor = mixed_factor
        self.overhead = overhead       # seconds added to every iteration (performance_model.iteration_overhead)
        if self.kind == "db":
            self.knots = [float(k) for k in perf[1]]
            self.prompt_y = [float(y) for y in perf[2]]
            self.token_y = [float(y) for y in perf[3]]
        elif self.kind == "constant":
            self.prompt_time = float(perf[1])
            self.token_time = float(perf[2])
        else:
            raise ValueError(f"unknown performance model {self.kind!r}")

    def interpolate(self, ys, x):
        """scipy interp1d(linear, extrapolate) arithmetic, exactly as spec 4.2 step 3."""
        knots = self.knots
        i = 0                                 # bisect_left(knots, x)
        while i < len(knots) and knots[i] < x:
            i += 1
        i = min(max(i, 1), len(knots) - 1)
        lo, hi = i - 1, i
        slope = (ys[hi] - ys[lo]) / (knots[hi] - knots[lo])
        return slope * (float(x) - knots[lo]) + ys[lo]

    def iteration_duration(self, prompt_tasks, token_tasks):
        return self._duration(prompt_tasks, token_tasks) + self.overhead

    def _duration(self, prompt_tasks, token_tasks):
        """spec 4.3: bt = sum of prompt sizes + number of decodes; mixed = prompt(bt) x 1.1."""
        if self.kind == "constant":
            return self.prompt_time if prompt_tasks else self.token_time
        bt = 0
        for task in prompt_tasks:
            bt += task.request.prompt_size
        bt += len(token_tasks)
        if not token_tasks:
            return self.interpolate(self.prompt_y, bt)
        if not prompt_tasks:
            return self.interpolate(self.token_y, bt)
        return self.interpolate(self.prompt_y, bt) * self.mixed_factor


# --------------------------------------------------------------------------------------
# Instances
# --------------------------------------------------------------------------------------

class OrcaInstance:
    """ORCA iteration-level instance (spec 3.1-3.5, 3.7-3.9)."""

    def __init__(self, sim, iid, spec, params):
        self.sim = sim
        self.id = iid
        self.tag = spec.get("tag")
        self.sched_tag = None                 # "mixed" while borrowed by mixed_pool (spec 6.4)
        self.max_memory = int(spec["max_memory"])
        self.weights = int(spec["weights"])
        self.memory = int(spec["weights"])    # spec 3.1: starts at the model weights
        self.kv_bytes_per_token = spec.get("kv_bytes_per_token")   # topologies (T1)
        self.endpoint = None                  # topologies: its ServingEndpoint
        self.sched_memory = int(spec["weights"])
        self.sched_pending_tokens = 0
        self.perf = PerfModel(spec["perf"], params.get("mixed_factor", 1.1), params.get("iteration_overhead", 0.0))
        self.max_batch_size = int(params["max_batch_size"])
        self.max_batch_tokens = math.inf      # ORCA: no token budget (spec 3.2)
        self.max_preemptions = int(params.get("max_preemptions", 4))
        self.pending_queue = []               # spec 3.2
        self.pending_prompt_queue = []
        self.blocked_queue = []
        self.pending_requests = []            # sorted by request order key = arrival (insort_right; T7)
        self.request_tasks = {}               # request index -> tasks here, arrival order
        self.batch = []
        self.prompt_tasks_in_batch = []
        self.token_tasks_in_batch = []
        self.batch_tokens = 0
        self.pause_next_iteration = False
        self.completion_time = math.nan       # time E of the pending completion event
        self.iteration_duration = 0.0
        self.num_contiguous_iterations = 0
        self.busy_time = 0.0                  # spec 8.2
        self.busy_since = math.nan
        self.iterations = 0
        # autoscaling (S1-S7)
        self.life = SERVING                   # lifecycle state
        self.life_since = 0.0                 # when it entered it
        self.life_time = [0.0, 0.0, 0.0, 0.0]   # seconds per lifecycle state
        self.lifecycle = None                 # pending lifecycle event: "ready" or "spot" (S5, S6)
        self.busy_mark = math.nan             # start of the batch time not yet charged to an endpoint
        self.model = None                     # model index (topology models order)
        self.region = None
        self.switch_to = None                 # S6: the endpoint whose model a busy donated instance takes when empty

    # ---- memory (spec 3.1) ----------------------------------------------------------
    def alloc_memory(self, amount):
        self.memory += amount

    def free_memory(self, amount):
        """free_memory: memory -= m and sched_memory -= m (spec 3.1, quirk 29)."""
        self.memory -= amount
        self.sched_memory -= amount

    # ---- queues ---------------------------------------------------------------------
    def enqueue(self, task):
        """ORCA pending_queue is FIFO (spec 3.2)."""
        self.pending_queue.append(task)

    def add_to_pool(self, task):
        """request_tasks / pending_requests bookkeeping (spec 3.2, 3.3)."""
        request = task.request
        tasks = self.request_tasks.get(request.index)
        if tasks is None:
            self.request_tasks[request.index] = [task]
            # insort_right by request arrival (equal arrivals: insertion order); a topology's dev
            # requests by arrival + a fraction of their SLA (T7)
            lo, hi = 0, len(self.pending_requests)
            while lo < hi:
                mid = (lo + hi) // 2
                if request.order_key < self.pending_requests[mid].order_key:
                    hi = mid
                else:
                    lo = mid + 1
            self.pending_requests.insert(lo, request)
        else:
            tasks.append(task)

    def remove_from_pool(self, task):
        """A request leaves pending_requests when its last task here completes (spec 3.2)."""
        tasks = self.request_tasks[task.request.index]
        tasks.remove(task)
        if not tasks:
            del self.request_tasks[task.request.index]
            self.pending_requests.remove(task.request)

    def head_task(self, request):
        return self.request_tasks[request.index][0]

    def pending_tokens(self):
        """T5: tokens of the tasks waiting in pending_queue (a prompt its prompt size, a decode 1)."""
        return sum(task.tokens_per_iteration for task in self.pending_queue)

    def add_to_batch(self, task):
        """Append to the batch; open a busy interval on 0 -> 1 (spec 3.4 step 3, 8.2)."""
        self.batch.append(task)
        task.in_batch = True
        if task.is_prompt:
            self.prompt_tasks_in_batch.append(task)
        else:
            self.token_tasks_in_batch.append(task)
        if len(self.batch) == 1:
            self.busy_since = self.sim.clock
            self.busy_mark = self.sim.clock

    def remove_from_batch(self, task):
        """Remove from the batch; close the busy interval on -> 0 (spec 3.8 step 2, 8.2)."""
        self.batch.remove(task)
        task.in_batch = False
        if task.is_prompt:
            self.prompt_tasks_in_batch.remove(task)
        else:
            self.token_tasks_in_batch.remove(task)
        if not self.batch:
            self.busy_time += self.sim.clock - self.busy_since
            if self.life == SERVING and self.endpoint is not None:   # S7: busy while serving its endpoint
                self.endpoint.busy += self.sim.clock - self.busy_mark

    @staticmethod
    def remove_identical(queue, task):
        for i, other in enumerate(queue):
            if other is task:
                del queue[i]
                return True
        return False

    # ---- task arrival (spec 3.3) ------------------------------------------------------
    def task_arrival(self, task):
        task.instance = self
        task.state = QUEUED
        task.arrival_timestamp = self.sim.clock
        self.add_to_pool(task)
        self.enqueue(task)
        if task.is_prompt:
            self.pending_prompt_queue.append(task)
        if not self.batch:
            if self.memory + task.memory > self.max_memory:
                return                        # only the arriving task is tested
            self.start_iteration()
        else:
            self.arrival_with_busy_batch(task)

    def arrival_with_busy_batch(self, task):
        """ORCA: pause if the batch has room (spec 3.3)."""
        if len(self.batch) < self.max_batch_size:
            self.pause_iteration()

    # ---- batch selection (spec 3.5) ---------------------------------------------------
    def select_batch(self):
        """ORCA: FCFS over pending_requests with head-of-line memory blocking."""
        new_tasks = []
        size = len(self.batch)
        mem = self.memory
        for request in self.pending_requests:
            if size == self.max_batch_size:
                break
            task = self.head_task(request)
            if task.in_batch:
                continue
            if task.state == BLOCKED:
                new_tasks.append(task)
                size += 1
            elif task.memory + mem <= self.max_memory:
                new_tasks.append(task)
                size += 1
                mem += task.memory
            else:
                break
        return [], new_tasks

    # ---- iterations (spec 3.4, 3.7, 3.8) ----------------------------------------------
    def start_iteration(self):
        """spec 3.4 steps 1-9."""
        sim = self.sim
        now = sim.clock
        preempted, new = self.select_batch()
        for task in preempted:                # step 2
            if task.is_prompt:
                raise RuntimeError("a prompt task cannot be preempted")
            task.state = BLOCKED
            self.remove_from_batch(task)
            self.enqueue(task)
            self.blocked_queue.append(task)
        for task in new:                      # step 3
            self.remove_identical(self.pending_queue, task)
            self.remove_identical(self.blocked_queue, task)
            if task.is_prompt:
                self.remove_identical(self.pending_prompt_queue, task)
            self.add_to_batch(task)
        for request in self.pending_requests:  # step 4: count iterations waited
            head = self.head_task(request)
            if not head.in_batch:
                head.num_preemptions += 1
        if not self.batch:                    # step 5
            if not self.pending_requests:
                sim.scheduler.notify_free_instance(self)
            return
        d = self.perf.iteration_duration(self.prompt_tasks_in_batch,
                                         self.token_tasks_in_batch)   # step 6
        if not d > 0:
            raise RuntimeError(f"non-positive iteration duration {d!r}")
        if self.prompt_tasks_in_batch:         # step 7
            n = 1
        else:
            n = min(task.token_size - task.generated_tokens for task in self.batch)
        for task in self.batch:               # step 8
            task.generating_tokens = n
            task.processing_tokens = task.request.prompt_size if task.is_prompt else n
            if task.state == QUEUED:
                task.state = RUNNING
                task.start_timestamp = now
                self.alloc_memory(task.memory)
                task.request.memory += task.memory
            elif task.state == BLOCKED:
                task.state = RUNNING
        self.iteration_duration = d            # step 9
        self.num_contiguous_iterations = n
        self.completion_time = now + d * n
        sim.push(self.completion_time, EV_ITERATION, self.id)

    def pause_iteration(self):
        """Truncate the contiguous run at the current iteration boundary (spec 3.7, D3)."""
        if self.pause_next_iteration or self.prompt_tasks_in_batch:
            return
        self.pause_next_iteration = True
        now = self.sim.clock
        d = self.iteration_duration
        n = self.num_contiguous_iterations
        start = self.completion_time - (d * n)
        elapsed = now - start
        k = (now - start) // d                # Python float floor division, on purpose
        new_n = k + 1
        if new_n > n:
            return                            # deviation D3: keep the planned completion
        new_n = int(new_n)                    # integral float -> int (same arithmetic)
        for task in self.batch:
            task.generating_tokens = new_n
            task.processing_tokens = new_n
        remaining = (d * new_n) - elapsed
        self.sim.cancel(EV_ITERATION, self.id)
        self.completion_time = now + remaining
        self.sim.push(self.completion_time, EV_ITERATION, self.id)
        self.num_contiguous_iterations = new_n

    def complete_iteration(self):
        """spec 3.8: update counters, complete finished tasks in batch order, restart."""
        self.iterations += self.num_contiguous_iterations
        done = []
        for task in self.batch:
            task.processed_tokens += task.processing_tokens
            task.generated_tokens += task.generating_tokens
            task.processing_tokens = 0
            task.generating_tokens = 0
            if task.generated_tokens == task.token_size:
                done.append(task)
        serving = self.sim.serving
        feeds = {}                            # endpoint -> requests to feed, in first-completion order
        for task in done:
            self.complete_task(task)
            if serving is not None and task.request.completed:
                # T6: decided per completed request, right after its memory was freed, by the endpoint the
                # request was routed to (S1)
                ep = task.request.endpoint
                feeds[ep] = feeds.get(ep, 0) + serving.feed_count(ep)
        self.pause_next_iteration = False
        self.start_iteration()
        if serving is not None and serving.scaler is not None:
            serving.scaler.after_run(self)    # S5, S6: a draining / busy donated instance that holds nothing now
        for ep, n in feeds.items():           # T6: fed once the next run has started
            if n:
                serving.feed(ep, n)

    def complete_task(self, task):
        """Task completion (spec 2.3, 3.8 step 2; deviation D2 for one-token requests)."""
        now = self.sim.clock
        request = task.request
        task.state = COMPLETED
        task.completion_timestamp = now
        if task.is_prompt:
            self.sched_pending_tokens -= request.prompt_size
            if request.token_task is None:    # D2: free the prompt KV now
                self.free_memory(request.memory)
                request.memory = 0
        else:
            self.sched_pending_tokens -= 1
            self.free_memory(request.memory)
            request.memory = 0
        self.remove_from_batch(task)
        self.remove_from_pool(task)
        self.sim.finish_task(task)

    # ---- KV source notification (spec 3.9) --------------------------------------------
    def notify_flow_completion(self):
        if not self.pending_queue:
            return
        task = self.pending_queue[0]
        if not self.batch:
            if self.memory + task.memory > self.max_memory:
                return
            self.start_iteration()
        elif len(self.batch) < self.max_batch_size and self.batch_tokens < self.max_batch_tokens:
            self.pause_iteration()


class SplitwiseInstance(OrcaInstance):
    """Splitwise instance: token budget, priorities, preemption (spec 3.2, 3.3, 3.6)."""

    def __init__(self, sim, iid, spec, params):
        super().__init__(sim, iid, spec, params)
        self.max_batch_tokens = int(params["max_batch_tokens"])

    def enqueue(self, task):
        """insort_right on (num_preemptions, arrival), keys as they are now (spec 3.2)."""
        key = task.queue_key()
        queue = self.pending_queue
        lo, hi = 0, len(queue)
        while lo < hi:
            mid = (lo + hi) // 2
            if key < queue[mid].queue_key():
                hi = mid
            else:
                lo = mid + 1
        queue.insert(lo, task)

    def arrival_with_busy_batch(self, task):
        """Splitwise arrival with a non-empty batch (spec 3.3 rules 1-2)."""
        if (len(self.batch) < self.max_batch_size
                and self.batch_tokens + task.tokens_per_iteration <= self.max_batch_tokens):
            self.pause_iteration()
            return
        if task.is_prompt:
            bpt = self.batch_tokens - len(self.token_tasks_in_batch)
            if (len(self.prompt_tasks_in_batch) < len(self.batch)
                    and bpt + task.request.prompt_size <= self.max_batch_tokens):
                self.pause_iteration()

    def select_batch(self):
        """Five-phase selection with the exact break/continue orders of spec 3.6."""
        new_batch = []
        chosen_requests = set()
        chosen_tasks = set()
        bt = 0
        mem = self.memory
        old = list(self.batch)

        def full():
            return len(new_batch) == self.max_batch_size

        def over(task):
            return len(new_batch) > 0 and bt + task.tokens_per_iteration > self.max_batch_tokens

        def chosen(task):
            return task.request.index in chosen_requests

        def add(task):
            nonlocal bt
            new_batch.append(task)
            chosen_requests.add(task.request.index)
            chosen_tasks.add(id(task))
            bt += task.tokens_per_iteration

        # Phase 1: starved tasks, pending_queue in list order.
        for task in self.pending_queue:
            if task.num_preemptions < self.max_preemptions:
                break
            if self.head_task(task.request) is not task:
                # only a request's head task can be batched (spec 3.2). A non-head (a chained decode whose
                # prompt waits) has waited 0 iterations, so this matters only with max_preemptions 0.
                continue
            if full() or over(task):
                break
            if chosen(task):
                continue
            if task.state == BLOCKED:
                add(task)
                continue
            if task.memory + mem <= self.max_memory:
                add(task)
                mem += task.memory
        # Phase 2: waiting prompts.
        for task in self.pending_prompt_queue:
            if full() or over(task):
                break
            if chosen(task):
                continue
            if task.memory + mem <= self.max_memory:
                add(task)
                mem += task.memory
            else:
                break
        # Phase 3: preempted (blocked) decodes.
        for task in self.blocked_queue:
            if full() or over(task):
                break
            if chosen(task):
                continue
            add(task)
        # Phase 4: running decodes of the old batch.
        for task in old:
            if full() or over(task):
                break
            if chosen(task):
                continue
            add(task)
        # Phase 5: other pending requests (chosen is tested before the token budget).
        for request in self.pending_requests:
            task = self.head_task(request)
            if full():
                break
            if chosen(task):
                continue
            if over(task):
                break
            if task.state == BLOCKED:
                add(task)
            elif task.memory + mem <= self.max_memory:
                add(task)
                mem += task.memory
            else:
                break

        self.batch_tokens = bt
        preempted = [task for task in old if id(task) not in chosen_tasks]
        new = [task for task in new_batch if not task.in_batch]
        return preempted, new


# --------------------------------------------------------------------------------------
# Schedulers (spec 6)
# --------------------------------------------------------------------------------------

def first_argmin(items, key):
    """min(list, key): the first element with the minimal key (spec 6.1)."""
    best = None
    best_key = None
    for item in items:
        k = key(item)
        if best is None or k < best_key:
            best, best_key = item, k
    return best


class Scheduler:
    """Base: decides prompt/token instances and the DAG shape of each request (spec 6.1)."""

    def __init__(self, name, instances, params):
        self.name = name
        self.instances = list(instances)
        self.kv = int(params["kv_bytes_per_token"])
        self.bandwidth = float(params.get("transfer_bandwidth", 0.0))

    def schedule(self, request):
        raise NotImplementedError

    def notify_free_instance(self, instance):
        pass

    def assign_chained(self, request, instance):
        request.prompt_instance = instance
        request.token_instance = instance
        request.chained = request.token_task is not None

    def assign_flow(self, request, prompt_instance, token_instance):
        request.prompt_instance = prompt_instance
        request.token_instance = token_instance
        request.has_flow = True
        request.flow_size = self.kv * request.prompt_size   # spec 5.3: KV(prompt_size)


class CoLocatedScheduler(Scheduler):
    """round_robin, random, jsq, token_jsq: prompt and token chained on one instance (6.2)."""

    def __init__(self, name, instances, params):
        super().__init__(name, instances, params)
        self.index = 0

    def schedule(self, request):
        if not self.instances:
            raise ValueError("No instances available")
        if self.name == "round_robin":
            instance = self.instances[self.index]
            self.index = (self.index + 1) % len(self.instances)
        elif self.name == "random":
            # D4; the min() only guards u * n rounding up to n for u just below 1.
            index = min(int(request.uniform * len(self.instances)), len(self.instances) - 1)
            instance = self.instances[index]
        elif self.name == "jsq":
            instance = first_argmin(self.instances, lambda i: len(i.pending_requests))
        elif self.name == "token_jsq":
            instance = first_argmin(self.instances, lambda i: i.sched_pending_tokens)
            if request.token_task is not None:
                instance.sched_pending_tokens += request.prompt_size + 1
            else:
                instance.sched_pending_tokens += request.prompt_size   # D2
        else:
            raise ValueError(f"unknown scheduler {self.name!r}")
        self.assign_chained(request, instance)


class KVScheduler(Scheduler):
    """kv_round_robin(_ethernet), (overlap_)kv_jsq, (overlap_)kv_token_jsq (spec 6.3, D5)."""

    def __init__(self, name, instances, params):
        super().__init__(name, instances, params)
        self.prompt_instances = [i for i in instances if i.tag == "prompt"]
        self.token_instances = [i for i in instances if i.tag == "token"]
        self.prompt_index = 0
        self.token_index = 0

    def pick(self, pool, which):
        if self.name.startswith("kv_round_robin"):
            if which == "prompt":
                instance = pool[self.prompt_index]
                self.prompt_index = (self.prompt_index + 1) % len(pool)
            else:
                instance = pool[self.token_index]
                self.token_index = (self.token_index + 1) % len(pool)
            return instance
        if self.name in ("kv_jsq", "overlap_kv_jsq"):
            return first_argmin(pool, lambda i: len(i.pending_requests))
        return first_argmin(pool, lambda i: i.sched_pending_tokens)

    def schedule(self, request):
        has_token = request.token_task is not None
        if not self.prompt_instances or (has_token and not self.token_instances):
            raise ValueError("No instances available")
        p = self.pick(self.prompt_instances, "prompt")
        counting = self.name in ("kv_token_jsq", "overlap_kv_token_jsq")
        if not has_token:                     # D2: prompt only, no flow
            self.assign_chained(request, p)
            if counting:
                p.sched_pending_tokens += request.prompt_size
            return
        t = self.pick(self.token_instances, "token")
        self.assign_flow(request, p, t)
        if counting:                          # D5
            p.sched_pending_tokens += request.prompt_size
            t.sched_pending_tokens += 1


class MixedPoolScheduler(Scheduler):
    """mixed_pool with borrowing between pools and return when idle (spec 6.4, D2)."""

    def __init__(self, name, instances, params):
        super().__init__(name, instances, params)
        self.prompt_instances = [i for i in instances if i.tag == "prompt"]
        self.token_instances = [i for i in instances if i.tag == "token"]
        self.mixed_instances = []
        self.prompt_max_pending_batch_tokens = int(params.get("prompt_max_pending_batch_tokens",
                                                              8192))

    def schedule(self, request):
        kv = self.kv
        has_token = request.token_task is not None
        prompt_mem = kv * (request.prompt_size + 1)
        token_mem = kv * (request.token_size - 1)

        def queue_long(i):
            return (len(i.pending_queue) > 0 and i.sched_pending_tokens + request.prompt_size
                    > self.prompt_max_pending_batch_tokens)

        def mem_loaded(i):
            return i.sched_memory + prompt_mem + token_mem >= i.max_memory

        def best_prompt(pool):
            if not pool:
                return None
            c = first_argmin(pool, lambda i: i.sched_pending_tokens)
            return None if queue_long(c) else c

        def best_token(pool):
            if not pool:
                return None
            c = first_argmin(pool, lambda i: i.sched_memory)
            return None if mem_loaded(c) else c

        def borrow(instance, pool):
            pool.remove(instance)
            self.mixed_instances.append(instance)
            instance.sched_tag = "mixed"

        # step 0
        if (not self.prompt_instances or not self.token_instances) and not self.mixed_instances:
            raise ValueError("No instances available")
        # step 1
        p = best_prompt(self.prompt_instances)
        if p is None:
            p = best_prompt(self.mixed_instances)
        # step 2
        t = None
        if has_token:
            t = best_token(self.token_instances)
            if t is None:
                t = best_token(self.mixed_instances)
        # step 3
        if p is None and self.token_instances:
            p = first_argmin(self.token_instances, lambda i: i.sched_pending_tokens)
            borrow(p, self.token_instances)
        # step 4
        if has_token and t is None and self.prompt_instances:
            t = first_argmin(self.prompt_instances, lambda i: i.sched_memory)
            borrow(t, self.prompt_instances)
        # step 5
        if p is None or (has_token and t is None):
            p = first_argmin(self.prompt_instances + self.mixed_instances + self.token_instances,
                             lambda i: i.sched_pending_tokens)
            t = p if has_token else None
        # steps 6-7
        if not has_token:                     # D2: like p == t, prompt side only
            self.assign_chained(request, p)
            p.sched_memory += prompt_mem
            p.sched_pending_tokens += request.prompt_size
            return
        if p is not t:
            self.assign_flow(request, p, t)
            p.sched_memory += prompt_mem
            t.sched_memory += prompt_mem + token_mem
        else:
            self.assign_chained(request, p)
            p.sched_memory += prompt_mem + token_mem
        p.sched_pending_tokens += request.prompt_size
        t.sched_pending_tokens += 1

    def notify_free_instance(self, instance):
        """Return a borrowed instance to the end of its home pool (spec 6.4)."""
        if instance.sched_tag != "mixed":
            return
        instance.sched_tag = None
        self.mixed_instances.remove(instance)
        if instance.tag == "prompt":
            self.prompt_instances.append(instance)
        else:
            self.token_instances.append(instance)


def make_scheduler(name, instances, params):
    if name in CO_LOCATED_SCHEDULERS:
        return CoLocatedScheduler(name, instances, params)
    if name in KV_SCHEDULERS:
        return KVScheduler(name, instances, params)
    if name == "mixed_pool":
        return MixedPoolScheduler(name, instances, params)
    raise ValueError(f"unknown scheduler {name!r}")


# --------------------------------------------------------------------------------------
# Topologies: regions, endpoints, request classes, global routing, feeding (T1-T8)
# --------------------------------------------------------------------------------------

class ServingEndpoint:
    """One service (model or model silo) in one region, on replica groups of ORCA instances (T1)."""

    def __init__(self, index, region, service, scheduler, groups, model=None, workload="any"):
        self.index = index
        self.region = region
        self.service = service
        self.scheduler = scheduler            # "token_jsq" or "jsq", inside the chosen group
        self.groups = groups                  # lists of OrcaInstance, in group order
        self.instances = [i for group in groups for i in group]   # the serving instances (S1)
        for instance in self.instances:
            instance.endpoint = self
            instance.region = region
            instance.model = model
        self.model = model                    # model index (autoscaling)
        self.workload = workload              # "any", "prod" or "dev"
        first = self.instances[0]             # S5: what a donated instance takes
        self.template = (first.weights, first.kv_bytes_per_token, first.perf)
        self.last = -math.inf                 # S2: last evaluation on arrival
        self.starting = 0
        self.draining = 0
        self.time = [0.0, 0.0, 0.0]           # S7: instance-seconds serving, starting, draining
        self.busy = 0.0                       # S7: seconds its serving instances ran a batch

    def utilisation(self):
        """T2: KV bytes in use on the endpoint's serving instances over their KV capacity, now (S1)."""
        return (sum(i.memory - i.weights for i in self.instances)
                / sum(i.max_memory - i.weights for i in self.instances))

    def join(self, n):
        """S4: instance n joins the groups (SAGESERVE.md 3.3, scale up)."""
        gs = self.groups
        if len(gs[-1]) == 3:
            last = gs[-1].pop()
            gs.append([last, n])
        elif len(gs) > 1 and len(gs[-2]) == 2 and len(gs[-1]) == 2:
            gs[-2].append(n)
        else:
            gs[-1].append(n)
        self.instances = [i for group in gs for i in group]

    def leave(self):
        """S4: the instance leaving the groups (SAGESERVE.md 3.3, scale down), or None."""
        gs = self.groups
        if len(gs[-1]) == 3:
            out = gs[-1].pop()
        elif len(gs) > 1 and len(gs[-2]) == 2 and len(gs[-1]) == 2:
            out = gs[-1].pop()
            other = gs.pop()[0]
            gs[-1].append(other)
        elif len(gs) > 1 and len(gs[-2]) == 3:
            out = gs[-2].pop()
        else:
            return None
        self.instances = [i for group in gs for i in group]
        return out

    def choose_instance(self, request):
        """T5: the group with the smallest minimum pending-token count, then the group scheduler."""
        group = first_argmin(self.groups, lambda g: min(i.pending_tokens() for i in g))
        if self.scheduler == "token_jsq":
            instance = first_argmin(group, lambda i: i.sched_pending_tokens)
            if request.token_task is not None:
                instance.sched_pending_tokens += request.prompt_size + 1
            else:
                instance.sched_pending_tokens += request.prompt_size
        elif self.scheduler == "jsq":
            instance = first_argmin(group, lambda i: len(i.pending_requests))
        else:
            raise ValueError(f"unknown group scheduler {self.scheduler!r}")
        return instance


class ServingFrontEnd:
    """Request classes, batch/dev queues, global routing with a routing delay, and feeding (T3-T6)."""

    def __init__(self, sim, topology):
        self.sim = sim
        self.endpoints = []
        self.endpoint_of = {}                 # (service, region) -> ServingEndpoint
        for j, e in enumerate(topology["endpoints"]):
            groups = [[sim.instances[i] for i in g] for g in e["groups"]]
            ep = ServingEndpoint(j, e["region"], e["service"], e["scheduler"], groups, e.get("model"),
                                 e.get("workload", "any"))
            assert (ep.service, ep.region) not in self.endpoint_of
            self.endpoints.append(ep)
            self.endpoint_of[(ep.service, ep.region)] = ep
        self.threshold = float(topology["threshold"])
        self.delay = float(topology["delay"])
        self.bands = [(float(u), int(n)) for u, n in topology["bands"]]   # counts x granularity
        self.on_enqueue = bool(topology["on_enqueue"])
        self.queues = {}                      # (service, region, class) -> deque of requests
        self.in_transit = {}                  # routing sequence number -> request on its way
        self.routed = 0
        self.n_regions = int(topology.get("n_regions", 1 + max(ep.region for ep in self.endpoints)))
        scaling = topology.get("scaling")
        self.scaler = None
        if scaling is not None and int(scaling["level"]) >= 1:
            self.scaler = Autoscaler(sim, self, scaling)

    def candidates(self, request):
        """The endpoints of the request's service along its region priority order."""
        return [self.endpoint_of[(request.service, r)] for r in request.priority
                if (request.service, r) in self.endpoint_of]

    def arrival(self, request):
        """T3: an interactive request is routed; a batch or dev request is queued (and maybe fed)."""
        if request.cls == "interactive":
            self.route(request)
            return
        home = self.candidates(request)[0]    # the endpoint of the queue region
        key = (request.service, home.region, request.cls)
        self.queues.setdefault(key, deque()).append(request)
        if self.on_enqueue:
            self.feed(home, self.feed_count(home))

    def feed_count(self, endpoint):
        """T6: the count of the first band whose bound the utilisation is at or below."""
        u = endpoint.utilisation()
        for bound, count in self.bands:
            if u <= bound:
                return count
        return 0

    def feed(self, endpoint, n):
        """T6: route up to n queued requests, batch queue first, then dev."""
        for _ in range(n):
            for cls in ("batch", "dev"):
                queue = self.queues.get((endpoint.service, endpoint.region, cls))
                if queue:
                    self.route(queue.popleft())
                    break
            else:
                return

    def route(self, request):
        """T4: global routing now."""
        options = self.candidates(request)
        chosen = None
        for ep in options:
            if ep.utilisation() < self.threshold:
                chosen = ep
                break
        if chosen is None:
            chosen = first_argmin(options, ServingEndpoint.utilisation)
        request.fed_time = self.sim.clock
        request.endpoint = chosen
        if self.delay == 0:
            self.reach(request)
        else:
            self.routed += 1
            self.in_transit[self.routed] = request
            self.sim.push(self.sim.clock + self.delay, EV_ROUTE, self.routed)

    def reach(self, request):
        """T5: the request reaches its endpoint (S2: which may evaluate it first): choose the instance, submit
        prompt then decode."""
        if self.scaler is not None:
            self.scaler.on_arrival(request.endpoint)
        instance = request.endpoint.choose_instance(request)
        request.use_kv(instance.kv_bytes_per_token)
        request.prompt_instance = instance
        request.token_instance = instance
        request.chained = request.token_task is not None
        instance.task_arrival(request.prompt_task)
        if request.chained:
            instance.task_arrival(request.token_task)

    def route_event(self, seq):
        self.reach(self.in_transit.pop(seq))


# --------------------------------------------------------------------------------------
# Reactive autoscaling (S1-S7)
# --------------------------------------------------------------------------------------

class Autoscaler:
    """Lifecycle states, spot lists, lock-outs, policies, group moves and accounting of autoscaling (S1-S7)."""

    def __init__(self, sim, front, spec):
        self.sim = sim
        self.front = front
        self.level = int(spec["level"])
        self.policy = spec["policy"]
        self.upper = float(spec["upper"])
        self.lower = float(spec["lower"])
        self.interval = float(spec["interval"])
        self.timer = float(spec["timer"])
        self.lockout = spec["delays"] == "lockout"
        if spec["delays"] not in ("real", "lockout"):
            raise ValueError(f"unknown delays {spec['delays']!r}")
        self.spin_up = float(spec["spin_up"])
        self.reclaim_delay = float(spec["reclaim_delay"])
        self.spin_down = float(spec["spin_down"])
        self.min_instances = int(spec["min_instances"])
        self.max_instances = int(spec["max_instances"])
        self.pending_time = float(spec["pending_time"])
        self.prompt_time = float(spec["prompt_time"])
        self.decode_throughput = float(spec["decode_throughput"])
        self.state = int(spec["seed"]) & MASK64      # splitmix64 state (S3)
        self.n_models = 1 + max(ep.model for ep in front.endpoints)
        self.spot = {}                        # (region, model) -> deque of instances, FIFO (S1)
        self.lock = {}                        # (region, model) -> lock-out end (S3), initially 0
        self.log = []                         # S7: rows of SCALING_LOG_COLUMNS
        self.ticks = 0                        # timer events so far (S2)
        for ep in front.endpoints:
            for i in ep.instances:
                if ep.model is None:
                    raise ValueError("autoscaling needs each endpoint's model index")

    # ---- donation draws (S3) ---------------------------------------------------------
    def draw(self):
        """splitmix64: one uniform in [0, 1) per donation."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        return (z >> 11) / float(1 << 53)

    # ---- state changes and accounting (S1, S7) ------------------------------------------
    def spot_size(self, region):
        return sum(len(q) for (g, _), q in self.spot.items() if g == region)

    def move(self, inst, life, endpoint):
        """inst enters lifecycle state ``life`` at ``endpoint`` (its endpoint's counts follow)."""
        charge(self.sim, inst, self.sim.clock)
        old = inst.endpoint
        if inst.life == STARTING:
            old.starting -= 1
        elif inst.life == DRAINING:
            old.draining -= 1
        inst.life = life
        inst.endpoint = endpoint
        if life == STARTING:
            endpoint.starting += 1
        elif life == DRAINING:
            endpoint.draining += 1

    def record(self, ep, action, inst, from_model):
        self.log.append((self.sim.clock, ep.index, action, inst.id, from_model, len(ep.instances), ep.starting,
                         ep.draining, self.spot_size(ep.region)))

    def take_model(self, inst, ep):
        """S5: a donated instance takes ep's model: weights, KV bytes per token, performance model."""
        weights, kv, perf = ep.template
        inst.memory += weights - inst.weights
        inst.sched_memory += weights - inst.weights
        inst.weights = weights
        inst.kv_bytes_per_token = kv
        inst.perf = perf
        inst.model = ep.model

    def lifecycle(self, inst, when, what):
        """A lifecycle event of inst (kind 0: the instance has no run now)."""
        assert inst.lifecycle is None and not inst.batch
        inst.lifecycle = what
        self.sim.push(when, EV_ITERATION, inst.id)

    # ---- triggers (S2) ---------------------------------------------------------------
    def on_arrival(self, ep):
        now = self.sim.clock
        if now > ep.last + self.interval:
            self.evaluate(ep)
            ep.last = now

    def start_timer(self):
        if self.timer > 0:
            self.ticks = 1
            self.sim.push(self.timer, EV_TIMER, 0)

    def timer_event(self):
        for ep in self.front.endpoints:
            self.evaluate(ep)
        self.ticks += 1
        self.sim.push(self.ticks * self.timer, EV_TIMER, 0)

    # ---- evaluation (S3) -------------------------------------------------------------
    def queued(self, ep):
        """The requests in ep's batch and dev queues (T3)."""
        out = []
        for cls in ("batch", "dev"):
            out.extend(self.front.queues.get((ep.service, ep.region, cls), ()))
        return out

    def decide(self, ep):
        """+1 scale up, -1 scale down, 0 nothing, by the policy's signal."""
        n = len(ep.instances)
        if self.policy == "utilization":
            x = ep.utilisation()
        elif self.policy == "queue":
            x = (sum(len(i.pending_requests) for i in ep.instances) + len(self.queued(ep))) / n
        elif self.policy == "chiron":
            if ep.workload == "dev":
                q = self.queued(ep)
                x = len(q) * self.prompt_time + sum(r.token_size for r in q) / (self.decode_throughput * n)
                if x > self.pending_time:
                    return 1
                return -1 if not q else 0
            x = sum(1 for i in ep.instances if any(r.cls == "interactive" for r in i.pending_requests)) / n
        else:
            raise ValueError(f"unknown scaling policy {self.policy!r}")
        if x > self.upper:
            return 1
        if x < self.lower:
            return -1
        return 0

    def evaluate(self, ep):
        now = self.sim.clock
        key = (ep.region, ep.model)
        if now < self.lock.get(key, 0.0):
            return
        d = self.decide(ep)
        if d > 0:
            self.scale_up(ep)
        elif d < 0:
            self.scale_down(ep)

    def scale_up(self, ep):
        now = self.sim.clock
        if self.max_instances > 0 and len(ep.instances) + ep.starting >= self.max_instances:
            return
        own = self.spot.get((ep.region, ep.model))
        if own:
            inst = own.popleft()
            self.lock[(ep.region, ep.model)] = now + self.reclaim_delay
            self.take(ep, inst, A_RECLAIM, ep.model, self.reclaim_delay)
        elif self.level >= 2:
            lists = [m for m in range(self.n_models) if self.spot.get((ep.region, m))]
            if not lists:
                return
            u = self.draw()
            m = lists[int(math.floor(u * len(lists)))]
            inst = self.spot[(ep.region, m)].popleft()
            self.lock[(ep.region, ep.model)] = now + self.spin_up
            self.take(ep, inst, A_DONATE, m, self.spin_up)

    def take(self, ep, inst, action, from_model, delay):
        """A spot instance is reclaimed or donated to ep (S5, S6)."""
        now = self.sim.clock
        donated = action == A_DONATE
        if self.lockout:
            if donated and inst.pending_requests:     # S6: still running its old model's requests
                self.move(inst, STARTING, ep)
                inst.switch_to = ep
                self.record(ep, action, inst, from_model)
                return
            if donated:
                self.take_model(inst, ep)
            self.move(inst, SERVING, ep)
            ep.join(inst)
            self.record(ep, action, inst, from_model)
            return
        assert not inst.pending_requests, "a spot instance holds requests only with lockout delays"
        if donated:
            self.take_model(inst, ep)
        self.move(inst, STARTING, ep)
        self.record(ep, action, inst, from_model)
        self.lifecycle(inst, now + delay, "ready")

    def scale_down(self, ep):
        now = self.sim.clock
        if len(ep.instances) > self.min_instances:
            inst = ep.leave()
            if inst is not None:
                if self.lockout:                      # S6: into the spot list at once
                    self.move(inst, SPOT, ep)
                    self.spot.setdefault((ep.region, inst.model), deque()).append(inst)
                    self.record(ep, A_SPOT, inst, ep.model)
                else:                                 # S5: drains
                    self.move(inst, DRAINING, ep)
                    self.record(ep, A_DRAIN, inst, ep.model)
                    if not inst.pending_requests:
                        self.lifecycle(inst, now + self.spin_down, "spot")
        self.lock[(ep.region, ep.model)] = now + self.spin_down

    # ---- lifecycle events (S5, S6) -----------------------------------------------------
    def after_run(self, inst):
        """The end of a run of inst: a draining instance (or a busy donated one) that holds nothing now."""
        if inst.pending_requests or inst.lifecycle is not None:
            return
        if inst.life == DRAINING:
            self.lifecycle(inst, self.sim.clock + self.spin_down, "spot")
        elif inst.life == STARTING and inst.switch_to is not None:
            self.lifecycle(inst, self.sim.clock, "ready")

    def lifecycle_event(self, inst):
        what = inst.lifecycle
        inst.lifecycle = None
        ep = inst.endpoint
        if what == "ready":
            if inst.switch_to is not None:            # S6: a busy donated instance, empty now
                self.take_model(inst, inst.switch_to)
                inst.switch_to = None
            self.move(inst, SERVING, ep)
            ep.join(inst)
            self.record(ep, A_READY, inst, ep.model)
        elif what == "spot":
            self.move(inst, SPOT, ep)
            self.spot.setdefault((ep.region, inst.model), deque()).append(inst)
            self.record(ep, A_SPOT, inst, ep.model)
        else:
            raise AssertionError(what)


# --------------------------------------------------------------------------------------
# Simulator: event heap, executor, KV flows
# --------------------------------------------------------------------------------------

class Simulator:
    """Event loop (spec 1 with deviation D1), executor (spec 2.4) and KV flows (spec 5)."""

    def __init__(self, requests, instances, params):
        self.clock = 0.0
        self.end_time = float(params["end_time"])
        self.heap = []
        self.live = {}                        # (kind, id) -> seq of the live event
        self.live_count = {EV_ITERATION: 0, EV_FLOW: 0, EV_ROUTE: 0, EV_ARRIVAL: 0, EV_TIMER: 0}
        self.running_flows = 0                # KV transfers in flight
        self.seq = 0
        self.time_only = params.get("event_order", "by_kind") == "reference"
        kv = int(params["kv_bytes_per_token"])
        n = len(requests["arrival"])
        uniform = requests.get("uniform")
        self.requests = [
            Request(r, float(requests["arrival"][r]), int(requests["prompt_size"][r]),
                    int(requests["token_size"][r]),
                    float(uniform[r]) if uniform is not None else math.nan, kv)
            for r in range(n)
        ]
        if params["instance_type"] == "orca":
            cls = OrcaInstance
        elif params["instance_type"] == "splitwise":
            cls = SplitwiseInstance
        else:
            raise ValueError(f"unknown instance type {params['instance_type']!r}")
        self.instances = [cls(self, iid, spec, params) for iid, spec in enumerate(instances)]
        topology = params.get("topology")
        self.serving = None
        if topology is None:
            self.scheduler = make_scheduler(params["scheduler"], self.instances, params)
        else:                                 # T1-T8
            if self.time_only or cls is not OrcaInstance:
                raise ValueError("a topology runs ORCA instances in the by_kind event order (T8)")
            self.scheduler = Scheduler("topology", self.instances, params)   # notify_free_instance: no-op
            self.serving = ServingFrontEnd(self, topology)
            self.spot_time = [0.0] * self.serving.n_regions   # S7
            frac = float(topology["dev_sla_fraction"])
            for r, request in enumerate(self.requests):
                request.cls = requests["class"][r]
                request.service = int(requests["service"][r])
                request.priority = tuple(int(x) for x in requests["priority"][r])
                request.sla = float(requests["sla"][r])
                if request.cls == "dev" and not math.isnan(request.sla):
                    request.order_key = request.arrival + frac * request.sla   # T7
        for request in self.requests:         # spec 1.3: arrivals pushed up front
            self.push(request.arrival, EV_ARRIVAL, request.index)
        if self.serving is not None and self.serving.scaler is not None:
            self.serving.scaler.start_timer()  # S2

    # ---- heap (D1) --------------------------------------------------------------------
    def push(self, time, kind, ident):
        assert (kind, ident) not in self.live, "at most one live event per (kind, id)"
        self.seq += 1
        if (kind, ident) not in self.live:
            self.live_count[kind] += 1
        self.live[(kind, ident)] = self.seq
        if self.time_only:
            heapq.heappush(self.heap, TimeOnlyEntry(time, kind, ident, self.seq))
        else:
            heapq.heappush(self.heap, (time, kind, ident, self.seq))

    def any_flow_fits(self):
        """Whether a waiting KV transfer fits at its destination now."""
        for kind, ident in self.live:
            if kind == EV_FLOW:
                r = self.requests[ident]
                if r.token_instance.memory + r.memory <= r.token_instance.max_memory:
                    return True
        return False

    def cancel(self, kind, ident):
        del self.live[(kind, ident)]
        self.live_count[kind] -= 1

    def run(self):
        """spec 1.2: loop while the heap is non-empty and clock < end_time."""
        while self.heap and self.clock < self.end_time:
            if (self.live_count[EV_ITERATION] == 0 and self.live_count[EV_ARRIVAL] == 0
                    and self.live_count[EV_ROUTE] == 0 and self.running_flows == 0 and not self.any_flow_fits()):
                break   # only KV transfers waiting for memory nothing can free: a deadlock (sweepsim stops)
            entry = heapq.heappop(self.heap)
            if self.time_only:
                time, kind, ident, seq = entry.time, entry.kind, entry.ident, entry.seq
            else:
                time, kind, ident, seq = entry
            if self.live.get((kind, ident)) != seq:
                continue                      # cancelled: skipped, clock unchanged
            del self.live[(kind, ident)]
            self.live_count[kind] -= 1
            self.clock = time
            if kind == EV_ITERATION:
                instance = self.instances[ident]
                if instance.lifecycle is not None:   # S5, S6
                    self.serving.scaler.lifecycle_event(instance)
                else:
                    instance.complete_iteration()
            elif kind == EV_FLOW:
                self.flow_event(self.requests[ident])
            elif kind == EV_ROUTE:
                self.serving.route_event(ident)
            elif kind == EV_TIMER:
                self.serving.scaler.timer_event()
            else:
                self.request_arrival(self.requests[ident])

    # ---- executor (spec 2.4) ------------------------------------------------------------
    def request_arrival(self, request):
        """Schedule, submit the prompt, then the chained token task (spec 1.5, 2.4 step 1); with a
        topology, the serving front end takes the request (T3)."""
        if self.serving is not None:
            self.serving.arrival(request)
            return
        self.scheduler.schedule(request)
        request.prompt_instance.task_arrival(request.prompt_task)
        if request.chained:
            request.prompt_instance.task_arrival(request.token_task)

    def finish_task(self, task):
        """Executor finish_task: start the KV flow or finish the request (spec 2.4)."""
        request = task.request
        if task.is_prompt:
            if request.token_task is None:    # D2
                self.finish_request(request)
            elif request.has_flow:
                self.flow_arrival(request)
        else:
            self.finish_request(request)

    def finish_request(self, request):
        request.completed = True
        request.completion_time = self.clock

    # ---- KV flows (spec 5.4) ------------------------------------------------------------
    def flow_arrival(self, request):
        self.try_start_flow(request)

    def try_start_flow(self, request):
        dest = request.token_instance
        if dest.memory + request.memory <= dest.max_memory:
            request.flow_running = True
            self.running_flows += 1
            request.kv_start = self.clock
            dest.alloc_memory(request.memory)
            duration = request.flow_size / self.scheduler.bandwidth
            self.push(self.clock + duration, EV_FLOW, request.index)
        else:
            self.push(self.clock + 1.0, EV_FLOW, request.index)   # retry every 1.0 s

    def flow_event(self, request):
        if not request.flow_running:
            self.try_start_flow(request)
            return
        request.flow_running = False
        self.running_flows -= 1
        request.kv_end = self.clock
        source = request.prompt_instance
        source.free_memory(request.memory)    # request.memory is not zeroed
        request.token_instance.task_arrival(request.token_task)
        source.notify_flow_completion()


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------

def simulate(requests: dict, instances: list, params: dict) -> dict:
    """Run the reference simulation and return per-request and per-instance arrays.

    requests: dict of equal-length numpy arrays in trace order ('arrival', 'prompt_size',
    'token_size', 'uniform'; with a topology also per request 'class' ("interactive", "batch",
    "dev"), 'service', 'priority' (region indices) and 'sla').  instances: list of dicts ('tag',
    'max_memory', 'weights', 'perf'; with a topology 'kv_bytes_per_token') in instance-id order.
    params: see the module docstring and spec; a topology adds params["topology"]: 'endpoints'
    (dicts of 'region', 'service', 'scheduler', 'groups': lists of instance ids, and for autoscaling 'model'
    (index) and 'workload'), 'threshold', 'delay', 'bands' ((bound, requests) pairs), 'on_enqueue',
    'dev_sla_fraction' (T1-T8), 'n_regions', and optionally 'scaling': the ``[scaling]`` keys (level, policy,
    upper, lower, interval, timer, delays, spin_up, reclaim_delay, spin_down, min_instances, max_instances,
    pending_time, prompt_time, decode_throughput) and 'seed' (S1-S7).  A topology's outputs add the S7 arrays.
    """
    sim = Simulator(requests, instances, params)
    sim.run()
    n = len(sim.requests)
    out = {
        "completed": np.zeros(n, dtype=bool),
        "prompt_instance": np.full(n, -1, dtype=np.int64),
        "token_instance": np.full(n, -1, dtype=np.int64),
    }
    for key in ("prompt_start", "prompt_end", "token_start", "token_end", "kv_start", "kv_end"):
        out[key] = np.full(n, np.nan, dtype=np.float64)
    for r, request in enumerate(sim.requests):
        out["completed"][r] = request.completed
        if request.prompt_instance is not None:
            out["prompt_instance"][r] = request.prompt_instance.id
        if request.token_instance is not None:
            out["token_instance"][r] = request.token_instance.id
        prompt = request.prompt_task
        out["prompt_start"][r] = prompt.start_timestamp
        out["prompt_end"][r] = prompt.completion_timestamp
        if request.token_task is not None:
            out["token_start"][r] = request.token_task.start_timestamp
            out["token_end"][r] = request.token_task.completion_timestamp
        else:                                 # D2: the token side is the prompt's end
            out["token_start"][r] = prompt.completion_timestamp
            out["token_end"][r] = prompt.completion_timestamp
        out["kv_start"][r] = request.kv_start
        out["kv_end"][r] = request.kv_end
    out["fed_time"] = np.array([r.fed_time for r in sim.requests], dtype=np.float64)
    out["endpoint"] = np.array([-1 if r.endpoint is None else r.endpoint.index for r in sim.requests],
                               dtype=np.int64)
    out["busy_time"] = np.array([i.busy_time for i in sim.instances], dtype=np.float64)
    out["iterations"] = np.array([i.iterations for i in sim.instances], dtype=np.int64)
    out["end_clock"] = float(sim.clock)
    if sim.serving is not None:
        scaling_outputs(sim, out)
    return out


def scaling_outputs(sim, out):
    """S7: the scaling log, per-endpoint and per-region state seconds, per-instance state seconds (until the end
    clock; a batch still running at the end counts as busy until it)."""
    front = sim.serving
    scaler = front.scaler
    for inst in sim.instances:
        if inst.endpoint is not None:         # (instances outside every endpoint stay idle)
            charge(sim, inst, sim.clock)
    rows = scaler.log if scaler is not None else []
    out["scaling_log"] = np.array(rows, dtype=np.float64).reshape(len(rows), len(SCALING_LOG_COLUMNS))
    eps = front.endpoints
    out["endpoint_time"] = np.array([[ep.time[k] for ep in eps] for k in (SERVING, STARTING, DRAINING)]
                                    + [[ep.busy for ep in eps]], dtype=np.float64)
    out["region_spot_time"] = np.array(sim.spot_time, dtype=np.float64)
    for k, name in ((SERVING, "serving_time"), (STARTING, "starting_time"), (DRAINING, "draining_time"),
                    (SPOT, "spot_time")):
        out[name] = np.array([inst.life_time[k] for inst in sim.instances], dtype=np.float64)


def charge(sim, inst, now):
    """S7: charge inst's current state from its last change to now (an endpoint's state, or its region's spot
    pool) and its batch time since the last charge to its endpoint while serving."""
    dt = now - inst.life_since
    inst.life_time[inst.life] += dt
    if inst.life == SPOT:
        sim.spot_time[inst.region] += dt
    else:
        inst.endpoint.time[inst.life] += dt
    inst.life_since = now
    if inst.batch:
        if inst.life == SERVING:
            inst.endpoint.busy += now - inst.busy_mark
        inst.busy_mark = now
