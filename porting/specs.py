"""The registry of supported SOURCE:MODEL pairs. Importing this module imports no framework.

A spec says which source library builds the model, which MindSpore architecture (and which variant of it)
reproduces it, where its weight map lives, and the preprocessing the source defines.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace

from porting.errors import PortingError


@dataclass(frozen=True)
class ModelSpec:
    source: str  # 'timm' | 'keras' | 'paddleclas' | 'mindcv'
    name: str  # the source library's own model name
    arch: str  # MindSpore architecture id in porting.models
    arch_config: dict = field(default_factory=dict)
    weight_map: str = ""  # module under porting.weight_maps with build(spec) -> WeightMap
    aliases: tuple[str, ...] = ()
    head: str = "fc"  # the MindSpore Dense cell that --num-classes re-initialises
    num_classes: int = 1000
    input_size: int = 299
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    # options for seeded synthetic source weights (the runners' randomize), e.g. {"bn_beta_mean": 1.0}
    random_init: dict = field(default_factory=dict)
    source_min_size: int = 0  # the source library's own smallest input, where it has one (Keras Xception: 71)
    # timm's pretrained tag ('tf_in1k' in timm:xception65.tf_in1k): picks the download and the preprocessing
    tag: str = ""
    hub: str = ""  # a Hugging Face Hub repo ('timm/xception41.tf_in1k') when named as hf-hub:REPO

    @property
    def id(self) -> str:
        return f"{self.source}:{self.source_name}"

    @property
    def source_name(self) -> str:
        """The name the source library is asked for: timm's 'model.tag' when a tag is named."""
        return f"{self.name}.{self.tag}" if self.tag else self.name

    def check_size(self, size: int, what: str = "--size") -> int:
        from porting.models import check_input_size

        return check_input_size(self.arch, size, self.source_min_size, what)

    def build_weight_map(self):
        return importlib.import_module(f"porting.weight_maps.{self.weight_map}").build(self)

    def preprocessing(self) -> dict:
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "crop_pct": self.crop_pct,
                "resize_backend": RESIZE_BACKEND[self.source]}


SPECS: list[ModelSpec] = [
    ModelSpec("timm", "legacy_xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": 1},
              weight_map="timm_xception", aliases=("xception",), crop_pct=0.8975),
    # keras.applications.Xception (keras/src/applications/xception.py): BatchNormalization eps 1e-3, TF 'same'
    # padding for the 3x3 separable convs and the stride-2 max pools (pads (0, 1) on even inputs).
    # preprocess_input mode 'tf' (x / 127.5 - 1) = mean = std 0.5; Keras resizes bilinearly by default
    # (keras.layers.Resizing, image_dataset_from_directory); crop 299/333 as measured for these weights by
    # Cadene/timm (legacy_xception.tf_in1k was ported from the Keras release).
    ModelSpec("keras", "xception", "xception", {"bn_eps": 1e-3, "conv_padding": "same", "pool_padding": "same"},
              weight_map="keras_xception", interpolation="bilinear", crop_pct=0.8975, source_min_size=71),
    # timm aligned Xception (timm/models/xception_aligned.py); eps read from each model function. Synthetic
    # weights shift BN betas by +1: at beta mean 0 these random nets amplify fp32 rounding with depth (the
    # pre-activation ones are chaotic: timm's own fp32 vs fp64 forward differ by 4e-3 relative at
    # xception65p's last block at 299, 2e-5 for xception71); at +1 by 2e-5 and 4e-6.
    ModelSpec("timm", "xception41", "xception_aligned", {"layout": "41", "preact": False, "bn_eps": 1e-3},
              weight_map="timm_xception_aligned", crop_pct=0.903, random_init={"bn_beta_mean": 1.0}),
    ModelSpec("timm", "xception65", "xception_aligned", {"layout": "65", "preact": False, "bn_eps": 1e-3},
              weight_map="timm_xception_aligned", crop_pct=0.94, random_init={"bn_beta_mean": 1.0}),
    ModelSpec("timm", "xception71", "xception_aligned", {"layout": "71", "preact": False, "bn_eps": 1e-3},
              weight_map="timm_xception_aligned", crop_pct=0.903, random_init={"bn_beta_mean": 1.0}),
    ModelSpec("timm", "xception41p", "xception_aligned", {"layout": "41", "preact": True, "bn_eps": 1e-5},
              weight_map="timm_xception_aligned", crop_pct=0.94, random_init={"bn_beta_mean": 1.0}),
    ModelSpec("timm", "xception65p", "xception_aligned", {"layout": "65", "preact": True, "bn_eps": 1e-3},
              weight_map="timm_xception_aligned", crop_pct=0.94, random_init={"bn_beta_mean": 1.0}),
    # PaddleClas Xception41/65_deeplab (ppcls/arch/backbone/model_zoo/xception_deeplab.py): the aligned
    # post-activation topology with BN eps 1e-3 and the last block dilated by 2; Dropout downscale_in_infer
    # x0.5 folded into the head. Eval preprocessing as PaddleClas's Xception configs: resize short side 320
    # -> centre crop 299, ImageNet mean/std. Synthetic BN betas shifted by +1 as for timm's aligned models.
    *[ModelSpec("paddleclas", f"Xception{depth}_deeplab", "xception_aligned",
                {"layout": str(depth), "preact": False, "bn_eps": 1e-3, "exit_dilation": 2},
                weight_map="paddle_xception_deeplab", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                interpolation="bilinear", crop_pct=299 / 320, random_init={"bn_beta_mean": 1.0})
      for depth in (41, 65)],
    # PaddleClas Xception41/65/71 (ppcls/arch/backbone/model_zoo/xception.py): Paddle BatchNorm eps 1e-5;
    # eval config: resize short side 320 (cv2 bilinear) -> centre crop 299, ImageNet mean/std
    *[ModelSpec("paddleclas", f"Xception{depth}", "xception_ppcls",
                {"entry_blocks": entry, "middle_blocks": middle, "bn_eps": 1e-5},
                weight_map="paddle_xception", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                interpolation="bilinear", crop_pct=299 / 320)
      for depth, entry, middle in ((41, 3, 8), (65, 3, 16), (71, 5, 16))],
    # SE-ResNeXt50 32x4d (porting/models/se_resnext.py). timm resnet.py: 7x7 stem, max pool 3/2 padded by 1,
    # SE as 1x1 convs after bn3, BN eps 1e-5; `gluon_seresnext50_32x4d` is timm's deprecated name for the
    # gluon_in1k weights of the same model (timm resnet.py register_model_deprecations), so it is a spec of
    # its own (its download and preprocessing differ) with that alias. timm senet.py (legacy): pool0 unpadded
    # with ceil_mode=True. Preprocessing from each timm pretrained cfg: 224, ImageNet mean/std, crop 0.875.
    *[ModelSpec("timm", name, "se_resnext",
                {"layers": [3, 4, 6, 3], "cardinality": 32, "base_width": 4, "bn_eps": 1e-5, "stem": [64],
                 "stem_pool_padding": pool_pad, "stem_pool_ceil": pool_ceil, "se_reduction": 16,
                 "se_dense": False, "avg_down": False},
                weight_map=wmap, aliases=aliases, input_size=224, mean=(0.485, 0.456, 0.406),
                std=(0.229, 0.224, 0.225), interpolation=interp, crop_pct=0.875)
      for name, aliases, wmap, pool_pad, pool_ceil, interp in (
          ("seresnext50_32x4d", (), "timm_seresnext", 1, False, "bicubic"),
          ("seresnext50_32x4d.gluon_in1k", ("gluon_seresnext50_32x4d",), "timm_seresnext", 1, False, "bicubic"),
          ("legacy_seresnext50_32x4d", (), "timm_legacy_seresnext", 0, True, "bilinear"))],
    # PaddleClas SE_ResNeXt50_32x4d (se_resnext.py): same graph as timm's with the SE in Linear layers.
    # SE_ResNeXt50_vd_32x4d (se_resnext_vd.py): deep stem 64-64-128 and AvgPool2D(2, 2, ceil_mode=True,
    # exclusive) shortcuts. Paddle BatchNorm eps 1e-5. Eval config (deploy/configs/inference_cls.yaml):
    # resize short side 256 (cv2 bilinear) -> centre crop 224, ImageNet mean/std.
    *[ModelSpec("paddleclas", name, "se_resnext",
                {"layers": [3, 4, 6, 3], "cardinality": 32, "base_width": 4, "bn_eps": 1e-5, "stem": stem,
                 "stem_pool_padding": 1, "stem_pool_ceil": False, "se_reduction": 16, "se_dense": True,
                 "avg_down": vd},
                weight_map="paddle_seresnext", head="fc", input_size=224, mean=(0.485, 0.456, 0.406),
                std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=224 / 256)
      for name, stem, vd in (("SE_ResNeXt50_32x4d", [64], False),
                             ("SE_ResNeXt50_vd_32x4d", [64, 64, 128], True))],
    # Inception-v4 (porting/models/inception_v4.py). timm inception_v4.py: BN eps 1e-3, avg pools exclude
    # padding, max pools unpadded; pretrained cfg 299, mean = std 0.5, bicubic, crop 0.875. Synthetic weights
    # shift BN betas by +1: with 100+ conv-BN-ReLU layers and no residuals, beta mean 0 makes the net amplify
    # fp32 rounding ~1.5x per block (timm fp32 vs fp64 8e-5 relative at the last block; +1: 6e-6).
    ModelSpec("timm", "inception_v4", "inception_v4",
              {"bn_eps": 1e-3, "pool_branch_first": False, "swap_factorized": False},
              weight_map="timm_inception_v4", head="fc", crop_pct=0.875, random_init={"bn_beta_mean": 1.0}),
    # PaddleClas InceptionV4 (ppcls/arch/backbone/model_zoo/inception_v4.py): Paddle BatchNorm eps 1e-5, pool
    # branch first in every concat, stem / B / C factorized stacks in the other order, Dropout
    # downscale_in_infer x0.8 folded into the head; eval config: resize short side 320 -> crop 299, ImageNet
    # mean/std.
    ModelSpec("paddleclas", "InceptionV4", "inception_v4",
              {"bn_eps": 1e-5, "pool_branch_first": True, "swap_factorized": True},
              weight_map="paddle_inception_v4", head="fc", mean=(0.485, 0.456, 0.406),
              std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=299 / 320,
              random_init={"bn_beta_mean": 1.0}),
    # mindcv (MindSpore's model zoo, mindcv/models/), for checkpoints users already have in MindSpore: the
    # Cadene/timm models, with mindcv's own graph choices followed by the arch config: Xception's max pools
    # pad 'same' (timm: 1) and its BNs keep MindSpore's eps 1e-5; SE-ResNeXt's stem pool pads 'same' (timm
    # legacy: unpadded ceil_mode) and its SE uses Dense layers; Inception-v4 is timm's graph (BN eps 1e-3,
    # 'same' avg pools that exclude the padding). Eval preprocessing as mindcv's create_transforms: resize the
    # short side to size / 0.875 (bilinear, in mindspore.dataset: OpenCV) -> centre crop, ImageNet mean/std.
    *[ModelSpec("mindcv", name, arch, config, weight_map="mindcv_models", input_size=size,
                mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=0.875,
                random_init=init)
      for name, arch, config, size, init in (
          ("xception", "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": "same"}, 299, {}),
          ("inception_v4", "inception_v4", {"bn_eps": 1e-3, "pool_branch_first": False, "swap_factorized": False},
           299, {"bn_beta_mean": 1.0}),
          ("seresnext50_32x4d", "se_resnext",
           {"layers": [3, 4, 6, 3], "cardinality": 32, "base_width": 4, "bn_eps": 1e-5, "stem": [64],
            "stem_pool_padding": "same", "stem_pool_ceil": False, "se_reduction": 16, "se_dense": True,
            "avg_down": False}, 224, {}))],
]


def all_specs() -> list[ModelSpec]:
    return list(SPECS)


def resolve(text: str) -> ModelSpec:
    """'timm:xception' -> the legacy_xception spec. Case-insensitive; unknown names list the supported ones.

    timm names may carry timm's pretrained tag (`timm:xception65.tf_in1k`), and `hf-hub:timm/MODEL.TAG` names
    the same model on the Hugging Face Hub; timm checks the tag when the worker builds the model.
    """
    if text.strip().lower().startswith("hf-hub:"):
        repo = text.strip()[len("hf-hub:"):]
        org, _, model = repo.partition("/")
        if org != "timm" or not model:
            raise PortingError(f"'{text}': porting knows timm's own Hub repos (hf-hub:timm/MODEL.TAG); for another "
                               f"repo, download its weights and pass them with --weights to the matching spec")
        return replace(resolve(f"timm:{model}"), hub=repo)
    source, sep, name = text.partition(":")
    if not sep or not source or not name:
        raise PortingError(f"model spec '{text}' must look like SOURCE:MODEL, e.g. timm:xception")
    key_source, key_name = source.strip().lower(), name.strip().lower()
    sources = sorted({s.source for s in SPECS})
    matches = [s for s in SPECS if s.source == key_source]
    if not matches:
        raise PortingError(f"unknown source '{source}' in '{text}'; supported sources: {', '.join(sources)}")
    for spec in matches:
        if key_name == spec.name.lower() or key_name in (a.lower() for a in spec.aliases):
            return spec
    base, dot, tag = key_name.partition(".")
    if dot and key_source == "timm" and tag:
        for spec in matches:
            if base == spec.name.lower() or base in (a.lower() for a in spec.aliases):
                return replace(spec, tag=tag)
    names = ", ".join(s.id + (f" (alias {', '.join(s.aliases)})" if s.aliases else "") for s in matches)
    # a model that other sources have but this library does not ship (keras:inception_v4, keras:seresnext50_32x4d)
    elsewhere = [s.id for s in SPECS if s.source != key_source
                 and _bare(key_name) in {_bare(s.name), *map(_bare, s.aliases)}]
    if elsewhere:
        raise PortingError(f"{LIBRARIES.get(key_source, key_source)} ships no {name.strip()} model; "
                           f"{key_source} offers: {names}; {name.strip()} is available as {', '.join(elsewhere)}")
    raise PortingError(f"unknown model '{name}' for source {key_source}; supported: {names}")


LIBRARIES = {"timm": "timm", "keras": "Keras (keras.applications)", "paddleclas": "PaddleClas", "mindcv": "mindcv"}
# how each library resizes images: timm (torchvision) and Keras on PIL images, PaddleClas with cv2.resize,
# mindcv with mindspore.dataset's (OpenCV) Resize
RESIZE_BACKEND = {"timm": "pil", "keras": "pil", "paddleclas": "opencv", "mindcv": "opencv"}


def _bare(name: str) -> str:
    """'InceptionV4', 'inception_v4' and 'inception-v4' are the same model name."""
    return "".join(ch for ch in name.lower() if ch.isalnum())
