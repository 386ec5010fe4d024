"""timm `seresnext50_32x4d` (timm/models/resnet.py; also its `.gluon_in1k` weights, which timm's deprecated
name `gluon_seresnext50_32x4d` points to) -> porting.models.se_resnext.SEResNeXt.

timm names: `conv1`/`bn1` stem, `maxpool`, `layer{1..4}.{i}` Bottlenecks with `conv1..3`/`bn1..3`, SE as
1x1 convs with bias `se.fc1`/`se.fc2` (applied to the bn3 output, before the residual add), shortcut
`downsample.0` (1x1 conv carrying the stride) / `downsample.1` (BN), head `fc`. No transform is needed:
PyTorch and MindSpore share OIHW kernels and [out, in] dense weights.
"""
from porting.weight_maps import WeightMap
from porting.weight_maps.conventions import batchnorm, conv, dense

DEFAULT_LAYERS = [3, 4, 6, 3]


def blocks(spec):
    """(stage index 1..4, block index, has a downsample shortcut) for every bottleneck of the spec."""
    for s, depth in enumerate((spec.arch_config if spec else {}).get("layers", DEFAULT_LAYERS), 1):
        for i in range(depth):
            yield s, i, i == 0  # the first block of every stage changes width (stage 1: 64 -> 256) or stride


def bottleneck(wm: WeightMap, src: str, dst: str, downsample: bool, se: str, fc1: str, fc2: str) -> None:
    for k in (1, 2, 3):
        conv(wm, f"{src}.conv{k}", f"{dst}.conv{k}")
        batchnorm(wm, f"{src}.bn{k}", f"{dst}.bn{k}")
    conv(wm, f"{src}.{se}.{fc1}", f"{dst}.se.fc1", bias=True, tap=False)
    conv(wm, f"{src}.{se}.{fc2}", f"{dst}.se.fc2", bias=True, tap=False)
    wm.layer(f"{src}.{se}", f"{dst}.se", "se")
    if downsample:
        conv(wm, f"{src}.downsample.0", f"{dst}.downsample.conv")
        batchnorm(wm, f"{src}.downsample.1", f"{dst}.downsample.bn")
    wm.layer(src, dst, "block")


def build(spec=None) -> WeightMap:
    wm = WeightMap(spec.id if spec else "timm:seresnext50_32x4d", ignore=["*.num_batches_tracked"])
    conv(wm, "conv1", "stem.conv1")
    batchnorm(wm, "bn1", "stem.bn1")
    wm.layer("maxpool", "pool", "pool")
    for s, i, down in blocks(spec):
        bottleneck(wm, f"layer{s}.{i}", f"layer{s}.{i}", down, "se", "fc1", "fc2")
    dense(wm, "fc", "fc")
    return wm
