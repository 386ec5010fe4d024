"""PaddleClas (PaddlePaddle): its record. The runner (runner.py) builds PaddleClas's backbones and reads .pdparams
with paddle.load."""
from porting.sources.registry import SourceLibrary, register_source
from porting.weight_maps import IN_OUT_TO_OUT_IN, Convention

# Paddle: BatchNorm / BatchNorm2D tensors weight/bias/_mean/_variance, Linear stored [in, out], ConvBNLayer
# children `_conv` / `_batch_norm`.
CONVENTION = Convention("paddleclas", {"weight": "gamma", "bias": "beta", "_mean": "moving_mean",
                                       "_variance": "moving_variance"},
                        dense_layout=IN_OUT_TO_OUT_IN, unit=("_conv", "_batch_norm"))

PADDLECLAS = register_source(SourceLibrary(
    "paddleclas", "PaddleClas", "porting.sources.paddleclas.runner:PaddleRunner", CONVENTION,
    resize_backend="opencv",  # cv2.resize
    weight_suffixes=(".pdparams",), export_suffixes=(".pdparams",), train_step=True,
    head_source="flag",  # --head: the paddle Sequential a user put at the classifier (model.out = ...)
    biased_bn_variance="Paddle's batch_norm kernel divides the batch variance by N x H x W (the biased one) before "
                       "its running update"))
