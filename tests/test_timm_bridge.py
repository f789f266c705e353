"""archspec's networks where users already work: timm.create_model (its arguments with timm's
meanings, its data/validate/train code paths), features_only as timm's, pretrained weights through
timm's and torchvision's own loaders (offline: a local file or the library's cache), safetensors,
save_pretrained / from_pretrained, torch.hub. Truth is timm's or torchvision's own model every time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
import torchvision

import archspec
import archspec.timm  # noqa: F401 - registers the zoo with timm
from archspec.errors import SpecError
from archspec.pretrained import NO_WEIGHTS, REFERENCES, Reference
from tests.paths import ROOT
from tests.references import perturb_bn

TINY = Path(__file__).resolve().parent / "specs" / "tiny_aux.yaml"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


# ---- timm.create_model ---------------------------------------------------------------------------
def test_every_zoo_network_is_registered_with_timm() -> None:
    from archspec.library import names

    assert set(timm.list_models("archspec_*")) >= {f"archspec_{n}" for n in names()}


@pytest.mark.parametrize(("name", "size"), [("efficientnet_b2", 64), ("densenet169", 64)])
def test_the_members_of_a_zoo_family_are_timm_models_too(name: str, size: int) -> None:
    """zoo:efficientnet_b0's variants b1–b4 and zoo:densenet121's densenet161/169/201 are registered by
    their networks' names, each torchvision's network of that name (strict load, the same logits)."""
    assert {"archspec_efficientnet_b1", "archspec_efficientnet_b4", "archspec_densenet161", "archspec_densenet201"} <= set(
        timm.list_models("archspec_*")
    )
    torch.manual_seed(2)
    reference = torchvision.models.get_model(name, weights=None).eval()
    perturb_bn(reference, 2)
    ours = timm.create_model(f"archspec_{name}").eval()
    assert ours.archspec_report.name == name
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        theirs = reference(x)
        torch.testing.assert_close(ours(x), theirs, rtol=1e-4, atol=1e-5)
    assert theirs.std() > 1e-3
    ten = timm.create_model(f"archspec_{name}", num_classes=10)
    assert ten(x).shape == (2, 10)


def test_num_classes_and_in_chans_mean_what_they_mean_in_timm() -> None:
    ours = timm.create_model("archspec_resnet18", num_classes=10, in_chans=1)
    theirs = timm.create_model("resnet18", num_classes=10, in_chans=1)
    assert shapes(ours) == shapes(theirs)
    assert ours(torch.randn(2, 1, 64, 64)).shape == (2, 10)
    # 0 classes: no classifier, the pooled features come out (timm's reset_classifier(0))
    ours0, theirs0 = timm.create_model("archspec_resnet18", num_classes=0), timm.create_model("resnet18", num_classes=0)
    assert shapes(ours0) == shapes(theirs0)
    ours0.load_state_dict(theirs0.state_dict())
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours0.eval()(x), theirs0.eval()(x), rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnetv2_50x1_bit", "cspresnet50"])
def test_num_classes_reaches_a_head_written_as_a_chain_mapping(name: str) -> None:
    # their heads are `head: {chain: {global_pool: ..., fc: ...}}`: the classifier's path is head.fc
    ours = archspec.build(f"zoo:{name}", num_classes=10)
    theirs = timm.create_model(name, num_classes=10)
    assert shapes(ours) == shapes(theirs)


def test_num_classes_resizes_the_aux_heads_as_torchvision_does() -> None:
    ours = archspec.build("zoo:googlenet", num_classes=7)
    theirs = torchvision.models.googlenet(weights=None, num_classes=7, aux_logits=True, init_weights=False)
    assert shapes(ours) == shapes(theirs)


def test_drop_rate_is_a_dropout_before_the_classifier_as_in_timm() -> None:
    ours = timm.create_model("archspec_resnet18", drop_rate=0.5, num_classes=5)
    theirs = timm.create_model("resnet18", drop_rate=0.5, num_classes=5)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(4, 3, 64, 64)
    outs = []
    for model in (ours.train(), theirs.train()):
        torch.manual_seed(3)
        outs.append(model(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-5)  # the same mask: drawn at the same place
    torch.manual_seed(3)
    assert not torch.allclose(ours.eval()(x), outs[0])  # and only in training mode
    # a spec with a dropout there: its rate is set (GoogLeNet's 0.2 → 0.3), no second dropout
    assert archspec.build("zoo:googlenet", drop_rate=0.3).dropout.p == 0.3


def test_drop_path_rate_follows_the_references_schedule() -> None:
    ours = archspec.build("zoo:convnext_tiny", drop_path_rate=0.3)
    theirs = torchvision.models.convnext_tiny(weights=None, stochastic_depth_prob=0.3)
    from archspec.runtime import DropPath

    mine = [m.p for m in ours.modules() if isinstance(m, DropPath)]
    ref = [m.p for m in theirs.modules() if isinstance(m, torchvision.ops.StochasticDepth)]
    assert mine == pytest.approx(ref)
    with pytest.raises(SpecError, match="has no stochastic depth"):
        archspec.build("zoo:resnet18", drop_path_rate=0.1)


@pytest.mark.parametrize("bad", [{"num_classes": -1}, {"num_classes": 1.5}, {"in_chans": 0}, {"drop_rate": 1.0}])
def test_bad_model_arguments_are_located_errors(bad: dict) -> None:
    with pytest.raises(SpecError):
        archspec.build("zoo:resnet18", **bad)


def test_a_spec_by_path_registers_under_its_name(tmp_path: Path) -> None:
    name = archspec.timm.register(TINY)
    assert name == "archspec_tiny_aux"
    model = timm.create_model(name, num_classes=3)
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    # one member of a spec's family, under the name the member gives the network
    family = tmp_path / "family.yaml"
    family.write_text(
        "archspec: 1\nname: small\ninput: {channels: 3, size: [32, 32]}\n"
        "variants:\n  wide: {name: wide, scale.width: 2}\nnetwork: [conv2d 8 3x3 p1, global_avgpool, linear 10]\n"
    )
    wide = archspec.timm.register(family, variant="wide")
    assert wide == "archspec_wide"
    conv = timm.create_model(wide).get_submodule("0")  # scale.width 2: the conv's 8 channels doubled
    assert conv.out_channels == 16 and timm.create_model(archspec.timm.register(family)).get_submodule("0").out_channels == 8


# ---- features_only --------------------------------------------------------------------------------
def _features_agree(tmp_path: Path, name: str, timm_name: str, size: int, out_indices: tuple[int, ...] | None = None) -> None:
    """timm's features_only model and ours, both given the same (random) weights through their
    pretrained loaders from one file: the same stages, the same feature maps."""
    kwargs = {} if out_indices is None else {"out_indices": out_indices}
    file = tmp_path / f"{timm_name}.pth"
    torch.save(timm.create_model(timm_name).state_dict(), file)
    overlay = {"file": str(file)}
    theirs = timm.create_model(timm_name, features_only=True, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    ours = archspec.build(f"zoo:{name}", features_only=True, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    via_timm = timm.create_model(f"archspec_{name}", features_only=True, **kwargs)
    assert via_timm.feature_info.channels() == ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == theirs.feature_info.reduction()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        got, want = ours.eval()(x), theirs.eval()(x)
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_features_only_equals_timms_resnet18(tmp_path: Path) -> None:
    _features_agree(tmp_path, "resnet18", "resnet18", 96)
    _features_agree(tmp_path, "resnet18", "resnet18", 64, (1, 2, -1))


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("inception_v4", 299)])  # the network with a stage exception
def test_features_only_equals_timms(tmp_path: Path, name: str, size: int) -> None:
    _features_agree(tmp_path, name, name, size)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, timm_name, size",
    [
        ("inception_resnet_v2", "inception_resnet_v2", 299),
        ("inception_v3", "inception_v3", 299),
        ("seresnet50", "seresnet50", 224),
        ("densenet121", "densenet121", 224),
        ("efficientnet_b0", "efficientnet_b0", 224),
        ("mobilenet_v3_large", "mobilenetv3_large_100", 224),
        ("convnext_tiny", "convnext_tiny", 224),
        ("resnext50_32x4d", "resnext50_32x4d", 224),
    ],
)
def test_features_only_has_timms_stages(name: str, timm_name: str, size: int) -> None:
    """The same stages as timm's (channels, reductions, sizes); the values are the same where the
    weights are (resnet18 and inception_v4 above: the cut is at the same modules)."""
    ours = archspec.build(f"zoo:{name}", features_only=True).eval()
    theirs = timm.create_model(timm_name, features_only=True).eval()
    assert ours.feature_info.channels() == theirs.feature_info.channels()
    assert ours.feature_info.reduction() == theirs.feature_info.reduction()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert [t.shape for t in ours(x)] == [t.shape for t in theirs(x)]


def test_features_only_of_a_network_with_aux_heads_has_no_head() -> None:
    model = archspec.build("zoo:googlenet", features_only=True, out_indices=(1, 3))
    assert model.feature_info.reduction() == [4, 16] and model.feature_info.channels() == [192, 832]
    assert not any(k.startswith(("aux", "fc")) for k in model.state_dict())
    maps = model.eval()(torch.randn(1, 3, 224, 224))
    assert [tuple(m.shape) for m in maps] == [(1, 192, 56, 56), (1, 832, 14, 14)]


def test_out_indices_out_of_range_is_a_located_error() -> None:
    with pytest.raises(SpecError, match="not a stage index"):
        archspec.build("zoo:resnet18", features_only=True, out_indices=(0, 7))


# ---- pretrained: through the libraries' own loaders, offline ---------------------------------------
def _torchvision_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> torch.nn.Module:
    """What torchvision would have downloaded, put where its loader looks (torch.hub's cache): a
    reference model's weights (random, seeded: no network in tests)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchvision.models.get_model_weights(name).DEFAULT
    torch.manual_seed(5)
    reference = torchvision.models.get_model(name, weights=None)
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference.state_dict(), cache / Path(weights.url).name)
    return reference


def test_pretrained_loads_torchvisions_weights_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _torchvision_cache(tmp_path, monkeypatch, "resnet18")
    theirs = torchvision.models.resnet18(weights="DEFAULT").eval()  # torchvision's own load of the same file
    ours = archspec.build("zoo:resnet18", pretrained=True).eval()
    assert same_weights(ours, theirs)
    assert ours.pretrained_cfg["num_classes"] == 1000 and ours.pretrained_cfg["first_conv"] == "conv1"
    # adapted as timm adapts its own models: the first conv summed to 1 channel, a new 10-way head
    ours10 = timm.create_model("archspec_resnet18", pretrained=True, num_classes=10, in_chans=1)
    file = next((tmp_path / "torch" / "hub" / "checkpoints").iterdir())
    timm10 = timm.create_model(
        "resnet18", pretrained=True, num_classes=10, in_chans=1, pretrained_cfg_overlay={"file": str(file)}
    )
    mine, ref = ours10.state_dict(), timm10.state_dict()
    assert all(torch.equal(mine[k], ref[k]) for k in ref if not k.startswith("fc."))
    assert torch.equal(mine["conv1.weight"], theirs.conv1.weight.sum(dim=1, keepdim=True))
    assert not torch.equal(mine["fc.weight"][:10], theirs.fc.weight[:10, :])


def test_pretrained_of_a_family_member_loads_its_references_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """archspec_densenet169 (zoo:densenet121's variant) takes torchvision's densenet169 weights, through torchvision."""
    _torchvision_cache(tmp_path, monkeypatch, "densenet169")
    theirs = torchvision.models.densenet169(weights="DEFAULT").eval()
    ours = timm.create_model("archspec_densenet169", pretrained=True).eval()
    assert same_weights(ours, theirs)
    assert ours.pretrained_cfg["architecture"] == "archspec_densenet169" and ours.pretrained_cfg["num_classes"] == 1000


@pytest.mark.slow
def test_pretrained_timm_weights_from_a_local_file(tmp_path: Path) -> None:
    """timm's route with pretrained_cfg_overlay=dict(file=...) (a safetensors file), as for timm's own."""
    from safetensors.torch import save_file

    torch.manual_seed(6)
    reference = timm.create_model("inception_v4")
    file = tmp_path / "inception_v4.safetensors"
    save_file(reference.state_dict(), str(file))
    overlay = {"file": str(file)}
    ours = timm.create_model("archspec_inception_v4", pretrained=True, pretrained_cfg_overlay=overlay).eval()
    theirs = timm.create_model("inception_v4", pretrained=True, pretrained_cfg_overlay=overlay).eval()
    assert same_weights(ours, theirs)
    x = torch.randn(1, 3, 75, 75)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-4, atol=1e-5)


def _reference_model(ref: Reference) -> torch.nn.Module:
    if ref.library == "timm":
        return timm.create_model(ref.model)
    return torchvision.models.get_model(ref.model, weights=None, **dict(ref.kwargs))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_every_zoo_network_maps_to_its_references_weight_names(name: str) -> None:
    """The names and shapes of the weights each reference publishes are the built network's; and
    the pretrained config names the first conv and classifier that the reference's cfg names."""
    from archspec.library import members

    ref = REFERENCES[name]
    spec, variant = members()[name]
    overrides = {"variant": variant} if variant is not None else None
    assert shapes(archspec.build(f"zoo:{spec}", overrides)) == shapes(_reference_model(ref))
    if ref.library == "timm":
        from archspec.api import check
        from archspec.pretrained import pretrained_cfg

        cfg = pretrained_cfg(name, check(f"zoo:{spec}", overrides).graph)
        theirs = timm.models.get_pretrained_cfg(ref.model)
        assert cfg["first_conv"] == theirs.first_conv and cfg["classifier"][0] == theirs.classifier


@pytest.mark.parametrize("name", sorted(NO_WEIGHTS))
def test_networks_without_published_weights_say_so(name: str) -> None:
    with pytest.raises(SpecError, match="no pretrained weights"):
        archspec.build(f"zoo:{name}", pretrained=True)


def test_the_references_cover_every_zoo_network() -> None:
    from archspec.library import members

    assert set(REFERENCES) | set(NO_WEIGHTS) == set(members())


# ---- timm's data, validate and train code paths ----------------------------------------------------
def test_timms_validate_and_train_code_paths_run_an_archspec_network(tmp_path: Path) -> None:
    """What timm's validate.py and train.py do with a model, in process: data config from the model,
    timm's transforms, dataset and loader, accuracy; timm's optimizer, scheduler and loss for a step."""
    from PIL import Image
    from timm.data import create_dataset, create_loader, resolve_data_config
    from timm.loss import LabelSmoothingCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import accuracy

    for c in range(2):
        (tmp_path / "val" / f"c{c}").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (60 * i, 100 * c, 30)).save(tmp_path / "val" / f"c{c}" / f"{i}.png")
    model = timm.create_model("archspec_resnet18", num_classes=2)
    config = resolve_data_config({"input_size": (3, 64, 64)}, model=model)
    assert config["mean"] == model.pretrained_cfg["mean"]
    dataset = create_dataset("", root=str(tmp_path / "val"))
    loader = create_loader(
        dataset,
        input_size=config["input_size"],
        batch_size=3,
        mean=config["mean"],
        std=config["std"],
        crop_pct=config["crop_pct"],
        num_workers=0,
        use_prefetcher=False,
    )
    model.eval()
    with torch.no_grad():
        for images, target in loader:
            top1, top2 = accuracy(model(images), target, topk=(1, 2))
            assert 0 <= float(top1) <= 100 and float(top2) == 100
    optimizer = create_optimizer_v2(model, opt="sgd", lr=0.01, weight_decay=1e-4)
    scheduler, _ = create_scheduler_v2(optimizer, sched="cosine", num_epochs=2)
    loss_fn = LabelSmoothingCrossEntropy(0.1)
    from timm.utils import ModelEmaV3, reparameterize_model

    ema = ModelEmaV3(model, decay=0.5)  # train.py's model EMA
    model.train()
    images, target = next(iter(loader))
    before = model.fc.weight.detach().clone()
    loss_fn(model(images), target).backward()
    optimizer.step()
    scheduler.step(1)
    assert not torch.equal(before, model.fc.weight)
    ema.update(model)
    torch.testing.assert_close(ema.module.fc.weight, (before + model.fc.weight) / 2)
    # validate.py's and benchmark.py's --reparam: nothing to fuse, the same network back
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(reparameterize_model(model.eval())(x), model(x))


# ---- safetensors, save_pretrained / from_pretrained, torch.hub -------------------------------------
def test_save_pretrained_round_trip_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = archspec.build(TINY, {"input.size": [40, 40]}, num_classes=4)
    folder = model.save_pretrained(tmp_path / "tiny")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "spec.yaml"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "archspec_tiny_aux" and config["num_classes"] == 4
    again = archspec.from_pretrained(folder)
    assert same_weights(model, again)
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), again.eval()(x))
    assert archspec.check(folder / "spec.yaml").digest == model.archspec_report.digest  # it builds alone
    # with timm's arguments: the saved weights, a new head, as timm fine-tunes
    three = archspec.from_pretrained(folder, num_classes=3)
    assert torch.equal(three.state_dict()["features.0.conv.weight"], model.state_dict()["features.0.conv.weight"])
    assert three.fc.out_features == 3


def test_save_pretrained_of_a_spec_made_in_python_and_not_of_an_optimized_network(tmp_path: Path) -> None:
    import yaml

    torch.manual_seed(7)
    model = archspec.build(yaml.safe_load(TINY.read_text()), {"network.fc": "linear 4"})
    assert same_weights(archspec.from_pretrained(model.save_pretrained(tmp_path / "dict")), model)
    with pytest.raises(TypeError, match="not optimized"):
        archspec.build(TINY, optimize=True).save_pretrained(tmp_path / "opt")


def test_a_zoo_folder_is_what_timms_local_dir_reads(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = archspec.build("zoo:resnet18")
    folder = archspec.save_pretrained(model, tmp_path / "r18")
    assert same_weights(timm.create_model(f"local-dir:{folder}", pretrained=True), model)


def test_from_pretrained_of_a_missing_folder_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such folder"):
        archspec.from_pretrained(tmp_path / "nothing")
    (tmp_path / "half").mkdir()
    with pytest.raises(SpecError, match="has no config.json"):
        archspec.from_pretrained(tmp_path / "half")


def test_safetensors_export_weights_and_transfer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    from archspec.cli import main

    torch.manual_seed(3)
    weights = tmp_path / "w.pt"
    torch.save(archspec.build(TINY).state_dict(), weights)
    out = tmp_path / "tiny.safetensors"
    assert main(["export", str(TINY), "--weights", str(weights), "-o", str(out)]) == 0
    saved, original = load_file(str(out)), torch.load(weights)
    assert set(saved) == set(original) and all(torch.equal(saved[k], original[k]) for k in saved)
    again = tmp_path / "again.safetensors"
    assert main(["export", str(TINY), "--weights", str(out), "-o", str(again)]) == 0  # read back too
    assert load_file(str(again)).keys() == saved.keys()
    result = archspec.transfer(out, archspec.build(TINY, {"network.fc": "linear 5"}))  # a .safetensors path
    carried = {e.key for e in result.of("transferred")}
    assert "features.0.conv.weight" in carried and "fc.weight" not in carried
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    capsys.readouterr()
    assert main(["export", str(TINY), "--weights", str(tmp_path / "bad.safetensors"), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "not a safetensors file" in err and "Traceback" not in err


def test_torch_hub_load_from_the_checkout() -> None:
    member = torch.hub.load(str(ROOT), "efficientnet_b1", source="local")  # a member of zoo:efficientnet_b0's family
    assert member.archspec_report.name == "efficientnet_b1"
    assert sum(p.numel() for p in member.parameters()) == 7_794_184  # torchvision's efficientnet_b1
    model = torch.hub.load(str(ROOT), "resnet18", source="local", num_classes=10)
    assert shapes(model) == shapes(torchvision.models.resnet18(num_classes=10))
    assert torch.hub.load(str(ROOT), "resnet18", source="local").fc.out_features == 1000


def test_import_archspec_still_does_not_import_torch_or_safetensors() -> None:
    import subprocess
    import sys

    code = "import sys, archspec; archspec.check('zoo:resnet18'); print(any(m in sys.modules for m in ('torch', 'safetensors')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "False", done.stderr


def test_from_pretrained_takes_a_hub_repo_id_through_huggingface_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A repo id goes to huggingface_hub's snapshot_download (offline here: it returns a folder)."""
    import huggingface_hub

    torch.manual_seed(4)
    model = archspec.build(TINY)
    folder = model.save_pretrained(tmp_path / "snapshot")
    asked = []

    def snapshot_download(repo_id: str, allow_patterns: list[str]) -> str:
        asked.append((repo_id, sorted(allow_patterns)))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    assert same_weights(archspec.from_pretrained("someone/tiny-aux"), model)
    assert asked == [("someone/tiny-aux", ["config.json", "model.safetensors", "spec.yaml"])]


def test_timms_scripts_run_through_archspec_timm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A script that imports only timm (as timm's validate.py does), run as `python -m archspec.timm
    SCRIPT ARGS` runs it: with its own argv, as __main__, archspec's networks registered."""
    script = tmp_path / "script.py"
    script.write_text(
        "import sys, timm, torch\n"
        "if __name__ == '__main__':\n"
        "    m = timm.create_model(sys.argv[1], num_classes=3).eval()\n"
        "    print(tuple(m(torch.randn(1, 3, 64, 64)).shape))\n"
    )
    assert archspec.timm.main([str(script), "archspec_resnet18"]) == 0
    assert capsys.readouterr().out.strip() == "(1, 3)"
    assert archspec.timm.main([str(tmp_path / "missing.py")]) == 2


@pytest.mark.slow
def test_archspec_train_starts_from_the_published_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--pretrained: the reference's weights (here from torchvision's cache), the head resized for
    the data's 10 classes and started afresh; lr 0, so the saved weights are the loaded ones."""
    from archspec.cli import main

    reference = _torchvision_cache(tmp_path, monkeypatch, "resnet18")
    ckpt = tmp_path / "run.pt"
    argv = ["train", "zoo:resnet18", "--pretrained", "--data", "digits", "--set", "input.size=[32,32]", "--steps", "1"]
    argv += ["--batch-size", "4", "--lr", "0", "--momentum", "0", "--weight-decay", "0", "--workers", "0", "--no-progress"]
    assert main([*argv, "--checkpoint", str(ckpt)]) == 0
    saved = torch.load(ckpt)["model"]
    assert torch.equal(saved["layer4.1.conv2.weight"], reference.state_dict()["layer4.1.conv2.weight"])
    assert saved["fc.weight"].shape == (10, 512)


def test_reset_classifier_as_timm_resets_its_own(tmp_path: Path) -> None:
    ours, theirs = timm.create_model("archspec_resnet18"), timm.create_model("resnet18")
    ours.load_state_dict(theirs.state_dict())
    for n in (5, 0):
        ours.reset_classifier(n)
        theirs.reset_classifier(n)
        assert shapes(ours) == shapes(theirs) and ours.num_classes == n
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=0, atol=1e-6)  # the pooled features
    assert isinstance(ours.get_classifier(), torch.nn.Identity)


@pytest.mark.slow
def test_reset_classifier_resets_the_aux_heads_and_what_is_saved(tmp_path: Path) -> None:
    g = archspec.build("zoo:googlenet")
    g.reset_classifier(7)
    assert shapes(g) == shapes(torchvision.models.googlenet(weights=None, num_classes=7, aux_logits=True, init_weights=False))
    assert g.train()(torch.randn(2, 3, 224, 224))["aux1"].shape == (2, 7)
    assert g.get_classifier().out_features == 7
    assert same_weights(archspec.from_pretrained(g.save_pretrained(tmp_path / "g7")), g)
