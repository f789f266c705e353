"""The forward written straight from the compiler's record (archspec/fxsource.py) against torch.fx itself.

Truth: torch.fx's own code generation (``Graph.python_code``) of the graph built from the same
record, and that graph run as ``fx.GraphModule``. The model's code must be fx's, character for
character; its graph, built only when read, the graph ``build_fx_graph`` makes (same nodes, names,
targets, arguments and metadata); pickling, deep copies, TorchScript, symbolic tracing and the
optimize passes must work on the model as on any GraphModule.
"""

from __future__ import annotations

import copy
import io
import operator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
fx = torch.fx

import archspec  # noqa: E402
from archspec.compile import build_fx_graph, build_modules, record_forward  # noqa: E402
from archspec.fxsource import LazyGraphModule, Recorder, Unwritable  # noqa: E402
from archspec.pipeline import analyze  # noqa: E402

ZOO = Path(archspec.__file__).parent / "zoo"
SMALL = """
archspec: 1
name: small_net
input: {channels: 3, size: [32, 32]}
network:
  stem: [conv 16 3x3 s2 p1, bn, relu]
  block:
    residual:
      body: [conv 16 3x3 p1, bn, relu, conv 16 3x3 p1, bn]
      then: relu
  mix:
    concat:
      a: conv 8 1x1
      b: [maxpool 3x3 s1 p1, conv 8 1x1]
  ln: [layer_norm, layer_scale 1e-6]
  pool: global_avgpool
  drop: dropout 0.1
  fc: linear 10
"""


def _nodes(graph: fx.Graph) -> list[tuple[Any, ...]]:
    def arg(a: Any) -> Any:
        return fx.node.map_arg(a, lambda n: ("node", n.name))

    return [(n.op, n.name, n.target, arg(n.args), arg(n.kwargs), dict(n.meta)) for n in graph.nodes]


def _check(model: torch.nn.Module, graph: Any) -> None:
    """The model's lazily built graph is the eager one and its code is fx's code of that graph."""
    assert isinstance(model, LazyGraphModule) and isinstance(model, fx.GraphModule)
    assert "_archspec_record" in model.__dict__  # built lazily: nothing read the graph yet
    code = model.code
    main = graph.net.main_outputs()
    _, targets = build_modules(graph, device="meta")
    eager = build_fx_graph(graph, targets, main)
    assert _nodes(model.graph) == _nodes(eager)
    assert "_archspec_record" not in model.__dict__
    assert model.code == code  # reading the graph leaves the forward as it was
    assert code == eager.python_code("self").src
    assert model.graph.python_code("self").src == code


@pytest.mark.parametrize(
    "name",
    [
        "shufflenet_v2_x1_0",
        "convnext_tiny",
        *(
            pytest.param(p.stem, marks=pytest.mark.slow)
            for p in sorted(ZOO.glob("*.yaml"))
            if p.stem not in ("shufflenet_v2_x1_0", "convnext_tiny", "googlenet", "googlenet_paper", "inception_v3")
        ),
    ],
)
def test_zoo_code_is_fx_code_and_the_graph_is_built_when_read(name: str) -> None:
    path = ZOO / f"{name}.yaml"
    _check(archspec.build(path), analyze(path).graph)


def test_outputs_pickling_copies_tracing_and_torchscript(write_spec) -> None:
    path = write_spec(SMALL)
    torch.manual_seed(0)
    model = archspec.build(path).eval()
    weights = model.state_dict()

    def fresh() -> Any:  # a new build with the same weights, its graph not built yet
        other = archspec.build(path).eval()
        other.load_state_dict(weights)
        assert "_archspec_record" in other.__dict__
        return other

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = fx.GraphModule(model, copy.deepcopy(model.graph))(x)  # fx's own module over the same layers
        assert torch.equal(fresh()(x), want)
        buffer = io.BytesIO()
        torch.save(fresh(), buffer)  # fx pickles the code and traces it again on load
        buffer.seek(0)
        assert torch.equal(torch.load(buffer, weights_only=False).eval()(x), want)
        assert torch.equal(copy.deepcopy(fresh())(x), want)
        assert torch.equal(fx.symbolic_trace(fresh())(x), want)
        assert torch.equal(torch.jit.script(fresh())(x), want)
        torch.testing.assert_close(archspec.optimize(fresh())(x), want, rtol=1e-4, atol=1e-5)


def test_names_as_fx_chooses_them() -> None:
    """Names fx must clean, number or move off a builtin, a keyword or a global of its code, and nodes
    renamed after they were made (as the compiler renames a result to its spec node's name)."""
    record = Recorder()
    x = record.placeholder("x")
    values = [x]
    for name in ("2", "input", "max", "torch", "inf", "class", "a.b-c", "relu_1", "relu", "relu", "permute", "_2"):
        values.append(record.create_node("call_function", torch.relu, (values[-1],), name=name))
    renamed = record.call_method("permute", (values[-1], [0, 2, 3, 1]))
    renamed.name = "2"  # two nodes called "2": fx's code numbers the second
    erased = record.call_method("contiguous", (renamed,))
    record.erase_node(erased)
    last = record.call_function(torch.cat, ([values[3], renamed],), {"dim": 1})
    record.create_node("call_function", torch.relu, (last,), name="unused")  # read by nothing: freed at once
    record.output({"out": last, "first": values[1]})
    source, _, _ = record.source()
    assert source == record.to_fx().python_code("self").src


def test_what_the_writer_does_not_spell_goes_through_fx(write_spec) -> None:
    record = Recorder()
    x = record.placeholder("x")
    record.output(record.call_function(operator.add, (x, x)))
    with pytest.raises(Unwritable):
        record.source()
    gm = fx.GraphModule(torch.nn.Module(), record.to_fx())
    assert gm(torch.ones(2)).tolist() == [2.0, 2.0]


def test_record_and_eager_graph_agree_on_a_spec(write_spec) -> None:
    graph = analyze(write_spec(SMALL)).graph
    _, targets = build_modules(graph, device="meta")
    record = record_forward(graph, targets, graph.net.main_outputs())
    assert record.source()[0] == build_fx_graph(graph, targets, graph.net.main_outputs()).python_code("self").src


def test_the_forward_s_source_is_in_linecache_while_its_model_lives(write_spec, monkeypatch) -> None:
    """inspect (TorchScript's source) finds each forward's lines while a model with that forward lives;
    they leave ``linecache`` with the last such model, so a sweep of many builds does not grow it. The
    compiled code of a source is kept for the next build of it (bounded), its lines registered again."""
    import gc
    import inspect
    import linecache

    from archspec import fxsource

    def ours() -> set[str]:
        return {k for k in linecache.cache if isinstance(k, str) and k.startswith("<archspec ")}

    gc.collect()
    before = ours()
    spec = SMALL.replace("name: small_net", "name: linecache_net")  # a source no other test's model keeps alive
    path = write_spec(spec)
    first, second = archspec.build(path), archspec.build(path)
    forward = type(first).forward
    assert forward.__code__ is type(second).forward.__code__  # compiled once
    assert inspect.getsource(forward).strip() == first.code.strip()
    (key,) = ours() - before
    del first, forward
    gc.collect()
    assert key in linecache.cache  # the second model still has that forward
    assert inspect.getsource(type(second).forward).strip() == second.code.strip()
    del second
    gc.collect()
    assert ours() == before
    third = archspec.build(path)  # compiled code kept, its lines registered again
    assert inspect.getsource(type(third).forward).strip() == third.code.strip()
    del third
    monkeypatch.setattr(fxsource, "MAX_CODE", 2)
    for width in range(3, 9):  # six different forwards, none kept alive
        archspec.build(spec.replace("fc: linear 10", f"fc{width}: linear 10"))  # self.fc3(...) … in the code
    gc.collect()
    assert ours() == before
    assert len(fxsource._CODE) <= 2
