"""mindcv (MindSpore): its record. The runner (runner.py) builds mindcv's models and reads MindSpore .ckpt files,
in a worker as every source, so mindcv's cells and context never mix with the port's."""
from porting.sources.registry import SourceLibrary, register_source
from porting.weight_maps import Convention

CONVENTION = Convention.mindspore("mindcv")  # MindSpore itself, so MindSpore's names and layouts

MINDCV = register_source(SourceLibrary(
    "mindcv", "mindcv", "porting.sources.mindcv.runner:MindcvRunner", CONVENTION,
    resize_backend="opencv",  # mindspore.dataset's (OpenCV) Resize
    weight_suffixes=(".ckpt",), export_suffixes=(".ckpt",)))
