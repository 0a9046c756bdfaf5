"""The layers of em/: no module imports, even inside a function, a module that imports it back."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module and package of em/."""
    out = {}
    for path in (ROOT / "em").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported(name: str, path: Path, known: dict) -> set[str]:
    """The em modules that ``name`` imports anywhere in its file (``from P import X`` counts
    as P.X where X is a module, else as P)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")[:None if path.name == "__init__.py" else -1]
                package = package[:len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:       # an attribute path: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
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
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_em():
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}
    assert cycles(graph) == []


def test_the_walk_sees_imports_inside_functions():
    """The check itself: a cycle closed by an import inside a function is one."""
    graph = {"em.a": {"em.b"}, "em.b": {"em.a"}, "em.c": {"em.a"}}
    assert cycles(graph) == [["em.a", "em.b"]]
    known = modules()
    assert "em.backends.rows" in imported("em.backends.chunked", known["em.backends.chunked"],
                                          known)
    assert "em.backends.chunked" in imported("em.backends.routing",       # inside route()
                                             known["em.backends.routing"], known)


def test_the_kept_import_paths_name_the_same_objects():
    import em.backends.chunked
    import em.backends.distributed
    import em.backends.routing
    import em.chunks
    import em.distributed
    import em.sources
    assert em.chunks.Chunked is em.backends.chunked.Chunked
    assert em.chunks.DiskRows is em.backends.chunked.DiskRows
    assert em.distributed.Dask is em.backends.distributed.Dask
    assert em.sources.route is em.backends.routing.route
