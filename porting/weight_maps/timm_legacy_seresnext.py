"""timm `legacy_seresnext50_32x4d` (timm/models/senet.py, the Cadene pretrainedmodels port) ->
porting.models.se_resnext.SEResNeXt.

Same bottleneck as timm's resnet.py version but named after Cadene: stem `layer0.conv1`/`layer0.bn1`,
`pool0` (3x3/2, no padding, ceil_mode=True: the model's `stem_pool_*` settings), SE `se_module.fc1/fc2`
(1x1 convs with bias), head `last_linear`. The block's single `relu` module runs three times per block,
so it is not tapped; the block output is.
"""
from porting.weight_maps import WeightMap
from porting.weight_maps.conventions import batchnorm, conv, dense
from porting.weight_maps.timm_seresnext import blocks, bottleneck


def build(spec=None) -> WeightMap:
    wm = WeightMap(spec.id if spec else "timm:legacy_seresnext50_32x4d", ignore=["*.num_batches_tracked"])
    conv(wm, "layer0.conv1", "stem.conv1")
    batchnorm(wm, "layer0.bn1", "stem.bn1")
    wm.layer("pool0", "pool", "pool")
    for s, i, down in blocks(spec):
        bottleneck(wm, f"layer{s}.{i}", f"layer{s}.{i}", down, "se_module", "fc1", "fc2")
    dense(wm, "last_linear", "fc")
    return wm
