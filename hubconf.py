"""torch.hub entry points: every network of archspec's zoo, by its name (the members of a zoo spec's
family too: ``efficientnet_b1`` is ``zoo:efficientnet_b0`` built as its variant ``b1``).

    model = torch.hub.load("OWNER/archspec", "inception_v4", pretrained=False)
    model = torch.hub.load("/path/to/archspec", "resnet18", source="local", pretrained=True, num_classes=10)

Each takes archspec.build's timm arguments (pretrained, num_classes, in_chans, drop_rate,
drop_path_rate, features_only, out_indices) and returns the compiled network.
"""

from collections.abc import Callable, Mapping
from typing import Any

dependencies = ["torch", "yaml", "pydantic", "networkx", "sympy"]


def _entry(name: str, spec: str, variant: str | None) -> Callable[..., Any]:
    overrides = {"variant": variant} if variant is not None else None

    def load(pretrained: bool = False, **kwargs: Any) -> Any:
        import archspec

        if pretrained or kwargs:
            return archspec.build("zoo:" + spec, overrides, pretrained=pretrained, **kwargs)
        return archspec.build("zoo:" + spec, overrides)

    member = f" as its variant {variant}" if variant is not None else ""
    load.__name__ = load.__qualname__ = name
    load.__doc__ = f"archspec's zoo:{spec}{member} (archspec list); pretrained=True loads its reference's published weights."
    return load


def _zoo() -> Mapping[str, tuple[str, str | None]]:
    from archspec.library import members

    return members()


for _name, (_spec, _variant) in _zoo().items():
    globals()[_name] = _entry(_name, _spec, _variant)
