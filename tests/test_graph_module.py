"""The compiled model adopts the built module tree instead of letting torch.fx copy its containers:
checked against torch.fx's own ``GraphModule(root, graph)`` of the same tree (its modules, their
order, the state_dict and the generated code), including the trees fx's copy would change."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
fx = torch.fx

from archspec.compile import _graph_module, build_fx_graph, build_modules, name_containers, record_forward  # noqa: E402
from archspec.initialize import initialize  # noqa: E402
from archspec.pipeline import analyze  # noqa: E402

HEAD = "archspec: 1\nname: adopt\ninput: {channels: 3, size: [16, 16]}\n"
CASES = {
    # the dropout module is placed after the layers, so its container lists it last until reordered
    "dropout before a layer": "network:\n  stem: [conv 8 3x3, bn]\n  pool: global_avgpool\n"
    "  classifier: [dropout 0.2, linear 10]\n",
    # a layer scale: a tensor read by get_attr, not a module
    "layer scale": "network:\n  stem: conv 8 3x3\n  block:\n    - conv 8 1x1\n    - layer_scale 1e-6\n"
    "  pool: global_avgpool\n  fc: linear 10\n",
    # a layer no output reads: fx's copy leaves it out, so the tree is not adopted
    "a layer nothing reads": "network:\n  a: conv 8 3x3\n  b: conv 8 1x1\n  c: {from: a}\n"
    "  pool: global_avgpool\n  fc: linear 10\n",
}


def _tree(model: torch.nn.Module) -> list[tuple[str, str]]:
    return [(name, type(m).__name__) for name, m in model.named_modules() if name]


@pytest.mark.parametrize("text", CASES.values(), ids=list(CASES))
def test_graph_module_equals_torch_fx_copy(text: str, write_spec) -> None:
    graph = analyze(write_spec(HEAD + text)).graph
    main = graph.net.main_outputs()
    ours_root, targets = build_modules(graph)
    fx_root, fx_targets = build_modules(graph)
    initialize(ours_root), initialize(fx_root)
    ours = _graph_module(ours_root, record_forward(graph, targets, main), "Adopt")
    theirs = fx.GraphModule(fx_root, build_fx_graph(graph, fx_targets, main), class_name="Adopt")
    assert type(ours).__name__ == type(theirs).__name__ == "Adopt"
    assert isinstance(ours, fx.GraphModule)
    assert _tree(ours) == _tree(theirs)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in theirs.state_dict().items()]
    assert ours.code == theirs.code
    for model in (ours, theirs):
        name_containers(model, graph)
    assert repr(ours) == repr(theirs)
    # the same layers compute the same values (fx's copy shares the layers of its root)
    ours.load_state_dict(theirs.state_dict())
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


def test_adopted_tree_is_the_built_one(write_spec) -> None:
    """No second container: the model's containers are the built tree's own objects."""
    graph = analyze(write_spec(HEAD + CASES["dropout before a layer"])).graph
    root, targets = build_modules(graph)
    model = _graph_module(root, record_forward(graph, targets, graph.net.main_outputs()), "Adopt")
    assert model.get_submodule("classifier") is root.get_submodule("classifier")
    assert list(root.get_submodule("classifier")._modules) == ["0", "1"]  # in the order the forward calls them
