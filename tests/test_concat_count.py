"""Branches side by side (docs/language.md, "Branches side by side: `count` and `index`"): a concat's written
branches N times, each copy reading its index; names computed from it. Truth: torch's functions on the same
weights; timm's MixedConv2d (the branch written once for every number of groups) and, in
tests/test_outside_networks.py, timm's whole mixnet_s (tests/specs_outside/mixnet_s.yaml, 117 → 83 lines)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import archspec  # noqa: E402
from archspec.errors import SpecError  # noqa: E402

MIXCONV = """
archspec: 1
name: mixconv
input: {{channels: {cin}, size: [15, 13]}}
blocks:
  mixconv:
    params: {{out: 24, n: 1}}
    if: ${{n == 1}}
    then: conv2d $out 3x3 p1 dw no_bias
    else:
      concat:
        - - 'channel_slice ${{0 if g == 0 else g * (in // n) + in % n}} ${{(g + 1) * (in // n) + in % n}}'
          - "${{g}}": 'conv2d ${{out // n + (out % n if g == 0 else 0)}} kernel=${{3 + 2 * g}} padding=${{1 + g}} dw no_bias'
      count: $n
      index: g
network:
  - conv_dw: mixconv out={cin} n={n}
"""


@pytest.mark.parametrize("cin, n", [(24, 1), (24, 2), (26, 3), (40, 4)])
def test_one_written_branch_equals_timm_mixed_conv_for_every_group_count(cin: int, n: int) -> None:
    from timm.layers import create_conv2d

    reference = create_conv2d(cin, cin, [3 + 2 * g for g in range(n)] if n > 1 else 3, depthwise=True).eval()
    model = archspec.build(MIXCONV.format(cin=cin, n=n)).eval()
    model.load_state_dict({f"conv_dw.{k}": v for k, v in reference.state_dict().items()}, strict=True)
    x = torch.randn(2, cin, 15, 13)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x))


def test_copies_are_numbered_on_and_names_computed_from_the_index() -> None:
    spec = (
        "archspec: 1\nname: c\ninput: {channels: 3, size: [8, 8]}\nnetwork:\n"
        "  - a: {concat: [conv2d 2 1x1, maxpool 3x3 p1], count: 2}\n"  # a.0, (pool), a.2, (pool)
        "  - b: {concat: {'p${i + 1}': 'conv2d ${i + 1} 1x1'}, count: 3, index: i}\n"  # b.p1 (1 ch), b.p2, b.p3
    )
    model = archspec.build(spec).eval()
    s = model.state_dict()
    assert [k for k in s if k.endswith("weight")] == ["a.0.weight", "a.2.weight", "b.p1.weight", "b.p2.weight", "b.p3.weight"]
    f = torch.nn.functional
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        pool = f.max_pool2d(x, 3, 1, 1)
        a = torch.cat([f.conv2d(x, s["a.0.weight"], s["a.0.bias"]), pool, f.conv2d(x, s["a.2.weight"], s["a.2.bias"]), pool], 1)
        want = torch.cat([f.conv2d(a, s[f"b.p{i}.weight"], s[f"b.p{i}.bias"]) for i in (1, 2, 3)], 1)
        torch.testing.assert_close(model(x), want)
    assert archspec.check(spec).rows[1].shape.at(8, 8) == (6, 8, 8)


@pytest.mark.parametrize(
    "network, code, text",
    [
        ("[{concat: [relu], index: i}]", "schema", "write count: N beside it"),
        ("[{concat: [relu], count: 0}]", "limit", "repeat count 0"),
        ("[{concat: {'$i': relu}, count: 2}]", "param", "undefined parameter $i"),
        ("[{concat: {'${i - 1}': conv2d 2 1x1}, count: 2, index: i}]", "name", "gives '-1'"),
        ("[{concat: [{concat: [relu], count: 1000}], count: 1000}]", "limit", "1,000,000 copies"),
    ],
)
def test_mistakes_are_located_errors(network: str, code: str, text: str) -> None:
    with pytest.raises(SpecError) as e:
        archspec.check(f"archspec: 1\nname: e\ninput: {{channels: 3, size: [8, 8]}}\nnetwork: {network}\n")
    assert e.value.code == code and text in str(e.value), str(e.value)


def test_an_index_named_like_a_block_parameter_is_refused() -> None:
    spec = (
        "archspec: 1\nname: e\ninput: {channels: 3, size: [8, 8]}\nblocks:\n  b:\n    params: {i: 2}\n"
        "    concat: [conv2d $i 1x1]\n    count: 2\n    index: i\nnetwork: [b]\n"
    )
    with pytest.raises(SpecError) as e:
        archspec.check(spec)
    assert e.value.code == "param" and "hides the parameter $i" in str(e.value)
