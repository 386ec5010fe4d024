"""timm aligned Xception (xception41/65/71, xception41p/65p): ckpt + ONNX parity from real .pth / .safetensors
files, layer by layer, at 299 and at an even size; MINDIR for one variant; mapping and variant bugs named."""
import numpy as np
import pytest
from conftest import assert_agrees_before, assert_parity, porting, swap_targets

from porting import checkpoint
from porting.proof import parity
from porting.specs import build_weight_map, resolve

# variant -> the file format its seeded weights are saved in (both of timm's formats are exercised)
VARIANTS = {"xception41": ".pth", "xception65": ".safetensors", "xception71": ".pth",
            "xception41p": ".safetensors", "xception65p": ".pth"}


# Every variant, and both kinds of size: 299 (odd from stride 2 on) and 160, even at every stride-2 layer, which
# exposes padding differences. The padding is the blocks' own, the same in every layout, so the plain and the
# pre-activation layouts are each proven at 299 and the deeper layouts at 160 (xception41 at both).
@pytest.mark.slow
@pytest.mark.parametrize("name,size", [("xception41", 299), ("xception41", 160), ("xception41p", 299),
                                       ("xception65", 160), ("xception65p", 160), ("xception71", 160)])
def test_ckpt_onnx_parity_from_file(source_weights, name, size):
    spec = f"timm:{name}"
    weights = source_weights(spec, VARIANTS[name])
    mindir = name == "xception41" and size == 160
    report = parity(resolve(spec), weights=str(weights), size=size, batch=1, onnx=True, mindir=mindir)
    assert_parity(report, ("mindspore", "onnx", "mindir") if mindir else ("mindspore", "onnx"))
    kinds = {r.kind for r in report.layers().values()}
    assert {"conv", "bn", "separable", "block"} <= kinds
    # every mapped layer was compared, not only the logits
    assert len(report.layers()) == len(build_weight_map(resolve(spec)).layers)


def test_a_swapped_tensor_pair_is_caught_and_named(source_weights):
    """Two same-shaped pointwise kernels swapped inside middle block 5: parity must fail exactly there."""
    spec = resolve("timm:xception41")
    wm = build_weight_map(spec)
    a, b = "blocks.5.stack.conv1.conv_pw.weight", "blocks.5.stack.conv2.conv_pw.weight"
    swap_targets(wm, a, b)
    report = parity(spec, weights=str(source_weights("timm:xception41", ".pth")), size=96, batch=1,
                    weight_map=wm)
    failure = report.first_failure()
    assert failure is not None and failure.layer == "blocks.5.stack.conv1.conv_pw", failure
    assert failure.target == "blocks.5.stack.conv1.conv_pw"
    assert_agrees_before(report, failure)


def test_xception41p_bn_eps_is_1e5_not_1e3(source_weights):
    """xception41p builds nn.BatchNorm2d (eps 1e-5) while 41/65/71/65p use eps 1e-3: the wrong one fails at a BN."""
    spec = resolve("timm:xception41p")
    assert spec.config.bn_eps == 1e-5 and resolve("timm:xception65p").config.bn_eps == 1e-3
    wrong = type(spec)(**{**spec.__dict__, "arch_config": {**spec.arch_config, "bn_eps": 1e-3}})
    report = parity(wrong, weights=str(source_weights("timm:xception41p", ".safetensors")), size=96, batch=1)
    failure = report.first_failure()
    assert failure is not None and failure.kind == "bn", failure
    assert_agrees_before(report, failure)


def test_port_and_export_need_no_variant_flags(source_weights, tmp_path):
    import onnx

    pth = source_weights("timm:xception65p", ".pth")
    run = porting("port-weights", "timm:xception65p", "--weights", pth, "-o", tmp_path / "x.ckpt")
    assert run.code == 0, run.stderr
    params, meta = checkpoint.load(tmp_path / "x.ckpt")
    assert meta.arch == "xception_aligned"
    assert meta.arch_config == {"layout": "65", "preact": True, "bn_eps": 1e-3}
    assert meta.crop_pct == 0.94 and meta.mean == [0.5] * 3 and meta.num_classes == 1000
    assert params["fc.weight"].shape == (1000, 2048)
    run = porting("export", tmp_path / "x.ckpt", "--format", "onnx", "-o", tmp_path / "x.onnx")
    assert run.code == 0, run.stderr
    model = onnx.load(str(tmp_path / "x.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["source"] == "timm:xception65p" and props["arch"] == "xception_aligned"


def test_head_reinit_uses_fc(tmp_path):
    run = porting("port-weights", "timm:xception41", "--random-init", "0", "--num-classes", "5",
                  "-o", tmp_path / "h.ckpt")
    assert run.code == 0, run.stderr
    params, meta = checkpoint.load(tmp_path / "h.ckpt")
    assert params["fc.weight"].shape == (5, 2048) and meta.head_reinitialized
    assert np.all(params["fc.bias"] == 0)
