"""timm (PyTorch): its record. The runner (runner.py) builds models with timm.create_model and reads weights with
timm's own loader; timm's pretrained config states each tag's preprocessing and class names."""
from porting.sources.registry import SourceLibrary, register_source
from porting.weight_maps import Convention

# PyTorch: OIHW kernels and [out, in] dense weights as MindSpore; BatchNorm's step counter is not a weight.
CONVENTION = Convention("timm", {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean",
                                 "running_var": "moving_variance"}, ignore=("*.num_batches_tracked",))

TIMM = register_source(SourceLibrary(
    "timm", "timm", "porting.sources.timm.runner:TimmRunner", CONVENTION,
    resize_backend="pil",  # torchvision's transforms on PIL images
    weight_suffixes=(".pth", ".pt", ".bin", ".safetensors"),  # and a folder timm's local-dir: loads
    export_suffixes=("", ".safetensors", ".pth"),
    train_step=True, states_preprocessing=True, pretrained_tags=True, hub="timm", export_has_class_names=True,
    head_source="flag",  # --head: the nn.Sequential a user put at the classifier (model.fc = ...)
    # timm 1.0.31's (timm.list_pretrained('MODEL.*')); parity_tests/test_registry.py keeps them equal to timm's own
    tags={"inception_v4": ("tf_in1k",), "seresnext50_32x4d": ("gluon_in1k", "racm_in1k"),
          "seresnext101_32x4d": ("gluon_in1k",), "legacy_seresnext50_32x4d": ("in1k",),
          "legacy_xception": ("tf_in1k",), "xception41": ("tf_in1k",), "xception65": ("ra3_in1k", "tf_in1k"),
          "xception71": ("tf_in1k",), "xception41p": ("ra3_in1k",), "xception65p": ("ra3_in1k",)}))
