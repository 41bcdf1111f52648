"""Indexed binary min-heap of (time, id): at most one pending event per id, updatable in O(log n).

Ties on time are broken by the smaller id, so the event order is deterministic.
``heap.size[0]`` is the number of entries; ``heap.pos[id]`` is -1 when ``id`` has no event.
"""
from collections import namedtuple

import numpy as np

from kernels.jit import internal

Heap = namedtuple("Heap", ["ids", "time", "pos", "size"])


@internal(nrt=True)
def heap_new_nb(capacity):
    return Heap(np.empty(capacity, np.int64), np.empty(capacity, np.float64),
                np.full(capacity, -1, np.int64), np.zeros(1, np.int64))


@internal()
def _less(h, a, b):
    ta = h.time[a]
    tb = h.time[b]
    return ta < tb or (ta == tb and h.ids[a] < h.ids[b])


@internal()
def _swap(h, a, b):
    ia = h.ids[a]
    ib = h.ids[b]
    ta = h.time[a]
    h.ids[a] = ib
    h.time[a] = h.time[b]
    h.ids[b] = ia
    h.time[b] = ta
    h.pos[ib] = a
    h.pos[ia] = b


@internal()
def _sift_up(h, p):
    while p > 0:
        parent = (p - 1) >> 1
        if _less(h, p, parent):
            _swap(h, p, parent)
            p = parent
        else:
            break


@internal()
def _sift_down(h, p):
    n = h.size[0]
    while True:
        left = 2 * p + 1
        if left >= n:
            break
        best = left
        right = left + 1
        if right < n and _less(h, right, left):
            best = right
        if _less(h, best, p):
            _swap(h, p, best)
            p = best
        else:
            break


@internal()
def heap_set_nb(h, ident, t):
    """Schedule (or move) the event of ``ident`` to time ``t``."""
    p = h.pos[ident]
    if p < 0:
        p = h.size[0]
        h.size[0] = p + 1
        h.ids[p] = ident
        h.time[p] = t
        h.pos[ident] = p
        _sift_up(h, p)
    else:
        h.time[p] = t
        _sift_up(h, p)
        _sift_down(h, h.pos[ident])


@internal()
def heap_remove_nb(h, ident):
    """Cancel the event of ``ident`` (no-op if it has none)."""
    p = h.pos[ident]
    if p < 0:
        return
    last = h.size[0] - 1
    if p != last:
        _swap(h, p, last)
    h.size[0] = last
    h.pos[ident] = -1
    if p != last:
        moved = h.ids[p]
        _sift_up(h, p)
        _sift_down(h, h.pos[moved])


@internal()
def heap_top_time_nb(h):
    if h.size[0] == 0:
        return np.inf
    return h.time[0]


#: The reference's event heap (``event_order = "reference"``): CPython's ``heapq`` algorithm over entries
#: compared by time only, so simultaneous events pop in the order SplitwiseSim's heap leaves them. An entry is
#: (time, key) with key = version << 32 | id << 2 | kind; moving or cancelling an event pushes a new entry
#: with the next version and leaves the old one in the heap (stale: skipped when popped), as the reference's
#: ``reschedule`` does. ``inst_ver`` / ``flow_ver``: the live version of each instance's / request's event.
#: ``time`` and ``key`` are two views of one buffer: entry p is ``time[2p]`` and ``key[2p + 1]`` (16 adjacent
#: bytes, so that a sift touches one cache line per level, not two).
RefHeap = namedtuple("RefHeap", ["time", "key", "size", "inst_ver", "flow_ver"])
EV_INSTANCE = 0
EV_FLOW = 1
EV_ARRIVAL = 2
EV_ROUTE = 3      # a routed request reaches its endpoint (topologies; by_kind order only)


@internal(nrt=True)
def ref_heap_new_nb(capacity, n_instances, n_requests):
    buf = np.empty(2 * capacity, np.float64)
    return RefHeap(buf, buf.view(np.int64), np.zeros(1, np.int64), np.zeros(n_instances, np.int64),
                   np.zeros(n_requests, np.int64))


@internal(nrt=True)
def ref_heap_grow_nb(h, capacity):
    g = ref_heap_new_nb(capacity, 0, 0)
    for k in range(2 * h.size[0]):
        g.time[k] = h.time[k]
    g.size[0] = h.size[0]
    return RefHeap(g.time, g.key, g.size, h.inst_ver, h.flow_ver)


@internal()
def ref_key_nb(kind, ident, ver):
    return (ver << 32) | (ident << 2) | kind


@internal()
def _ref_sift_down_nb(h, start, p, t, key):
    """heapq._siftdown: the entry (t, key) moves up from p while strictly earlier than its parent."""
    tm = h.time
    ky = h.key
    while p > start:
        parent = (p - 1) >> 1
        tp = tm[2 * parent]
        if t < tp:
            tm[2 * p] = tp
            ky[2 * p + 1] = ky[2 * parent + 1]
            p = parent
        else:
            break
    tm[2 * p] = t
    ky[2 * p + 1] = key


@internal()
def ref_push_nb(h, t, key):
    """heapq.heappush."""
    p = h.size[0]
    h.size[0] = p + 1
    _ref_sift_down_nb(h, 0, p, t, key)


@internal()
def ref_pop_nb(h):
    """heapq.heappop: returns the root's (time, key). The last entry fills the root: the smaller child (the
    right one unless the left is strictly earlier) moves up, down to a leaf, then the entry sifts back up."""
    tm = h.time
    ky = h.key
    t0 = tm[0]
    k0 = ky[1]
    n = h.size[0] - 1
    h.size[0] = n
    if n > 0:
        t = tm[2 * n]
        key = ky[2 * n + 1]
        p = 0
        child = 1
        while child < n:
            right = child + 1
            if right < n and not tm[2 * child] < tm[2 * right]:
                child = right
            tm[2 * p] = tm[2 * child]
            ky[2 * p + 1] = ky[2 * child + 1]
            p = child
            child = 2 * p + 1
        _ref_sift_down_nb(h, 0, p, t, key)
    return t0, k0
