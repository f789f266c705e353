"""`archspec render -o net.html`: the interactive page, in Python and in a real headless browser.

Independent truth: box labels and counts from the Inception-v4 paper (Fig. 4, 9) and from walking
the spec's YAML with PyYAML; numbers from `archspec summary --json` (itself checked against the
compiled model and fvcore in test_summary.py).

The browser tests drive Chromium through Playwright. They use the `chromium` Debian package
(/usr/bin/chromium, or $ARCHSPEC_CHROMIUM), else Playwright's own Chromium if one is installed;
with neither (or without the playwright package) they skip and say why. To run them:

    apt-get install -y chromium && pip install playwright && python -m pytest tests/test_html.py
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from archspec.cli import main
from archspec.view import packed
from tests.paths import ROOT

V4 = ROOT / "specs" / "inception_v4.yaml"
FIG4 = Counter({"1×1 conv (96)": 2, "1×1 conv (64)": 2, "3×3 conv (96)": 3, "3×3 avg pool": 1, "Filter concat": 1})
HOSTILE = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">"\' & <!-- \\N'

TINY = """\
archspec: 1
name: tiny
input: {channels: 3, size: [32, 32]}
blocks:
  pair:
    label: LABEL
    concat:
      a: conv 8 1x1
      b: [conv 4 1x1, conv 8 3x3 p1]
network:
  stem: conv 16 3x3
  body: [pair * 2]
  pool: global_avgpool
  fc: linear 10
"""


def page_data(text: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/octet-stream" id="archspec-data"[^>]*>(.*?)</script>', text, re.S)
    assert m
    data: dict[str, Any] = json.loads(gzip.decompress(base64.b64decode(m.group(1))))  # as the page's script reads it
    return data


@pytest.fixture(scope="module")
def v4_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "inception_v4.html"
    assert main(["render", str(V4), "-o", str(out)]) == 0
    return out


# ---- the file itself ------------------------------------------------------------------------------
def test_page_is_self_contained(v4_page: Path) -> None:
    text = v4_page.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text)  # nothing fetched from anywhere
    assert "<link" not in text and not re.search(r"<script[^>]*\ssrc=", text)
    assert text.count("<script") == 2 and text.count("</script") == 2  # the data and the code, inlined
    assert "function" in text and "archspec-data" in text


def test_page_numbers_match_summary(v4_page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = page_data(v4_page.read_text())
    assert main(["summary", str(V4), "--json"]) == 0
    rows = {b["path"]: b for b in json.loads(capsys.readouterr().out)["blocks"]}
    boxes = {d["path"]: d for d in data["boxes"].values() if d["kind"] == "block"}
    a = boxes["features.6"]  # Inception-A ×4, drawn once
    assert a["instances"] == ["features.6", "features.7", "features.8", "features.9"]
    assert a["params"] == rows["features.6"]["params"] and a["macs"] == rows["features.6"]["macs"]
    assert a["params_total"] == sum(rows[p]["params"] for p in a["instances"])
    assert a["shape"] == "×".join(map(str, rows["features.6"]["output_shape"]))
    assert a["formula"] == rows["features.6"]["output_formula"]
    # every top-level instance of the network is a box or stands for one (repeats)
    covered = {p for d in boxes.values() for p in d["instances"]}
    assert covered == {p for p, r in rows.items() if r["kind"] == "block"}


def test_every_block_of_the_spec_can_be_unfolded_and_every_module_path_found(v4_page: Path) -> None:
    spec = yaml.safe_load(V4.read_text())
    data = page_data(v4_page.read_text())
    opened = {p for v in data["views"].values() for p in v["open"]}
    labels = {d["label"] for d in data["boxes"].values() if d["kind"] == "cluster"}
    assert {b["label"] for b in spec["blocks"].values()} == labels
    assert {"features.6", "features.11", "features.19"} <= opened
    for path in ("features.9.branch3.1", "features.6.branch1.1.conv", "features.21", "last_linear"):
        where = data["index"][path]
        assert where["view"] in data["views"] and where["box"] in data["boxes"]


def test_packed_data_cannot_end_a_script() -> None:
    text = packed({"a": HOSTILE, "b": ["\u2028"]})
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", text)  # base64: no <, > or & whatever the strings hold
    assert json.loads(gzip.decompress(base64.b64decode(text)))["a"] == HOSTILE


def test_hostile_label_is_text_in_the_file(tmp_path: Path, write_spec) -> None:
    spec = write_spec(TINY.replace("LABEL", json.dumps(HOSTILE)))
    out = tmp_path / "p.html"
    assert main(["render", str(spec), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.count("<script") == 2 and text.count("</script") == 2 and "<img" not in text
    assert HOSTILE in {d["label"] for d in page_data(text)["boxes"].values()}
    svg = tmp_path / "p.svg"  # the static drawings escape it too
    assert main(["render", str(spec), "-o", str(svg)]) == 0
    assert "<script" not in svg.read_text() and "<img" not in svg.read_text()


def test_static_options_are_refused_for_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", str(V4), "--block", "inception_a", "-o", str(tmp_path / "x.html")]) == 2
    assert "an .html page holds every view" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


# ---- in a browser ---------------------------------------------------------------------------------
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("browser tests need playwright: pip install playwright (and apt-get install chromium)")
    executable = os.environ.get("ARCHSPEC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        except Error as e:
            pytest.skip(f"browser tests need Chromium: apt-get install chromium (launch failed: {str(e)[:200]})")
        yield b
        b.close()


class Page:
    """A page in the browser, with the console watched."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on(
            "request",
            lambda r: self.errors.append("request " + r.url) if not r.url.startswith(("file:", "data:", "about:")) else None,
        )
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("#canvas svg")

    def view(self) -> list[str]:
        return (self.page.locator("#canvas").get_attribute("data-open") or "").split()

    def boxes(self) -> Counter[str]:
        texts = self.page.eval_on_selector_all("#canvas g.node.box", "gs => gs.map(g => g.textContent.trim())")
        return Counter(re.sub(r"\s+", " ", t) for t in texts)

    def box(self, text: str) -> Any:
        boxes = self.page.locator("#canvas g.node.box")
        texts = [re.sub(r"\s+", " ", t.strip()) for t in boxes.all_text_contents()]
        assert texts.count(text) == 1, (text, texts)
        return boxes.nth(texts.index(text))

    def facts(self, where: str) -> dict[str, str]:
        terms = self.page.eval_on_selector_all(where + " dd", "ds => ds.map(d => [d.dataset.term, d.textContent])")
        return dict(terms)


def number(text: str) -> int:
    return int(text.split()[0].replace(",", ""))


def test_opens_on_the_network_view_without_errors(browser: Any, v4_page: Path) -> None:
    p = Page(browser, v4_page)
    assert p.view() == []
    boxes = p.boxes()
    assert {"Inception-A ×4", "Reduction-A", "Inception-B ×7", "Reduction-B", "Inception-C ×3"} <= set(boxes)
    assert sum(boxes.values()) == 14  # as the SVG network view (tests/test_render.py)
    assert p.page.locator("#canvas svg").count() == 1
    assert p.errors == []


def test_unfold_a_block_in_place_and_fold_it(browser: Any, v4_page: Path) -> None:
    p = Page(browser, v4_page)
    before = p.boxes()
    p.box("Inception-A ×4").dblclick()
    assert p.view() == ["features.6"]
    after = p.boxes()
    assert after - before == FIG4 and before - after == Counter({"Inception-A ×4": 1})  # its ops, Fig. 4
    title = p.page.locator("#canvas g.cluster-block > text").first.text_content()
    assert title == "Inception-A ×4 (features.6 … features.9)"
    p.page.locator("#canvas g.cluster-block > text").first.dblclick()  # its frame's title folds it
    assert p.view() == [] and p.boxes() == before
    p.page.click("#open-all")
    assert len(p.view()) == 8 and not [t for t in p.boxes() if t.startswith("Inception-A")]
    p.page.click("#fold-all")
    assert p.boxes() == before
    assert p.errors == []


def test_search_a_module_path(browser: Any, v4_page: Path) -> None:
    p = Page(browser, v4_page)
    p.page.fill("#search", "features.8.branch2.2")  # the third Inception-A, drawn once as features.6
    p.page.press("#search", "Enter")
    assert p.view() == ["features.6"]
    found = p.page.locator("#canvas g.node.found")
    assert found.count() == 1 and found.text_content().strip() == "3×3 conv (96)"
    facts = p.facts("#info")
    assert facts["path"] == "features.6.branch2.2" and "features.9.branch2.2" in facts["instances"]
    assert "found features.8.branch2.2" in p.page.locator("#info").text_content()
    p.page.fill("#search", "last_lin")  # a prefix lists candidates
    assert "last_linear" in p.page.locator("#results").text_content()
    p.page.fill("#search", "conv 448 3x1")  # an op as the spec writes it (Inception-C, Fig. 6)
    p.page.press("#search", "Enter")
    assert p.view() == ["features.19"] and p.facts("#info")["op"] == "conv 448 3x1 p1,0"
    assert p.errors == []


def test_tooltip_numbers_match_summary_json(browser: Any, v4_page: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(V4), "--json", "--ops"]) == 0
    summary = json.loads(capsys.readouterr().out)
    rows = {b["path"]: b for b in summary["blocks"]}
    p = Page(browser, v4_page)
    p.box("Reduction-A").hover()
    tip = p.facts("#tip")
    row = rows["features.10"]
    assert number(tip["params"]) == row["params"] and number(tip["MACs"]) == row["macs"]
    assert tip["output"] == "×".join(map(str, row["output_shape"])) and tip["path"] == "features.10"
    assert tip["formula"] == row["output_formula"]
    assert re.search(r"specs/inception_v4\.yaml:\d+", tip["YAML"])
    line = int(tip["YAML"].rsplit(":", 1)[1])
    assert V4.read_text().splitlines()[line - 1].strip().startswith("- reduction_a ")
    p.box("Inception-C ×3").hover()
    tip = p.facts("#tip")
    each, total = re.match(r"([\d,]+) each, ([\d,]+) in all", tip["params"]).groups()
    assert int(each.replace(",", "")) == rows["features.19"]["params"]
    assert int(total.replace(",", "")) == sum(rows[f"features.{i}"]["params"] for i in (19, 20, 21))
    # an op inside an unfolded block: its conv and BatchNorm rows of summary --ops
    p.box("Reduction-A").dblclick()
    p.box("3×3 conv (384, stride 2, V)").hover()
    tip = p.facts("#tip")
    ops = [o for o in rows["features.10"]["ops"] if o["path"].startswith(tip["path"] + ".")]
    assert [o["op"] for o in ops] == ["conv2d", "bn", "relu"]
    assert number(tip["params"]) == sum(o["params"] for o in ops)
    assert number(tip["MACs"]) == sum(o["macs"] for o in ops)
    assert tip["output"] == "×".join(map(str, ops[-1]["output_shape"])) == "384×17×17"
    assert p.errors == []


def viewbox(p: Page) -> list[float]:
    return [float(v) for v in p.page.locator("#canvas svg").get_attribute("viewBox").split()]


def outside(p: Page, selector: str) -> list[str]:
    """The elements matching ``selector`` whose bounding rectangle is not inside the canvas (1 px slack)."""
    found: list[str] = p.page.evaluate(
        """sel => {
          const c = document.getElementById("canvas").getBoundingClientRect();
          return [...document.querySelectorAll(sel)].filter(g => {
            const r = g.getBoundingClientRect();
            return r.left < c.left - 1 || r.top < c.top - 1 || r.right > c.right + 1 || r.bottom > c.bottom + 1;
          }).map(g => g.id + " " + g.textContent.trim().replace(/\\s+/g, " "));
        }""",
        selector,
    )
    return found


@pytest.fixture(scope="module")
def densenet_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "densenet121.html"
    assert main(["render", str(ROOT / "specs" / "densenet121.yaml"), "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize("which", ["v4_page", "densenet_page"])
def test_the_whole_network_is_in_view_after_load(browser: Any, which: str, request: pytest.FixtureRequest) -> None:
    p = Page(browser, request.getfixturevalue(which))
    assert p.page.locator("#canvas g.node").count() > 10
    assert outside(p, "#canvas g.node") == []  # fitted in both dimensions: none cut off below or beside
    assert p.errors == []


def test_densenet_top_view_is_its_stages(browser: Any, densenet_page: Path) -> None:
    spec = yaml.safe_load((ROOT / "specs" / "densenet121.yaml").read_text())
    chain = spec["network"]["features"]["chain"]
    p = Page(browser, densenet_page)
    boxes = p.boxes()
    assert sum(boxes.values()) <= 20
    for name, entry in chain.items():  # each dense block of the YAML is one box: "denseblockN: Dense layer ×repeat"
        if isinstance(entry, dict):
            assert boxes[f"{name}: Dense layer ×{entry['repeat']}"] == 1
    assert boxes["Transition"] == 3
    p.box("denseblock3: Dense layer ×24").dblclick()  # a stage unfolds into its blocks
    assert p.view() == ["features.denseblock3"]
    assert outside(p, "#canvas g.cluster-block") == []
    assert p.errors == []


def test_unfolding_keeps_the_frame_in_view(browser: Any, v4_page: Path) -> None:
    p = Page(browser, v4_page)
    p.box("Inception-A ×4").dblclick()
    assert p.view() == ["features.6"]
    frame = p.page.locator("#canvas g.cluster-block")
    assert frame.count() == 1 and outside(p, "#canvas g.cluster-block") == []
    title = frame.locator("text").first.text_content()
    assert title == "Inception-A ×4 (features.6 … features.9)"  # its title whole, not "ption-A ×4 (…"
    p.page.locator("#canvas g.cluster-block > text").first.dblclick()  # folding: the block's box stays in view
    assert p.view() == [] and outside(p, "#canvas g.node.kind-block") == []
    assert p.errors == []


def test_wheel_scrolls_and_ctrl_wheel_zooms(browser: Any, v4_page: Path) -> None:
    p = Page(browser, v4_page)
    p.page.mouse.move(500, 400)
    p.page.keyboard.down("Control")
    p.page.mouse.wheel(0, -300)  # Ctrl+wheel: zoom in around the pointer
    p.page.keyboard.up("Control")
    x1, y1, w1, h1 = viewbox(p)
    x0, y0, w0, h0 = [float(v) for v in p.page.evaluate("window.archspecPage.state.box").values()]
    assert w1 < w0 or h1 < h0
    p.page.mouse.wheel(0, 200)  # the wheel alone scrolls down, same scale
    x2, y2, w2, h2 = viewbox(p)
    assert (w2, h2) == (w1, h1) and x2 == x1 and y2 > y1
    p.page.locator("#canvas").focus()
    p.page.keyboard.press("PageDown")
    assert viewbox(p)[1] > y2 and viewbox(p)[2] == w1
    p.page.keyboard.press("Home")
    assert viewbox(p)[1] < y0 + 1
    p.page.keyboard.press("-")
    assert viewbox(p)[2] > w1
    p.page.mouse.down()  # dragging up-left shows what lies down-right
    before = viewbox(p)
    p.page.mouse.move(400, 300, steps=5)
    p.page.mouse.up()
    after = viewbox(p)
    assert after[0] > before[0] and after[1] > before[1] and after[2] == before[2]
    p.page.keyboard.press("0")  # fit: everything in view again
    assert outside(p, "#canvas g.node") == []
    assert p.errors == []


def test_search_scrolls_the_hit_into_view(browser: Any, densenet_page: Path) -> None:
    p = Page(browser, densenet_page)
    p.page.fill("#search", "features.denseblock3.denselayer17.conv2")
    p.page.press("#search", "Enter")
    assert "features.denseblock3.denselayer17" in p.view()
    found = p.page.locator("#canvas g.found")
    assert found.count() == 1 and outside(p, "#canvas g.found") == []
    assert p.facts("#info")["path"].startswith("features.denseblock3.denselayer17")
    assert p.errors == []


def natural_key(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def test_open_blocks_are_listed_in_natural_order(browser: Any, v4_page: Path) -> None:
    p = Page(browser, v4_page)
    p.page.click("#open-all")
    p.page.locator("#canvas g.node.box").first.click()
    listed = [t.removeprefix("fold ") for t in p.page.locator("#info .open-list button").all_text_contents()]
    assert len(listed) == 8 and listed == sorted(listed, key=natural_key)
    assert listed.index("features.10") > listed.index("features.6")  # not "features.10" < "features.6" as text
    p.page.fill("#search", "features.1")
    results = [t for t in p.page.locator("#results li > span:first-child").all_text_contents() if t.startswith("features.1")]
    assert results == sorted(results, key=natural_key)
    assert p.errors == []


def test_resnet50_shows_its_four_stages(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "resnet50.html"
    assert main(["render", str(ROOT / "specs" / "resnet50.yaml"), "-o", str(out)]) == 0
    spec = yaml.safe_load((ROOT / "specs" / "resnet50.yaml").read_text())
    p = Page(browser, out)
    stages = [t for t in p.boxes() if t.startswith("layer")]
    expected = {}
    for name in ("layer1", "layer2", "layer3", "layer4"):  # instances counted from the YAML: first + "* N"
        n = sum(int(e.split("*")[1]) if "*" in e else 1 for e in spec["network"][name])
        expected[name] = n
    assert sorted(t.split(":")[0] for t in stages) == list(expected)
    for t in stages:
        name = t.split(":")[0]
        assert t.startswith(f"{name}: Bottleneck ×{expected[name]}")
    p.box(next(t for t in stages if t.startswith("layer3"))).dblclick()
    assert p.view() == ["layer3"]
    assert Counter(t.split(" ×")[0].split(" (")[0] for t in p.boxes() if t.startswith("Bottleneck"))["Bottleneck"] == 2
    assert p.errors == []


def test_hostile_spec_text_stays_text(browser: Any, tmp_path: Path, write_spec) -> None:
    spec = write_spec(TINY.replace("LABEL", json.dumps(HOSTILE)), "evil'\"<b>.yaml")
    out = tmp_path / "evil.html"
    assert main(["render", str(spec), "-o", str(out)]) == 0
    p = Page(browser, out)
    assert p.page.evaluate("window.pwned === undefined") and p.page.locator("#canvas img").count() == 0
    assert p.boxes()[HOSTILE + " ×2"] == 1
    p.box(HOSTILE + " ×2").hover()
    assert p.page.locator("#tip strong").text_content() == HOSTILE + " ×2"
    assert "evil'\"<b>.yaml" in p.facts("#tip")["YAML"]
    p.box(HOSTILE + " ×2").dblclick()
    assert p.page.evaluate("window.pwned === undefined")
    assert p.errors == []


# ---- notebook display -----------------------------------------------------------------------------
def test_report_shows_its_table_and_diagram_in_a_notebook() -> None:
    import xml.etree.ElementTree as ET

    import archspec

    spec = yaml.safe_load(V4.read_text())
    report = archspec.check(V4)
    text = report._repr_html_()
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", text)
    assert len(rows) == len(report.rows) == 25
    assert ("Reduction-A", "features.10", "1024×17×17") in rows  # Fig. 9
    assert f"{report.params:,}" == "42,679,816" and "42,679,816" in text
    svg = text[text.index("<svg") : text.index("</svg>") + 6]
    boxes = [g for g in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}g") if "box" in (g.get("class") or "")]
    assert len(boxes) == 14  # the network view, repeats folded
    labels = {"".join(t.itertext()).split(" ×")[0] for b in boxes for t in b.iter("{http://www.w3.org/2000/svg}text")}
    assert {b["label"] for b in spec["blocks"].values()} <= labels


def test_notebook_reprs_escape_spec_text(write_spec) -> None:
    import archspec

    spec = write_spec(TINY.replace("LABEL", json.dumps(HOSTILE)))
    text = archspec.check(spec)._repr_html_()
    assert "<script" not in text and "<img" not in text and html_escape(HOSTILE) in text
    bundle = archspec.render(spec, block="pair")._repr_mimebundle_()  # a rendered view shows as SVG
    assert "<script" not in bundle["image/svg+xml"] and bundle["image/svg+xml"].lstrip().startswith("<?xml")


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def test_compiled_model_carries_a_displayable_report(write_spec) -> None:
    pytest.importorskip("torch")
    import archspec

    model = archspec.build(write_spec(TINY.replace("LABEL", "Pair")))
    text = model.archspec_report._repr_html_()
    assert "<td>Pair</td><td>body.0</td>" in text and f"{sum(p.numel() for p in model.parameters()):,}" in text


def test_page_and_report_html_do_not_import_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, archspec; from archspec.cli import main; "
        f"assert main(['render', {str(V4)!r}, '-o', {str(tmp_path / 'a.html')!r}]) == 0; "
        f"archspec.check({str(V4)!r})._repr_html_(); print('torch' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


STAGES = """\
archspec: 1
name: staged
input: {channels: 3, size: [32, 32]}
blocks:
  pair:
    label: Pair
    concat:
      a: conv 8 1x1
      b: [conv 4 1x1, conv 8 3x3 p1]
network:
  stem: conv 16 3x3
  stage1: [pair * 3]
  stage2: [pair, conv 16 1x1]
  stage3: [pair * 2]
  pool: global_avgpool
"""


def test_a_stage_of_one_folded_run_unfolds_into_its_blocks(browser: Any, tmp_path: Path, write_spec) -> None:
    out = tmp_path / "staged.html"
    assert main(["render", str(write_spec(STAGES)), "-o", str(out)]) == 0
    p = Page(browser, out)
    boxes = p.boxes()
    # stage1 and stage3 hold only instances of `pair` (3 and 2, as written); stage2 holds an op too: no stage
    assert boxes["stage1: Pair ×3"] == 1 and boxes["stage3: Pair ×2"] == 1 and boxes["Pair"] == 1
    p.box("stage1: Pair ×3").dblclick()  # its three instances are one design: the run opens with the stage
    assert p.view() == ["stage1", "stage1.0"]
    assert p.boxes()["1×1 conv (8)"] == 1 and outside(p, "#canvas g.cluster-block") == []
    assert p.errors == []


def test_the_panel_follows_a_box_that_is_unfolded_and_folded(browser: Any, tmp_path: Path, write_spec) -> None:
    out = tmp_path / "staged.html"
    assert main(["render", str(write_spec(STAGES)), "-o", str(out)]) == 0
    p = Page(browser, out)
    p.box("stage1: Pair ×3").click()
    buttons = p.page.locator("#info button")
    assert buttons.first.text_content() == "unfold stage1"
    p.box("stage1: Pair ×3").dblclick()
    assert p.view() == ["stage1", "stage1.0"]
    # the panel now describes the frame the box became: it folds, it no longer offers to unfold
    assert "unfold stage1" not in buttons.all_text_contents()
    assert buttons.first.text_content() == "fold stage1" and p.facts("#info")["path"] == "stage1"
    buttons.first.click()
    assert p.view() == [] and buttons.first.text_content() == "unfold stage1"
    assert p.errors == []


def test_search_inside_a_folded_run_unfolds_to_the_smallest_box(browser: Any, tmp_path: Path, write_spec) -> None:
    out = tmp_path / "staged.html"
    assert main(["render", str(write_spec(STAGES)), "-o", str(out)]) == 0
    p = Page(browser, out)
    p.page.fill("#search", "stage1.2.b.1.conv")  # the conv module of the third Pair's second branch
    p.page.press("#search", "Enter")
    assert "stage1" in p.view()
    found = p.page.locator("#canvas g.found")
    assert found.count() == 1 and found.text_content().strip() == "3×3 conv (8)"
    facts = p.facts("#info")
    assert facts["path"] == "stage1.0.b.1" and "stage1.2.b.1" in facts["instances"]
    assert "found stage1.2.b.1.conv: repeats are drawn once" in p.page.locator("#info").text_content()
    assert p.errors == []
