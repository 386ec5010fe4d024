"""The model zoo's SE_ResNeXt50 (research/cv/SE_ResNeXt50/src: backbone/resnet.py, head.py, utils/cunstom_op.py)
-> the SEResNeXt model.

Its names: `backbone.conv`/`backbone.bn` stem, `backbone.maxpool` ('same'), `backbone.layer{1..4}.{i}` Bottlenecks
with `conv1..3`/`bn1..3`, SE Dense layers `se.fc1`/`se.fc2`, shortcut `down_sample.conv`/`.bn`, head
`head.fc`. Its grouped 3x3 is a GroupConv: one conv per group (`conv2.convs.{g}`, [width/32, width/32, 3, 3]) on
a split of the channels, concatenated; stacked along the output channels, the 32 kernels are the one grouped
kernel [width, width/32, 3, 3].
"""
from porting.archs.se_resnext import blocks
from porting.weight_maps import WeightMap
from porting.weight_maps.conventions import MODELZOO


def build(spec) -> WeightMap:
    groups = spec.config.cardinality
    wm = MODELZOO.map(spec.id)
    wm.conv("backbone.conv", "stem.conv1")
    wm.bn("backbone.bn", "stem.bn1")
    wm.layer("backbone.maxpool", "pool", "pool")
    for s, i, down in blocks(spec.config):
        src, dst = f"backbone.layer{s}.{i}", f"layer{s}.{i}"
        wm.conv(f"{src}.conv1", f"{dst}.conv1")
        wm.bn(f"{src}.bn1", f"{dst}.bn1")
        wm.concat([f"{src}.conv2.convs.{g}.weight" for g in range(groups)], f"{dst}.conv2.weight",
                  f"{src}.conv2.convs.{{0..{groups - 1}}}.weight")
        wm.layer(f"{src}.conv2", f"{dst}.conv2", "conv")
        wm.bn(f"{src}.bn2", f"{dst}.bn2")
        wm.conv(f"{src}.conv3", f"{dst}.conv3")
        wm.bn(f"{src}.bn3", f"{dst}.bn3")
        wm.dense(f"{src}.se.fc1", f"{dst}.se.fc1")
        wm.dense(f"{src}.se.fc2", f"{dst}.se.fc2")
        wm.layer(f"{src}.se", f"{dst}.se", "se")
        if down:
            wm.conv(f"{src}.down_sample.conv", f"{dst}.downsample.conv")
            wm.bn(f"{src}.down_sample.bn", f"{dst}.downsample.bn")
        wm.layer(src, dst, "block")
    wm.dense("head.fc", "fc")
    return wm
