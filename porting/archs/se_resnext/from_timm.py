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
from porting.archs.registry import ModelSpec, register_specs
from porting.archs.se_resnext import IMAGENET_224, blocks, timm_graph
from porting.weight_maps import WeightMap

LEGACY = "legacy_seresnext50_32x4d"
RESNET = "timm/models/resnet.py"
# (stem conv, stem BN, stem pool, SE module, head) in resnet.py and in senet.py
NAMES = {False: ("conv1", "bn1", "maxpool", "se", "fc"),
         True: ("layer0.conv1", "layer0.bn1", "pool0", "se_module", "last_linear")}


def build(spec, convention) -> WeightMap:
    conv1, bn1, pool, se, head = NAMES[spec.name == LEGACY]
    wm = convention.map(spec.id)
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


register_specs(
    # timm resnet.py: 7x7 stem, max pool 3/2 padded by 1, SE as 1x1 convs after bn3, BN eps 1e-5;
    # `gluon_seresnext50_32x4d` is timm's deprecated name for the gluon_in1k weights of the same model (timm
    # resnet.py register_model_deprecations), so it is a spec of its own (its download and preprocessing
    # differ) with that alias. Preprocessing from each timm pretrained cfg: 224, ImageNet mean/std, crop 0.875.
    ModelSpec("timm", "seresnext50_32x4d", "se_resnext", timm_graph(), weight_map="from_timm", **IMAGENET_224,
              crop_pct=0.875, variant="7x7 stem, max pool 3/2 pad 1, SE as 1x1 convs after bn3, BN eps 1e-5",
              notes=RESNET),
    # timm resnet.py's 101-layer model (stages 3-4-23-3); its one pretrained tag is gluon_in1k. Synthetic BN
    # betas shifted by +1: at 0 this random net is deep enough that timm's own fp32 forward differs from its fp64
    # one by 8e-5 relative at layer4.2's SE (128 px), too close to parity's 1e-4; at +1 by 3e-6.
    ModelSpec("timm", "seresnext101_32x4d", "se_resnext", timm_graph(layers=[3, 4, 23, 3]),
              weight_map="from_timm", **IMAGENET_224, crop_pct=0.875, random_init={"bn_beta_mean": 1.0},
              variant="as `timm:seresnext50_32x4d` with 3-4-23-3 bottlenecks", notes=RESNET),
    ModelSpec("timm", "seresnext50_32x4d.gluon_in1k", "se_resnext", timm_graph(), weight_map="from_timm",
              aliases=("gluon_seresnext50_32x4d",), **IMAGENET_224, crop_pct=0.875,
              variant="as `timm:seresnext50_32x4d`",
              notes="timm's deprecated `gluon_seresnext50_32x4d` is this tag of resnet.py's model; the online "
                    "download takes the gluon weights"),
    # timm senet.py (legacy, the Cadene port): pool0 unpadded with ceil_mode=True.
    ModelSpec("timm", "legacy_seresnext50_32x4d", "se_resnext",
              timm_graph(stem_pool_padding=0, stem_pool_ceil=True), weight_map="from_timm", **IMAGENET_224,
              interpolation="bilinear", crop_pct=0.875,
              variant="stem pool unpadded with ceil_mode: 112 -> 56",
              notes="timm/models/senet.py (Cadene names `layer0.*`, `se_module`, `last_linear`)"),
)
