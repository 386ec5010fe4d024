"""PaddleClas Xception41/65/71 (ppcls xception.py) from real .pdparams files written by paddle.save.

This process never imports paddle: the .pdparams files are written and read by the Paddle worker; here they
are only opened with pickle + NumPy to check how they are keyed.
"""
import pickle

import numpy as np
import pytest
from conftest import assert_agrees_before, assert_parity, error_line, porting, swap_targets

from porting import api, checkpoint
from porting.proof import parity
from porting.specs import build_weight_map, resolve

SPECS = ["paddleclas:Xception41", "paddleclas:Xception65", "paddleclas:Xception71"]


def _pdparams_keys(path) -> list[str]:
    with open(path, "rb") as f:
        # paddle.save adds its own structured-key -> parameter-name table to state dicts of tensors
        return [k for k in pickle.load(f, encoding="latin1") if k != "StructuredToParameterName@@"]


@pytest.mark.slow
@pytest.mark.parametrize("spec,size,batch,mindir", [
    ("paddleclas:Xception41", 299, 2, True),
    ("paddleclas:Xception41", 160, 1, False),  # even: exposes padding differences in the stride-2 convs/pools
    # the deeper layouts reuse Xception41's blocks and padding: proven at the even size, where they differ
    ("paddleclas:Xception65", 160, 1, False),
    ("paddleclas:Xception71", 160, 1, False),  # Xception71 has stride-1 3x3 max pools in its entry flow
])
def test_ckpt_onnx_parity_from_pdparams(source_weights, spec, size, batch, mindir):
    weights = source_weights(spec, ".pdparams")
    report = parity(resolve(spec), weights=str(weights), size=size, batch=batch, onnx=True, mindir=mindir)
    assert_parity(report, ("mindspore", "onnx", "mindir") if mindir else ("mindspore", "onnx"))
    assert report.info.size == size


def test_paramattr_named_pdparams_ports_to_the_same_checkpoint(source_weights, tmp_path):
    """Old PaddleClas releases key .pdparams by ParamAttr name (conv1_weights, bn_..._scale, fc_weights)."""
    spec = "paddleclas:Xception41"
    structured, named = source_weights(spec, ".pdparams"), source_weights(spec, ".paramattr.pdparams")
    keys_s, keys_n = _pdparams_keys(structured), _pdparams_keys(named)
    assert "_exit_flow._out.weight" in keys_s and "_entry_flow._conv1._batch_norm._mean" in keys_s
    assert {"fc_weights", "fc_offset", "entry_flow_conv1_weights", "bn_entry_flow_conv1_scale",
            "bn_entry_flow_conv1_variance", "entry_flow_0_branch1_weights"} <= set(keys_n)
    assert not set(keys_s) & set(keys_n) and len(keys_s) == len(keys_n) == 356
    for src, out in ((structured, "a.ckpt"), (named, "b.ckpt")):
        api.port(spec, src, output=tmp_path / out)
    pa, ma = checkpoint.load(tmp_path / "a.ckpt")
    pb, mb = checkpoint.load(tmp_path / "b.ckpt")
    assert pa.keys() == pb.keys() and len(pa) == 356
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    assert ma.arch == "xception_ppcls" and ma.arch_config == {"entry_blocks": 3, "middle_blocks": 8,
                                                                     "bn_eps": 1e-5}
    assert ma.mean == [0.485, 0.456, 0.406] and ma.std == [0.229, 0.224, 0.225]
    assert ma.input_size == 299 and ma.interpolation == "bilinear" and ma.crop_pct == 299 / 320
    assert ma.source_sha256 != mb.source_sha256


def test_a_swapped_tensor_pair_is_caught_and_named(source_weights):
    """Two same-shaped pointwise kernels swapped inside middle block 3: parity must fail exactly there."""
    spec = resolve("paddleclas:Xception41")
    wm = build_weight_map(spec)
    a = "_middle_flow._conv_3._conv_1._pointwise_conv._conv.weight"
    b = "_middle_flow._conv_3._conv_2._pointwise_conv._conv.weight"
    swap_targets(wm, a, b)
    report = parity(spec, weights=str(source_weights(spec.id, ".pdparams")), size=96, batch=1, weight_map=wm)
    assert not report.ok
    failure = report.first_failure()
    assert failure.layer == "_middle_flow._conv_3._conv_1._pointwise_conv._conv", failure
    assert failure.target == "middle.block3.sep2.pointwise.conv"
    assert_agrees_before(report, failure)


def test_bad_pdparams_fail_in_one_line_and_write_nothing(tmp_path):
    import os

    partial = tmp_path / "partial.pdparams"
    with open(partial, "wb") as f:
        pickle.dump({"fc_weights": np.zeros((2048, 1000), np.float32)}, f)
    run = porting("port-weights", "paddleclas:Xception41", "--weights", partial, "-o", tmp_path / "o.ckpt")
    line = error_line(run)
    assert "partial.pdparams" in line and "missing" in line

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pdparams"
    with open(evil, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    run = porting("port-weights", "paddleclas:Xception41", "--weights", evil, "-o", tmp_path / "o.ckpt")
    assert "evil.pdparams" in error_line(run) and not (tmp_path / "pwned").exists()

    (tmp_path / "w.pth").write_bytes(b"torch file")
    run = porting("port-weights", "paddleclas:xception41", "--weights", tmp_path / "w.pth", "-o", tmp_path / "o.ckpt")
    assert ".pdparams" in error_line(run)
    assert sorted(os.listdir(tmp_path)) == ["evil.pdparams", "partial.pdparams", "w.pth"]


def test_class_count_comes_from_the_file(tmp_path):
    w = tmp_path / "x10.pdparams"
    assert porting("random-weights", "paddleclas:Xception41", "--num-classes", "10", "-o", w).code == 0
    run = porting("port-weights", "paddleclas:Xception41", "--weights", w, "-o", tmp_path / "x10.ckpt")
    assert run.code == 0, run.stderr
    params, meta = checkpoint.load(tmp_path / "x10.ckpt")
    assert params["fc.weight"].shape == (10, 2048) and meta.num_classes == 10
