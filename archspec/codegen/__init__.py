"""OpGraph → a standalone Python module: one ``nn.Module`` class that imports only torch.

The stage reuses the compiler's own products — the module tree (``build_modules``) and the
torch.fx graph (``build_fx_graph``) — and writes them out as source a person would write. One
purpose per file:

- ``text.py``: how things are spelled — literals (spec text only through ``ascii()``/``repr()``),
  identifiers, class names, the layout of long expressions;
- ``calls.py``: torch objects as source — a layer as its constructor call (read back from its
  attributes and checked by rebuilding it), a function call, the layer the registry names for a
  stateless op (``Op.layer``);
- ``plan.py``: what a class is made of — shared classes for identical block instances, helper
  classes for composite ops (``conv`` = Conv2d → BatchNorm → ReLU), layers for stateless ops at
  numbered slots;
- ``modules.py``: ``__init__``, the module tree as nested ``nn.Sequential``/``nn.ModuleDict``
  expressions, so every ``state_dict`` key is the spec's path;
- ``forward.py``: ``forward``, straight-line code with variables named after branches, reused when
  a value dies, auxiliary heads under ``if self.training:``;
- ``file.py``: the file — header, imports, the input guard (``runtime.check_input``'s own text),
  the classes.
"""

from archspec.codegen.file import generate
from archspec.codegen.text import standalone_class_name

__all__ = ["generate", "standalone_class_name"]
