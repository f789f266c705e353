"""A class's ``forward``: straight-line code over the plan's fx graph.

One :class:`Step` per line (a value computed from others: a module call, a helper or block call, a
function call); a Sequential whose layers run one after another is called once; auxiliary heads are
computed under ``if self.training:`` as soon as their inputs exist, and returned in a dict next to
``logits`` (as the compiled model does). Values are named after the branch that computes them, and a
name is reused once its value is dead. The input guard is a call of ``check_input`` (see file.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.fx as fx

from archspec.codegen.calls import function_call
from archspec.codegen.modules import ModuleTree
from archspec.codegen.plan import Plan, is_guard
from archspec.codegen.text import Call, identifier, layout, literal, quote
from archspec.ir import Network
from archspec.ops import REGISTRY

Render = Callable[[Callable[[fx.Node], str]], str]  # the expression of a step, given how values are named


@dataclass
class Step:
    """One line of forward: a value computed from others."""

    inputs: list[fx.Node]
    output: fx.Node
    render: Render
    candidate: tuple[str | None, bool]  # the branch name for its value, and whether it is the op's own name
    aux: bool
    path: str  # the module it calls, or the op's path
    module: bool = False  # a call of the module at ``path`` on the one input


class Forward:
    def __init__(self, plan: Plan, tree: ModuleTree, guard: bool) -> None:
        """``guard``: start with the input check (the network's class; a block's class has none)."""
        self.plan = plan
        self.tree = tree
        self.guard = guard
        self.alias: dict[fx.Node, fx.Node] = {}  # the input guard's result is the input itself
        self.guard_args: tuple[Any, ...] = ()  # channels, min H, min W[, max H, max W[, conditions]]
        self.readers: dict[fx.Node, int] = {}  # how many forward lines read a value

    # ---- steps ---------------------------------------------------------------------------------------
    def steps(self) -> list[Step]:
        plan = self.plan
        steps: list[Step] = []
        alias = self.alias
        for n in plan.fx.nodes:
            if n.op in ("placeholder", "output") or (n in plan.group_of and plan.groups[plan.group_of[n]][0] is not n):
                continue
            if n.op == "get_attr" and n not in plan.block_of:
                continue  # a tensor a module holds is read where it is used (ModuleTree.param_access)
            if is_guard(n):
                alias[n] = n.args[0]
                self.guard_args = tuple(n.args[1:])
                continue
            ins = [alias.get(i, i) for i in n.all_input_nodes if i.op != "get_attr"]
            aux = n not in plan.main
            if n in plan.block_of:
                path = plan.block_of[n]
                members = plan.blocks[path][0]
                if n is members[0]:
                    inside = set(members)
                    (ext,) = {alias.get(i, i) for m in members for i in m.all_input_nodes if i not in inside}
                    (out,) = [m for m in members if any(u not in inside for u in m.users)]
                    steps.append(
                        Step([ext], out, self._render_call(path, ext), self._candidate(path, out, False), aux, path, True)
                    )
                continue
            if n in plan.group_of:
                origin = plan.group_of[n]
                out = plan.groups[origin][-1]
                steps.append(Step(ins, out, self._render_module(origin, n), self._candidate(origin, n), aux, origin, True))
                continue
            path = plan.record(n).path
            layer = n.op == "call_module" or n in plan.filled
            target = str(n.target) if n.op == "call_module" else path
            if n.op == "call_module" and len(n.args) > 1:  # a layer reading two values (InterpolateLike)
                render = self._render_call(target, *(alias.get(a, a) for a in n.args if isinstance(a, fx.Node)))
            else:
                render = self._render_module(target, n) if layer else self._render_function(n)
            steps.append(Step(ins, n, render, self._candidate(path, n), aux, target, layer))
        return _schedule(self._collapse_sequentials(steps))

    def _collapse_sequentials(self, steps: list[Step]) -> list[Step]:
        """A Sequential whose layers run one after another, nothing else reading between, is called once."""
        readers: dict[fx.Node, int] = {}
        for s in steps:
            for v in s.inputs:
                readers[v] = readers.get(v, 0) + 1
        for node in self.plan.outputs.values():  # a returned value is read once more (outputs: inside a Sequential)
            v = self.plan.fx_node(node)
            v = self.alias.get(v, v)
            readers[v] = readers.get(v, 0) + 1
        seqs = sorted((p for p, k in self.tree.kinds.items() if k == "seq"), key=lambda p: -p.count("."))
        for path in seqs:
            by_path = {s.path: s for s in steps if s.module}
            n = len(self.plan.root.get_submodule(path)._modules)
            chain = [by_path.get(f"{path}.{i}") for i in range(n)]
            if any(c is None for c in chain) or len({c.aux for c in chain if c}) != 1:
                continue
            if any(len(c.output.args) > 1 for c in chain if c and c.output.op == "call_module"):  # InterpolateLike reads two
                continue
            links = zip(chain, chain[1:], strict=False)
            if not all(b.inputs == [a.output] and readers[a.output] == 1 for a, b in links if a and b):
                continue
            first, last = chain[0], chain[-1]
            assert first is not None and last is not None
            merged = Step(
                first.inputs, last.output, self._render_call(path, first.inputs[0]), first.candidate, first.aux, path, True
            )
            drop = {id(c) for c in chain}
            steps = [merged if s is first else s for s in steps if s is first or id(s) not in drop]
        return steps

    # ---- expressions ---------------------------------------------------------------------------------
    def _render_module(self, path: str, n: fx.Node) -> Render:
        return self._render_call(path, self.alias.get(n.all_input_nodes[0], n.all_input_nodes[0]))

    def _render_call(self, path: str, *args: fx.Node) -> Render:
        access = self.tree.access(path)

        def render(var: Callable[[fx.Node], str]) -> str:
            return f"{access}({', '.join(var(a) for a in args)})"

        return render

    def _render_function(self, n: fx.Node) -> Render:
        alias = self.alias

        def render(var: Callable[[fx.Node], str]) -> str:
            def arg(a: Any) -> str:
                if isinstance(a, fx.Node):
                    return var(alias.get(a, a))
                if isinstance(a, (list, tuple)):
                    return "[" + ", ".join(arg(i) for i in a) + "]"
                return literal(a)

            if n.op == "call_method":  # body.add_(shortcut)
                first, *rest = [arg(a) for a in n.args]
                return f"{first}.{n.target}({', '.join(rest)})"
            return function_call(n.target, [arg(a) for a in n.args], dict(n.kwargs))  # type: ignore[arg-type]

        return render

    # ---- names ---------------------------------------------------------------------------------------
    def _candidate(self, path: str, n: fx.Node, merge: bool = True) -> tuple[str | None, bool]:
        """The branch name a value is called by, and whether it is the op's own name (not a branch's)."""
        record = self.plan.record(n)
        if merge and REGISTRY[record.op].kind == "merge":
            path = path.rpartition(".")[0] if "." in path else ""
        unit = record.unit
        rel = path[len(unit) + 1 :] if path.startswith(unit + ".") else ("" if path == unit else path)
        segs = [s for s in rel.split(".") if s and not s.isdigit()]
        if not segs:
            return None, False
        return segs[0], rel == segs[0]

    def _name(self, s: Step, i: int, names: dict[fx.Node, str], free: Callable[[str, int], bool]) -> str:
        cand, own = s.candidate
        first = s.inputs[0] if s.inputs else None
        first_name = names.get(first) if first is not None else None
        first_dies = first_name is not None and free(first_name, i)
        unit = self.plan.record(s.output).unit
        fallback = identifier(unit) if unit in self.plan.outputs and unit not in self.plan.graph.net.main else "x"
        fallbacks = {fallback, "out"}
        if cand is not None and own and first_dies and first_name in fallbacks and first is not None and self.readers[first] == 1:
            return first_name  # a single op continuing the main line: x = op(x)
        if cand is None:
            if first_dies and first_name in fallbacks:
                return first_name
            options = [fallback, "out"]
            shared = _shared_branch([names[v] for v in s.inputs if v in names])
            if shared is not None:
                options.insert(0, shared)
        else:
            options = [identifier(cand)]
        for option in options:
            if free(option, i):
                return option
        k = 2
        while not free(f"{options[-1]}_{k}", i):
            k += 1
        return f"{options[-1]}_{k}"

    # ---- the method ----------------------------------------------------------------------------------
    def lines(self) -> list[str]:
        steps = self.steps()
        end = len(steps)
        last: dict[fx.Node, int] = {}
        for i, s in enumerate(steps):
            for v in s.inputs:
                last[v] = i
        net = self.plan.graph.net
        outputs = {name: self.plan.fx_node(node) for name, node in self.plan.outputs.items()}
        outputs = {k: self.alias.get(v, v) for k, v in outputs.items()}
        for v in outputs.values():
            last[v] = end
        placeholder = next(n for n in self.plan.fx.nodes if n.op == "placeholder")
        names: dict[fx.Node, str] = {placeholder: "x"}
        # a tensor inside a block instance written as a class is that class's own (its forward reads it)
        in_class = tuple(b + "." for b in self.plan.blocks)
        names.update(
            (n, self.tree.param_access(str(n.target)))
            for n in self.plan.fx.nodes
            if n.op == "get_attr" and not str(n.target).startswith(in_class)
        )
        holder: dict[str, fx.Node] = {"x": placeholder}

        def free(name: str, i: int) -> bool:
            return name not in holder or last.get(holder[name], -1) <= i

        lines: list[str] = []
        if self.guard:
            lines += layout(Call("check_input", ["x", *(literal(a) for a in self.guard_args)]), 8)
        for s in steps:
            for v in s.inputs:
                self.readers[v] = self.readers.get(v, 0) + 1
        in_aux = False
        for i, s in enumerate(steps):
            name = self._name(s, i, names, free)
            code = s.render(lambda v: names[v])
            names[s.output] = name
            holder[name] = s.output
            if s.aux and not in_aux:
                lines.append("        if self.training:")
            in_aux = s.aux
            pad = " " * (12 if s.aux else 8)
            if (
                i == len(steps) - 1
                and len(outputs) == 1
                and not net.named_outputs
                and s.output == outputs["logits"]
                and not s.aux
            ):
                lines += layout(code, 8, "return ")  # the last line computes the result
                return ["    def forward(self, x: torch.Tensor) -> torch.Tensor:"] + lines
            lines += layout(code, len(pad), f"{name} = ")
        return (
            [f"    def forward(self, x: torch.Tensor) -> {_returns(net, outputs)}:"] + lines + _return_lines(net, outputs, names)
        )


def _returns(net: Network, outputs: dict[str, fx.Node]) -> str:
    """The forward's return annotation: a tensor, a dict of the spec's ``outputs:``, or either (aux heads)."""
    if net.named_outputs:
        return "dict[str, torch.Tensor]"
    return "torch.Tensor | dict[str, torch.Tensor]" if len(outputs) > 1 else "torch.Tensor"


def _return_lines(net: Network, outputs: dict[str, fx.Node], names: dict[fx.Node, str]) -> list[str]:
    """The forward's last lines: every output in training mode where there are aux heads, then the main ones."""
    lines = []
    if len(outputs) > len(net.main):
        items = ", ".join(f"{quote(k)}: {names[v]}" for k, v in outputs.items())
        lines += ["        if self.training:", f"            return {{{items}}}"]
    if net.named_outputs:
        items = ", ".join(f"{quote(k)}: {names[outputs[k]]}" for k in net.main)
        return [*lines, f"        return {{{items}}}"]
    return [*lines, f"        return {names[outputs['logits']]}"]


def _schedule(steps: list[Step]) -> list[Step]:
    """Main-line steps in order; each auxiliary step as soon as its inputs exist (so taps stay short-lived), but
    never before a main-line step written before it: the built model runs them in that order, and a module
    called on both lines (a `share:`) moves its BatchNorm statistics, or dropout draws its numbers, in it."""
    order: list[Step] = []
    defined: set[fx.Node] = set()
    pending: list[Step] = []

    def flush() -> None:
        progress = True
        while progress:
            progress = False
            for s in list(pending):
                if all(i in defined or i.op == "placeholder" for i in s.inputs):
                    order.append(s)
                    defined.add(s.output)
                    pending.remove(s)
                    progress = True

    for s in steps:
        if s.aux:
            pending.append(s)
        else:
            order.append(s)
            defined.add(s.output)
        flush()
    return order + pending


def _shared_branch(names: list[str]) -> str | None:
    """The branch that several values split from: branch1 for branch1_1a and branch1_1b."""
    if len(names) < 2:
        return None
    prefix = os.path.commonprefix(names).rstrip("_")
    m = re.fullmatch(r"(.*\d)_\d+", prefix)
    stem = m.group(1) if m else prefix
    return stem if re.fullmatch(r"[A-Za-z_]\w*\d", stem) and stem not in names else None
