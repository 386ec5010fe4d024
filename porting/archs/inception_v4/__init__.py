"""Inception-v4 (Szegedy et al. 2016): timm `inception_v4`, PaddleClas `InceptionV4`, mindcv `inception_v4`, the
MindSpore model zoo's InceptionV4.

The variants (PORTING_NOTES.md section 4, rows 1, 6, 11):

- timm `inception_v4`: BN eps 1e-3; branch outputs concatenated as (convs..., pool branch).
- PaddleClas `InceptionV4` (ppcls/arch/backbone/model_zoo/inception_v4.py): BN eps 1e-5 (Paddle default);
  Inception-A/B/C and Reduction-A/B concatenate the pool branch FIRST; the factorized stacks of the stem
  (Mixed4a branch 1), Inception-B branch 2 and Inception-C branch 2 apply the 1xk / kx1 pair in the opposite
  order (timm 1x7,7x1 / 7x1,1x7,7x1,1x7 / 3x1,1x3; Paddle 7x1,1x7 / 1x7,7x1,1x7,7x1 / 1x3,3x1).

Both pool their Inception-block average pools 3x3 stride 1 padded by 1 EXCLUDING the padding (timm
count_include_pad=False, Paddle exclusive=True), and max pools 3x3 stride 2 without padding. Paddle's
inference-time Dropout(downscale_in_infer) x0.8 is folded into the head by its weight map.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from porting.archs.recipe import Recipe, register_recipe
from porting.archs.registry import ModelSpec, Structure, register_arch, register_specs, register_target_rules


# official/cv/Inception/inceptionv4/default_config.yaml: RMSProp(decay 0.9, momentum 0.9, epsilon 1.0), lr 4e-5
# -> 0.4 (1 warmup epoch) -> 4e-6, cosine (train.py generate_cosine_lr), wd 4e-5, smoothing 0.1, loss scale
# 1024, batch 128, 250 epochs, amp O3, a checkpoint every 10 epochs, 10 kept; default_config_gpu.yaml: amp O0
register_recipe("inceptionv4", Recipe(optimizer="rmsprop", lr_init=0.00004, lr_max=0.4, lr_end=0.000004,
                                      lr_decay_mode="cosine", weight_decay=0.00004, amp_level="O3",
                                      keep_checkpoint_max=10, save_checkpoint_epochs=10), gpu={"amp_level": "O0"})


@register_arch("inception_v4", model="porting.archs.inception_v4.model:InceptionV4", recipe="inceptionv4",
               min_input_size=75)  # the unpadded stem and reductions need 75 px
@dataclass(frozen=True)
class InceptionV4Config:
    bn_eps: float = 1e-3
    pool_branch_first: bool = False  # Paddle: the pool branch comes first in every block's concat
    swap_factorized: bool = False  # Paddle: the stem / B / C factorized stacks start with the other shape
    # the model zoo's head: BatchNorm1d `bn0` (eps 1e-3) on the pooled features, then nn.DenseBnAct: the
    # classifier, a BatchNorm1d over the classes (eps 1e-5) and log-softmax
    head_bn: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# Synthetic weights shift BN betas by +1: with 100+ conv-BN-ReLU layers and no residuals, beta mean 0 makes the
# net amplify fp32 rounding ~1.5x per block (timm fp32 vs fp64 8e-5 relative at the last block; +1: 6e-6).
CONDITIONED = {"bn_beta_mean": 1.0}
TIMM_GRAPH = {"bn_eps": 1e-3, "pool_branch_first": False, "swap_factorized": False}

register_specs(
    # timm inception_v4.py: pretrained cfg 299, mean = std 0.5, bicubic, crop 0.875.
    ModelSpec("timm", "inception_v4", "inception_v4", TIMM_GRAPH, weight_map="from_timm", crop_pct=0.875,
              random_init=CONDITIONED, variant="BN eps 1e-3, exclusive 3x3 avg pools, unpadded max pools",
              notes="timm/models/inception_v4.py; a 1001-class TF-slim head loses its background class (index 0) "
                    "unless `--keep-background`"),
    # PaddleClas inception_v4.py; eval config: resize short side 320 -> crop 299, ImageNet mean/std.
    ModelSpec("paddleclas", "InceptionV4", "inception_v4",
              {"bn_eps": 1e-5, "pool_branch_first": True, "swap_factorized": True}, weight_map="from_paddleclas",
              mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=299 / 320,
              random_init=CONDITIONED,
              variant="BN eps 1e-5, pool branch first in every concat, stem / B / C factorized 1xk-kx1 stacks swapped",
              notes="ppcls inception_v4.py; Dropout(downscale_in_infer) x0.8 folded into `fc.weight`; Linear "
                    "[in,out] transposed"),
    # mindcv inceptionv4.py: timm's graph ('same' avg pools that exclude the padding); eval as mindcv's
    # create_transforms: resize the short side to size / 0.875 (bilinear, OpenCV) -> centre crop, ImageNet mean/std.
    ModelSpec("mindcv", "inception_v4", "inception_v4", dict(TIMM_GRAPH), weight_map="from_mindcv",
              mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=0.875,
              random_init=CONDITIONED, variant="as `timm:inception_v4`",
              notes="mindcv/models/inceptionv4.py; the stem is one cell there, so its three mixed blocks are "
                    "compared through their convs and pools only"),
    # the model zoo's src/inceptionv4.py (seed 001): mindcv's graph at MindSpore's BN eps 1e-5 (its convs are
    # nn.Conv2dBnAct), with its own head: bn0 (BatchNorm1d, eps 1e-3) on the pooled features, then nn.DenseBnAct
    # (the classifier, a BatchNorm1d over the classes, log-softmax). Eval as its src/dataset.py: Resize(299) (short
    # side, bilinear) -> CenterCrop(299), ImageNet mean/std.
    ModelSpec("modelzoo", "inceptionv4", "inception_v4", {**TIMM_GRAPH, "bn_eps": 1e-5, "head_bn": True},
              weight_map="from_modelzoo", aliases=("inception_v4",), mean=(0.485, 0.456, 0.406),
              std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=1.0, random_init=CONDITIONED,
              variant="a configuration (BN eps 1e-5) plus one addition for it, `head_bn`: bn0 -> Dense -> BN -> log-softmax",
              notes="the model zoo's official/cv/Inception/inceptionv4 (seed 001), run from your checkout "
                    "(--modelzoo); its stem is one cell, compared through its convs and pools"),
)

register_target_rules(
    "inception_v4",
    pool_branch_first=Structure("PaddleClas concatenates the pool branch first: the next convs take their input "
                                "channels in another order"),
    swap_factorized=Structure("its factorized 1xk / kx1 stacks run in the other order, with kernels of other "
                              "shapes"),
    head_bn=Structure("the model zoo's head is BN -> Dense -> BN -> log-softmax, the others' a plain Dense (its "
                      "log-probabilities are not logits)"),
)
