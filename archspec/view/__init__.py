"""The interactive page of ``archspec render -o net.html``: one self-contained HTML file.

Graphviz lays out every view the page can show (the same drawings as ``render``'s SVG output);
Python decides which views exist and what every box means, the small script ``page.js`` (next to
this file, no library) swaps views, pans, zooms, searches and shows a box's numbers.

Views are keyed by the set of containers drawn open (stages, block instances, aux heads). The
page holds the network view (all closed), each chain of containers opened one inside the other (a
stage, a block in it, a block in that: so any block unfolds in place, at any depth), every
top-level one open, and everything open; each is laid out once (a :class:`archspec.render.Layout`),
and Graphviz runs on them side by side. Opening a second block beside an open one shows the
smallest held view that has both open.

Every string that comes from a spec (labels, names, file names) reaches the page only through
Graphviz's SVG (which escapes XML) or through the page's data, JSON packed as gzip in base64
(:func:`packed`: no ``<`` or ``&`` can appear), inside a ``<script>`` element the browser does not
run: spec text can neither end a script nor open a tag, and the script inserts it as text or
parses it as XML, never as HTML. Nothing here imports torch.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import os
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import graphviz

from archspec.ir import INPUT, OpGraph
from archspec.render import Layout, Scopes, draw
from archspec.report import Report

_COMMENT = re.compile(r"<!--.*?-->\n?", re.S)
_TITLE = re.compile(r"<title>[^<]*</title>\n?")
_GEOMETRY = re.compile(r'( (?:points|d|x|y|width|height|viewBox|transform)=")([^"]*)"')
_NUMBER = re.compile(r"-?\d+\.\d+")
MAX_VIEWS = 400  # a network with more instance chains than this keeps only the shallowest ones


def _asset(name: str) -> str:
    return resources.files("archspec.view").joinpath(name).read_text(encoding="utf-8")


def packed(value: Any) -> str:
    """The page's data: JSON, gzip-compressed (the views repeat each other) and base64-encoded, which
    holds no ``<`` or ``&``, so it can neither end its script nor open a tag. The page's script
    unpacks it with the browser's ``DecompressionStream``. Byte-identical for the same data."""
    raw = json.dumps(value, separators=(",", ":")).encode("ascii")  # a lone surrogate (a file name) is written \\udcff
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def unpacked(text: str) -> Any:
    """The data :func:`packed` wrote (for tests and tools reading a page)."""
    return json.loads(gzip.decompress(base64.b64decode(text)))


class _Ids:
    """Stable SVG ids for box keys (``b0``, ``b1``…), clusters (``c…``) and edges (``e…``)."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def __getitem__(self, key: str) -> str:
        if key not in self.ids:
            prefix = "c" if key.startswith("cluster:") else "e" if key.startswith("edge:") else "b"
            self.ids[key] = f"{prefix}{len(self.ids)}"
        return self.ids[key]


class _Page:
    def __init__(self, graph: OpGraph, report: Report) -> None:
        self.graph = graph
        self.report = report
        self.h, self.w = report.input_size
        self.ids = _Ids()
        self.boxes: dict[str, dict[str, Any]] = {}  # svg id -> what the box is
        self.index: dict[str, dict[str, Any]] = {}  # module path -> where to find it
        self.unit_locs = {u.path: u.loc for u in graph.net.units}
        self.views: dict[str, dict[str, Any]] = {}
        self.scopes = Scopes.of(graph)
        self.chains: dict[tuple[str, ...], str] = {}  # open set -> the one container its last opened one holds

    # ---- views ---------------------------------------------------------------------------------
    def layouts(self) -> dict[tuple[str, ...], Layout]:
        """Open sets to lay out, each laid out once: none, every chain of nested containers (a stage,
        a block in it, a block in that…), every top-level one open, everything open."""
        base = Layout(self.graph, open=(), scopes=self.scopes)
        every: set[str] = set()
        top: set[str] = set()
        for frames in set(self.scopes.frames.values()):
            for i, f in enumerate(frames):
                path = base.first.get(f.path, f.path)
                every.add(path)
                if i == 0 or (i == 1 and frames[0].kind == "stage"):
                    top.add(path)
        done: dict[tuple[str, ...], Layout] = {(): base}
        queue: list[tuple[str, ...]] = [()]
        while queue and len(done) < MAX_VIEWS:
            state = queue.pop(0)
            view = done[state]
            for g in view.groups.values():
                inside = {f.path for f in g.frames} == set(state)  # chains: open within the innermost open block
                child = tuple(sorted(state + (g.key,)))
                if g.kind in ("block", "aux", "stage") and inside and child not in done and len(done) < MAX_VIEWS:
                    done[child] = opened = Layout(self.graph, open=child, scopes=self.scopes)
                    queue.append(child)
                    inner = [x for x in opened.groups.values() if x.frames and x.frames[-1].path == g.key]
                    if len(inner) == 1 and inner[0].kind in ("block", "stage"):
                        self.chains[child] = inner[0].key  # a stage of one folded run: unfolding it opens the run too
        for extra in (tuple(sorted(top)), tuple(sorted(every))):
            if extra not in done:
                done[extra] = Layout(self.graph, open=extra, scopes=self.scopes)
        return done

    def add_view(self, state: tuple[str, ...], view: Layout, svg: str, ids: _IdMap) -> None:
        for key in view.groups:
            sid = self.ids[key]
            if sid not in self.boxes:
                self.boxes[sid] = self.describe(view, key)
        for path in view.open or ():
            cid = self.ids["cluster:" + path]
            # an open instance inside a folded run (layer3.2.se while layer3.1 ×5 is drawn) has no box
            if cid not in self.boxes and view.members(path):
                self.boxes[cid] = self.describe_instance(view, path)
        edges = {}
        for (tail, head), e in view.edges.items():
            eid = ids.edge_ids.get((tail, head))
            if eid is not None:
                edges[eid] = {"shape": e.shape.text(self.h, self.w), "formula": e.shape.formula(), "shortcut": e.skip}
        self.views["|".join(state)] = {"open": list(state), "svg": svg, "edges": edges}
        if state in self.chains:
            self.views["|".join(state)]["chain"] = self.chains[state]
        self.index_view(view, state)

    # ---- what boxes are ------------------------------------------------------------------------
    def _loc(self, node: str) -> str:
        loc = self.graph.at(node).loc
        return f"{loc.file}:{loc.line}"

    def _output(self, members: list[str]) -> str:
        inside = set(members)
        leaving = [n for n in members if any(s not in inside for s in self.graph.succ[n])]
        return (leaving or members)[-1]

    def _numbers(self, members: list[str], count: int) -> dict[str, Any]:
        params = sum(self.graph.at(n).param_count for n in members)
        macs = sum(self.graph.at(n).mac_count for n in members)
        out = self.graph.at(self._output(members)).shape if members else None
        return {
            "params": params,
            "macs": macs,
            "count": count,
            "params_total": params * count,
            "macs_total": macs * count,
            "shape": out.text(self.h, self.w) if out is not None else "",
            "formula": out.formula() if out is not None else "",
        }

    def describe(self, view: Layout, key: str) -> dict[str, Any]:
        g = view.groups[key]
        d: dict[str, Any] = {"label": g.label, "kind": g.kind, "key": key}
        if g.note:
            d["note"] = g.note
        if g.kind == "io":
            d.update({"path": "", "loc": "", "count": 1})
            if g.members:
                d.update(self._numbers(g.members, 1))
            return d
        if g.kind in ("block", "aux", "stage"):
            members = view.members(key)
            stage = self.scopes.stages.get(key)
            paths = stage.instances if stage is not None else view.repeats.get(key, [key])
            d.update(self._numbers(members, 1 if stage is not None else len(paths)))
            d.update(
                {
                    "path": key,
                    "instances": paths,
                    "open": key,
                    "block": g.block,
                    "loc": self.instance_loc(key, members),
                    "ops": len({self.graph.at(n).origin for n in members}),
                }
            )
            return d
        first = g.members[0]
        record = self.graph.at(first)
        path = record.origin if key.startswith("op.") else record.path
        instances = self.repeat_paths(view, first, path)
        d.update(self._numbers(g.members, len(instances)))
        d.update({"path": path, "loc": self._loc(first), "text": record.text, "instances": instances})
        return d

    def describe_instance(self, view: Layout, path: str) -> dict[str, Any]:
        members = view.members(path)
        stage = self.scopes.stages.get(path)
        paths = view.repeats.get(path, [path])
        f = next(fr for n in members for fr in view.frames[n] if fr.path == path)
        d = {
            "label": f.label,
            "kind": "cluster",
            "key": "cluster:" + path,
            "path": path,
            "instances": stage.instances if stage is not None else paths,
            "fold": path,
            "block": f.name,
            "loc": self.instance_loc(path, members),
        }
        if f.kind == "block" and path in self.scopes.notes:
            d["note"] = self.scopes.notes[path]
        d.update(self._numbers(members, len(paths)))
        return d

    def instance_loc(self, path: str, members: list[str]) -> str:
        loc = self.unit_locs.get(path)
        if loc is not None:
            return f"{loc.file}:{loc.line}"
        return self._loc(members[0]) if members else ""  # a nested instance: where its first op is written

    def repeat_paths(self, view: Layout, node: str, path: str) -> list[str]:
        """Module paths a box inside a folded run stands for: ``features.6.branch0`` … ``features.9.branch0``."""
        for f in view.frames[node]:
            paths = view.repeats.get(f.path)
            if paths and path.startswith(f.path + "."):
                return [p + path[len(f.path) :] for p in paths]
        return [path]

    # ---- search --------------------------------------------------------------------------------
    def index_view(self, view: Layout, state: tuple[str, ...]) -> None:
        """Map every module path to the box that shows it, preferring a box of exactly that path."""
        for node in self.scopes.order:
            record = self.graph.at(node)
            if record.op == INPUT:
                continue
            target = view.resolve(node)
            key = view.of.get(target)
            if key is None:
                continue
            sid = self.ids[key]
            own: str = self.boxes[sid].get("path") or ""
            candidates = [record.path, record.origin] + [f.path for f in view.frames[node]]
            for path in candidates:
                old = self.index.get(path)
                if not path or (old is not None and old["rank"][0] == 0):
                    continue  # views come fewest open first: a box of exactly this path is not bettered
                drawn = _canonical(view, path)
                exact = drawn == own
                if key.startswith("op.") and path == record.path and record.path != record.origin:
                    exact = False  # features.6.branch0.conv is inside the box of features.6.branch0
                # else the smallest box holding it (repeat_1.13.branch1.2.conv: its op's box, not the ×20 box)
                holds = own != "" and (drawn == own or drawn.startswith(own + "."))
                rank = (0 if exact else 1, -len(own) if holds else 0, len(state))
                if old is None or rank < tuple(old["rank"]):
                    self.index[path] = {"view": "|".join(state), "box": sid, "rank": list(rank)}
        for path in view.open or ():
            cid = self.ids["cluster:" + path]
            for p in view.repeats.get(path, [path]):
                old = self.index.get(p)
                rank = (0, -len(path), len(state))
                if old is None or rank < tuple(old["rank"]):
                    self.index[p] = {"view": "|".join(state), "box": cid, "rank": list(rank)}

    def data(self) -> dict[str, Any]:
        r = self.report
        return {
            "name": r.name,
            "file": r.file,
            "input": [r.input_channels, self.h, self.w],
            "params": r.params,
            "macs": r.macs,
            "min_input_size": list(r.min_input_size),
            "views": self.views,
            "boxes": self.boxes,
            "index": {p: {"view": v["view"], "box": v["box"]} for p, v in sorted(self.index.items())},
        }


def _canonical(view: Layout, path: str) -> str:
    """``path`` as the drawn first instance of its run names it (``features.8.branch0`` → ``features.6.branch0``)."""
    changed = bool(view.first)
    while changed:
        changed = False
        for inst, first in view.first.items():
            if path == inst or path.startswith(inst + "."):
                path, changed = first + path[len(inst) :], True
                break
    return path


class _IdMap(Mapping[str, str]):
    """The ids ``layout`` asks for: boxes and clusters from the page's table, edges numbered per view."""

    def __init__(self, ids: _Ids) -> None:
        self._ids = ids
        self.edge_ids: dict[tuple[str, str], str] = {}

    def __getitem__(self, key: str) -> str:
        if key.startswith("edge:"):
            tail, head = key[5:].split("\0")
            return self.edge_ids.setdefault((tail, head), f"e{len(self.edge_ids)}")
        return self._ids[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key != "@legend"

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._ids.ids)

    def __len__(self) -> int:
        return len(self._ids.ids)


def page(graph: OpGraph, report: Report) -> str:
    """The whole HTML page of a checked spec (``analyze``'s graph and report)."""
    p = _Page(graph, report)
    views = p.layouts()
    ids = {state: _IdMap(p.ids) for state in views}
    # one `dot` process per view, side by side and beside this one drawing the next: the largest first
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        svgs = {
            state: pool.submit(_svg, draw(views[state], ids[state]))
            for state in sorted(views, key=lambda s: -len(views[s].groups))
        }
        for state, view in views.items():  # fewest open first: the search index prefers those
            p.add_view(state, view, svgs[state].result(), ids[state])
    title = f"{report.name} — archspec"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>\n{_asset('page.css')}</style>\n</head>\n<body>\n{_body(report)}"
        f'<script type="application/octet-stream" id="archspec-data" data-encoding="gzip+base64">{packed(p.data())}</script>\n'
        f"<script>\n{_asset('page.js')}</script>\n</body>\n</html>\n"
    )


def _svg(dot: graphviz.Digraph) -> str:
    """Graphviz's SVG less what the page does not need: comments and titles (they repeat every node's
    name; the page shows its own tooltips), the font (the page's style sets it) and coordinates
    finer than a tenth of a point."""
    svg = dot.pipe(format="svg").decode("utf-8")
    svg = _TITLE.sub("", _COMMENT.sub("", svg[svg.index("<svg") :]))
    svg = svg.replace(' font-family="Helvetica,sans-Serif"', "")
    return _GEOMETRY.sub(lambda m: m.group(1) + _NUMBER.sub(_round, m.group(2)) + '"', svg)


def _round(m: re.Match[str]) -> str:
    text = f"{float(m.group(0)):.1f}"
    text = text[:-2] if text.endswith(".0") else text
    return "0" if text == "-0" else text


def _body(report: Report) -> str:
    h, w = report.input_size
    return (
        "<header>\n"
        f"<h1>{html.escape(report.name)}</h1>\n"
        f'<span class="facts">input {report.input_channels}×{h}×{w} · {report.params:,} parameters · '
        f"{report.macs / 1e9:.3f} GMACs · from {html.escape(report.file)}</span>\n"
        "<nav>\n"
        '<input id="search" type="search" placeholder="find an op or module path" autocomplete="off" '
        'aria-label="find an op or module path">\n'
        '<button id="fold-all" type="button">fold all</button>\n'
        '<button id="open-all" type="button">unfold all</button>\n'
        '<button id="fit" type="button">fit</button>\n'
        '<button id="zoom-in" type="button" aria-label="zoom in">+</button>\n'
        '<button id="zoom-out" type="button" aria-label="zoom out">−</button>\n'
        '</nav>\n<ul id="results" hidden></ul>\n'
        "</header>\n"
        '<main>\n<div id="stage"><div id="canvas" tabindex="0"></div>'
        '<div id="minimap" hidden title="overview: click or drag to move"></div></div>\n'
        '<aside id="info"><p class="hint">Hover or click a box for its numbers; double-click a block to '
        "unfold it, its frame's title to fold it. Wheel or arrow keys to scroll, Ctrl+wheel (or pinch) "
        "or +/− to zoom, 0 to fit, drag to pan.</p></aside>\n"
        '</main>\n<div id="tip" role="tooltip" hidden></div>\n'
    )


__all__ = ["packed", "page", "unpacked"]
