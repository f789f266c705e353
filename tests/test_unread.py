"""A value nothing reads (a later `from:` skips it) is left out with its weights, by check as by build,
and check warns where it is written; under `outputs:` leaving parts out is the point and no warning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import archspec
from archspec.cli import main

SKIPPED = """archspec: 1
name: skipped
input: {channels: 3, size: [8, 8]}
blocks:
  blk:
    chain:
      - a: conv2d 4 1x1
      - side: [conv2d 4 1x1, relu]
      - {from: a}
network:
  - s: blk * 2
  - y: conv2d 4 1x1
  - {from: s}
  - global_avgpool
  - fc: linear 3
"""


class Reference(torch.nn.Module):
    """What the spec computes, written apart: two 1×1 convs in a row, the pool, the classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.a0 = torch.nn.Conv2d(3, 4, 1)
        self.a1 = torch.nn.Conv2d(4, 4, 1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.a1(self.a0(x)).mean((2, 3)))


def test_check_counts_what_build_builds_and_warns_at_each_unread_part() -> None:
    report = archspec.check(SKIPPED)
    ref = Reference()
    assert report.params == sum(p.numel() for p in ref.parameters()) == 51
    # MACs: two 1×1 convs at 8×8 (3·4 and 4·4 per pixel) and the classifier (4·3)
    assert report.macs == 64 * (12 + 16) + 12
    model = archspec.build(SKIPPED).eval()
    assert sorted(model.state_dict()) == ["fc.bias", "fc.weight", "s.0.a.bias", "s.0.a.weight", "s.1.a.bias", "s.1.a.weight"]
    pairs = {"s.0.a": ref.a0, "s.1.a": ref.a1, "fc": ref.fc}
    model.load_state_dict({f"{k}.{t}": getattr(m, t) for k, m in pairs.items() for t in ("weight", "bias")}, strict=True)
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(model(x), ref(x))
    # one warning per place written: the block's `side` (in both instances) and the top-level `y`
    found = [(w.code, w.loc.line, w.loc.column) for w in report.warnings]
    assert found == [("unread", 8, 16), ("unread", 12, 8)]
    assert "'s.0.side', 's.1.side'" in report.warnings[0].message and "'y'" in report.warnings[1].message


def test_strict_makes_it_an_error_and_the_cli_prints_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(SKIPPED, strict=True)
    assert (e.value.code, e.value.line) == ("unread", 8)
    spec = tmp_path / "s.yaml"
    spec.write_text(SKIPPED)
    assert main(["check", str(spec)]) == 0
    assert f"{spec}:12:8: warning: nothing reads the value of 'y'" in capsys.readouterr().err
    assert main(["check", "--strict", str(spec)]) == 2


def test_named_outputs_leave_parts_out_without_a_warning() -> None:
    spec = SKIPPED.replace("network:", "outputs: [s]\nnetwork:").replace("  - y: conv2d 4 1x1\n", "")
    report = archspec.check(spec)
    assert report.warnings == []
    # the head after `s` goes and `side` too: the two `a` convs remain
    assert report.params == (3 * 4 + 4) + (4 * 4 + 4)


def test_a_network_reading_everything_has_no_warning() -> None:
    assert archspec.check(SKIPPED.replace("      - {from: a}\n", "").replace("  - {from: s}\n", "")).warnings == []


def test_a_part_whose_copy_a_share_calls_keeps_its_weights() -> None:
    """`p` is read by nothing but its `share:` copy: p's modules stay (counted once, held by the copy),
    p's value is not computed for itself, and nothing is said (its weights are in use)."""
    spec = """archspec: 1
name: shared
input: {channels: 3, size: [8, 8]}
network:
  - s: conv2d 4 1x1
  - p: [conv2d 4 1x1, bn]
  - back: {from: s}
  - q: {share: p}
"""
    report = archspec.check(spec)
    assert report.warnings == [] and report.params == (3 * 4 + 4) + (4 * 4 + 4) + 2 * 4
    model = archspec.build(spec).eval()
    sd = model.state_dict()
    x = torch.randn(2, 3, 8, 8)
    s = torch.nn.functional.conv2d(x, sd["s.weight"], sd["s.bias"])
    p = torch.nn.functional.conv2d(s, sd["p.0.weight"], sd["p.0.bias"])
    want = torch.nn.functional.batch_norm(p, sd["p.1.running_mean"], sd["p.1.running_var"], sd["p.1.weight"], sd["p.1.bias"])
    torch.testing.assert_close(model(x), want)
    # p's own value is not computed: in training its BatchNorm sees only the copy's call
    model.train()(x)
    assert int(model.state_dict()["p.1.num_batches_tracked"]) == 1


def test_a_part_whose_copy_of_a_copy_is_read_keeps_its_weights_and_is_not_warned() -> None:
    """Differential seed 34502162: shared1's `p` (a shared0 instance) is read only by its copy `q`, and inside it
    shared0's `p` only by shared0's `q`, itself a copy: the bn at `0.p.p` is what the read copy `0.q` calls, so its
    weights stay (at its path, once) and nothing is said of it; a side part nothing reads still is warned."""
    spec = """archspec: 1
name: nested
input: {channels: 3, size: [8, 8]}
blocks:
  shared0: {chain: [p: [conv2d 3 1x1, bn], back: {from: block_in}, q: {share: p}]}
  shared1: {chain: [p: shared0, side: conv2d 4 1x1, back: {from: block_in}, q: {share: p}]}
network: [shared1]
"""
    report = archspec.check(spec)
    assert [w.code for w in report.warnings] == ["unread"] and "0.side" in report.warnings[0].message
    assert "0.p" not in report.warnings[0].message.replace("0.side", "")
    assert report.params == (3 * 3 + 3) + 2 * 3
    model = archspec.build(spec).eval()
    sd = model.state_dict()
    assert sorted(sd) == sorted(
        f"0.p.p.{k}"
        for k in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked")
    )
    x = torch.randn(2, 3, 8, 8)
    y = torch.nn.functional.conv2d(x, sd["0.p.p.0.weight"], sd["0.p.p.0.bias"])
    want = torch.nn.functional.batch_norm(
        y, sd["0.p.p.1.running_mean"], sd["0.p.p.1.running_var"], sd["0.p.p.1.weight"], sd["0.p.p.1.bias"]
    )
    torch.testing.assert_close(model(x), want)
    model.train()(x)  # computed once, by the read copy
    assert int(model.state_dict()["0.p.p.1.num_batches_tracked"]) == 1


def test_an_empty_row_is_reported_whether_or_not_something_else_is_unread() -> None:
    base = "archspec: 1\nname: e\ninput: {channels: 3, size: [8, 8]}\n"
    base += "network: [{chain: []}, conv2d 4 1x1, global_avgpool, fc: linear 3%s]\n"
    plain, skipping = archspec.check(base % ""), archspec.check(base % ", {side: bn}, {from: fc}")
    assert [r.path for r in plain.rows] == [r.path for r in skipping.rows] == ["[0]", "1", "2", "fc"]
    assert [w.code for w in skipping.warnings] == ["unread"] and plain.params == skipping.params


SHARED_BLOCKS = """archspec: 1
name: t
input: {channels: 5, size: [20, 20]}
blocks:
  shared0:
    chain:
      p: bn
      back: {from: block_in}
      q: {share: p}
  shared1:
    chain:
      p: shared0
      back: {from: block_in}
      q: {share: p}
network: NETWORK
"""

# (the network, the paths warned of, where the warning stands)
COPIES = [
    # inside `up` nothing reads p, but its copy q is read: p's module is q's, and nothing is said
    ("[{up: shared0}, {from: up}]", [], None),
    # a copy of the whole of `up` that `{from: up}` skips is unread, though its ops carry up.p's path (seed 63800652)
    ("[{up: shared0}, {share: up}, {from: up}]", ["'up.p'"], (15, 34)),  # at the share: its name
    # shared1's q copies its part p (a shared0, whose own q copies its p) and only q is read: 0.p.q, a copy nothing
    # reads, lives on in 0.q's copy of it, and 0.p.p's module in both (seed 64400107)
    ("[shared1]", [], None),
]


@pytest.mark.parametrize(("network", "warned", "where"), COPIES, ids=["adopted", "unread copy", "copy of a copy"])
def test_share_copies_nothing_reads_are_unread_unless_a_read_copy_applies_them_again(
    network: str, warned: list[str], where: tuple[int, int] | None
) -> None:
    """docs/errors.md, unread: a part whose modules a read `share:` copy calls, directly or through a copy of a
    copy, is not warned; a copy nothing reads is."""
    report = archspec.check(SHARED_BLOCKS.replace("NETWORK", network))
    found = [w for w in report.warnings if w.code == "unread"]
    assert [path for w in found for path in warned if path in w.message] == warned
    assert len(found) == len(warned)
    if where is not None:
        assert (found[0].loc.line, found[0].loc.column) == where
