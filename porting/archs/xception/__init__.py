"""The original Xception (Chollet 2017): timm `legacy_xception`, `keras.applications.Xception`, mindcv `xception`,
the MindSpore model zoo's Xception.

They share one topology and differ in BN eps and in padding: timm pads convs and max pools symmetrically by 1,
Keras uses TensorFlow SAME, which pads the max pools (0, 1) on even inputs (PORTING_NOTES.md section 4, rows
1-2); mindcv and the model zoo pad their convs as timm and their max pools 'same' as Keras.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from porting.archs.recipe import Recipe, register_recipe
from porting.archs.registry import Computes, ModelSpec, Same, register_arch, register_specs, register_target_rules


# official/cv/Inception/xception/default_config.yaml, config_ascend: Momentum 0.9, lr 4e-5 -> 0.4 (1 warmup
# epoch) -> 4e-5 'liner', smoothing 0.1, wd 1e-4, loss scale 1024, batch 128, 250 epochs, a checkpoint every
# epoch, 5 kept; train.py on Ascend: amp_level 'O3' (keep_batchnorm_fp32). config_gpu and train.py on GPU: batch 64,
# amp O2 unless --is_fp32 (checked key by key against those files by parity_tests/test_recipes.py)
register_recipe("xception", Recipe(amp_level="O3"), gpu={"batch_size": 64, "amp_level": "O2"})


@register_arch("xception", model="porting.archs.xception.model:Xception", recipe="xception")
@dataclass(frozen=True)
class XceptionConfig:
    bn_eps: float = 1e-5
    conv_padding: int | str = 1  # padding of the 3x3 separable convs (an int: symmetric; 'same': TF SAME)
    pool_padding: int | str = 1  # padding of the 3x3 stride-2 max pools

    def to_dict(self) -> dict:
        return asdict(self)


# (in, out, separable convs, stride, starts with ReLU, grows channels on the first conv)
ENTRY_MIDDLE_EXIT = [
    (64, 128, 2, 2, False, True),
    (128, 256, 2, 2, True, True),
    (256, 728, 2, 2, True, True),
    *[(728, 728, 3, 1, True, True)] * 8,
    (728, 1024, 2, 2, True, False),
]

IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))

register_specs(
    ModelSpec("timm", "legacy_xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": 1},
              weight_map="from_timm", aliases=("xception",), crop_pct=0.8975,
              variant="BN eps 1e-5, symmetric padding", notes="timm/models/xception.py"),
    # keras.applications.Xception (keras/src/applications/xception.py): BatchNormalization eps 1e-3, TF 'same'
    # padding for the 3x3 separable convs and the stride-2 max pools (pads (0, 1) on even inputs).
    # preprocess_input mode 'tf' (x / 127.5 - 1) = mean = std 0.5; Keras resizes bilinearly by default
    # (keras.layers.Resizing, image_dataset_from_directory); crop 299/333 as measured for these weights by
    # Cadene/timm (legacy_xception.tf_in1k was ported from the Keras release).
    ModelSpec("keras", "xception", "xception", {"bn_eps": 1e-3, "conv_padding": "same", "pool_padding": "same"},
              weight_map="from_keras", interpolation="bilinear", crop_pct=0.8975, source_min_size=71,
              variant="BN eps 1e-3, TF 'same' padding: max pools pad (0, 1) on even inputs",
              notes="keras.applications.Xception; `.weights.h5`, legacy `.h5` (what keras.applications downloads) "
                    "or `.keras`; NHWC -> NCHW"),
    # mindcv/models/xception.py: timm's graph with 'same' max pools, BNs at MindSpore's eps 1e-5; eval
    # preprocessing as mindcv's create_transforms: resize the short side to size / 0.875 (bilinear, OpenCV in
    # mindspore.dataset) -> centre crop, ImageNet mean/std.
    ModelSpec("mindcv", "xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": "same"},
              weight_map="from_mindcv", **IMAGENET, interpolation="bilinear", crop_pct=0.875,
              variant="BN eps 1e-5, symmetric conv padding, max pools 'same' as mindcv's",
              notes="mindcv/models/xception.py; a MindSpore `.ckpt` (see \"Checkpoints you already have in "
                    "MindSpore\")"),
    # the model zoo's src/Xception.py (seed 000): mindcv's graph (mindcv's xception came from it), with the global
    # mean written as AvgPool2d(10), which is the global mean only where the last maps are 10x10: inputs of 295 to
    # 326 px. Eval as its src/dataset.py: Resize(320) (short side, bilinear) -> CenterCrop(299), mean = std 127.5.
    ModelSpec("modelzoo", "xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": "same"},
              weight_map="from_modelzoo", interpolation="bilinear", crop_pct=299 / 320, source_min_size=295,
              source_max_size=326,
              variant="a configuration, `mindcv:xception`'s; its AvgPool2d(10) head is the global mean at 295-326 px (299)",
              notes="the model zoo's official/cv/Inception/xception (seed 000), run from your checkout (--modelzoo); "
                    "a `.ckpt` its train.py saved"),
)

register_target_rules(
    "xception",
    conv_padding=Same("its padded convs are the 3x3 stride-1 separable ones, where padding 1 is TF 'same'"),
    pool_padding=Computes("the stride-2 max pools pad by 1 on both sides in one and TF 'same' (pads (0, 1) on even "
                          "inputs: the 74x74 and 38x38 maps at 299 px) in the other"),
)
