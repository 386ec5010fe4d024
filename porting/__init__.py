"""porting: move pretrained image classifiers from timm / Keras / PaddleClas to MindSpore, with proof.

The Python API (porting.api) is reachable from here: porting.port, load, export, parity, evaluate, predict,
quantize, benchmark, check_preprocessing, resolve, models, weight_map, random_weights, finetune, finetune_recipe,
reusing_workers, train_step_parity (and check_parity, parity's name in 0.2.0). Importing porting itself loads no framework; each
function loads what it needs.
"""

import os

from porting.version import __version__  # noqa: F401 - porting.__version__

# onnxruntime's telemetry (its 1DS client) writes $TMPDIR/.ses and ~/.cache/Microsoft/DeveloperTools/.onnxruntime/
# when it is imported, and the API runs without the CLI's private TMPDIR: nothing of porting's runs may leave files
# behind, so it is off unless the variable says otherwise (read when onnxruntime loads, after `import porting`)
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
__all__ = ["port", "load", "export", "export_to", "targets", "parity", "check_parity", "check_preprocessing", "evaluate", "predict", "quantize",
           "benchmark", "resolve", "models", "weight_map", "random_weights", "finetune", "finetune_recipe",
           "reusing_workers", "train_step_parity"]


def __getattr__(name: str):
    if name in __all__:
        from porting import api

        return getattr(api, name)
    raise AttributeError(f"module 'porting' has no attribute '{name}'")
