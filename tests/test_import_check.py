"""`archspec import`'s check with the model constructed on the ``meta`` device (issue 26: import speed).

The command reads a timm or torchvision model's structure without drawing its initial weights and
checks the spec by loading the built spec's weights into the model. Truth: the written spec, built
and loaded strictly with the weights of the same model constructed for real, gives its logits; and
the check refuses a spec that computes something else.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import archspec
from archspec.cli import main
from archspec.importer import ImportRefused, to_spec, verify


def test_the_command_imports_from_meta_and_the_spec_gives_the_real_model_s_logits(tmp_path: Path) -> None:
    out = tmp_path / "resnet18.yaml"
    assert main(["import", "torchvision:resnet18", "-o", str(out)]) == 0
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None).eval()
    ours = archspec.build(out).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=1e-5)


def test_the_check_from_meta_refuses_another_network() -> None:
    with torch.device("meta"):
        model = torchvision.models.resnet18(weights=None)
    text = to_spec(model, name="resnet18", input_size=(64, 64)).text
    assert "then: relu" in text
    with pytest.raises(ImportRefused, match="computes something else"):
        verify(model, text.replace("then: relu", "then: silu"), (64, 64), weights_from_spec=True)
    with torch.device("meta"):
        model = torchvision.models.resnet18(weights=None)
    with pytest.raises(ImportRefused, match="state_dict"):
        verify(model, text.replace("conv2d 64 7x7 s2 p3 no_bias", "conv2d 64 7x7 s2 p3"), (64, 64), weights_from_spec=True)
    with torch.device("meta"):
        model = torchvision.models.resnet18(weights=None)
    verify(model, text, (64, 64), weights_from_spec=True)  # the right spec passes
    assert not any(p.is_meta for p in model.parameters())


def test_a_constructor_that_cannot_download_is_one_located_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """torchvision's segmentation models download their backbone's weights unless told not to: offline,
    `archspec import` says so in one located line with the --args that avoids it (exit 2, no traceback)."""
    import urllib.error

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models, "get_model", offline)
    assert main(["import", "torchvision:deeplabv3_resnet50", "-o", str(tmp_path / "deeplab.yaml")]) == 2
    err = capsys.readouterr().err
    assert "needed a file or a download that failed: URLError" in err and "weights_backbone" in err, err
    assert "Traceback" not in err and not (tmp_path / "deeplab.yaml").exists()


def test_the_check_runs_its_forwards_on_one_thread_and_gives_the_thread_count_back() -> None:
    """The check's small forwards run on one thread (two threads wait on each other on a busy
    machine); the caller's torch thread count is what it was afterwards, also when the check refuses."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    seen: list[int] = []
    model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    text = to_spec(model, name="small", input_size=(16, 16)).text
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        verify(model, text, (16, 16))
        assert seen == [1] and torch.get_num_threads() == 2
        with pytest.raises(ImportRefused, match="computes something else"):
            verify(model, text.replace("relu", "silu"), (16, 16))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
