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

Public entry point: :func:`simulate`.
"""

import heapq
import math
from collections import deque

import numpy as np

# Node states (spec 2.3).
NONE, QUEUED, RUNNING, BLOCKED, COMPLETED = "none", "queued", "running", "blocked", "completed"

# Event kinds (deviation D1); the kind is the second component of the heap key.
EV_ITERATION, EV_FLOW, EV_ROUTE, EV_ARRIVAL = 0, 1, 2, 3


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
        feeds = 0
        for task in done:
            self.complete_task(task)
            if serving is not None and task.request.completed:
                # T6: decided per completed request, right after its memory was freed
                feeds += serving.feed_count(self.endpoint)
        self.pause_next_iteration = False
        self.start_iteration()
        if feeds:                             # T6: fed once the next run has started
            serving.feed(self.endpoint, feeds)

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

    def __init__(self, index, region, service, scheduler, groups):
        self.index = index
        self.region = region
        self.service = service
        self.scheduler = scheduler            # "token_jsq" or "jsq", inside the chosen group
        self.groups = groups                  # lists of OrcaInstance, in group order
        self.instances = [i for group in groups for i in group]
        for instance in self.instances:
            instance.endpoint = self
        self.kv_capacity = sum(i.max_memory - i.weights for i in self.instances)

    def utilisation(self):
        """T2: KV bytes in use on the endpoint's instances over their KV capacity, now."""
        return sum(i.memory - i.weights for i in self.instances) / self.kv_capacity

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
            ep = ServingEndpoint(j, e["region"], e["service"], e["scheduler"], groups)
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
        """T5: the request reaches its endpoint: choose the instance, submit prompt then decode."""
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
# Simulator: event heap, executor, KV flows
# --------------------------------------------------------------------------------------

class Simulator:
    """Event loop (spec 1 with deviation D1), executor (spec 2.4) and KV flows (spec 5)."""

    def __init__(self, requests, instances, params):
        self.clock = 0.0
        self.end_time = float(params["end_time"])
        self.heap = []
        self.live = {}                        # (kind, id) -> seq of the live event
        self.live_count = {EV_ITERATION: 0, EV_FLOW: 0, EV_ROUTE: 0, EV_ARRIVAL: 0}
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
                self.instances[ident].complete_iteration()
            elif kind == EV_FLOW:
                self.flow_event(self.requests[ident])
            elif kind == EV_ROUTE:
                self.serving.route_event(ident)
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
    (dicts of 'region', 'service', 'scheduler', 'groups': lists of instance ids), 'threshold',
    'delay', 'bands' ((bound, requests) pairs), 'on_enqueue', 'dev_sla_fraction' (T1-T8).
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
    return out
