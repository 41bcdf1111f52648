"""The decorator of kernels that only other kernels call (the event handlers, state allocation).

They are compiled without a Python or C entry point: Numba would otherwise build, for every such function,
a wrapper that unboxes its arguments from Python objects; for a function of the whole state tuple (about
100 arrays) that costs about half a second of compile time, and no Python code calls them. Event handlers
also run without reference counting (``nrt=False``): they only index arrays allocated by their caller.

``inline=True`` inlines a function into every caller at the LLVM level (Numba's ``forceinline``): Numba types
and lowers it once, and its callers do not pay for passing the state tuple (one scalar per array field). Numba's
own ``inline="always"`` inlines at the level of its IR instead, which re-runs its pipeline and deep-copies the
callee's IR at every call site: with it, the cold compile took 17% longer for the same machine code speed.
"""
from numba import njit


def internal(*, nrt: bool = False, inline: bool = False):
    return njit(cache=True, _nrt=nrt, forceinline=inline, no_cpython_wrapper=True, no_cfunc_wrapper=True)
