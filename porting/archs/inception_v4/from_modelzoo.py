"""The model zoo's InceptionV4 (official/cv/Inception/inceptionv4/src/inceptionv4.py) -> the InceptionV4 model.

mindcv's inceptionv4.py is this network with its cells renamed, so the table is mindcv's with each conv unit
spelled as the model zoo spells it: its `Conv2d` wraps `nn.Conv2dBnAct` (`conv.conv`, `conv.batchnorm`,
`conv.activation`) where mindcv's BasicConv2d has `conv`, `bn`, `relu`. The head is the model zoo's own: `bn0`
(BatchNorm1d on the pooled features) and `softmax` (nn.DenseBnAct: `dense`, `batchnorm`, log-softmax).
"""
from porting.archs.inception_v4 import from_mindcv, from_timm
from porting.weight_maps import WeightMap, renamed_source

UNIT = {".conv": ".conv.conv", ".bn": ".conv.batchnorm", ".relu": ".conv.activation"}


def _unit(path: str | None) -> str | None:
    for mindcv_leaf, modelzoo_leaf in UNIT.items():
        if path and path.endswith(mindcv_leaf):
            return path[: -len(mindcv_leaf)] + modelzoo_leaf
    return path


def rename(path: str) -> str | None:
    return "softmax.dense" if path == "last_linear" else _unit(from_mindcv.rename(path))


def build(spec, convention) -> WeightMap:
    wm = renamed_source(from_timm.build(spec, convention), spec.id, rename,
                        lambda path: _unit(from_mindcv.rename_tap(path)))
    wm.bn("bn0", "bn0")
    wm.bn("softmax.batchnorm", "fc.bn", tap="fc.bn")
    return wm
