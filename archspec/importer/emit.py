"""Write a recovered branch graph as a spec: names, blocks with parameters, repeats, defaults.

Names. archspec names an op or a block instance by its key, else by its index in the enclosing
list; containers add a segment only when named. So each part of the tree is placed under the
module path it has in the source: a part whose ops all sit under one path segment becomes a
named part (``layer1: [...]``) or, when that segment is a list index (``features.6``), a block
instance at that index (``identity`` ops pad a list whose indices skip a number).

Blocks. Every concat or residual (and every indexed sub-chain) that owns a path segment is a
block instance. Instances with the same structure — the same names and ops, differing only in
numbers (channels, kernels, strides, paddings, dropout rates) — are one block; the numbers that
differ between its instances become its parameters, named after the op and field they set.
Consecutive equal instances at consecutive indices fold into ``block * N``.

Every value is data for yaml.safe_dump; names are checked against the language's name rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from archspec.importer.structure import ACTS, Chain, Concat, Gate, Part, Ref, Residual, Step, paths, steps
from archspec.importer.trace import ImportRefused, Prim
from archspec.language.model import KEYWORDS, module_name_problem
from archspec.ops import REGISTRY, Op
from archspec.ops.conv import act_op
from archspec.ops.write import LETTERS, write

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# fields whose values may become block parameters (ints or symmetric pairs), and their suffixes
NUMERIC = {
    "out": "",
    "kernel": "_k",
    "stride": "_stride",
    "padding": "_pad",
    "dilation": "_dil",
    "groups": "_groups",
    "p": "_p",
    "size": "_size",
    "start": "_start",
    "stop": "_stop",
}


def _seg(path: str, prefix: str) -> str:
    """The path relative to the prefix."""
    if not prefix:
        return path
    if path == prefix:
        return ""
    if not path.startswith(prefix + "."):
        raise AssertionError(f"{path} is not under {prefix}")
    return path[len(prefix) + 1 :]


def _join(prefix: str, seg: str) -> str:
    return f"{prefix}.{seg}" if prefix else seg


# a network family's name is one word: "Net" and its puns (ResNeXt, ResNeSt) join the word before
_NET = re.compile(r"Ne(?:t|Xt|St)(?![a-z])")


def _snake(name: str) -> str:
    """A class name as a block name: its words in lower case joined by `_` (`InvertedResidual` →
    `inverted_residual`), a family's name one word (`ConvNeXtBlock` → `convnext_block`, `ResNetStage` →
    `resnet_stage`, `GhostNet` → `ghostnet`), an acronym one word with the word it starts (`MBConv` →
    `mbconv`)."""
    s = _NET.sub(lambda m: m.group(0).lower(), name)
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", s).lower()
    s = re.sub(r"[^a-z0-9_]+", "_", s).strip("_")
    s = re.sub(r"_+", "_", s)
    return s if s and NAME.match(s) else f"block_{s}" if s else "block"


# ---- the emitted tree ------------------------------------------------------------------------
@dataclass
class E:
    kind: str  # op, list, concat, residual, gate, inst, from, share
    name: str | None = None
    op: Step | None = None
    items: list[E] = field(default_factory=list)  # list items, concat branches, [body, shortcut?]
    scale: float = 1.0
    then: Step | None = None
    has_shortcut: bool = False
    inst: Instance | None = None
    repeat: int = 1
    # a merged block's template (optional.py): kind "if" is an optional part (present when $cond holds)
    # or, with ``wrap``, a residual sum present when $cond holds (else its body alone), or, with two
    # items, two alternative bodies (the first when $cond holds); an item named otherwise in different
    # instances takes ``names[values of conds]``
    cond: str | None = None
    wrap: bool = False
    conds: tuple[str, ...] = ()
    names: dict[tuple[bool, ...], str] | None = None
    # an earlier value read by name (kind "from"), or the op whose module a "share" applies again (its
    # first call); refnames.py writes its path into ``target``
    ref: Prim | None = None
    target: str = ""
    outside: bool = False  # a `from` inside a block instance reading a value outside it: may be a parameter
    value: Prim | None = None  # a merge's own value: the sum, the concatenation, the product


@dataclass
class Instance:
    path: str
    cls: str  # the label: the source module's class name
    body: E  # a concat, residual or list emitted at the instance's path
    base: str = "block"  # the block name it suggests
    block: Block | None = None
    args: dict[str, str] = field(default_factory=dict)
    aligned: list[Any] | None = None  # in a merged block: its ops in the order of the template's op slots
    counts: list[int | None] = field(default_factory=list)  # and their repeat counts (None: a slot it lacks)


@dataclass
class Block:
    name: str
    label: str
    instances: list[Instance]
    params: dict[str, str] = field(default_factory=dict)  # name → default value (text)
    slots: dict[tuple[int, str], str] = field(default_factory=dict)  # (op index in body, field) → param
    optional: bool = False  # instances with and without the (same) shortcut: `if: $projection`
    merged: Instance | None = None  # blocks of one class unified over their optional parts (optional.py)
    flags: dict[str, list[bool | None]] = field(default_factory=dict)  # the merged block's `if:` flags, per instance
    reps: list[Instance] = field(default_factory=list)  # a merged block: one instance of each block it unified
    rates: dict[str, list[str | None]] = field(default_factory=dict)  # a drop-path parameter's rate per instance
    counter: str | None = None  # the count its block_index shares with other blocks (`counter:`)

    @property
    def template(self) -> Instance:
        """The instance the block is written from: with the shortcut, when that is optional."""
        if self.merged is not None:
            return self.merged
        return next((i for i in self.instances if i.body.has_shortcut), self.instances[0]) if self.optional else self.instances[0]


class Emitter:
    def __init__(self, classes: dict[str, tuple[str, str]], instances: set[str] | None = None) -> None:
        self.classes = classes  # module path → (block name, label): the module's class
        self.plain = instances  # a network archspec built: the paths of its spec's block instances
        self.instances: list[Instance] = []
        self.dag = False  # parts read values by name: a layer of one op at a list index is written in place too

    def refuse(self, message: str, path: str | None = None) -> ImportRefused:
        return ImportRefused(message, module=path)

    # placement: the node as it must appear at prefix `prefix`, at list position `index`
    def place(self, node: Part, prefix: str, index: int | None) -> tuple[E, str | None]:
        """The emitted node and the list index it must sit at (a digit segment), if any."""
        while isinstance(node, Chain) and len(node.items) == 1:
            node = node.items[0]
        if isinstance(node, Ref):
            return E("from", ref=node.prim), None
        rel = [_seg(p, prefix) for p in paths(node)]
        firsts = {r.split(".", 1)[0] for r in rel}
        composites = {_seg(p, prefix) for p in composite_paths(node)}
        if isinstance(node, Step):
            if node.prim.of is not None:  # a module called again: `{share: NAME}` (refnames.py writes NAME)
                return E("share", op=node, ref=node.prim.of), None
            if rel and rel[0] == "" and node.prim.op == "conv":
                return _unfused(node), None
            if not rel or rel[0] == "":
                return E("op", op=node), None
            first, _, rest = rel[0].partition(".")
            if not rest:
                if first.isdigit():
                    return E("op", op=node), first
                if first in KEYWORDS and not node.prim.stateful:  # timm's SE `gate` (a Sigmoid): no tensors
                    return E("op", op=node), None
                return E("op", name=self._name(first, prefix), op=node), None
            inner = self.as_list(Chain([node]), _join(prefix, first))
            return self._owned(inner, node, prefix, first)
        if (
            len(firsts) == 1
            and "" not in firsts
            and all("." in r or r in composites for r in rel)
            and not _computed_outside(node, _join(prefix, next(iter(firsts))))
        ):
            (first,) = firsts
            return self._under(node, prefix, first)
        if isinstance(node, Chain):
            return self.as_list(node, prefix), None
        if isinstance(node, Gate):
            mul = node.mul
            raise ImportRefused(
                "a gating multiply whose layers are not the children of one module: archspec names a "
                "`gate:` like an op, so its layers sit under the gate's name (as in an SE module's "
                "se.fc1, se.fc2)",
                node=mul.node,
                module=prefix or None,
                source=mul.source,
                hint="put the gate's layers in a module of their own",
            )
        return self.container(node, prefix), None

    def _under(self, node: Part, prefix: str, first: str) -> tuple[E, str | None]:
        """A part whose every op sits under the module ``first`` of ``prefix``."""
        at = _join(prefix, first)
        if self.plain is None and _one_module(node, at):
            node = Chain([node])  # a module holding one module (RegNet's stage of one block): a list of it
        if isinstance(node, Chain):
            inner = self.as_list(node, at)
            if first.isdigit():
                return self._indexed(inner, at, first), first
            if self.plain is not None and at in self.plain:  # a block instance in the spec archspec built
                return self._instance(inner, at, first, prefix)
            if self.plain is None and self._reading_level(inner, at):
                return self._instance(inner, at, first, prefix)
            return E("list", name=self._name(first, prefix), items=inner.items), None
        return self._instance(self.container(node, at), at, first, prefix)

    def _reading_level(self, inner: E, at: str) -> bool:
        """A named part that reads a value by name, computed by a module of a class the network uses more than
        once (U-Net's decoder levels, each an `Up` reading its encoder map): a block instance, so the levels
        are one block taking what they read as a parameter (`from: $skip`), as the zoo's `up_step`."""
        cls = self.classes.get(at, ("", ""))[0]
        if cls in ("", "Sequential", "ModuleList", "ModuleDict") or not any(x.kind == "from" for x in _walk_e(inner)):
            return False
        return sum(1 for c, _ in self.classes.values() if c == cls) > 1

    def _owned(self, inner: E, node: Part, prefix: str, first: str) -> tuple[E, str | None]:
        at = _join(prefix, first)
        if first.isdigit():
            return self._indexed(inner, at, first), first
        if self.plain is not None and at in self.plain:
            return self._instance(inner, at, first, prefix)
        return E("list", name=self._name(first, prefix), items=inner.items), None

    def _indexed(self, inner: E, at: str, first: str) -> E:
        """A sub-list at a list index: a block instance, or — a layer of two or three ops, such as
        torchvision's Conv2dNormActivation — written in place under its index (`"0": [conv2d, bn, relu]`)."""
        small = (
            self.plain is None
            and (1 < len(inner.items) <= 3 or (self.dag and len(inner.items) == 1))
            and all((x.kind == "op" and x.op is not None) or x.kind == "from" for x in inner.items)
        )  # or an op reading an earlier value: FPN's `"0": [{from: body.layer1}, "0": conv2d 256 1x1]`
        # a stage: a numbered list of block instances (EfficientNet's features.2, MnasNet's layers.8), written
        # in place as the list of its instances; as blocks, stages of 1, 2, 3 and 4 layers are four blocks
        stage = self.plain is None and bool(inner.items) and all(x.kind == "inst" for x in inner.items)
        if small or stage:
            inner.name = first
            return inner
        return self._instance(inner, at)

    def _instance(self, body: E, at: str, first: str | None = None, prefix: str = "") -> Any:
        if self.plain is not None and at not in self.plain:
            # a network archspec built: a part its spec wrote in place, not as a block, stays in place
            seg = at.rpartition(".")[2]
            body.name = seg if seg.isdigit() else self._name(seg, prefix)
            if first is None:
                return body
            return (body, first) if first.isdigit() else (body, None)
        name, label = self.classes.get(at, ("block", "Block"))
        inst = Instance(at, label.lstrip("_") or label, body, base=name)
        self.instances.append(inst)
        e = E("inst", inst=inst)
        if first is None:
            return e
        if first.isdigit():
            return e, first
        e.name = self._name(first, prefix)
        return e, None

    def _name(self, seg: str, prefix: str) -> str:
        problem = module_name_problem(seg)
        if problem is not None:
            raise self.refuse(f"module name {seg!r} cannot be written in a spec: {problem}", _join(prefix, seg))
        return seg

    def container(self, node: Part, prefix: str) -> E:
        if isinstance(node, Concat):
            out = E("concat", value=node.merge)
            for j, b in enumerate(node.branches):
                if not b.items:  # the fork itself: a dense layer's input, concatenated with what it computes
                    out.items.append(E("op", op=None))
                    continue
                e, idx = self.place(b, prefix, j)
                if idx is not None and int(idx) != j:
                    raise self.refuse(
                        f"branch {j} of a concat is module {_join(prefix, idx)}: its index does not match its position", prefix
                    )
                out.items.append(e)
            return out
        if isinstance(node, Gate):
            return E("gate", items=[self.as_list(node.body, prefix)], value=node.mul)
        if isinstance(node, Residual):
            out = E("residual", scale=node.scale, then=node.then, has_shortcut=node.shortcut is not None, value=node.merge)
            # a side merge's body is the chain's own value: identity (dag.py)
            out.items.append(self.as_list(node.body, prefix) if node.body.items else E("op", op=None))
            if node.shortcut is not None:
                out.items.append(self.as_list(node.shortcut, prefix))
            return out
        assert isinstance(node, Chain)
        return self.as_list(node, prefix)

    def as_list(self, chain: Chain, prefix: str) -> E:
        """A chain as a list whose items sit at their module paths under `prefix`."""
        groups: list[tuple[str | None, list[Part]]] = []
        keys = [_group_key(item, prefix) for item in chain.items]
        if any(isinstance(x, Ref) for x in chain.items):  # a DAG's parts: a pathless one goes with the module computing it
            keys = [k if k is not None or paths(x) else _owner_key(x, prefix) for k, x in zip(keys, chain.items, strict=True)]
        for n, item in enumerate(chain.items):
            key = keys[n]
            if isinstance(item, Ref):  # a value read by name starts what follows: in its part, when that is a container
                after = next(
                    (k for k, x in zip(keys[n + 1 :], chain.items[n + 1 :], strict=True) if not isinstance(x, Ref)), None
                )
                nested = after is not None and any("." in _seg(p, prefix) for x in chain.items[n + 1 :] for p in paths(x)[:1])
                if after is not None and nested and groups and groups[-1][0] == after:
                    groups[-1][1].append(item)
                else:
                    groups.append((after if after is not None and nested else None, [item]))
                continue
            if key is None and not paths(item) and groups and groups[-1][0] is not None:
                groups[-1][1].append(item)  # a pathless op joins the group before it, for now
                continue
            if key is not None and groups and groups[-1][0] == key:
                groups[-1][1].append(item)
                continue
            groups.append((key, [item]))
        # a pathless op at the end of a group stays in it only when the group continues after it
        split: list[tuple[str | None, list[Part]]] = []
        for key, items in groups:
            tail: list[Part] = []
            while key is not None and items and not paths(items[-1]) and not _owned_by(items[-1], _join(prefix, key)):
                tail.insert(0, items.pop())
            split.append((key, items))
            split += [(None, [t]) for t in tail]
        out = E("list")
        keyed = False  # the source skips an index: its items are written under their numbers, as the zoo does
        for _key, items in split:
            node: Part = items[0] if len(items) == 1 else Chain(items)
            e, idx = self.place(node, prefix, len(out.items))
            keyed = keyed or any(x.kind == "from" for x in out.items)  # a value read by name takes an index too
            if idx is not None and (keyed or len(out.items) < int(idx)) and e.name in (None, idx):
                keyed, e.name = True, idx  # `"2": layer_norm` after `"0": conv2d`, not an `identity` at 1
                out.items.append(e)
                continue
            if idx is not None:
                keyed = self._at_index(out, e, node, prefix, idx) or keyed
            out.items.append(e)
        return out

    def _at_index(self, out: E, e: E, node: Part, prefix: str, idx: str) -> bool:
        """Place ``e``, the module at list index ``idx``, after the items of ``out``: identities pad the
        indices the source skips; whether the list is now written by index (keyed)."""
        want = int(idx)
        while len(out.items) < want:
            out.items.append(E("op", op=None))  # identity: keeps the indices of the source
        if len(out.items) <= want or (isinstance(node, Step) and not node.prim.stateful):
            return False  # (a stateless op of a network archspec built: its index from a list regrouped later)
        if e.name in (None, idx) and any(x.name and not x.name.isdigit() for x in out.items):
            e.name = idx  # after a named part (`split: channel_slice ...`, then `"0": conv2d`): by its index
            return True
        raise self.refuse(
            f"module {_join(prefix, idx)} runs after {len(out.items)} ops of its "
            "list: its index cannot be reproduced (the forward reorders a Sequential?)",
            _join(prefix, idx),
        )


def _walk_e(e: E) -> list[E]:
    """The emitted node and the nodes inside it, but not inside its block instances."""
    return [e, *(y for x in e.items for y in _walk_e(x))]


def _group_key(item: Part, prefix: str) -> str | None:
    """The path segment under ``prefix`` that every op of the item sits under, if one."""
    rel = [_seg(p, prefix) for p in paths(item)]
    firsts = {r.split(".", 1)[0] for r in rel}
    return firsts.pop() if len(firsts) == 1 and "" not in firsts else None


def _owner_key(item: Part, prefix: str) -> str | None:
    """The path segment under ``prefix`` of the module whose forward computes a pathless part (FPN's sums
    and interpolations: `fpn`), if any."""
    prim = (
        item.prim
        if isinstance(item, Step)
        else item.merge
        if isinstance(item, (Residual, Concat))
        else item.mul
        if isinstance(item, Gate)
        else None
    )
    owner = prim.owner if prim is not None else None
    if not owner or owner == prefix or not (not prefix or owner.startswith(prefix + ".")):
        return None
    return _seg(owner, prefix).split(".", 1)[0]


def _one_module(node: Part, path: str) -> bool:
    """A merge (a residual, a concat, a gate) that one module under ``path`` computes, every op of it
    inside that module: the module at ``path`` holds that module and nothing else (RegNet's `block1`,
    a stage of one block `block1-0`)."""
    merge = node.merge if isinstance(node, (Residual, Concat)) else node.mul if isinstance(node, Gate) else None
    rel = [_seg(p, path) for p in paths(node)]
    firsts = {r.split(".", 1)[0] for r in rel}
    if merge is None or not merge.owner or len(firsts) != 1 or "" in firsts:
        return False
    inner = _join(path, next(iter(firsts)))
    composites = {_seg(p, path) for p in composite_paths(node)}
    return (merge.owner == inner or merge.owner.startswith(inner + ".")) and all("." in r or r in composites for r in rel)


def _computed_outside(node: Part, path: str) -> bool:
    """A chain whose first op, or a concat one of whose branches, has no module path and is computed
    by a module that is not at `path` (Inception-v3's `F.avg_pool2d` before its `branch_pool` conv,
    ShuffleNet's channel_slice before `branch2`): the part is not that module's."""
    if isinstance(node, Chain):
        pathless = node.items[:1] if node.items and not paths(node.items[0]) else []
    elif isinstance(node, Concat):
        pathless = [b for b in node.branches if b.items and not paths(b)]
    else:
        return False
    owners = [o.prim.owner for x in pathless for o in _ops_in(x)]
    return any(o is not None and o != path and not o.startswith(path + ".") for o in owners)


def _ops_in(node: Part) -> list[Step]:
    """The ops inside, but a residual's `then` (the activation after the sum is not the part's own)."""
    if isinstance(node, Residual):
        return _ops_in(node.body) + (_ops_in(node.shortcut) if node.shortcut else [])
    return steps(node)


def _owned_by(node: Part, path: str) -> bool:
    """A pathless op computed by the forward of the module at `path` (ShuffleNet's channel_shuffle
    at the end of its unit): it belongs to that module's part."""
    prim = node.prim if isinstance(node, Step) else node.merge if isinstance(node, (Residual, Concat)) else None
    owner = prim.owner if prim is not None else None
    return owner is not None and (owner == path or owner.startswith(path + "."))


def composite_paths(node: Part) -> list[str]:
    return [s.path for s in steps(node) if s.path and s.prim.op == "conv"]


def _unfused(op: Step) -> E:
    """A composite conv whose own path is its container's: its Conv2d and BatchNorm named `conv` and
    `bn` in the container, as the source has them (a composite cannot be named by an empty key)."""
    p = op.prim.params
    conv = Prim(
        op.prim.id,
        "conv2d",
        {k: p[k] for k in ("out", "kernel", "stride", "padding", "dilation", "groups", "bias")},
        None,
        [],
        op.prim.node,
        True,
    )
    bn = Prim(op.prim.id, "bn", {"eps": p["eps"], "momentum": p["momentum"], "affine": True}, None, [], op.prim.node, True)
    items = [E("op", name="conv", op=Step(conv))] + ([E("op", name="bn", op=Step(bn))] if p["bn"] else [])
    if p["act"] != "none":
        act, fields = act_op(p["act"])  # leaky_relu(0.1): leaky_relu with its slope
        items.append(E("op", op=Step(Prim(op.prim.id, act, fields, None, [], op.prim.node))))
    return E("list", items=items)


# ---- blocks: structure keys and parameters ---------------------------------------------------
def _ops(e: E) -> list[Any]:
    """The slots of an emitted tree in order: ops (None for identity padding) and block instances."""
    if e.kind == "op":
        return [e.op]
    if e.kind == "inst":
        return [e.inst]
    out: list[Any] = []
    for x in e.items:
        out += _ops(x)
    return out


def _numeric(v: Any) -> bool:
    return isinstance(v, int) or (isinstance(v, float)) or (isinstance(v, tuple) and len(v) == 2)


def _is_act(op: Step | None) -> bool:
    return op is not None and op.prim.op in ACTS and not op.prim.params


def _form(op: Step | None, field_ok: Callable[[str, Any], bool]) -> Any:
    if op is None:
        return "identity"
    if _is_act(op):  # which activation may differ between instances: a parameter ($act)
        return ["act", {}]
    fields = {k: ("#" if field_ok(k, v) else _plain(v)) for k, v in sorted(op.prim.params.items())}
    return [op.prim.op, fields]


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def _parameterizable(k: str, v: Any) -> bool:
    if k not in NUMERIC:
        return False
    if isinstance(v, tuple):
        return k == "kernel" or k == "size" or v[0] == v[1]
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _field_ok(op: Step | None) -> Callable[[str, Any], bool]:
    return _parameterizable  # a depthwise conv's groups ("in") is text: never a parameter


def structure_key(e: E) -> str:
    """What must be equal for two instances to be one block. A residual body's own scale and `then`
    may differ (they become parameters), as may the numbers in its ops and the lengths of its runs
    of equal instances (:func:`fold_runs`)."""

    def walk(x: E) -> Any:
        if x.kind == "op":
            return [x.name, _form(x.op, _field_ok(x.op))]
        if x.kind == "inst":
            assert x.inst is not None and x.inst.block is not None
            return [x.name, "inst", x.inst.block.name]  # its arguments (and run length) may become parameters
        if x.kind in ("from", "share"):
            return [x.name, x.kind, "$" if x.outside else x.target]  # a value outside the instance: a parameter
        return [x.name, x.kind, x.scale, x.then.prim.op if x.then else None, x.has_shortcut, [walk(i) for i in x.items]]

    key = walk(e)
    if e.kind == "residual":
        key[2] = key[3] = "*"
    return json.dumps(key)


def _runs(items: list[E]) -> list[list[E]]:
    """A list's items in runs: consecutive instances of one block with the same arguments, each
    placed by its list index (no name of its own), are one run; any other item is a run of one."""
    out: list[list[E]] = []
    for x in items:
        last = out[-1][-1] if out else None
        if (
            last is not None
            and _repeatable(x)
            and _repeatable(last)
            and x.inst is not None
            and last.inst is not None
            and x.inst.block is last.inst.block
            and x.inst.args == last.inst.args
        ):
            out[-1].append(x)
        else:
            out.append([x])
    return out


def _repeatable(x: E) -> bool:
    return x.kind == "inst" and x.name is None and x.repeat == 1


def fold_runs(e: E) -> None:
    """Each run of equal instances in the lists of a body (not inside its instances) as its first
    item, ``repeat`` its length (written ``item * N``): so stages whose lengths differ are one block
    (BiT's stages of 3, 4, 6 and 3 bottlenecks), the lengths that differ its parameter (``* $n``)."""
    if e.kind == "inst":
        return
    if e.kind == "list":
        runs = _runs(e.items)
        for r in runs:
            r[0].repeat = len(r)
        e.items = [r[0] for r in runs]
    for x in e.items:
        fold_runs(x)


def _counts(e: E) -> list[int | None]:
    """Each slot's repeat count, in the order of :func:`_ops`."""
    if e.kind in ("op", "inst"):
        return [e.repeat]
    return [c for x in e.items for c in _counts(x)]


def _value_text(k: str, v: Any) -> str:
    if k in ("kernel", "size") and isinstance(v, tuple):  # a grid; channel_conv's kernel is one number
        return f"{v[0]}x{v[1]}"
    if isinstance(v, tuple):
        return str(v[0])
    return repr(v) if isinstance(v, float) else str(v)


def _arg_of(inst: Instance, k: str) -> str:
    assert inst.block is not None
    return inst.args.get(k, inst.block.params[k])


def _rel(path: str, inst_path: str) -> str:
    """A path inside a block instance, relative to it; in a merged block the op may come from another
    instance than the template's, at the same depth."""
    if path == inst_path or path.startswith(inst_path + ".") or not inst_path:
        return _seg(path, inst_path)
    return ".".join(path.split(".")[inst_path.count(".") + 1 :])


def _slot_name(op: Step | Instance, i: int, inst_path: str, k: str) -> str:
    if isinstance(op, Instance):
        rel = _rel(op.path, inst_path).replace(".", "_")
        name = f"{rel}_{k}"
        return name if NAME.match(name) else f"b{name}"
    base = _rel(op.path, inst_path).replace(".", "_") if op.path else ""
    if k == "op":  # which activation (not `act`: a residual's own `then`, when it differs, is $act)
        name = "activation" if not base or not NAME.match(base) or base[-1].isdigit() else base
        return name + "_op" if name in ("scale", "act", "projection") else name
    if not base or not NAME.match(base):  # unnamed, or named by its list index: the op's name
        base = op.prim.op
    return base + (NUMERIC[k] or ("" if op.prim.op in ("conv", "conv2d", "linear") else "_out"))


def _height(e: E) -> int:
    """How deeply instances nest inside an emitted tree (0: none)."""
    if e.kind == "inst":
        assert e.inst is not None
        return 1 + _height(e.inst.body)
    return max((_height(x) for x in e.items), default=0)


def _loose_key(e: E) -> str | None:
    """The structure key of a residual body without its shortcut (None for other bodies)."""
    if e.kind != "residual":
        return None
    return structure_key(E("residual", scale=e.scale, then=e.then, items=e.items[:1]))


def _new_block(inst: Instance, names: set[str], blocks: list[Block]) -> Block:
    base = _snake(inst.base)
    name, n = base, 2
    while name in names:
        name, n = f"{base}_{n}", n + 1
    names.add(name)
    block = Block(name, inst.cls, [])
    blocks.append(block)
    return block


def make_blocks(
    instances: list[Instance], merge: Callable[[list[Block], list[Block], Any, dict[int, int]], None] | None = None
) -> list[Block]:
    """Group instances by structure, innermost first (so an outer block's structure includes its inner
    instances' final arguments); name blocks after their classes. Residual instances that differ only
    in having one and the same shortcut or none (ResNet's projection) are one block whose shortcut
    is `if: $projection`."""
    blocks: list[Block] = []
    names: set[str] = set()
    for height in sorted({_height(i.body) for i in instances}):
        level = [i for i in instances if _height(i.body) == height]
        for i in level:
            fold_runs(i.body)
        full = {id(i): structure_key(i.body) for i in level}
        loose: dict[str, set[str]] = {}
        for i in level:
            lk = _loose_key(i.body)
            if lk is not None:
                loose.setdefault(lk, set()).add(full[id(i)])
        by_key: dict[str, Block] = {}
        for inst in level:
            lk = _loose_key(inst.body)
            key = full[id(inst)]
            merged = (
                lk is not None and len(loose[lk]) == 2 and any(not json.loads(k)[4] for k in loose[lk])
            )  # one key with a shortcut, one without
            if merged:
                key = "optional:" + str(lk)
            block = by_key.get(key)
            if block is None:
                block = by_key[key] = _new_block(inst, names, blocks)
                block.optional = merged
            block.instances.append(inst)
            inst.block = block
        for block in by_key.values():
            _parameterize(block)
        if merge is not None:  # blocks of one class with and without optional parts (optional.merge_level)
            merge(list(by_key.values()), blocks, _parameterize, {id(i): n for n, i in enumerate(instances)})
    depth_schedules(blocks, {id(i): n for n, i in enumerate(instances)})
    _drop_stale(blocks)
    return blocks


def _drop_stale(blocks: list[Block]) -> None:
    """A block that passed a rate down to a layer whose rate became its rule (depth_schedules) passes
    nothing now: the slot goes, and its parameter with it where nothing else reads it. Blocks are
    made inner first, so a stage sees its layers' blocks already cleaned."""
    for block in blocks:
        ops0 = _ops(block.template.body)
        stale = {
            slot: v
            for slot, v in block.slots.items()
            if slot[0] < len(ops0)
            and slot[1] != REPEAT
            and isinstance(op := ops0[slot[0]], Instance)
            and op.block is not None
            and slot[1] not in op.block.params
        }
        for slot in stale:
            del block.slots[slot]
        used = " ".join(block.slots.values())
        for name in set(stale.values()):
            if name in block.params and not re.search(rf"\b{re.escape(name)}\b", used):
                del block.params[name]
                for inst in block.instances:
                    inst.args.pop(name, None)


REPEAT = "*"  # the field of a slot that is a run's length (fold_runs)


def _columns(
    ops0: list[Any], all_ops: list[list[Any]], counts: list[list[int | None]] | None = None
) -> dict[tuple[int, str], list[str | None]]:
    """(slot, field) → each instance's value: the candidates for parameters; ``counts``: each
    instance's repeat counts (:func:`_counts`), a slot's that differ a candidate too."""
    columns: dict[tuple[int, str], list[str | None]] = {}
    for i, op in enumerate(ops0):
        if op is None:
            continue
        if counts is not None and len({c[i] for c in counts if i < len(c) and c[i] is not None}) > 1:
            columns[(i, REPEAT)] = [str(c[i]) if i < len(c) and c[i] is not None else None for c in counts]
        if isinstance(op, Instance):
            assert op.block is not None
            for k in op.block.params:
                columns[(i, k)] = [
                    _arg_of(ops[i], k) if i < len(ops) and isinstance(ops[i], Instance) else None for ops in all_ops
                ]
            continue
        if _is_act(op):
            columns[(i, "op")] = [ops[i].prim.op if i < len(ops) and ops[i] is not None else None for ops in all_ops]
            continue
        for k, v in op.prim.params.items():
            if _parameterizable(k, v):
                columns[(i, k)] = [
                    _value_text(k, ops[i].prim.params[k]) if i < len(ops) and ops[i] is not None else None for ops in all_ops
                ]
    return columns


# a parameter set by one field of the block's ops is named for what it is, as the zoo's blocks are
FIELD_NAMES = {"out": "out", "kernel": "k", "stride": "stride", "padding": "pad", "dilation": "dilation", "groups": "groups"}


def _most_common(column: list[str | None]) -> str:
    """A parameter's default: the value most instances have (the first of those tied), so that fewer
    instances write it."""
    known = [v for v in column if v is not None]
    return max(dict.fromkeys(known), key=known.count) if known else ""


def _plain_names(
    block: Block, ops0: list[Any], values_of: dict[str, list[str | None]], special: set[str]
) -> dict[str, list[str | None]]:
    """Rename the parameters that set one kind of field of the block's own ops after that field:
    ``stride``, ``groups``, ``k``; of several output widths the last op's is ``out`` and, when there
    is one more, that one is ``mid`` (a bottleneck's); the rest keep their op's name (conv1_stride)."""
    fields: dict[str, list[tuple[int, str]]] = {}
    for (i, k), name in block.slots.items():
        fields.setdefault(name, []).append((i, k))
    by_field: dict[str, list[str]] = {}
    rename: dict[str, str] = {}
    nested: dict[str, str] = {}  # an argument of nested instances placed by index: its own name (`mid`), where free
    for name, slots in fields.items():
        kinds = {k for _, k in slots}
        inner = [ops0[i] for i, _ in slots if isinstance(ops0[i], Instance)]
        seg = _rel(inner[0].path, block.template.path).rpartition(".")[2] if inner else ""
        if len(inner) == len(slots) and len(kinds) == 1 and (len(slots) > 1 or seg.isdigit()) and name not in special:
            nested[name] = slots[0][1]
            continue
        if len(slots) == 1 and inner and name not in special:
            # a nested block's argument: after the instance (`se`), and its parameter when it has several (`se_mid`)
            alone = sum(1 for (j, _) in block.slots if j == slots[0][0]) == 1
            rename[name] = seg if alone else f"{seg}_{slots[0][1]}"
            continue
        if name not in special and len(kinds) > 1 and "out" in kinds and kinds <= {"out", "start", "stop"}:
            kinds = {"out"}  # a width that also bounds a channel slice (ShuffleNet's unit): still the width
        if name in special or len(kinds) != 1:
            continue
        (k,) = kinds
        if k in FIELD_NAMES:
            by_field.setdefault(k, []).append(name)
    for k, names in by_field.items():
        last = sorted(names, key=lambda n: max(i for i, _ in fields[n]))
        if len(names) == 1:
            rename[names[0]] = FIELD_NAMES[k]
        elif k == "out" and len(names) == 2:
            rename[last[1]], rename[last[0]] = "out", "mid"
    for old, new in nested.items():
        if new not in rename.values() and (new not in values_of or new in rename):
            rename[old] = new
    taken = set(values_of) - set(rename)
    rename = {old: new for old, new in rename.items() if new not in taken and new not in special and NAME.match(new)}
    if len(set(rename.values())) != len(rename):
        return values_of
    block.slots = {slot: rename.get(name, name) for slot, name in block.slots.items()}
    return {rename.get(name, name): column for name, column in values_of.items()}


def _multiples(block: Block, values_of: dict[str, list[str | None]], special: set[str]) -> dict[str, list[str | None]]:
    """A parameter that is the same multiple of another in every instance (ShuffleNet's channel
    slice ``[c, 2c)``) is written as that expression, ``${2 * c}``, not as a parameter of its own (a
    small multiple, 2 to 4: a larger one is more likely a coincidence than a design)."""
    ints = {n: [int(v) if v is not None and v.isdigit() else None for v in vs] for n, vs in values_of.items() if n not in special}
    derived: dict[str, str] = {}
    bases: set[str] = set()
    for b, bs in ints.items():
        for a, as_ in ints.items():
            if b in bases:
                break
            base = [x for x in as_ if x]
            if a == b or a in derived or len(base) != len(as_):
                continue
            pairs = list(zip(base, bs, strict=True))
            ratios = {y // x for x, y in pairs if y is not None}
            if len(ratios) == 1 and 2 <= (m := ratios.pop()) <= 4 and all(y is None or y == m * x for x, y in pairs):
                derived[b] = f"{{{m} * {a}}}"  # `$` + this: ${2 * c}
                bases.add(a)
                break
    block.slots = {slot: derived.get(name, name) for slot, name in block.slots.items()}
    return {n: vs for n, vs in values_of.items() if n not in derived}


# stochastic depth's rules (docs/language.md, "Stochastic depth"): the rate of the i-th of N instances
SCHEDULES = ("block_index / block_count", "block_index / (block_count - 1)")


def _depth_schedule(block: Block, ops0: list[Any], values_of: dict[str, list[str | None]]) -> dict[str, list[str | None]]:
    """Keep each drop-path rate parameter's rates per instance, for :func:`depth_schedules`."""
    for name, column in list(values_of.items()):
        slots = [(i, k) for (i, k), v in block.slots.items() if v == name]
        if not slots or any(k != "p" or getattr(getattr(ops0[i], "prim", None), "op", None) != "drop_path" for i, k in slots):
            continue
        block.rates[name] = column  # the rule is found once every block is made: depth_schedules
    return values_of


def schedule(rates: list[str | None]) -> str | None:
    """The rule the rates of N instances follow (None: no rate there), as a parameter slot: the text
    after `$` (``{0.2 * block_index / block_count}``), or None."""
    n = len(rates)
    known = [(j, float(v)) for j, v in enumerate(rates) if v is not None]
    fits: list[tuple[str, str]] = []  # (the top rate, the rule) of each rule the rates follow
    for rule in SCHEDULES:
        steps = [j / n if rule == SCHEDULES[0] else j / (n - 1) if n > 1 else 0.0 for j in range(n)]
        top = next((r / steps[j] for j, r in known if steps[j]), None)
        if top is not None:
            top = float(f"{top:.10g}")
            if all(abs(r - top * steps[j]) <= 1e-9 * max(1.0, abs(r)) for j, r in known):
                fits.append((repr(top), rule))
    if not fits:
        return None
    top_text, rule = min(fits, key=lambda f: len(f[0]))  # both rules are linear in i: 0.1, not 0.10588…
    return f"{{{top_text} * {rule}}}"


COUNTER = "depth"  # the name of the count blocks share (docs/language.md, `counter:`)


def depth_schedules(blocks: list[Block], order: dict[int, int]) -> None:
    """A drop-path rate that grows with the instance's place as one of the rules the zoo writes
    (torchvision's EfficientNet: ``0.2 · i / N``; ConvNeXt: ``0.1 · i / (N − 1)``) is written as that
    rule, ``drop_path ${0.2 * block_index / block_count}``, not one rate per instance. Instances are
    numbered in network order, as archspec counts them; one without the drop path (no residual sum)
    counts too, as it does when built. Blocks of several kinds whose rates follow one rule over all
    their instances together (torchvision's EfficientNetV2: Fused-MBConv and MBConv, ``0.2 · i / 40``)
    share one count, ``counter: depth``, before each is tried alone."""
    rated = [(b, name) for b in blocks for name in b.rates if name in b.params]
    ordered = all(id(i) in order for b, _ in rated for i in b.instances)
    if len(rated) >= 2 and len({id(b) for b, _ in rated}) == len(rated) and ordered:
        seq = sorted(((order[id(i)], j, b, name) for b, name in rated for j, i in enumerate(b.instances)), key=lambda t: t[0])
        rule = schedule([b.rates[name][j] for _, j, b, name in seq])
        if rule is not None:
            for b, name in rated:
                _set_rule(b, name, rule)
                b.counter = COUNTER
            return
    for b, name in rated:
        rule = schedule(b.rates[name])
        if rule is not None:
            _set_rule(b, name, rule)


def _set_rule(b: Block, name: str, rule: str) -> None:
    b.slots = {slot: rule if v == name else v for slot, v in b.slots.items()}
    del b.params[name]
    for inst in b.instances:
        inst.args.pop(name, None)


def _joins(column: list[str | None], values: list[str | None], same_name: bool) -> bool:
    """Whether a field's values are those of a parameter already made: equal in every instance that
    has both; where no instance has both (two alternative bodies of a block), only a field of the
    same name (the same op and field) is the same parameter."""
    both = [(a, b) for a, b in zip(column, values, strict=True) if a is not None and b is not None]
    return all(a == b for a, b in both) and (bool(both) or same_name)


def _parameterize(block: Block) -> None:
    """The numbers that differ between the block's instances become its parameters (and, for an
    optional shortcut, whether the instance has it). An op an instance lacks (in the shortcut it does
    not have) matches any value."""
    template = block.template
    ops0 = _ops(template.body)
    counts = [inst.counts if inst.aligned is not None else _counts(inst.body) for inst in block.instances]
    columns = _columns(ops0, [inst.aligned if inst.aligned is not None else _ops(inst.body) for inst in block.instances], counts)
    block.params.clear()
    block.rates.clear()
    block.slots.clear()
    values_of: dict[str, list[str | None]] = {}
    if block.optional:
        values_of["projection"] = ["true" if inst.body.has_shortcut else "false" for inst in block.instances]
    for flag, present in block.flags.items():
        values_of[flag] = [None if v is None else "true" if v else "false" for v in present]
    if template.body.kind == "residual" and block.merged is None:  # a residual's own scale and `then`, where instances differ
        for name, vs in (
            ("scale", [repr(i.body.scale) for i in block.instances]),
            ("act", [i.body.then.prim.op if i.body.then else "identity" for i in block.instances]),
        ):
            if len(set(vs)) > 1:
                values_of[name] = list(vs)
    special = set(values_of)
    lengths: set[str] = set()  # the parameters that are a run's length: they join no other field
    for (i, k), values in columns.items():
        known = {v for v in values if v is not None}
        if len(known) <= 1:
            continue
        op = ops0[i]
        assert op is not None
        own = "n" if k == REPEAT else _slot_name(op, i, template.path, k)
        shared = next(
            (
                n
                for n, vs in values_of.items()
                if n not in special and (n in lengths) == (k == REPEAT) and _joins(vs, values, n == own)
            ),
            None,
        )
        if shared is None:
            shared = own
            if shared in ("scale", "act", "projection"):  # a residual's own parameters
                shared += "_"
            while shared in values_of:
                shared += "_"
            values_of[shared] = list(values)
            if k == REPEAT:
                lengths.add(shared)
        else:
            values_of[shared] = [a if a is not None else b for a, b in zip(values_of[shared], values, strict=True)]
        block.slots[(i, k)] = shared
    values_of = _multiples(block, _plain_names(block, ops0, values_of, special | lengths), special | lengths)
    values_of = _depth_schedule(block, ops0, values_of)
    values_of |= _read_parameters(block, set(values_of))
    for name, column in values_of.items():
        block.params[name] = "false" if name == "projection" else _most_common(column)
    for j, inst in enumerate(block.instances):
        inst.args = {n: v for n, vs in values_of.items() if (v := vs[j]) is not None and v != block.params[n]}


def _froms(e: E) -> list[E]:
    """The `from` nodes of a block's body reading values outside its instance, in order (not inside nested instances)."""
    if e.kind == "from":
        return [e] if e.outside else []
    return [f for x in e.items for f in _froms(x)]


def _read_parameters(block: Block, taken: set[str]) -> dict[str, list[str | None]]:
    """A value outside the instance that each instance reads another of (U-Net's skip: `from: enc4` in
    `dec4`, `from: enc3` in `dec3`) is a parameter, `from: $skip`, as the zoo's `up_step` takes it."""
    froms = [_froms(inst.body) for inst in block.instances]
    if len({len(f) for f in froms}) != 1 or block.merged is not None:
        return {}
    out: dict[str, list[str | None]] = {}
    for j, column in enumerate(zip(*froms, strict=True)):
        targets: list[str | None] = [e.target for e in column]
        if len(set(targets)) == 1:
            continue
        name = "skip" if j == 0 else f"skip{j + 1}"
        while name in taken or name in out:
            name += "_"
        out[name] = targets
        _froms(block.template.body)[j].target = f"${name}"
    return out


# ---- rendering ops as short forms: the registry's generic writer ---------------------------
def render_op(op: Step | None, defaults: dict[str, dict[str, Any]], refs: dict[str, str] | None = None) -> str:
    """An op's short form; ``refs`` maps a field (or ``op``: which activation) to a block parameter."""
    if op is None:
        return "identity"
    refs = refs or {}
    if "op" in refs:  # an activation that is a block parameter
        return f"${refs['op']}"
    entry = REGISTRY[op.prim.op]
    return write(entry, op.prim.params, defaults=defaults.get(op.prim.op), refs={k: f"${v}" for k, v in refs.items()})


def _defaultable(name: str) -> list[str]:
    """Fields the import moves to `defaults:` when every op of a kind sets them alike, as the zoo does
    (`conv: {eps: 0.001}`): those written key=value (not the numbers that differ from op to op:
    positional, grid, stride, padding, ...), and a composite's switches (conv's bn and bias). A
    primitive's flags stay on the op, where the zoo writes them (`no_bias`, `ceil`, `exclude_pad`)."""
    entry = REGISTRY[name]
    composite = type(entry).expand is not Op.expand
    return [
        f
        for f, info in entry.Params.model_fields.items()
        if not info.is_required()
        and f not in entry.positional
        and f != entry.grid
        and f not in LETTERS
        and (composite or info.annotation is not bool)
    ]


def _valid_for_all(name: str, ops: list[Step], field: str, value: Any) -> bool:
    """A default every op of the kind takes: a bilinear upsample's align_corners is no field of a
    nearest one (its model refuses it), so it stays on the op."""
    model = REGISTRY[name].Params
    try:
        for o in ops:
            model.model_validate({**o.prim.params, field: value})
    except ValueError:
        return False
    return True


def spec_defaults(ops: list[Step]) -> dict[str, dict[str, Any]]:
    """`defaults:` for op fields every op of that kind (two or more) sets to the same non-default value."""
    out: dict[str, dict[str, Any]] = {}
    by_name: dict[str, list[Step]] = {}
    for o in ops:
        if o.prim.op in REGISTRY:
            by_name.setdefault(o.prim.op, []).append(o)
    for name, of in by_name.items():
        fields = REGISTRY[name].Params.model_fields
        for f in _defaultable(name):
            # a field an op leaves out (a conv without BatchNorm has no eps) does not count
            values = {repr(o.prim.params[f]): o.prim.params[f] for o in of if f in o.prim.params}
            if len(of) > 1 and len(values) == 1:
                (v,) = values.values()
                if v != fields[f].get_default(call_default_factory=True) and _valid_for_all(name, of, f, v):
                    out.setdefault(name, {})[f] = v
    return out


__all__ = ["E", "Emitter", "Instance", "Block", "make_blocks", "render_op", "spec_defaults", "structure_key"]
