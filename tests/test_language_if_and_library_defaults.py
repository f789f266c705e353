"""The `{if, then, else}` node and block libraries' own `defaults:` (added for the ResNet blocks).

Truth is hand-written: which modules must exist, which BatchNorm eps each conv must get.
"""

from __future__ import annotations

import pytest

import archspec

LIBRARY = """\
archspec: 1
defaults:
  conv: {eps: 0.001}
blocks:
  unit:
    params: {out: 8, stride: 1, projection: false}
    residual:
      body: [conv $out 3x3 s$stride p1]
      shortcut:
        if: $projection
        then: {downsample: conv2d $out 1x1 s$stride}
      then: relu
"""


def _spec(network: str, defaults: str = "") -> str:
    head = "archspec: 1\nname: t\nuse: [lib.yaml]\ninput: {channels: 8, size: [16, 16]}\n"
    return f"{head}{defaults}network:\n{network}"


def _paths(report: archspec.Report) -> dict[str, object]:
    assert report.graph is not None
    return {d.path: d for _, d in report.graph.records()}


def test_if_expands_then_or_nothing(write_spec) -> None:
    write_spec(LIBRARY, "lib.yaml")
    spec = write_spec(_spec("  - unit\n  - unit out=16 stride=2 projection=true\n"))
    report = archspec.check(spec)
    paths = _paths(report)
    assert "1.downsample" in paths and not any(p.startswith("0.downsample") for p in paths)
    assert report.output_shape == (16, 8, 8)
    # the identity shortcut of block 0 adds the block's own input
    assert report.params == (8 * 8 * 9 + 16) + (16 * 8 * 9 + 32) + (16 * 8 + 16)


def test_if_needs_a_boolean(write_spec) -> None:
    write_spec(LIBRARY, "lib.yaml")
    spec = write_spec(_spec("  - unit projection=3\n"))
    with pytest.raises(archspec.SpecError) as err:
        archspec.check(spec)
    assert err.value.code == "param" and err.value.file.endswith("lib.yaml")
    assert (err.value.line, err.value.column) == (10, 13)  # the `if:` value


def test_identity_shortcut_must_match(write_spec) -> None:
    write_spec(LIBRARY, "lib.yaml")
    spec = write_spec(_spec("  - unit out=16 stride=2\n"))
    with pytest.raises(archspec.SpecError) as err:
        archspec.check(spec)
    assert err.value.code == "shape-mismatch"


def test_library_defaults_apply_to_its_blocks_only(write_spec) -> None:
    write_spec(LIBRARY, "lib.yaml")
    spec = write_spec(_spec("  - unit\n  - conv 8 1x1\n"))
    paths = _paths(archspec.check(spec))
    assert paths["0.0.bn"].params.eps == 0.001  # written in lib.yaml: its defaults
    assert paths["1.bn"].params.eps == 1e-5  # written in the spec: the spec's (none)


def test_spec_defaults_fill_what_the_library_leaves(write_spec) -> None:
    write_spec(LIBRARY, "lib.yaml")
    spec = write_spec(_spec("  - unit\n", "defaults:\n  conv: {eps: 0.01, momentum: 0.3}\n"))
    bn = _paths(archspec.check(spec))["0.0.bn"].params
    assert (bn.eps, bn.momentum) == (0.001, 0.3)  # the library's eps wins, the spec's momentum fills in


@pytest.mark.parametrize(
    "branch, name, line, col",
    [
        ("        then: [conv 8 1x1, sigmod]\n", "sigmod", 8, 28),  # an op in a short form
        ("        then: {gate: [adaptive_avgpool 1x1, {op: conv2dd, out: 8}]}\n", "conv2dd", 8, 50),  # long form
        ("        then: {se: {block: se_blok}}\n", "se_blok", 8, 28),  # a block reference
        ("        then:\n          residual: {body: conv2d 8 1x1, then: rleu}\n", "rleu", 9, 48),  # a residual's then
        ("        then: conv2d 8 1x1\n        else: {chain: {a: [relu, idenity]}}\n", "idenity", 9, 34),  # else
    ],
)
def test_a_branch_not_taken_must_still_name_real_ops_and_blocks(branch: str, name: str, line: int, col: int) -> None:
    cond = "true" if "else:" in branch else "false"
    text = (
        "archspec: 1\nname: t\ninput: {channels: 8, size: [8, 8]}\nnetwork:\n  - conv2d 8 3x3 p1\n"
        f"  - opt:\n        if: {cond}\n{branch}  - global_avgpool\n"
    )
    with pytest.raises(archspec.SpecError) as err:
        archspec.check(text)
    e = err.value
    assert (e.code, e.line, e.column) == ("unknown-op", line, col), e.format()
    assert f"'{name}'" in e.message and e.hint and "did you mean" in e.hint


def test_a_branch_not_taken_is_checked_in_every_block_instance(write_spec) -> None:
    write_spec(
        LIBRARY.replace(
            "then: {downsample: conv2d $out 1x1 s$stride}",
            "then: {downsample: conv2d $out 1x1 s$stride}\n        else: indentity",
        ),
        "lib.yaml",
    )
    spec = write_spec(_spec("  - unit out=16 stride=2 projection=true\n"))
    with pytest.raises(archspec.SpecError) as err:  # the instance takes `then`; `else` is still wrong
        archspec.check(spec)
    assert err.value.code == "unknown-op" and err.value.file.endswith("lib.yaml")
    assert (err.value.line, err.value.column) == (12, 15) and "'identity'" in (err.value.hint or "")
    # a name given by a parameter is the instance's to choose: not checked where it is not taken
    write_spec(
        LIBRARY.replace(
            "params: {out: 8, stride: 1, projection: false}", "params: {out: 8, stride: 1, projection: false, act: relu}"
        ).replace("then: {downsample: conv2d $out 1x1 s$stride}", "then: [{downsample: conv2d $out 1x1 s$stride}, $act]"),
        "lib.yaml",
    )
    assert archspec.check(write_spec(_spec("  - unit\n  - unit out=16 stride=2 projection=true\n"))).params > 0
