"""Pretrained weights: the ones each zoo network's reference publishes, loaded by that library's own code.

archspec never names a URL: a zoo network's weights are those of the implementation its spec
follows name for name (its reference), fetched and cached by that library — timm's pretrained
configs (Hugging Face Hub or timm's release files, timm's cache) or torchvision's weight enums
(``torch.hub``'s cache, ``$TORCH_HOME/hub/checkpoints``). Both need those libraries installed;
adapting a checkpoint to another ``num_classes`` (the classifier left at its initial weights) or
``in_chans`` (the first conv's weights summed for one channel, repeated and scaled for more) is
timm's ``load_pretrained``, as for timm's own models.

A *pretrained config* is timm's dict (``timm.models.PretrainedCfg`` fields): input size, mean and
std, number of classes, the first conv and the classifiers by module name (found in the IR here, so
that they are the built module's), and where the weights come from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archspec.errors import Loc, SpecError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)  # torchvision's GoogLeNet and Inception-v3 weights expect transform_input's


@dataclass(frozen=True)
class Reference:
    """Where a zoo network's published weights are: ``library`` is "timm" or "torchvision"."""

    library: str
    model: str  # the library's model name (timm: with its default tag)
    kwargs: tuple[tuple[str, Any], ...] = ()  # torchvision: builder arguments the weights are for
    mean: tuple[float, ...] | None = None  # where the weights expect other than the library's own


def _tv(model: str, **kwargs: Any) -> Reference:
    return Reference("torchvision", model, tuple(kwargs.items()))


# zoo network → its reference (the implementation whose module names the spec follows)
REFERENCES: dict[str, Reference] = {
    "inception_v4": Reference("timm", "inception_v4"),
    "inception_resnet_v2": Reference("timm", "inception_resnet_v2"),
    "seresnet50": Reference("timm", "seresnet50"),
    "tf_efficientnet_b0": Reference("timm", "tf_efficientnet_b0"),
    "cspresnet50": Reference("timm", "cspresnet50"),
    "res2net50_26w_4s": Reference("timm", "res2net50_26w_4s"),
    "resnetv2_50x1_bit": Reference("timm", "resnetv2_50x1_bit"),
    "googlenet": Reference("torchvision", "googlenet", (("aux_logits", True),), INCEPTION_MEAN),
    "inception_v3": Reference("torchvision", "inception_v3", (("aux_logits", True),), INCEPTION_MEAN),
    **{f"resnet{d}": _tv(f"resnet{d}") for d in (18, 34, 50, 101, 152)},
    "resnext50_32x4d": _tv("resnext50_32x4d"),
    "mobilenet_v3_large": _tv("mobilenet_v3_large"),
    "densenet121": _tv("densenet121"),
    "shufflenet_v2_x1_0": _tv("shufflenet_v2_x1_0"),
    "efficientnet_b0": _tv("efficientnet_b0"),
    "convnext_tiny": _tv("convnext_tiny"),
    # the members of zoo specs' families (their variants: archspec.library.members)
    **{f"efficientnet_b{i}": _tv(f"efficientnet_b{i}") for i in (1, 2, 3, 4)},
    **{f"densenet{d}": _tv(f"densenet{d}") for d in (161, 169, 201)},
    **{f"shufflenet_v2_{w}": _tv(f"shufflenet_v2_{w}") for w in ("x0_5", "x1_5", "x2_0")},
    **{f"convnext_{size}": _tv(f"convnext_{size}") for size in ("small", "base", "large")},
}
NO_WEIGHTS = {
    "bn_inception": "its reference (pretrainedmodels' BNInception) is neither timm's nor torchvision's",
    "facenet_inception_resnet_v1": "its reference (facenet-pytorch) is neither timm's nor torchvision's",
    "googlenet_paper": "the paper's network has no published weights",
    "inception_resnet_v1": "the paper's network has no published weights",
    "resnet50_fpn": "torchvision publishes the FPN backbone's weights only inside its detectors (fasterrcnn_resnet50_fpn)",
    "deeplabv3_resnet50": "torchvision's published weights carry the aux classifier (aux_loss=True) this spec leaves out",
    "lraspp_mobilenet_v3_large": "loading torchvision's segmentation weights is not wired yet (no download was tested)",
    "unet": "the paper's network has no published weights",
}


def reference(name: str) -> Reference:
    """The reference of zoo network ``name``; a SpecError saying why when it has no weights."""
    if name in REFERENCES:
        return REFERENCES[name]
    why = NO_WEIGHTS.get(name, "it is not one of the zoo's networks (the spec's name decides)")
    raise SpecError(
        f"no pretrained weights for {name!r}: {why}",
        Loc(name, 0, 0),
        code="weights",
        hint="zoo networks with weights: " + ", ".join(sorted(REFERENCES)) + "; or load your own with --weights",
    )


def _needs(module: str, why: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SpecError(f"{why} needs {module} (pip install {module})", Loc(module, 0, 0), code="weights") from None


def module_names(graph: Any) -> tuple[str | None, tuple[str, ...]]:
    """The first conv and the classifiers (main first, then aux heads) by module path, from the IR."""
    from archspec.heads import heads
    from archspec.ir import INPUT

    first = None
    for succ in graph.successors(INPUT):
        record = graph.at(succ)
        if record.op in ("conv2d", "std_conv2d"):  # BiT's first conv is weight-standardised
            first = record.path
            break
    return first, tuple(graph.at(h.node).path for h in heads(graph))


def pretrained_cfg(name: str, graph: Any) -> dict[str, Any]:
    """timm's pretrained config for zoo network ``name`` built as ``graph`` (its first conv and
    classifiers named as in the built module); where the weights are: timm's own config's source, or
    for torchvision a loader (the ``state_dict`` is filled in by :func:`load`)."""
    ref = reference(name)
    first, classifiers = module_names(graph)
    cfg: dict[str, Any] = {"architecture": "archspec_" + name, "first_conv": first, "classifier": classifiers}
    if ref.library == "timm":
        timm = _needs("timm", "pretrained weights")
        source = timm.models.get_pretrained_cfg(ref.model).to_dict()
        keep = ("hf_hub_id", "hf_hub_filename", "url", "file", "input_size", "crop_pct", "mean", "std", "interpolation")
        cfg |= {k: source[k] for k in keep if source.get(k) is not None}
        cfg["num_classes"] = source["num_classes"]
        cfg["tag"] = source.get("tag")
        return cfg
    tv = _needs("torchvision", "pretrained weights")
    weights = tv.models.get_model_weights(ref.model).DEFAULT
    crop = weights.transforms().crop_size[0]
    cfg |= {
        "input_size": (3, crop, crop),
        "mean": ref.mean or IMAGENET_MEAN,
        "std": ref.mean or IMAGENET_STD,
        "num_classes": len(weights.meta["categories"]),
        "tag": str(weights).split(".")[-1].lower(),
        "torchvision_weights": str(weights),
    }
    return cfg


def torchvision_state_dict(name: str) -> dict[str, Any]:
    """The reference's published weights, as torchvision's model builder loads them (download and
    cache by torch.hub, any renaming of old checkpoints by torchvision), read back from its module."""
    ref = reference(name)
    tv = _needs("torchvision", "pretrained weights")
    weights = tv.models.get_model_weights(ref.model).DEFAULT
    try:
        model = tv.models.get_model(ref.model, weights=weights, **dict(ref.kwargs))
    except (OSError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise SpecError(
            f"cannot load torchvision's {weights} for {name}: {type(e).__name__}: {first}",
            Loc(name, 0, 0),
            code="weights",
            hint="torchvision downloads them into $TORCH_HOME/hub/checkpoints; without a network, put the file there",
        ) from None
    return dict(model.state_dict())


SOURCES = ("state_dict", "file", "url", "hf_hub_id")


def _own_cfg(graph: Any, num_classes: int) -> dict[str, Any]:
    """The config of a network whose weights come from elsewhere (a file, a folder, the Hub)."""
    first, classifiers = module_names(graph)
    h, w = graph.net.input.size
    return {
        "architecture": "archspec_" + graph.net.name,
        "first_conv": first,
        "classifier": classifiers,
        "num_classes": num_classes,
        "input_size": (graph.net.input.channels, h, w),
    }


def load(
    model: Any, name: str, graph: Any, num_classes: int, in_chans: int, overlay: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Load zoo network ``name``'s published weights into ``model`` (built as ``graph``), or those
    ``overlay`` points to (``file``, ``state_dict``, timm's ``local-dir`` / Hub source), adapted to
    ``num_classes`` and ``in_chans`` by timm's loader; returns the pretrained config used."""
    timm = _needs("timm", "pretrained weights")
    overlay = dict(overlay or {})
    if any(overlay.get(k) for k in SOURCES) and name not in REFERENCES:
        cfg = _own_cfg(graph, num_classes) | overlay
    else:
        cfg = pretrained_cfg(name, graph) | overlay
        if reference(name).library == "torchvision" and not any(cfg.get(k) for k in SOURCES[:2]):
            cfg["state_dict"] = torchvision_state_dict(name)
    try:
        timm.models.load_pretrained(model, pretrained_cfg=cfg, num_classes=num_classes, in_chans=in_chans)
    except (OSError, RuntimeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        raise SpecError(
            f"cannot load the pretrained weights of {name}: {type(e).__name__}: {first}",
            Loc(name, 0, 0),
            code="weights",
        ) from None
    cfg.pop("state_dict", None)
    return cfg
