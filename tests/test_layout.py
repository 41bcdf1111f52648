"""The code layout keeps its promises: no module of sweepsim imports one that imports it back (also through
imports inside functions), and no kernel input or output is addressed by a literal column number."""
import ast
import re
from pathlib import Path

from sweepsim import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "sweepsim"


def _module(path: Path) -> str:
    name = ".".join(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    deps = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sweepsim"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("sweepsim")}
        deps[name] = (found & set(modules)) - {name}
    return deps


def test_no_module_imports_one_that_imports_it_back():
    deps = _imports()
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for d in sorted(deps.get(m, ())):
            if d not in (m.rsplit(".", 1)[0],):  # a package's __init__ is not a dependency of its modules
                visit(d)
        stack.pop()

    for m in sorted(deps):
        visit(m)
    assert not cycles, cycles


def test_no_literal_column_numbers_for_kernel_arrays():
    pattern = re.compile(r"\b(prm_i|prm_f|req_f|req_i|inst_f|inst_i)\[[^\]]*,\s*\d+\s*[,\]]|\blg\[row, \d+\]")
    hits = [f"{p.relative_to(PROJECT_ROOT)}:{k}" for d in ("kernels", "sweepsim")
            for p in (PROJECT_ROOT / d).rglob("*.py")
            for k, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits
