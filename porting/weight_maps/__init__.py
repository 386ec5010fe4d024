"""Weight maps: plain tables saying where each source tensor goes in MindSpore and how it is transformed.

A table is a list of `Row(source, target, transform)`, built in loops by the per-model modules the way the
Hugging Face conversion scripts build their rename lists. `apply()` is strict: every source tensor is used
exactly once (declared ignores aside), every MindSpore parameter is filled, every shape is checked, and a
failure lists every offending tensor at once.

A table also lists its *layers*: pairs of (source module, MindSpore cell) whose outputs the parity check
compares, in the order the source computes them.

How a source framework names and lays out the tensors of one layer (BN names, kernel and dense layouts, the
names inside a conv+BN unit, the tensors it never ports) is its `Convention` (porting.weight_maps.conventions);
a table built with one (`convention.map(name)`) adds a layer in one call: `wm.conv_bn(src, dst, act=True)`.
"""
from porting.weight_maps.table import (  # noqa: F401
    COPY,
    DEPTHWISE_HWC1_TO_C1HW,
    HWIO_TO_OIHW,
    IN_OUT_TO_OUT_IN,
    Layer,
    Row,
    Transform,
    WeightMap,
    scale,
    transpose,
)
from porting.weight_maps.conventions import Convention, renamed_source  # noqa: E402,F401
