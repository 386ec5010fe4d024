"""Architectures, one package per family (as timm's one file per family), each holding

    __init__.py        the variant config, the layout tables, and the registration of the architecture and of
                       every SOURCE:MODEL spec that maps onto it (no framework imported)
    model.py           the MindSpore model, built from porting.archs.layers
    from_<source>.py   the weight map of each source library (timm, keras, paddleclas, mindcv)

Importing porting.archs registers them all (porting.archs.registry) and imports no framework.
"""
from porting.archs.registry import (ARCHS, MAX_INPUT_SIZE, MIN_SIZE_FLOOR, SPECS, Arch, build,  # noqa: F401
                                    check_input_size, config_for, get_arch, register_arch, register_specs)
from porting.archs import xception, xception_ppcls, xception_aligned, inception_v4, se_resnext  # noqa: E402,F401,I001
