"""The model zoo's SE_ResNeXt50 (research/cv/SE_ResNeXt50/src: backbone/resnet.py, head.py, utils/cunstom_op.py)
-> the SEResNeXt model.

Its names: `backbone.conv`/`backbone.bn` stem, `backbone.maxpool` ('same'), `backbone.layer{1..4}.{i}` Bottlenecks
with `conv1..3`/`bn1..3`, SE Dense layers `se.fc1`/`se.fc2`, shortcut `down_sample.conv`/`.bn`, head
`head.fc`. Its grouped 3x3 is a GroupConv: one conv per group (`conv2.convs.{g}`, [width/32, width/32, 3, 3]) on
a split of the channels, concatenated; stacked along the output channels, the 32 kernels are the one grouped
kernel [width, width/32, 3, 3].
"""
from porting.archs.registry import ModelSpec, register_specs
from porting.archs.se_resnext import IMAGENET_224, blocks, timm_graph
from porting.weight_maps import WeightMap


def build(spec, convention) -> WeightMap:
    groups = spec.config.cardinality
    wm = convention.map(spec.id)
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


register_specs(
    # the model zoo's src/backbone/resnet.py (seed 002): mindcv's graph (stem pool 'same', SE Dense layers, BN eps
    # 1e-5) with each grouped 3x3 as 32 convs on split channels (GroupConv), stacked by the weight map; its
    # classifier's float16 flag is not a weight (the worker runs it at float32). Eval as its src/dataset.py:
    # Resize((256, 256)) (both sides: the aspect ratio is not kept) -> CenterCrop(224), ImageNet mean/std.
    ModelSpec("modelzoo", "se_resnext50", "se_resnext", timm_graph(stem_pool_padding="same", se_dense=True),
              weight_map="from_modelzoo", aliases=("seresnext50_32x4d",), **IMAGENET_224, interpolation="bilinear",
              crop_pct=224 / 256, resize_backend="mindspore-square",
              variant="a configuration, `mindcv:seresnext50_32x4d`'s",
              notes="the model zoo's research/cv/SE_ResNeXt50 (seed 002), run from your checkout (--modelzoo); "
                    "its GroupConv's 32 kernels stacked into one grouped conv"),
)
