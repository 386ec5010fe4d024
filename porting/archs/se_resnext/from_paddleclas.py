"""PaddleClas SE_ResNeXt50_32x4d (ppcls/.../model_zoo/se_resnext.py) and SE_ResNeXt50_vd_32x4d
(se_resnext_vd.py) -> the SEResNeXt model.

Source keys are Paddle's structured names (ParamAttr-named files, `conv2_1_x1_weights`..., are translated by
the worker). Each Paddle `ConvBNLayer` is `_conv` + `_batch_norm` with the ReLU fused into the BN layer, so a
BN with act='relu' is compared with our ReLU cell. Bottleneck `bb_{stage}_{i}`: conv0 (1x1), conv1 (grouped 3x3
with the stride), conv2 (1x1, no act), SE `scale` with Linear `squeeze`/`excitation`, shortcut `short`.
The vd variant has the stem `conv1_1..conv1_3` (3x3 convs) and its strided shortcuts run `_pool2d_avg`
(AvgPool2D(2, 2, ceil_mode=True), exclusive) before a stride-1 1x1 conv; head `out`.
"""
from porting.archs.registry import ModelSpec, register_specs
from porting.archs.se_resnext import IMAGENET_224, blocks, timm_graph
from porting.weight_maps import WeightMap


def conv_bn(wm: WeightMap, src: str, conv_dst: str, bn_dst: str, act_dst: str | None) -> None:
    """Paddle ConvBNLayer onto our cells of a Bottleneck (separate conv / bn / act cells, not a ConvBnAct)."""
    wm.conv(f"{src}._conv", conv_dst)
    wm.bn(f"{src}._batch_norm", bn_dst, tap=act_dst)


def build(spec, convention) -> WeightMap:
    cfg = spec.config
    wm = convention.map(spec.id)
    stem = cfg.stem
    names = ["conv"] if len(stem) == 1 else [f"conv1_{k}" for k in range(1, len(stem) + 1)]
    for k, name in enumerate(names, 1):
        conv_bn(wm, name, f"stem.conv{k}", f"stem.bn{k}", f"stem.act{k}")
    wm.layer("pool2d_max", "pool", "pool")
    for s, i, down in blocks(cfg):
        src, dst = f"bb_{s - 1}_{i}", f"layer{s}.{i}"
        conv_bn(wm, f"{src}.conv0", f"{dst}.conv1", f"{dst}.bn1", f"{dst}.act1")
        conv_bn(wm, f"{src}.conv1", f"{dst}.conv2", f"{dst}.bn2", f"{dst}.act2")
        conv_bn(wm, f"{src}.conv2", f"{dst}.conv3", f"{dst}.bn3", None)
        wm.dense(f"{src}.scale.squeeze", f"{dst}.se.fc1")
        wm.dense(f"{src}.scale.excitation", f"{dst}.se.fc2")
        wm.layer(f"{src}.scale", f"{dst}.se", "se")
        if down:
            if cfg.avg_down and s > 1:  # vd: AvgPool2D(2, 2, ceil_mode=True) before the 1x1 conv
                wm.layer(f"{src}.short._pool2d_avg", f"{dst}.downsample.pool", "pool")
            conv_bn(wm, f"{src}.short", f"{dst}.downsample.conv", f"{dst}.downsample.bn", None)
        wm.layer(src, dst, "block")
    wm.dense("out", "fc")
    return wm


register_specs(
    # PaddleClas SE_ResNeXt50_32x4d (se_resnext.py): same graph as timm's with the SE in Linear layers.
    # SE_ResNeXt50_vd_32x4d (se_resnext_vd.py): deep stem 64-64-128 and AvgPool2D(2, 2, ceil_mode=True,
    # exclusive) shortcuts. Eval config (deploy/configs/inference_cls.yaml): resize short side 256 (cv2
    # bilinear) -> centre crop 224, ImageNet mean/std.
    ModelSpec("paddleclas", "SE_ResNeXt50_32x4d", "se_resnext", timm_graph(se_dense=True),
              weight_map="from_paddleclas", **IMAGENET_224, interpolation="bilinear", crop_pct=224 / 256,
              variant="SE with Dense layers, BN eps 1e-5",
              notes="ppcls se_resnext.py; SE `squeeze`/`excitation` and head Linear [in,out] transposed; BN+ReLU "
                    "fused in Paddle"),
    ModelSpec("paddleclas", "SE_ResNeXt50_vd_32x4d", "se_resnext",
              timm_graph(stem=[64, 64, 128], se_dense=True, avg_down=True), weight_map="from_paddleclas",
              **IMAGENET_224, interpolation="bilinear", crop_pct=224 / 256,
              variant="deep stem 3x3 convs 64-64-128, shortcut AvgPool2d(2, 2, ceil_mode, exclusive) + 1x1 conv",
              notes="ppcls se_resnext_vd.py"),
)
