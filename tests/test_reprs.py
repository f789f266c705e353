"""How archspec's objects print: a Report's repr is one line and its str a table; a built model's
modules print as torchvision's do (``(layer1): Sequential``, ``(0): Bottleneck``); the notebook draws
the network folded. Independent truth: torchvision's own model and its published counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import archspec

SPECS = Path(__file__).resolve().parent.parent / "specs"


def test_report_repr_is_one_line_with_torchvisions_counts() -> None:
    tv = pytest.importorskip("torchvision")
    report = archspec.check("zoo:resnet18")
    model = tv.models.resnet18()
    params = sum(p.numel() for p in model.parameters())
    gmacs = tv.models.ResNet18_Weights.IMAGENET1K_V1.meta["_ops"]  # torchvision's published GFLOPS (multiply-adds)
    assert repr(report) == f"<Report resnet18: {params:,} params, {gmacs:.3g} GMACs, min 1×1>"
    torch = pytest.importorskip("torch")
    assert model.eval()(torch.randn(1, 3, 1, 1)).shape == (1, 1000)  # torchvision's resnet18 takes 1×1 too
    assert "\n" not in repr(archspec.check(SPECS / "inception_v4.yaml"))


def test_report_str_is_the_block_table() -> None:
    text = str(archspec.check(SPECS / "inception_v4.yaml"))
    lines = text.splitlines()
    assert len(lines) == 1 + 2 + 25 + 2  # title, head and rule, a row per block (the paper's 25), rule and total
    assert lines[0].startswith("inception_v4 (") and "minimum 75×75" in lines[0]
    assert re.match(r"Reduction-A +features\.10 +1024×17×17 ", lines[3 + 10])  # Fig. 9's output at 299×299
    assert lines[-1].split()[:3] == ["total", "1000", "42,679,816"]  # timm's inception_v4 (tests/test_inception_v4.py)
    assert max(map(len, lines)) < 120


@pytest.mark.slow  # builds a full-size ResNet-50 twice (archspec's and torchvision's)
def test_print_model_names_modules_as_torchvision_does() -> None:
    tv = pytest.importorskip("torchvision")
    ours = str(archspec.build(SPECS / "resnet50.yaml"))
    theirs = str(tv.models.resnet50())

    def containers(text: str) -> list[str]:  # "(layer1): Sequential(" lines: modules that hold others
        return [m.group(0) for m in re.finditer(r"\(\w+\): \w+\($", text, re.M)]

    assert containers(ours) == containers(theirs)
    assert "(layer1): Sequential(" in ours and "(0): Bottleneck(" in ours and "Module(" not in ours


def test_notebook_draws_the_network_folded() -> None:
    import xml.etree.ElementTree as ET

    text = archspec.check(SPECS / "densenet121.yaml")._repr_html_()
    if "<svg" not in text:
        pytest.skip("Graphviz's dot is not installed")
    svg = ET.fromstring(text[text.index("<svg") : text.index("</svg>") + 6])
    ns = "{http://www.w3.org/2000/svg}"
    boxes = [" ".join(t.text or "" for t in g.iter(ns + "text")) for g in svg.iter(ns + "g") if "box" in (g.get("class") or "")]
    assert len(boxes) <= 20  # torchview at depth 2 groups DenseNet-121 by dense block; so does the notebook
    assert "denseblock3: Dense layer ×24" in boxes  # Table 1 of the paper: 24 layers in the third dense block
