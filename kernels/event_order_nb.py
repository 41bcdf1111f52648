"""Scheduling an event, in either event order (``prm.i[PI.event_order]``, codes in ``kernels.enums``).

BY_KIND: the next event is the earliest of the run ends (``sim.iheap``, one per instance), the KV-transfer
events (``sim.fheap``, one per request) and the next arrival; simultaneous events go run ends first (lower
instance first), then KV events (lower request first), then arrivals.
REFERENCE: the same events also go into ``sim.eheap``, a copy of SplitwiseSim's single time-only heap
(``kernels.event_queue_nb.RefHeap``) that decides the order: every arrival is pushed before the run, every
scheduled or moved event is pushed when it is, and a moved event's old entry stays in the heap until popped.
``iheap`` and ``fheap`` still say which events are live (the loop's deadlock check reads them).
"""
from kernels.enums import EventOrder
from kernels.event_queue_nb import EV_FLOW, EV_INSTANCE, heap_set_nb, ref_key_nb, ref_push_nb
from kernels.jit import internal
from kernels.layout import PI


@internal()
def _schedule_nb(order, heap, eheap, versions, kind, ident, t):
    heap_set_nb(heap, ident, t)
    if order == EventOrder.REFERENCE:
        versions[ident] += 1
        ref_push_nb(eheap, t, ref_key_nb(kind, ident, versions[ident]))


# inlined: the out-of-line part takes only the arrays it touches, not the whole state tuple
@internal(inline=True)
def schedule_run_end_nb(sim, i, t):
    """The current run of instance i ends at t (a new run, or a truncated one)."""
    _schedule_nb(sim.prm.i[PI.event_order], sim.iheap, sim.eheap, sim.eheap.inst_ver, EV_INSTANCE, i, t)


@internal(inline=True)
def schedule_flow_event_nb(sim, r, t):
    """The KV transfer of request r ends (or retries) at t."""
    _schedule_nb(sim.prm.i[PI.event_order], sim.fheap, sim.eheap, sim.eheap.flow_ver, EV_FLOW, r, t)
