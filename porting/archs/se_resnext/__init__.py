"""SE-ResNeXt (Hu et al. 2018 on Xie et al. 2017), one configurable implementation.

It covers timm `seresnext50_32x4d` (resnet.py), timm `legacy_seresnext50_32x4d` (senet.py, the Cadene port),
PaddleClas `SE_ResNeXt50_32x4d` and `SE_ResNeXt50_vd_32x4d`, mindcv `seresnext50_32x4d`, and the MindSpore model
zoo's SE_ResNeXt50. They share the bottleneck
(1x1 -> grouped 3x3 carrying the stride -> 1x1, BN eps 1e-5, SE on the bn3 output before the residual add,
ReLU after the add) and differ in (PORTING_NOTES.md section 4, row 12):

- stem: one 7x7/2 conv (`stem=[64]`) or the vd deep stem of three 3x3 convs (`stem=[64, 64, 128]`);
- stem max pool: 3x3/2 padded by 1 (timm resnet.py, Paddle), unpadded with ceil_mode (timm senet.py),
  which gives 56x56 instead of 55x55 from a 112x112 stem output, or 'same' (mindcv);
- SE: 1x1 convs with bias (timm) or Dense layers (Paddle `squeeze`/`excitation`, mindcv), reduction 16;
- shortcut of strided blocks: 1x1 conv with the stride (+BN), or (vd) AvgPool2d(2, 2, ceil_mode,
  padding excluded) then a 1x1 stride-1 conv (+BN).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from porting.archs.recipe import Recipe, register_recipe
from porting.archs.registry import Computes, Reshape, register_arch, register_target_rules


# research/cv/SE_ResNeXt50/default_config.yaml: Momentum 0.9, lr 0.4 with 1 warmup epoch from 0, cosine
# annealing to eta_min 0 over max_epoch 150, wd 1e-4, label_smooth on with factor 0.1, loss scale 1024,
# per_batch_size 128, a checkpoint every ckpt_interval 5 epochs, ckpt_save_max 5; train.py: amp_level 'O3'
register_recipe("se_resnext50", Recipe(lr_init=0.0, lr_max=0.4, lr_end=0.0, lr_decay_mode="cosine", epochs=150,
                                       amp_level="O3", save_checkpoint_epochs=5))


@register_arch("se_resnext", model="porting.archs.se_resnext.model:SEResNeXt", recipe="se_resnext50")
@dataclass(frozen=True)
class SEResNeXtConfig:
    layers: list = field(default_factory=lambda: [3, 4, 6, 3])  # bottlenecks per stage
    cardinality: int = 32
    base_width: int = 4
    bn_eps: float = 1e-5
    stem: list = field(default_factory=lambda: [64])  # [64]: 7x7/2 conv; [64, 64, 128]: three 3x3 convs
    stem_pool_padding: int | str = 1  # stem max pool 3x3/2: padding (mindcv: 'same') ...
    stem_pool_ceil: bool = False  # ... and ceil_mode
    se_reduction: int = 16
    se_dense: bool = False  # SE with Dense layers instead of 1x1 convs
    avg_down: bool = False  # vd shortcut: AvgPool2d(2, 2, ceil_mode=True, exclusive) + 1x1 stride-1 conv

    def to_dict(self) -> dict:
        return asdict(self)


def timm_graph(**changes) -> dict:
    """SE-ResNeXt50 32x4d: timm resnet.py's graph, with the variant's changes (each spec's arch_config)."""
    return {"layers": [3, 4, 6, 3], "cardinality": 32, "base_width": 4, "bn_eps": 1e-5, "stem": [64],
            "stem_pool_padding": 1, "stem_pool_ceil": False, "se_reduction": 16, "se_dense": False,
            "avg_down": False, **changes}


IMAGENET_224 = dict(input_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def blocks(config: SEResNeXtConfig):
    """(stage index 1..4, block index, has a downsample shortcut) for every bottleneck of a variant."""
    for s, depth in enumerate(config.layers, 1):
        for i in range(depth):
            yield s, i, i == 0  # the first block of every stage changes width (stage 1: 64 -> 256) or stride

register_target_rules(
    "se_resnext",
    stem_pool_padding=Computes("the stem max pool pads differently (by 1, TF 'same', or not at all with "
                               "ceil_mode): other windows on the 112x112 stem output"),
    stem_pool_ceil=Computes("the stem max pool rounds its output size differently (ceil_mode)"),
    se_dense=Reshape("SE as 1x1 convs [r, C, 1, 1] or Dense layers [r, C] on the pooled vector: the same function, "
                     "weights reshaped"),
)
