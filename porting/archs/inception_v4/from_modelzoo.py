"""The model zoo's InceptionV4 (official/cv/Inception/inceptionv4/src/inceptionv4.py) -> the InceptionV4 model.

mindcv's inceptionv4.py is this network with its cells renamed, so the table is mindcv's with each conv unit
spelled as the model zoo spells it: its `Conv2d` wraps `nn.Conv2dBnAct` (`conv.conv`, `conv.batchnorm`,
`conv.activation`) where mindcv's BasicConv2d has `conv`, `bn`, `relu`. The head is the model zoo's own: `bn0`
(BatchNorm1d on the pooled features) and `softmax` (nn.DenseBnAct: `dense`, `batchnorm`, log-softmax).
"""
from porting.archs.inception_v4 import CONDITIONED, TIMM_GRAPH, from_mindcv, from_timm
from porting.archs.registry import ModelSpec, register_specs
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


register_specs(
    # the model zoo's src/inceptionv4.py (seed 001): mindcv's graph at MindSpore's BN eps 1e-5 (its convs are
    # nn.Conv2dBnAct), with its own head: bn0 (BatchNorm1d, eps 1e-3) on the pooled features, then nn.DenseBnAct
    # (the classifier, a BatchNorm1d over the classes, log-softmax). Eval as its src/dataset.py: Resize(299) (short
    # side, bilinear) -> CenterCrop(299), ImageNet mean/std.
    ModelSpec("modelzoo", "inceptionv4", "inception_v4", {**TIMM_GRAPH, "bn_eps": 1e-5, "head_bn": True},
              weight_map="from_modelzoo", aliases=("inception_v4",), mean=(0.485, 0.456, 0.406),
              std=(0.229, 0.224, 0.225), interpolation="bilinear", crop_pct=1.0, random_init=CONDITIONED,
              variant="a configuration (BN eps 1e-5) plus one addition for it, `head_bn`: bn0 -> Dense -> BN -> log-softmax",
              notes="the model zoo's official/cv/Inception/inceptionv4 (seed 001), run from your checkout "
                    "(--modelzoo); its stem is one cell, compared through its convs and pools"),
)
