"""Legal but likely unintended: warnings found on the expanded graph (``--strict`` makes each an error).

- **a gate whose body is one activation** (``- gate: sigmoid`` as the last item of an SE body): it
  computes x · act(x), a second, nested gate. timm names the SE's final sigmoid ``gate``, so a user
  copying names writes exactly this where ``- sigmoid`` was meant.

(Partial merges, the other warning, are found by the shapes stage: archspec/shapes.py.)
"""

from __future__ import annotations

from archspec.errors import SpecWarning
from archspec.ir import INPUT, OpGraph
from archspec.ops import REGISTRY


def gate_warnings(graph: OpGraph) -> list[SpecWarning]:
    found = []
    for node, record in graph.records():
        if record.op != "mul":
            continue
        x, g = graph.inputs_of(node)
        gate = graph.at(g)
        if gate.op != INPUT and REGISTRY[gate.op].kind == "act" and graph.inputs_of(g) == [x]:
            found.append(
                SpecWarning(
                    f"this gate's body is one activation ({gate.text}): it computes x · {gate.op}(x), a gate inside the gate",
                    record.loc,
                    "gate-activation",
                    hint=f"to end the body with the activation, write '- {gate.op}': the key 'gate' always "
                    "makes a gate, even where timm names a module 'gate' (--strict makes this an error)",
                )
            )
    return found
