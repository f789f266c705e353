"""YAML text → plain Python tree, with the line and column of every node.

PyYAML's safe composer builds the node graph; we construct plain data from it ourselves so
that we can (1) remember each node's position under its path, (2) refuse duplicate keys,
non-standard tags and merge keys, and (3) bound alias expansion and nesting depth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from archspec.errors import Loc, SpecError

YamlPath = tuple[str | int, ...]

MAX_NODES = 200_000  # after alias expansion; a "billion laughs" file stops here
MAX_DEPTH = 64
MAX_BYTES = 4 * 1024 * 1024

_STD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_STD + t for t in ("str", "int", "float", "bool", "null")}


@dataclass
class Source:
    """One loaded YAML file: its data, and where each part of it came from."""

    file: str
    data: Any
    text: str = ""
    marks: dict[YamlPath, Loc] = field(default_factory=dict)
    key_marks: dict[YamlPath, Loc] = field(default_factory=dict)
    path: Path | None = None

    @cached_property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def loc(self, path: YamlPath, *, key: bool = False) -> Loc:
        """Location of the value at ``path`` (or of its key), else of the nearest ancestor."""
        table = self.key_marks if key else self.marks
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if key and p in self.marks:
                return self.marks[p]
            p = p[:-1]
        return self.marks.get((), Loc(self.file, 1, 1))


def _loc(file: str, mark: Any) -> Loc:
    return Loc(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.count = 0
        self.marks: dict[YamlPath, Loc] = {}
        self.key_marks: dict[YamlPath, Loc] = {}
        self.scalars = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: YamlPath, depth: int) -> Any:
        self.count += 1
        loc = _loc(self.file, node.start_mark)
        if self.count > MAX_NODES:
            raise SpecError(
                f"the document expands to more than {MAX_NODES} nodes",
                loc,
                code="yaml-unsafe",
                hint="anchors and aliases that multiply each other are refused; write the spec out",
            )
        if depth > MAX_DEPTH:
            raise SpecError(
                f"nesting deeper than {MAX_DEPTH} levels",
                loc,
                code="yaml-unsafe",
                hint="flatten the structure, or define a block and refer to it by name",
            )
        self.marks[path] = loc
        if isinstance(node, yaml.MappingNode):
            if node.tag != _STD + "map":
                raise self._bad_tag(node, loc)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key_loc = _loc(self.file, key_node.start_mark)
                if key_node.tag == _STD + "merge":
                    raise SpecError(
                        "merge keys (<<) are not supported",
                        key_loc,
                        code="yaml-unsafe",
                        hint="write the keys out, or use a block with parameters",
                    )
                if not isinstance(key_node, yaml.ScalarNode):
                    raise SpecError("a mapping key must be a plain name", key_loc, code="schema")
                key = self.build(key_node, path + ("<key>",), depth + 1)
                if isinstance(key, bool):  # `off:` unquoted (libyaml marks plain style "", PyYAML None)
                    raise _boolean_key(key_node.value, key, key_loc)
                key = "null" if key is None else str(key) if not isinstance(key, str) else key
                if key in out:
                    first = self.key_marks[path + (key,)]
                    raise SpecError(
                        f"duplicate key {key!r} (first defined at line {first.line})",
                        key_loc,
                        code="duplicate-key",
                        hint="remove or rename one of them",
                    )
                self.key_marks[path + (key,)] = key_loc
                out[key] = self.build(value_node, path + (key,), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _STD + "seq":
                raise self._bad_tag(node, loc)
            return [self.build(v, path + (i,), depth + 1) for i, v in enumerate(node.value)]
        if node.tag not in _SCALAR_TAGS:
            raise self._bad_tag(node, loc)
        value = self.scalars.construct_object(node, deep=True)
        if isinstance(value, str) and not _encodable(value):
            raise SpecError(
                "this text holds a lone surrogate (an escape such as \\udc80 that is not a character)",
                loc,
                code="yaml-syntax",
                hint="write the character itself, or remove the escape",
            )
        return value

    def _bad_tag(self, node: yaml.Node, loc: Loc) -> SpecError:
        tag = node.tag.replace(_STD, "!!")
        return SpecError(
            f"unsupported YAML tag or value type {tag!r}",
            loc,
            code="yaml-unsafe",
            hint="only plain strings, numbers, booleans, null, lists and mappings are allowed"
            + ("; quote the value to make it a string" if isinstance(node, yaml.ScalarNode) else ""),
        )


def _boolean_key(text: str, value: bool, loc: Loc) -> SpecError:
    """An unquoted key that YAML 1.1 reads as a boolean (``off: 1`` is ``{False: 1}``): no name can be one."""
    return SpecError(
        f"the key {text!r} is read by YAML as the boolean {str(value).lower()}, not as a name",
        loc,
        code="schema",
        hint=f"quote it: '{text}': ... (unquoted, yes, no, on, off, true and false are booleans in YAML); "
        f"a block parameter so quoted is used as ${text}",
    )


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise SpecError(
            f"the file is not UTF-8 (byte 0x{raw[e.start]:02x})",
            Loc(file, line, col),
            code="yaml-syntax",
            hint="save the file as UTF-8",
        ) from None


def _compose(text: str) -> list[yaml.Node]:
    """Compose with libyaml when present (about 20x faster); on any error, compose again with the
    pure-Python loader so that messages and positions do not depend on how PyYAML was installed."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            return list(yaml.compose_all(text, Loader=fast))
        except (yaml.YAMLError, RecursionError):
            pass
    return list(yaml.compose_all(text, Loader=yaml.SafeLoader))


def _syntax_hint(problem: str) -> str | None:
    """What is likely wrong, for PyYAML's messages that say what the parser expected rather than why."""
    if "\\t" in problem or "\t" in problem:
        return "indent with spaces, not tabs"
    if problem.startswith("expected <block end>"):
        return (
            "check the indentation here: this line starts in a column that fits neither the list or mapping "
            "above it nor the one around it (items of one list or mapping start in the same column)"
        )
    if problem.startswith(("expected ',' or ']'", "expected ',' or '}'")):
        return (
            "inside a one-line [ ... ] or { ... }, quote an item holding {, }, [, ] or a comma "
            "(e.g. 'conv ${in} 1x1'), or write one item per line"
        )
    if problem.startswith("mapping values are not allowed"):
        return "a 'key: value' where a plain value was expected: quote the value, or check the indentation"
    return None


def load_text(text: str | bytes, file: str = "<string>", path: Path | None = None) -> Source:
    """Parse YAML text into a :class:`Source`; every problem is a located SpecError."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise SpecError(f"the file is larger than {MAX_BYTES} bytes", Loc(file, 1, 1), code="limit")
        text = _decode(text, file)
    if len(text) > MAX_BYTES:
        raise SpecError(f"the file is larger than {MAX_BYTES} bytes", Loc(file, 1, 1), code="limit")
    kept = _LOADED.get((file, path, text))
    if kept is not None:  # read before: the same text gives the same tree (a copy: overrides change it in place)
        data, marks, key_marks = kept
        return Source(file=file, data=_copy(data), text=text, marks=dict(marks), key_marks=dict(key_marks), path=path)
    try:
        _check_depth(text, file)
        nodes = _compose(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        loc = _loc(file, mark) if mark is not None else Loc(file, 1, 1)
        problem = (e.problem or e.context or "invalid YAML").strip()
        raise SpecError(f"YAML syntax error: {problem}", loc, code="yaml-syntax", hint=_syntax_hint(problem)) from None
    except yaml.YAMLError as e:  # e.g. reader errors on control characters
        raise SpecError(f"YAML error: {e}", Loc(file, 1, 1), code="yaml-syntax") from None
    except RecursionError:
        raise SpecError("nesting too deep to read", Loc(file, 1, 1), code="yaml-unsafe", hint="flatten the structure") from None
    if not nodes:
        raise SpecError("the file is empty", Loc(file, 1, 1), code="schema", hint="a spec starts with 'archspec: 1'")
    if len(nodes) > 1:
        raise SpecError(
            "the file holds several YAML documents",
            _loc(file, nodes[1].start_mark),
            code="yaml-syntax",
            hint="keep one spec per file",
        )
    _check_expansion(nodes[0], file)
    builder = _Builder(file)
    data = builder.build(nodes[0], (), 0)
    if len(text) <= MAX_KEPT_BYTES:
        _LOADED[file, path, text] = (_copy(data), dict(builder.marks), dict(builder.key_marks))
    while len(_LOADED) > MAX_LOADED:
        _LOADED.pop(next(iter(_LOADED)), None)
    return Source(file=file, data=data, text=text, marks=builder.marks, key_marks=builder.key_marks, path=path)


# Each text loaded lately (with its file name and path, which its locations and `use:` paths name) → its
# tree and locations, kept pristine: a spec built again is read from the same text, and composing it is
# most of `resolve` (EfficientNet-B0 and its libraries: about 2.5 ms). Keyed by the text itself, so an
# edit is never missed. Every Source gets its own copy of the tree (overrides and `--set` change it).
_LOADED: dict[tuple[str, Path | None, str], tuple[Any, dict[YamlPath, Loc], dict[YamlPath, Loc]]] = {}
MAX_LOADED = 64
MAX_KEPT_BYTES = 256 * 1024  # (a spec is a few kB; the store stays under 16 MB of text)


def _copy(data: Any) -> Any:
    """A copy of a loaded tree: new mappings and lists, the same scalars (immutable)."""
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def _check_depth(text: str, file: str) -> None:
    """Refuse deep nesting from the event stream (iterative) before the recursive composer sees it."""
    depth = 0
    # libyaml's event stream when present, read lazily: 20,000 nested lists stop at level 65 here
    # (read whole, libyaml gave up on them and the recursive composer took seconds to fail)
    events = yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    try:
        for event in events:
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(
                        f"nesting deeper than {MAX_DEPTH} levels",
                        _loc(file, event.start_mark),
                        code="yaml-unsafe",
                        hint="flatten the structure, or define a block and refer to it by name",
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.MarkedYAMLError as e:
        if "nesting depth" in str(e.problem) and e.problem_mark is not None:
            # libyaml scans a flow collection's brackets ahead and stops at its own depth limit; the
            # pure-Python composer would take seconds (quadratic) to fail on the same text
            raise SpecError(
                f"nesting deeper than {MAX_DEPTH} levels",
                _loc(file, e.problem_mark),
                code="yaml-unsafe",
                hint="flatten the structure, or define a block and refer to it by name",
            ) from None
        return  # anything else is reported by the composer, with its position and PyYAML's message
    except yaml.YAMLError:
        return


def _check_expansion(root: yaml.Node, file: str) -> None:
    """Refuse documents whose aliases multiply into too many nodes, before expanding any of them."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key not in sizes:
            sizes[key] = 1  # guards against recursive aliases
            if isinstance(node, yaml.MappingNode):
                total = 1 + sum(size(k) + size(v) for k, v in node.value)
            elif isinstance(node, yaml.SequenceNode):
                total = 1 + sum(size(v) for v in node.value)
            else:
                total = 1
            sizes[key] = min(total, MAX_NODES * 1000)
        return sizes[key]

    if size(root) <= MAX_NODES:
        return
    node = root
    while True:  # point at the outermost value that alone is too big and holds an alias
        children = (
            [v for _, v in node.value]
            if isinstance(node, yaml.MappingNode)
            else (node.value if isinstance(node, yaml.SequenceNode) else [])
        )
        big = [c for c in children if size(c) > MAX_NODES]
        if not big:
            break
        node = big[0]
    raise SpecError(
        f"this value expands to more than {MAX_NODES} nodes through anchors and aliases",
        _loc(file, node.start_mark),
        code="yaml-unsafe",
        hint="aliases that multiply each other are refused; write the spec out, or use blocks",
    )


def load_file(path: str | Path, display: str | None = None) -> Source:
    """A spec file: a regular file only (never a device or FIFO), read up to the size limit."""
    from archspec.fileio import read_limited

    p = Path(path)
    name = display or str(path)
    try:
        raw = read_limited(p, MAX_BYTES, "spec file")
    except SpecError as e:
        raise SpecError(e.message, Loc(name, e.line, e.column), code=e.code, hint=e.hint) from None
    return load_text(raw, name, p.resolve())


def dump(spec: Mapping[str, Any]) -> str:
    """A spec given as data, written as the YAML archspec reads it (keys in their order). Errors in a spec
    given as a mapping are located at lines of this text, under the file name ``<dict>``."""
    try:
        return yaml.safe_dump(dict(spec), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as e:  # a value YAML cannot write (an object, a function)
        raise TypeError(f"a spec given as a mapping holds plain data only (str, numbers, lists, mappings): {e}") from None
