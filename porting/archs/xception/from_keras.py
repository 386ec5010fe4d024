"""keras.applications.Xception (keras/src/applications/xception.py) -> the Xception model.

Keras numbers its blocks from 1: block1 is the stem (conv1/conv2 here), Keras blocks 2..13 are our
block1..block12, block14's two separable convs are our conv3/conv4, `predictions` is fc. Inside a block,
Keras's `block{n}_sepconv{k}` / `block{n}_sepconv{k}_bn` are our `rep.sep{k}` / `rep.bn{k}`. The residual
1x1 Conv2D/BN and the Add of each block have automatic Keras names; XceptionModel below names them
by structure `block{n}_residual`, `block{n}_residual_bn`, `block{n}_add`.

Layouts (PORTING_NOTES section 4, row 3) are the KERAS convention's: Conv2D kernel [kh, kw, in, out] -> OIHW;
SeparableConv2D depthwise_kernel [kh, kw, C, 1] -> [C, 1, kh, kw] and pointwise_kernel [1, 1, in, out] -> OIHW;
Dense kernel [in, out] -> [out, in].
"""
from porting.archs.xception import ENTRY_MIDDLE_EXIT
from porting.weight_maps import WeightMap
from porting.errors import PortingError
from porting.weight_maps.conventions import KERAS, KerasModel


def separable(wm: WeightMap, src: str, dst: str) -> None:
    """One Keras SeparableConv2D layer -> our SeparableConv2d cell (depthwise + pointwise)."""
    wm.conv(src, f"{dst}.depthwise", depthwise=True, tap=False)
    wm.add(f"{src}/pointwise_kernel", f"{dst}.pointwise.weight", KERAS.conv_layout)
    wm.layer(src, dst, "separable")


def build(spec=None) -> WeightMap:
    wm = KERAS.map("keras:xception")
    wm.conv("block1_conv1", "features.conv1")
    wm.bn("block1_conv1_bn", "features.bn1")
    wm.conv("block1_conv2", "features.conv2")
    wm.bn("block1_conv2_bn", "features.bn2")
    for b, (cin, cout, reps, stride, _, _) in enumerate(ENTRY_MIDDLE_EXIT, 1):
        n = b + 1  # Keras block number
        if cin != cout or stride != 1:  # Keras computes the residual branch first
            wm.conv(f"block{n}_residual", f"features.block{b}.skip")
            wm.bn(f"block{n}_residual_bn", f"features.block{b}.skip_bn")
        for k in range(1, reps + 1):
            separable(wm, f"block{n}_sepconv{k}", f"features.block{b}.rep.sep{k}")
            wm.bn(f"block{n}_sepconv{k}_bn", f"features.block{b}.rep.bn{k}")
        if stride != 1:
            wm.layer(f"block{n}_pool", f"features.block{b}.rep.pool", "pool")
        wm.layer(f"block{n}_add", f"features.block{b}", "block")
    separable(wm, "block14_sepconv1", "features.conv3")
    wm.bn("block14_sepconv1_bn", "features.bn3")
    separable(wm, "block14_sepconv2", "features.conv4")
    wm.bn("block14_sepconv2_bn", "features.bn4")
    wm.dense("predictions", "fc")
    return wm


class XceptionModel(KerasModel):
    """keras.applications.Xception names most layers (`block1_conv1`, `block2_sepconv1_bn`, `predictions`), but
    its four residual Conv2D/BatchNormalization layers and twelve `add` layers get automatic names (`conv2d_3`,
    `add_7`) that depend on what else was built in the process. They are named by structure instead: the i-th
    Add in graph order closes Keras block i+2 and is `block{i+2}_add`; the 1x1 Conv2D feeding it through a
    BatchNormalization is `block{n}_residual` and that BN `block{n}_residual_bn`."""

    def layer_names(self, keras, model) -> dict[int, str]:
        names = {id(layer): layer.name for layer in model.layers}
        adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
        if len(adds) != 12:
            raise PortingError(f"keras model '{model.name}' has {len(adds)} Add layers; keras.applications.Xception "
                               f"has 12")
        for i, add in enumerate(adds):
            block = i + 2
            names[id(add)] = f"block{block}_add"
            for tensor in add.input:
                bn = tensor._keras_history.operation
                if not isinstance(bn, keras.layers.BatchNormalization):
                    continue
                conv = bn.input._keras_history.operation
                if type(conv) is keras.layers.Conv2D and tuple(conv.kernel_size) == (1, 1):
                    names[id(conv)] = f"block{block}_residual"
                    names[id(bn)] = f"block{block}_residual_bn"
        residuals = [n for n in names.values() if n.endswith("_residual")]
        if len(residuals) != 4:
            raise PortingError(f"keras model '{model.name}' has {len(residuals)} residual 1x1 convolutions; "
                               f"keras.applications.Xception has 4")
        seen: set[str] = set()
        for name in names.values():
            if name in seen:
                raise PortingError(f"keras model '{model.name}' has two layers named '{name}'")
            seen.add(name)
        return names


KERAS_MODEL = XceptionModel("xception", "Xception", 299, "predictions", "xception",
                            features_layer="block14_sepconv2_act", features=2048)
