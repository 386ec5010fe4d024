"""PaddleClas Xception41_deeplab / Xception65_deeplab: ckpt + ONNX parity from real .pdparams files, layer by
layer, at 299 and at an even size; MINDIR for one; the dilated exit block and the folded dropout checked."""
import numpy as np
import pytest
from conftest import assert_agrees_before, assert_parity, swap_targets

from porting import api, checkpoint
from porting.proof import parity
from porting.specs import build_weight_map, resolve
from porting.weight_maps import IN_OUT_TO_OUT_IN, Row

SPECS = ["paddleclas:Xception41_deeplab", "paddleclas:Xception65_deeplab"]


@pytest.mark.slow
# each variant at one of the two sizes (299: odd from stride 2 on; 160: even at every stride-2 layer), the
# blocks and their padding being the same in both layouts
@pytest.mark.parametrize("spec,size", [(SPECS[0], 299), (SPECS[1], 160)])
def test_ckpt_onnx_parity_from_pdparams(source_weights, spec, size):
    weights = source_weights(spec, ".pdparams")
    mindir = spec.endswith("41_deeplab")
    report = parity(resolve(spec), weights=str(weights), size=size, batch=1, onnx=True, mindir=mindir)
    assert_parity(report, ("mindspore", "onnx", "mindir") if mindir else ("mindspore", "onnx"))
    assert len(report.layers()) == len(build_weight_map(resolve(spec)).layers)


@pytest.mark.parametrize("bug", ["exit_dilation_1", "head_without_dropout_scale", "swapped_pointwise"])
def test_variant_and_mapping_bugs_are_named(source_weights, bug):
    spec = resolve(SPECS[0])
    wm = None
    if bug == "exit_dilation_1":  # timm's aligned xception41 has no dilation: Paddle's exit block 2 does
        spec = type(spec)(**{**spec.__dict__, "arch_config": {**spec.arch_config, "exit_dilation": 1}})
        expected = "_exit_flow_2._conv1._conv1"
    elif bug == "head_without_dropout_scale":  # Dropout(downscale_in_infer) scales by 0.5 at inference
        wm = build_weight_map(spec)
        i = next(i for i, r in enumerate(wm.rows) if r.source == "_fc.weight")
        wm.rows[i] = Row("_fc.weight", "fc.weight", IN_OUT_TO_OUT_IN)
        expected = "logits"
    else:
        wm = build_weight_map(spec)
        a = "xception_41/middle_flow/block3._conv2._conv2.weight"
        b = "xception_41/middle_flow/block3._conv3._conv2.weight"
        swap_targets(wm, a, b)
        expected = "xception_41/middle_flow/block3._conv2._conv2"
    report = parity(spec, weights=str(source_weights(SPECS[0], ".pdparams")), size=96, batch=1, weight_map=wm)
    failure = report.first_failure()
    assert failure is not None and failure.layer == expected, failure
    assert_agrees_before(report, failure)


def test_structured_and_paramattr_pdparams_port_alike(source_weights, tmp_path):
    """paddle.save(state_dict()) keys and the ParamAttr names of PaddleClas's released files give one ckpt."""
    spec = SPECS[0]
    out = {}
    for suffix in (".pdparams", ".paramattr.pdparams"):
        api.port(spec, source_weights(spec, suffix), output=tmp_path / f"{suffix}.ckpt")
        out[suffix] = checkpoint.load(tmp_path / f"{suffix}.ckpt")
    (pa, meta), (pb, _) = out[".pdparams"], out[".paramattr.pdparams"]
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    assert meta.arch == "xception_aligned"
    assert meta.arch_config == {"layout": "41", "preact": False, "bn_eps": 1e-3, "exit_dilation": 2}
    assert meta.mean == [0.485, 0.456, 0.406] and meta.input_size == 299
