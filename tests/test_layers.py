"""The layers of the house (docs/design.md section 1): every import of the project's own modules
points down, never up or sideways, nothing imports the command line, and the module-level imports
form no cycle. The imports are read from the source (every ``import`` statement, also those
inside functions), not from a running interpreter."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Source folder -> the package it installs as (pyproject.toml's package-dir).
FOLDERS = {"permdeal": "permdeal", "golden": "permdeal.golden", "hdl": "permdeal.hdl",
           "gen": "permdeal.gen", "verif": "permdeal.verif", "synth": "permdeal.synth"}
#: Layer of each package, lowest first; a module may import only its own layer's modules (of its
#: own package) and lower layers. verif and synth share a layer and do not import each other.
LAYERS = [
    ("core", ("permdeal.errors", "permdeal.checks", "permdeal.atomic", "permdeal.tables",
              "permdeal.limits", "permdeal.executor")),
    ("golden", ("permdeal.golden",)),
    ("hdl", ("permdeal.hdl",)),
    ("gen", ("permdeal.gen",)),
    ("flows", ("permdeal.verif", "permdeal.synth")),
    ("methods", ("permdeal.methods",)),
    ("api", ("permdeal.api",)),
    ("cli", ("permdeal.cli", "permdeal.__main__")),
]
#: The package root: its version is read by every layer; it loads the API lazily on first use of
#: ``permdeal.NAME`` (a function-level import that runs after the package is loaded).
ROOT_MODULE = "permdeal"


def modules():
    """``{module name: path}`` of every project module."""
    out = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


MODULES = modules()


def group(name):
    """``(layer rank, group)`` of a module: the group is the layer's name, but in the flows
    layer the package (verif and synth may not import each other)."""
    if name == ROOT_MODULE:
        return 0, "core"
    for rank, (layer, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                return rank, prefix if layer == "flows" else layer
    raise AssertionError(f"module {name} is in no layer of docs/design.md section 1")


def resolve(name, is_package, node):
    """The project modules an import node of module ``name`` names (absolute names)."""
    found = []
    if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = name.split(".") if is_package else name.split(".")[:-1]
            pkg = pkg[:len(pkg) - (node.level - 1)]
            base = ".".join(pkg + ([base] if base else []))
        # ``from X import y``: the module X.y where there is one, else X itself
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                   for a in node.names]
    for t in targets:
        while t and t not in MODULES:
            t = t.rpartition(".")[0]
        if t:
            found.append(t)
    return set(found)


def edges():
    """``[(importer, imported, module_level, line)]`` over the whole project."""
    out = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in resolve(name, path.name == "__init__.py", node):
                    if target != name:
                        out.append((name, target, id(node) in top, node.lineno))
    return out


EDGES = edges()


def test_every_module_is_in_a_layer():
    assert len(MODULES) > 80
    for name in MODULES:
        group(name)


def test_imports_point_down():
    bad = []
    for a, b, _, line in EDGES:
        if a == ROOT_MODULE and b.startswith("permdeal.api"):
            continue  # the root's lazy re-export of the API (see ROOT_MODULE)
        (ra, ga), (rb, gb) = group(a), group(b)
        if b == ROOT_MODULE:
            continue  # __version__, read by every layer
        if rb > ra or (rb == ra and ga != gb):
            bad.append(f"{MODULES[a].relative_to(ROOT)}:{line}: {a} ({LAYERS[ra][0]}) imports "
                       f"{b} ({LAYERS[rb][0]})")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_nothing_imports_the_command_line():
    users = sorted({a for a, b, _, _ in EDGES
                    if group(b)[1] == "cli" and group(a)[1] != "cli"})
    assert users == [], users


def test_no_import_cycle():
    graph = {}
    for a, b, top, _ in EDGES:
        if top:
            graph.setdefault(a, set()).add(b)
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2
    for n in sorted(graph):
        if n not in state:
            visit(n)


@pytest.mark.parametrize("name", ["permdeal.golden.cycles", "permdeal.hdl.engine",
                                  "permdeal.api.models"])
def test_the_walk_sees_known_imports(name):
    """The walk is not vacuous: modules known to import lower layers are seen doing so."""
    assert any(a == name and group(b)[0] < group(a)[0] for a, b, _, _ in EDGES)


def test_the_walk_would_catch_an_upward_import(tmp_path):
    """A golden module that imported the API would be reported (the check can fail)."""
    node = ast.parse("from permdeal.api import models").body[0]
    (target,) = resolve("permdeal.golden.cycles", False, node)
    assert group(target)[0] > group("permdeal.golden.cycles")[0]
