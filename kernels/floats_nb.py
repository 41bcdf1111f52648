"""Float helpers that reproduce CPython's arithmetic exactly."""
import math

import numpy as np

from kernels.jit import internal


@internal()
def py_floordiv_nb(a, b):
    """CPython's ``float // float`` (fmod based; differs from ``floor(a / b)`` in the last ulp)."""
    mod = np.fmod(a, b)
    div = (a - mod) / b
    if mod != 0.0 and ((b < 0.0) != (mod < 0.0)):
        div -= 1.0
    if div != 0.0:
        floordiv = math.floor(div)
        if div - floordiv > 0.5:
            floordiv += 1.0
    else:
        floordiv = math.copysign(0.0, a / b)
    return floordiv
