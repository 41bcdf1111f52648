"""Operations on one instance's list: row ``i`` of a 2-D array whose length is ``lens[i]``.

``q_*``: the list occupies ``q[i, :lens[i]]``. ``dq_*``: a double-ended list occupying
``q[i, off[i]:off[i] + lens[i]]``; inserting or deleting shifts the shorter side, so removals near the front
(oldest requests, first prompts) cost O(1) and any position costs at most half the list.
The caller guarantees ``lens[i] < q.shape[1]`` before an insertion.
"""
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _shift_row(typingctx, q, i, dst, src, count):
    """memmove ``count`` entries of row ``i`` of the 2-D array ``q`` from column ``src`` to ``dst``."""
    sig = types.void(q, i, dst, src, count)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        shape = cgutils.unpack_tuple(builder, arr.shape, 2)
        strides = cgutils.unpack_tuple(builder, arr.strides, 2)
        dptr = cgutils.get_item_pointer2(context, builder, arr.data, shape, strides, "C", [args[1], args[2]])
        sptr = cgutils.get_item_pointer2(context, builder, arr.data, shape, strides, "C", [args[1], args[3]])
        itemsize = context.get_abi_sizeof(context.get_data_type(signature.args[0].dtype))
        cgutils.raw_memmove(builder, dptr, sptr, args[4], itemsize)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, _nrt=False)
def q_append_nb(q, lens, i, v):
    q[i, lens[i]] = v
    lens[i] += 1


@njit(cache=True, _nrt=False)
def q_delete_at_nb(q, lens, i, pos):
    n = lens[i] - 1
    for k in range(pos, n):
        q[i, k] = q[i, k + 1]
    lens[i] = n


@njit(cache=True, _nrt=False)
def q_remove_nb(q, lens, i, v):
    """Remove the first occurrence of ``v``; return whether it was present."""
    n = lens[i]
    for k in range(n):
        if q[i, k] == v:
            q_delete_at_nb(q, lens, i, k)
            return True
    return False


@njit(cache=True, _nrt=False)
def dq_insert_nb(q, off, lens, i, pos, v):
    """Insert ``v`` at list position ``pos``; returns its array index (a hint for ``dq_remove_near_nb``)."""
    o = off[i]
    n = lens[i]
    lens[i] = n + 1
    if o > 0 and (2 * pos < n or o + n >= q.shape[1]):
        if pos > 0:
            _shift_row(q, i, o - 1, o, pos)
        off[i] = o - 1
        q[i, o - 1 + pos] = v
        return o - 1 + pos
    if n > pos:
        _shift_row(q, i, o + pos + 1, o + pos, n - pos)
    q[i, o + pos] = v
    return o + pos


@njit(cache=True, _nrt=False)
def dq_append_nb(q, off, lens, i, v):
    return dq_insert_nb(q, off, lens, i, lens[i], v)


@njit(cache=True, _nrt=False)
def dq_delete_at_nb(q, off, lens, i, pos):
    o = off[i]
    n = lens[i]
    if 2 * pos < n - 1:
        if pos > 0:
            _shift_row(q, i, o + 1, o, pos)
        off[i] = o + 1
    else:
        if n - 1 > pos:
            _shift_row(q, i, o + pos, o + pos + 1, n - 1 - pos)
    lens[i] = n - 1


@njit(cache=True, _nrt=False)
def dq_remove_nb(q, off, lens, i, v):
    """Remove the first occurrence of ``v``; return whether it was present."""
    o = off[i]
    for k in range(lens[i]):
        if q[i, o + k] == v:
            dq_delete_at_nb(q, off, lens, i, k)
            return True
    return False


@njit(cache=True, _nrt=False)
def dq_remove_near_nb(q, off, lens, i, v, hint):
    """Remove ``v`` (present exactly once), searching outwards from array index ``hint``: entries move by one
    per insertion or deletion, so an index remembered at insertion is usually a few steps away."""
    o = off[i]
    n = lens[i]
    end = o + n
    if hint < o:
        hint = o
    if hint >= end:
        hint = end - 1
    lo = hint
    hi = hint + 1
    while lo >= o or hi < end:
        if lo >= o:
            if q[i, lo] == v:
                dq_delete_at_nb(q, off, lens, i, lo - o)
                return True
            lo -= 1
        if hi < end:
            if q[i, hi] == v:
                dq_delete_at_nb(q, off, lens, i, hi - o)
                return True
            hi += 1
    return False
