"""``{share: NAME}``: an earlier part applied again, its modules called again (docs/language.md, "Shared
weights").

The part is the nodes that compute the value NAME names and lie at NAME's module path or under it,
found by walking back from that value; what they read from outside the part must be one value, the
part's input. Each node is copied, in spec order, with the same op, parameters and path, onto the
share's input: a copy of a node with state calls the original's module (``Node.shares``) and claims no
path, so the weights are the same tensors and the state_dict holds them once.
"""

from __future__ import annotations

from dataclasses import replace

from archspec.errors import Loc, SpecError
from archspec.graph.naming import under
from archspec.graph.refs import PathValues, earlier_part
from archspec.graph.writer import Writer
from archspec.ir import INPUT, OpGraph, Unit
from archspec.language.shortform import Scope, ShortForms


def shared(
    writer: Writer,
    forms: ShortForms,
    values: PathValues,
    text: str,
    x: str,
    loc: Loc,
    scope: Scope,
    row: str | None,
    units: list[Unit],
) -> str:
    """``{share: text}`` applied to ``x``: the part it names copied onto it; at the top level (``row``: the
    share's own row path) a report row of its own. The copy of the part's value."""
    wanted = forms.subst_text(text, loc, scope, x)  # share: $mlp in a block
    path, out = earlier_part(wanted, scope, values, loc, "share:")
    nodes, reads = part(writer.graph, path, out, wanted, loc)
    y = replay(writer, nodes, reads, out, x, loc, scope if row is None else replace(scope, unit=row))
    if row is not None:
        units.append(Unit(row, f"share: {wanted}", "group", loc, y))
    return y


def part(graph: OpGraph, path: str, out: str, wanted: str, loc: Loc) -> tuple[list[str], str]:
    """The nodes of the part at ``path`` whose value is ``out``, in spec order, and the one value it reads."""

    def inside(node: str) -> bool:
        return node != INPUT and under(graph.at(node).path, path)

    if not path or not inside(out):
        raise SpecError(
            f"share: {wanted!r} names a value with no ops of its own at {path or 'the input'!r}",
            loc,
            code="name",
            hint="name an op with weights (fc1), or a named chain, block instance or branch, written before",
        )
    nodes, reads, todo = {out}, set[str](), [out]
    while todo:
        for p in graph.inputs_of(todo.pop()):
            if not inside(p):
                reads.add(p)
            elif p not in nodes:
                nodes.add(p)
                todo.append(p)
    if len(reads) != 1:
        names = ", ".join(sorted(graph.at(r).path or r for r in reads))
        raise SpecError(
            f"share: the part {path!r} reads {len(reads)} values from outside it ({names}); a shared part reads one, its input",
            loc,
            code="name",
            hint="share a part whose ops read only its input (name the ops from the first that reads it), or "
            "share its ops one by one",
        )
    return sorted(nodes, key=lambda n: graph.at(n).order), reads.pop()


def replay(writer: Writer, nodes: list[str], reads: str, out: str, x: str, loc: Loc, scope: Scope) -> str:
    """The part's nodes copied onto ``x`` in place of ``reads`` (what the part read from outside it); the
    copy of ``out``, the part's value."""
    graph, copies = writer.graph, {reads: x}
    todo = list(nodes)
    while todo:  # in spec order, each node once its inputs are copied (the writer adds a value read twice, x + x,
        node = next(n for n in todo if all(p in copies for p in graph.inputs_of(n)))  # as an identity after the op)
        todo.remove(node)
        copies[node] = writer.replay(node, [copies[p] for p in graph.inputs_of(node)], loc, scope)
    return copies[out]
