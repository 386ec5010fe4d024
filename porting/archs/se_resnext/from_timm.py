"""timm `seresnext50_32x4d` (timm/models/resnet.py; also its `.gluon_in1k` weights, which timm's deprecated name
`gluon_seresnext50_32x4d` points to) and timm `legacy_seresnext50_32x4d` (timm/models/senet.py, the Cadene
pretrainedmodels port) -> the SEResNeXt model.

resnet.py names: `conv1`/`bn1` stem, `maxpool`, `layer{1..4}.{i}` Bottlenecks with `conv1..3`/`bn1..3`, SE as
1x1 convs with bias `se.fc1`/`se.fc2` (applied to the bn3 output, before the residual add), shortcut
`downsample.0` (1x1 conv carrying the stride) / `downsample.1` (BN), head `fc`. senet.py names the same model
after Cadene: stem `layer0.conv1`/`layer0.bn1`, `pool0` (3x3/2, no padding, ceil_mode=True: the variant's
`stem_pool_*` settings), SE `se_module.fc1/fc2`, head `last_linear`. A block's single `relu` module runs three
times per block, so it is not tapped; the block output is. No transform is needed: PyTorch and MindSpore share
OIHW kernels and [out, in] dense weights.
"""
from porting.archs.se_resnext import blocks
from porting.weight_maps import WeightMap
from porting.weight_maps.conventions import TIMM

LEGACY = "legacy_seresnext50_32x4d"
# (stem conv, stem BN, stem pool, SE module, head) in resnet.py and in senet.py
NAMES = {False: ("conv1", "bn1", "maxpool", "se", "fc"),
         True: ("layer0.conv1", "layer0.bn1", "pool0", "se_module", "last_linear")}


def build(spec) -> WeightMap:
    conv1, bn1, pool, se, head = NAMES[spec.name == LEGACY]
    wm = TIMM.map(spec.id)
    wm.conv(conv1, "stem.conv1")
    wm.bn(bn1, "stem.bn1")
    wm.layer(pool, "pool", "pool")
    for s, i, down in blocks(spec.config):
        src = dst = f"layer{s}.{i}"
        for k in (1, 2, 3):
            wm.conv(f"{src}.conv{k}", f"{dst}.conv{k}")
            wm.bn(f"{src}.bn{k}", f"{dst}.bn{k}")
        wm.conv(f"{src}.{se}.fc1", f"{dst}.se.fc1", bias=True, tap=False)
        wm.conv(f"{src}.{se}.fc2", f"{dst}.se.fc2", bias=True, tap=False)
        wm.layer(f"{src}.{se}", f"{dst}.se", "se")
        if down:
            wm.conv(f"{src}.downsample.0", f"{dst}.downsample.conv")
            wm.bn(f"{src}.downsample.1", f"{dst}.downsample.bn")
        wm.layer(src, dst, "block")
    wm.dense(head, "fc")
    return wm
