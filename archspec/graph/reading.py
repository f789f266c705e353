"""Reading what a node writes: the long forms of ops and blocks, repeat counts, conditions.

The short-form reader (archspec/language/shortform.py) reads ``conv 64 3x3 s2``; this module reads the
same facts written as mappings (``{op: conv, out: 64}``, ``{block: b, params: {...}, repeat: N}``,
``if: ...``), each value with its ``$params`` and ``${...}`` filled in at the node's input ``x``. A
value that decides structure (a repeat count, a condition, a block's argument) is read through
``structural``, so that the expansion knows whether ``block_count`` or ``in`` decided it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from archspec.errors import SpecError
from archspec.graph.tree import check_names
from archspec.language.load import YamlPath
from archspec.language.model import (
    BlockRef,
    ChainNode,
    ConcatNode,
    IfNode,
    OpLong,
    module_name_problem,
    name_of_copy,
    names_pattern_problem,
)
from archspec.language.resolve import Resolved
from archspec.language.shortform import Ref, Scope, ShortForms, mentions_input, referenced_params


def _from_input(values: dict[str, Any], scope: Scope) -> frozenset[str]:
    """The keys whose values are computed from `in` (directly, or through a $param computed from it)."""
    return frozenset(
        k for k, v in values.items() if isinstance(v, str) and (mentions_input(v) or referenced_params(v) & scope.from_input)
    )


Branch = tuple[Any, YamlPath, Scope, "str | None", "int | None"]  # a concat's branch: node, YAML path, scope, name, index


class Reader:
    """Reads the written values of nodes for one expansion."""

    def __init__(self, resolved: Resolved, forms: ShortForms) -> None:
        self.resolved = resolved
        self.forms = forms
        self.skipped: dict[int, tuple[Any, set[str]]] = {}  # an if's branch not taken, checked

    def structural(self, value: Any, yp: YamlPath, scope: Scope, x: str) -> Any:
        """A value that decides structure (a repeat count, a condition, a block's argument)."""
        before = (self.forms.reads[0], self.forms.reads[1])
        value = self.forms.subst_value(value, yp, scope, x)
        self.forms.mark_structural(before)
        return value

    def key(self, key: str, yp: YamlPath, scope: Scope, x: str) -> str:
        """A node's name with its ``$params`` and ``${...}`` filled in (``"${i}": conv`` in a concat's copy ``i``),
        a valid module name; a name written without them, itself."""
        if "$" not in key:
            return key
        loc = scope.source.loc(yp, key=True)
        before = (self.forms.reads[0], self.forms.reads[1])
        text = self.forms.subst_text(key, loc, scope, x)
        self.forms.mark_structural(before)  # a name is structure, as a names: pattern is
        problem = module_name_problem(text)
        if problem:
            raise SpecError(f"the name {key!r} gives {text!r} here: {problem}", loc, code="name")
        return text

    def count_of(self, node: ConcatNode, yp: YamlPath, scope: Scope, x: str) -> int:
        """How many times a concat's written branches stand side by side (its ``count:``; 1 without)."""
        if node.count is None:
            return 1
        loc = scope.source.loc(yp + ("count",))
        before = (self.forms.reads[0], self.forms.reads[1])
        written = self.structural(node.count, yp + ("count",), scope, x)
        self.forms.no_block_count(before, loc)
        return self.forms.check_repeat(written, loc)  # (the depth multiplier leaves it alone: it is no depth)

    def branches(self, node: ConcatNode, count: int, yp: YamlPath, scope: Scope, x: str) -> list[Branch]:
        """A concat's branches as the expansion places them: (node, YAML path, scope, name, index); with
        ``count: N`` the written ones N times, copy k's at indices k·m + i of a list (m written), its names
        filled in with its index."""
        cyp, out = yp + ("concat",), list[Branch]()
        for k in range(count):
            s = self.copy_scope(node, k, yp, scope)
            if isinstance(node.concat, dict):
                out += [(b, cyp + (key,), s, self.key(str(key), cyp + (key,), s, x), None) for key, b in node.concat.items()]
            else:
                out += [(b, cyp + (i,), s, None, k * len(node.concat) + i) for i, b in enumerate(node.concat)]
        return out

    def copy_scope(self, node: ConcatNode, k: int, yp: YamlPath, scope: Scope) -> Scope:
        """The scope of a concat's copy ``k``: its ``index:`` name reads ``k``."""
        if node.index is None:
            return scope
        if node.index in scope.env or node.index == "in":
            raise SpecError(
                f"index: {node.index!r} hides the parameter ${node.index} of the block around it",
                scope.source.loc(yp + ("index",)),
                code="param",
                hint="give the index another name, e.g. index: g",
            )
        return replace(scope, env={**scope.env, node.index: k})

    def copy_names(self, node: Any, yp: YamlPath, scope: Scope, x: str) -> str | None:
        """The ``names:`` pattern of a long-form repeat with its ``$params`` and ``${...}`` filled in
        (``block${k}-{i}`` → ``block2-{i}``), or None where the node has none."""
        pattern: str | None = node.names if isinstance(node, (BlockRef, ChainNode)) else None
        if pattern is None or "$" not in pattern:
            return pattern
        loc = scope.source.loc(yp + ("names",))
        before = (self.forms.reads[0], self.forms.reads[1])
        text = self.forms.subst_text(pattern, loc, scope, x)
        self.forms.mark_structural(before)  # names are structure: block_count there means a second pass
        problem = names_pattern_problem(text)
        if problem:
            raise SpecError(
                f"names: {pattern!r} gives {text!r} here: {problem}",
                loc,
                code="name",
                hint="a names pattern must make a valid module name for every copy, e.g. block${k}-{i}",
            )
        return text

    def copy_name(self, pattern: str | None, k: int, yp: YamlPath, scope: Scope) -> str | None:
        """The name of copy ``k`` by the filled-in ``names:`` pattern (None without one); a located ``name``
        error where a field's expression makes a name no module may have (``{10 - i}`` past the tenth copy)."""
        if pattern is None:
            return None
        name = name_of_copy(pattern, k)
        problem = module_name_problem(name)
        if problem:
            raise SpecError(
                f"names: {pattern!r} gives {name!r} for copy {k}: {problem}",
                scope.source.loc(yp + ("names",)),
                code="name",
                hint="a names pattern must make a valid module name for every copy, e.g. layer{n + 1}",
            )
        return name

    def written_repeat(self, node: str | BlockRef | ChainNode, yp: YamlPath, scope: Scope, x: str) -> int | None:
        """The repeat count of a short form, block reference or chain, or None where none was written."""
        if isinstance(node, str):
            ref = self.forms.parse(node, yp, scope, x)
            return ref.repeat if ref.repeated else None
        return self.repeat_of(node, yp, scope, x) if "repeat" in node.model_fields_set else None

    def repeat_of(self, member: Any, yp: YamlPath, scope: Scope, x: str) -> int:
        """How many times a member of a list stands in a row (1 for nodes that cannot repeat)."""
        if isinstance(member, str):
            return self.forms.parse(member, yp, scope, x).repeat
        if not isinstance(member, (BlockRef, ChainNode)):
            return 1
        loc = scope.source.loc(yp + ("repeat",))
        before = (self.forms.reads[0], self.forms.reads[1])
        written = self.structural(member.repeat, yp + ("repeat",), scope, x)
        self.forms.no_block_count(before, loc)
        count = self.forms.check_repeat(written, loc)
        if "repeat" not in member.model_fields_set:
            return count
        return self.forms.check_repeat(self.resolved.spec.scale.repeats(count), loc)

    def condition(self, node: IfNode, yp: YamlPath, scope: Scope, x: str) -> bool:
        cond = self.structural(node.cond, yp + ("if",), scope, x)
        if not isinstance(cond, bool):
            raise SpecError(
                f"'if' needs true or false, got {cond!r}",
                scope.source.loc(yp + ("if",)),
                code="param",
                hint="pass the block parameter as true or false, e.g. projection=true",
            )
        return cond

    def long_op(self, node: OpLong, yp: YamlPath, scope: Scope, x: str) -> Ref:
        """``{op: NAME, key: value, ...}`` as a Ref, the arguments located at their keys."""
        raw = dict(node.model_extra or {})
        fixed = raw.pop("fixed", False)
        if not isinstance(fixed, bool):
            raise SpecError(
                f"'fixed' must be true or false, got {fixed!r}", scope.source.loc(yp + ("fixed",)), code="bad-op-args"
            )
        counts = self.forms.reads[0]
        args = {k: self.forms.subst_value(v, yp + (k,), scope, x) for k, v in raw.items()}
        locs = {k: scope.source.loc(yp + (k,), key=True) for k in raw}
        loc = scope.source.loc(yp)
        return Ref(
            node.op, args, locs, 1, loc, fixed, from_input=_from_input(raw, scope), from_count=self.forms.reads[0] != counts
        )

    def long_block(self, node: BlockRef, yp: YamlPath, scope: Scope, x: str) -> Ref:
        """``{block: NAME, params: {...}, repeat: N}`` as a Ref."""
        params = {k: self.structural(v, yp + ("params", k), scope, x) for k, v in node.params.items()}
        locs = {k: scope.source.loc(yp + ("params", k), key=True) for k in params}
        loc = scope.source.loc(yp + ("block",))
        ref = Ref(node.block, params, locs, self.repeat_of(node, yp, scope, x), loc, from_input=_from_input(node.params, scope))
        if node.block not in self.resolved.blocks:
            self.forms.unknown(node.block, loc)
        return ref

    def chosen(self, node: Any, yp: YamlPath, scope: Scope, x: str) -> tuple[Any, YamlPath]:
        """The node an ``if`` chooses (through nested ifs) and its YAML path; any other node itself.
        In a list the chosen node is the item: a repeat chosen takes consecutive indices of the list."""
        while isinstance(node, IfNode):
            cond = self.condition(node, yp, scope, x)
            skipped = node.otherwise if cond else node.then
            if skipped is not None:
                names = self.skipped.get(id(skipped))  # the same branch of a block, again in every instance:
                if names is None or names[0] is not skipped:  # checked once (it is only read)
                    # the branch not taken is still language: the ops and blocks it names must exist
                    check_names(skipped, yp + ("else" if cond else "then",), scope, self.forms)
                    names = self.skipped[id(skipped)] = (skipped, referenced_params(skipped))
                if scope.used is not None:
                    # a parameter written in the branch not taken is used: a block's optional parts need their
                    # parameters whether or not this instance has them
                    scope.used |= names[1]
            node, yp = (node.then, yp + ("then",)) if cond else (node.otherwise, yp + ("else",))
        return node, yp
