"""keras.applications.Xception -> MindSpore, from real Keras files (.weights.h5, legacy .h5, .keras).

TensorFlow never enters this process: Keras runs in the worker (porting.sources.keras.runner) or, for the
auto-name test, in a subprocess of its own.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import assert_parity, error_line, porting, swap_targets

from porting import checkpoint
from porting.proof import parity
from porting.specs import build_weight_map, resolve

SPEC = "keras:xception"


@pytest.mark.slow
@pytest.mark.parametrize("size,batch,mindir", [(299, 2, True), (128, 1, False)])  # 128: even, TF SAME pools
def test_ckpt_onnx_parity_from_weights_h5(source_weights, size, batch, mindir):
    h5 = source_weights(SPEC, ".weights.h5")
    report = parity(resolve(SPEC), weights=str(h5), size=size, batch=batch, onnx=True, mindir=mindir)
    assert_parity(report, ("mindspore", "onnx", "mindir") if mindir else ("mindspore", "onnx"))
    kinds = {name: r.kind for name, r in report.layers().items()}
    # every conv / BN / separable conv / pool / block of the table was compared, residual branches included
    assert sum(1 for k in kinds.values() if k == "pool") == 4 and sum(1 for k in kinds.values() if k == "block") == 12
    assert "block13_residual_bn" in report.layers()


def test_timm_style_pool_padding_fails_at_an_even_size_on_a_pool(source_weights):
    """The proof that TF 'same' pooling matters: timm's symmetric pool padding diverges first at a max pool.

    At 128 the stem gives 61x61, block2_pool 31x31, block3_pool 16x16: block4_pool is the first pool with an
    even input, where TF SAME pads (0, 1) instead of (1, 1), and nothing before it may differ.
    """
    spec = resolve(SPEC)
    wrong = type(spec)(**{**spec.__dict__, "arch_config": {**spec.arch_config, "pool_padding": 1}})
    report = parity(wrong, weights=str(source_weights(SPEC, ".weights.h5")), size=128, batch=1)
    failure = report.first_failure()
    assert failure is not None and failure.layer == "block4_pool", failure
    assert failure.target == "features.block3.rep.pool"
    before = report.rows[: report.rows.index(failure)]
    assert any(r.layer == "block3_pool" for r in before) and all(r.ok for r in before)


def test_a_swapped_tensor_pair_is_caught_and_named(source_weights):
    """Two same-shaped pointwise kernels swapped inside Keras block6: parity must fail exactly there."""
    spec = resolve(SPEC)
    wm = build_weight_map(spec)
    a, b = "block6_sepconv1/pointwise_kernel", "block6_sepconv3/pointwise_kernel"
    swap_targets(wm, a, b)
    report = parity(spec, weights=str(source_weights(SPEC, ".weights.h5")), size=128, batch=1, weight_map=wm)
    failure = report.first_failure()
    assert failure is not None and failure.layer == "block6_sepconv1", failure
    assert failure.target == "features.block5.rep.sep1"
    before = report.rows[: report.rows.index(failure)]
    assert len(before) > 30 and all(r.ok for r in before)


# Builds other layers first, so every automatic Keras name (conv2d_N, batch_normalization_N, add_N) shifts,
# then loads the seeded weights and saves the whole model as .keras; also writes a 10-class .weights.h5.
SHIFTED_NAMES = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    src, out = sys.argv[1], sys.argv[2]
    for _ in range(3):
        keras.layers.Conv2D(4, 1); keras.layers.BatchNormalization(); keras.layers.Add()
    model = keras.applications.Xception(weights=None)  # softmax head, as users save it
    model.load_weights(src)
    auto = sorted(l.name for l in model.layers if l.name.startswith(("conv2d", "batch_normalization", "add")))
    assert "conv2d" not in auto and "add" not in auto, auto
    model.save(out + "_shifted.keras")
    keras.applications.Xception(weights=None, classes=10).save_weights(out + "_ten.weights.h5")
""")


@pytest.mark.slow
def test_every_keras_format_ports_to_the_same_checkpoint(source_weights, tmp_path):
    """.weights.h5 (model.save_weights), legacy .h5 (Keras's HDF5 writer, the layout keras.applications
    downloads) and a whole .keras model whose residual/add layers carry other automatic names."""
    from porting.api import port

    spec = resolve(SPEC)
    ref_file, legacy = source_weights(SPEC, ".weights.h5"), source_weights(SPEC, ".h5")
    proc = subprocess.run([sys.executable, "-c", SHIFTED_NAMES, str(ref_file), str(tmp_path / "x")],
                          capture_output=True, text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    port(spec, weights=str(ref_file), output=tmp_path / "ref.ckpt")
    ref, meta = checkpoint.load(tmp_path / "ref.ckpt")
    assert len(ref) == 236
    for path in (legacy, tmp_path / "x_shifted.keras"):
        params = port(spec, weights=str(path)).params
        assert params.keys() == ref.keys(), path
        for name in ref:
            np.testing.assert_array_equal(params[name], ref[name], err_msg=f"{path.name}: {name}")
    # the checkpoint records its variant and preprocessing, so export needs no flags
    assert meta.source == SPEC and meta.arch == "xception" and meta.weights == f"file:{ref_file.name}"
    assert meta.arch_config == {"bn_eps": 1e-3, "conv_padding": "same", "pool_padding": "same"}
    assert meta.num_classes == 1000 and meta.input_size == 299
    assert meta.mean == [0.5] * 3 and meta.std == [0.5] * 3 and meta.interpolation == "bilinear"
    # the class count comes from the file
    ten = port(spec, weights=str(tmp_path / "x_ten.weights.h5"))
    assert ten.params["fc.weight"].shape == (10, 2048) and ten.card.num_classes == 10
    assert not ten.card.head_reinitialized


def test_bad_files_fail_in_one_line_and_write_nothing(tmp_path):
    (tmp_path / "broken.weights.h5").write_bytes(b"not hdf5")
    run = porting("port-weights", SPEC, "--weights", tmp_path / "broken.weights.h5", "-o", tmp_path / "o.ckpt")
    assert "broken.weights.h5" in error_line(run)
    (tmp_path / "x.pth").write_bytes(b"torch")
    line = error_line(porting("port-weights", SPEC, "--weights", tmp_path / "x.pth", "-o", tmp_path / "o.ckpt"))
    assert "x.pth" in line and ".weights.h5" in line
    assert sorted(os.listdir(tmp_path)) == ["broken.weights.h5", "x.pth"]


def test_offline_pretrained_download_names_weights_flag(tmp_path):
    run = porting("port-weights", SPEC, "-o", tmp_path / "p.ckpt")
    if run.code == 0:
        pytest.skip("online: keras's ImageNet download worked")
    assert "--weights" in error_line(run) and not (tmp_path / "p.ckpt").exists()
