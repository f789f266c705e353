"""The public functions that stand beside check and build: render, summary, diff, compile, export.

Each is what the CLI command of the same name does, without the files and the printing: the
commands (archspec/commands/) call into the same modules. Options are keyword-only, as in
``check`` and ``build``. ``archspec.render`` and the others are loaded on first use
(archspec/__init__.py), so ``import archspec`` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archspec.pipeline import SpecLike
from archspec.report import MAX_ACTIVATIONS
from archspec.shapes import MAX_PARAMS

if TYPE_CHECKING:
    import graphviz

    from archspec.diff import Diff
    from archspec.export import Sizes
    from archspec.summary import Summary


def render(
    spec: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    block: str | None = None,
    expand: bool = False,
    depth: int | None = None,
    symbolic: bool = False,
    primitives: bool = False,
    fold: bool = True,
    max_params: int = MAX_PARAMS,
) -> graphviz.Digraph:
    """The network's diagram (``archspec render``), a graphviz.Digraph: ``.source`` is its DOT text,
    ``.pipe(format="svg")`` draws it, Jupyter shows it. The interactive page: :func:`render_page`."""
    from archspec.render import render_spec

    return render_spec(
        spec,
        overrides,
        block=block,
        expand=expand,
        depth=depth,
        symbolic=symbolic,
        primitives=primitives,
        fold=fold,
        max_params=max_params,
    )


def render_page(spec: str | Path, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS) -> str:
    """The self-contained HTML page ``archspec render -o net.html`` writes (every view, unfoldable)."""
    from archspec.view import page_spec

    return page_spec(spec, overrides, max_params=max_params)


def summary(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS, batch: int = 1
) -> Summary:
    """Counts per block and per op, totals and activation memory (``archspec summary``)."""
    from archspec.summary import summarize

    return summarize(spec, overrides, max_params=max_params, batch=batch)


def diff(
    a: SpecLike,
    b: SpecLike | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    overrides_a: Mapping[str, Any] | None = None,
    overrides_b: Mapping[str, Any] | None = None,
    max_params: int = MAX_PARAMS,
) -> Diff:
    """What changes from spec ``a`` to spec ``b`` (``archspec diff``); without ``b``, from ``a`` with
    ``overrides_a`` to ``a`` with ``overrides_b``. ``overrides`` apply to both sides."""
    from archspec.diff import diff as compare
    from archspec.summary import summarize

    side_a = {**(overrides or {}), **(overrides_a or {})}
    side_b = {**(overrides or {}), **(overrides_b or {})}
    return compare(summarize(a, side_a, max_params=max_params), summarize(a if b is None else b, side_b, max_params=max_params))


def compile(spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS) -> str:  # noqa: A001
    """The standalone PyTorch file of the network (``archspec compile``): one class, plain torch."""
    from archspec.api import analyze
    from archspec.codegen import generate

    graph = analyze(spec, overrides, max_params=max_params).graph
    return generate(graph, str(spec) if isinstance(spec, (str, Path)) else "<spec>")


def export(
    spec: SpecLike,
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    weights: str | Path | None = None,
    max_params: int = MAX_PARAMS,
    max_activations: int = MAX_ACTIVATIONS,
) -> Sizes | None:
    """Build the spec (with ``weights``, a saved state_dict, if given) and export it to ``path`` (``archspec
    export``: .onnx, .pt2 or .ts by the suffix); the input sizes the exported program takes, where it has them."""
    from archspec.api import build
    from archspec.export import check_activations, load_weights
    from archspec.export import export as write

    model = build(spec, overrides, max_params=max_params, max_activations=max_activations)
    check_activations(model, max_activations)
    if weights is not None:
        load_weights(model, weights)
    return write(model, path, max_activations)
