"""``affine``: a learned scalar scale and bias, ``scale · x + bias`` (timm's ``LearnableAffineBlock``, the
`use_lab` option of PP-HGNetV2)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from archspec.ops._types import TensorFloat
from archspec.ops.registry import Call, Op, OpParams, Reader, register
from archspec.symbolic import Shape


class AffineParams(OpParams):
    scale: TensorFloat = Field(1.0, description="the value the learned scale starts at (timm's scale_value)")
    bias: TensorFloat = Field(0.0, description="the value the learned bias starts at (timm's bias_value)")


@register
class Affine(Op):
    name = "affine"
    doc = (
        "A learned scale and bias, one number each for the whole tensor: `scale · x + bias`, the two held as "
        "tensors of shape [1] named `scale` and `bias` at the op's path, starting at SCALE (1) and BIAS (0) "
        "(timm's `LearnableAffineBlock`, which PP-HGNetV2 puts after each conv's activation with `use_lab`). "
        "Maps and vectors; 2 parameters; no MACs, as fvcore counts none for elementwise products. "
        "Short form: affine [scale=S] [bias=B]"
    )
    kind = "linear"
    Params = AffineParams
    stateful = True
    constant_init = True
    fresh_output = True
    saved_for_backward = ("in", "w")
    readers = (Reader("timm.models.hgnet.LearnableAffineBlock"), Reader("archspec.runtime.ScalarAffine"))

    def read(self, call: Call) -> dict[str, Any]:
        # timm's block keeps no starting values (its tensors are read as weights); archspec's own layer does
        read = {"scale": float(call.get("scale_value", 1.0)), "bias": float(call.get("bias_value", 0.0))}
        return {k: v for k, v in read.items() if v != AffineParams.model_fields[k].default}

    def infer(self, p: AffineParams, inputs: list[Shape]) -> Shape:
        return inputs[0]

    def param_count(self, p: AffineParams, inputs: list[Shape], out: Shape) -> int:
        return 2

    def module(self, p: AffineParams, inputs: list[Shape], out: Shape, device: Any = None) -> Any:
        from archspec.runtime import ScalarAffine

        return ScalarAffine(p.scale, p.bias, device=device)

    def label(self, p: AffineParams) -> str:
        return "Affine"
