"""Inference rewrites of a compiled model's torch.fx graph, one pass per file.

Each pass takes a ``torch.fx.GraphModule`` in eval mode, rewrites its graph (and the modules
it calls) in place, lints and recompiles it, and returns how many rewrites it made.
:func:`archspec.inference.optimize` runs them in order; they can also be run one by one.
"""

from archspec.passes.common import PassResult
from archspec.passes.concat_in_place import concat_in_place
from archspec.passes.dense_concat import dense_concat
from archspec.passes.fold_bn import fold_bn
from archspec.passes.fold_preact import fold_preact
from archspec.passes.fuse_act import fuse_conv_act
from archspec.passes.fuse_add import fuse_conv_add
from archspec.passes.fuse_gate import fuse_gate
from archspec.passes.fuse_linear import fuse_linear
from archspec.passes.fuse_parallel import fuse_parallel_convs
from archspec.passes.fuse_shuffle import fuse_shuffle
from archspec.passes.gate_conv import gate_into_conv
from archspec.passes.gate_first import gate_before_conv
from archspec.passes.group_norm import group_norm_channels_last
from archspec.passes.layout import to_layout
from archspec.passes.noops import remove_noops
from archspec.passes.onednn_faults import avoid_onednn_faults
from archspec.passes.same_pad import shift_same_padding, split_same_padding
from archspec.passes.std_conv import standardize_convs

__all__ = [
    "PassResult",
    "avoid_onednn_faults",
    "concat_in_place",
    "dense_concat",
    "fold_bn",
    "fold_preact",
    "fuse_conv_act",
    "fuse_conv_add",
    "fuse_gate",
    "fuse_linear",
    "fuse_parallel_convs",
    "fuse_shuffle",
    "gate_before_conv",
    "gate_into_conv",
    "group_norm_channels_last",
    "remove_noops",
    "shift_same_padding",
    "split_same_padding",
    "standardize_convs",
    "to_layout",
]
