"""The kernels' double-ended lists behave like Python lists under random inserts and removals, and never
touch other rows."""
import numpy as np

from kernels.queues_nb import dq_append_nb, dq_delete_at_nb, dq_insert_nb, dq_remove_near_nb, dq_remove_nb


def test_double_ended_list_matches_python_list():
    rng = np.random.default_rng(0)
    cap = 64
    q = np.full((3, cap), -1, np.int64)
    off = np.array([32, 5, 32])
    lens = np.zeros(3, np.int64)
    ref = []
    for step in range(20_000):
        op = rng.random()
        if len(ref) < cap - 1 and (not ref or op < 0.5):
            pos = int(rng.integers(0, len(ref) + 1))
            if pos == len(ref) and op < 0.1:
                idx = dq_append_nb(q, off, lens, 1, step)
            else:
                idx = dq_insert_nb(q, off, lens, 1, pos, step)
            ref.insert(pos, step)
            assert q[1, idx] == step
        else:
            pos = int(rng.integers(0, len(ref)))
            if op < 0.7:
                dq_delete_at_nb(q, off, lens, 1, pos)
                ref.pop(pos)
            elif op < 0.85:
                v = ref[pos]
                assert dq_remove_near_nb(q, off, lens, 1, v, int(rng.integers(-5, cap + 5)))
                ref.remove(v)
            else:
                v = ref[pos]
                assert dq_remove_nb(q, off, lens, 1, v)
                ref.remove(v)
        assert list(q[1, off[1]:off[1] + lens[1]]) == ref, step
    assert (q[0] == -1).all() and (q[2] == -1).all()
    assert not dq_remove_nb(q, off, lens, 1, -7)
