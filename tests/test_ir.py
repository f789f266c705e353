"""The OpGraph (archspec/ir.py): networkx holds the topology, one typed record per node and one per network."""

from __future__ import annotations

from pathlib import Path

import archspec
from archspec.codegen import generate
from archspec.compile import compile_graph
from archspec.ir import INPUT, Network, Node
from archspec.render import render
from archspec.summary import activation_memory, summarize_graph

TINY = Path(__file__).resolve().parent / "specs" / "tiny_aux.yaml"


def test_every_stage_keeps_to_the_records() -> None:
    """After every stage has run over it, the graph carries its records under their one key each: no
    stage adds a loose attribute of its own."""
    report = archspec.analyze(TINY)
    graph = report.graph
    summarize_graph(graph, report)
    activation_memory(graph)
    render(graph)
    compile_graph(graph)
    generate(graph)
    assert set(graph.graph) == {"network"} and isinstance(graph.net, Network)
    assert all(set(data) == {"node"} and isinstance(data["node"], Node) for _, data in graph.nodes(data=True))
    assert all(set(data) == {"slot"} for _, _, data in graph.edges(data=True))


def test_stages_fill_their_fields() -> None:
    report = archspec.analyze(TINY)
    graph = report.graph
    records = dict(graph.records())
    assert records[INPUT].op == INPUT and records[INPUT].shape is not None
    ops = [r for n, r in records.items() if n != INPUT]
    assert all(r.shape is not None and r.range is not None for r in ops)  # shapes
    assert sum(r.param_count for r in ops) == report.params == graph.net.params  # the report's counts
    assert graph.net.min_size == report.min_input_size
    assert set(graph.net.outputs) == {"logits", "aux1"} and graph.net.aux_weights == {"aux1": 0.3}
    conv = graph.at("features_0_conv")
    assert (conv.op, conv.path, conv.origin, conv.unit, conv.text) == (
        "conv2d",
        "features.0.conv",
        "features.0",
        "features.0",
        "conv 8 3x3 s2 p1",
    )
    assert conv.composite is not None and conv.composite[0] == "conv"
