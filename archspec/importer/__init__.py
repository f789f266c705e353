"""``archspec.import_module(model)``: a PyTorch module written back as an archspec spec.

    nn.Module ──torch.fx──▶ Prims (trace.py, convert.py) ──▶ branch graph (structure.py: chains,
              concats, residuals, gates; dense layers as nested concats)
              ──▶ named tree, blocks with parameters (emit.py) ──▶ YAML (yaml_writer.py)
    training-mode trace ──▶ the heads the eval-mode forward never calls, as aux: (aux.py)
    the whole: pipeline.py; checked against the module: verify.py

The spec keeps the module's names, so ``model.state_dict()`` loads into ``archspec.build(spec)``
with ``strict=True``; ``import_module`` checks exactly that, and that both give the same
output on a random input, before returning — what cannot be expressed is an
:class:`~archspec.importer.trace.ImportRefused` error, never a silently different network.
"""

from __future__ import annotations

from archspec.importer.pipeline import Imported, import_module, input_size_of, to_spec
from archspec.importer.trace import ImportRefused
from archspec.importer.verify import VERIFY_SIZE, verify

__all__ = ["import_module", "to_spec", "verify", "input_size_of", "Imported", "ImportRefused", "VERIFY_SIZE"]
