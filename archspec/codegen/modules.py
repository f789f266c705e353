"""A class's ``__init__``: the module tree as one nested constructor expression per top-level child.

``nn.Sequential`` where children are numbered 0..n-1, ``nn.ModuleDict`` elsewhere, so every
``state_dict`` key is the spec's path (``features.6.branch1.0.conv.weight``); a torch layer is its
constructor call, a composite op its helper class called with its layers, a shared block instance its
class. :meth:`ModuleTree.access` then spells the attribute access of any path in that tree.
"""

from __future__ import annotations

import keyword
from typing import Any

import torch.nn as nn

from archspec.codegen.calls import layer_call
from archspec.codegen.plan import Plan
from archspec.codegen.text import IDENT, Call, Mapping, layout, literal, quote
from archspec.ops import REGISTRY


class ModuleTree:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.kinds: dict[str, str] = {"": "self"}  # module path → seq | dict | helper | layer

    def expr(self, path: str, module: nn.Module) -> Any:
        """The constructor expression of the module at ``path``."""
        plan = self.plan
        if path in plan.blocks:
            self.kinds[path] = "layer"
            return Call(plan.blocks[path][1])
        if path in plan.helpers:
            self.kinds[path] = "helper"
            helper = plan.helpers[path]
            return Call(helper.name, [self.expr(f"{path}.{c}", _child(module, c)) for c in helper.children])
        if type(module) is not nn.Module:
            self.kinds[path] = "layer"
            return layer_call(module)
        keys = list(module._modules)
        if keys == [str(i) for i in range(len(keys))]:
            self.kinds[path] = "seq"
            return Call("nn.Sequential", [self.expr(f"{path}.{k}", _child(module, k)) for k in module._modules])
        self.kinds[path] = "dict"
        return Call("nn.ModuleDict", [Mapping([(k, self.expr(f"{path}.{k}", _child(module, k))) for k in module._modules])])

    def access(self, path: str) -> str:
        """``self.features[6].branch1``: how the forward reaches the module at ``path``."""
        text, parent = "self", ""
        segments = path.split(".")
        for i, seg in enumerate(segments):
            kind = self.kinds.get(parent)
            if kind is None:  # inside a block instance's class, which builds its own children: by their path
                return f"{text}.get_submodule({quote('.'.join(segments[i:]))})"
            if kind == "seq":
                text += f"[{seg}]"
            elif kind == "dict" and (not IDENT.match(seg) or keyword.iskeyword(seg) or hasattr(nn.ModuleDict, seg)):
                text += f"[{quote(seg)}]"
            elif not IDENT.match(seg) or keyword.iskeyword(seg):  # a numbered part of the root or of a block's class
                text = f"getattr({text}, {quote(seg)})"
            else:
                text += f".{seg}"
            parent = f"{parent}.{seg}" if parent else seg
        return text

    def param_access(self, path: str) -> str:
        """A tensor held by a module (a layer scale), by attribute: containers index their modules only."""
        parent, _, leaf = path.rpartition(".")
        owner = self.access(parent) if parent else "self"
        return f"{owner}.{leaf}" if IDENT.match(leaf) and not keyword.iskeyword(leaf) else f"getattr({owner}, {quote(leaf)})"

    def init_lines(self) -> list[str]:
        lines = ["    def __init__(self) -> None:", "        super().__init__()"]
        for name in self.plan.root._modules:
            module = _child(self.plan.root, name)
            expr = self.expr(name, module)
            if IDENT.match(name):
                lines += layout(expr, 8, f"self.{name} = ")
            else:
                lines += layout(expr, 8, f"self.add_module({quote(name)}, ", ")")
        # tensors held by a module rather than a layer (parameter_only ops), at the value the op starts them at
        graph = self.plan.graph
        for node, record in graph.records():
            if record.op not in REGISTRY or not REGISTRY[record.op].parameter_only or self.plan.inside_block(record.path):
                continue  # (a block's class makes its own)
            preds = [graph.at(p).out for p in graph.inputs_of(node)]
            shape, value = REGISTRY[record.op].parameter(record.params, preds, record.out)
            parent, _, leaf = record.path.rpartition(".")
            owner = self.access(parent) if parent else "self"
            tensor = f"nn.Parameter(torch.full({literal(tuple(shape))}, {literal(float(value))}))"
            if IDENT.match(leaf) and not keyword.iskeyword(leaf):
                lines.append(f"        {owner}.{leaf} = {tensor}")
            else:
                lines.append(f"        {owner}.register_parameter({quote(leaf)}, {tensor})")
        return lines


def _child(module: nn.Module, name: str) -> nn.Module:
    """A child module by name (torch types the registry as holding None too; archspec never stores None)."""
    child = module._modules[name]
    assert child is not None
    return child
