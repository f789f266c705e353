"""torch.hub entry points: every network of archspec's zoo, by its name.

    model = torch.hub.load("OWNER/archspec", "inception_v4", pretrained=False)
    model = torch.hub.load("/path/to/archspec", "resnet18", source="local", pretrained=True, num_classes=10)

Each takes archspec.build's timm arguments (pretrained, num_classes, in_chans, drop_rate,
drop_path_rate, features_only, out_indices) and returns the compiled network.
"""

from collections.abc import Callable
from typing import Any

dependencies = ["torch", "yaml", "pydantic", "networkx", "sympy"]


def _entry(name: str) -> Callable[..., Any]:
    def load(pretrained: bool = False, **kwargs: Any) -> Any:
        import archspec

        if pretrained or kwargs:
            return archspec.build("zoo:" + name, pretrained=pretrained, **kwargs)
        return archspec.build("zoo:" + name)

    load.__name__ = load.__qualname__ = name
    load.__doc__ = f"archspec's zoo:{name} (archspec list); pretrained=True loads its reference's published weights."
    return load


def _zoo() -> list[str]:
    from archspec.library import names

    return names()


for _name in _zoo():
    globals()[_name] = _entry(_name)
