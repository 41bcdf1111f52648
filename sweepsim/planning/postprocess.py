"""Post-processing of the hourly plans (docs/planning.md, "Hourly plans"): raw plans -> applied targets.

Each strategy maps ``plans`` ((n_ticks, n_endpoints) target instance counts from
``sweepsim.planning.planner.plan_run``) and the ``initial`` counts to the targets applied at each tick, tick by
tick (a[k] depends on the plans up to tick k and on a[k - 1]; a[-1] = initial; only plans count as plans, not
the initial counts). SageServe implements only ``immediate``; the other three are sweepsim's definitions:

- ``immediate``: a[k] = p[k].
- ``delay_changes``: a change is applied once two consecutive plans ask for it, by the amount both agree on:
  p[k - 1] and p[k] both above a[k - 1]: a[k] = min(p[k - 1], p[k]); both below: a[k] = max(p[k - 1], p[k]);
  else a[k] = a[k - 1] (so a[0] = initial).
- ``keep_maximum_instances``: scale up at once, scale down only to the largest of the last K plans: p[k] >=
  a[k - 1]: a[k] = p[k]; else a[k] = min(a[k - 1], max(p[k - K + 1 .. k])).
- ``keep_minimum_instances``: scale down at once, scale up only to the smallest of the last K plans: p[k] <=
  a[k - 1]: a[k] = p[k]; else a[k] = max(a[k - 1], min(p[k - K + 1 .. k])).
(windows p[k - K + 1 .. k] start at tick 0; K = 1 gives ``immediate``.)

Region totals: with ``region`` and ``totals``, a tick whose applied targets exceed a region's total (possible
with delay_changes and keep_maximum_instances, whose targets may stay above the plan) is repaired before the
next tick: one instance at a time is removed from the endpoint of that region whose target exceeds its plan
p[k] by the most (ties: the lowest endpoint index), until the region fits. The plans fit their totals, so
this ends with every target at or above its plan (floors kept).
"""
import numpy as np

STRATEGIES = ("immediate", "delay_changes", "keep_maximum_instances", "keep_minimum_instances")
DEFAULT_K = 2


def _setup(plans, initial):
    p = np.asarray(plans, dtype=np.int64)
    if p.ndim != 2:
        raise ValueError("plans must be a (n_ticks, n_endpoints) array")
    a0 = np.broadcast_to(np.asarray(initial, dtype=np.int64), (p.shape[1],)).copy()
    return p, a0, np.zeros_like(p)


def fit_totals(applied, plan, region, totals) -> np.ndarray:
    """``applied`` (one tick, per endpoint) with each region's sum brought within its total by removing
    instances where applied exceeds ``plan`` the most (ties: the lowest endpoint index)."""
    a = np.array(applied, dtype=np.int64)
    if region is None:
        return a
    region = np.asarray(region, dtype=np.int64)
    plan = np.asarray(plan, dtype=np.int64)
    for g in np.unique(region):
        idx = np.flatnonzero(region == g)
        while a[idx].sum() > totals[g]:
            surplus = a[idx] - plan[idx]
            j = idx[int(np.argmax(surplus))]
            if surplus.max() <= 0:
                raise ValueError(f"region {g}: the plan needs {plan[idx].sum()} instances; it has {totals[g]}")
            a[j] -= 1
    return a


def immediate(plans, initial=None, region=None, totals=None) -> np.ndarray:
    """a[k] = p[k] (SageServe's only strategy)."""
    p = np.asarray(plans, dtype=np.int64)
    if p.ndim != 2:
        raise ValueError("plans must be a (n_ticks, n_endpoints) array")
    return p.copy()


def delay_changes(plans, initial, region=None, totals=None) -> np.ndarray:
    """Apply a change once two consecutive plans ask for it, by the amount both agree on."""
    p, prev, out = _setup(plans, initial)
    for k in range(len(p)):
        a = prev.copy()
        if k > 0:
            up = (p[k - 1] > prev) & (p[k] > prev)
            down = (p[k - 1] < prev) & (p[k] < prev)
            a[up] = np.minimum(p[k - 1], p[k])[up]
            a[down] = np.maximum(p[k - 1], p[k])[down]
        out[k] = prev = fit_totals(a, p[k], region, totals)
    return out


def _window(k, K):
    if int(K) != K or K < 1:
        raise ValueError(f"K must be a positive integer, got {K}")
    return slice(max(0, k - int(K) + 1), k + 1)


def keep_maximum_instances(plans, initial, k: int = DEFAULT_K, region=None, totals=None) -> np.ndarray:
    """Scale up at once; scale down only to the largest of the last ``k`` plans."""
    p, prev, out = _setup(plans, initial)
    for j in range(len(p)):
        hi = p[_window(j, k)].max(axis=0)
        a = np.where(p[j] >= prev, p[j], np.minimum(prev, hi))
        out[j] = prev = fit_totals(a, p[j], region, totals)
    return out


def keep_minimum_instances(plans, initial, k: int = DEFAULT_K, region=None, totals=None) -> np.ndarray:
    """Scale down at once; scale up only to the smallest of the last ``k`` plans."""
    p, prev, out = _setup(plans, initial)
    for j in range(len(p)):
        lo = p[_window(j, k)].min(axis=0)
        a = np.where(p[j] <= prev, p[j], np.maximum(prev, lo))
        out[j] = prev = fit_totals(a, p[j], region, totals)
    return out


def apply_strategy(name: str, plans, initial, k: int = DEFAULT_K, region=None, totals=None) -> np.ndarray:
    """The applied targets of ``plans`` under strategy ``name`` (one of ``STRATEGIES``)."""
    if name == "immediate":
        return immediate(plans, initial, region, totals)
    if name == "delay_changes":
        return delay_changes(plans, initial, region, totals)
    if name == "keep_maximum_instances":
        return keep_maximum_instances(plans, initial, k, region, totals)
    if name == "keep_minimum_instances":
        return keep_minimum_instances(plans, initial, k, region, totals)
    raise ValueError(f"unknown post-processing strategy {name!r}; one of {', '.join(STRATEGIES)}")
