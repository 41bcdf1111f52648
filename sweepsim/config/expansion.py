"""Expanding an experiment's axes into configurations: the product of the grid and zip axes, derived values
(safe expressions), ``where`` and exclude filters, includes, one type per axis, duplicates dropped. The
experiment file's parsing is ``experiment.py``; this module only combines what it parsed."""
import itertools
import math
from dataclasses import dataclass

from sweepsim.config import run as cfgmod
from sweepsim.config.expressions import ExpressionError
from sweepsim.errors import InputError

SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Axis:
    """A varied parameter of an experiment."""
    key: str               # as declared ("cluster.dgx-h100", "vars.s")
    name: str              # column ("cluster.dgx-h100", "s")
    ident: str             # name in expressions ("cluster_dgx_h100", "s")
    path: tuple | None     # config path (None for a free variable)


def copy_raw(x):
    """Deep copy of TOML data (dicts, lists, scalars)."""
    if isinstance(x, dict):
        return {k: copy_raw(v) for k, v in x.items()}
    if isinstance(x, list):
        return [copy_raw(v) for v in x]
    return x


def _freeze(x, cluster=False):
    """Hashable canonical form of a raw config (key order ignored except the cluster's server order)."""
    if isinstance(x, dict):
        items = [(k, _freeze(v, k == "cluster")) for k, v in x.items()]
        return ("d", tuple(items) if cluster else tuple(sorted(items)))
    if isinstance(x, list):
        return ("l", tuple(_freeze(v) for v in x))
    if isinstance(x, bool):
        return ("b", x)
    return x


def _short(v) -> str:
    """repr of a value for a message, shortened (a huge integer has thousands of digits)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _same(a, b) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _type_name(v):
    return "number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__


def _get(d: dict, path: tuple, src=None):
    """The scalar at a config path (None when unset), reading shipped cluster names and string forms."""
    node = d.get(path[0])
    if len(path) == 2:
        if isinstance(node, str):
            node = {"cluster": lambda n: cfgmod.load_cluster(n, src), "performance_model": lambda n: {"kind": n},
                    "trace": lambda n: {"path": n}}[path[0]](node)
        node = node.get(path[1]) if isinstance(node, dict) else None
    return node if isinstance(node, SCALARS) else None


def check_value(src, fld, x):
    """A value of an axis: a string, a boolean, an int64 or a finite float (the column types)."""
    if not isinstance(x, SCALARS):
        raise InputError(src, fld, f"values must be numbers, strings or booleans, got {_short(x)}")
    if isinstance(x, int) and not isinstance(x, bool) and not -2 ** 63 <= x < 2 ** 63:
        raise InputError(src, fld, f"{_short(x)} is outside the 64-bit integer range")
    if isinstance(x, float) and not math.isfinite(x):
        raise InputError(src, fld, f"must be a finite number, got {x!r}")
    return x


def expand(src, base, grid, zips, derived, where, excludes, includes):
    """The points of an experiment: the product of its grid axes and zip groups (first axis slowest), each with
    its derived values, filtered by ``where`` and the excludes, then the includes; types unified per axis and
    duplicate configurations dropped. Returns (raw run-config dicts, varied values per point)."""
    assigned = []   # (assign {axis: value}, where it came from)
    axes_order = [a for a, _ in grid] + [a for g, _ in zips for a, _ in g] + [a for a, _ in derived]
    kinds = {a: {_type_name(x) for x in v} for a, v in grid}
    kinds.update({a: {_type_name(x) for x in v} for g, _ in zips for a, v in g})
    for i, fld, vals in excludes:  # an exclude of another type than its axis would silently match nothing
        for a, v in vals.items():
            if a in kinds and _type_name(v) not in kinds[a]:
                raise InputError(src, f"{fld}[{i}].{a.name}", f"{v!r} is a {_type_name(v)}; the axis holds "
                                                             f"{', '.join(sorted(kinds[a]))} values")
    derived_exprs = dict(derived)
    ranges = [range(len(v)) for _, v in grid] + [range(n) for _, n in zips]
    for combo in itertools.product(*ranges):
        assign = {a: v[i] for (a, v), i in zip(grid, combo)}
        for (group, _), j in zip(zips, combo[len(grid):]):
            assign.update({a: v[j] for a, v in group})
        env = {a.ident: x for a, x in assign.items()}
        for a, expr in derived:
            assign[a] = env[a.ident] = evaluate(src, expr, env, f"derived.{a.key}", assign)
        if where is not None:
            keep = evaluate(src, where, env, "where", assign)
            if not isinstance(keep, bool):
                raise InputError(src, "where", f"{where.text!r} is not a condition (it gives {keep!r}); compare, "
                                               "e.g. \"s > 10\"")
            if not keep:
                continue
        if any(all(_same(assign[a], v) for a, v in vals.items()) for _, _, vals in excludes):
            continue
        assigned.append(assign)
    for i, fld, vals in includes:
        assign = {}
        for a in axes_order:
            if a in vals:
                assign[a] = vals[a]
            elif a in derived_exprs:
                expr = derived_exprs[a]
                env = {b.ident: x for b, x in assign.items() if x is not None}
                missing = sorted(expr.names - set(env))
                if missing:
                    raise InputError(src, f"{fld}[{i}]", f"{a.key!r} = {expr.text!r} needs {missing[0]!r}; give it in "
                                                   "this table")
                assign[a] = evaluate(src, expr, env, f"{fld}[{i}]", assign)
            else:
                assign[a] = _get(base, a.path, src) if a.path else None
        assigned.append(assign)
    if not assigned:
        raise InputError(src, "exclude" if excludes else "where", "no configuration is left")
    unify_types(src, assigned, axes_order)

    points, varied, seen = [], [], set()
    for assign in assigned:
        point = copy_raw(base)
        for a, v in assign.items():
            if a.path is not None and v is not None:
                set_value(src, point, a, v)
        key = _freeze(point)
        if key in seen:
            continue
        seen.add(key)
        points.append(point)
        varied.append({a.name: v for a, v in assign.items()})
    return points, varied

def evaluate(src, expr, env, fld, assign):
    """An expression's value at a point, checked as an axis value; errors name the point."""
    at = ", ".join(f"{a.name}={_short(v)}" for a, v in assign.items() if v is not None)
    try:
        out = expr.evaluate(env)
    except ExpressionError as e:
        raise InputError(src, fld, f"expression {expr.text!r} at {at}: {e}") from None
    try:
        return check_value(src, fld, out)
    except InputError as e:
        raise InputError(src, fld, f"expression {expr.text!r} at {at}: {e.message}") from None

def unify_types(src, assigned, axes):
    """One type per axis: an axis mixing ints and floats becomes float; other mixes are errors."""
    for a in axes:
        kinds = {_type_name(s[a]) for s in assigned if s[a] is not None}
        if len(kinds) > 1:
            raise InputError(src, a.key, f"values of one axis must have one type; got {', '.join(sorted(kinds))}")
        if kinds == {"number"} and any(isinstance(s[a], float) for s in assigned):
            for s in assigned:
                if isinstance(s[a], int):
                    s[a] = float(s[a])

def set_value(src, d: dict, a: Axis, value):
    """Set an axis's value in a raw config (a shipped cluster name or a string form becomes a table)."""
    if len(a.path) == 1:
        d[a.path[0]] = value
        return
    if len(a.path) == 3:   # instances.<region>.<endpoint>
        top, mid, leaf = a.path
        node = {k: dict(v) if isinstance(v, dict) else v for k, v in (d.get(top) or {}).items()}
        node.setdefault(mid, {})
        node[mid][leaf] = value
        d[top] = node
        return
    top, leaf = a.path
    node = d.get(top)
    if top == "cluster" and isinstance(node, str):
        node = dict(cfgmod.load_cluster(node, src))
    elif top == "performance_model" and isinstance(node, str):
        node = {"kind": node}
    elif top == "trace":
        if isinstance(node, str):
            node = {"path": node}
        if leaf == "path":
            node = {}
        elif isinstance(node, dict) and "path" in node:
            raise InputError(src, a.key, f"the trace is a file (trace.path = {node['path']!r}); varying {a.key!r} "
                                  "needs a generated trace ([trace] sizes = ..., rate = ..., duration = ...)")
    node = dict(node) if isinstance(node, dict) else {}
    node[leaf] = value
    d[top] = node
