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


@internal()
def heap_pop_nb(h):
    """Remove the earliest event and return its id."""
    ident = h.ids[0]
    heap_remove_nb(h, ident)
    return ident
