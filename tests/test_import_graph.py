"""The import graph of the package has no cycle, between modules or between subpackages.

The graph is grimp's (the library ``lint-imports`` uses): every ``import`` in a module, those inside
functions included (a lazy import still runs), ``if TYPE_CHECKING:`` imports left out (they never
run). Importing ``sum_abm.market.claims`` runs ``sum_abm/market/__init__.py`` first, so a cycle
between subpackages (``data`` -> ``scenario`` -> ``policies`` -> ``market`` -> ``data``) is a cycle
too: the graph is also checked with every module squashed into its subpackage.
``python3 tests/test_import_graph.py`` prints each cycle found.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

ROOTS = ("sum_abm", "dashboards")


def import_graph() -> grimp.ImportGraph:
    """The graph of ``sum_abm`` and ``dashboards`` (external packages left out)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    return grimp.build_graph(*ROOTS, exclude_type_checking_imports=True, cache_dir=None)


def subpackage(module: str) -> str:
    """``sum_abm.market.claims`` -> ``sum_abm.market`` (the first two dotted parts)."""
    return ".".join(module.split(".")[:2])


def squashed(graph: grimp.ImportGraph) -> grimp.ImportGraph:
    """The graph between subpackages (and top-level modules); imports within one are dropped."""
    out = grimp.ImportGraph()
    for m in graph.modules:
        out.add_module(subpackage(m))
    for m in graph.modules:
        for imported in graph.find_modules_directly_imported_by(m):
            a, b = subpackage(m), subpackage(imported)
            if a != b:
                out.add_import(importer=a, imported=b)
    return out


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself),
    each sorted; Tarjan's algorithm, iterative."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = edges.get(node, [])
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1 or node in edges.get(node, []):
                    out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def test_cycle_finder_finds_planted_cycles():
    g = grimp.ImportGraph()
    for m in ("p", "p.a", "p.a.x", "p.a.y", "p.a.z", "p.b", "p.b.q"):
        g.add_module(m)
    g.add_import(importer="p.a.x", imported="p.a.y")
    g.add_import(importer="p.a.y", imported="p.a.z")
    assert cycles(g) == [] and cycles(squashed(g)) == []
    g.add_import(importer="p.a.z", imported="p.a.x")
    assert cycles(g) == [["p.a.x", "p.a.y", "p.a.z"]]
    assert cycles(squashed(g)) == []  # within one subpackage
    # p.a -> p.b and p.b -> p.a through different modules: no module cycle, a subpackage cycle
    g.add_import(importer="p.a.x", imported="p.b.q")
    g.add_import(importer="p.b", imported="p.a.y")
    assert cycles(squashed(g)) == [["p.a", "p.b"]]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert cycles(graph) == []
    assert cycles(squashed(graph)) == []


if __name__ == "__main__":
    graph = import_graph()
    found = cycles(graph) + cycles(squashed(graph))
    for comp in found:
        print("cycle:", " ".join(comp))
    print(f"{len(found)} cycle(s)")
    sys.exit(1 if found else 0)


def test_the_layer_contracts_are_kept(monkeypatch):
    """``lint-imports`` (also run by .ci/run): the layers of pyproject.toml's [tool.importlinter]."""
    from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    monkeypatch.syspath_prepend(str(root))
    assert lint_imports(config_filename=str(root / "pyproject.toml"), no_cache=True) == (
        EXIT_STATUS_SUCCESS
    )
