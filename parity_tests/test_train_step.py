"""parity --train-step (issue 20): one training step of the source library against finetune's step in MindSpore.

Per library, one MindSpore step serves four source steps: the recipe's, and three that get it wrong on purpose,
each of which must fail at the tensor that shows it. Small images keep MindSpore's CPU step short; the rest of the
registry is behind the `exhaustive` marker (PORTING_EXHAUSTIVE=1).
"""
from __future__ import annotations

import os

import pytest
from conftest import error_line, porting

from porting import api
from porting.specs import all_specs, resolve
from porting.training.step_parity import train_step_parity

MUTATIONS = {
    # BN momentum given in PyTorch's convention (0.1) where MindSpore's (0.9) is meant: every running statistic
    "bn momentum in the other convention": ({"bn_momentum": 0.1}, "bn-update"),
    # the recipe's label smoothing left out: the loss itself
    "label smoothing left out": ({"label_smooth_factor": 0.0}, "loss"),
    # weight decay on BN gamma / beta and biases, which the recipe does not decay: their updates
    "weight decay on BN parameters": ({"decay_bn": True}, "update"),
}

PER_LIBRARY = [("timm:xception", ".pth", 96), ("keras:xception", ".weights.h5", 96),
               ("paddleclas:Xception41", ".pdparams", 96)]


def assert_step_parity(report) -> None:
    failure = report.first_failure()
    assert failure is None, f"first disagreeing tensor {failure}"
    kinds = {kind: sum(1 for r in report.rows if r.kind == kind) for kind in ("loss", "grad", "update", "bn-update")}
    assert kinds["loss"] == 1 and min(kinds.values()) >= 1, kinds
    assert kinds["grad"] == kinds["update"] > 20, kinds  # every trainable tensor, twice
    # the forward quantities' bounds stay tight: the source's own float32 spread on them is small (measured: the loss
    # 1e-7 to 3e-6; the BN statistics 1e-5 to 1.4e-4, the most for the SE-ResNeXt50s, whose last BNs see 2x2 or 3x3)
    assert report.info.spread["loss"] < 1e-5 and report.info.spread["bn-update"] < 1e-3, report.info.spread


@pytest.mark.parametrize("spec_id,suffix,size", PER_LIBRARY)
def test_train_step_parity_and_its_mutations(source_weights, spec_id, suffix, size):
    spec = resolve(spec_id)
    weights = str(source_weights(spec.id, suffix))
    reports = train_step_parity(spec, weights=weights, size=size, batch=2,
                                variants=[{}] + [changes for changes, _ in MUTATIONS.values()])
    assert_step_parity(reports[0])
    assert reports[0].info.train_step.bn_momentum == 0.9
    for (name, (_, kind)), report in zip(MUTATIONS.items(), reports[1:]):
        failure = report.first_failure()
        assert failure is not None, f"{spec_id}: {name} passed"
        assert failure.kind == kind, f"{spec_id}: {name} failed first at {failure}"
        assert failure.layer  # named: the loss, or the MindSpore tensor
        if kind == "update":  # a BN tensor or a bias, never a conv / dense weight
            assert not failure.layer.endswith(".weight"), failure


def test_train_step_parity_seresnext():
    """SE-ResNeXt50 (grouped convs, SE as 1x1 convs, the recipe's Momentum) at 64 px."""
    report = api.train_step_parity("timm:seresnext50_32x4d", seed=0, size=64, batch=2)
    assert_step_parity(report)


EXHAUSTIVE = [s.id for s in all_specs() if s.source in ("timm", "keras", "paddleclas")
              and s.id not in {resolve(i).id for i, _, _ in PER_LIBRARY} | {"timm:seresnext50_32x4d"}]


@pytest.mark.exhaustive
@pytest.mark.skipif(os.environ.get("PORTING_EXHAUSTIVE") != "1", reason="PORTING_EXHAUSTIVE=1 runs every spec")
@pytest.mark.parametrize("spec_id", EXHAUSTIVE)
def test_train_step_parity_every_spec(spec_id):
    spec = resolve(spec_id)
    # 160 px for InceptionV4: at 96 its last BNs see a 1 x 1 map, 2 values per channel at batch 2
    report = api.train_step_parity(spec, seed=0, size=160 if spec.arch == "inception_v4" else 96, batch=2)
    assert_step_parity(report)


def test_train_step_refusals(tmp_path):
    """One line, exit 2, nothing written: a library whose training step is not wired in; inference flags."""
    out = tmp_path / "r.json"
    run = porting("parity", "mindcv:xception", "--random-init", "0", "--train-step", "--report", out)
    assert run.code == 2 and error_line(run) and "timm, Keras and PaddleClas" in run.stderr, run.stderr
    run = porting("parity", "timm:xception", "--random-init", "0", "--train-step", "--onnx", "--report", out)
    assert run.code == 2 and error_line(run) and "--onnx" in run.stderr, run.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bn_momentum_override_is_what_trains():
    """finetune --bn-momentum: the BN op itself is rebuilt with it (MindSpore bakes the momentum into the op)."""
    import mindspore as ms
    import numpy as np
    from mindspore import nn

    from porting import msenv
    from porting.training.step import bn_settings, set_bn_momentum

    msenv.setup()
    net = nn.SequentialCell([nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)])
    assert bn_settings(net) == ([0.9], [1e-5])
    set_bn_momentum(net, 0.99)
    assert bn_settings(net)[0] == [0.99]
    net.set_train(True)
    x = ms.Tensor(np.random.default_rng(0).normal(2.0, 1.0, (2, 3, 8, 8)).astype(np.float32))
    batch_mean = net[0](x).asnumpy().mean(axis=(0, 2, 3))
    net(x)
    # moving = 0.99 x 0 + 0.01 x batch
    np.testing.assert_allclose(net[1].moving_mean.asnumpy(), 0.01 * batch_mean, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("size", [7, 8, 9, 16])
def test_rmsprop_on_cpu_is_the_documented_formula(size):
    """finetune's RMSProp on CPU: ms = d ms + (1 - d) g^2, mom = m mom + lr g / sqrt(ms + eps), w -= mom, for every
    element. MindSpore 2.10's own CPU kernel puts eps outside the root on each full block of 8 elements; when
    this canary fails, MindSpore computes it right and RMSPropAsDocumented can go."""
    import mindspore as ms
    import numpy as np
    from mindspore import nn

    from porting import msenv
    from porting.training.step import RMSPropAsDocumented

    msenv.setup()
    g = np.linspace(0.1, 2.0, size).astype(np.float32)
    documented = 0.4 * g / np.sqrt(0.9 + 0.1 * g * g + 1.0)
    updates = {}
    for cls in (RMSPropAsDocumented, nn.RMSProp):
        w = ms.Parameter(ms.Tensor(np.ones(size, np.float32)), name="w")
        cls([w], learning_rate=0.4, decay=0.9, momentum=0.9, epsilon=1.0, loss_scale=1024.0)((ms.Tensor(g * 1024),))
        updates[cls] = 1.0 - w.asnumpy()
    np.testing.assert_allclose(updates[RMSPropAsDocumented], documented, rtol=1e-6)
    assert (np.abs(updates[nn.RMSProp] - documented).max() > 1e-2) == (size >= 8)  # the kernel's blocks of 8
