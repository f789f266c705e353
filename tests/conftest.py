"""Shared test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write YAML text to a file in a fresh folder and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    return write


# ---- the fast tier ----------------------------------------------------------------------------
# `pytest -m "not slow"` is the tier a developer runs on every change (docs/testing.md); CI runs
# everything. Tests that build full-size networks carry @pytest.mark.slow where they are written;
# the parametrised ones below are marked here, from a measured run (--durations), keeping a few
# representatives of each in the fast tier so that every area is still exercised there.
SLOW_BUT = {  # test function → the parameter ids that stay in the fast tier
    "tests/test_codegen.py::test_standalone_file_equals_reference": {"resnet18", "googlenet"},
    "tests/test_codegen.py::test_generated_file_computes_what_the_compiled_model_does": {
        "tiny_aux",
        "tiny_layer_norm",
        "tiny_shapes",
        "resnet18",
        "googlenet_paper",
        "shufflenet_v2_x1_0",
    },
    "tests/test_security.py::test_free_text_reaches_generated_code_only_escaped": {"text0", "text1"},
    "tests/test_summary.py::test_params_and_macs_agree_with_the_model_and_fvcore": {"resnet18", "googlenet"},
    "tests/test_import.py::test_importing_a_built_spec_gives_the_same_design": {"resnet18", "googlenet"},
    "tests/test_import.py::test_round_trip_strict_load_and_same_logits": {"resnet18", "squeezenet1_1"},
    "tests/test_zoo_resnet.py::test_resnet_equals_torchvision": {"18"},
    # whole tests: each takes 5-25 s on 2 cores, and a faster test covers its area
    "tests/test_export.py::test_onnx_of_zoo_spec_equals_reference": set(),
    "tests/test_export.py::test_zoo_exports_take_every_accepted_size": set(),
    "tests/test_train.py::test_digits_reach_95_percent_validation_top1": set(),
    "tests/test_train.py::test_ddp_two_cpu_processes_agree_and_resume_bit_identically": set(),
    "tests/test_train.py::test_resuming_with_another_world_size_is_refused": set(),
    "tests/test_docs.py::test_tutorial_commands_run": set(),
    "tests/test_inception_v4.py::test_logits_match_timm": set(),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        function, _, param = item.nodeid.partition("[")
        kept = SLOW_BUT.get(function)
        if kept is not None and param.rstrip("]") not in kept:
            item.add_marker(pytest.mark.slow)
