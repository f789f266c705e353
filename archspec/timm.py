"""timm's front door: ``import archspec.timm`` registers every zoo network with timm's model registry.

    import archspec.timm, timm
    model = timm.create_model("archspec_inception_v4", pretrained=True, num_classes=10, in_chans=1,
                              drop_rate=0.2, features_only=False)
    name = archspec.timm.register("my_net.yaml")        # any spec by path: "archspec_my_net"

Names: ``archspec_`` + the zoo network's name (``archspec list``; the members of a zoo spec's family
too: ``archspec_efficientnet_b1`` is ``zoo:efficientnet_b0`` built as its variant ``b1``), or + the
spec's ``name:`` for a spec registered by path (``register(path, name=...)`` chooses another;
``register(path, variant=...)`` registers one member of its family). Each takes timm's model
arguments with timm's meanings (archspec/create.py): ``pretrained``, ``num_classes``, ``in_chans``,
``drop_rate``, ``drop_path_rate``, ``features_only``, ``out_indices``, ``pretrained_cfg_overlay``
(``dict(file=...)``: weights from a local file). The model carries ``pretrained_cfg`` (input size,
mean, std, crop, first conv, classifier), so that timm's data configuration, loaders and scripts
treat it as one of theirs.

timm's own scripts (train.py, validate.py, benchmark.py from its repository) import only timm; run
them through this module, which registers the networks first:

    python -m archspec.timm validate.py --model archspec_resnet50 --pretrained /data/imagenet/val
"""

from __future__ import annotations

import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import timm
from timm.models import register_model

from archspec.library import members

PREFIX = "archspec_"


def _entrypoint(spec: str | Path, name: str, variant: str | None = None) -> Callable[..., Any]:
    overrides = {"variant": variant} if variant is not None else None

    def create(pretrained: bool = False, **kwargs: Any) -> Any:
        from archspec.api import build

        given = kwargs.pop("pretrained_cfg", None)  # the network's own config is made from its spec …
        kwargs.pop("cache_dir", None)
        kwargs.pop("pretrained_model_args", None)
        source = given.to_dict() if hasattr(given, "to_dict") else given
        if pretrained and isinstance(source, dict) and source.get("source") in ("local-dir", "hf-hub"):
            # … except where timm read one beside the weights (local-dir:FOLDER, hf-hub:REPO)
            keep = ("source", "file", "hf_hub_id", "hf_hub_filename", "num_classes", "first_conv", "classifier")
            kwargs["pretrained_cfg_overlay"] = {k: source[k] for k in keep if source.get(k) is not None} | dict(
                kwargs.get("pretrained_cfg_overlay") or {}
            )
        return build(spec, overrides, pretrained=pretrained, **kwargs)

    create.__name__ = create.__qualname__ = name
    create.__module__ = __name__
    member = f" (its variant {variant})" if variant is not None else ""
    create.__doc__ = f"archspec's {spec}{member} as a timm model (archspec/create.py: timm's arguments)."
    return create


def register(spec: str | Path, name: str | None = None, variant: str | None = None) -> str:
    """Register ``spec`` (a path or ``zoo:NAME``), or the member ``variant`` of its family, with timm as
    ``name`` (default ``archspec_`` + the network's name); returns the name to give timm.create_model."""
    from archspec.api import check

    if name is None:
        name = PREFIX + check(spec, overrides={"variant": variant} if variant is not None else None).name
    register_model(_entrypoint(spec, name, variant))
    return name


def _register_zoo() -> list[str]:
    registered = []
    known = set(timm.list_models(PREFIX + "*"))
    for network, (spec, variant) in members().items():
        name = PREFIX + network
        if name not in known:
            register_model(_entrypoint("zoo:" + spec, name, variant))
        registered.append(name)
    return registered


ZOO_MODELS = _register_zoo()


def main(argv: list[str] | None = None) -> int:
    """``python -m archspec.timm SCRIPT [ARGS]``: run a timm script with archspec's networks registered."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: python -m archspec.timm SCRIPT.py [ARGS...]  (timm's train.py, validate.py, benchmark.py)")
        return 0 if args else 2
    script = args[0]
    if not Path(script).is_file():
        print(f"error: {script}: no such script", file=sys.stderr)
        return 2
    saved, sys.argv = sys.argv, args
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
