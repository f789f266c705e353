"""`flat: true` on a repeated list chain: every copy's items numbered on in one list, as
`nn.Sequential(*[conv, relu] * n)` numbers them (DOC6's wall, session 11: torchvision's KeypointRCNNHeads, FCOS's
towers). Truth: torchvision's KeypointRCNNHeads, its state_dict loaded strictly, eager, optimized and standalone."""

from __future__ import annotations

from pathlib import Path

import pytest

import archspec
from tests.test_ops_attention import _same

SPEC = """\
archspec: 1
name: keypoint_head
input: {channels: 3, size: [14, 14]}
network:
  - {chain: [conv2d 8 3x3 p1, relu], repeat: 4, flat: true}     # 0, 2, 4, 6 (the ReLUs at 1, 3, 5, 7)
"""


def test_a_flat_chain_equals_torchvisions_keypoint_head(tmp_path: Path) -> None:
    detection = pytest.importorskip("torchvision.models.detection.keypoint_rcnn")
    reference = detection.KeypointRCNNHeads(3, (8, 8, 8, 8))
    assert sorted(reference.state_dict()) == sorted(f"{i}.{t}" for i in (0, 2, 4, 6) for t in ("weight", "bias"))
    _same(SPEC, reference, [(14, 14), (5, 9)], tmp_path, "KeypointHead")


def test_a_flat_chain_numbers_on_in_the_enclosing_list_and_under_its_name() -> None:
    spec = (
        "archspec: 1\nname: t\ninput: {channels: 3, size: [8, 8]}\nnetwork:\n"
        "  - tower:\n      - conv2d 4 1x1\n      - {chain: [conv2d 4 3x3 p1, group_norm 2, relu], repeat: 2, flat: true}\n"
        "      - conv2d 4 1x1\n"
        "  - head: {chain: [conv2d 4 3x3 p1, relu], repeat: 2, flat: true}\n"
    )
    keys = {k.rsplit(".", 1)[0] for k in archspec.build(spec).state_dict()}
    assert keys == {"tower.0", "tower.1", "tower.2", "tower.4", "tower.5", "tower.7", "head.0", "head.2"}


@pytest.mark.parametrize(
    "chain",
    [
        "{chain: {a: conv2d 4 1x1, b: relu}, repeat: 2, flat: true}",
        "{chain: [conv2d 4 1x1], repeat: 2, flat: true, names: 'c{n}'}",
    ],
)
def test_a_flat_chain_is_a_list_without_names(chain: str) -> None:
    spec = f"archspec: 1\nname: t\ninput: {{channels: 3, size: [8, 8]}}\nnetwork:\n  - {chain}\n"
    with pytest.raises(archspec.SpecError, match="flat: a chain whose items are numbered on") as e:
        archspec.check(spec)
    assert e.value.code == "name" and e.value.loc is not None and e.value.loc.line == 5
