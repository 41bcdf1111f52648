"""Plans as kernel inputs: for a topology run with a planning arbiter, the targets of every planning tick per
endpoint and the forecast per minute per (region, model), packed for ``kernels.scaling_nb`` (``Scale.p``)."""
import numpy as np


def plan_inputs(cfg, placement, trace, history) -> tuple[np.ndarray, dict]:
    """(a (rows, width) float64 block: ``plan_ticks`` rows of target instances per endpoint, then ``plan_minutes``
    rows of forecast prompt tokens per minute per (region, model); the kernel parameters it sets)."""
    t = cfg.topology
    if t is None or t.planning.arbiter == "none":
        return np.zeros(0), {}
    raise NotImplementedError("planning is being wired")
