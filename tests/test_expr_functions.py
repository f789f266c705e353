"""`sqrt`, `log` and `**` in `${...}`: the arithmetic real specs need (NF-ResNet's β = 1/sqrt(expected
variance), RegNet's quantised widths). Truth: timm's `generate_regnet` (torch's log and pow) for the widths of
five RegNets computed per block in a spec; the domain errors are in tests/test_language_gates.py."""

from __future__ import annotations

import pytest

import archspec

REGNET = """archspec: 1
name: regnet_widths
input: {{channels: 3, size: [4, 4]}}
blocks:
  layer:
    params: {{w0: {w0}, wa: {wa}, wm: {wm}, q: 8}}
    op: conv2d ${{int(round(w0 * wm ** round(log((w0 + wa * block_index) / w0, wm)) / q) * q)}} 1x1
network:
  - layer * {depth}
"""


@pytest.mark.parametrize("name", ["regnetx_002", "regnetx_004", "regnetx_016", "regnety_008", "regnety_032"])
def test_regnet_widths_from_log_and_power_equal_timms(name: str) -> None:
    """RegNet's widths (Radosavovic et al., arXiv 2003.13678, §3.3): u_j = w0 + wa·j, s_j = round(log_wm(u_j/w0)),
    w_j = w0·wm^s_j quantised to 8, one conv per block j (block_index)."""
    regnet = pytest.importorskip("timm.models.regnet")
    cfg = regnet.model_cfgs[name]
    want, _, _ = regnet.generate_regnet(cfg.wa, cfg.w0, cfg.wm, cfg.depth, cfg.group_size)
    spec = REGNET.format(w0=cfg.w0, wa=cfg.wa, wm=cfg.wm, depth=cfg.depth)
    model = archspec.build(spec)
    assert [model.get_submodule(f"{j}").out_channels for j in range(cfg.depth)] == want


def test_square_roots_and_powers_give_python_numbers() -> None:
    spec = """archspec: 1
name: arithmetic
input: {channels: 3, size: [4, 4]}
network:
  - a: conv2d ${int(sqrt(16) * 2 ** 3)} 1x1  # 4.0 · 8 = 32.0, a float: int() makes it a channel count
  - b: conv2d ${2 ** 4} 1x1                  # a whole number to a whole power stays whole
  - c: conv2d ${int(2 ** 0.5 * 10)} 1x1      # 14
  - d: conv2d ${-2 ** 2 + 9} 1x1             # -(2 ** 2) + 9 = 5, as in Python and in the paper's notation
  - e: conv2d ${2 ** 3 ** 2 // 64} 1x1       # 2 ** 9 // 64 = 8: right-associative
"""
    model = archspec.build(spec)
    assert [model.get_submodule(n).out_channels for n in "abcde"] == [32, 16, 14, 5, 8]
