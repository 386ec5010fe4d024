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
from porting.archs.registry import Structure, register_arch, register_target_rules


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
# timm's graph, which the mindcv and model-zoo specs start from
TIMM_GRAPH = {"bn_eps": 1e-3, "pool_branch_first": False, "swap_factorized": False}

register_target_rules(
    "inception_v4",
    pool_branch_first=Structure("PaddleClas concatenates the pool branch first: the next convs take their input "
                                "channels in another order"),
    swap_factorized=Structure("its factorized 1xk / kx1 stacks run in the other order, with kernels of other "
                              "shapes"),
    head_bn=Structure("the model zoo's head is BN -> Dense -> BN -> log-softmax, the others' a plain Dense (its "
                      "log-probabilities are not logits)"),
)
