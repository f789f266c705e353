"""Inception-ResNet v1 (the paper's), v1 as facenet-pytorch builds it, and v2 as timm builds it.

Truth: the reference modules (timm, facenet-pytorch) with random init, their weights copied into
ours via state_dict with strict=True; for the paper's v1, the shapes and the parameter count in
/work/shared/reference/inception-resnet-v1-paper.md (arXiv 1602.07261, Figures 7, 10–15, Table 1).
"""

from __future__ import annotations

import pytest
import torch
from torch.fx.passes.shape_prop import ShapeProp

import archspec
from tests.paths import SPECS
from tests.reference_macs import reference_macs
from tests.references import perturb_bn


def _same_logits(spec: str, reference: torch.nn.Module, sizes: list[int], seed: int) -> None:
    torch.manual_seed(seed)
    perturb_bn(reference, seed)
    reference.eval()
    model = archspec.build(SPECS / spec).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    report = archspec.check(SPECS / spec)
    assert report.params == sum(p.numel() for p in reference.parameters())
    for size in sizes:
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            ours = model(x)
        theirs, macs = reference_macs(reference, x)
        if (size, size) == report.input_size:
            assert report.macs == macs
        assert ours.shape == theirs.shape == (1, 1000)
        assert theirs.std() > 1e-2  # logits far from zero, so the tolerance below means something
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


# ---- Inception-ResNet-v2 = timm inception_resnet_v2 -------------------------------------------


def test_inception_resnet_v2_equals_timm() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model("inception_resnet_v2", pretrained=False)
    # the smallest legal size and the default one
    _same_logits("inception_resnet_v2.yaml", reference, [75, 299], seed=1)


def test_inception_resnet_v2_residual_scales_and_last_block() -> None:
    """Scales 0.17/0.10/0.20 on the 10/20/9 repeated blocks; the tenth C block has scale 1, no ReLU."""
    graph = archspec.check(SPECS / "inception_resnet_v2.yaml").graph
    assert graph is not None
    adds = {d.path: d.params.scale for _, d in graph.records() if d.op == "add"}
    for stage, scale, count in (("repeat", 0.17, 10), ("repeat_1", 0.10, 20), ("repeat_2", 0.20, 9)):
        got = {p: s for p, s in adds.items() if p.startswith(stage + ".")}
        assert got == {f"{stage}.{i}.add": scale for i in range(count)}
    assert adds["block8.add"] == 1.0
    (after,) = graph.succ[next(n for n, d in graph.records() if d.path == "block8.add")]
    assert graph.at(after).op != "relu"


# ---- Inception-ResNet-v1 (facenet-pytorch) ---------------------------------------------------


def test_facenet_inception_resnet_v1_equals_facenet_pytorch() -> None:
    facenet = pytest.importorskip("facenet_pytorch")
    torch.manual_seed(0)
    reference = facenet.InceptionResnetV1(classify=True, num_classes=1000)
    _same_logits("facenet_inception_resnet_v1.yaml", reference, [160, 299], seed=2)


def test_v1_specs_share_their_blocks() -> None:
    """The paper's v1 and facenet's v1 use the blocks of one library file, not copies."""
    from archspec.language.resolve import resolve

    for name in ("inception_resnet_v1.yaml", "facenet_inception_resnet_v1.yaml"):
        resolved = resolve(SPECS / name)
        assert not resolved.spec.blocks
        for block in ("block35", "block17", "block8", "mixed_6a", "mixed_7a"):
            assert resolved.blocks[block].source.path == (SPECS / "blocks" / "inception_resnet_v1.yaml").resolve()


# ---- Inception-ResNet-v1 as the paper draws it ------------------------------------------------

# (module path, C, H, W) at 299×299: the output column of the table in
# /work/shared/reference/inception-resnet-v1-paper.md (paper Figs. 14, 10, 7, 11, 12, 13, 15);
# the stem's intermediate sizes are worked out by hand from the ops that table lists
# ("V" = unpadded: (n − 3)/s + 1; padded 3×3 and 1×1 convs keep the size).
PAPER_V1 = [
    ("conv2d_1a", 32, 149, 149),  # 3×3 conv 32 /2 V: (299 − 3)/2 + 1
    ("conv2d_2a", 32, 147, 147),  # 3×3 conv 32 V
    ("conv2d_2b", 64, 147, 147),  # 3×3 conv 64 (padded)
    ("maxpool_3a", 64, 73, 73),  # 3×3 max pool /2 V
    ("conv2d_3b", 80, 73, 73),  # 1×1 conv 80
    ("conv2d_4a", 192, 71, 71),  # 3×3 conv 192 V
    ("conv2d_4b", 256, 35, 35),  # 3×3 conv 256 /2 V — the table's stem output 35×35×256
    *[(f"repeat_1.{i}", 256, 35, 35) for i in range(5)],  # 5 × Inception-ResNet-A
    ("mixed_6a", 896, 17, 17),  # Reduction-A: 17×17×896
    *[(f"repeat_2.{i}", 896, 17, 17) for i in range(10)],  # 10 × Inception-ResNet-B
    ("mixed_7a", 1792, 8, 8),  # Reduction-B: 8×8×1792
    *[(f"repeat_3.{i}", 1792, 8, 8) for i in range(5)],  # 5 × Inception-ResNet-C
    ("avgpool_1a", 1792, None, None),  # average pooling
    ("dropout", 1792, None, None),  # dropout, keep 0.8
    ("logits", 1000, None, None),  # linear 1000
]
PAPER_V1_PARAMS = 22_756_328  # the reference file, with BN after every non-linear conv


def _expected(c: int, h: int | None, w: int | None) -> tuple[int, ...]:
    return (c,) if h is None else (c, h, w)


def test_paper_v1_shapes_by_check() -> None:
    report = archspec.check(SPECS / "inception_resnet_v1.yaml")
    got = [(r.path, r.shape.at(299, 299)) for r in report.rows]
    assert got == [(p, _expected(c, h, w)) for p, c, h, w in PAPER_V1]
    assert report.params == PAPER_V1_PARAMS
    assert report.output_shape == (1000,)


def test_paper_v1_shapes_when_run() -> None:
    """The compiled model, run at 299×299, produces every tensor of the paper's table."""
    model = archspec.build(SPECS / "inception_resnet_v1.yaml").eval()
    assert sum(p.numel() for p in model.parameters()) == PAPER_V1_PARAMS
    graph = model.archspec_report.graph
    units = {u.path: u.output for u in graph.net.units}
    ShapeProp(model).propagate(torch.randn(1, 3, 299, 299))
    runtime = {n.name: tuple(n.meta["tensor_meta"].shape) for n in model.graph.nodes if "tensor_meta" in n.meta}
    for path, c, h, w in PAPER_V1:
        assert runtime[units[path]] == (1, *_expected(c, h, w)), path
    # the MACs `check` reports are those of the Conv2d and Linear modules the model really runs
    assert reference_macs(model, torch.randn(1, 3, 299, 299))[1] == model.archspec_report.macs


def test_paper_v1_blocks_as_the_figures_draw_them() -> None:
    """Scales 0.17/0.10/0.20 and a ReLU after every sum; BN only inside convs, none after a sum;
    the 1×1 conv closing each residual branch is linear (bias, no BN, no ReLU); dropout 0.2."""
    graph = archspec.check(SPECS / "inception_resnet_v1.yaml").graph
    assert graph is not None
    nodes = dict(graph.records())
    scales = {"repeat_1": 0.17, "repeat_2": 0.10, "repeat_3": 0.20}
    adds = [n for n, d in nodes.items() if d.op == "add"]
    assert len(adds) == 20
    for n in adds:
        assert nodes[n].params.scale == scales[nodes[n].path.split(".")[0]]
        (after,) = graph.succ[n]
        assert nodes[after].op == "relu"
        closing = [p for p in graph.pred[n] if nodes[p].op == "conv2d"]
        assert len(closing) == 1 and nodes[closing[0]].params.bias
        assert nodes[closing[0]].path.endswith(".conv2d")
    for n, d in nodes.items():
        if d.op == "bn":
            (src,) = graph.pred[n]
            assert nodes[src].op == "conv2d" and not nodes[src].params.bias
            assert d.params.eps == 0.001
    (drop,) = [d for d in nodes.values() if d.op == "dropout"]
    assert drop.params.p == pytest.approx(0.2)
