"""Blocks whose instances differ in optional parts become one block with `if:` on parameters.

torchvision's InvertedResidual (MobileNetV2/V3) and MBConv (EfficientNet) are one class whose
instances differ in what they contain: an expansion conv or none, a squeeze-and-excitation gate or
none, the residual sum or none (``use_res_connect``). Grouped by structure (emit.make_blocks) they
are several blocks; here the blocks of one source class are unified into one *template*:

- a list item some instances lack is optional: ``{if: $flag, then: item}``;
- an item whose list index moves with an optional item before it (``block.3`` with an SE gate,
  ``block.2`` without) is written under each name it takes: ``{if: $se, then: {"3": x}, else: {"2": x}}``;
- a residual sum some instances lack wraps the body: ``{if: $res, then: {residual: {body}}, else: body}``.

Every instance is then aligned with the template (which of its parts are present, which op of it
fills each op slot of the template), so the numbers that differ become parameters as for any block
(emit._parameterize), and the flags — one per distinct pattern of presence — are parameters too.
Unification is refused (the blocks stay apart) when an instance cannot be aligned, when an optional
part is another instance of a block the list already holds (a stage's repeated layers are no
optional part), or when an item's name is decided by more than two flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from archspec.importer.emit import Block, E, Instance, _field_ok, _form, _ops, _snake

Flags = dict[str, bool]


@dataclass
class Alignment:
    """One instance against the template: the template's nodes it has, the name each list item takes,
    and its ops in the order of the template's op slots (None where it lacks the slot)."""

    present: dict[int, bool] = field(default_factory=dict)  # id(template node) → the instance has it
    names: dict[int, str | None] = field(default_factory=dict)  # id(template list item) → its name there
    ops: list[Any] = field(default_factory=list)
    counts: list[int | None] = field(default_factory=list)  # each op's repeat count (a folded run's length)


def _name(e: E, position: int) -> str | None:
    """An item's name, or — for an unnamed block instance or op with tensors (placed by its index) —
    its index. Unnamed containers add no path segment, and a stateless op has no module."""
    if e.name is not None:
        return e.name
    if e.kind == "inst" or (e.kind == "op" and e.op is not None and e.op.prim.stateful):
        return str(position)
    return None


def _names_agree(a: str | None, b: str | None) -> bool:
    return a == b or (a is not None and b is not None and a.isdigit() and b.isdigit())


class Unifier:
    """Builds the template of several instance bodies (:meth:`unify`), then aligns each with it."""

    def __init__(self) -> None:
        # id(template node) → the node (held, so that no id is reused): list items some instance lacks,
        # and the if-nodes wrapping a residual some instances lack
        self.optional: dict[int, E] = {}
        self.wraps: dict[int, E] = {}
        self.alts: dict[int, E] = {}  # the if-nodes choosing between two whole bodies (:meth:`alternative`)
        self.cost = 0  # items made optional so far: of two ways to unify, the one with fewer is taken

    # ---- the template -----------------------------------------------------------------------
    def unify(self, t: E, b: E, top: bool = False) -> E | None:
        """The template covering ``t`` (a template or an instance body) and the instance body ``b``."""
        if t.kind == "if" and id(t) in self.alts:
            return self._either(t, b)
        if t.kind == "if" and id(t) in self.wraps:
            res = t.items[0]
            inner = self.unify(res, b) if b.kind == "residual" else self._body(res, b)
            return self._wrap(inner) if inner is not None else None
        if top and t.kind == "residual" and b.kind != "residual":
            return self._wrap(self._body(t, b))
        if top and b.kind == "residual" and t.kind != "residual":
            if b.has_shortcut:
                return None
            body = self.unify(t, b.items[0])  # the template first: its optional parts are known by their ids
            return self._wrap(replace(b, items=[body])) if body is not None else None
        if t.kind != b.kind:
            return None
        if t.kind == "op":
            same = (t.op is None) == (b.op is None) and _form(t.op, _field_ok(t.op)) == _form(b.op, _field_ok(b.op))
            return t if same else None
        if t.kind == "inst":
            assert t.inst is not None and b.inst is not None
            return t if t.inst.block is b.inst.block else None
        if t.kind == "list":
            return self._list(t, b)
        if t.kind == "residual":
            if (t.has_shortcut, t.scale, _then(t)) != (b.has_shortcut, b.scale, _then(b)):
                return None
            return self._parts(t, b)
        if t.kind in ("concat", "gate"):
            if len(t.items) != len(b.items) or any(x.name != y.name for x, y in zip(t.items, b.items, strict=True)):
                return None
            return self._parts(t, b)
        return None

    def alternative(self, t: E, b: E) -> E | None:
        """Two bodies of one class that unify part by part in no way, as two alternatives of one
        block, ``{if: $flag, then: one, else: other}`` (BiT's pre-activation bottleneck: with a
        projection it pre-activates before the residual, which it reads; without, inside its body).
        Only when both hold the same modules, a shortcut's apart: one computation arranged in two
        ways, not two computations (ShuffleNet's two units, one with a branch the other lacks, stay
        two blocks); the one with a projection shortcut comes first."""
        if id(t) in self.alts or t.kind == "if" or b.kind == "if" or _modules(t) != _modules(b):
            return None
        sides = [t, b] if _projects(t) or not _projects(b) else [b, t]
        alt = E("if", items=sides)
        self.alts[id(alt)] = alt
        return alt

    def _either(self, t: E, b: E) -> E | None:
        """The alternatives with ``b`` unified into the first side it unifies with."""
        for k, side in enumerate(t.items):
            probe = self._probe()
            got = probe.unify(side, b, top=True)
            if got is not None:
                self.optional, self.wraps, self.cost = probe.optional, probe.wraps, probe.cost
                t.items[k] = got
                return t
        return None

    def _probe(self) -> Unifier:
        probe = Unifier()
        probe.optional, probe.wraps, probe.alts, probe.cost = dict(self.optional), dict(self.wraps), self.alts, self.cost
        return probe

    def _parts(self, t: E, b: E) -> E | None:
        """A container whose parts unify one by one (a residual's body and shortcut, a concat's branches)."""
        parts = []
        for x, y in zip(t.items, b.items, strict=True):
            part = self.unify(x, y)
            if part is None:
                return None
            parts.append(part)
        return replace(t, items=parts)

    def _body(self, res: E, plain: E) -> E | None:
        """A residual (no shortcut) whose body takes in an instance's body that has no residual sum."""
        if res.has_shortcut:
            return None
        body = self.unify(res.items[0], plain)
        return replace(res, items=[body]) if body is not None else None

    def _wrap(self, res: E | None) -> E | None:
        if res is None:
            return None
        wrap = E("if", items=[res])
        self.wraps[id(wrap)] = wrap
        return wrap

    def _list(self, t: E, b: E) -> E | None:
        pairs = self._match(t.items, b.items, insert=True)
        if pairs is None:
            return None
        matched = sum(1 for x, y in pairs if x is not None and y is not None)
        new = sum(1 for x, y in pairs if (x is None) != (y is None) and id(x if x is not None else y) not in self.optional)
        if matched < max(new, 1):
            return None  # more parts in one or the other than in both: no common block
        items: list[E] = []
        for x, y in pairs:
            if x is not None and y is not None:
                u = x if id(x) in self.optional and x.kind == "if" else None
                inner = self.unify(u.items[0] if u is not None else x, y)
                if inner is None:
                    return None
                item = replace(u, items=[inner]) if u is not None else inner
                if u is not None:
                    self.optional[id(item)] = item
                items.append(item)
            else:
                part = x if x is not None else y
                assert part is not None
                if id(part) in self.optional:
                    items.append(part)
                    continue
                if part.kind == "inst" and any(
                    o.kind == "inst" and o.inst is not None and part.inst is not None and o.inst.block is part.inst.block
                    for o in [*t.items, *b.items]
                    if o is not part
                ):
                    return None  # one more layer of a stage, not an optional part
                opt = E("if", items=[part])
                self.optional[id(opt)] = opt
                self.cost += 1
                items.append(opt)
        return replace(t, items=items)

    def _match(self, ts: list[E], bs: list[E], insert: bool) -> list[tuple[E | None, E | None]] | None:
        """The monotone matching of template items to instance items that pairs the most items and,
        of those, makes the fewest parts optional inside them: an unmatched template item must be
        optional (or become optional: ``insert``), an unmatched instance item is new (only when
        ``insert``). Two items match when their names agree (equal, or both indices) and their
        contents unify."""
        n, m = len(ts), len(bs)
        cost = [[self._fits(ts[i], i, bs[j], j) for j in range(m)] for i in range(n)]
        impossible = -(10**9)
        best = [[impossible] * (m + 1) for _ in range(n + 1)]  # the score of matching from (i, j) on
        best[n][m] = 0
        for i in range(n, -1, -1):
            for j in range(m, -1, -1):
                if i == n and j == m:
                    continue
                options = []
                if i < n and (insert or id(ts[i]) in self.optional):
                    options.append(best[i + 1][j] - self._new(ts[i]))
                if j < m and insert:
                    options.append(best[i][j + 1] - 1)
                c = cost[i][j] if i < n and j < m else None
                if c is not None:
                    options.append(best[i + 1][j + 1] + 100 - c)
                best[i][j] = max((o for o in options if o > impossible // 2), default=impossible)
        if best[0][0] <= impossible // 2:
            return None
        pairs: list[tuple[E | None, E | None]] = []
        i = j = 0
        while i < n or j < m:
            c = cost[i][j] if i < n and j < m else None
            if c is not None and best[i + 1][j + 1] + 100 - c == best[i][j]:
                pairs.append((ts[i], bs[j]))
                i, j = i + 1, j + 1
            elif i < n and (insert or id(ts[i]) in self.optional) and best[i + 1][j] - self._new(ts[i]) == best[i][j]:
                pairs.append((ts[i], None))
                i += 1
            else:
                pairs.append((None, bs[j]))
                j += 1
        return pairs

    def _new(self, t: E) -> int:
        """1 when leaving the template item out makes it optional, 0 when it is optional already."""
        return int(id(t) not in self.optional)

    def _fits(self, t: E, i: int, b: E, j: int) -> int | None:
        """How many parts unifying the two items makes optional, or None when they do not unify."""
        inner = t.items[0] if id(t) in self.optional else t
        if not _names_agree(inner.name if inner.name is not None else _name(inner, i), _name(b, j)):
            return None
        probe = self._probe()
        probe.cost = 0
        return probe.cost if probe.unify(inner, b) is not None else None

    # ---- one instance against the template ----------------------------------------------------
    def align(self, t: E, b: E, out: Alignment, top: bool = False) -> bool:
        """Record in ``out`` how the instance body ``b`` fills the template ``t``; False when it cannot."""
        if t.kind == "if" and id(t) in self.alts:
            return self._align_either(t, b, out)
        if t.kind == "if" and id(t) in self.wraps:
            res = t.items[0]
            out.present[id(t)] = b.kind == "residual"
            if b.kind == "residual":
                return self.align(res, b, out)
            return self.align(res.items[0], b, out)  # the body alone
        if t.kind != b.kind:
            return False
        if t.kind in ("op", "inst"):
            out.counts.append(b.repeat)
        if t.kind == "op":
            out.ops.append(b.op)
            return (t.op is None) == (b.op is None)
        if t.kind == "inst":
            out.ops.append(b.inst)
            return t.inst is not None and b.inst is not None and t.inst.block is b.inst.block
        if t.kind == "list":
            return self._align_list(t, b, out)
        for x, y in zip(t.items, b.items, strict=False):
            if not self.align(x, y, out):
                return False
        return len(t.items) == len(b.items)

    def _align_list(self, t: E, b: E, out: Alignment) -> bool:
        pairs = self._match(t.items, b.items, insert=False)
        if pairs is None:
            return False
        position = {id(y): j for j, y in enumerate(b.items)}
        for x, y in pairs:
            assert x is not None, "no insertion when aligning"
            inner = x.items[0] if id(x) in self.optional else x
            if id(x) in self.optional:
                out.present[id(x)] = y is not None
            if y is None:
                out.ops += [None] * len(_ops(inner))
                out.counts += [None] * len(_ops(inner))
                continue
            out.names[id(inner)] = _name(y, position[id(y)])
            if not self.align(inner, y, out):
                return False
        return True

    def _align_either(self, t: E, b: E, out: Alignment) -> bool:
        """An instance body against two alternatives: the first it fills (the other's slots absent)."""
        sizes = [len(_ops(side)) for side in t.items]
        for k, side in enumerate(t.items):
            probe = Alignment()
            if self.align(side, b, probe):
                out.present.update(probe.present)
                out.names.update(probe.names)
                out.present[id(t)] = k == 0
                before: list[None] = [None] * sum(sizes[:k])
                after: list[None] = [None] * sum(sizes[k + 1 :])
                out.ops += [*before, *probe.ops, *after]
                out.counts += [*before, *probe.counts, *after]
                return True
        return False


def _then(e: E) -> str | None:
    return e.then.prim.op if e.then is not None else None


def _modules(e: E, at: str = "") -> set[str]:
    """The modules of a body, by their names inside it (a nested instance's with its block), but
    those of a residual's shortcut."""
    if e.kind == "op":
        return {at} if e.op is not None and e.op.prim.stateful else set()
    if e.kind == "inst":
        return {f"{at}:{e.inst.block.name if e.inst is not None and e.inst.block is not None else ''}"}
    out: set[str] = set()
    for j, x in enumerate(e.items[:1] if e.kind == "residual" else e.items):
        name = _name(x, j) if e.kind == "list" else x.name
        out |= _modules(x, f"{at}.{name}" if name else at)
    return out


def _projects(e: E) -> bool:
    """A body holding a residual sum with a shortcut of its own (a projection)."""
    return any(x.kind == "residual" and x.has_shortcut for x in _walk(e))


def merge(reps: list[Instance], instances: list[Instance]) -> tuple[E, list[Alignment], Unifier] | None:
    """The template of the bodies of ``reps`` (one instance of each block to unify) and the alignment
    of every instance with it, or None when they do not unify."""
    u = Unifier()
    template: E | None = reps[0].body
    for rep in reps[1:]:
        assert template is not None
        template = u.unify(template, rep.body, top=True) or u.alternative(template, rep.body)
        if template is None:
            return None
    assert template is not None
    alignments = []
    for inst in instances:
        a = Alignment()
        if not u.align(template, inst.body, a) or len(a.ops) != len(_ops(template)):
            return None
        alignments.append(a)
    return template, alignments, u


# ---- flags: one per pattern of presence, named for what they switch -----------------------------
def _flag_base(e: E, wrap: bool, alt: bool = False) -> str:
    if alt:  # two alternative bodies: the first has a projection, or they are one body's two variants
        return "projection" if _projects(e.items[0]) else "variant"
    if wrap:
        return "res"
    inner = e.items[0] if e.kind == "if" else e
    if inner.kind == "inst" and inner.inst is not None and inner.inst.block is not None:
        words = _snake(inner.inst.block.name).split("_")
        words = [w for w in words if not w.isdigit()]
        return "".join(w[0] for w in words) if len(words) > 1 else words[0]
    if inner.name is not None and not inner.name.isdigit():
        return _snake(inner.name)
    first = _ops(inner)[0] if _ops(inner) else None
    return "expand" if first is not None and getattr(first, "prim", None) is not None and first.prim.op == "conv2d" else "part"


def flags(template: E, alignments: list[Alignment], u: Unifier) -> tuple[dict[int, str], dict[str, list[bool | None]]]:
    """A flag for every optional node and residual wrap (equal patterns share one), and its value in
    each instance (None: the node's enclosing part is absent, so it does not matter)."""
    nodes = [n for n in _walk(template) if id(n) in u.optional or id(n) in u.wraps or id(n) in u.alts]
    named: dict[int, str] = {}
    values: dict[str, list[bool | None]] = {}
    # the alternatives' flag first, then the residual's: they name a pattern `projection`, `res`
    for n in sorted(nodes, key=lambda n: (id(n) not in u.alts, id(n) not in u.wraps)):
        column = [a.present.get(id(n)) for a in alignments]
        same = next((f for f, vs in values.items() if _agree(vs, column)), None)
        if same is not None:
            values[same] = [x if x is not None else y for x, y in zip(values[same], column, strict=True)]
            named[id(n)] = same
            continue
        base = _flag_base(n, id(n) in u.wraps, id(n) in u.alts)
        name, k = base, 2
        while name in values:
            name, k = f"{base}{k}", k + 1
        values[name] = column
        named[id(n)] = name
    return named, values


def _agree(a: list[bool | None], b: list[bool | None]) -> bool:
    """Two presence patterns that are one flag: equal wherever both matter."""
    return all(x is None or y is None or x == y for x, y in zip(a, b, strict=True))


def _walk(e: E) -> list[E]:
    out = [e]
    for x in e.items:
        out += _walk(x)
    return out


def name_rules(
    template: E, alignments: list[Alignment], values: dict[str, list[bool | None]], u: Unifier
) -> dict[int, tuple[tuple[str, ...], dict[tuple[bool, ...], str]]] | None:
    """In each list with an optional item, every item is written under its name (a list index
    may move); for an item named differently in different instances, the one or two flags that
    decide its name and the name for each of their values. None when no such flags exist."""
    rules: dict[int, tuple[tuple[str, ...], dict[tuple[bool, ...], str]]] = {}
    for lst in _walk(template):
        if lst.kind != "list" or not any(id(x) in u.optional for x in lst.items):
            continue
        for x in lst.items:
            n = x.items[0] if id(x) in u.optional else x
            seen = [(j, a.names[id(n)]) for j, a in enumerate(alignments) if id(n) in a.names]
            names = {name for _, name in seen}
            if not names:
                continue
            if len(names) == 1:
                n.name = seen[0][1]  # one name everywhere: written as its key, since its index may move
                continue
            rule = _deciding(seen, values)
            if rule is None:
                return None
            rules[id(n)] = rule
    return rules


def _deciding(
    seen: list[tuple[int, str | None]], values: dict[str, list[bool | None]]
) -> tuple[tuple[str, ...], dict[tuple[bool, ...], str]] | None:
    flags_ = list(values)
    for width in (1, 2):
        for k, first in enumerate(flags_):
            for second in flags_[k + 1 :] if width == 2 else [None]:
                conds = (first,) if second is None else (first, second)
                table: dict[tuple[bool, ...], str] = {}
                for j, name in seen:
                    key = tuple(values[c][j] for c in conds)
                    if name is None or any(v is None for v in key):
                        break
                    if table.setdefault(key, name) != name:  # type: ignore[arg-type]
                        break
                else:
                    return conds, table
    return None


def merge_level(level: list[Block], blocks: list[Block], parameterize: Any, order: dict[int, int]) -> None:
    """Unify the blocks of one nesting level with the blocks of lower levels that come from the same
    source class (their label), in place: the first takes every instance (in the order of ``order``:
    id(instance) → its place in the network) and the others leave ``blocks``."""
    by_label: dict[str, list[Block]] = {}
    for b in level:
        if not b.optional and b.merged is None:
            by_label.setdefault(b.label, [])
    for b in blocks:
        if b.label in by_label and not b.optional:
            by_label[b.label].append(b)
    for group in by_label.values():
        if len(group) < 2 or not any(b in level for b in group):
            continue
        reps = [r for b in group for r in (b.reps or [b.instances[0]])]
        instances = sorted((i for b in group for i in b.instances), key=lambda i: order[id(i)])
        result = merge(reps, instances)
        if result is None:
            continue
        template, alignments, u = result
        named, values = flags(template, alignments, u)
        rules = name_rules(template, alignments, values, u)
        if rules is None:
            continue
        for n in _walk(template):
            if id(n) in named:
                n.cond, n.wrap = named[id(n)], id(n) in u.wraps
            if id(n) in rules:
                n.conds, n.names = rules[id(n)]
        keep = group[0]
        first = instances[0]
        keep.instances, keep.reps = instances, reps
        keep.merged, keep.flags = Instance(first.path, first.cls, template, base=first.base), values
        for inst, a in zip(instances, alignments, strict=True):
            inst.block, inst.aligned, inst.counts = keep, a.ops, a.counts
        for b in group[1:]:
            blocks.remove(b)
        parameterize(keep)


__all__ = ["Alignment", "Unifier", "flags", "merge", "merge_level", "name_rules"]
