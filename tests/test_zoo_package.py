"""The zoo ships with the package: zoo:NAME anywhere a spec is expected, use: [zoo:blocks/...] from a
spec kept anywhere, `archspec list`, and a wheel installed outside the source tree carries it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import archspec
from archspec.cli import main
from tests.paths import ROOT, SPECS


def test_zoo_names_and_files_are_the_same_specs() -> None:
    for path in sorted(SPECS.glob("*.yaml")):
        assert archspec.check(f"zoo:{path.stem}").params == archspec.check(path).params


def test_a_spec_anywhere_uses_the_zoo_s_block_libraries(tmp_path: Path) -> None:
    spec = tmp_path / "elsewhere" / "mine.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "archspec: 1\nname: mine\nuse: [zoo:blocks/resnet.yaml]\ninput: {channels: 3, size: [32, 32]}\n"
        "network: [stem: conv2d 64 3x3 p1, layer: basic width=64 * 2, global_avgpool, fc: linear 10]\n"
    )
    report = archspec.check(spec)
    # 3·64·9 + 64, two basic blocks of two 3×3 convs with BN, and the classifier
    assert report.params == (3 * 64 * 9 + 64) + 2 * 2 * (64 * 64 * 9 + 2 * 64) + (64 * 10 + 10)


@pytest.mark.parametrize("name", ["zoo:nope", "zoo:../pyproject", "zoo:blocks/../../cli", "zoo:res\0net18", "zoo:" + "x" * 5000])
def test_names_outside_the_zoo_are_refused(name: str) -> None:
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(name)
    assert "not in archspec's zoo" in e.value.message


def test_use_outside_the_zoo_s_blocks_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("archspec: 1\nname: s\nuse: [zoo:blocks/nope.yaml]\nnetwork: [relu]\n")
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(spec)
    assert (e.value.line, e.value.code) == (3, "use") and "blocks/resnet.yaml" in (e.value.hint or "")


def test_list_names_every_zoo_network(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows if "variant" not in r] == [f"zoo:{p.stem}" for p in sorted(SPECS.glob("*.yaml"))]
    v4 = next(r for r in rows if r["name"] == "zoo:inception_v4")
    assert v4["params"] == 42_679_816 and v4["min_input_size"] == [75, 75]
    # the members of a family follow their spec, by their own zoo names: torchvision's efficientnet_b3, densenet169
    members = [(r["name"], r["family"], r["variant"], r["params"]) for r in rows if "variant" in r]
    assert ("zoo:efficientnet_b3", "zoo:efficientnet_b0", "b3", 12_233_232) in members
    assert ("zoo:densenet169", "zoo:densenet121", "densenet169", 14_149_480) in members


@pytest.mark.slow
def test_an_installed_wheel_builds_zoo_networks_by_name(tmp_path: Path) -> None:
    wheels, target, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("archspec-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True)
    code = (
        "import archspec, torch; from pathlib import Path\n"
        f"assert Path(archspec.__file__).is_relative_to({str(target)!r}), archspec.__file__\n"
        "assert archspec.check('zoo:inception_v4').params == 42679816\n"
        "m = archspec.build('zoo:resnet18').eval()\n"
        "print(tuple(m(torch.randn(1, 3, 64, 64)).shape))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "(1, 1000)"
    r = subprocess.run(
        [sys.executable, "-m", "archspec.cli", "check", "zoo:seresnet50"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and "28,088,024 parameters" in r.stdout, r.stderr[-2000:]


def test_a_spec_given_as_data() -> None:
    """issue 15 §3: check and build take a mapping (as yaml.safe_load gives); errors are located in
    archspec.dump's YAML of it, under the name <dict>."""
    import yaml

    data = yaml.safe_load((SPECS / "resnet18.yaml").read_text())
    data["use"] = ["zoo:blocks/resnet.yaml"]  # a mapping has no folder of its own: use the zoo's library
    assert archspec.check(data).params == archspec.check(SPECS / "resnet18.yaml").params
    data["network"]["fc"] = "linear 1000 nope"
    with pytest.raises(archspec.SpecError) as e:
        archspec.check(data)
    line = archspec.dump(data).splitlines().index("  fc: linear 1000 nope") + 1
    assert (e.value.file, e.value.line, e.value.code) == ("<dict>", line, "bad-op-args")
    with pytest.raises(TypeError):
        archspec.check({"archspec": 1, "name": "t", "network": [object()]})
