"""The decorator of kernels that only other kernels call (the event handlers, state allocation).

They are compiled without a Python or C entry point: Numba would otherwise build, for every such function,
a wrapper that unboxes its arguments from Python objects; for a function of the whole state tuple (about
100 arrays) that costs about half a second of compile time, and no Python code calls them. Event handlers
also run without reference counting (``nrt=False``): they only index arrays allocated by their caller.
"""
from numba import njit


def internal(*, nrt: bool = False, inline: str = "never"):
    return njit(cache=True, _nrt=nrt, inline=inline, no_cpython_wrapper=True, no_cfunc_wrapper=True)
