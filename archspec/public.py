"""The public functions that stand beside check and build: render, summary, diff, compile, export.

Each is what the CLI command of the same name does, without the files and the printing: the
commands (archspec/commands/) call into the same modules. Options are keyword-only, as in
``check`` and ``build``. ``archspec.render`` and the others are loaded on first use
(archspec/__init__.py), so ``import archspec`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archspec.pipeline import SpecLike
from archspec.report import MAX_ACTIVATIONS
from archspec.shapes import MAX_PARAMS

if TYPE_CHECKING:
    import graphviz
    from typing_extensions import Unpack

    from archspec.diff import Diff
    from archspec.export import Sizes
    from archspec.render import RenderOptions
    from archspec.summary import Summary


def render(
    spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS, **options: Unpack[RenderOptions]
) -> graphviz.Digraph:
    """The network's diagram (``archspec render``), a graphviz.Digraph: ``.source`` is its DOT text,
    ``.pipe(format="svg")`` draws it, Jupyter shows it. ``options`` are :class:`archspec.render.RenderOptions`
    (block, expand, depth, symbolic, primitives, fold). The interactive page: :func:`render_page`."""
    from archspec.pipeline import shaped_graph
    from archspec.render import render_spec

    resolved, graph, _ = shaped_graph(spec, overrides, max_params)
    return render_spec(graph, resolved, **options)


def render_page(spec: SpecLike, overrides: Mapping[str, Any] | None = None, *, max_params: int = MAX_PARAMS) -> str:
    """The self-contained HTML page ``archspec render -o net.html`` writes (every view, unfoldable)."""
    from archspec.api import analyze
    from archspec.view import page

    report = analyze(spec, overrides, max_params=max_params)
    return page(report.graph, report)


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


def compile(  # noqa: A001
    spec: SpecLike,
    overrides: Mapping[str, Any] | None = None,
    *,
    weights: str | Path | None = None,
    max_params: int = MAX_PARAMS,
) -> str:
    """The standalone PyTorch file of the network (``archspec compile``): one class, plain torch. With
    ``weights`` (a saved state_dict), that file is first checked to load strictly into the network."""
    from archspec.api import analyze
    from archspec.codegen import generate

    graph = analyze(spec, overrides, max_params=max_params).graph
    if weights is not None:
        from archspec.compile import compile_graph
        from archspec.export import load_weights

        load_weights(compile_graph(graph), weights)
    return generate(graph, str(spec) if isinstance(spec, (str, Path)) else "<spec>")


def export(
    spec: SpecLike,
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    *,
    weights: str | Path | None = None,
    weights_from: str | None = None,
    optimize: bool = False,
    max_params: int = MAX_PARAMS,
    max_activations: int = MAX_ACTIVATIONS,
    progress: Callable[[str], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> Sizes | None:
    """Build the spec and export it to ``path`` (``archspec export``: .onnx, .pt2 or .ts by the suffix, or
    the weights alone in .safetensors); the input sizes the exported program takes, where it has them.

    ``weights``: a saved state_dict (or training checkpoint) loaded strictly first; ``weights_from``:
    weights carried from another network (:func:`archspec.transfer`: a file, ``timm:NAME`` or
    ``torchvision:NAME``); ``optimize``: the portable inference rewrites (BN folding, 1×1 fusion; not
    the oneDNN conv+ReLU kernel, which ONNX and TorchScript cannot express, nor memory layout, which
    is the runtime's business). ``progress`` is told each phase as it starts, ``log`` the transfer's table."""
    from archspec.api import build
    from archspec.export import check_activations, load_weights
    from archspec.export import export as write

    tell = progress or (lambda _: None)
    tell("building the network")
    model = build(spec, overrides, max_params=max_params, max_activations=max_activations)
    check_activations(model, max_activations)  # the example batch, before any weights are loaded
    if weights is not None:
        load_weights(model, weights)  # before any rewrite: the file has the spec's keys
    if weights_from is not None:
        from archspec.weights import transfer, weights_source

        table = transfer(weights_source(weights_from), model).table()
        if log is not None:
            log(table)
    if optimize:
        from archspec.inference import optimize as rewrite
        from archspec.report import attach_report, report_of

        optimized = rewrite(model, fuse_act=False, channels_last=False)
        attach_report(optimized, report_of(model))
        model = optimized
    return write(model, path, max_activations, progress=tell)
