"""``archspec.build`` with timm's model arguments: pretrained, num_classes, in_chans, drop_rate,
drop_path_rate, features_only and out_indices, each with timm's meaning.

- ``num_classes=N``: every classifier (the logits' and the aux heads') has N outputs; 0 removes the
  main classifier (the pooled features come out). A spec override (archspec/heads.py).
- ``in_chans=N``: the input has N channels (``input.channels``); the first conv follows.
- ``drop_rate=P``: the dropout before the classifier drops with P; a network without one gets
  ``F.dropout(x, P)`` before its classifier (a forward pre-hook, in training mode only).
- ``drop_path_rate=P``: stochastic depth, the spec's schedule over the blocks scaled so that its
  largest rate is P (ConvNeXt, EfficientNet); a network without stochastic depth refuses P > 0.
- ``pretrained=True``: the weights its reference publishes (archspec/pretrained.py), adapted to
  ``num_classes`` / ``in_chans`` by timm's loader; ``pretrained_cfg_overlay=dict(file=...)``
  loads them from a local file instead, as in timm.
- ``features_only=True``: the stage outputs as a list (archspec/features.py), ``out_indices``
  picking among them; ``model.feature_info`` is timm's FeatureInfo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from archspec.errors import Loc, SpecError


def _rate(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise SpecError(f"{what} must be a probability in [0, 1), got {value!r}", Loc(what, 0, 0), code="override")
    return float(value)


def model_overrides(
    spec: Any, overrides: Mapping[str, Any] | None, num_classes: Any, in_chans: Any, drop_rate: Any, features_only: bool
) -> tuple[dict[str, Any], bool]:
    """The spec overrides timm's arguments stand for; and whether a dropout must be added before the
    classifier (the spec has none there)."""
    from archspec.heads import check_classes, dropout_overrides, head_overrides

    merged = dict(overrides or {})
    if in_chans is not None:
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or not 1 <= in_chans <= 4096:
            raise SpecError(
                f"in_chans must be a whole number from 1 to 4096, got {in_chans!r}", Loc("in_chans", 0, 0), code="override"
            )
        merged["input.channels"] = in_chans
    if num_classes is not None and not features_only:
        merged = head_overrides(spec, merged, check_classes(num_classes))
    add_dropout = False
    if drop_rate is not None and not features_only:
        merged, has = dropout_overrides(spec, merged, _rate(drop_rate, "drop_rate"))
        add_dropout = not has and drop_rate > 0
    return merged, add_dropout


def _classifier_dropout(model: Any, graph: Any, rate: float) -> None:
    import torch.nn.functional as F

    from archspec.heads import heads

    for head in heads(graph):
        if head.output == "logits":
            layer = model.get_submodule(graph.at(head.node).path)

            def drop(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
                return (F.dropout(args[0], rate, module.training), *args[1:])

            layer.register_forward_pre_hook(drop)
            return


def _drop_path(model: Any, rate: float, name: str) -> None:
    from archspec.runtime import DropPath

    layers = [m for m in model.modules() if isinstance(m, DropPath)]
    top = max((m.p for m in layers), default=0.0)
    if rate > 0 and not layers:
        raise SpecError(
            f"drop_path_rate={rate}: {name} has no stochastic depth (no drop_path op) to set",
            Loc(name, 0, 0),
            code="override",
            hint="write drop_path ops into the spec's residual bodies, or leave drop_path_rate out",
        )
    for i, m in enumerate(layers):  # the spec's schedule scaled; a schedule of zeros becomes linear
        m.p = m.p * rate / top if top > 0 else rate * i / max(len(layers) - 1, 1)


def create(
    spec: Any,
    overrides: Mapping[str, Any] | None = None,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
    in_chans: int | None = None,
    drop_rate: float | None = None,
    drop_path_rate: float | None = None,
    features_only: bool = False,
    out_indices: Any = None,
    pretrained_cfg_overlay: Mapping[str, Any] | None = None,
    **build_kwargs: Any,
) -> Any:
    """Build ``spec`` with timm's model arguments (see the module's documentation)."""
    from archspec.building import build_model
    from archspec.hub import attach_save_pretrained
    from archspec.report import report_of

    optimize = build_kwargs.pop("optimize", False)
    if optimize and features_only:
        raise TypeError("build(optimize=True) and features_only=True do not go together: optimize the full network")
    merged, add_dropout = model_overrides(spec, overrides, num_classes, in_chans, drop_rate, features_only)
    model = build_model(spec, merged, **build_kwargs)
    report = report_of(model)
    graph = report.graph
    if add_dropout:
        _classifier_dropout(model, graph, float(drop_rate or 0.0))
    if drop_path_rate is not None:
        _drop_path(model, _rate(drop_path_rate, "drop_path_rate"), report.name)
    if pretrained:
        from archspec.pretrained import load

        classes = 0 if features_only else int(report.output_shape[-1]) if report.output_shape else 0
        model.pretrained_cfg = load(model, report.name, graph, classes, report.input_channels, dict(pretrained_cfg_overlay or {}))
    else:
        model.pretrained_cfg = default_cfg(report, graph)
    model.default_cfg = model.pretrained_cfg
    model.num_classes = 0 if features_only else int(report.output_shape[-1])
    attach_save_pretrained(model, spec, merged)  # the overrides timm's arguments made, too
    if optimize:
        from archspec.inference import optimize as _optimize

        cfg = model.pretrained_cfg
        model = _optimize(model)
        model.pretrained_cfg = model.default_cfg = cfg
        attach_save_pretrained(model, spec, merged, optimized=True)
    if features_only:
        from archspec.features import cut

        features = cut(model, graph, out_indices)
        features.archspec_report = report
        features.pretrained_cfg = model.pretrained_cfg
        features.default_cfg = model.pretrained_cfg
        return features
    return model


def default_cfg(report: Any, graph: Any) -> dict[str, Any]:
    """timm's pretrained config of a network without weights: its input and, for data loaders, the
    normalisation of its reference when it has one (ImageNet's otherwise)."""
    from archspec.pretrained import IMAGENET_MEAN, IMAGENET_STD, REFERENCES, module_names

    first, classifiers = module_names(graph)
    ref = REFERENCES.get(report.name)
    mean = ref.mean if ref is not None and ref.mean else IMAGENET_MEAN
    std = ref.mean if ref is not None and ref.mean else IMAGENET_STD
    h, w = report.input_size
    return {
        "architecture": "archspec_" + report.name,
        "input_size": (report.input_channels, h, w),
        "mean": mean if report.input_channels == 3 else (sum(mean) / 3,) * report.input_channels,
        "std": std if report.input_channels == 3 else (sum(std) / 3,) * report.input_channels,
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "num_classes": int(report.output_shape[-1]) if report.output_shape else 0,
        "first_conv": first,
        "classifier": classifiers,
    }
