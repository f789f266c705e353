"""GoogLeNet, two ways: torchvision's variant (specs/googlenet.yaml) against torchvision itself,
and the paper's network (specs/googlenet_paper.yaml) against the paper's Table 1.

The two specs share one Inception block (specs/blocks/googlenet.yaml); their differences come
from `defaults:` (BatchNorm vs bias) and block parameters (3×3 vs 5×5).
"""

from __future__ import annotations

import pytest
import torch

import archspec
from archspec.language.resolve import resolve
from tests.paths import SPECS
from tests.references import assert_same_eval_logits, no_dropout, perturb_bn

torchvision = pytest.importorskip("torchvision")

TV = SPECS / "googlenet.yaml"
PAPER = SPECS / "googlenet_paper.yaml"


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    ref = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    assert ref.transform_input is False  # weights=None: inputs reach conv1 unchanged, as in the spec
    perturb_bn(ref)
    ours = archspec.build(TV)
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def test_torchvision_googlenet_params() -> None:
    ref = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    assert archspec.check(TV).params == sum(p.numel() for p in ref.parameters()) == 13_004_888


def test_torchvision_googlenet_eval_logits(pair) -> None:
    assert_same_eval_logits(*pair, TV, 224)


def test_torchvision_googlenet_training_outputs(pair) -> None:
    ref, ours = pair
    ref_state = {k: v.clone() for k, v in ref.state_dict().items()}
    no_dropout(ref, ours)  # dropout off on both: everything else of training mode (batch statistics) stays
    ref.train(), ours.train()
    x = torch.randn(2, 3, 160, 160)  # any size >= 15 works; smaller keeps the test quick
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert isinstance(got, dict) and set(got) == {"logits", "aux1", "aux2"}
    assert (expected.logits - got["logits"]).abs().max().item() <= 1e-5
    assert (expected.aux_logits1 - got["aux1"]).abs().max().item() <= 1e-5
    assert (expected.aux_logits2 - got["aux2"]).abs().max().item() <= 1e-5
    # both updated their BatchNorm running statistics the same way
    for k, v in ours.state_dict().items():
        assert torch.allclose(v.float(), ref.state_dict()[k].float(), atol=1e-6), k
    ref.load_state_dict(ref_state), ours.load_state_dict(ref_state)


def test_aux_heads_do_no_work_in_eval_mode() -> None:
    model = archspec.build(TV)
    calls: list[str] = []
    for name, m in model.named_modules():
        if name.startswith(("aux1.", "aux2.")) and not list(m.children()):
            m.register_forward_hook(lambda mod, i, o, name=name: calls.append(name))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model.eval()(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)
        assert calls == []
        assert "aux1" not in model.code and "aux2" not in model.code
        out = model.train()(x)
    assert set(out) == {"logits", "aux1", "aux2"}
    assert {c.split(".")[0] for c in calls} == {"aux1", "aux2"}
    assert model.aux_weights == {"aux1": 0.3, "aux2": 0.3}


def test_torchvision_googlenet_min_size_matches_reference() -> None:
    report = archspec.check(TV)
    assert report.min_input_size == report.train_min_input_size == (15, 15)  # torchvision's meta says 15×15
    ref = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False).eval()
    with torch.no_grad():
        ref(torch.randn(1, 3, 15, 15))
        with pytest.raises(RuntimeError):
            ref(torch.randn(1, 3, 14, 15))


# ---- the paper ---------------------------------------------------------------------------------

# Table 1 of arXiv 1409.4842 as written in shared/reference/googlenet-paper.md (which recomputes
# the weights and MACs columns from the channel columns: conv/linear weights only, K = 1024,
# M = 10^6): row, the spec's units making up the row, output C×H×W at 224, weights, MACs.
TABLE_1 = [
    ("conv 7×7/2", ["conv1"], (64, 112, 112), "9.2K", "118.0M"),
    ("max pool 3×3/2", ["maxpool1"], (64, 56, 56), None, None),
    ("conv 1×1 + 3×3", ["conv2", "conv3"], (192, 56, 56), "112.0K", "359.7M"),
    ("max pool 3×3/2", ["maxpool2"], (192, 28, 28), None, None),
    ("inception 3a", ["inception3a"], (256, 28, 28), "159.5K", "128.0M"),
    ("inception 3b", ["inception3b"], (480, 28, 28), "379.0K", "304.3M"),
    ("max pool 3×3/2", ["maxpool3"], (480, 14, 14), None, None),
    ("inception 4a", ["inception4a"], (512, 14, 14), "366.8K", "73.6M"),
    ("inception 4b", ["inception4b"], (512, 14, 14), "438.0K", "87.9M"),
    ("inception 4c", ["inception4c"], (512, 14, 14), "497.5K", "99.9M"),
    ("inception 4d", ["inception4d"], (528, 14, 14), "590.5K", "118.5M"),
    ("inception 4e", ["inception4e"], (832, 14, 14), "847.0K", "170.0M"),
    ("max pool 3×3/2", ["maxpool4"], (832, 7, 7), None, None),
    ("inception 5a", ["inception5a"], (832, 7, 7), "1018.0K", "51.1M"),
    ("inception 5b", ["inception5b"], (1024, 7, 7), "1409.0K", "70.7M"),
    ("avg pool 7×7/1", ["avgpool"], (1024, 1, 1), None, None),
    ("linear", ["fc"], (1000,), "1000.0K", "1.0M"),
]


@pytest.fixture(scope="module")
def paper_report() -> archspec.Report:
    return archspec.check(PAPER)


@pytest.mark.parametrize("row", TABLE_1, ids=[f"{i}-{r[0]}" for i, r in enumerate(TABLE_1)])
def test_paper_table_1_row(paper_report, row) -> None:
    _, units, shape, weights, macs = row
    graph = paper_report.graph
    rows = {r.path: r for r in paper_report.rows}
    assert rows[units[-1]].shape.at(224, 224) == shape
    w = m = 0
    for _, d in graph.records():
        if d.unit in units and d.op in ("conv2d", "linear"):
            w += d.param_count - (d.params.out if d.params.bias else 0)
        if d.unit in units:
            m += d.mac_count
    if weights is None:
        assert w == m == 0
    else:
        assert f"{w / 1024:.1f}K" == weights
        assert f"{m / 1e6:.1f}M" == macs


def test_paper_parameter_totals(paper_report) -> None:
    rows = {r.path: r for r in paper_report.rows}
    assert rows["aux1"].params == 3_188_840
    assert rows["aux2"].params == 3_190_888
    assert paper_report.params - rows["aux1"].params - rows["aux2"].params == 6_998_552
    assert 1.5e9 <= paper_report.macs <= 1.6e9  # "about 1.5 G multiply-adds"; aux heads not counted


def test_paper_aux_heads_pool_14_to_4(paper_report) -> None:
    graph = paper_report.graph
    for name, channels in (("aux1", 512), ("aux2", 528)):
        (pool,) = [n for n, d in graph.records() if d.unit == name and d.op == "avgpool"]
        assert graph.at(pool).shape.at(224, 224) == (channels, 4, 4)
        assert paper_report.outputs[name].at(224, 224) == (1000,)


def test_paper_modules_are_as_drawn() -> None:
    model = archspec.build(PAPER)
    names = dict(model.named_modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert all(m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert names["inception3a.branch3.1.conv"].kernel_size == (5, 5)  # a true 5×5
    assert names["inception3a.branch3.1.conv"].padding == (2, 2)
    assert model.aux_weights == {"aux1": 0.3, "aux2": 0.3}
    assert "local_response_norm" in model.code


def test_both_specs_share_one_inception_block() -> None:
    tv, paper = resolve(TV), resolve(PAPER)
    assert not tv.spec.blocks and not paper.spec.blocks  # neither defines its own
    for r in (tv, paper):
        entry = r.blocks["inception"]
        assert entry.source.path is not None and entry.source.path.resolve() == (SPECS / "blocks" / "googlenet.yaml").resolve()
    tv_model = archspec.build(TV)
    conv = dict(tv_model.named_modules())["inception3a.branch3.1.conv"]
    assert conv.kernel_size == (3, 3) and conv.bias is None  # torchvision's quirk, from block params


def test_paper_accepts_only_sizes_that_keep_the_head_7x7(paper_report) -> None:
    # Hand-derived: conv1 (7×7/2, pad 3) and four ceil-mode 3×3/2 max pools leave floor((H + 1)/32);
    # the 7×7 average pool gives the 1×1 that fc's 1024 inputs assume exactly when that is 7:
    # 223 <= H <= 254. The aux heads (5×5/3 pool to 4×4 on floor((H + 1)/16)) allow 223..271.
    assert paper_report.min_input_size == (223, 223)
    assert paper_report.max_input_size == (254, 254)
    model = archspec.build(PAPER).eval()
    with torch.no_grad():
        for h, w in ((223, 254), (254, 223)):
            assert model(torch.randn(1, 3, h, w)).shape == (1, 1000)
        for h, w in ((222, 224), (224, 222), (255, 224), (224, 255)):
            with pytest.raises(ValueError, match="H <= 254"):
                model(torch.randn(1, 3, h, w))
    # At another spec size the flatten fixes the head there: 256 → an 8×8 map, 2×2 after the pool, fc of 4096.
    moved = archspec.check(PAPER, {"input.size": [256, 256]})
    fc = [d for _, d in moved.graph.records() if d.path == "fc"][0]
    assert fc.param_count == 1024 * 2 * 2 * 1000 + 1000
    # floor((H + 1)/32) = 8 for 255 <= H <= 286; the aux heads' 4×4 needs floor((H + 1)/16) = 16: H <= 270
    assert moved.min_input_size == (255, 255) and moved.max_input_size == (286, 286)
    assert moved.train_accepted.max_size == (270, 270)
