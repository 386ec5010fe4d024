"""Architectures, one package per family (as timm's one file per family), each holding

    __init__.py        the variant config, the layout tables, the model-zoo recipe it trains with (if it is the
                       family's own), the registration of the architecture and how its configs relate for
                       `export --to` (no framework imported)
    model.py           the MindSpore model, built from porting.archs.layers (a layer of its own carries its
                       ONNX lowering as an `onnx` method)
    from_<source>.py   the weight map of each source library (timm, keras, paddleclas, mindcv, modelzoo), and the
                       registration of that library's SOURCE:MODEL specs of the family (as a timm model registers
                       itself where it is defined); Keras's also says how keras.applications builds and names the
                       model (KERAS_MODEL)

Importing porting.archs imports every family package found here, in name order, then each family's weight maps
(from_*.py, in name order: a new source library's joins by being there), which registers them all
(porting.archs.registry, porting.archs.recipe); no framework is imported. The weight maps are imported from here,
not by their family package, because they import it (its config and layout tables).
"""
import importlib
import pkgutil

from porting.archs.recipe import DEVICE_CHANGES, RECIPES, Recipe, register_recipe  # noqa: F401
from porting.archs.registry import (ARCHS, MAX_INPUT_SIZE, MIN_SIZE_FLOOR, SPECS, Arch, build,  # noqa: F401
                                    check_input_size, config_for, get_arch, register_arch, register_specs)

FAMILIES = [info.name for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name) if info.ispkg]
for _family in FAMILIES:
    _package = importlib.import_module(f"{__name__}.{_family}")
    for _map in sorted(info.name for info in pkgutil.iter_modules(_package.__path__) if info.name.startswith("from_")):
        importlib.import_module(f"{_package.__name__}.{_map}")
