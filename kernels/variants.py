"""Two compiled variants of the kernel, chosen by the type of the packed inputs.

``Inputs`` (no configuration of the kernel call has a topology: every SplitwiseSim run and sweep) compiles the
*plain* kernel, ``ServingInputs`` (regions, model endpoints, request classes, autoscaling, plans) the *serving*
kernel. The parameters carry the choice into the state (``Params`` or ``ServingParams``, ``params_nb``), and the
entries of the serving and autoscaling code are called through ``serving_only`` stand-ins: the function itself in
the serving kernel, a call that does nothing in the plain kernel, so that Numba never compiles that code for a
plain run (the first ``sweepsim run`` and ``grid`` compile in about half the time). The call sites keep their
tests of the configuration's parameters (``PI.topology``, ``PI.scale_level``), which a plain configuration never
passes, so both kernels give the same results.
"""
from numba.extending import overload

from kernels.state_nb import Params, ServingInputs, ServingParams, Sim

_PRM = Sim._fields.index("prm")


def _serving(sim_type) -> bool:
    """Whether a state tuple's type (at compile time) is the serving kernel's."""
    return sim_type.types[_PRM].instance_class is ServingParams


def params_nb(inp, i, f):
    """A configuration's parameter arrays as the kernel variant of ``inp`` types them (kernels only)."""
    raise TypeError("a kernel function: call it from jitted code")


@overload(params_nb, inline="always")
def _params_nb(inp, i, f):
    if inp.instance_class is ServingInputs:
        return lambda inp, i, f: ServingParams(i, f)
    return lambda inp, i, f: Params(i, f)


def serving_only(impl, default=None):
    """A stand-in for ``impl`` (a kernel function of the state tuple and two or three more arguments): ``impl``
    in the serving kernel; in the plain kernel, a call that returns ``default`` and never compiles ``impl``."""
    def stand_in(sim, *args):
        raise TypeError("a kernel function: call it from jitted code")

    stand_in.__name__ = stand_in.__qualname__ = impl.py_func.__name__.removesuffix("_nb") + "_if_serving_nb"
    if impl.py_func.__code__.co_argcount == 3:
        def on(sim, a, b):
            return impl(sim, a, b)

        def off(sim, a, b):
            return default

        @overload(stand_in, inline="always")
        def _ol3(sim, a, b):
            return on if _serving(sim) else off
    else:
        def on(sim, a, b, c):
            return impl(sim, a, b, c)

        def off(sim, a, b, c):
            return default

        @overload(stand_in, inline="always")
        def _ol4(sim, a, b, c):
            return on if _serving(sim) else off
    return stand_in
