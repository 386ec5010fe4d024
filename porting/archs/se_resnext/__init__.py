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
from porting.archs.registry import (Computes, ModelSpec, Reshape, register_arch, register_specs,
                                    register_target_rules)


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


def _config(**changes) -> dict:
    """SE-ResNeXt50 32x4d: timm resnet.py's graph, with the variant's changes."""
    return {"layers": [3, 4, 6, 3], "cardinality": 32, "base_width": 4, "bn_eps": 1e-5, "stem": [64],
            "stem_pool_padding": 1, "stem_pool_ceil": False, "se_reduction": 16, "se_dense": False,
            "avg_down": False, **changes}


IMAGENET_224 = dict(input_size=224, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
TIMM_NOTES = "timm/models/resnet.py"

register_specs(
    # timm resnet.py: 7x7 stem, max pool 3/2 padded by 1, SE as 1x1 convs after bn3, BN eps 1e-5;
    # `gluon_seresnext50_32x4d` is timm's deprecated name for the gluon_in1k weights of the same model (timm
    # resnet.py register_model_deprecations), so it is a spec of its own (its download and preprocessing
    # differ) with that alias. Preprocessing from each timm pretrained cfg: 224, ImageNet mean/std, crop 0.875.
    ModelSpec("timm", "seresnext50_32x4d", "se_resnext", _config(), weight_map="from_timm", **IMAGENET_224,
              crop_pct=0.875, variant="7x7 stem, max pool 3/2 pad 1, SE as 1x1 convs after bn3, BN eps 1e-5",
              notes=TIMM_NOTES),
    # timm resnet.py's 101-layer model (stages 3-4-23-3); its one pretrained tag is gluon_in1k. Synthetic BN
    # betas shifted by +1: at 0 this random net is deep enough that timm's own fp32 forward differs from its fp64
    # one by 8e-5 relative at layer4.2's SE (128 px), too close to parity's 1e-4; at +1 by 3e-6.
    ModelSpec("timm", "seresnext101_32x4d", "se_resnext", _config(layers=[3, 4, 23, 3]), weight_map="from_timm",
              **IMAGENET_224, crop_pct=0.875, random_init={"bn_beta_mean": 1.0},
              variant="as `timm:seresnext50_32x4d` with 3-4-23-3 bottlenecks", notes=TIMM_NOTES),
    ModelSpec("timm", "seresnext50_32x4d.gluon_in1k", "se_resnext", _config(), weight_map="from_timm",
              aliases=("gluon_seresnext50_32x4d",), **IMAGENET_224, crop_pct=0.875,
              variant="as `timm:seresnext50_32x4d`",
              notes="timm's deprecated `gluon_seresnext50_32x4d` is this tag of resnet.py's model; the online "
                    "download takes the gluon weights"),
    # timm senet.py (legacy, the Cadene port): pool0 unpadded with ceil_mode=True.
    ModelSpec("timm", "legacy_seresnext50_32x4d", "se_resnext", _config(stem_pool_padding=0, stem_pool_ceil=True),
              weight_map="from_timm", **IMAGENET_224, interpolation="bilinear", crop_pct=0.875,
              variant="stem pool unpadded with ceil_mode: 112 -> 56",
              notes="timm/models/senet.py (Cadene names `layer0.*`, `se_module`, `last_linear`)"),
    # PaddleClas SE_ResNeXt50_32x4d (se_resnext.py): same graph as timm's with the SE in Linear layers.
    # SE_ResNeXt50_vd_32x4d (se_resnext_vd.py): deep stem 64-64-128 and AvgPool2D(2, 2, ceil_mode=True,
    # exclusive) shortcuts. Eval config (deploy/configs/inference_cls.yaml): resize short side 256 (cv2
    # bilinear) -> centre crop 224, ImageNet mean/std.
    ModelSpec("paddleclas", "SE_ResNeXt50_32x4d", "se_resnext", _config(se_dense=True),
              weight_map="from_paddleclas", **IMAGENET_224, interpolation="bilinear", crop_pct=224 / 256,
              variant="SE with Dense layers, BN eps 1e-5",
              notes="ppcls se_resnext.py; SE `squeeze`/`excitation` and head Linear [in,out] transposed; BN+ReLU "
                    "fused in Paddle"),
    ModelSpec("paddleclas", "SE_ResNeXt50_vd_32x4d", "se_resnext",
              _config(stem=[64, 64, 128], se_dense=True, avg_down=True), weight_map="from_paddleclas",
              **IMAGENET_224, interpolation="bilinear", crop_pct=224 / 256,
              variant="deep stem 3x3 convs 64-64-128, shortcut AvgPool2d(2, 2, ceil_mode, exclusive) + 1x1 conv",
              notes="ppcls se_resnext_vd.py"),
    # mindcv senet.py: the Cadene model with its stem pool 'same' and the SE in Dense layers; eval as mindcv's
    # create_transforms (resize short side to size / 0.875, bilinear, OpenCV -> centre crop).
    ModelSpec("mindcv", "seresnext50_32x4d", "se_resnext", _config(stem_pool_padding="same", se_dense=True),
              weight_map="from_mindcv", **IMAGENET_224, interpolation="bilinear", crop_pct=0.875,
              variant="stem pool 'same', SE with Dense layers", notes="mindcv/models/senet.py"),
    # the model zoo's src/backbone/resnet.py (seed 002): mindcv's graph (stem pool 'same', SE Dense layers, BN eps
    # 1e-5) with each grouped 3x3 as 32 convs on split channels (GroupConv), stacked by the weight map; its
    # classifier's float16 flag is not a weight (the worker runs it at float32). Eval as its src/dataset.py:
    # Resize((256, 256)) (both sides: the aspect ratio is not kept) -> CenterCrop(224), ImageNet mean/std.
    ModelSpec("modelzoo", "se_resnext50", "se_resnext", _config(stem_pool_padding="same", se_dense=True),
              weight_map="from_modelzoo", aliases=("seresnext50_32x4d",), **IMAGENET_224, interpolation="bilinear",
              crop_pct=224 / 256, resize_backend="mindspore-square",
              variant="a configuration, `mindcv:seresnext50_32x4d`'s",
              notes="the model zoo's research/cv/SE_ResNeXt50 (seed 002), run from your checkout (--modelzoo); "
                    "its GroupConv's 32 kernels stacked into one grouped conv"),
)


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
