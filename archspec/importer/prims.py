"""What the importer writes as it reads a traced graph: the prims so far, and the fx value each stands
for (:class:`PrimWriter`, the converter's state, which its structural forms in forms.py write to too),
and the two views an op's ``read`` takes its arguments from (a module's attributes, a call's arguments).
"""

from __future__ import annotations

from typing import Any

import torch.fx as fx
import torch.nn as nn

from archspec.importer.trace import ImportRefused, Prim, module_of, source_of


class ModuleCall:
    """A module's attributes, as an op's ``read`` asks for them."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self.module, name, default)


class FunctionCall:
    """A function's or method's arguments after the input, by the names its reader declares."""

    def __init__(self, node: fx.Node, names: tuple[str, ...]) -> None:
        self.node, self.names = node, names

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.names:
            i = self.names.index(name) + 1
            if len(self.node.args) > i:
                return self.node.args[i]
        return self.node.kwargs.get(name, default)


class PrimWriter:
    """The prims written from ``gm``'s graph so far, in order, and which fx value each computes."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self.prims: list[Prim] = []
        self.value: dict[fx.Node, int] = {}  # fx node → prim id (a pass-through maps to its input's)
        self.fx_node: dict[int, fx.Node] = {}
        # values whose channels are the last axis (after x.permute(0, 2, 3, 1), until the permute back)
        self.channels_last: set[fx.Node] = set()

    def refuse(self, node: fx.Node, message: str, hint: str | None = None) -> ImportRefused:
        return ImportRefused(message, node=node.name, module=module_of(node), source=source_of(node), hint=hint)

    def add(
        self,
        node: fx.Node,
        op: str,
        params: dict[str, Any] | None = None,
        inputs: list[int] | None = None,
        path: str | None = None,
        stateful: bool = False,
    ) -> int:
        prim = Prim(
            len(self.prims),
            op,
            params or {},
            path,
            inputs if inputs is not None else [self.input(node, 0)],
            node.name,
            stateful,
            source_of(node),
        )
        if node.op != "call_module":
            prim.owner = module_of(node)
        prim.within = module_of(node) or ""
        self.prims.append(prim)
        self.value[node] = prim.id
        self.fx_node[prim.id] = node
        return prim.id

    def input(self, node: fx.Node, i: int) -> int:
        arg = node.args[i] if i < len(node.args) else None
        if not isinstance(arg, fx.Node) or arg not in self.value:
            raise self.refuse(node, f"argument {i} is not a tensor this importer follows ({type(arg).__name__})")
        return self.value[arg]
