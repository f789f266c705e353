"""The compiled model's forward written straight from its steps, the fx graph built only when asked.

``compile.build_fx_graph`` decides the forward's steps and records them on a :class:`Recorder` —
the part of ``torch.fx.Graph``'s building API it uses (``create_node``, ``placeholder``,
``call_function``, ``call_method``, ``erase_node``, ``output``) — instead of on a real graph. From
the record:

- :meth:`Recorder.source` writes the forward's Python source, character for character what
  ``fx.Graph.python_code`` writes for the graph of the same steps: the same names (fx's rule for
  making a name unique, :class:`Names`), arguments spelled as fx spells them, and a value set to
  ``None`` after its last use;
- :meth:`Recorder.to_fx` builds that graph, node for node (the same calls in the same order, so
  the same names).

:func:`lazy_graph_module` makes the model a ``torch.fx.GraphModule`` whose forward is that source
and whose ``graph`` is built from the record the first time anything reads it (passes, export,
pickling, ``copy.deepcopy``, ``print_readable``). Building a network's fx graph and generating its
code cost as much as a third of a small network's whole build; most models never need the graph.
A record holding something this writer does not know how fx would print (see :class:`Unwritable`)
is compiled through fx as before.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import keyword
import linecache
import math
import re
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
import torch.nn as nn


class Unwritable(Exception):
    """The record holds an argument or a function whose spelling in fx's code this module does not
    write itself (an operator, a builtin, a tensor, an enum...): the caller compiles through fx."""


# ---- names: fx's rule for a unique Python name, so the names here are the ones fx would choose ----------
_NAME = re.compile(r"^([a-zA-Z_][0-9a-zA-Z_]*?)(?:_(\d+))?$")
_NOT_IN_NAME = re.compile("[^0-9a-zA-Z_]+")
_CAMEL = re.compile(r"(?<=[a-z])([A-Z])")
# names the generated code reads as globals besides the functions it calls (fx registers them first)
_CODE_GLOBALS: dict[str, Any] = {"inf": math.inf, "nan": math.nan, "NoneType": type(None), "torch": torch, "device": torch.device}
_RESERVED_TOO = ("fx_pytree", "pytree")  # two more names fx's code generation takes for itself
_TAKEN: dict[str, object] = {k: object() for k in keyword.kwlist}  # a keyword is never a name
_TAKEN.update(vars(builtins))  # nor a builtin's name, unless it names that builtin
_TAKEN.update(_CODE_GLOBALS)
_TAKEN.update({k: object() for k in _RESERVED_TOO})


class Names:
    """Unique Python names in one function: a candidate is cleaned into an identifier and, when it is
    taken (or shadows a builtin or a keyword), numbered ``base_1``, ``base_2``...; an object (a
    global) keeps the first name it was given."""

    def __init__(self, splits: dict[str, tuple[str, str | None, str]] | None = None) -> None:
        self.used: set[str] = set()
        self.count: dict[str, int] = {}
        self.of: dict[int, tuple[object, str]] = {}  # id(obj) → (obj, its name)
        self.splits = {} if splits is None else splits  # candidate → (base, number, cleaned candidate)

    def create(self, candidate: str, obj: object | None) -> str:
        if obj is not None and id(obj) in self.of:
            return self.of[id(obj)][1]
        split = self.splits.get(candidate)
        if split is None:
            split = self.splits[candidate] = _split(candidate)
        base, number, candidate = split
        if number is None or candidate in self.used:
            n = self.count.get(base, 0)
            if _TAKEN.get(candidate, obj) is not obj:
                n += 1
                candidate = f"{base}_{n}"
        else:
            n = int(number)
        while candidate in self.used:
            n += 1
            candidate = f"{base}_{n}"
        self.used.add(candidate)
        self.count[base] = n
        if obj is not None:
            self.of[id(obj)] = (obj, candidate)
        return candidate


def _split(candidate: str) -> tuple[str, str | None, str]:
    """A candidate made an identifier, and split into its base and its number (``relu_2``: relu, 2)."""
    match = _NAME.match(candidate)
    if match is None:
        candidate = _NOT_IN_NAME.sub("_", candidate) or "_unnamed"
        if candidate[0].isdigit():
            candidate = "_" + candidate
        match = _NAME.match(candidate)
        assert match is not None
    return match.group(1), match.group(2), candidate


def _default_name(target: Any) -> str:
    """The name fx gives a node created without one: its function's or method's name in snake case."""
    if callable(target):
        name = target.__name__
    else:
        name = str(target)
        if name.startswith("__") and name.endswith("__"):
            name = name[2:-2]
    return _CAMEL.sub(r"_\1", name).lower()


# ---- the record ------------------------------------------------------------------------------------------
class Value:
    """One recorded node: what ``fx.Node`` holds that the compiler reads back (name, target, args, meta)."""

    __slots__ = ("op", "target", "args", "kwargs", "name", "candidate", "meta", "erased")

    def __init__(self, op: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any], name: str, candidate: str) -> None:
        self.op, self.target, self.args, self.kwargs = op, target, args, kwargs
        self.name, self.candidate = name, candidate  # the name now; what fx was asked for when it was made
        self.meta: dict[str, Any] = {}
        self.erased = False

    def __repr__(self) -> str:  # as fx.Node's: its name (a dict of values prints as fx prints it)
        return self.name


def _inputs(arg: Any, into: dict[Value, None]) -> None:
    """The values an argument reads, in fx's order (depth first, a dict by its values)."""
    if isinstance(arg, Value):
        into.setdefault(arg)
    elif isinstance(arg, (tuple, list)):
        for a in arg:
            _inputs(a, into)
    elif isinstance(arg, dict):
        for a in arg.values():
            _inputs(a, into)


class Recorder:
    """Records the forward's nodes as ``fx.Graph`` would make them, to write or build later."""

    def __init__(self) -> None:
        self.log: list[Value] = []  # every node made, erased ones included (their names stay taken)
        self.names = Names()
        self.result: Any = None
        self.owning_module: nn.Module | None = None
        self._source: tuple[str, dict[str, Any], dict[int, int | None]] | None = None  # written once recorded

    # the part of fx.Graph's API that compile.build_fx_graph uses
    def create_node(
        self,
        op: str,
        target: Any,
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> Value:
        candidate = name if name is not None else _default_name(target)
        value = Value(op, target, args or (), kwargs or {}, self.names.create(candidate, None), candidate)
        self.log.append(value)
        self._source = None
        return value

    def placeholder(self, name: str) -> Value:
        return self.create_node("placeholder", name, name=name)

    def call_function(self, fn: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Value:
        return self.create_node("call_function", fn, args, kwargs)

    def call_method(self, method: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Value:
        return self.create_node("call_method", method, args, kwargs)

    def erase_node(self, value: Value) -> None:
        value.erased = True
        self._source = None

    def output(self, result: Any) -> None:
        self.names.create("output", None)  # fx's output node takes this name
        self.result = result
        self._source = None

    def lint(self) -> None:
        """(fx.Graph.lint: the record is checked where it is built into a graph.)"""

    @property
    def nodes(self) -> list[Value]:
        return [v for v in self.log if not v.erased]

    # ---- the graph ---------------------------------------------------------------------------------------
    def to_fx(self) -> fx.Graph:
        """The fx graph of the record: the same nodes made in the same order (hence the same names)."""
        g = fx.Graph()
        env: dict[Value, fx.Node] = {}

        def arg(a: Any) -> Any:
            if isinstance(a, Value):
                return env[a]
            if isinstance(a, tuple):
                return tuple(arg(x) for x in a)
            if isinstance(a, list):
                return [arg(x) for x in a]
            if isinstance(a, dict):
                return {k: arg(x) for k, x in a.items()}
            return a

        for v in self.log:
            node = g.create_node(v.op, v.target, arg(v.args), arg(v.kwargs), v.candidate)
            if node.name != v.name:
                node.name = v.name  # as compile.build_fx_graph renames it
            node.meta.update(v.meta)
            env[v] = node
        for v in reversed(self.log):
            if v.erased:
                g.erase_node(env[v])
        g.output(arg(self.result))
        g.lint()
        return g

    # ---- the source --------------------------------------------------------------------------------------
    def source(self) -> tuple[str, dict[str, Any], dict[int, int | None]]:
        """The forward's source as fx writes it for :meth:`to_fx`'s graph, its globals and its line map
        (line → node index, as ``GraphModule._lineno_map``). Raises :class:`Unwritable`. Written once for a
        finished record (the forwards of one kept record share it: none of them changes it)."""
        if self._source is None:
            self._source = _Writer(self.nodes, self.result, self.names.splits).write()
        return self._source


def _reads(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[Value, None]:
    """The values a node reads, in fx's order (its arguments, then its keywords' values)."""
    into: dict[Value, None] = {}
    for a in args:
        if type(a) is Value:
            into[a] = None  # (a value read twice keeps its first place)
        elif isinstance(a, (tuple, list, dict)):
            _inputs(a, into)
    for a in kwargs.values():
        if type(a) is Value or isinstance(a, (tuple, list, dict)):
            _inputs(a, into)
    return into


def _target(base: str, target: str) -> str:
    """``self.a.b``, with ``getattr(x, "0")`` for a part that is not an identifier."""
    for part in target.split("."):
        base = f"{base}.{part}" if part.isidentifier() else f'getattr({base}, "{part}")'
    return base


_TORCH_MODULE_PATTERN = re.compile(r"^torch(?:\.(?!_dynamo\.|_inductor\.)[^.]+)*$")


@functools.lru_cache(maxsize=256)
def _is_torch_module(module: str) -> bool:
    """Whether fx's code names a function of this module by its dotted path (``torch`` is a global)."""
    return _TORCH_MODULE_PATTERN.fullmatch(module) is not None


class _Writer:
    """fx's code generation for the record's nodes. Like fx it names things afresh, in the order the
    code first mentions them: the globals fx always defines, then each line's function (a global)
    and the value it assigns; a node's name is the candidate it asks for (``Value.name``)."""

    def __init__(self, nodes: list[Value], result: Any, splits: dict[str, tuple[str, str | None, str]]) -> None:
        self.nodes, self.result = nodes, result
        self.names = Names(splits)
        self.printed: dict[Value, str] = {}
        self.glob: dict[str, Any] = {}
        for name in (*_CODE_GLOBALS, *_RESERVED_TOO):
            obj = _CODE_GLOBALS.get(name, _TAKEN[name])
            if self.names.create(name, obj) in _CODE_GLOBALS:
                self.glob[name] = obj

    def write(self) -> tuple[str, dict[str, Any], dict[int, int | None]]:
        nodes = self.nodes
        reads = [_reads(v.args, v.kwargs) for v in nodes]
        out_reads = _reads((self.result,), {})
        users: dict[Value, int] = dict.fromkeys(nodes, 0)
        for r in [*reads, out_reads]:
            for v in r:
                users[v] += 1
        last: dict[Value, list[Value]] = {}  # a node → the values whose last reader it is
        seen: set[Value] = set(out_reads)
        for v, r in zip(reversed(nodes), reversed(reads), strict=True):
            for i in r:
                if i not in seen:
                    seen.add(i)
                    last.setdefault(v, []).append(i)
        free: list[str] = []
        lines: list[str] = []
        line_of: list[int | None] = []
        for index, v in enumerate(nodes):
            if v.op == "placeholder":
                free.append(v.target)
                if v.target != self.name(v):
                    lines.append(f"{self.name(v)} = {v.target}")
                    line_of.append(index)
                continue
            text = self.line(v)
            dead = last.get(v, [])
            if not users[v]:
                dead = [*dead, v]
            if dead:
                text += ";  " + " = ".join([self.printed[d] for d in dead] + ["None"])
            lines.append(text)
            line_of.append(index)
        lines += [f"return {self.repr(self.result)}", ""]
        line_of += [len(nodes), len(nodes)]
        body = "\n".join("    " + line for line in lines)
        src = f"\n\n\ndef forward({', '.join(['self', *free])}):\n{body}"
        return src, self.glob, {i + 1: n for i, n in enumerate(line_of)}

    def name(self, v: Value) -> str:
        printed = self.printed.get(v)
        if printed is None:
            printed = self.printed[v] = self.names.create(v.name, v)
        return printed

    def line(self, v: Value) -> str:
        if v.op == "call_function":
            fn = self.function(v.target)  # (named before the value, as fx does)
            return f"{self.name(v)} = {fn}({self.args(v.args, v.kwargs)})"
        if v.op == "call_method":
            return f"{self.name(v)} = {_target(self.repr(v.args[0]), v.target)}({self.args(v.args[1:], v.kwargs)})"
        if v.op == "call_module":
            return f"{self.name(v)} = {_target('self', v.target)}({self.args(v.args, v.kwargs)})"
        if v.op == "get_attr":
            return f"{self.name(v)} = {_target('self', v.target)}"
        raise Unwritable(f"a {v.op} node")

    def args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        return ", ".join([*(self.repr(a) for a in args), *(f"{k} = {self.repr(a)}" for k, a in kwargs.items())])

    def repr(self, arg: Any) -> str:
        """An argument as fx's code spells it."""
        if isinstance(arg, Value):
            return self.name(arg)
        if isinstance(arg, tuple):
            if hasattr(arg, "_fields"):
                raise Unwritable("a named tuple")
            return f"({self.repr(arg[0])},)" if len(arg) == 1 else "(" + ", ".join(self.repr(a) for a in arg) + ")"
        if isinstance(arg, list):
            return "[" + ", ".join(self.repr(a) for a in arg) + "]"
        if arg is None or isinstance(arg, (bool, int, float, str, torch.dtype, torch.memory_format)):
            return repr(arg)
        if isinstance(arg, dict) and all(isinstance(k, str) and isinstance(a, Value) for k, a in arg.items()):
            return "{" + ", ".join(f"{k!r}: {self.name(a)}" for k, a in arg.items()) + "}"  # as repr(dict)
        raise Unwritable(f"an argument of type {type(arg).__name__}")

    def function(self, fn: Any) -> str:
        """How the code names a function: a torch function by its dotted path (``torch`` is a global),
        anything else by a global named after its path (``archspec_runtime_check_input``)."""
        name = getattr(fn, "__name__", None)
        if not isinstance(name, str) or name == "<lambda>" or getattr(builtins, name, None) is fn:
            raise Unwritable("a builtin or unnamed function")
        module = getattr(fn, "__module__", None)
        if module is None:
            module = next((m.__name__ for m in (torch, torch.nn.functional) if getattr(m, name, None) is fn), None)
            if module is None:
                raise Unwritable(f"a function without a module: {name}")
            is_torch = True
        else:
            is_torch = _is_torch_module(module)
        if module in ("_operator", "operator") or hasattr(fn, "_boxed_arg_indices") or isinstance(fn, torch._ops.OpOverload):
            raise Unwritable("an operator")
        if getattr(torch.Tensor, name, None) is fn or module.startswith("torch._ops") or name == "segment_reduce":
            raise Unwritable("a function fx spells its own way")
        qualified = f"{module}.{name}"
        if is_torch:
            return qualified
        global_name = self.names.create(qualified, fn)
        self.glob[global_name] = fn
        return global_name


# ---- the module ------------------------------------------------------------------------------------------
_serial = itertools.count()


class LazyGraphModule(fx.GraphModule):
    """A ``torch.fx.GraphModule`` whose ``graph`` is built from its :class:`Recorder` when first read.

    Its forward is compiled from :meth:`Recorder.source` — the code fx itself would generate — at
    once. Reading ``graph`` (or fx's ``_graph``) builds the graph and leaves the forward as it is:
    its code is that graph's code already. Pickling, deep copies and ``torch.package`` build the
    graph first, as they serialise it through fx.
    """

    __jit_unused_properties__ = ["graph", "_boxed_call", "_graph"]  # TorchScript compiles none of them

    @property
    def _graph(self) -> fx.Graph:
        state = self.__dict__
        graph = state.get("_graph")
        record = state.pop("_archspec_record", None)
        if record is not None:
            graph = record.to_fx()
            graph.owning_module = self
            state["_graph"] = graph
        assert graph is not None
        return graph

    @_graph.setter
    def _graph(self, graph: fx.Graph) -> None:
        self.__dict__.pop("_archspec_record", None)
        self.__dict__["_graph"] = graph

    def __reduce__(self) -> Any:
        self._graph  # noqa: B018 (built: fx pickles the module through its graph)
        return super().__reduce__()

    def __reduce_package__(self, exporter: Any) -> Any:
        self._graph  # noqa: B018
        return super().__reduce_package__(exporter)

    def __deepcopy__(self, memo: dict[int, Any]) -> fx.GraphModule:
        self._graph  # noqa: B018
        return super().__deepcopy__(memo)


# The compiled code of each forward's source (with its network's class name) → the code and the file name
# its lines are registered under; kept across builds, as Python keeps a module's compiled code: compiling
# the source is most of what writing the forward costs, and a network built again has the same source.
# Bounded: the oldest go (a code object is about the size of its source).
_CODE: dict[tuple[str, str], Any] = {}
MAX_CODE = 64
# File name → how many live forwards have their source in ``linecache`` under it: the entry is removed
# when the last of them is freed, so building thousands of networks does not grow ``linecache``.
_LIVE: dict[str, int] = {}


def _code(src: str, class_name: str) -> Any:
    code = _CODE.get((class_name, src))
    if code is None:
        key = f"<archspec {class_name}.forward #{next(_serial)}>"
        code = _CODE[class_name, src] = compile(src, key, "exec", dont_inherit=True)
        while len(_CODE) > MAX_CODE:
            _CODE.pop(next(iter(_CODE)), None)
    return code


def _register(src: str, key: str) -> None:
    """Put ``src`` in ``linecache`` under ``key`` (for inspect.getsource, which TorchScript reads, and tracebacks)."""
    count = _LIVE.get(key, 0)
    if not count or key not in linecache.cache:  # (linecache.clearcache() may have dropped it)
        linecache.cache[key] = (len(src), None, src.splitlines(True), key)
    _LIVE[key] = count + 1


def _release(key: str) -> None:
    count = _LIVE.pop(key, 1) - 1
    if count:
        _LIVE[key] = count
    else:
        linecache.cache.pop(key, None)


def lazy_graph_module(record: Recorder, class_name: str) -> LazyGraphModule:
    """An empty ``LazyGraphModule`` (no children yet) whose forward is ``record``'s source and whose graph
    is ``record``'s, built when first read. Raises :class:`Unwritable` (before making anything)."""
    src, glob, line_map = record.source()
    empty = fx.Graph()
    empty.output(None)
    gm = LazyGraphModule(nn.Module(), empty, class_name=class_name)  # fx's own set-up, on an empty graph
    code = _code(src, class_name)
    namespace = dict(glob)
    exec(code, namespace)  # noqa: S102 (our own code: names and repr()s)
    forward = namespace["forward"]
    _register(src, code.co_filename)
    weakref.finalize(forward, _release, code.co_filename)  # its source leaves linecache with the last such forward
    type(gm).forward = forward
    gm.__dict__.update(_code=src, _lineno_map=line_map, _prologue_start=4, _archspec_record=record)
    gm.__dict__.pop("_graph", None)
    return gm
