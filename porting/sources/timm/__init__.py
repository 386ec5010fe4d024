"""timm (PyTorch): its record. The runner (runner.py) builds models with timm.create_model and reads weights with
timm's own loader; timm's pretrained config states each tag's preprocessing and class names."""
from porting.sources.registry import SourceLibrary, register_source
from porting.weight_maps.conventions import TIMM as CONVENTION

TIMM = register_source(SourceLibrary(
    "timm", "timm", "porting.sources.timm.runner:TimmRunner", CONVENTION,
    resize_backend="pil",  # torchvision's transforms on PIL images
    weight_suffixes=(".pth", ".pt", ".bin", ".safetensors"),  # and a folder timm's local-dir: loads
    export_suffixes=("", ".safetensors", ".pth"),
    train_step=True, states_preprocessing=True, pretrained_tags=True, hub="timm", export_has_class_names=True))
