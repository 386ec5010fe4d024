"""The original Xception (Chollet 2017): timm `legacy_xception`, `keras.applications.Xception`, mindcv `xception`,
the MindSpore model zoo's Xception.

They share one topology and differ in BN eps and in padding: timm pads convs and max pools symmetrically by 1,
Keras uses TensorFlow SAME, which pads the max pools (0, 1) on even inputs (PORTING_NOTES.md section 4, rows
1-2); mindcv and the model zoo pad their convs as timm and their max pools 'same' as Keras.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from porting.archs.recipe import Recipe, register_recipe
from porting.archs.registry import Computes, Same, register_arch, register_target_rules


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

register_target_rules(
    "xception",
    conv_padding=Same("its padded convs are the 3x3 stride-1 separable ones, where padding 1 is TF 'same'"),
    pool_padding=Computes("the stride-2 max pools pad by 1 on both sides in one and TF 'same' (pads (0, 1) on even "
                          "inputs: the 74x74 and 38x38 maps at 299 px) in the other"),
)
