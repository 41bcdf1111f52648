"""Iteration-time lookup: profiled piecewise-linear tables or constant times.

Contract: ``iteration_duration_nb`` returns the duration in seconds (> 0) of ONE iteration of a batch with
``batch_tokens`` tokens (prompt sizes + 1 per decode) that is prompt-only, token-only or mixed.
"""
from numba import njit

from kernels.enums import PerfKind
from kernels.state_nb import PTF, PTI, PTY


@njit(cache=True, _nrt=False)
def interp_extrapolate_nb(knots, ys, n, x):
    """scipy ``interp1d(kind='linear', fill_value='extrapolate')`` on ``knots[:n]``, bit for bit.

    The segment is ``searchsorted_left(knots, x)`` clipped to [1, n-1]; a point on a knot uses the segment
    that ends there. value = slope * (x - knot[lo]) + y[lo], with slope = dy / dx.
    """
    xf = float(x)
    lo_i = 0
    hi_i = n
    while lo_i < hi_i:  # searchsorted left
        mid = (lo_i + hi_i) // 2
        if knots[mid] < xf:
            lo_i = mid + 1
        else:
            hi_i = mid
    i = lo_i
    if i < 1:
        i = 1
    if i > n - 1:
        i = n - 1
    lo = i - 1
    slope = (ys[i] - ys[lo]) / (knots[i] - knots[lo])
    return slope * (xf - knots[lo]) + ys[lo]


@njit(cache=True, _nrt=False)
def iteration_duration_nb(perf, c, batch_tokens, has_prompt, has_token, mixed_factor):
    """Duration of one iteration on performance-table row ``c``."""
    if perf.i[PTI.kind, c] == PerfKind.CONSTANT:
        if has_prompt:
            return perf.f[PTF.const_prompt, c]
        return perf.f[PTF.const_token, c]
    n = perf.i[PTI.n_knots, c]
    knots = perf.y[PTY.knots, c]
    if has_prompt and not has_token:
        return interp_extrapolate_nb(knots, perf.y[PTY.prompt, c], n, batch_tokens)
    if has_token and not has_prompt:
        return interp_extrapolate_nb(knots, perf.y[PTY.token, c], n, batch_tokens)
    return interp_extrapolate_nb(knots, perf.y[PTY.prompt, c], n, batch_tokens) * mixed_factor
