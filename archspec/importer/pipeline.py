"""The import pipeline: trace, convert, recover the branch graph, emit blocks, write YAML.

nn.Module ──torch.fx──▶ Prims (trace.py, convert.py) ──▶ branch graph (structure.py)
          ──▶ named tree, blocks with parameters (emit.py) ──▶ YAML (yaml_writer.py)
training-mode trace ──▶ the heads the eval-mode forward never calls, as aux: (aux.py)
──▶ checked against the module (verify.py)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch.fx as fx
import torch.nn as nn

from archspec.importer.aux import aux_heads, reached, unreached
from archspec.importer.built import classes, instances, number_split_blocks, stateless_paths
from archspec.importer.convert import Converter, fuse_composites, readers
from archspec.importer.dag import recover
from archspec.importer.emit import Emitter, make_blocks, spec_defaults
from archspec.importer.inline import inline_once
from archspec.importer.optional import merge_level
from archspec.importer.refnames import RefNames, module_outputs
from archspec.importer.sources import module_name
from archspec.importer.structure import Chain, Ref, Step, paths, steps, walk
from archspec.importer.trace import ImportRefused, Prim, trace
from archspec.importer.verify import verify
from archspec.importer.yaml_writer import Renderer, comment, dump, spec_name
from archspec.ops import REGISTRY


@dataclass
class Imported:
    """The spec text and what it took to get there."""

    text: str
    name: str
    blocks: int
    params: int
    aux: dict[str, int] = field(default_factory=dict)  # aux head → its place among the training-mode outputs
    values_read: bool = False  # a value of the module's tensors is written (a layer scale's start): not from `meta`

    @property
    def lines(self) -> int:
        return self.text.count("\n")


def to_spec(
    model: nn.Module, *, name: str | None = None, source: str | None = None, input_size: tuple[int, int] = (224, 224)
) -> Imported:
    """The spec text of a module, unverified: see :func:`import_module`.

    The module is traced without source lines first; a refusal traces it again with them, so that
    the error names the model's line (torch records them at a good part of the trace's cost)."""
    try:
        return _to_spec(model, name, source, input_size, stack_traces=False)
    except ImportRefused:
        pass
    return _to_spec(model, name, source, input_size, stack_traces=True)


def _to_spec(model: nn.Module, name: str | None, source: str | None, input_size: tuple[int, int], stack_traces: bool) -> Imported:
    built = True
    if isinstance(model, fx.GraphModule):  # built by archspec (or traced already): its graph is the truth
        gm = model
    elif getattr(model, "archspec_report", None) is not None and hasattr(model, "inference"):
        gm = getattr(model, "inference")()  # noqa: B009 - archspec-built with aux heads: the eval graph (the heads: aux_heads)
    else:
        built = False
        was_training = model.training
        model.eval()
        try:
            gm = trace(model, stack_traces, frozenset(readers().modules))
        finally:
            model.train(was_training)
    _propagate_shapes(gm, model, input_size)
    conv = Converter(gm, built=built)
    prims = conv.run()
    if conv.output is None:
        raise ImportRefused("the traced module has no output")
    stateless_paths(model, prims)
    same_padding(prims)
    fuse_composites(prims, conv.output)
    modules = module_outputs(gm, conv.value)
    tree: Chain = recover(prims, conv.output, [v for _, v, _ in conv.outputs] or None, _module_order(model), built, modules)
    channels = _input_channels(model, prims)
    heads = aux_heads(model, gm, prims, stack_traces)
    unreached(model, reached(prims) | {p for h in heads for p in paths(h.chain)})

    emitter = Emitter(classes(model), instances(model))
    emitter.dag = any(isinstance(x, Ref) for x in walk(tree))
    network = emitter.as_list(tree, "")
    outputs = RefNames(network, prims, modules).run([(k, v) for k, v, _ in conv.outputs])
    for h in heads:
        h.emitted = emitter.as_list(h.chain, h.graph.name)
    blocks = make_blocks(emitter.instances, merge_level)
    flat = not blocks  # a Caffe-style port, its conv → bn → act runs one per line (yaml_writer)
    if emitter.plain is not None:
        number_split_blocks(blocks)
    else:  # the spec archspec built keeps its own blocks
        blocks = inline_once([network, *(h.emitted for h in heads)], blocks)
    ops = [o for o in _all_ops(tree)] + [o for h in heads for o in _all_ops(h.chain)]
    defaults = spec_defaults(ops)
    r = Renderer(defaults, flat=flat)
    cls = type(model).__name__
    title = spec_name(name or _snake_name(cls))
    doc: dict[str, Any] = {
        "archspec": 1,
        "name": title,
        "input": {"channels": channels, "size": [int(input_size[0]), int(input_size[1])]},
    }
    if defaults:
        doc["defaults"] = defaults
    if blocks:
        doc["blocks"] = {b.name: r.block(b) for b in blocks}
    doc["network"] = r.node(network, {}, [0], top=True)
    if outputs:  # [out] where each output is named by its path
        doc["outputs"] = list(outputs) if all(k == v for k, v in outputs.items()) else outputs
    if heads:
        doc["aux"] = {
            h.graph.name: {
                "tap": h.graph.tap,
                **({"weight": h.graph.weight} if h.graph.weight is not None else {}),
                "head": r.node(h.emitted, {}, [0]),
            }
            for h in heads
        }
    header = [
        f"# {title}: imported by `archspec import` from {comment(source or cls)}",
        f"# ({comment(module_name(type(model)) + '.' + cls)}). Module names follow the source, so its "
        "state_dict loads with strict=True.",
    ]
    text = "\n".join(header) + "\n" + dump(doc)
    params = sum(p.numel() for p in model.parameters())
    values = any(REGISTRY[p.op].parameter_only for p in prims if p.op in REGISTRY)
    return Imported(text, title, len(blocks), params, {h.graph.name: h.graph.output for h in heads}, values)


SAME_PADDED = ("conv2d", "std_conv2d")  # the ops whose padding may be `same`


def same_padding(prims: list[Prim]) -> None:
    """In a network that pads some conv `same` at run time (timm's Conv2dSame: a TensorFlow port, built
    with ``padding='same'`` throughout), a conv whose padding is what `same` gives at stride 1 (half its
    odd span on each side; timm makes such a conv a plain nn.Conv2d) is written `same` too, as it was
    created and as the zoo's tf_efficientnet_b0 writes it. The same module either way; elsewhere
    (torchvision's ResNet: `3x3 p1`) padding stays in pixels."""
    convs = [p for p in prims if p.op in SAME_PADDED]
    if not any(p.params.get("padding") == "same" for p in convs):
        return
    for p in convs:
        kernel, stride, dilation, padding = (p.params.get(k) for k in ("kernel", "stride", "dilation", "padding"))
        if stride != (1, 1) or not isinstance(padding, tuple) or padding == (0, 0):
            continue
        if isinstance(kernel, tuple) and isinstance(dilation, tuple):
            spans = [dilation[i] * (kernel[i] - 1) for i in (0, 1)]
            if all(s % 2 == 0 and padding[i] == s // 2 for i, s in enumerate(spans)):
                p.params["padding"] = "same"


def _module_order(model: nn.Module) -> dict[str, int]:
    """Each module path's place in the model's module tree (the order a DAG's parts are written in)."""
    return {name: i for i, (name, _) in enumerate(model.named_modules())}


def _input_channels(model: nn.Module, prims: list[Prim]) -> int:
    """The input's channels: a network archspec built knows them; else those of the first layer that says
    (a conv's in_channels, over the block² a space_to_depth before it multiplied them by: TResNet's stem), else 3."""
    report = getattr(model, "archspec_report", None)
    if report is not None:
        return int(report.input_channels)
    modules = dict(model.named_modules())
    moved = 1
    for p in prims:
        if p.op == "space_to_depth":
            moved *= int(p.params["block"]) ** 2
        if p.path and p.stateful or p.op == "conv":
            module = modules.get(f"{p.path}.conv" if p.op == "conv" else str(p.path))
            if module is not None and isinstance(getattr(module, "in_channels", None), int):
                return int(module.in_channels) // moved if int(module.in_channels) % moved == 0 else int(module.in_channels)
    return 3


def _propagate_shapes(gm: fx.GraphModule, model: nn.Module, input_size: tuple[int, int]) -> None:
    """A channel split (x.chunk(2, 1)) needs the channel count: run the traced module once on zeros
    (eval mode) so torch records every value's shape. Only when there is one."""
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    splits = {"chunk", "split"}
    modules = dict(gm.named_modules())
    if not any(
        str(getattr(n.target, "__name__", n.target)) in splits for n in gm.graph.nodes if n.op in ("call_method", "call_function")
    ) and not any(type(modules.get(str(n.target))) is torch.nn.LayerNorm for n in gm.graph.nodes if n.op == "call_module"):
        return  # a LayerNorm needs the rank of its input: a vector's last axis, or a map's (refused)
    conv = next((m for m in gm.modules() if isinstance(m, torch.nn.Conv2d)), None)
    channels = conv.in_channels if conv is not None else 3
    device = next((p.device for p in gm.parameters()), torch.device("cpu"))  # `meta`: shapes without compute
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(torch.zeros(1, channels, *input_size, device=device))
    except Exception as e:  # noqa: BLE001 - a model that does not run is one located message
        cause = e.__cause__ or e
        what = str(cause).splitlines()[0][:200] if str(cause) else type(cause).__name__
        raise ImportRefused(
            f"the module does not run on a {channels}×{input_size[0]}×{input_size[1]} input to find its channel counts: {what}",
            hint="give the input size with --input-size H W",
        ) from None
    finally:
        model.train(was_training)


def _snake_name(cls: str) -> str:
    return cls.lower()


def _all_ops(node: Chain) -> list[Step]:
    return steps(node)


def import_module(
    model: nn.Module,
    *,
    name: str | None = None,
    source: str | None = None,
    input_size: tuple[int, int] | int | None = None,
    check: bool = True,
) -> str:
    """The spec (YAML text) of a PyTorch module: its branch graph, with blocks, repeats and the
    module's own names. With ``check`` (the default) the spec is built, the module's state_dict
    loaded into it strictly and both run on one random input before the text is returned."""
    size = input_size_of(model, input_size)
    result = to_spec(model, name=name, source=source, input_size=size)
    if check:
        verify(model, result.text, size, aux=result.aux)
    return result.text


def input_size_of(model: nn.Module, input_size: tuple[int, int] | int | None) -> tuple[int, int]:
    if isinstance(input_size, int):
        return (input_size, input_size)
    if input_size is not None:
        return (int(input_size[0]), int(input_size[1]))
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    if isinstance(cfg, dict) and isinstance(cfg.get("input_size"), (tuple, list)) and len(cfg["input_size"]) == 3:
        return (int(cfg["input_size"][1]), int(cfg["input_size"][2]))
    if type(model).__name__ == "Inception3":
        return (299, 299)
    return (224, 224)


__all__ = ["Imported", "import_module", "input_size_of", "to_spec"]
