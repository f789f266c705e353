"""`interpolate size_of=NAME` — a map resized to the H×W of an earlier value (FPN's top-down path,
DeepLab's and LR-ASPP's final resize): the compiled, optimized and standalone models equal torch's
F.interpolate applied by hand to the same weights, at odd sizes; its shape is the other value's at
every size; wrong names are located errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import archspec
from archspec.errors import SpecError

FPN = """archspec: 1
name: fpn_tiny
input: {channels: 3, size: 33}
network:
  c2: conv2d 8 3x3 s2 p1
  c3: conv2d 16 3x3 s2 p1
  inner3: conv2d 4 1x1
  lateral2: [{from: c2}, conv2d 4 1x1]
  p2: {residual: {shortcut: [{from: inner3}, interpolate size_of=lateral2], body: identity}}
  out: interpolate size_of=input bilinear
"""


def _by_hand(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> torch.Tensor:
    def conv(v: torch.Tensor, at: str, **kw: int) -> torch.Tensor:
        return F.conv2d(v, sd[f"{at}.weight"], sd[f"{at}.bias"], **kw)

    c2 = conv(x, "c2", stride=2, padding=1)
    inner3 = conv(conv(c2, "c3", stride=2, padding=1), "inner3")
    lateral = conv(c2, "lateral2.1")
    p2 = F.interpolate(inner3, size=lateral.shape[-2:], mode="nearest") + lateral
    return F.interpolate(p2, size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_interpolate_to_another_values_size_equals_torch() -> None:
    model = archspec.build(FPN).eval()
    sd = model.state_dict()
    namespace: dict[str, object] = {}
    exec(compile(archspec.compile(FPN), "fpn_tiny.py", "exec"), namespace)
    standalone = namespace["FpnTiny"]().eval()  # type: ignore[operator]
    standalone.load_state_dict(sd, strict=True)
    report = archspec.check(FPN)
    assert report.min_input_size == (1, 1)  # the sum always agrees: no partial merge, no warning
    assert not report.warnings
    p2 = next(r for r in report.rows if r.path == "p2")
    assert p2.shape.at(33, 29) == (4, 17, 15) and p2.shape.formula() == report.rows[0].shape.formula().replace("8", "4")
    with torch.no_grad():
        for h, w in ((1, 1), (33, 29), (6, 11)):
            x = torch.randn(2, 3, h, w)
            expected = _by_hand(x, sd)
            assert tuple(expected.shape[1:]) == report.outputs["logits"].at(h, w)
            torch.testing.assert_close(model(x), expected, rtol=0, atol=1e-6)
            torch.testing.assert_close(standalone(x), expected, rtol=0, atol=1e-6)
            torch.testing.assert_close(archspec.optimize(model)(x), expected, rtol=0, atol=1e-5)
    assert sum(p.numel() for p in model.parameters()) == report.params  # the resize holds no weights


@pytest.mark.parametrize(
    "node, message, column",
    [
        ("interpolate size_of=lateral3", "interpolate size_of= 'lateral3' names no node before this one", 20),
        ("interpolate size_of=p3", "interpolate size_of= 'p3' names no node before this one", 20),  # p3 is written later
        ("[global_avgpool, interpolate size_of=c2]", "needs a C×H×W feature map, got a vector of 4 as its input", 25),
        ("interpolate size_of=c2 nearest align_corners", "align_corners applies to bilinear interpolation only", 8),
    ],
)
def test_wrong_interpolations_are_located_errors(node: str, message: str, column: int) -> None:
    spec = FPN.replace("  out: interpolate size_of=input bilinear", f"  out: {node}\n  p3: conv2d 4 1x1")
    with pytest.raises(SpecError, match=message) as e:
        archspec.check(spec)
    assert (e.value.loc.line, e.value.loc.column) == (10, column), e.value.format()


def test_a_numbered_module_as_size_of_builds_and_resizes_to_it() -> None:
    # IMP's finding: `size_of=1` (an item known only by its index, as the importer writes it) inside a concat
    # branch was an internal error (the short-form writer could not write '1'); it is the value of item 1
    spec = """archspec: 1
name: numbered
input: {channels: 3, size: [15, 13]}
network:
  - conv2d 8 3x3 p1
  - conv2d 8 3x3 s2 p1
  - head: {concat: [{a: conv2d 8 1x1}, {b: [adaptive_avgpool 1x1, {c: conv2d 8 1x1}, interpolate size_of=1 bilinear]}]}
"""
    model = archspec.build(spec).eval()
    sd = model.state_dict()
    x = torch.randn(2, 3, 15, 13)
    y1 = F.conv2d(F.conv2d(x, sd["0.weight"], sd["0.bias"], padding=1), sd["1.weight"], sd["1.bias"], stride=2, padding=1)
    a = F.conv2d(y1, sd["head.a.weight"], sd["head.a.bias"])
    b = F.conv2d(y1.mean((2, 3), keepdim=True), sd["head.b.c.weight"], sd["head.b.c.bias"])
    want = torch.cat([a, F.interpolate(b, size=y1.shape[-2:], mode="bilinear")], 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), want)
