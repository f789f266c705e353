"""`archspec diff`: added / removed / changed blocks and deltas, checked against counts by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

from archspec.cli import main
from archspec.diff import diff
from archspec.summary import summarize

SPECS = Path(__file__).resolve().parent.parent / "specs"
V4 = str(SPECS / "inception_v4.yaml")
INCEPTION_A = 317_632  # Fig. 4 by hand, see test_variants.py


def test_same_spec_has_no_changes():
    d = diff(summarize(V4), summarize(V4))
    assert d.count("same") == len(d.rows) == 25 and d.params_delta == 0 and d.macs_delta == 0


def test_more_repeats_are_added_blocks(capsys):
    assert main(["diff", V4, "--set-b", "network.features.inception_a.repeat=6", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["added"], d["removed"], d["changed"]) == (2, 0, 0)
    assert [b["path_b"] for b in d["blocks"]] == ["features.10", "features.11"]
    assert all(b["status"] == "added" and b["shape_b"] == [384, 35, 35] for b in d["blocks"])
    assert d["params_delta"] == 2 * INCEPTION_A
    # each Inception-A at 35×35: 1x1 convs 384→96, 384→64, 384→64, 384→96; 3x3 convs 64→96, 64→96, 96→96
    per_pixel = 384 * (96 + 64 + 64 + 96) + 9 * (64 * 96 + 64 * 96 + 96 * 96)
    assert d["macs_delta"] == 2 * per_pixel * 35 * 35


def test_fewer_repeats_are_removed_blocks():
    d = diff(summarize(V4), summarize(V4, {"network.features.inception_c.repeat": 1}))
    assert [(r.status, r.a.path) for r in d.rows if r.status != "same"] == [
        ("removed", "features.20"),
        ("removed", "features.21"),
    ]


def test_changed_block_and_shape_change(capsys):
    assert main(["diff", V4, V4, "--set-b", "blocks.inception_a.concat.branch0=conv 128 1x1"]) == 0
    out = capsys.readouterr().out
    # the four Inception-A, Reduction-A (its max-pool branch passes 416 channels on) and the first
    # Inception-B (its input grows from 1024 to 1056 channels)
    assert "0 added, 0 removed, 6 changed, 19 unchanged" in out
    assert "384×35×35 → 416×35×35" in out and "1024×17×17 → 1056×17×17" in out
    # the first Inception-A changes only in branch0: 384·96 → 384·128 weights and 2·32 more BN parameters
    assert f"+{384 * 32 + 64:,}" in out


def test_set_applies_to_both_sides(capsys):
    assert main(["diff", V4, "--set", "input.size=[331,331]", "--set-a", "scale.width=1.5", "--set-b", "scale.width=1.5"]) == 0
    assert "0 added, 0 removed, 0 changed, 25 unchanged" in capsys.readouterr().out


def test_input_size_changes_macs_not_params():
    d = diff(summarize(V4), summarize(V4, {"input.size": [331, 331]}))
    assert d.params_delta == 0 and d.macs_delta > 0
    assert {r.status for r in d.rows} == {"changed", "same"}


def test_two_files(write_spec, capsys):
    text = (SPECS / "inception_v4.yaml").read_text()
    other = write_spec(text.replace("    - reduction_b\n", "").replace("    - inception_c * 3\n", "    - inception_c * 2\n"))
    assert main(["diff", V4, str(other), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    statuses = {(b["status"], b["label_a"] or b["label_b"]) for b in d["blocks"]}
    assert ("removed", "Reduction-B") in statuses and ("removed", "Inception-C") in statuses


def test_bad_override_on_one_side(capsys):
    assert main(["diff", V4, "--set-b", "scale.wdith=2"]) == 2
    assert "did you mean 'width'" in capsys.readouterr().err


def test_changed_block_parameter_and_ops_by_name(capsys):
    assert main(["diff", V4, "--set-b", "network.features.reduction_a.k=200", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    (row,) = d["blocks"]
    assert row["path_a"] == row["path_b"] == "features.10" and row["status"] == "changed"
    assert row["block_params"] == [{"name": "k", "a": 192, "b": 200}]
    ops = {o["path_b"]: o for o in row["ops"]}
    assert set(ops) == {"features.10.branch1.0", "features.10.branch1.1"}  # branch0 and the max-pool read 384 channels
    first, second = ops["features.10.branch1.0"], ops["features.10.branch1.1"]
    assert first["change"] == "features.10.branch1.0: conv 192 1x1 → conv 200 1x1"
    # by hand (Fig. 7 at 35×35): 8 more 1x1 filters over 384 channels, with their BatchNorm scale and shift
    assert first["params_delta"] == 8 * 384 + 2 * 8 and first["macs_delta"] == 8 * 384 * 35 * 35
    # the next conv (224 3x3 p1) reads 8 more channels: 9·8·224 weights, at 35×35
    assert second["text_a"] == second["text_b"] == "conv 224 3x3 p1" and second["in_channels"] == [192, 200]
    assert second["params_delta"] == 9 * 8 * 224 and second["macs_delta"] == 9 * 8 * 224 * 35 * 35
    assert row["params_delta"] == first["params_delta"] + second["params_delta"] == d["params_delta"]
    assert main(["diff", V4, "--set-b", "network.features.reduction_a.k=200"]) == 0
    out = capsys.readouterr().out
    assert "reduction_a k 192 → 200" in out
    assert re.search(r"~ branch1\.0: conv 192 1x1 → conv 200 1x1 +\+3,088 +\+3,763,200", out)


def test_every_changed_op_is_named(capsys):
    assert main(["diff", V4, "--set-b", "blocks.inception_a.concat.branch1=[conv 64 1x1, conv 128 3x3 p1]", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    rewritten = [o["change"] for b in d["blocks"] for o in b["ops"] if o["text_a"] != o["text_b"]]
    assert rewritten == [f"features.{i}.branch1.1: conv 96 3x3 p1 → conv 128 3x3 p1" for i in (6, 7, 8, 9)]
    # each rewritten conv: 32 more 3x3 filters over 64 channels, BatchNorm for them, at 35×35
    for b in d["blocks"]:
        for o in b["ops"]:
            if o["text_a"] != o["text_b"]:
                assert o["params_delta"] == 9 * 64 * 32 + 2 * 32 and o["macs_delta"] == 9 * 64 * 32 * 35 * 35
    # ops whose input grew are named too, and the op deltas add up to every block's delta
    for b in d["blocks"]:
        assert sum(o["params_delta"] for o in b["ops"]) == b["params_delta"]
        assert sum(o["macs_delta"] for o in b["ops"]) == b["macs_delta"]


def test_added_instance_lists_its_params_and_deltas(capsys):
    assert main(["diff", V4, "--set-b", "network.features.inception_a.repeat=5"]) == 0
    out = capsys.readouterr().out
    per_pixel = 384 * (96 + 64 + 64 + 96) + 9 * (64 * 96 + 64 * 96 + 96 * 96)
    assert re.search(rf"\+ added features\.10 \(Inception-A\) 384×35×35 +\+{INCEPTION_A:,} +\+{per_pixel * 35 * 35:,}", out)
    assert (
        main(["diff", V4, "--set-b", "network.features.reduction_a.k=200", "--set-b", "network.features.inception_c.repeat=2"])
        == 0
    )
    out = capsys.readouterr().out
    assert re.search(r"- removed features\.21 \(Inception-C\) 1536×8×8 +-", out)


# ---- the level users think at: each change once, folded, aligned, in 100 columns --------------------------
def lines_of(capsys, *args: str) -> list[str]:
    assert main(["diff", *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_width_change_is_said_once_per_change_in_100_columns(capsys):
    out = lines_of(capsys, V4, "--set-b", "scale.width=1.5")
    assert max(len(line) for line in out) <= 100
    # 25 rows change; Inception-A ×4, -B ×7, -C ×3 fold, so a line per row or op that differs and no more:
    # 3 stem convs + 3 stem blocks (1 + 6 + 1 op lines) + A (1 + 7) + Red-A (1 + 4) + B (1 + 10) + Red-B (1 + 6)
    # + C (1 + 10) + the classifier, the 4 lines of totals, a header and 3 blank or trailing lines
    assert len(out) <= 70, "\n".join(out)
    assert out[0].startswith("params: 42,679,816 → ") and out[1].startswith("MACs:   ")  # totals first
    text = "\n".join(out)
    assert text.count("conv 32 3x3 s2 → conv 48 3x3 s2") == 1  # said once, not three times
    assert text.count("features.6") == 1 and "features.6–9 (Inception-A ×4): output 384×35×35 → 576×35×35" in text
    # by hand: branch0 of Inception-A, 1x1 conv 384 → 96, becomes 576 → 144 (its input is 1.5× too), + 2·48 BN, ×4
    (branch0,) = [line for line in out if "branch0: conv 96 1x1 → conv 144 1x1" in line]
    weights = 144 * 576 - 96 * 384
    assert branch0.split()[-2] == f"+{4 * (weights + 2 * 48):,}" and branch0.split()[-1] == f"+{4 * weights * 35 * 35:,}"


def test_identical_instances_are_folded(capsys):
    out = lines_of(capsys, V4, "--set-b", "blocks.inception_a.concat.branch1=[conv 80 1x1, conv 96 3x3 p1]")
    text = "\n".join(out)
    # inside the block only (its output stays 384 channels): the four instances change alike, said once
    assert "0 added, 0 removed, 4 changed, 21 unchanged" in text
    assert "~ features.6–9 (Inception-A ×4):" in text and "features.7" not in text
    (first,) = [line for line in out if "branch1.0: conv 64 1x1 → conv 80 1x1" in line]
    (second,) = [line for line in out if "branch1.1: conv 96 3x3 p1 (input 64 → 80 channels)" in line]
    assert first.split()[-2] == f"+{4 * (16 * 384 + 2 * 16):,}" and second.split()[-2] == f"+{4 * 9 * 16 * 96:,}"
    # a change that passes a wider output on makes the next instance differ: the run splits there
    assert main(["diff", V4, "--set-b", "blocks.inception_a.concat.branch1=[conv 64 1x1, conv 128 3x3 p1]", "--json"]) == 0
    changes = [c["change"] for c in json.loads(capsys.readouterr().out)["changes"]]
    assert changes[:2] == [
        "features.6 (Inception-A): output 384×35×35 → 416×35×35; branch1.1: conv 96 3x3 p1 → conv 128 3x3 p1",
        "features.7–9 (Inception-A ×3): output 384×35×35 → 416×35×35",  # each reads 416 channels now
    ]


def test_replaced_stem_is_removed_and_added_not_paired_by_position(write_spec, capsys):
    r50 = (SPECS / "resnet50.yaml").read_text().replace("use: [blocks/resnet.yaml]", "use: [zoo:blocks/resnet.yaml]")
    three = r50.replace(
        "  conv1: conv2d 64 7x7 s2 p3 no_bias  # conv1: 112×112\n  bn1: bn\n  relu: relu\n",
        "  conv1: conv 32 3x3 s2 p1\n  conv2: conv 32 3x3 p1\n  conv3: conv 64 3x3 p1\n",
    )
    assert three != r50
    out = lines_of(capsys, str(SPECS / "resnet50.yaml"), str(write_spec(three)))
    text = "\n".join(out)
    assert max(len(line) for line in out) <= 100
    assert "- removed conv2d 64 7x7 s2 p3 no_bias (conv1), bn (bn1), relu" in text
    assert "+ added conv 32 3x3 s2 p1 (conv1), conv 32 3x3 p1 (conv2), conv 64 3x3 p1" in text
    assert "bn → conv" not in text and "relu → conv" not in text and "→ conv 32" not in text
    assert "3 added, 3 removed, 0 changed" in text
    # by hand: removed 7·7·3·64 + 2·64 = 9,536 parameters; added 27·32 + 64 + 9·32·32 + 64 + 9·32·64 + 128
    removed = next(line for line in out if line.startswith("- removed"))
    added = next(line for line in out if line.startswith("+ added"))
    assert removed.split()[-2] == "-9,536"
    assert added.split()[-2] == f"+{27 * 32 + 64 + 9 * 32 * 32 + 64 + 9 * 32 * 64 + 128:,}"


def test_an_op_inserted_in_a_branch_is_one_op_added(capsys):
    out = lines_of(capsys, V4, "--set-b", "blocks.inception_a.concat.branch1=[conv 64 1x1, conv 64 3x3 p1, conv 96 3x3 p1]")
    text = "\n".join(out)
    # aligned by structure: branch1.1 (conv 64 3x3) is added and branch1.2 is the old branch1.1, unchanged
    assert "~ features.6–9 (Inception-A ×4): branch1.1: conv 64 3x3 p1" in text
    assert "→" not in text.split("\n", 3)[3] and "0 added, 0 removed, 4 changed" in text
    (line,) = [x for x in out if x.startswith("~ features.6")]
    assert line.split()[-2] == f"+{4 * (9 * 64 * 64 + 2 * 64):,}"


def test_json_holds_the_same_changes_as_the_text(capsys):
    args = [V4, "--set-b", "scale.width=1.5"]
    text = lines_of(capsys, *args)
    assert main(["diff", *args, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    heads = [line for line in text if line[:2] in ("~ ", "+ ", "- ")]
    assert len(d["changes"]) == len(heads)
    for change, line in zip(d["changes"], heads, strict=True):
        assert line[2:].startswith(change["change"][:40])
        assert line.split()[-2] == f"{change['params_delta']:+,}"
    a = next(c for c in d["changes"] if c["where"] == "features.6–9")
    assert a["count"] == 4 and a["paths_b"] == [f"features.{i}" for i in range(6, 10)] and len(a["ops"]) == 7
    assert sum(c["params_delta"] for c in d["changes"]) == d["params_delta"]
    assert d["reshaped"] == ["global_pool", "head_drop"]


SPLIT = """\
archspec: 1
name: split
input: {channels: 3, size: [32, 32]}
blocks:
  BLOCK1: {label: Unit, params: {c: 8}, chain: [conv $c 3x3 p1]}
  BLOCK2: {label: Unit, params: {c: 8}, chain: [conv $c 3x3 p1, conv $c 1x1]}
network:
  stem: conv 8 3x3 p1
  body: [BLOCK1 c=16, BLOCK2 c=16, BLOCK1 c=32]
  pool: global_avgpool
"""


def test_a_block_split_in_two_pairs_with_its_instances(write_spec):
    # an import names the structures of one block `unit_1`, `unit_2`: same label, the instances pair in order
    a = write_spec(SPLIT.replace("BLOCK1", "unit_1").replace("BLOCK2", "unit_2"), "a.yaml")
    b = write_spec(SPLIT.replace("BLOCK1", "unit").replace("BLOCK2", "unit_b"), "b.yaml")
    d = diff(summarize(a), summarize(b))
    assert (d.count("added"), d.count("removed")) == (0, 0)
    assert [r.b.path for r in d.rows if r.a and r.b and r.a.block != r.b.block] == ["body.0", "body.1", "body.2"]


TWO_BLOCKS = """
archspec: 1
name: t
input: {{channels: 3, size: [16, 16]}}
blocks:
  {block}:
    label: {label}
    params: {{{param}: 8}}
    chain:
      - conv: conv2d ${param} 3x3 p1
      - {act}
network:
  - stem: conv2d 8 3x3 p1
  - layer1: {block} {param}=8
  - layer2: {block} {param}=16
"""


def test_a_block_under_another_name_at_the_same_path_is_renamed_not_replaced() -> None:
    """issue 26: an import's block (its own name, label and parameter names) against the zoo's is the
    same network named otherwise; a relu the one side names and the other numbers is renamed."""
    a = TWO_BLOCKS.format(block="basic_block", label="BasicBlock", param="out", act="relu")
    b = TWO_BLOCKS.format(block="basic", label="Basic block", param="width", act="act: relu")
    d = diff(summarize(a), summarize(b))
    assert (d.count("added"), d.count("removed"), d.count("changed")) == (0, 0, 2)
    assert d.params_delta == 0 and d.macs_delta == 0
    for r in d.rows:
        if r.status == "changed":
            assert r.a is not None and r.b is not None and r.a.path == r.b.path
            assert [(o.status, o.path_a, o.path_b) for o in r.ops] == [("renamed", f"{r.a.path}.1", f"{r.a.path}.act")]
    # a real change at that path is still one: a wider conv
    wider = b.replace("layer2: basic width=16", "layer2: basic width=24")
    d = diff(summarize(a), summarize(wider))
    (layer2,) = [r for r in d.rows if r.row.path == "layer2"]
    assert any(o.status == "changed" for o in layer2.ops) and d.params_delta > 0
