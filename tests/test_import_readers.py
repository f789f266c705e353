"""Every registry op says how `archspec import` reads it back from torch, or why it cannot be imported,
and each reader is the inverse of the op's own builder: the module or call the op builds, read back,
gives the parameters it was built from (for every op and value the fuzzer draws)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.fx as fx
import torch.nn as nn

from archspec.importer.convert import readers, resolve
from archspec.importer.prims import FunctionCall, ModuleCall
from archspec.ops import REGISTRY
from archspec.symbolic import Dim, Shape
from tests.test_shortform_write import DRAWN


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_op_declares_its_torch_readers_or_why_not(name: str) -> None:
    op = REGISTRY[name]
    assert bool(op.readers) != bool(op.not_imported), f"{name}: readers, or not_imported saying why (not both)"
    for reader in op.readers:
        if reader.target.startswith("Tensor."):
            assert callable(getattr(torch.Tensor, reader.target.removeprefix("Tensor."))), reader.target
            continue
        try:
            obj = resolve(reader.target)
        except ImportError:
            pytest.importorskip(reader.target.split(".")[0])
            raise
        assert callable(obj), reader.target
        if reader.structural is not None:  # read by the method of that name of the converter or of its form readers
            from archspec.importer.convert import Converter
            from archspec.importer.forms import ChannelSplits, Merges, Rows, ValueReads

            owners = [
                c
                for c in (Converter, ChannelSplits, Merges, Rows, ValueReads)
                if callable(getattr(c, "read_" + reader.structural, None))
            ]
            assert len(owners) == 1, (reader.structural, owners)


def test_the_dispatch_table_is_the_registry_s() -> None:
    """Every declared form leads to its op, and nothing else is in the table."""
    pytest.importorskip("timm")  # its readers are in the table once timm is imported
    pytest.importorskip("torchvision")
    table = readers()
    assert not table.unloaded
    size = 0
    for op in REGISTRY.values():
        for reader in op.readers:
            if reader.target in table.missing:
                continue
            if reader.target.startswith("Tensor."):
                entry = table.methods[reader.target.removeprefix("Tensor.")]
            else:
                obj = resolve(reader.target)
                # an op reading another value's size has its own table, tried first (F.interpolate: interpolate, then upsample)
                valued = table.valued if op.reads_values else table.functions
                entry = table.modules[obj] if isinstance(obj, type) else valued[obj]
            assert entry[0] is op or entry[0].name == op.name, reader.target
            size += 1
    assert len(table.modules) + len(table.functions) + len(table.valued) + len(table.methods) <= size
    assert table.modules[nn.Conv2d][0].name == "conv2d"
    assert table.functions[torch.nn.functional.max_pool2d][0].name == "maxpool"


def _shapes(name: str, p: Any) -> tuple[list[Shape], Shape]:
    groups = getattr(p, "groups", 1)
    cin = getattr(p, "out", 4) if groups == "in" else (groups if isinstance(groups, int) else 1) * 3
    cin = max(cin, getattr(p, "stop", 0)) * getattr(p, "branches", 1)  # branch_sum: K branches of equal width
    x = Shape(cin, Dim.const(9), Dim.const(9)) if name != "linear" or getattr(p, "per_pixel", False) else Shape(cin)
    if name == "channel_conv":
        x = Shape(cin, Dim.const(1), Dim.const(1))  # one value per channel (ECA's pooled map)
    return [x], REGISTRY[name].infer(p, [x])


def _traced_call(fn: Any, kwargs: dict[str, Any]) -> fx.Node:
    graph = fx.Graph()
    x = graph.placeholder("x")
    node = graph.call_function(fn, (x,), kwargs)
    graph.output(node)
    return node


def test_reading_what_an_op_builds_gives_its_parameters() -> None:
    table = readers()
    checked: set[str] = set()
    for name, args, _ in DRAWN:
        op = REGISTRY[name]
        # a structural reader reads no parameters, but `last_axis` (Linear, LayerNorm) checks the layout, then op.read
        if not op.readers or all(r.structural not in (None, "last_axis") for r in op.readers) or name == "drop_path":
            continue
        p = op.Params.model_validate(args)
        if getattr(p, "groups", None) == "in" and getattr(p, "out", 0) == 1:
            continue  # one group of one channel: an ordinary conv, read back as groups=1
        if getattr(p, "padding", None) == "same":
            continue  # TensorFlow's padding builds the Conv2d of its pixels (or timm's Conv2dSame), read back as those
        if getattr(p, "per_pixel", False):
            continue  # a per-pixel linear runs between permutes, which the importer does not read (Linear's readers)
        expected = p.model_dump()
        inputs, out = _shapes(name, p)
        if name == "channel_conv":  # ECA's rule for K gives one kernel at these channels: read back as that kernel
            from archspec.ops.channel_conv import kernel_of

            expected |= {"kernel": kernel_of(p, inputs[0].channels), "gamma": 2.0, "beta": 1.0}
        built: list[tuple[Any, Any]] = []  # (the torch form, the reader that reads it)
        if op.stateful or op.train_module:
            module = op.module(p, inputs, out) if op.stateful else op.train_module_of(p)
            built.append((ModuleCall(module), table.modules[type(module)][1]))
        else:
            fn, kwargs = op.function(p)
            if fn in table.functions:
                built.append((FunctionCall(_traced_call(fn, kwargs), table.functions[fn][1].args), table.functions[fn][1]))
            if op.layer is not None:
                layer = getattr(nn, op.layer)(**kwargs)
                built.append((ModuleCall(layer), table.modules[type(layer)][1]))
        assert built, name
        for call, reader in built:
            read = op.read(call)
            if read is None:  # read as no op: then what the op builds must compute nothing
                _assert_identity(call)
                continue
            read = {**read, **dict(reader.sets)}  # as the converter reads it (nn.Dropout2d: channelwise)
            got = op.Params.model_validate(read).model_dump()
            assert got == expected, (name, args, got)
        checked.add(name)
    assert {"conv2d", "bn", "linear", "maxpool", "avgpool", "adaptive_avgpool", "lrn", "dropout"} <= checked


def _assert_identity(call: Any) -> None:
    """A built module that a reader reads as no op gives back its input, in training mode too."""
    assert isinstance(call, ModuleCall), call
    x = torch.randn(2, 3, 5, 5)
    torch.manual_seed(0)
    assert torch.equal(call.module.train()(x), x)


def test_a_dropout_of_nothing_is_read_as_no_op() -> None:
    """nn.Dropout(0.0) (timm's head.drop at drop_rate=0) is the identity, in training mode too, and the
    zoo's hand-written specs leave it out: the import reads it as nothing. The module itself says so
    (it returns its input unchanged); other rates are read as they are."""
    op = REGISTRY["dropout"]
    zero = nn.Dropout(0.0)
    _assert_identity(ModuleCall(zero))
    assert op.read(ModuleCall(zero)) is None
    assert op.read(ModuleCall(nn.Dropout(0.25))) == {"p": 0.25}
    assert op.read(FunctionCall(_traced_call(torch.nn.functional.dropout, {"p": 0.0}), ("p", "training", "inplace"))) is None
