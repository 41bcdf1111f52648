"""The kernel's two compiled variants (kernels/variants.py): a kernel call whose configurations have no topology
packs ``Inputs`` and runs the plain kernel, compiled without the serving and autoscaling code; a call with a
topology packs ``ServingInputs`` and runs the serving kernel. A configuration without a topology must give the
same results, bit for bit, in either (here: alone, then batched with a topology configuration)."""
import os

import numpy as np
import pytest

from kernels.layout import INSTANCE_FLOAT, INSTANCE_INT, REQUEST_FLOAT, REQUEST_INT
from kernels.state_nb import Inputs, ServingInputs
from sweepsim.config.run import from_dict
from sweepsim.engine.simulate import pack, prepare, run, run_batch
from sweepsim.workload.sampling import poisson_trace
from tests.test_serving_hand import PERF, config


def plain(scheduler):
    return from_dict({"cluster": {"dgx-a100": 2}, "model": "llama2-70b", "performance_model": PERF,
                      "scheduler": scheduler, "start_state": "baseline"})


def topology():
    return config(["r0", "r1"], [("r0", 2, (1, 1), "token_jsq"), ("r1", 1, (1,), "token_jsq")])


@pytest.fixture(scope="module")
def trace():
    return poisson_trace("azure-conv", 4.0, seed=3, count=300)


def test_the_kernel_variant_follows_the_configurations(trace):
    cfgs = [plain("token_jsq"), topology()]
    placements = [prepare(c, trace)[0] for c in cfgs]
    draws = [None, None]
    assert type(pack(cfgs[:1], placements[:1], trace, draws[:1])[0]) is Inputs
    assert type(pack(cfgs[1:], placements[1:], trace, draws[1:])[0]) is ServingInputs
    assert type(pack(cfgs, placements, trace, draws)[0]) is ServingInputs


@pytest.mark.parametrize("scheduler", ["token_jsq", "round_robin"])
def test_a_plain_configuration_gives_the_same_results_in_the_serving_kernel(trace, scheduler):
    alone = run(plain(scheduler), trace)
    batched, with_topology = run_batch([plain(scheduler), topology()], trace)
    assert with_topology.completed.all() and alone.completed.all()
    for name in REQUEST_FLOAT + REQUEST_INT + INSTANCE_FLOAT + INSTANCE_INT + ("end_clock",):
        np.testing.assert_array_equal(getattr(batched, name), getattr(alone, name), err_msg=name)


def test_each_variant_announces_its_own_first_compile(trace):
    from sweepsim.engine.jit_notice import _marker
    run(plain("token_jsq"), trace)
    run(topology(), trace)
    # (the markers say that this cache has completed a call of each kernel: its compile was announced once)
    assert os.path.exists(_marker("engine")) and os.path.exists(_marker("serving engine"))
    assert _marker("engine") != _marker("serving engine")
