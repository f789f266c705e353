"""GCNet's global context block (Cao et al., arXiv 1904.11492): `attention_pool` (a map's pixels weighed by a
softmax over H×W of attention logits, summed) and a residual that adds a C×1×1 value onto a C×H×W map by
broadcasting. Truth: timm's `GlobalContext` on its own (fuse_add, fuse_scale and both) and a whole timm
`gcresnet33ts` with redrawn attention weights and perturbed BatchNorm statistics (strict state_dict load, equal
logits at two sizes, built, optimized and as a standalone file); the pooling and the broadcast sums against
torch written apart from archspec's code; MACs against fvcore."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import archspec
from archspec.errors import SpecError
from tests.test_ops_attention import same_as_reference

HEADER = "archspec: 1\nname: m\ninput: {channels: 3, size: [9, 7]}\n"

GC_BLOCK = """\
archspec: 1
name: gc
input: {channels: 3, size: [9, 7]}
network:
  stem: conv2d 16 3x3 p1
  attn:
    chain:
      conv_attn: conv2d 1 1x1                    # the attention logits, 1×H×W
      pool: attention_pool of=stem               # the context, 16×1×1
      mlp: {chain: {fc1: conv2d 4 1x1, norm: layer_norm eps=1e-6, act: relu, fc2: conv2d 16 1x1}}
"""


def _gc(fuse_add: bool, fuse_scale: bool) -> str:
    """timm's GlobalContext as a spec: the context computed beside the map, then added (a residual whose body
    is C×1×1), used as a gate, or both (the gate first, as timm's forward)."""
    mlp = "{chain: {fc1: conv2d 4 1x1, norm: layer_norm eps=1e-6, act: relu, fc2: conv2d 16 1x1}}"
    scale = f"      - gated: {{gate: {{chain: {{ctx: {{from: attn.pool}}, mlp_scale: {mlp}, gate: sigmoid}}}}}}\n"
    add = f"      - added: {{residual: {{body: {{chain: {{ctx: {{from: attn.pool}}, mlp_add: {mlp}}}}}}}}}\n"
    return (
        "archspec: 1\nname: gc\ninput: {channels: 3, size: [9, 7]}\nnetwork:\n  stem: conv2d 16 3x3 p1\n"
        "  attn:\n    chain:\n      - conv_attn: conv2d 1 1x1\n      - pool: attention_pool of=stem\n"
        "      - {from: stem}\n" + (scale if fuse_scale else "") + (add if fuse_add else "")
    )


class GlobalContextNet(nn.Module):
    """A 3×3 conv, then timm's GlobalContext (rd 4 of 16 channels), every parameter redrawn: timm zeroes the
    last conv of mlp_add, which would hide the add."""

    def __init__(self, fuse_add: bool, fuse_scale: bool) -> None:
        super().__init__()
        from timm.layers.global_context import GlobalContext

        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.attn = GlobalContext(16, fuse_add=fuse_add, fuse_scale=fuse_scale, rd_channels=4)
        torch.manual_seed(3)
        with torch.no_grad():
            for p in self.attn.parameters():
                p.copy_(torch.randn_like(p) * 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.stem(x))


@pytest.mark.parametrize("fuse_add, fuse_scale", [(True, False), (False, True), (True, True)])
def test_timm_global_context_loads_and_computes_the_same(fuse_add: bool, fuse_scale: bool, tmp_path: Path) -> None:
    pytest.importorskip("timm")
    spec = _gc(fuse_add, fuse_scale)
    reference = GlobalContextNet(fuse_add, fuse_scale)
    # timm's keys: attn.conv_attn, attn.mlp_add.fc1/norm/fc2, attn.mlp_scale...; the spec puts the MLPs under
    # the gate and the residual's chains, so the reference's keys are renamed onto archspec's paths
    renamed = {
        k.replace("attn.mlp_scale.", "attn.gated.mlp_scale.").replace("attn.mlp_add.", "attn.added.mlp_add."): v
        for k, v in reference.state_dict().items()
    }
    model = archspec.build(spec).eval()
    model.load_state_dict(renamed, strict=True)
    for h, w in ((9, 7), (4, 13)):
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


GC_TIMM_KEYS = """\
archspec: 1
name: gc_keys
input: {channels: 3, size: [9, 7]}
network:
  stem: conv2d 16 3x3 p1
  attn:                                          # timm's GlobalContext(fuse_add=True, fuse_scale=False)
    residual:
      body:
        chain:
          conv_attn: conv2d 1 1x1
          pool: attention_pool of=stem
          mlp_add: {chain: {fc1: conv2d 4 1x1, norm: layer_norm eps=1e-6, act: relu, fc2: conv2d 16 1x1}}
"""


def test_the_residual_form_has_timm_s_keys_optimized_and_standalone_too(tmp_path: Path) -> None:
    pytest.importorskip("timm")
    path = tmp_path / "gc.yaml"
    path.write_text(GC_TIMM_KEYS)
    model = same_as_reference(path, GlobalContextNet(True, False), [(9, 7), (5, 12)], tmp_path, "GcKeys")
    assert "attn.mlp_add.fc2.weight" in model.state_dict()


# ---- a whole gcresnet33ts ---------------------------------------------------------------------------------

GCRESNET33TS = """\
archspec: 1
name: gcresnet33ts
input: {channels: 3, size: [256, 256]}
defaults:
  conv: {act: silu}                        # timm's ConvNormAct: conv, bn with SiLU
blocks:
  bottle:                                  # timm's BottleneckBlock with attn_layer='gca'
    params: {out: 256, stride: 1}
    residual:
      body:
        chain:
          conv1_1x1: 'conv ${out // 4} 1x1'
          conv2_kxk: 'conv ${out // 4} 3x3 s$stride p1'
          attn:                            # GlobalContext(fuse_add=True, fuse_scale=False)
            residual:
              body:
                chain:
                  conv_attn: conv2d 1 1x1
                  pool: attention_pool of=conv2_kxk
                  mlp_add:
                    chain:
                      fc1: 'conv2d ${out // 32} 1x1'
                      norm: layer_norm eps=1e-6
                      act: relu
                      fc2: 'conv2d ${out // 4} 1x1'
          conv3_1x1: conv $out 1x1 act=none
      shortcut:
        if: ${block_in != out or stride != 1}
        then: {shortcut: conv $out 1x1 s$stride act=none}
      then: silu
network:
  - stem:
      chain:
        conv1: conv 24 3x3 s2 p1
        conv2: conv 32 3x3 p1
        conv3: conv 64 3x3 s2 p1
  - stages:
      - "0": [bottle out=256, bottle out=256]
      - "1": [bottle out=512 stride=2, bottle out=512 * 2]
      - "2": [bottle out=1536 stride=2, bottle out=1536 * 2]
      - "3": [bottle out=1536 stride=2, bottle out=1536]
  - final_conv: conv 1280 1x1
  - head: {chain: {global_pool: global_avgpool, fc: linear 1000}}
"""


@pytest.mark.slow
def test_gcresnet33ts_loads_timm_and_gives_its_logits(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    from timm.layers.global_context import GlobalContext

    reference: nn.Module = timm.create_model("gcresnet33ts")
    torch.manual_seed(5)
    with torch.no_grad():  # timm zeroes mlp_add.fc2: redrawn, so that the context is added for real
        for m in reference.modules():
            if isinstance(m, GlobalContext):
                for p in m.parameters():
                    p.copy_(torch.randn_like(p) * 0.2)
    path = tmp_path / "gcresnet33ts.yaml"
    path.write_text(GCRESNET33TS)
    same_as_reference(path, reference, [(64, 64), (65, 47)], tmp_path, "Gcresnet33ts")


# ---- attention_pool against its definition ---------------------------------------------------------------


def _pooled(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Σ over the pixels p of x[:, :, p] · exp(l[p]) / Σ_q exp(l[q]), each logit map's softmax on its own."""
    n, c = x.shape[:2]
    e = torch.exp(logits - logits.amax(dim=(2, 3), keepdim=True))
    weights = e / e.sum(dim=(2, 3), keepdim=True)
    return (x * weights).sum(dim=(2, 3)).reshape(n, c, 1, 1)


@pytest.mark.parametrize("heads", [1, 6])
def test_attention_pool_is_the_softmax_weighted_sum_over_the_pixels(heads: int) -> None:
    spec = HEADER + f"network:\n  a: conv2d 6 3x3 p1\n  l: conv2d {heads} 1x1\n  p: attention_pool of=a\n"
    model = archspec.build(spec).eval().double()
    sd = model.state_dict()
    for h, w in ((9, 7), (1, 1), (3, 16)):
        x = torch.randn(2, 3, h, w, dtype=torch.float64)
        a = torch.nn.functional.conv2d(x, sd["a.weight"], sd["a.bias"], padding=1)
        logits = torch.nn.functional.conv2d(a, sd["l.weight"], sd["l.bias"])
        with torch.no_grad():
            torch.testing.assert_close(model(x), _pooled(a, logits))


def test_attention_pool_counts_as_fvcore_counts_timm_s_matrix_product() -> None:
    fvcore = pytest.importorskip("fvcore.nn")

    class Pool(nn.Module):  # GlobalContext's context modelling, as timm writes it
        def __init__(self) -> None:
            super().__init__()
            self.conv_attn = nn.Conv2d(16, 1, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, c, h, w = x.shape
            attn = self.conv_attn(x).reshape(b, 1, h * w).softmax(-1).unsqueeze(3)
            return (x.reshape(b, c, h * w).unsqueeze(1) @ attn).view(b, c, 1, 1)

    spec = "archspec: 1\nname: m\ninput: {channels: 16, size: [9, 7]}\nnetwork:\n  f: identity\n"
    spec += "  conv_attn: conv2d 1 1x1\n  p: attention_pool of=f\n"
    analysis = fvcore.FlopCountAnalysis(Pool(), torch.randn(1, 16, 9, 7))
    analysis.unsupported_ops_warnings(False)
    assert archspec.check(spec).macs == analysis.total() == 2 * 16 * 9 * 7


@pytest.mark.parametrize(
    "logits, fragment",
    [
        ("conv2d 2 1x1", "must be 1×H×W"),  # 2 logit maps for 6 channels
        ("conv2d 1 3x3", "must be 1×H×W"),  # another size
        ("[conv2d 1 1x1, global_avgpool]", "must be 1×H×W"),  # a vector
        ("[conv2d 1 1x1, adaptive_avgpool 1x1]", "must be 1×H×W"),  # one logit
    ],
)
def test_logits_that_do_not_fit_the_map_are_refused(logits: str, fragment: str) -> None:
    net = f"network:\n  - a: conv2d 6 3x3 p1\n  - {logits}\n  - attention_pool of=a\n"
    with pytest.raises(SpecError) as e:
        archspec.check(HEADER + net)
    assert e.value.code == "shape-mismatch" and fragment in str(e.value)


def test_a_vector_is_not_pooled() -> None:
    net = "network:\n  - a: [conv2d 6 3x3 p1, global_avgpool]\n  - {from: input}\n  - attention_pool of=a\n"
    with pytest.raises(SpecError) as e:
        archspec.check(HEADER + net)
    assert e.value.code == "shape-mismatch" and "must be a C×H×W map" in str(e.value)


# ---- a residual that broadcasts ---------------------------------------------------------------------------


def test_a_residual_adds_a_per_channel_or_per_pixel_value_at_every_position() -> None:
    spec = HEADER + (
        "network:\n"
        "  - a: conv2d 6 3x3 p1\n"
        "  - r1: {residual: {body: [adaptive_avgpool 1x1, c1: conv2d 6 1x1]}}\n"  # x + C×1×1
        "  - r2: {residual: {body: [c2: conv2d 1 1x1, tanh], then: relu}}\n"  # x + 1×H×W, then relu
        "  - r3: {residual: {shortcut: adaptive_avgpool 1x1, body: c3: conv2d 6 1x1}}\n"  # C×1×1 + x
        "  - global_avgpool\n"
        "  - r4: {residual: {body: [c4: linear 6], scale: 0.5}}\n"  # vector + vector, scaled
    ).replace("body: c3: conv2d 6 1x1", "body: {c3: conv2d 6 1x1}")
    model = archspec.build(spec)
    sd = model.state_dict()

    def reference(x: torch.Tensor) -> torch.Tensor:
        f = torch.nn.functional
        a = f.conv2d(x, sd["a.weight"], sd["a.bias"], padding=1)
        r1 = a + f.conv2d(a.mean((2, 3), keepdim=True), sd["r1.c1.weight"], sd["r1.c1.bias"])
        r2 = torch.relu(r1 + torch.tanh(f.conv2d(r1, sd["r2.c2.weight"], sd["r2.c2.bias"])))
        r3 = r2.mean((2, 3), keepdim=True) + f.conv2d(r2, sd["r3.c3.weight"], sd["r3.c3.bias"])
        v = r3.mean((2, 3))
        return v + 0.5 * f.linear(v, sd["r4.c4.weight"], sd["r4.c4.bias"])

    for train in (False, True):
        model.train(train)
        x = torch.randn(2, 3, 9, 7, requires_grad=True)
        y = x.detach().clone().requires_grad_(True)
        out, want = model(x), reference(y)
        torch.testing.assert_close(out, want)
        out.square().sum().backward()
        want.square().sum().backward()
        torch.testing.assert_close(x.grad, y.grad)
    fast = archspec.optimize(model.eval())
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), reference(x))
    assert archspec.check(spec).outputs["logits"].channels == 6


def test_a_broadcast_that_is_not_torch_s_or_between_vectors_is_refused() -> None:
    cases = [
        "  - conv2d 6 3x3 p1\n  - residual: {body: [adaptive_avgpool 1x1, conv2d 4 1x1]}\n",  # 4 channels onto 6
        "  - conv2d 6 3x3 p1\n  - residual: {body: [adaptive_avgpool 1x3, conv2d 6 1x1]}\n",  # W 3 onto 7
        "  - conv2d 6 3x3 p1\n  - residual: {shortcut: [global_avgpool, linear 1], body: global_avgpool}\n",  # vectors
    ]
    for net in cases:
        with pytest.raises(SpecError) as e:
            archspec.check(HEADER + "network:\n" + net)
        assert e.value.code == "shape-mismatch"


def test_a_residual_adding_a_sigmoid_s_output_is_warned_and_refused_with_strict() -> None:
    spec = HEADER + "network:\n  - conv2d 8 3x3\n  - se: {residual: {body: [adaptive_avgpool 1x1, conv2d 8 1x1, sigmoid]}}\n"
    report = archspec.check(spec)
    assert [(w.code, w.loc.line) for w in report.warnings] == [("residual-gate", 6)]
    assert "write gate:" in str(report.warnings[0].hint)
    with pytest.raises(SpecError) as e:
        archspec.check(spec, strict=True)
    assert e.value.code == "residual-gate"
    # the same shapes without the sigmoid, or a sigmoid's output of the map's own shape: no warning
    assert not archspec.check(spec.replace(", sigmoid]", "]")).warnings
    assert not archspec.check(
        HEADER + "network:\n  - conv2d 8 3x3\n  - r: {residual: {body: [conv2d 8 1x1, sigmoid]}}\n"
    ).warnings


def test_the_sum_is_never_written_into_the_smaller_operand() -> None:
    # the body (fresh, read once) is where a residual accumulates; broadcast onto the shortcut it cannot hold the sum
    spec = HEADER + "network:\n  - conv2d 6 3x3 p1\n  - r: {residual: {body: [adaptive_avgpool 1x1, conv2d 6 1x1]}}\n"
    model = archspec.build(spec).eval()
    code = model.code if hasattr(model, "code") else ""
    assert "add_" not in code
    with torch.no_grad():
        assert model(torch.randn(1, 3, 9, 7)).shape == (1, 6, 9, 7)
