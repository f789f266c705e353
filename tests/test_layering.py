"""The modules' import graph (read from the source with ``ast``, function-level imports included):
no circle among archspec's modules, and no import from a lower stage to a higher one.

The circles are looked for with the imports under ``if TYPE_CHECKING:`` too: a module naming the type
of one that imports it is a circle in the house's structure, though it never runs (a lower module
states what it needs of a higher one as a Protocol, or takes the part it reads). The layers leave
them out: a lower stage may name a higher stage's type in an annotation. docs/design.md draws the
layers."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "archspec"

# Lowest first. A module sits in the first layer one of whose prefixes it starts with; a module
# may import its own layer and those below. Unlisted modules sit in "stages".
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "data",
        ("archspec.errors", "archspec.version", "archspec.symbolic", "archspec.sizes", "archspec.fileio", "archspec.collector"),
    ),
    (
        "language",
        ("archspec.language", "archspec.ops", "archspec.runtime", "archspec.ir", "archspec.library"),
    ),
    ("front half", ("archspec.graph", "archspec.shapes", "archspec.init_patterns", "archspec.frozen", "archspec.suspicious")),
    ("report", ("archspec.report", "archspec.pipeline", "archspec.render")),
    ("stages", ()),
    (
        "entry points",
        ("archspec.__main__", "archspec.cli", "archspec.commands", "archspec.public", "archspec.gallery", "archspec.docgen"),
    ),
]
# Imports that close a circle today, each to be removed (the test fails once one is gone, so the
# list only shrinks). Empty: build's core is archspec/building.py (api and create build through it),
# timm's classifier methods live in heads.py, and from_pretrained (which builds) in hub_load.py.
CIRCLES_TO_REMOVE: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _type_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def import_graph(type_only: bool = False) -> nx.DiGraph:
    """Module → the modules it imports; with ``type_only``, those imported for annotations only too."""
    mods = _modules()
    g = nx.DiGraph()
    for name, path in mods.items():
        g.add_node(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        skip = set() if type_only else _type_only(tree)
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for target in targets:
                while target and target not in mods:  # `import archspec.x.y` where y is a name
                    target = target.rpartition(".")[0]
                if target and target != name:
                    g.add_edge(name, target)
    return g


def layer(module: str) -> int:
    for i, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return next(i for i, (name, _) in enumerate(LAYERS) if name == "stages")


def test_no_import_circles() -> None:
    g = import_graph(type_only=True)
    g.remove_nodes_from(["archspec"])  # the package's own lazy names (archspec/__init__.py) import everything
    gone = sorted(e for e in CIRCLES_TO_REMOVE if not g.has_edge(*e))
    assert not gone, f"no longer imported: remove {gone} from CIRCLES_TO_REMOVE"
    g.remove_edges_from(CIRCLES_TO_REMOVE)
    circles = [c for c in nx.simple_cycles(g) if len(c) <= 8]
    assert not circles, "import circles: " + "; ".join(" → ".join(c + c[:1]) for c in circles[:5])


def test_no_import_from_a_lower_stage_to_a_higher_one() -> None:
    g = import_graph()
    upwards = sorted(
        f"{a} ({LAYERS[layer(a)][0]}) imports {b} ({LAYERS[layer(b)][0]})"
        for a, b in g.edges
        if a != "archspec" and layer(a) < layer(b)
    )
    assert not upwards, "\n".join(upwards)


def test_the_graph_sees_the_imports() -> None:
    """The reader finds what it should: api imports the pipeline, check's path never reaches torch's stages."""
    g = import_graph()
    assert g.has_edge("archspec.api", "archspec.pipeline") and g.has_edge("archspec.graph.expander", "archspec.graph.naming")
    assert "archspec.compile" not in nx.descendants(g, "archspec.pipeline")
