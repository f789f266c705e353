"""archspec.train (`archspec train`, examples/train.py): compiled models train — one process, resumed
bit-identically at any step, on folders, under torchrun (DDP/gloo), and to ≥ 95 % validation top-1 on real
images (scikit-learn's digits)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import archspec
import archspec.train as train
from archspec.train.data import IMAGENET_MEAN, IMAGENET_STD
from archspec.train.loop import Run, loss_of
from tests.paths import ROOT

EXAMPLES = ROOT / "examples"
TINY = Path(__file__).resolve().parent / "specs" / "tiny_aux.yaml"

QUICK = ["--batch-size", "4", "--synthetic-size", "16", "--workers", "0", "--no-progress", "--lr", "0.01"]
# one torch thread: on a shared 2-core machine two threads spin against each other (30× slower measured)
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

# torchrun starts this once per process; each saves what it holds after training
WORKER = """
import os, sys
import torch
import archspec.train as train

result = train.train(train.parse_args(sys.argv[2:]))
if "--stop-at" not in sys.argv:
    saved = {"loss": result.loss, "state": result.model.state_dict()}
    torch.save(saved, os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.pt"))
"""


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def torchrun(tmp_path: Path, *args: str) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(tmp_path / "worker.py"),
        str(tmp_path),
        str(TINY),
        "--device",
        "cpu",
        *QUICK,
        *args,
    ]
    done = subprocess.run(cmd, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def assert_same_training_state(a: dict, b: dict) -> None:
    """Bit-identical weights, BatchNorm statistics and optimizer momentum, and the same step."""
    assert a["state"]["step"] == b["state"]["step"] and a["state"]["epoch"] == b["state"]["epoch"]
    assert list(a["model"]) == list(b["model"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), f"{key} differs"
    moments_a, moments_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert moments_a.keys() == moments_b.keys() and moments_a
    for i in moments_a:
        assert torch.equal(moments_a[i]["momentum_buffer"], moments_b[i]["momentum_buffer"])


@pytest.mark.slow
def test_ddp_two_cpu_processes_agree_and_resume_bit_identically(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    # 16 images, 2 processes, batch 4: 2 steps per epoch; step 3 is in the middle of the second epoch
    # every option after the script passes torchrun's own parser (which once took `--log` for its `--log-dir`)
    torchrun(
        tmp_path,
        "--steps",
        "5",
        "--checkpoint",
        str(tmp_path / "straight.pt"),
        "--log-file",
        str(tmp_path / "straight.jsonl"),
        "--log-every",
        "1",
        "--save-every",
        "2",
        "--channels-last",
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert all(math.isfinite(r["loss"]) for r in ranks)
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert list(first) == list(second)
    for key in first:
        assert torch.equal(first[key], second[key]), f"ranks differ in {key}"
    torch.manual_seed(0)
    initial = archspec.build(TINY).state_dict()
    assert not torch.equal(initial["fc.weight"], first["fc.weight"])  # it trained
    straight = torch.load(tmp_path / "straight.pt")
    assert straight["step"] == 5 and len(straight["rng"]) == 2
    for key in first:
        assert torch.equal(straight["model"][key], first[key])
    # the two processes draw different dropout masks (each its own random state, both saved)
    assert not torch.equal(straight["rng"][0]["torch"], straight["rng"][1]["torch"])
    assert [json.loads(line)["step"] for line in (tmp_path / "straight.jsonl").read_text().splitlines()] == [
        1,
        2,
        2,
        3,
        4,
        4,
        5,
        5,
    ]  # every step, and each epoch's record (epochs of 2 steps; the last one cut at 5)

    torchrun(tmp_path, "--steps", "5", "--checkpoint", str(tmp_path / "split.pt"), "--stop-at", "3", "--channels-last")
    assert torch.load(tmp_path / "split.pt")["step"] == 3
    torchrun(tmp_path, "--steps", "5", "--checkpoint", str(tmp_path / "split.pt"), "--resume", "--channels-last")
    assert_same_training_state(straight, torch.load(tmp_path / "split.pt"))


@pytest.mark.slow
def test_resuming_with_another_world_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    ckpt = tmp_path / "ckpt.pt"
    torchrun(tmp_path, "--steps", "5", "--checkpoint", str(ckpt), "--stop-at", "1")
    assert train.main([str(TINY), "--steps", "5", "--checkpoint", str(ckpt), "--resume", "--device", "cpu", *QUICK]) == 2
    err = capsys.readouterr().err
    assert "the world size (processes) differs: the checkpoint has 2, this run 1" in err
    assert "Traceback" not in err
    assert torch.load(ckpt)["step"] == 1  # untouched


def test_checkpoint_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tmp_path / "ckpt.pt"
    assert train.main([str(TINY), "--steps", "2", "--checkpoint", str(ckpt), *QUICK]) == 0
    assert torch.load(ckpt)["step"] == 2
    assert train.main([str(TINY), "--steps", "5", "--checkpoint", str(ckpt), "--resume", *QUICK]) == 0
    err = capsys.readouterr().err
    assert "at step 2" in err and "step 5: loss" in err
    data = torch.load(ckpt)
    assert data["step"] == 5 and data["epoch"] == 1  # 16 images / batch 4 = 4 steps per epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]  # no temporary files left
    model = archspec.build(TINY)
    model.load_state_dict(data["model"], strict=True)
    # what `archspec export --weights CKPT` reads from it (README): the weights, random states and all notwithstanding
    from archspec.export import read_state_dict

    weights = read_state_dict(ckpt)
    assert list(weights) == list(data["model"]) and all(torch.equal(weights[k], data["model"][k]) for k in weights)


def test_aux_losses_are_weighted_as_the_spec_says() -> None:
    model = archspec.build(TINY)
    assert model.aux_weights == {"aux1": 0.3}
    torch.manual_seed(0)
    logits, aux, target = torch.randn(4, 10), torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    loss, main_loss = loss_of({"logits": logits, "aux1": aux}, target, model.aux_weights)
    expected = F.cross_entropy(logits, target) + 0.3 * F.cross_entropy(aux, target)
    torch.testing.assert_close(loss, expected)
    assert main_loss == pytest.approx(F.cross_entropy(logits, target).item())


def test_trains_on_an_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(4):
            color = (40 * i, 200 if cls == "cat" else 20, 90)
            Image.new("RGB", (48, 40), color).save(tmp_path / "data" / cls / f"{i}.png")
    result = train.train(train.parse_args([str(TINY), "--data", str(tmp_path / "data"), "--epochs", "1", *QUICK]))
    assert math.isfinite(result.loss) and result.model.fc.out_features == 2  # the data's classes: the head follows


def test_too_many_classes_for_the_network(tmp_path: Path) -> None:
    from PIL import Image

    for cls in range(3):
        (tmp_path / str(cls)).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / str(cls) / "a.png")
    with pytest.raises(train.UsageError, match="has 3 classes but the network predicts 2"):
        train.train(train.parse_args([str(TINY), "--num-classes", "2", "--data", str(tmp_path), *QUICK]))


# ---- resume at any step, one process -----------------------------------------------------------
def run(tmp_path: Path, name: str, *args: str) -> dict:
    ckpt = tmp_path / f"{name}.pt"
    assert (
        train.main(
            [
                str(TINY),
                "--checkpoint",
                str(ckpt),
                "--log-file",
                str(tmp_path / f"{name}.jsonl"),
                "--log-every",
                "1",
                *QUICK,
                *args,
            ]
        )
        == 0
    )
    return torch.load(ckpt)


def log_of(tmp_path: Path, name: str) -> list[dict]:
    """The JSON-lines log without its one measured (not computed) field."""
    records = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("images_per_s", None)
    return records


@pytest.mark.parametrize("stop", [1, 3, 4, 6])
def test_stopped_at_any_step_and_resumed_is_bit_identical(tmp_path: Path, stop: int) -> None:
    """tiny_aux has dropout and an auxiliary head; 16 images of batch 4: an epoch is 4 steps, so the
    stops fall after the first step, mid-epoch, on an epoch's end and in the second epoch."""
    straight = run(tmp_path, "straight", "--steps", "8")
    split = run(tmp_path, "split", "--steps", "8", "--stop-at", str(stop))
    assert split["step"] == stop
    split = run(tmp_path, "split", "--steps", "8", "--resume")
    assert_same_training_state(straight, split)
    assert log_of(tmp_path, "split") == log_of(tmp_path, "straight")  # records of the steps, in order, once


def test_the_random_state_in_the_checkpoint_is_what_makes_resume_exact(tmp_path: Path) -> None:
    """The control for the test above: a resume that starts from another random state (dropout
    masks) ends elsewhere, so bit-identity there is the saved state's doing."""
    straight = run(tmp_path, "straight", "--steps", "8")
    run(tmp_path, "split", "--steps", "8", "--stop-at", "3")
    data = torch.load(tmp_path / "split.pt")
    data["rng"][0]["torch"] = torch.Generator().manual_seed(12345).get_state()
    torch.save(data, tmp_path / "split.pt")
    split = run(tmp_path, "split", "--steps", "8", "--resume")
    assert not torch.equal(straight["model"]["fc.weight"], split["model"]["fc.weight"])


def test_resume_with_augmentation_and_loader_processes_is_bit_identical(tmp_path: Path) -> None:
    """Random crops and flips drawn in two loader processes: each image's are seeded by (seed, epoch,
    image), not by the process that happens to load it."""
    folder = image_folder(tmp_path / "data", classes=2, per_class=6, size=(40, 36))
    common = ["--data", str(folder), "--steps", "5", "--workers", "2"]  # 12 images, batch 4: 3 steps per epoch
    straight = run(tmp_path, "straight", *common)
    run(tmp_path, "split", *common, "--stop-at", "2")
    assert_same_training_state(straight, run(tmp_path, "split", *common, "--resume"))


def image_folder(root: Path, classes: int, per_class: int, size: tuple[int, int]) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return root


# ---- refusals and output folders ---------------------------------------------------------------
@pytest.mark.parametrize(
    "change, message",
    [
        (["--set", "network.fc=linear 12"], "--set differs: the checkpoint has no --set, this run --set network.fc=linear 12"),
        (["--batch-size", "2"], "--batch-size differs: the checkpoint has 4, this run 2"),
        (["--seed", "1"], "--seed differs: the checkpoint has 0, this run 1"),
        (["--synthetic-size", "20"], "the number of training images differs: the checkpoint has 16, this run 20"),
        (["SPEC"], "the spec differs: the checkpoint was made from"),
    ],
)
def test_resuming_with_different_options_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: list[str], message: str
) -> None:
    ckpt = tmp_path / "ckpt.pt"
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY.read_text())
    assert train.main([str(spec), "--steps", "2", "--checkpoint", str(ckpt), *QUICK]) == 0
    if change == ["SPEC"]:
        spec.write_text(TINY.read_text().replace("dropout 0.2", "dropout 0.3"))
        change = []
    capsys.readouterr()
    assert train.main([str(spec), "--steps", "4", "--checkpoint", str(ckpt), "--resume", *QUICK, *change]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert torch.load(ckpt)["step"] == 2


def test_output_folders_are_created(tmp_path: Path) -> None:
    ckpt, log = tmp_path / "runs" / "a" / "ckpt.pt", tmp_path / "logs" / "b" / "log.jsonl"
    assert train.main([str(TINY), "--steps", "2", "--checkpoint", str(ckpt), "--log-file", str(log), *QUICK]) == 0
    assert torch.load(ckpt)["step"] == 2 and log.read_text()


@pytest.mark.parametrize("option", ["--checkpoint", "--log-file"])
def test_an_output_folder_that_cannot_be_made_fails_before_the_first_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    (tmp_path / "file").write_text("a file where a folder should be")

    def no_step(*args: object) -> None:
        raise AssertionError("trained before reporting the bad output path")

    monkeypatch.setattr(Run, "step", no_step)
    assert train.main([str(TINY), "--steps", "2", option, str(tmp_path / "file" / "out"), *QUICK]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the {option[2:].replace('-', ' ')} {tmp_path / 'file' / 'out'}" in err and "Traceback" not in err


def test_stop_at_needs_a_checkpoint_and_fp16_a_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert train.main([str(TINY), "--steps", "2", "--stop-at", "1", *QUICK]) == 2
    assert "--stop-at needs --checkpoint" in capsys.readouterr().err
    assert train.main([str(TINY), "--steps", "2", "--amp", "fp16", "--device", "cpu", *QUICK]) == 2
    assert "--amp fp16 needs a GPU" in capsys.readouterr().err


# ---- what the user sees ------------------------------------------------------------------------
def test_progress_bar_counts_steps_with_loss_lr_and_speed(capsys: pytest.CaptureFixture[str]) -> None:
    quick = [a for a in QUICK if a != "--no-progress"]
    assert train.main([str(TINY), "--steps", "6", *quick]) == 0  # 4 steps per epoch: the bar spans epochs
    err = capsys.readouterr().err
    bar = err.replace("\r", "\n").splitlines()
    final = [line for line in bar if "6/6" in line]
    assert final, err
    assert all(f in final[-1] for f in ("step", "epoch=2", "loss=", "lr=", "img/s="))
    assert "4/6" in err and "7/6" not in err


def test_bf16_and_channels_last_train_like_float32(tmp_path: Path) -> None:
    plain = run(tmp_path, "plain", "--steps", "2")
    cl = run(tmp_path, "cl", "--steps", "2", "--channels-last")
    for key, value in plain["model"].items():
        torch.testing.assert_close(cl["model"][key].contiguous(), value, rtol=1e-4, atol=1e-5)
    bf16 = run(tmp_path, "bf16", "--steps", "2", "--amp", "bf16")
    assert math.isfinite(log_of(tmp_path, "bf16")[-1]["loss"])
    apart = (bf16["model"]["fc.weight"] - plain["model"]["fc.weight"]).abs().max().item()
    assert 0 < apart < 1e-2  # it ran in bfloat16: same data and start, rounding apart


# ---- real data: scikit-learn's digits, built in -------------------------------------------------
@pytest.mark.slow
def test_digits_reach_95_percent_validation_top1(tmp_path: Path) -> None:
    """1,797 8×8 handwritten digits (bundled with scikit-learn), every fifth held out: `--data digits`
    as a user types it, then the held-out images evaluated here independently of the trainer (from
    sklearn's arrays, resized by PIL, and the saved weights)."""
    import numpy as np
    from PIL import Image
    from sklearn import datasets  # the [test] extra's scikit-learn: a missing one fails, not skips

    digits = datasets.load_digits()
    held_out = []
    for i, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        if i % 5 == 0:
            image = Image.fromarray((pixels * 255 / 16).round().astype(np.uint8)).convert("RGB").resize((16, 16), Image.BILINEAR)
            held_out.append((np.asarray(image), int(label)))
    ckpt, log = tmp_path / "runs" / "digits.pt", tmp_path / "runs" / "digits.jsonl"
    cmd = [sys.executable, "-m", "archspec.cli", "train", str(TINY), "--set", "input.size=[16,16]", "--data", "digits"]
    cmd += ["--epochs", "8", "--batch-size", "32", "--lr", "0.1", "--workers", "0", "--no-progress"]
    cmd += ["--checkpoint", str(ckpt), "--log-file", str(log)]
    done = subprocess.run(cmd, env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    epochs = [r for r in map(json.loads, log.read_text().splitlines()) if "val_top1" in r]
    assert [r["epoch"] for r in epochs] == list(range(1, 9)) and epochs[-1]["val_images"] == len(held_out) == 360
    model = archspec.build(TINY, {"input.size": [16, 16]})
    model.load_state_dict(torch.load(ckpt)["model"])
    model.eval()
    images = torch.tensor(np.stack([x for x, _ in held_out]), dtype=torch.float32).permute(0, 3, 1, 2) / 255
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    labels = torch.tensor([y for _, y in held_out])
    with torch.no_grad():
        logits = model((images - mean) / std)
    top1 = (logits.argmax(1) == labels).float().mean().item()
    top5 = (logits.topk(5, 1).indices == labels[:, None]).any(1).float().mean().item()
    assert top1 >= 0.95
    # the trainer's own figures, batch by batch: the same, give or take one image on a rounding tie
    assert epochs[-1]["val_top1"] == pytest.approx(top1, abs=1.01 / len(held_out))
    assert epochs[-1]["val_top5"] == pytest.approx(top5, abs=1.01 / len(held_out))


# ---- from the package: zoo names, the Python API, the example's few lines ------------------------
def test_archspec_train_takes_zoo_names_and_sizes_the_head_for_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archspec.cli import main

    ckpt = tmp_path / "r18.pt"
    argv = ["train", "zoo:resnet18", "--data", "digits", "--set", "input.size=[32,32]", "--steps", "1", "--batch-size", "4"]
    assert main([*argv, "--workers", "0", "--no-progress", "--checkpoint", str(ckpt)]) == 0
    err = capsys.readouterr().err
    assert "the data has 10 classes: the classifier predicts 10, not 1000" in err
    weights = torch.load(ckpt)["model"]
    assert weights["fc.weight"].shape == (10, 512)  # torchvision's resnet18(num_classes=10) has the same
    import torchvision

    reference = torchvision.models.resnet18(num_classes=10)
    assert {k: v.shape for k, v in reference.state_dict().items()} == {k: v.shape for k, v in weights.items()}


def test_fit_trains_a_spec_given_as_a_mapping_and_returns_metrics(tmp_path: Path) -> None:
    import yaml

    variant = yaml.safe_load(TINY.read_text())
    variant["network"]["features"][0] = "conv 12 3x3 s2 p1"  # a variant made in Python, as a sweep does
    result = train.fit(variant, {"input.size": [16, 16]}, data="digits", epochs=1, batch_size=64, lr=0.1)
    assert result.model.state_dict()["features.0.conv.weight"].shape[0] == 12
    assert result.metrics["epoch"] == 1 and result.metrics["val_images"] == 360
    assert 0.0 <= result.metrics["val_top1"] <= 1.0 and math.isfinite(result.metrics["loss"])
    assert result.history == [result.metrics]
    with pytest.raises(TypeError, match="unknown options \\['epocs'\\]"):
        train.fit(TINY, epocs=2)


def test_the_example_is_a_few_lines_calling_the_package() -> None:
    import runpy

    text = (EXAMPLES / "train.py").read_text()
    assert len(text.splitlines()) < 20
    assert runpy.run_path(str(EXAMPLES / "train.py"), run_name="example")["main"] is train.main


# ---- malformed checkpoints (issue 24): one line, exit 2, the file untouched -------------------
def _malformed(good: dict, kind: str) -> object:
    if kind == "tensor":
        return torch.zeros(3)
    if kind == "no optimizer":
        return {k: v for k, v in good.items() if k != "optimizer"}
    if kind == "rng empty":
        return good | {"rng": []}
    if kind == "config string":
        return good | {"config": "x"}
    if kind == "wrong shapes":
        return good | {"model": good["model"] | {"fc.weight": torch.zeros(3, 3)}}
    if kind == "huge step":
        return good | {"state": good["state"] | {"step": 10**30}}
    if kind == "state list":
        return good | {"state": [1, 2]}
    if kind == "optimizer of another model":
        return good | {"optimizer": {"state": {}, "param_groups": [{"params": [0]}]}}
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "not a checkpoint torch can read"),
        ("garbage", "not a checkpoint torch can read"),
        ("tensor", "it holds a Tensor, not a training checkpoint"),
        ("no optimizer", "it has no optimizer"),
        ("rng empty", "random states ('rng') are not a list of 1"),
        ("config string", "its 'config' is a str, not a mapping"),
        ("wrong shapes", "its weights ('model') does not fit this run: RuntimeError"),
        ("huge step", "its step 1000000000000000000000000000000 does not follow from its epoch 0 and batch 2"),
        ("state list", "its 'state' is not a mapping"),
        ("optimizer of another model", "its optimizer state does not fit this run: ValueError"),
    ],
)
def test_a_malformed_checkpoint_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    ckpt = tmp_path / "ckpt.pt"
    assert train.main([str(TINY), "--steps", "2", "--checkpoint", str(ckpt), *QUICK]) == 0
    if kind == "empty":
        ckpt.write_bytes(b"")
    elif kind == "garbage":
        ckpt.write_bytes(b"PK\x03\x04 not a zip at all")
    else:
        torch.save(_malformed(torch.load(ckpt), kind), ckpt)
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert train.main([str(TINY), "--steps", "4", "--checkpoint", str(ckpt), "--resume", *QUICK]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot resume from {ckpt}: "), err
    assert message in err and "Traceback" not in err
    assert ckpt.read_bytes() == before
