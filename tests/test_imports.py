"""The import graph of `smt/` and `viz/`: no circles, and the generic checkpoint reader imports no model.

Every `import` and `from ... import` of every module counts, also those inside functions (they run
later, but a circle through them still ties the modules together). An import names the module it
loads: `from .mod import name` is an edge to `mod`, or to `mod.name` when that is a submodule;
`from . import x` is an edge to the submodule `x`, or to the package itself when `x` is an attribute
of its `__init__`. The packages a module sits in are not edges (every submodule would otherwise be
in a circle with an `__init__` that imports it).
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("smt", "viz")


def _modules() -> dict[str, Path]:
    """Every module of the packages by dotted name (a package by the name of its `__init__`)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str:
    """The longest prefix of `name` that is one of the project's modules ('' if none)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return ""


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that `module` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(_resolve(alias.name, modules) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = package[:len(package) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:  # a submodule if there is one by that name, else an attribute of base
                submodule = f"{base}.{alias.name}"
                out.add(submodule if submodule in modules else _resolve(base, modules))
    out.discard("")
    out.discard(module)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component with more than one module (Tarjan's algorithm)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(set(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_circle(graph, c) for c in components]


def _circle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest circle through the first module of a strongly connected component, for the message."""
    start = min(component)
    paths, frontier = {start: [start]}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return paths[v] + [start]
                if w not in paths:
                    paths[w] = paths[v] + [w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{component} is not strongly connected")


def test_resolution_of_relative_imports(tmp_path):
    modules = {"pkg": Path("pkg/__init__.py"), "pkg.a": Path("pkg/a.py"), "pkg.sub": Path("pkg/sub/__init__.py"),
               "pkg.sub.b": Path("pkg/sub/b.py"), "pkg.sub.c": Path("pkg/sub/c.py")}
    sources = {
        "pkg.sub.b": "from . import c\nfrom .c import helper\nfrom .. import a, VERSION\nfrom ..a import f\n"
                     "def later():\n    from pkg.sub import c as again\n    import pkg.a.missing\n",
        "pkg.sub": "from .b import run\nfrom . import b\n",
        "pkg": "from .sub import b\nfrom .sub.c import thing\nimport os\n",
    }
    got = {}
    for name, text in sources.items():
        path = tmp_path / modules[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        got[name] = _imports(name, path, modules)
    assert got["pkg.sub.b"] == {"pkg.sub.c", "pkg.a", "pkg"}  # VERSION is an attribute of pkg/__init__
    assert got["pkg.sub"] == {"pkg.sub.b"}
    assert got["pkg"] == {"pkg.sub.b", "pkg.sub.c"}
    graph = {m: set() for m in modules} | {"pkg.a": {"pkg.sub.c"}, "pkg.sub.c": {"pkg.sub.b"}, "pkg.sub.b": {"pkg.a"}}
    assert _cycles(graph) == [["pkg.a", "pkg.sub.c", "pkg.sub.b", "pkg.a"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package):
    graph = _graph()
    assert any(graph.values()), "no imports found: the graph is not being read"
    circles = [c for c in _cycles(graph) if any(m.split(".")[0] == package for m in c)]
    assert not circles, "import circles: " + "; ".join(" -> ".join(c) for c in circles)


def test_smt_checkpoint_code_does_not_import_the_model():
    graph = _graph()
    assert "smt.checkpoint" in graph["smt.model"]  # the model loads its weights through the checkpoint code ...
    for leaf in ("smt.reader", "smt.keys", "smt.variants", "smt.checkpoint"):  # ... which needs nothing of it
        assert "smt.model" not in graph[leaf], leaf
    for leaf in ("smt.reader", "smt.keys", "smt.variants", "smt.fused"):
        assert not graph[leaf], (leaf, graph[leaf])


_ISOLATED = """
import json, sys, types
pkg = types.ModuleType("smt")  # the package without its __init__, which imports the model by design
pkg.__path__ = [sys.argv[1]]
sys.modules["smt"] = pkg
import torch
import smt.reader
path = sys.argv[2]
torch.save({"model": torch.nn.Linear(3, 2).state_dict(), "epoch": 1}, path)
loaded = smt.reader.safe_load(path)
print(json.dumps({"modules": sorted(m for m in sys.modules if m.split(".")[0] in ("smt", "viz", "timm")),
                  "keys": sorted(loaded["model"]), "epoch": loaded["epoch"]}))
"""


def test_the_generic_reader_imports_no_model(tmp_path):
    # `import smt` registers the models with timm, so it always imports smt.model; the reader itself must not
    out = subprocess.run([sys.executable, "-c", _ISOLATED, str(ROOT / "smt"), str(tmp_path / "w.pth")],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    result = json.loads(out.stdout)
    assert "smt.model" not in result["modules"]
    assert result["modules"] == ["smt", "smt.reader"]  # nothing else of the project, and no timm
    assert result["keys"] == ["bias", "weight"] and result["epoch"] == 1
