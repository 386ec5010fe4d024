"""PaddleClas (PaddlePaddle): its record. The runner (runner.py) builds PaddleClas's backbones and reads .pdparams
with paddle.load."""
from porting.sources.registry import SourceLibrary, register_source
from porting.weight_maps.conventions import PADDLECLAS as CONVENTION

PADDLECLAS = register_source(SourceLibrary(
    "paddleclas", "PaddleClas", "porting.sources.paddleclas.runner:PaddleRunner", CONVENTION,
    resize_backend="opencv",  # cv2.resize
    weight_suffixes=(".pdparams",), export_suffixes=(".pdparams",), train_step=True,
    head_source="flag",  # --head: the paddle Sequential a user put at the classifier (model.out = ...)
    biased_bn_variance="Paddle's batch_norm kernel divides the batch variance by N x H x W (the biased one) before "
                       "its running update"))
