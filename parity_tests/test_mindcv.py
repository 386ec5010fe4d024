"""Checkpoints users already have in MindSpore: mindcv's Xception, Inception-v4 and SE-ResNeXt50 32x4d, written
by mindcv's own models (mindspore.save_checkpoint) with seeded weights, ported, and run beside mindcv's model.

Sizes: Xception at 150 (even: mindcv's 'same' max pools pad (0, 1) where timm's pad 1 on both sides),
SE-ResNeXt at 200 (odd maps in stages 3-4), Inception-v4 at its 299.
"""
from dataclasses import replace

import pytest
from conftest import assert_agrees_before, assert_parity, error_line, porting

from porting.proof import parity
from porting.specs import resolve


@pytest.mark.slow
@pytest.mark.parametrize("spec,size,onnx", [
    ("mindcv:xception", 150, True),
    ("mindcv:inception_v4", 299, False),
    ("mindcv:seresnext50_32x4d", 200, False),
])
def test_mindcv_checkpoints_port_exactly(source_weights, spec, size, onnx):
    report = parity(resolve(spec), weights=str(source_weights(spec, ".ckpt")), size=size, batch=1, onnx=onnx)
    assert_parity(report, ("mindspore", "onnx") if onnx else ("mindspore",))


def test_timm_padding_on_mindcv_weights_fails_at_the_first_pool(source_weights):
    """Why mindcv's Xception is a spec of its own: timm's graph (max pools padded by 1) on mindcv's weights is
    a different network at even sizes, and parity names the first block whose pool moved."""
    spec = resolve("mindcv:xception")
    timm_graph = replace(spec, arch_config={**spec.arch_config, "pool_padding": 1})
    report = parity(timm_graph, weights=str(source_weights(spec.id, ".ckpt")), size=150, batch=1)
    failure = report.first_failure()
    assert failure is not None and failure.layer.startswith("blocks.0"), failure
    assert_agrees_before(report, failure)


def test_the_wrong_mindcv_checkpoint_is_named(source_weights, tmp_path):
    run = porting("port-weights", "mindcv:xception", "--weights", str(source_weights("mindcv:seresnext50_32x4d",
                                                                                     ".ckpt")),
                  "-o", str(tmp_path / "x.ckpt"))
    line = error_line(run)
    assert "does not fit mindcv xception" in line and "missing" in line, line
    assert not (tmp_path / "x.ckpt").exists()


TRAINING_CHECKPOINT = """
import sys
import mindspore as ms
params = ms.load_checkpoint(sys.argv[1])
state = [{"name": k, "data": v} for k, v in params.items()]
state += [{"name": "moments." + k, "data": ms.Tensor(v.asnumpy() * 0)} for k, v in params.items()]
state += [{"name": "global_step", "data": ms.Tensor([250], ms.int32)},
          {"name": "learning_rate", "data": ms.Tensor([0.1], ms.float32)}]
ms.save_checkpoint(state, sys.argv[2], append_dict={"epoch_num": 3, "step_num": 250})
"""


def test_a_checkpoint_saved_by_mindcv_training_ports_its_weights(source_weights, tmp_path):
    """mindcv's train.py saves optimizer moments and step counters beside the weights: they are not weights."""
    import subprocess
    import sys

    import numpy as np

    from porting import checkpoint

    clean = source_weights("mindcv:xception", ".ckpt")
    trained = tmp_path / "xception-3_250.ckpt"
    subprocess.run([sys.executable, "-c", TRAINING_CHECKPOINT, str(clean), str(trained)], check=True)
    for weights, out in ((clean, tmp_path / "a.ckpt"), (trained, tmp_path / "b.ckpt")):
        assert porting("port-weights", "mindcv:xception", "--weights", str(weights), "-o", str(out)).code == 0
    (a, _), (b, _) = checkpoint.load(tmp_path / "a.ckpt"), checkpoint.load(tmp_path / "b.ckpt")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
