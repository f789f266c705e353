"""`archspec render`: the produced SVG and DOT are parsed and their structure checked.

Expected numbers come from outside archspec: node counts from walking the spec's YAML with
PyYAML, box labels and shapes from the Inception-v4 paper (arXiv 1602.07261, Figs. 4, 7, 9) and
from hand computation for the small residual spec below.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from archspec.cli import main
from tests.paths import ROOT, SPECS

V4 = SPECS / "inception_v4.yaml"
SVG = "{http://www.w3.org/2000/svg}"

# A small Inception-ResNet-like network: an Inception-ResNet-A block (paper Fig. 16) repeated,
# a projection-shortcut block, and a last Inception-ResNet-A with another scale.
RESIDUAL = """\
archspec: 1
name: tiny_resnet
input: {channels: 3, size: [64, 64]}
blocks:
  block35:
    label: Inception-ResNet-A
    params: {scale: 0.17}
    residual:
      scale: $scale
      body:
        - concat:
            branch0: conv 32 1x1
            branch1: [conv 32 1x1, conv 32 3x3 p1]
            branch2: [conv 32 1x1, conv 48 3x3 p1, conv 64 3x3 p1]
        - conv2d: conv2d 64 1x1 bias
      then: relu
  down:
    label: Projection
    residual:
      body: [conv 64 3x3 s2 p1, conv 64 3x3 p1 act=none]
      shortcut: conv 64 1x1 s2 act=none
      then: relu
network:
  stem: conv 64 3x3 s2 p1
  blocks:
    - block35 * 3
    - down
    - block35 scale=0.1
  pool: global_avgpool
  fc: linear 10
"""


# ---- reading the output ---------------------------------------------------------------------------
@dataclass
class Node:
    name: str
    classes: set[str]
    text: str
    x: float
    y: float


@dataclass
class Drawing:
    nodes: dict[str, Node]
    edges: list[tuple[str, str, set[str], str]]  # tail, head, classes, label
    clusters: list[str]

    def boxes(self) -> list[Node]:
        return [n for n in self.nodes.values() if "box" in n.classes]

    def named(self, text: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.text == text]

    def one(self, text: str) -> Node:
        found = self.named(text)
        assert len(found) == 1, (text, [n.text for n in self.nodes.values()])
        return found[0]

    def edge(self, tail_text: str, head_text: str) -> tuple[set[str], str]:
        tail, head = self.one(tail_text).name, self.one(head_text).name
        (found,) = [(c, label) for t, h, c, label in self.edges if (t, h) == (tail, head)]
        return found


def parse_svg(data: bytes) -> Drawing:
    root = ET.fromstring(data)
    nodes: dict[str, Node] = {}
    edges = []
    clusters = []
    for g in root.iter(SVG + "g"):
        classes = set((g.get("class") or "").split())
        title = g.findtext(SVG + "title") or ""
        texts = [t for t in g.iter(SVG + "text")]
        text = " ".join("".join(t.itertext()).strip() for t in texts)
        if "node" in classes:
            x = float(texts[0].get("x", 0)) if texts else 0.0
            y = float(texts[0].get("y", 0)) if texts else 0.0
            nodes[title] = Node(title, classes, text, x, y)
        elif "edge" in classes:
            tail, head = title.split("->")
            edges.append((tail, head, classes, text))
        elif "cluster" in classes:
            clusters.append(title)
    return Drawing(nodes, edges, clusters)


def draw(tmp_path: Path, spec: Path, *args: str, ext: str = "svg") -> bytes:
    out = tmp_path / f"out.{ext}"
    assert main(["render", str(spec), "-o", str(out), *args]) == 0
    return out.read_bytes()


def svg(tmp_path: Path, spec: Path, *args: str) -> Drawing:
    return parse_svg(draw(tmp_path, spec, *args))


# ---- counting from the YAML, independently of archspec -------------------------------------------------
def v4_yaml() -> dict:
    return yaml.safe_load(V4.read_text())


def count_ops(node: object, word: str) -> int:
    """Occurrences of short-form ops starting with ``word`` anywhere under a YAML node."""
    if isinstance(node, str):
        return int(node.split()[0] == word)
    if isinstance(node, list):
        return sum(count_ops(n, word) for n in node)
    if isinstance(node, dict):
        return sum(count_ops(v, word) for k, v in node.items() if k not in ("label", "params"))
    return 0


def count_concats(node: object) -> int:
    if isinstance(node, list):
        return sum(count_concats(n) for n in node)
    if isinstance(node, dict):
        return int("concat" in node) + sum(count_concats(v) for v in node.values())
    return 0


def network_entries(spec: dict) -> list[tuple[str, int]]:
    """(first word, repeat) of each top-level entry of the network, in order."""
    entries = []
    for value in spec["network"].values():
        for item in value if isinstance(value, list) else [value]:
            m = re.match(r"(\w+)(?:.*\*\s*(\d+))?", item)
            assert m, item
            entries.append((m.group(1), int(m.group(2) or 1)))
    return entries


# ---- network view ---------------------------------------------------------------------------------
def test_network_view_folds_repeats_one_box_per_entry(tmp_path: Path) -> None:
    spec = v4_yaml()
    entries = network_entries(spec)
    d = svg(tmp_path, V4)
    # stem 3 convs + 3 stem blocks + A×4 + Reduction-A + B×7 + Reduction-B + C×3 + 3 head ops
    assert len(d.boxes()) == len(entries) == 14
    labels = Counter(n.text for n in d.boxes())
    for name, repeat in entries:
        if name in spec["blocks"]:
            label = spec["blocks"][name]["label"]
            assert labels[label + (f" ×{repeat}" if repeat > 1 else "")] == 1, (label, labels)
    assert {"Inception-A ×4", "Inception-B ×7", "Inception-C ×3"} <= set(labels)
    assert {n.text for n in d.nodes.values() if "io" in n.classes} == {"Input", "logits"}
    assert any("legend" in n.classes for n in d.nodes.values())


def test_network_view_edges_carry_the_papers_shapes(tmp_path: Path) -> None:
    d = svg(tmp_path, V4)
    # Fig. 9: the stem gives 35×35×384, Inception-A keeps it, Reduction-A → 17×17×1024, Reduction-B → 8×8×1536
    assert d.edge("Stem (5a)", "Inception-A ×4")[1] == "384×35×35"
    assert d.edge("Inception-A ×4", "Reduction-A")[1] == "384×35×35"
    assert d.edge("Reduction-A", "Inception-B ×7")[1] == "1024×17×17"
    assert d.edge("Reduction-B", "Inception-C ×3")[1] == "1536×8×8"
    assert d.edge("Input", "3×3 conv (32, stride 2, V)")[1] == "3×299×299"
    assert d.edge("3×3 conv (32, stride 2, V)", "3×3 conv (32, V)")[1] == "32×149×149"  # Fig. 3
    assert d.edge("FC 1000", "logits")[1] == "1000"
    # a chain: every box has one edge in and one out
    assert len(d.edges) == len(d.boxes()) + 1


def test_symbolic_labels_are_formulas_that_give_the_paper_sizes(tmp_path: Path) -> None:
    d = svg(tmp_path, V4, "--symbolic")
    assert d.edge("Input", "3×3 conv (32, stride 2, V)")[1] == "3×H×W"
    for tail, head, c, h in [
        ("Stem (5a)", "Inception-A ×4", 384, 35),
        ("Reduction-A", "Inception-B ×7", 1024, 17),
        ("Reduction-B", "Inception-C ×3", 1536, 8),
    ]:
        channels, fh, fw = d.edge(tail, head)[1].split("×")
        assert int(channels) == c and fh.replace("H", "W") == fw
        assert eval(fh, {"floor": math.floor, "H": 299}) == h  # the paper's size at 299×299
    # each grid size is spelt out once (on its first edge, from the top); later edges give the channels
    assert d.edge("Inception-A ×4", "Reduction-A")[1] == "384×…"
    grids = [label.split("×", 1)[1] for *_, label in d.edges if label.count("×") == 2]
    assert len(grids) == len(set(grids)) and "H×W" in grids
    # the formula predicts the numbers drawn at another input size
    fh = d.edge("Stem (5a)", "Inception-A ×4")[1].split("×")[1]
    at = eval(fh, {"floor": math.floor, "H": 331})
    other = svg(tmp_path, V4, "--set", "input.size=[331,331]")
    assert other.edge("Inception-A ×4", "Reduction-A")[1] == f"384×{at}×{at}"


# ---- block view -----------------------------------------------------------------------------------
FIG4 = Counter({"1×1 conv (96)": 2, "1×1 conv (64)": 2, "3×3 conv (96)": 3, "3×3 avg pool": 1, "Filter concat": 1})


def test_block_view_draws_inception_a_like_figure_4(tmp_path: Path) -> None:
    block = v4_yaml()["blocks"]["inception_a"]
    d = svg(tmp_path, V4, "--block", "inception_a")
    boxes = d.boxes()
    ops = count_ops(block, "conv") + count_ops(block, "avgpool")
    assert len(boxes) == ops + count_concats(block) == 9
    assert Counter(b.text for b in boxes) == FIG4  # Fig. 4, one box per conv (no BatchNorm / ReLU boxes)
    merge = next(b for b in boxes if "kind-merge" in b.classes)
    top = next(n for n in d.nodes.values() if "io" in n.classes and n.text == "Filter concat")
    assert all(top.y < b.y < merge.y for b in boxes if b is not merge)  # the merge at the bottom (SVG y grows down)
    firsts = [h for t, h, _, _ in d.edges if t == top.name]
    assert len(firsts) == 4 and len({d.nodes[h].x for h in firsts}) == 4  # four branches side by side
    assert len([e for e in d.edges if e[1] == merge.name]) == 4
    assert "384×35×35" in [label for *_, label in d.edges]


def test_block_view_labels_stride_and_valid_padding(tmp_path: Path) -> None:
    d = svg(tmp_path, V4, "--block", "reduction_a")
    labels = Counter(b.text for b in d.boxes())
    # Fig. 7 with Table 1's k=192, l=224, m=256, n=384 for Inception-v4
    assert labels == Counter(
        {
            "3×3 conv (384, stride 2, V)": 1,
            "1×1 conv (192)": 1,
            "3×3 conv (224)": 1,
            "3×3 conv (256, stride 2, V)": 1,
            "3×3 max pool (stride 2, V)": 1,
            "Filter concat": 1,
        }
    )


def test_nested_concat_is_drawn(tmp_path: Path) -> None:
    block = v4_yaml()["blocks"]["inception_c"]
    d = svg(tmp_path, V4, "--block", "inception_c")
    merges = [b for b in d.boxes() if "kind-merge" in b.classes]
    assert len(merges) == count_concats(block) == 3
    assert len(d.boxes()) == count_ops(block, "conv") + count_ops(block, "avgpool") + 3


# ---- residual blocks --------------------------------------------------------------------------------
@pytest.fixture
def residual(write_spec) -> Path:
    return write_spec(RESIDUAL, "tiny_resnet.yaml")


def test_residual_block_draws_shortcut_and_scaled_sum(tmp_path: Path, residual: Path) -> None:
    d = svg(tmp_path, residual, "--block", "block35")
    add = d.one("+ ×0.17")
    relu = next(b for b in d.boxes() if b.text == "ReLU")
    top = next(n for n in d.nodes.values() if "io" in n.classes and n.text == "ReLU")  # the stem conv's ReLU
    shortcut = [e for e in d.edges if "shortcut" in e[2]]
    assert [(t, h) for t, h, *_ in shortcut] == [(top.name, add.name)]
    assert shortcut[0][3] == "64×32×32"  # 64 → 3x3 s2 p1 → 32
    body_in = [t for t, h, c, _ in d.edges if h == add.name and "shortcut" not in c]
    assert [d.nodes[t].text for t in body_in] == ["1×1 conv (64)"]
    assert add.y < relu.y and all(b.y < add.y for b in d.boxes() if b not in (add, relu))
    assert [label for t, h, _, label in d.edges if (t, h) == (add.name, relu.name)] == ["64×32×32"]
    assert sum(b.text == "Filter concat" for b in d.boxes()) == 1
    assert "shortcut" in next(n.text for n in d.nodes.values() if "legend" in n.classes)


def test_projection_shortcut_is_a_box(tmp_path: Path, residual: Path) -> None:
    d = svg(tmp_path, residual, "--block", "down")
    assert d.edge("1×1 conv (64, stride 2)", "+")[1] == "64×16×16"
    assert d.edge("3×3 conv (64)", "+")[1] == "64×16×16"
    assert not [e for e in d.edges if "shortcut" in e[2]]  # no edge jumps straight into the sum


def test_residual_network_folds_only_identical_instances(tmp_path: Path, residual: Path) -> None:
    d = svg(tmp_path, residual)
    labels = [b.text for b in sorted(d.boxes(), key=lambda b: b.y)]
    # block35 * 3 folds; the last block35 has another scale, so it stands alone
    assert labels == [
        "3×3 conv (64, stride 2)",
        "Inception-ResNet-A ×3",
        "Projection",
        "Inception-ResNet-A",
        "global avg pool",
        "FC 10",
    ]


AUX = """\
archspec: 1
name: tiny_aux
input: {channels: 3, size: [32, 32]}
blocks:
  incep:
    label: Inception
    params: {c: 8}
    concat:
      b0: conv $c 1x1
      b1: [conv 4 1x1, conv $c 3x3 p1]
network:
  stem: conv 16 3x3 p1
  features: [incep c=8, incep c=8, incep c=8, incep c=16]
  pool: global_avgpool
  fc: linear 10
aux:
  aux1:
    tap: features.1
    head: [adaptive_avgpool 4x4, conv 8 1x1, flatten, linear 10]
"""


def test_fold_stops_at_an_aux_tap_and_at_other_parameters(tmp_path: Path, write_spec) -> None:
    d = svg(tmp_path, write_spec(AUX))
    # features.0-1 fold; the aux head taps features.1, so features.2 stands alone; features.3 has c=16
    assert Counter(b.text for b in d.boxes() if "kind-block" in b.classes) == Counter({"Inception ×2": 1, "Inception": 2})
    aux = next(b for b in d.boxes() if "kind-aux" in b.classes)
    d.edge("Inception ×2", aux.text)  # the tap: exactly one edge from the folded pair to the head
    assert d.edge(aux.text, "aux1")[1] == "10"
    e = svg(tmp_path, write_spec(AUX), "--expand", "--all-instances")
    assert len(e.clusters) == 5  # four block instances and the aux head
    assert Counter(b.text for b in e.boxes())["FC 10"] == 2
    folded = svg(tmp_path, write_spec(AUX), "--expand")  # features.0-1 drawn once, as a cluster marked ×2
    assert sorted(folded.clusters) == ["cluster_aux1", "cluster_features.0", "cluster_features.2", "cluster_features.3"]


NESTED = """\
archspec: 1
name: nested
input: {channels: 3, size: [32, 32]}
blocks:
  inner:
    label: Inner
    concat: {a: conv 8 1x1, b: conv 8 3x3 p1}
  outer:
    label: Outer
    residual:
      body: [inner, inner, conv2d 16 1x1]
      scale: 0.2
      then: relu
network:
  stem: conv 16 3x3 p1
  body: [outer * 2]
  pool: global_avgpool
"""


def test_nested_blocks_by_depth(tmp_path: Path, write_spec) -> None:
    spec = write_spec(NESTED)
    block = svg(tmp_path, spec, "--block", "outer")
    assert Counter(b.text for b in block.boxes()) == Counter({"Inner ×2": 1, "1×1 conv (16)": 1, "+ ×0.2": 1, "ReLU": 1})
    one = svg(tmp_path, spec, "--expand", "--depth", "1", "--all-instances")  # Outer opened, Inner closed
    assert sorted(one.clusters) == ["cluster_body.0", "cluster_body.1"]
    assert Counter(b.text for b in one.boxes())["Inner"] == 4
    every = svg(tmp_path, spec, "--expand", "--all-instances")
    assert len(every.clusters) == 2 + 4 and not [b for b in every.boxes() if "kind-block" in b.classes]
    # repeats folded (the default): one Outer, inside it one Inner, each marked ×2
    folded = svg(tmp_path, spec, "--expand")
    assert sorted(folded.clusters) == ["cluster_body.0", "cluster_body.0.0"]
    assert Counter(b.text for b in folded.boxes()) == Counter(
        {
            "3×3 conv (16)": 1,
            "1×1 conv (8)": 1,
            "3×3 conv (8)": 1,
            "Filter concat": 1,
            "1×1 conv (16)": 1,
            "+ ×0.2": 1,
            "ReLU": 1,
            "global avg pool": 1,
        }
    )
    assert "Outer ×2 (body.0 … body.1)" in folded_labels(draw(tmp_path, spec, "--expand"))
    assert "Inner ×2 (body.0.0 … body.0.1)" in folded_labels(draw(tmp_path, spec, "--expand"))


# ---- expanded view ---------------------------------------------------------------------------------
def v4_primitives() -> tuple[int, int, int]:
    """(block instances, primitive ops, composite convs) of Inception-v4, counted from the YAML."""
    spec = v4_yaml()
    blocks = spec["blocks"]
    instances = prims = convs = 0
    for name, repeat in network_entries(spec):
        if name in blocks:
            b = blocks[name]
            instances += repeat
            n_conv = count_ops(b, "conv")
            per = 3 * n_conv + count_ops(b, "maxpool") + count_ops(b, "avgpool") + count_concats(b)
        else:
            n_conv = int(name == "conv")
            per = 3 if name == "conv" else 1  # conv = conv2d, bn, relu
        prims += repeat * per
        convs += repeat * n_conv
    return instances, prims, convs


def test_expanded_view_draws_every_op_with_blocks_as_clusters(tmp_path: Path) -> None:
    instances, prims, convs = v4_primitives()
    assert instances == 3 + 4 + 1 + 7 + 1 + 3
    d = svg(tmp_path, V4, "--expand", "--primitives", "--all-instances")
    assert len(d.clusters) == instances
    assert "cluster_features.6" in d.clusters
    assert len(d.boxes()) == prims
    labels = Counter(b.text for b in d.boxes())
    assert labels["BatchNorm"] == labels["ReLU"] == convs  # each composite conv shows its BatchNorm and ReLU
    assert not [b for b in d.boxes() if "kind-block" in b.classes]


def folded_labels(data: bytes) -> list[str]:
    """Texts of the cluster labels of an SVG."""
    root = ET.fromstring(data)
    return [
        "".join(t.itertext())
        for g in root.iter(SVG + "g")
        if "cluster" in (g.get("class") or "")
        for t in g.findall(SVG + "text")
    ]


def test_expanded_view_folds_repeats_and_keeps_composites_whole(tmp_path: Path) -> None:
    spec = v4_yaml()
    entries = network_entries(spec)
    data = draw(tmp_path, V4, "--expand", "--depth", "1")
    d = parse_svg(data)
    runs = [name for name, _ in entries if name in spec["blocks"]]
    assert len(d.clusters) == len(runs) == 8  # one cluster per run of repeats: A ×4 drawn once
    labels = folded_labels(data)
    for name, repeat in entries:
        if repeat > 1:
            assert any(t.startswith(spec["blocks"][name]["label"] + f" ×{repeat} (") for t in labels), (name, labels)
    boxes = Counter(b.text for b in d.boxes())
    assert boxes["BatchNorm"] == boxes["ReLU"] == 0  # a composite conv is one box
    convs = sum(count_ops(spec["blocks"][name], "conv") for name in runs) + sum(1 for name, _ in entries if name == "conv")
    assert sum(1 for b in d.boxes() if "kind-conv" in b.classes) == convs
    height = float(ET.fromstring(data).get("height").removesuffix("pt"))
    assert height < 6000  # was 21,052 px as a PNG with every instance and every primitive


def test_plain_conv_is_drawn_apart_from_conv_bn_relu(tmp_path: Path, residual: Path) -> None:
    d = svg(tmp_path, residual, "--block", "block35")
    linear = [b.text for b in d.boxes() if "kind-conv_linear" in b.classes]
    assert linear == ["1×1 conv (64)"]  # the conv2d 64 1x1 bias before the sum: no BatchNorm, no ReLU
    assert not [b for b in d.boxes() if "kind-conv" in b.classes and b.text == "1×1 conv (64)"]
    legend = next(n.text for n in d.nodes.values() if "legend" in n.classes)
    assert "without activation" in legend
    down = svg(tmp_path, residual, "--block", "down")  # act=none convs are linear too; conv 64 3x3 s2 p1 is not
    assert Counter((b.text, "kind-conv_linear" in b.classes) for b in down.boxes() if "conv" in b.text) == Counter(
        {("3×3 conv (64, stride 2)", False): 1, ("3×3 conv (64)", True): 1, ("1×1 conv (64, stride 2)", True): 1}
    )


def test_expanded_depth_zero_keeps_blocks_closed(tmp_path: Path) -> None:
    instances, _, _ = v4_primitives()
    d = svg(tmp_path, V4, "--depth", "0", "--all-instances")
    assert not d.clusters
    assert len([b for b in d.boxes() if "kind-block" in b.classes]) == instances


# ---- formats, determinism, errors -----------------------------------------------------------------
def test_formats_by_extension(tmp_path: Path) -> None:
    assert draw(tmp_path, V4, ext="png").startswith(b"\x89PNG\r\n\x1a\n")
    assert draw(tmp_path, V4, ext="pdf").startswith(b"%PDF")
    dot = draw(tmp_path, V4, "--block", "inception_a", ext="dot").decode()
    assert dot.startswith("digraph inception_v4 {")
    assert len(re.findall(r'label="1×1 conv \(96\)"', dot)) == 2
    edges = re.findall(r'^\t"?([^"\s]+)"? -> "?([^"\s]+)"?', dot, re.M)
    # every box has one arrow in, the concat four, the output one: 8 ops + 4 + 1
    assert len(edges) == 13
    fanout = Counter(t for t, _ in edges)
    assert max(fanout.values()) == 4  # the input feeds four branches


def test_dot_output_is_byte_identical_across_processes(tmp_path: Path) -> None:
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"v{seed}.dot"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        subprocess.run(
            [sys.executable, "-m", "archspec.cli", "render", str(V4), "--expand", "-o", str(out)], check=True, env=env, cwd=ROOT
        )
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] and len(outs[0]) > 10_000


def test_render_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from archspec.cli import main; "
        f"rc = main(['render', {str(V4)!r}, '--block', 'inception_a', '-o', {str(tmp_path / 'a.svg')!r}]); "
        "assert rc == 0; print('torch' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


def test_spec_error_is_the_same_as_check(tmp_path: Path, write_spec, capsys) -> None:
    bad = write_spec(V4.read_text().replace("conv 96 3x3 p1, conv 96 3x3 p1]", "conv 96 3x3 p1, conv 96 3x3 s2]"))
    out = tmp_path / "x.svg"
    out.write_text("old")
    assert main(["check", str(bad)]) == 2
    check_err = capsys.readouterr().err
    assert main(["render", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == check_err and re.match(r"^\S+\.yaml:\d+:\d+: error: .*\[shape-mismatch\]", err)
    assert out.read_text() == "old"  # nothing written over it


def test_unknown_block_gets_did_you_mean(tmp_path: Path, capsys) -> None:
    assert main(["render", str(V4), "--block", "inception_aa", "-o", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert re.match(r"^\S+inception_v4\.yaml:\d+:\d+: error: .*inception_aa", err)
    assert "did you mean 'inception_a'?" in err
    assert not (tmp_path / "x.svg").exists()


def test_unused_block_points_at_its_definition(tmp_path: Path, write_spec, capsys) -> None:
    spec = write_spec(RESIDUAL.replace("  down:\n", "  unused:\n    concat: [conv 8 1x1, conv 8 1x1]\n  down:\n"))
    assert main(["render", str(spec), "--block", "unused", "-o", str(tmp_path / "x.svg")]) == 2
    line = RESIDUAL.splitlines().index("  down:") + 1
    assert re.match(
        rf"^\S+\.yaml:{line}:3: error: block 'unused' is defined here but the network never uses it", capsys.readouterr().err
    )


def test_unknown_extension(tmp_path: Path, capsys) -> None:
    assert main(["render", str(V4), "-o", str(tmp_path / "x.jpeg")]) == 2
    assert "end the file name in .svg" in capsys.readouterr().err


def test_missing_dot_says_how_to_install_it(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    env = {**os.environ, "PATH": str(tmp_path / "empty"), "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "archspec.cli", "render", str(V4), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install graphviz" in lines[0] and "Traceback" not in r.stderr
    assert not out.exists()
    r = subprocess.run(
        [sys.executable, "-m", "archspec.cli", "render", str(V4), "-o", str(tmp_path / "x.dot")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert r.returncode == 0  # DOT needs no dot


# ---- gallery ------------------------------------------------------------------------------------
def test_gallery_covers_every_spec_and_block(tmp_path: Path, write_spec) -> None:
    from archspec.gallery import main as gallery

    specs = tmp_path / "zoo"
    specs.mkdir()
    (specs / "tiny_resnet.yaml").write_text(RESIDUAL)
    (specs / "inception_v4.yaml").write_text(V4.read_text())
    out = tmp_path / "gallery"
    out.mkdir()
    (out / "stale.svg").write_text("<svg/>")
    assert gallery(["--specs", str(specs), "--out", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    for spec, blocks in [("tiny_resnet", {"block35": 4, "down": 1}), ("inception_v4", {b: 0 for b in v4_yaml()["blocks"]})]:
        assert f"{spec}.svg" in names and f"{spec}.png" in names and f"{spec}.html" in names
        for b in blocks:
            assert f"{spec}.{b}.svg" in names
            parse_svg((out / f"{spec}.{b}.svg").read_bytes())
    assert "tiny_resnet.block35.png" in names and "tiny_resnet.down.png" not in names  # PNG for repeated blocks
    assert "stale.svg" not in names
    index = (out / "README.md").read_text()
    assert "![tiny_resnet: Inception-ResNet-A](tiny_resnet.block35.svg)" in index
    assert "[interactive page](tiny_resnet.html)" in index and (out / "tiny_resnet.html").read_text().startswith(
        "<!DOCTYPE html>"
    )


def test_committed_gallery_has_every_zoo_spec() -> None:
    gallery = ROOT / "docs" / "gallery"
    index = (gallery / "README.md").read_text()
    for spec in sorted(SPECS.glob("*.yaml")):
        name = yaml.safe_load(spec.read_text())["name"]
        assert (gallery / f"{name}.svg").exists(), f"rerun python -m archspec.gallery for {spec.name}"
        assert (gallery / f"{name}.html").exists(), f"rerun python -m archspec.gallery for {spec.name}"
        assert f"## {name}\n" in index


def test_instances_carry_their_names(tmp_path: Path) -> None:
    googlenet = SPECS / "googlenet.yaml"
    entries = [next(iter(e)) for e in yaml.safe_load(googlenet.read_text())["network"]]
    names = [k.removeprefix("inception") for k in entries if k.startswith("inception")]
    assert names[:3] == ["3a", "3b", "4a"] and len(names) == 9
    d = svg(tmp_path, googlenet)
    blocks = [b.text for b in sorted(d.boxes(), key=lambda b: b.y) if "kind-block" in b.classes]
    assert blocks == [f"Inception ({n})" for n in names]  # as the paper's Table 1 names them
    assert "Inception-A ×4" in {b.text for b in svg(tmp_path, V4).boxes()}  # list positions add no name


@pytest.mark.parametrize("block", ["inception_b", "inception_c", "reduction_a", "reduction_b"])
def test_branches_are_drawn_in_the_spec_order(tmp_path: Path, block: str) -> None:
    definition = v4_yaml()["blocks"][block]
    d = svg(tmp_path, V4, "--block", block)
    (top,) = [n for n in d.nodes.values() if "io" in n.classes and any(t == n.name for t, *_ in d.edges)]
    firsts = sorted((d.nodes[h] for t, h, *_ in d.edges if t == top.name), key=lambda n: n.x)
    params = definition.get("params", {})  # the network uses each block with its declared values
    branches = definition["concat"]
    expected = []
    for branch in branches.values() if isinstance(branches, dict) else branches:
        while isinstance(branch, (list, dict)):
            branch = branch[0] if isinstance(branch, list) else next(iter(branch.values()))
        word, *rest = branch.split()
        channels = str(params.get(rest[0][1:], rest[0])) if rest else ""
        expected.append("pool" if "pool" in word else f"({channels}")  # conv N … is labelled "… conv (N…"
    assert len(firsts) == len(expected)
    for box, token in zip(firsts, expected, strict=True):
        assert token in box.text, ([b.text for b in firsts], expected)


# ---- instances, stages, honest folding ------------------------------------------------------------------
SE_IN_LAYER3 = """\
archspec: 1
name: tiny_se
use: [zoo:blocks/resnet.yaml]
input: {channels: 3, size: [32, 32]}
network:
  stem: conv 16 3x3 p1
  layer1:
    - bottleneck width=8 out=32 projection=true
    - bottleneck width=8 out=32 * 2
  layer3:
    - bottleneck width=16 out=64 stride=2 projection=true
    - bottleneck width=16 out=64 * 2
    - bottleneck width=16 out=64 se=true * 3
  pool: global_avgpool
  fc: linear 10
"""


def test_stages_come_from_the_specs_grouping_and_say_what_differs(tmp_path: Path, write_spec) -> None:
    spec = write_spec(SE_IN_LAYER3)
    top = [b.text for b in sorted(svg(tmp_path, spec).boxes(), key=lambda b: b.y)]
    # layer1 / layer3 are the YAML's named lists of bottleneck instances: one box each, counted from the YAML
    assert top[1:3] == ["layer1: Bottleneck ×3 (1 with downsample)", "layer3: Bottleneck ×6 (1 with downsample, 3 with se)"]
    inside = [b.text for b in sorted(svg(tmp_path, spec, "--block", "layer3").boxes(), key=lambda b: b.y)]
    # the run of six splits where the design changes: the SE instances fold apart from the plain ones
    assert inside == ["Bottleneck (with downsample)", "Bottleneck ×2", "Bottleneck ×3 (with se)"]


def test_block_path_draws_that_instance(tmp_path: Path, write_spec, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(SE_IN_LAYER3)
    first = svg(tmp_path, spec, "--block", "bottleneck")  # a block name: its first instance, layer1.0
    assert "SE gate" not in {b.text for b in first.boxes()}
    gated = svg(tmp_path, spec, "--block", "layer3.3")  # an instance path: its own parameters, with its gate
    assert "SE gate" in {b.text for b in gated.boxes()}  # blocks/se.yaml's label
    assert "1×1 conv (64)" in {b.text for b in svg(tmp_path, spec, "--block", "layer3.0").boxes()}  # its projection
    capsys.readouterr()
    assert main(["render", str(spec), "--block", "layer9.0", "-o", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert "no block or block instance of that name" in err and "did you mean 'layer3.0'?" in err
    assert main(["render", str(spec), "--block", "zzz", "-o", str(tmp_path / "x.svg")]) == 2
    err = capsys.readouterr().err
    assert "blocks in this network: bottleneck" in err and "layer1.0" in err  # both kinds listed


def test_label_text_is_drawn_as_written(tmp_path: Path, write_spec) -> None:
    text = "&lt;script&gt; &amp; a<b & c"
    spec = write_spec(RESIDUAL.replace("label: Projection", f"label: {text!r}".replace("'", '"')))
    d = svg(tmp_path, spec)
    assert text in {b.text for b in d.boxes()}  # Graphviz decodes entities: they must reach it escaped


def test_render_says_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for ext in ("dot", "svg", "html"):
        out = tmp_path / f"n.{ext}"
        assert main(["render", str(V4), "-o", str(out)]) == 0
        assert capsys.readouterr().err.startswith(f"wrote {out}")
