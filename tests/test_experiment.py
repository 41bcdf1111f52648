"""Experiment files: grid expansion (product, zip, derived, include/exclude, where, small, duplicates, typing),
input errors naming the key, the safe expression evaluator, and the shipped experiments of configs/experiments/.

No simulation runs here; ``validate_points`` only goes through ``config.from_dict`` (generated traces are written to
a temporary ``SWEEPSIM_TRACE_CACHE``, never into the repository).
"""
import dataclasses
import textwrap
from pathlib import Path

import pytest

import sweepsim
from sweepsim.config.run import RunConfig
from sweepsim.errors import InputError
from sweepsim.config.experiment import Experiment, load_experiment, validate_points
from sweepsim.config.expressions import Expression, ExpressionError

PROJECT = Path(sweepsim.__file__).resolve().parent.parent
EXPERIMENTS = sorted(p for p in (PROJECT / "configs" / "experiments").glob("*.toml") if not p.name.endswith(".plot.toml"))
TRACE = PROJECT / "traces" / "test_trace.csv"

BASE = f"""
[config]
model = "bloom-176b"
start_state = "baseline"
scheduler = "token_jsq"
cluster = {{ dgx-a100 = 0, dgx-h100 = 1 }}

[trace]
path = "{TRACE}"
"""


@pytest.fixture(autouse=True)
def trace_cache(tmp_path, monkeypatch):
    cache = tmp_path / "trace_cache"
    monkeypatch.setenv("SWEEPSIM_TRACE_CACHE", str(cache))
    return cache


def write(tmp_path, body, name="exp", base=BASE) -> Path:
    """``name``, the body's top-level keys, ``base`` (a [config] and a [trace]), then the body's tables."""
    body = textwrap.dedent(body)
    cut = next((i for i, line in enumerate(body.splitlines(True)) if line.startswith("[")), None)
    lines = body.splitlines(True)
    top, tables = (lines, []) if cut is None else (lines[:cut], lines[cut:])
    p = tmp_path / f"{name}.toml"
    p.write_text(f'name = "{name}"\n' + "".join(top) + base + "".join(tables))
    return p


def load(tmp_path, body, base=BASE, **kw):
    return load_experiment(write(tmp_path, body, base=base), **kw)


def error(tmp_path, body, *needles, base=BASE, small=False) -> InputError:
    path = write(tmp_path, body, base=base)
    with pytest.raises(InputError) as info:
        load_experiment(path, small=small)
    e = info.value
    assert e.source == str(path)
    for needle in needles:
        assert needle in str(e), (needle, str(e))
    return e


# ------------------------------------------------------------------------------------------ expansion


def test_product_order_and_count(tmp_path):
    exp = load(tmp_path, """
        [grid]
        "cluster.dgx-h100" = [1, 2]
        scheduler = ["token_jsq", "jsq", "round_robin"]
        seed = [0, 1]
        """)
    assert isinstance(exp, Experiment)
    assert exp.name == "exp" and exp.source == str(tmp_path / "exp.toml")
    assert exp.out == Path("results/exp")
    assert exp.axes == ["cluster.dgx-h100", "scheduler", "seed"]
    assert len(exp.points) == len(exp.varied) == 12
    # first key varies slowest
    assert [tuple(v.values()) for v in exp.varied[:4]] == [(1, "token_jsq", 0), (1, "token_jsq", 1),
                                                          (1, "jsq", 0), (1, "jsq", 1)]
    assert exp.varied[6] == {"cluster.dgx-h100": 2, "scheduler": "token_jsq", "seed": 0}
    for p, v in zip(exp.points, exp.varied):
        assert p["cluster"] == {"dgx-a100": 0, "dgx-h100": v["cluster.dgx-h100"]}
        assert p["scheduler"] == v["scheduler"] and p["seed"] == v["seed"]
        assert p["name"] == "exp" and p["model"] == "bloom-176b"
    # points are independent copies
    exp.points[0]["cluster"]["dgx-h100"] = 99
    assert exp.points[1]["cluster"]["dgx-h100"] == 1


def test_unquoted_dotted_keys_and_nested_tables(tmp_path):
    exp = load(tmp_path, """
        [grid]
        cluster.dgx-h100 = [1, 2]
        instance.max_batch_tokens = [1024, 2048]
        """)
    assert exp.axes == ["cluster.dgx-h100", "instance.max_batch_tokens"]
    assert exp.points[1]["instance"] == {"max_batch_tokens": 2048}


def test_zip_groups(tmp_path):
    exp = load(tmp_path, """
        [grid]
        seed = [0, 1]

        [[zip]]
        "vars.shape" = ["small", "large"]
        "cluster.dgx-h100" = [1, 4]
        "instance.max_batch_size" = [64, 256]

        [[zip]]
        scheduler = ["jsq", "token_jsq"]
        """)
    assert exp.axes == ["seed", "shape", "cluster.dgx-h100", "instance.max_batch_size", "scheduler"]
    assert len(exp.points) == 2 * 2 * 2
    assert exp.varied[0] == {"seed": 0, "shape": "small", "cluster.dgx-h100": 1, "instance.max_batch_size": 64,
                             "scheduler": "jsq"}
    assert exp.varied[3] == {"seed": 0, "shape": "large", "cluster.dgx-h100": 4, "instance.max_batch_size": 256,
                             "scheduler": "token_jsq"}
    assert exp.points[3]["cluster"]["dgx-h100"] == 4 and exp.points[3]["instance"]["max_batch_size"] == 256
    assert "shape" not in exp.points[0] and "vars" not in exp.points[0]


def test_derived_and_where(tmp_path):
    exp = load(tmp_path, """
        [grid]
        "vars.s" = [5, 10, 40]

        [derived]
        "cluster.dgx-a100" = "int(4.76 * (40 - s) // 2.21)"
        "cluster.dgx-h100" = "s"
        "vars.cost" = "4.76 * cluster_dgx_h100 + 2.21 * cluster_dgx_a100"

        [config.performance_model]
        kind = "db"
        """)
    assert exp.axes == ["s", "cluster.dgx-a100", "cluster.dgx-h100", "cost"]
    assert [v["cluster.dgx-a100"] for v in exp.varied] == [75, 64, 0]
    assert exp.points[0]["cluster"] == {"dgx-a100": 75, "dgx-h100": 5}
    assert exp.varied[0]["cost"] == pytest.approx(4.76 * 5 + 2.21 * 75)
    exp = load(tmp_path, """
        where = "cluster_dgx_a100 > 0 and s != 10"
        [grid]
        "vars.s" = [5, 10, 40]
        [derived]
        "cluster.dgx-a100" = "int(4.76 * (40 - s) // 2.21)"
        """)
    assert [v["s"] for v in exp.varied] == [5]


def test_include_exclude(tmp_path):
    exp = load(tmp_path, """
        [grid]
        "cluster.dgx-h100" = [1, 2, 3]
        scheduler = ["jsq", "token_jsq"]
        [derived]
        "vars.double" = "2 * cluster_dgx_h100"

        [[exclude]]                       # all values must match
        "cluster.dgx-h100" = 2
        scheduler = "jsq"
        [[exclude]]
        cluster.dgx-h100 = 3              # drops both schedulers
        [[exclude]]
        double = 2                        # derived columns can be matched too
        scheduler = "token_jsq"

        [[include]]                       # appended, never excluded; derived computed
        "cluster.dgx-h100" = 3
        scheduler = "jsq"
        [[include]]                       # omitted axes keep the base config's value
        "cluster.dgx-h100" = 8
        """)
    assert [(v["cluster.dgx-h100"], v["scheduler"], v["double"]) for v in exp.varied] == [
        (1, "jsq", 2), (2, "token_jsq", 4), (3, "jsq", 6), (8, "token_jsq", 16)]
    assert exp.points[2]["cluster"]["dgx-h100"] == 3 and exp.points[2]["scheduler"] == "jsq"
    assert exp.points[3]["scheduler"] == "token_jsq"
    with pytest.raises(InputError, match="exclude: no configuration is left"):
        load(tmp_path, """
            [grid]
            seed = [0, 1]
            [[exclude]]
            seed = 0
            [[exclude]]
            seed = 1
            """)


def test_include_omitting_an_axis_unset_in_the_config(tmp_path):
    exp = load(tmp_path, """
        [grid]
        "instance.max_batch_size" = [64]
        seed = [0]
        [[include]]
        seed = 1
        """)
    assert exp.varied == [{"instance.max_batch_size": 64, "seed": 0}, {"instance.max_batch_size": None, "seed": 1}]
    assert "instance" not in exp.points[1]


def test_no_axes_is_the_base_config(tmp_path):
    exp = load(tmp_path, "")
    assert len(exp.points) == 1 and exp.varied == [{}] and exp.axes == []
    assert validate_points(exp)[0].cluster == (("dgx-a100", 0), ("dgx-h100", 1))


def test_duplicates_removed_keeping_first(tmp_path):
    exp = load(tmp_path, """
        [grid]
        seed = [0, 1, 0]
        "vars.unused" = [1, 2]
        [[include]]
        seed = 1
        unused = 7
        """)
    # "unused" does not change the config: one point per distinct seed, the first occurrence kept
    assert exp.varied == [{"seed": 0, "unused": 1}, {"seed": 1, "unused": 1}]
    assert [p["seed"] for p in exp.points] == [0, 1]


def test_typing(tmp_path):
    exp = load(tmp_path, """
        [grid]
        seed = [1, 2]
        "trace.path" = ["TRACE"]
        "vars.flag" = [true]
        "vars.x" = [0.5]
        "vars.mixed" = [1, 2.5]
        [derived]
        "vars.half" = "seed / 2"
        "vars.whole" = "seed // 1"
        """.replace("TRACE", str(TRACE)))
    v = exp.varied[0]
    assert type(v["seed"]) is int and type(v["trace.path"]) is str and v["flag"] is True
    assert type(v["x"]) is float and type(v["half"]) is float and type(v["whole"]) is int
    assert [type(w["mixed"]) for w in exp.varied] == [float, float]      # ints and floats -> float column
    assert exp.points[0]["seed"] == 1 and type(exp.points[0]["seed"]) is int
    error(tmp_path, """
        [grid]
        "vars.m" = [1, "a"]
        """, "vars.m", "one type")
    error(tmp_path, """
        [grid]
        "vars.m" = [1, true]
        """, "vars.m", "one type")


def test_small_variant(tmp_path):
    body = """
        [trace]
        sizes = "fixed:100,10"
        rate = 5
        duration = 600
        [grid]
        "trace.rate" = [5, 10, 20, 40]
        "cluster.dgx-h100" = [1, 2, 4]
        seed = [0, 1]

        [small.grid]
        "trace.rate" = [5]
        "cluster.dgx-h100" = [1, 2]
        [small.trace]
        duration = 20
        """
    base = BASE.split("[trace]")[0]
    full = load(tmp_path, body, base=base)
    assert len(full.points) == 4 * 3 * 2 and full.points[0]["trace"]["duration"] == 600
    assert "path" not in full.points[0]["trace"]            # the [trace] spec replaced [config]'s path
    small = load(tmp_path, body, base=base, small=True)
    assert small.axes == full.axes
    assert [tuple(v.values()) for v in small.varied] == [(5, 1, 0), (5, 1, 1), (5, 2, 0), (5, 2, 1)]
    assert all(p["trace"] == {"sizes": "fixed:100,10", "rate": 5, "duration": 20} for p in small.points)
    assert small.out == Path("results/exp_small")
    cfgs = validate_points(small)
    assert len({c.trace for c in cfgs}) == 1
    small = load(tmp_path, 'out = "elsewhere/x"\n' + body.replace("[small.trace]", "[small.config.trace]"),
                 base=base, small=True)
    assert small.out == Path("elsewhere/x_small") and small.points[0]["trace"]["duration"] == 20
    body = body.replace("seed = [0, 1]\n", "").replace("[small.grid]", '[small]\nout = "o"\n[small.grid]')
    small = load(tmp_path, body + "[[small.zip]]\nseed = [7]\n", base=base, small=True)
    assert small.out == Path("o") and [v["seed"] for v in small.varied] == [7, 7]
    error(tmp_path, "[grid]\nseed = [0]\n", "small", "no [small] variant", small=True)
    error(tmp_path, "[grid]\nseed = [0]\n[small.grid]\nscheduler = [\"jsq\"]\n", "small.grid.scheduler",
          "not a [grid] axis", small=True)
    error(tmp_path, "[small]\ngird = 1\n", "small.gird", "unknown key")


def test_base_file(tmp_path):
    (tmp_path / "cfgs").mkdir()
    (tmp_path / "cfgs" / "t.csv").write_text(TRACE.read_text())
    (tmp_path / "cfgs" / "run.toml").write_text(textwrap.dedent("""
        name = "run"
        scheduler = "jsq"
        start_state = "baseline"
        [cluster]
        dgx-h100 = 2
        [instance]
        max_batch_size = 64
        [trace]
        path = "t.csv"
        """))
    exp = load(tmp_path, """
        base = "cfgs/run.toml"
        [config]
        seed = 3
        cluster = { dgx-a100 = 1, dgx-h100 = 1 }
        [config.instance]
        max_batch_tokens = 1024
        [grid]
        "cluster.dgx-h100" = [1, 2]
        """, base="")
    p = exp.points[0]
    assert p["name"] == "exp" and p["scheduler"] == "jsq" and p["seed"] == 3
    assert list(p["cluster"].items()) == [("dgx-a100", 1), ("dgx-h100", 1)]   # replaced, order kept
    assert p["instance"] == {"max_batch_size": 64, "max_batch_tokens": 1024}   # tables merge
    assert p["trace"] == {"path": str(tmp_path / "cfgs" / "t.csv")}            # relative to the base file
    cfg = validate_points(exp)[1]
    assert isinstance(cfg, RunConfig) and cfg.cluster == (("dgx-a100", 1), ("dgx-h100", 2))
    assert cfg.instance.max_batch_tokens == 1024 and cfg.scheduler == "jsq" and cfg.trace.endswith("t.csv")
    error(tmp_path, 'base = "nope.toml"\n', "base", "not found", base="")


def test_cluster_name_and_trace_path_axes(tmp_path):
    exp = load(tmp_path, """
        [grid]
        cluster = ["solo_h100", "half_half"]
        """)
    cfgs = validate_points(exp)
    assert [c.cluster for c in cfgs] == [(("dgx-a100", 0), ("dgx-h100", 1)), (("dgx-a100", 1), ("dgx-h100", 1))]
    exp = load_experiment(write(tmp_path, """
        [config]
        cluster = "half_half"
        [grid]
        "cluster.dgx-h100" = [3]
        """, base=""))
    assert exp.points[0]["cluster"] == {"dgx-a100": 1, "dgx-h100": 3}
    error(tmp_path, """
        [grid]
        "trace.rate" = [5]
        """, "trace.rate", "generated trace")


def test_validate_points_errors_name_the_key(tmp_path):
    exp = load(tmp_path, """
        [grid]
        scheduler = ["jsq", "fastest"]
        """)
    with pytest.raises(InputError) as info:
        validate_points(exp)
    assert info.value.field == "scheduler" and info.value.source == exp.source
    assert "fastest" in str(info.value) and "token_jsq" in str(info.value) and "configuration 1" in str(info.value)
    exp = load(tmp_path, """
        [grid]
        "instance.tensor_parallel" = [8, 3]
        """)
    with pytest.raises(InputError, match="instance.tensor_parallel"):
        validate_points(exp)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("body, key, needle", [
    ("nmae = 1\n", "nmae", "allowed: name"),
    ("out = 5\n", "out", "directory path"),
    ("grid = 1\n", "grid", "must be a table"),
    ("zip = 1\n", "zip", "array of tables"),
    ("[grid]\n\"clustr.dgx-h100\" = [1]\n", "clustr.dgx-h100", "allowed:"),
    ("[grid]\n\"cluster.dgx-h999\" = [1]\n", "cluster.dgx-h999", "dgx-h100"),
    ("[grid]\n\"instance.max_batch\" = [1]\n", "instance.max_batch", "max_batch_tokens"),
    ("[grid]\n\"trace.rat\" = [1]\n", "trace.rat", "rate"),
    ("[grid]\n\"seed.x\" = [1]\n", "seed.x", "not a table"),
    ("[grid]\n\"cluster.a.b\" = [1]\n", "cluster.a.b", "at most one dot"),
    ("[grid]\n\"vars.1x\" = [1]\n", "vars.1x", "free variable"),
    ("[grid]\nseed = 1\n", "grid.seed", "must be a list"),
    ("[grid]\nseed = []\n", "grid.seed", "empty list"),
    ("[grid]\nseed = [[1]]\n", "grid.seed", "numbers, strings or booleans"),
    ("[[zip]]\nseed = [1, 2]\n\"cluster.dgx-h100\" = [1]\n", "zip[0].cluster.dgx-h100", "equal lengths"),
    ("[grid]\nseed = [1]\n[[zip]]\nseed = [2]\n", "seed", "varied twice"),
    ("[grid]\n\"vars.s\" = [1]\n[derived]\n\"cluster.dgx-h100\" = \"s +\"\n", "derived.cluster.dgx-h100",
     "'s +'"),
    ("[grid]\n\"vars.s\" = [1]\n[derived]\n\"cluster.dgx-h100\" = \"__import__('os').system('x')\"\n",
     "derived.cluster.dgx-h100", "not allowed"),
    ("[grid]\n\"vars.s\" = [1]\n[derived]\n\"cluster.dgx-h100\" = \"s.real\"\n", "derived.cluster.dgx-h100",
     "attribute access"),
    ("[grid]\n\"vars.s\" = [1]\n\"cluster.dgx-a100\" = [2]\n[derived]\n\"cluster.dgx-h100\" = \"h100 * 2\"\n",
     "derived.cluster.dgx-h100", "unknown name 'h100'; available: s, cluster_dgx_a100"),
    ("[grid]\n\"vars.s\" = [0]\n[derived]\n\"cluster.dgx-h100\" = \"1 // s\"\n", "derived.cluster.dgx-h100",
     "by zero"),
    ("[derived]\n\"cluster.dgx-h100\" = 3\n", "derived.cluster.dgx-h100", "expression string"),
    ("where = \"x > 1\"\n[grid]\nseed = [1]\n", "where", "unknown name 'x'; available: seed"),
    ("[grid]\nseed = [1]\n[[include]]\nsed = 1\n", "include[0].sed", "allowed: seed"),
    ("[grid]\nseed = [1]\n[[exclude]]\n\"cluster.dgx-h100\" = 1\n", "exclude[0].cluster.dgx-h100",
     "unknown axis"),
    ("[grid]\n\"vars.s\" = [1]\nseed = [0]\n[derived]\n\"cluster.dgx-h100\" = \"s\"\n[[include]]\nseed = 1\n",
     "include[0]", "needs 's'"),
])
def test_bad_input_names_the_key(tmp_path, body, key, needle):
    e = error(tmp_path, body, key, needle)
    assert e.field is not None and key in e.field


def test_unknown_config_key(tmp_path):
    error(tmp_path, "[config]\nsede = 1\n", "config.sede", "allowed:", base="")


def test_missing_name_and_file(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[grid]\nseed = [1]\n")
    with pytest.raises(InputError, match="name: missing"):
        load_experiment(p)
    p.write_text('name = "a/b"\n')
    with pytest.raises(InputError, match="name: must be"):
        load_experiment(p)
    with pytest.raises(InputError, match="not found"):
        load_experiment(tmp_path / "nope.toml")
    p.write_text('name = "x"\n[grid\n')
    with pytest.raises(InputError, match="invalid TOML"):
        load_experiment(p)


# ------------------------------------------------------------------------------------------ safe_eval


def safe_eval(text, env):
    return Expression(text).evaluate(env)


def test_safe_eval_arithmetic():
    env = {"s": 5, "x": 2.5}
    assert safe_eval("int(4.76 * (40 - s) // 2.21)", env) == 75
    assert safe_eval("-s + +3 ** 2 % 4 - s / 2", env) == -5 + 1 - 2.5
    assert safe_eval("min(s, x) + max(1, 2, 3) + abs(-1) + round(x) + round(1.234, 1) + float(1)", env) == \
        2.5 + 3 + 1 + 2 + 1.2 + 1.0
    assert safe_eval("1 < s <= 5 and not s == 4", env) is True
    assert Expression("a + b * min(c, 1)").names == {"a", "b", "c"}


@pytest.mark.parametrize("text", [
    "__import__('os')", "open('f')", "s.real", "s.__class__", "[1][0]", "s[0]", "(lambda: 1)()", "lambda: 1",
    "'a' * 3", "eval('1')", "exec('1')", "getattr(s, 'x')", "int(x=1)", "min(*[1])", "[1, 2]", "{1: 2}",
    "(1, 2)", "s if s else 1", "(y := 1)", "f'{s}'", "s << 1", "s is 1", "s in 1", "~s", "1 +", "",
    "10 ** 100000", "(2 ** 9999) ** 9999", "True", "-" * 999 + "1", "(" * 300 + "1" + ")" * 300,
])
def test_safe_eval_rejects(text):
    with pytest.raises(ExpressionError):
        safe_eval(text, {"s": 5})


def test_safe_eval_unknown_names_listed():
    with pytest.raises(ExpressionError, match="unknown name 'y'; available: a, s"):
        safe_eval("s + y", {"s": 1, "a": 2})
    with pytest.raises(ExpressionError, match="needs numbers"):
        safe_eval("s * 3", {"s": "abc"})


# ------------------------------------------------------------------------------------------ shipped


def test_shipped_experiments_exist():
    names = {p.stem for p in EXPERIMENTS}
    for n in ("baseline_a100", "baseline_h100", "splitwise_aa", "splitwise_hh", "splitwise_ha", "splitwise_hhcap",
              "splitwise_ha_isocost", "splitwise_ha_isopower", "splitwise_hhcap_isocost", "baseline_h100_costopt"):
        assert n in names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_shipped_experiment_loads_and_validates(path, trace_cache):
    exp = load_experiment(path)
    assert exp.name == path.stem and exp.out == Path("results") / path.stem
    assert len(exp.points) == len(exp.varied) >= 20
    assert all(list(v) == exp.axes for v in exp.varied)
    serving = "topology" in exp.points[0]       # SageServe experiments: regions and endpoints, no single model
    assert all(p["topology"] == "us3" if serving else p["model"] == "bloom-176b" for p in exp.points)
    # the full variants are large: validate the first and the last configuration
    some = dataclasses.replace(exp, points=[exp.points[0], exp.points[-1]], varied=[exp.varied[0], exp.varied[-1]])
    assert len(validate_points(some)) == 2
    small = load_experiment(path, small=True)
    assert small.axes == exp.axes and small.out == Path("results") / f"{path.stem}_small"
    assert 2 <= len(small.points) <= 12
    cfgs = validate_points(small)
    assert len(cfgs) == len(small.points)
    assert all(c.source == str(path) for c in cfgs)
    assert all(Path(c.trace).parent == trace_cache for c in cfgs)     # generated into the temporary cache
    # (a planning experiment's small trace holds an hour of forecast history, the least an ARIMA fit takes)
    history = max(float(p.get("planning", {}).get("train_until", 0)) for p in small.points)
    assert all(p["trace"]["duration"] <= history + (300 if serving else 30) for p in small.points)


def test_shipped_isocost_grid():
    exp = load_experiment(PROJECT / "configs" / "experiments" / "splitwise_ha_isocost.toml")
    assert len(exp.points) == 7 * 14 * 2
    assert exp.axes == ["trace.sizes", "trace.rate", "s", "cluster.dgx-a100", "cluster.dgx-h100"]
    split = {v["s"]: (v["cluster.dgx-a100"], v["cluster.dgx-h100"]) for v in exp.varied}
    assert split == {5: (75, 5), 10: (64, 10), 15: (53, 15), 20: (43, 20), 25: (32, 25), 30: (21, 30),
                     35: (10, 35)}
    assert {v["trace.rate"] for v in exp.varied} == set(range(50, 181, 10))
    assert {v["trace.sizes"] for v in exp.varied} == {"azure-conv", "azure-code"}
    p = exp.points[0]
    assert p["start_state"] == "splitwise" and p["split_type"] == "heterogeneous" and p["scheduler"] == "mixed_pool"
    assert (p["prompt_sku"], p["token_sku"]) == ("dgx-h100", "dgx-a100")
    assert list(p["cluster"]) == ["dgx-a100", "dgx-h100"]
    assert p["trace"] == {"duration": 600, "independent": True, "seed": 0, "sizes": "azure-conv", "rate": 50}


def test_shipped_isopower_grids():
    d = PROJECT / "configs" / "experiments"
    ha = load_experiment(d / "splitwise_ha_isopower.toml")
    assert [v["cluster.dgx-a100"] for v in ha.varied[:7]] == [62, 53, 44, 35, 26, 17, 8]
    assert len(ha.points) == 7 * 21 and {v["trace.sizes"] for v in ha.varied} == {"azure-conv"}
    cap = load_experiment(d / "splitwise_hhcap_isopower.toml")
    assert [v["cluster.dgx-h100-pcap"] for v in cap.varied[:7]] == [49, 42, 35, 28, 21, 14, 7]
    assert cap.points[0]["start_state"] == "splitwise_hhcap"
