"""Operations on one instance's list: row ``i`` of a 2-D array whose length is ``lens[i]``."""
from numba import njit


@njit(cache=True, _nrt=False)
def q_append_nb(q, lens, i, v):
    q[i, lens[i]] = v
    lens[i] += 1


@njit(cache=True, _nrt=False)
def q_insert_nb(q, lens, i, pos, v):
    n = lens[i]
    for k in range(n, pos, -1):
        q[i, k] = q[i, k - 1]
    q[i, pos] = v
    lens[i] = n + 1


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
