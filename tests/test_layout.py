"""The package's modules import each other in one direction: no circle, counting the
imports made inside functions too (a circle hidden that way still ties the modules'
designs together, and breaks when someone moves the import to the top)."""

import ast
import pathlib

import nacrith_codec

ROOT = pathlib.Path(nacrith_codec.__file__).parent


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict:
    """Each module -> the package's modules it imports (a package's own __init__ is not
    counted as importing its submodules: re-exports are not a design dependency)."""
    paths = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + [node.module] if node.module else base) \
                    if node.level else node.module
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    found.add(full if full in paths else target)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {m for m in found if m in paths and m != name
                       and not (path.name == "__init__.py" and m.startswith(name + "."))}
    return graph


def _circles(graph: dict) -> list:
    circles, done = [], set()

    def visit(name, path):
        for nxt in sorted(graph[name]):
            if nxt in path:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in done:
                visit(nxt, path + [nxt])
        done.add(name)
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    return circles


def test_no_module_imports_one_that_imports_it_back():
    assert _circles(_imports()) == []


def test_the_check_finds_a_circle():
    graph = _imports()
    graph["nacrith_codec.verify"].add("nacrith_codec.api")  # api imports verify
    assert [set(c) for c in _circles(graph)] == [{"nacrith_codec.api", "nacrith_codec.verify"}]
