"""examples/train.py: compiled models train — one process, resumed, on folders, and under torchrun (DDP/gloo)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import archspec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TINY = Path(__file__).resolve().parent / "specs" / "tiny_aux.yaml"
sys.path.insert(0, str(EXAMPLES))
import train  # noqa: E402

QUICK = ["--batch-size", "4", "--synthetic-size", "16", "--workers", "0", "--no-progress", "--lr", "0.01"]

# torchrun starts this once per process; each saves what it holds after training
WORKER = f"""
import os, sys
import torch
sys.path.insert(0, {str(EXAMPLES)!r})
import train

model, loss = train.train(train.parse_args(sys.argv[2:]))
torch.save({{"loss": loss, "state": model.state_dict()}}, os.path.join(sys.argv[1], f"rank{{os.environ['RANK']}}.pt"))
"""


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)


def test_ddp_two_cpu_processes_agree(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(tmp_path / "worker.py"), str(tmp_path), str(TINY), "--steps", "3", "--device", "cpu",
           "--checkpoint", str(tmp_path / "ckpt.pt"), *QUICK]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert all(math.isfinite(r["loss"]) for r in ranks)
    first, second = ranks[0]["state"], ranks[1]["state"]
    assert list(first) == list(second)
    for key in first:
        assert torch.equal(first[key], second[key]), f"ranks differ in {key}"
    torch.manual_seed(0)
    initial = archspec.build(TINY).state_dict()
    assert not torch.equal(initial["fc.weight"], first["fc.weight"])  # it trained
    checkpoint = torch.load(tmp_path / "ckpt.pt")
    assert checkpoint["step"] == 3
    for key in first:
        assert torch.equal(checkpoint["model"][key], first[key])


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


def test_aux_losses_are_weighted_as_the_spec_says() -> None:
    model = archspec.build(TINY)
    assert model.aux_weights == {"aux1": 0.3}
    torch.manual_seed(0)
    logits, aux, target = torch.randn(4, 10), torch.randn(4, 10), torch.tensor([1, 2, 3, 4])
    loss, main_loss = train.loss_of({"logits": logits, "aux1": aux}, target, model.aux_weights)
    expected = F.cross_entropy(logits, target) + 0.3 * F.cross_entropy(aux, target)
    torch.testing.assert_close(loss, expected)
    assert main_loss == pytest.approx(F.cross_entropy(logits, target).item())


def test_trains_on_an_image_folder(tmp_path: Path) -> None:
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(4):
            colour = (40 * i, 200 if cls == "cat" else 20, 90)
            Image.new("RGB", (48, 40), colour).save(tmp_path / "data" / cls / f"{i}.png")
    model, loss = train.train(train.parse_args([str(TINY), "--data", str(tmp_path / "data"), "--epochs", "1",
                                                *QUICK]))
    assert math.isfinite(loss)


def test_too_many_classes_for_the_network(tmp_path: Path) -> None:
    from PIL import Image

    for cls in range(3):
        (tmp_path / str(cls)).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / str(cls) / "a.png")
    with pytest.raises(SystemExit, match="has 3 classes but the network predicts 2"):
        train.train(train.parse_args([str(TINY), "--set", "network.fc=linear 2", "--data", str(tmp_path), *QUICK]))
