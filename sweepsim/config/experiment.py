"""Experiment files (TOML): a base run configuration plus the parameters to vary, expanded into configurations.

``load_experiment(path, small=False)`` reads an experiment file and returns an :class:`Experiment`: one raw
run-config dict per configuration (``points``, ready for ``config.from_dict``) and the values of the varied
parameters (``varied``, the columns of the results). ``validate_points(exp)`` validates every point with
``config.from_dict`` so that a bad key or value is reported before anything runs. Every problem raises
``InputError(experiment file, key, message)`` naming the offending key and the allowed values.

Format::

    name = "splitwise_ha_isocost"      # required; results go to results/<name>/ (relative to the working dir)
    out = "results/mine"               # optional: another results directory
    description = "..."                # optional, ignored
    base = "../examples/baseline_h100.toml"   # optional run config (next to this file, working dir, project)
    where = "cluster_dgx_a100 > 0"     # optional filter of the product ([derived]-style expression)

    [config]                           # optional run-config keys; deep-merged over the base file's keys
    model = "bloom-176b"               #   (tables merge, scalars replace; a cluster table replaces the
    start_state = "splitwise"          #   base's cluster as a whole, its key order being the server order)
    cluster = { dgx-a100 = 0, dgx-h100 = 0 }

    [trace]                            # optional: the trace of every point (as the run config's [trace]:
    sizes = "azure-conv"               #   path = ..., or a generator spec); a path replaces a spec and
    rate = 50                          #   vice versa, two specs merge
    duration = 600

    [grid]                             # cartesian product, first key varies slowest
    "trace.sizes" = ["azure-conv", "azure-code"]
    "trace.rate" = [50, 60, 70]
    "vars.s" = [5, 10, 15]             # a free variable: not a config key, column "s"

    [[zip]]                            # keys varying together (equal lengths); one axis after the [grid] axes
    prompt_servers = [25, 35]
    token_servers = [15, 5]

    [derived]                          # computed per point, in declaration order (later ones see earlier ones)
    "cluster.dgx-a100" = "int(4.76 * (40 - s) // 2.21)"
    "cluster.dgx-h100" = "s"
    "vars.cost" = "4.76 * cluster_dgx_h100 + 2.21 * cluster_dgx_a100"

    [[exclude]]                        # drop product points matching all the given values
    "trace.sizes" = "azure-code"
    s = 35
    [[include]]                        # extra points, appended after the product (never excluded)
    "trace.sizes" = "azure-conv"
    "trace.rate" = 200
    s = 20

    [small]                            # the quick variant loaded with small=True (`sweepsim grid --small`)
    grid = { "trace.rate" = [80, 150], "vars.s" = [10, 30] }   # replaces those [grid] axes' values
    config = { trace = { duration = 20 } }                     # deep-merged into the config
    # also: trace (merged into [trace]), zip / include / exclude / where (replace the full ones), out

Keys of ``[grid]``, ``[[zip]]`` and ``[derived]`` are run-config keys, dotted for nesting (``seed``,
``scheduler``, ``cluster``, ``"cluster.dgx-h100"``, ``"instance.max_batch_tokens"``, ``"performance_model.kind"``,
``"trace.rate"``, ``"trace.path"``, ...; at most two components), or free variables ``vars.<name>``. Quote
dotted keys: unquoted ones are TOML tables and are listed table by table, which may change the declaration
order. The columns of the results (``Experiment.axes``) are the keys as written, free variables by their bare
name, in the order grid axes, zip axes, derived keys.

Expressions (``[derived]`` values and ``where``) are evaluated by :mod:`sweepsim.config.expressions` (numbers, + - * /
// % **, comparisons, and/or/not, int float round min max abs; no Python eval). They name config axes by their
key with dots and dashes replaced by underscores (``cluster_dgx_h100``, ``trace_rate``) and free variables by
their name.

``[[include]]`` and ``[[exclude]]`` tables give axis values by column name (``"cluster.dgx-h100"``, ``s`` or
``"vars.s"``). An include gives the grid / zip axes it needs; omitted ones keep the base config's value (the
column is then that value, or empty when the config does not set the key), and derived keys are computed
unless given. ``where`` and excludes filter the product only. Without grid or zip axes the product is the base
config alone.

Values keep their TOML types in ``varied`` (an axis mixing ints and floats becomes float; other mixes are
errors). Points whose run configs are equal are removed, keeping the first. Every point's ``name`` is the
experiment's name unless ``[config]`` sets one. With ``small=True`` the default results directory is
``results/<name>_small/`` (or ``<out>_small``), so that a quick run never mixes with the full one.
"""
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

from sweepsim.config import run as cfgmod
from sweepsim.errors import InputError, allowed, read_toml
from sweepsim.config.topology import Feeding, Planning, Routing, Scaling
from sweepsim.engine.performance import PerfModelConfig
from sweepsim.config.expansion import Axis, copy_raw, check_value, expand
from sweepsim.config.expressions import Expression, ExpressionError

EXPERIMENT_KEYS = ("name", "description", "out", "base", "config", "trace", "grid", "zip", "derived", "where",
                   "include", "exclude", "small")
SMALL_KEYS = ("out", "config", "trace", "grid", "zip", "where", "include", "exclude")
VARS = "vars"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Experiment:
    name: str
    source: str            # the experiment file path
    out: Path              # results directory
    axes: list[str]        # varied parameters, in declaration order (columns of the results)
    points: list[dict]     # one complete raw run-config dict per configuration (for config.from_dict)
    varied: list[dict]     # one {axis: typed value} per configuration


# ------------------------------------------------------------------------------------------------ helpers


def _flatten(table, prefix="", leaf=lambda v: not isinstance(v, dict), src=None, fld=None) -> dict:
    """Nested TOML tables -> {dotted key: value}, in order. A key written twice (``"cluster.dgx-h100"`` and
    ``[grid.cluster] dgx-h100``) is an error, not a silent overwrite."""
    out = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        items = {key: v} if leaf(v) else _flatten(v, key + ".", leaf, src, fld)
        for kk, vv in items.items():
            if kk in out:
                raise InputError(src, f"{fld}.{kk}" if fld else kk, "is given twice (as a dotted key and in a "
                                                                    "table); give it once")
            out[kk] = vv
    return out


def _output_columns() -> set:
    """Result columns a free variable must not shadow: the summary's metrics and the configuration's
    parameters."""
    from sweepsim.results.columns import summary_columns
    params = cfgmod.RunConfig(source=None, cluster=(("dgx-h100", 1),), start_state="splitwise").params()
    return set(summary_columns()) | set(params)


def _merge_trace(old, new):
    if isinstance(old, str):
        old = {"path": old}
    if isinstance(new, str):
        new = {"path": new}
    if not isinstance(old, dict) or not isinstance(new, dict) or "path" in old or "path" in new:
        return copy_raw(new)
    return _merge(old, new, top=False)


def _merge(base: dict, over: dict, top=True) -> dict:
    """Deep merge of raw config tables: tables merge, scalars (and lists) replace; at the top level a cluster
    replaces the base's cluster and a trace path replaces a generator spec (and vice versa)."""
    out = dict(base)
    for k, v in over.items():
        if top and k == "cluster":
            out[k] = copy_raw(v)
        elif top and k == "trace":
            out[k] = _merge_trace(out.get(k), v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, top=False)
        else:
            out[k] = copy_raw(v)
    return out


def _table_keys() -> dict:
    from sweepsim.config.catalog import skus
    from sweepsim.workload.spec import SPEC_KEYS
    return {"cluster": tuple(skus()),
            "instance": tuple(f.name for f in fields(cfgmod.InstanceConfig)),
            "performance_model": tuple(f.name for f in fields(PerfModelConfig)),
            "trace": ("path",) + tuple(k for k in SPEC_KEYS if k != "apps"),
            "routing": tuple(f.name for f in fields(Routing)),
            "feeding": tuple(f.name for f in fields(Feeding)),
            "scaling": tuple(f.name for f in fields(Scaling)),
            "planning": tuple(f.name for f in fields(Planning))}


# ------------------------------------------------------------------------------------------------ loader


class _Loader:
    def __init__(self, path: Path, small: bool, max_points: int | None = None, count_only: bool = False):
        self.path = path
        self.src = str(path)
        self.small = small
        self.max_points = max_points
        self.count_only = count_only
        self.tables = _table_keys()

    def err(self, fld, msg):
        return InputError(self.src, fld, msg)

    # ---- structure

    def table(self, raw, key, default=None):
        v = raw.get(key, default)
        if v is not None and not isinstance(v, dict):
            raise self.err(key, f"must be a table, got {v!r}")
        return v

    def tables_list(self, raw, key):
        v = raw.get(key, [])
        if not isinstance(v, list) or not all(isinstance(t, dict) for t in v):
            raise self.err(key, f"must be an array of tables ([[{key.split('.')[-1]}]])")
        return v

    def axis(self, key: str, fld: str) -> Axis:
        """An axis from its dotted key, validated against the run-config keys."""
        parts = key.split(".")
        options = sorted(cfgmod.TOP_KEYS) + [f"{VARS}.<name>"]
        if parts[0] == "instances" and (len(parts) != 3 or not all(parts)):
            raise self.err(fld, f"an instance count axis is instances.<region>.<endpoint> (e.g. instances.westus.A), "
                                f"got {key!r}")
        if parts[0] == "instances":
            # instances.<region>.<endpoint>: the names are checked against the topology with each configuration
            return Axis(key, key, key.replace(".", "_").replace("-", "_"), tuple(parts))
        if not all(parts) or len(parts) > 2:
            raise self.err(fld, "must be a run-config key with at most one dot (e.g. \"cluster.dgx-h100\"), "
                                f"instances.<region>.<endpoint> or vars.<name>; {allowed(options)}")
        if parts[0] == VARS:
            name = parts[1] if len(parts) == 2 else ""
            if not name.isidentifier() or name in cfgmod.TOP_KEYS:
                raise self.err(fld, f"a free variable needs a name usable in expressions (letters, digits, _) "
                                    f"that is not a run-config key, e.g. vars.s; got {key!r}")
            if name in _output_columns():
                raise self.err(fld, f"{name!r} is a column of the results (summary.parquet); give the free "
                                    "variable another name")
            return Axis(key, name, name, None)
        top = parts[0]
        if top not in cfgmod.TOP_KEYS:
            raise self.err(fld, f"unknown key {top!r}; {allowed(options)}")
        if len(parts) == 2:
            if top not in self.tables:
                raise self.err(fld, f"{top!r} is not a table; tables: {', '.join(self.tables)}")
            if parts[1] not in self.tables[top]:
                raise self.err(fld, f"unknown key {parts[1]!r} of [{top}]; {allowed(self.tables[top])}")
        return Axis(key, key, key.replace(".", "_").replace("-", "_"), tuple(parts))

    def values(self, v, fld):
        if not isinstance(v, list):
            raise self.err(fld, f"must be a list of values, got {v!r}")
        if not v:
            raise self.err(fld, "is an empty list")
        for x in v:
            check_value(self.src, fld, x)
        return list(v)

    def expression(self, text, fld) -> Expression:
        try:
            return Expression(text)
        except ExpressionError as e:
            raise self.err(fld, f"bad expression {text!r}: {e}") from None

    # ---- main

    def load(self):
        path = self.path
        raw = read_toml(path, None, "experiment file")
        unknown = [k for k in raw if k not in EXPERIMENT_KEYS]
        if unknown:
            raise self.err(unknown[0], f"unknown key; {allowed(EXPERIMENT_KEYS)}")
        name = raw.get("name")
        if name is None:
            raise self.err("name", "missing (the experiment's name, e.g. name = \"splitwise_ha_isocost\")")
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise self.err("name", f"must be a name of letters, digits, '_', '.', '-', got {name!r}")
        out = raw.get("out")
        if out is not None and (not isinstance(out, str) or not out.strip("/")):
            raise self.err("out", f"must be a directory path, got {out!r}")
        small = self.table(raw, "small")
        bad = [k for k in small or {} if k not in SMALL_KEYS]
        if bad:
            raise self.err(f"small.{bad[0]}", f"unknown key; {allowed(SMALL_KEYS)}")
        if not self.small:
            small = {}
        elif small is None:
            raise self.err("small", "this experiment has no [small] variant")
        if "out" in small:
            out = small["out"]
            if not isinstance(out, str) or not out.strip("/"):
                raise self.err("small.out", f"must be a directory path, got {out!r}")
        elif self.small:
            out = f"{out.rstrip('/')}_small" if out else f"results/{name}_small"
        elif out is None:
            out = f"results/{name}"

        base = self.base_config(raw, name)
        if self.small:
            for k in ("config", "trace"):
                if k in small:
                    t = small[k]
                    if k == "config" and not isinstance(t, dict):
                        raise self.err("small.config", "must be a table")
                    base = _merge(base, t if k == "config" else {"trace": t})
            self.check_config_keys(base, "small.config")

        grid = self.grid(raw, small)
        zips = self.zips(small.get("zip") if "zip" in small else raw.get("zip", []),
                         "small.zip" if "zip" in small else "zip")
        derived_raw = self.table(raw, "derived", {})
        axes = [a for a, _ in grid] + [a for g, _ in zips for a, _ in g]
        self.check_unique(axes, lambda a: "grid" if any(a is b for b, _ in grid) else "zip")
        derived = []
        for key, text in _flatten(derived_raw, src=self.src, fld="derived").items():
            fld = f"derived.{key}"
            ax = self.axis(key, fld)
            if not isinstance(text, str):
                raise self.err(fld, f"must be an expression string, e.g. \"int(4.76 * (40 - s) // 2.21)\", "
                                    f"got {text!r}")
            expr = self.expression(text, fld)
            known = [a.ident for a in axes] + [a.ident for a, _ in derived]
            missing = sorted(expr.names - set(known))
            if missing:
                raise self.err(fld, f"expression {text!r}: unknown name {missing[0]!r}; available: "
                                    f"{', '.join(known) or '(none: declare [grid] axes or vars.<name>)'}")
            derived.append((ax, expr))
            self.check_unique(axes + [a for a, _ in derived], lambda a: "derived")
        all_axes = axes + [a for a, _ in derived]

        where_src, where_fld = (small, "small.where") if "where" in small else (raw, "where")
        where = None
        if where_src.get("where") is not None:
            text = where_src["where"]
            if not isinstance(text, str):
                raise self.err(where_fld, f"must be an expression string, got {text!r}")
            where = self.expression(text, where_fld)
            missing = sorted(where.names - {a.ident for a in all_axes})
            if missing:
                raise self.err(where_fld, f"expression {text!r}: unknown name {missing[0]!r}; available: "
                                          f"{', '.join(a.ident for a in all_axes) or '(none)'}")

        def rows(key):
            if key in small:
                return self.tables_list(small, key), f"small.{key}"
            return self.tables_list(raw, key), key
        excludes = self.axis_rows(*rows("exclude"), all_axes)
        includes = self.axis_rows(*rows("include"), all_axes)

        sizes = [(a.name, len(v)) for a, v in grid] + [("+".join(a.name for a, _ in g), n) for g, n in zips]
        count = math.prod(n for _, n in sizes) + len(includes)
        how = " x ".join(f"{name} ({n})" for name, n in sizes) or "the base configuration"
        how += f" + {len(includes)} included" if includes else ""
        if where is not None or excludes:
            how += ", before where / exclude"
        if self.count_only:
            return count, how
        if self.max_points is not None and count > self.max_points:
            raise self.err("grid" if grid else "zip", f"expands to {count:,} configurations ({how}), over the "
                                                      f"limit of {self.max_points:,}; raise it with --max-configs")
        points, varied = expand(self.src, base, grid, zips, derived, where, excludes, includes)
        return Experiment(name=name, source=self.src, out=Path(out), axes=[a.name for a in all_axes],
                          points=points, varied=varied)

    def base_config(self, raw, name) -> dict:
        base = {}
        if "base" in raw:
            b = raw["base"]
            if not isinstance(b, str) or not b:
                raise self.err("base", f"must be the path of a run config, got {b!r}")
            p = cfgmod.resolve_path(b, self.path.parent)
            if not p.is_file():
                raise self.err("base", f"run config {b!r} not found (looked next to the experiment file, in the "
                                       "working directory and in the project)")
            base = read_toml(p, None, "run config")
            bad = [k for k in base if k not in cfgmod.TOP_KEYS]
            if bad:
                raise InputError(p, bad[0], f"unknown key; {allowed(sorted(cfgmod.TOP_KEYS))}")
            self.rebase_paths(base, p.parent)
        inline = self.table(raw, "config", {})
        self.check_config_keys(inline, "config")
        merged = _merge(base, inline)
        merged["name"] = inline.get("name", name)
        if raw.get("trace") is not None:
            t = raw["trace"]
            if not isinstance(t, (dict, str)):
                raise self.err("trace", "must be a table (path = ..., or a generator spec) or a path")
            merged = _merge(merged, {"trace": t})
        return merged

    def rebase_paths(self, d: dict, where: Path):
        """Paths of a base file that exist next to it are made absolute (they are relative to that file)."""
        def fix(p):
            return str(where / p) if isinstance(p, str) and not Path(p).is_absolute() and (where / p).exists() \
                else p
        if isinstance(d.get("trace"), str):
            d["trace"] = fix(d["trace"])
        elif isinstance(d.get("trace"), dict) and "path" in d["trace"]:
            d["trace"]["path"] = fix(d["trace"]["path"])
        if isinstance(d.get("performance_model"), dict) and "path" in d["performance_model"]:
            d["performance_model"]["path"] = fix(d["performance_model"]["path"])

    def check_config_keys(self, d, fld):
        bad = [k for k in d if k not in cfgmod.TOP_KEYS]
        if bad:
            raise self.err(f"{fld}.{bad[0]}", f"unknown run-config key; {allowed(sorted(cfgmod.TOP_KEYS))}")

    def check_unique(self, axes, section):
        seen_name, seen_ident = {}, {}
        for a in axes:
            if a.name in seen_name or a.path is not None and any(b.path == a.path for b in seen_name.values()):
                raise self.err(f"{section(a)}.{a.key}", "is varied twice (in [grid], [[zip]] or [derived])")
            if a.ident in seen_ident:
                raise self.err(f"{section(a)}.{a.key}", f"has the same expression name {a.ident!r} as "
                                                        f"{seen_ident[a.ident].key!r}")
            seen_name[a.name] = a
            seen_ident[a.ident] = a

    def grid(self, raw, small):
        g = _flatten(self.table(raw, "grid", {}), src=self.src, fld="grid")
        if "grid" in small:
            sg = small["grid"]
            if not isinstance(sg, dict):
                raise self.err("small.grid", "must be a table")
            for k, v in _flatten(sg, src=self.src, fld="small.grid").items():
                if k not in g:
                    raise self.err(f"small.grid.{k}", f"not a [grid] axis (replace zip groups with [[small.zip]]); "
                                                      f"{allowed(list(g)) if g else 'the [grid] is empty'}")
                g[k] = v
            prefix = "small.grid"
        else:
            prefix = "grid"
        return [(self.axis(k, f"{prefix}.{k}"), self.values(v, f"{prefix}.{k}")) for k, v in g.items()]

    def zips(self, groups, fld):
        if not isinstance(groups, list) or not all(isinstance(t, dict) for t in groups):
            raise self.err(fld, "must be an array of tables ([[zip]])")
        out = []
        for i, t in enumerate(groups):
            flat = _flatten(t, src=self.src, fld=f"{fld}[{i}]")
            if not flat:
                raise self.err(f"{fld}[{i}]", "is empty")
            group = [(self.axis(k, f"{fld}[{i}].{k}"), self.values(v, f"{fld}[{i}].{k}")) for k, v in flat.items()]
            n = len(group[0][1])
            for a, v in group[1:]:
                if len(v) != n:
                    raise self.err(f"{fld}[{i}].{a.key}", f"has {len(v)} values but {group[0][0].key!r} has {n}; "
                                                          "the lists of a [[zip]] group must have equal lengths")
            out.append((group, n))
        return out

    def axis_rows(self, rows, fld, axes):
        by_name = {a.name: a for a in axes}
        by_name.update({a.key: a for a in axes})
        out = []
        for i, row in enumerate(rows):
            vals = {}
            for k, v in _flatten(row, src=self.src, fld=f"{fld}[{i}]").items():
                if k not in by_name:
                    raise self.err(f"{fld}[{i}].{k}", "unknown axis; " + (allowed([a.name for a in axes]) if axes
                                                                           else "no axes are varied"))
                check_value(self.src, f"{fld}[{i}].{k}", v)
                if by_name[k] in vals:
                    raise self.err(f"{fld}[{i}].{k}", f"gives the axis {by_name[k].name!r} a second time")
                vals[by_name[k]] = v
            if not vals:
                raise self.err(f"{fld}[{i}]", "is empty")
            out.append((i, fld, vals))
        return out

def load_experiment(path, small: bool = False, max_points: int | None = None) -> Experiment:
    """Read and expand an experiment file (its ``[small]`` variant with ``small=True``). With ``max_points``,
    an experiment whose product has more points is refused before it is expanded."""
    return _Loader(Path(path), small, max_points).load()


def count_experiment(path, small: bool = False) -> tuple[int, str]:
    """The number of configurations an experiment expands to, without expanding it: the product of its
    axes plus its includes (an upper bound when ``where`` or excludes filter the product), and how it
    was counted."""
    return _Loader(Path(path), small, count_only=True).load()


def validate_points(exp: Experiment) -> list:
    """``config.from_dict`` on every point (source: the experiment file): bad keys or values raise
    ``InputError`` before anything runs. Returns the RunConfigs in point order. Generated traces are
    generated (once per distinct spec, cached) as ``from_dict`` resolves them."""
    out = []
    for i, (point, varied) in enumerate(zip(exp.points, exp.varied)):
        try:
            out.append(cfgmod.from_dict(copy_raw(point), exp.source))
        except InputError as e:
            at = ", ".join(f"{k}={v!r}" for k, v in varied.items())
            raise InputError(e.source, e.field, f"{e.message} (configuration {i}{': ' + at if at else ''})") \
                from None
    return out
