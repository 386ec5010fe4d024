"""Users' own heads on the MindSpore side (issue 32): the cells a porting.heads.Head builds, their ONNX lowerings in
onnxruntime and OpenVINO (opsets 13 and 21: GELU in its erf form and as ONNX's own Gelu), the MINDIR, the card and
the checkpoint round trip, the weight map's head rows for the timm, Keras and PaddleClas conventions (mapped and
inverted bit for bit), a timm model whose classifier is an nn.Sequential ported through those rows, and the
pipeline around such models: port, fine-tune (the last dense replaced, the backbone held as its source held it,
--resume), eval / predict / export refusing what they cannot do in one line."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import error_line, porting

from porting.card import ModelCard
from porting.errors import PortingError
from porting.heads import Head, HeadLayer, parse_head

ARCH, CONFIG = "xception", {"bn_eps": 1e-5, "conv_padding": 1, "pool_padding": 1}  # timm:legacy_xception's
SIZE = 64  # Xception's last feature map: 2x2
FEATURES = 2048


def head_of(text: str, **changes) -> Head:
    return dataclasses.replace(parse_head(text, FEATURES, prefix="fc"), **changes)


# every pooling, every activation (fused into a dense and as a layer), 1-d BN, dropout, a dense without bias, and
# two feature extractors: one that pools, one that outputs the last feature map itself
FLATTEN = Head("flatten", (
    HeadLayer("dense", "dense", units=24, activation="relu6"), HeadLayer("batchnorm", "batch_normalization", eps=1e-3,
                                                                           momentum=0.99),
    HeadLayer("dropout", "dropout", rate=0.2), HeadLayer("dense", "dense_1", units=12, activation="gelu"),
    HeadLayer("activation", "leaky_re_lu", activation="leaky_relu", alpha=0.3),
    HeadLayer("dense", "predictions", units=5, activation="softmax")),
    FEATURES, map_size=(2, 2), layout="keras-flat", backbone_bn="inference", backbone_trainable=False)
HEADS = {
    "flatten": FLATTEN,
    "max": head_of("pool:max,linear:20,silu,elu:0.7,linear:16,sigmoid,bn,linear:10,tanh,gelu,linear:4:nobias"),
    "avg": head_of("linear:8,relu,dropout:0.5,linear:3,softmax"),
    "features": head_of("none"),
    "pooled-features": head_of("bn,dropout:0.1"),
}


def seeded(net, seed: int = 0) -> None:
    """Every parameter drawn (BN statistics too, variances positive), so no layer is the identity by accident."""
    import mindspore as ms

    rng = np.random.default_rng(seed)
    for name, p in net.parameters_and_names():
        shape = tuple(p.shape)
        if name.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("gamma"):
            value = rng.uniform(0.5, 1.5, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 4
            value = rng.normal(0, 1 / np.sqrt(fan_in), shape)
        p.set_data(ms.Tensor(value.astype(np.float32)))


def inputs(batch: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (batch, 3, SIZE, SIZE)).astype(np.float32)


@pytest.fixture(scope="module")
def networks():
    """{head name: (Xception with that head, its card)}, each built once for the module."""
    from porting import archs, msenv

    msenv.setup()
    built = {}
    for name, head in HEADS.items():
        net = archs.build(ARCH, CONFIG, head.num_classes, head)
        seeded(net)
        built[name] = net, ModelCard(ARCH, CONFIG, head.num_classes, custom_head=head, input_size=SIZE)
    return built


def on_a_small_map(head: Head, channels: int = 12):
    """`head` after a one-conv backbone (3 -> `channels`, stride 2: a 2x2 map at 4 px), as archs.build puts it
    after a real one: the head's cells alone, cheap enough to run each head in every runtime at two opsets."""
    from mindspore import nn

    from porting.archs.layers import Conv2d, Traced, head_cells

    small = dataclasses.replace(head, features=channels)

    class Backbone(Traced, nn.Cell):
        def __init__(self):
            super().__init__()
            self.features = Conv2d(3, channels, 3, 2, 1, bias=True)
            self.global_pool, self.fc = head_cells(small)

        def construct(self, x):
            return self.fc(self.global_pool(self.features(x)))

    net = Backbone()
    net.set_train(False)
    seeded(net)
    return net, ModelCard(ARCH, CONFIG, small.num_classes, custom_head=small, input_size=4)


# --------------------------------------------------------------------------------------------- the record

def test_the_card_carries_the_head_and_checks_it():
    card = ModelCard(ARCH, CONFIG, 5, custom_head=FLATTEN, input_size=SIZE)
    for back in (ModelCard.from_json(card.to_json(), "m.ckpt"), ModelCard.from_props(card.to_props(), "m.onnx")):
        assert back == card and back.custom_head.map_size == (2, 2)
    assert (card.output, card.fixed_size, card.headless) == ("probabilities", SIZE, False)
    assert ModelCard(ARCH, CONFIG, 3, custom_head=HEADS["avg"]).output == "probabilities"
    assert ModelCard(ARCH, CONFIG, 4, custom_head=HEADS["max"]).output == "logits"
    features = ModelCard(ARCH, CONFIG, 0, custom_head=HEADS["features"])
    assert features.headless and features.output == "features" and ModelCard.from_json(features.to_json(), "f")
    with pytest.raises(PortingError, match="0 only for a feature extractor"):
        ModelCard.from_json(ModelCard(ARCH, CONFIG, 0).to_json(), "m.ckpt")
    with pytest.raises(PortingError, match="'m.ckpt': metadata 'num_classes' is 4, but its custom_head"):
        ModelCard.from_json(card.replace(num_classes=4).to_json(), "m.ckpt")
    raw = json.loads(card.to_json())
    raw["custom_head"]["pooling"] = "mean"
    with pytest.raises(PortingError, match="'m.ckpt': head pooling 'mean' is not one of"):
        ModelCard.from_dict(raw, "m.ckpt")
    with pytest.raises(PortingError, match="--size 96: the model's head flattens its 2x2 feature map"):
        card.check_size(96)


def test_a_head_builds_as_its_layers_are_numbered(networks):
    net, _ = networks["max"]
    names = [n for n, _ in net.parameters_and_names() if n.startswith("fc.")]
    assert names == ["fc.0.weight", "fc.0.bias", "fc.3.weight", "fc.3.bias", "fc.5.moving_mean",
                     "fc.5.moving_variance", "fc.5.gamma", "fc.5.beta", "fc.6.weight", "fc.6.bias", "fc.9.weight"]
    assert tuple(dict(net.parameters_and_names())["fc.0.weight"].shape) == (20, FEATURES)
    flat, _ = networks["flatten"]
    assert tuple(dict(flat.parameters_and_names())["fc.0.weight"].shape) == (24, FEATURES * 4)
    assert not [n for n, _ in networks["features"][0].parameters_and_names() if n.startswith("fc.")]


def test_a_head_the_architecture_cannot_hold_is_refused():
    from porting import archs, msenv

    msenv.setup()
    with pytest.raises(PortingError, match="ends in DenseBnLogSoftmax, not in a global pool and one Dense"):
        archs.build("inception_v4", {"bn_eps": 1e-5, "head_bn": True}, 4, head_of("linear:4"))
    with pytest.raises(PortingError, match="the head takes 1536 features, but xception's last feature map has 2048"):
        archs.build(ARCH, CONFIG, 4, parse_head("linear:4", 1536))


# --------------------------------------------------------------------------------------------- every runtime

def agree_in_every_runtime(net, card: ModelCard, x: np.ndarray, opsets=(13, 21)) -> None:
    """The MindSpore cells against their ONNX lowerings, layer by layer, in onnxruntime and OpenVINO (f32), at the
    lowest and the highest opset porting writes (GELU: its erf form below opset 20, ONNX's Gelu from 20)."""
    from porting.compare import compare
    from porting.converters.export import OnnxOptions, trace_onnx
    from porting.report import Report
    from porting.runtimes import runtime_record

    cells = [f"fc.{i}" for i in range(len(card.custom_head.layers))]
    size = x.shape[-1]
    with runtime_record("mindspore").runtime(net) as ms_runtime:
        reference = ms_runtime.infer(x, cells)
    for opset in opsets:
        model, taps = trace_onnx(net, card, size, cells, OnnxOptions(opset=opset))
        ops = {node.op_type for node in model.graph.node}
        assert model.graph.output[0].name == ("features" if card.headless else "logits")
        if any(layer.activation == "gelu" for layer in card.custom_head.layers):
            assert ("Gelu" in ops) == (opset >= 20) and ("Erf" in ops) == (opset < 20), ops
        for runtime in ("ort", "openvino"):
            with runtime_record(runtime).runtime(model, taps=taps, precision="f32") as candidate:
                report = Report(spec=card.custom_head.describe())
                compare(report, runtime, reference, candidate.infer(x, cells), cells)
            assert report.ok and report.first_failure() is None, (opset, runtime, report.rows)
            assert len(report.rows) == len(cells) + 1, report.rows
    return reference


@pytest.mark.parametrize("name", list(HEADS))
def test_every_head_layer_agrees_in_onnxruntime_and_openvino(name):
    net, card = on_a_small_map(HEADS[name])
    reference = agree_in_every_runtime(net, card, np.random.default_rng(1).normal(0, 1, (3, 3, 4, 4)).astype(np.float32))
    if card.custom_head.pooling == "none":
        assert reference["logits"].shape == (3, 12, 2, 2)


def test_a_whole_model_with_its_head_agrees_in_onnxruntime_and_openvino(networks):
    """Xception with the flattening head (every kind of layer but max pooling) in every runtime, as exported."""
    agree_in_every_runtime(*networks["flatten"], inputs(), opsets=(17,))


def test_mindir_and_the_checkpoint_carry_the_head(networks, tmp_path):
    """The checkpoint rebuilds the head from its card alone and gives the same outputs, as does its MINDIR."""
    from porting import checkpoint
    from porting.converters.export import export_ms
    from porting.runtimes import runtime_record

    x = inputs()
    for name in ("flatten", "max", "features"):
        net, card = networks[name]
        params = {n: p.asnumpy() for n, p in net.parameters_and_names()}
        checkpoint.save(params, tmp_path / f"{name}.ckpt", card)
        again, read = checkpoint.load_model(tmp_path / f"{name}.ckpt")
        assert read.custom_head == card.custom_head
        with runtime_record("mindspore").runtime(net) as a, runtime_record("mindspore").runtime(again) as b:
            expected = a.logits(x)
            assert np.array_equal(expected, b.logits(x))
        mindir = export_ms(net, "MINDIR", tmp_path / f"{name}.mindir", SIZE, batch=2, card=card)
        with runtime_record("mindir").runtime(mindir) as m:
            got = m.logits(x)
        assert np.abs(got - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())


# --------------------------------------------------------------------------------------------- weight-map rows

ROW_CASES = {  # spec: (its head, the rows the head gets: source, target, transform)
    "timm:legacy_xception": (head_of("linear:64,bn,relu,dropout:0.3,linear:5"), [
        ("fc.0.weight", "fc.0.weight", "copy"), ("fc.0.bias", "fc.0.bias", "copy"),
        ("fc.1.weight", "fc.1.gamma", "copy"), ("fc.1.bias", "fc.1.beta", "copy"),
        ("fc.1.running_mean", "fc.1.moving_mean", "copy"), ("fc.1.running_var", "fc.1.moving_variance", "copy"),
        ("fc.4.weight", "fc.4.weight", "copy"), ("fc.4.bias", "fc.4.bias", "copy")]),
    "keras:xception": (FLATTEN, [
        ("dense/kernel", "fc.0.weight", "[in,out]->[out,in]"), ("dense/bias", "fc.0.bias", "copy"),
        ("batch_normalization/gamma", "fc.1.gamma", "copy"), ("batch_normalization/beta", "fc.1.beta", "copy"),
        ("batch_normalization/moving_mean", "fc.1.moving_mean", "copy"),
        ("batch_normalization/moving_variance", "fc.1.moving_variance", "copy"),
        ("dense_1/kernel", "fc.3.weight", "[in,out]->[out,in]"), ("dense_1/bias", "fc.3.bias", "copy"),
        ("predictions/kernel", "fc.5.weight", "[in,out]->[out,in]"), ("predictions/bias", "fc.5.bias", "copy")]),
    "paddleclas:Xception41": (dataclasses.replace(parse_head("linear:32:nobias,bn,gelu,linear:7", FEATURES,
                                                             prefix="_exit_flow._out")), [
        ("_exit_flow._out.0.weight", "fc.0.weight", "[in,out]->[out,in]"),
        ("_exit_flow._out.1.weight", "fc.1.gamma", "copy"), ("_exit_flow._out.1.bias", "fc.1.beta", "copy"),
        ("_exit_flow._out.1._mean", "fc.1.moving_mean", "copy"),
        ("_exit_flow._out.1._variance", "fc.1.moving_variance", "copy"),
        ("_exit_flow._out.3.weight", "fc.3.weight", "[in,out]->[out,in]"),
        ("_exit_flow._out.3.bias", "fc.3.bias", "copy")]),
}


@pytest.mark.parametrize("spec_id", list(ROW_CASES))
def test_head_rows_map_and_invert_bit_for_bit(spec_id):
    """A head's rows through the source's convention replace the standard classifier's; every head layer is a
    compared layer of kind 'head', in order; MindSpore parameters -> the source's tensors -> MindSpore again is
    bit for bit, the backbone's rows included."""
    import mindspore as ms

    from porting import archs, msenv
    from porting.sources import library
    from porting.specs import build_weight_map, resolve
    from porting.weight_maps.heads import with_head

    spec = resolve(spec_id)
    head, rows = ROW_CASES[spec_id]
    standard = build_weight_map(spec)
    wm = with_head(standard, head, library(spec.source).convention, spec.head)
    assert [r for r in standard.rows if r.target.startswith("fc.")] == [] or standard.rows != wm.rows
    got = [(r.source, r.target, r.transform.name) for r in wm.rows if r.target.startswith("fc.")]
    assert got == rows
    assert not [r for r in wm.rows if r.target in ("fc.weight", "fc.bias")]
    assert [(layer.source, layer.target, layer.kind) for layer in wm.layers if layer.kind == "head"] == [
        (layer.name, f"fc.{i}", "head") for i, layer in enumerate(head.layers)]
    assert wm.layers[: len(standard.layers)] == [la for la in standard.layers if not la.target.startswith("fc")]
    msenv.setup()
    net = archs.build(spec.arch, spec.arch_config, head.num_classes, head)
    rng = np.random.default_rng(0)
    params = {n: rng.normal(size=p.shape).astype(np.float32) for n, p in net.parameters_and_names()}
    source = wm.invert(params, spec.id)
    assert len(source) == len(wm.rows)
    back = wm.apply(source, {n: tuple(p.shape) for n, p in net.parameters_and_names()}, spec.id)
    assert back.keys() == params.keys() and all(np.array_equal(back[k], params[k]) for k in params)
    assert all(np.array_equal(wm.invert(back, spec.id)[k], v) for k, v in source.items())
    del ms


# --------------------------------------------------------------------------------------------- the pipeline

SPEC = "timm:legacy_xception"
SEQUENTIAL = "linear:64,bn,relu,dropout:0.3,linear:4"  # timm's fc = nn.Sequential(Linear, BatchNorm1d, ReLU, ...)


def timm_state_dict(head: Head, seed: int = 0) -> tuple[dict, dict]:
    """(MindSpore parameters of a seeded model with `head`, the state dict timm's model with that head holds: the
    same tensors under timm's names, laid out by timm's convention through the head's rows)."""
    from porting import archs, msenv
    from porting.converters.port import weight_map_for
    from porting.specs import resolve

    msenv.setup()
    spec = resolve(SPEC)
    net = archs.build(spec.arch, spec.arch_config, head.num_classes, head)
    seeded(net, seed)
    params = {n: p.asnumpy() for n, p in net.parameters_and_names()}
    return params, weight_map_for(spec, head).invert(params, spec.id)


def source_result(head: Head, tensors: dict, echoed: bool = True):
    from porting.job import SourceInfo, SourceResult

    return SourceResult(SourceInfo(num_classes=head.num_classes, head=head.to_dict() if echoed else None), seed=0,
                        tensors=tensors)


def test_a_sequential_head_ports_through_its_rows():
    """The port of a timm model whose fc is an nn.Sequential: every tensor lands bit for bit, the card records the
    head (from the worker's SourceInfo.head, or given); --num-classes redraws only the last dense layer; a head
    the worker did not load is refused."""
    from porting.converters.port import port
    from porting.specs import resolve

    spec = resolve(SPEC)
    head = parse_head(SEQUENTIAL, FEATURES, prefix="fc")
    params, tensors = timm_state_dict(head)
    assert {"fc.0.weight", "fc.1.running_var", "fc.4.bias"} <= tensors.keys() and "fc.weight" not in tensors
    for given in (None, head):
        ported = port(spec, source_result(head, tensors), head=given)
        assert ported.params.keys() == params.keys()
        assert all(np.array_equal(ported.params[k], v) for k, v in params.items())
        assert ported.card.custom_head == head and ported.card.num_classes == 4
        assert not ported.card.head_reinitialized
    logged = []
    five = port(spec, source_result(head, tensors), num_classes=5, log=logged.append)
    assert five.card.num_classes == 5 and five.card.head_reinitialized and five.card.custom_head.num_classes == 5
    assert five.params["fc.4.weight"].shape == (5, 64) and not five.params["fc.4.bias"].any()
    assert all(np.array_equal(five.params[k], v) for k, v in params.items() if not k.startswith("fc.4."))
    assert any("re-initialised the head's last dense layer 'fc.4' for 5 classes" in line for line in logged)
    with pytest.raises(PortingError, match="the source model's head is global average pool -> dense 64"):
        port(spec, source_result(head, tensors), head=parse_head("linear:4", FEATURES, prefix="fc"))
    # a head the worker did not echo, with a wrong shape: the weight map names the tensor
    narrow = parse_head("linear:32,bn,relu,dropout:0.3,linear:4", FEATURES, prefix="fc")
    with pytest.raises(PortingError, match="fc.0.weight"):
        port(spec, source_result(head, tensors, echoed=False), head=narrow)


def test_a_feature_extractor_ports_and_gets_a_classifier():
    from porting.converters.port import port
    from porting.specs import resolve

    spec = resolve(SPEC)
    headless = parse_head("none", FEATURES, prefix="fc")
    params, tensors = timm_state_dict(headless)
    assert not [k for k in tensors if k.startswith("fc.")]
    ported = port(spec, source_result(headless, tensors))
    assert ported.card.headless and ported.card.num_classes == 0 and ported.card.output == "features"
    given = port(spec, source_result(headless, tensors), num_classes=3)
    assert given.card.num_classes == 3 and given.card.custom_head.layers[-1].name == "fc.0"
    assert given.params["fc.0.weight"].shape == (3, FEATURES)


@pytest.fixture(scope="module")
def head_checkpoints(work):
    """{'frozen': a 4-class Sequential-head checkpoint whose source ran its backbone frozen and its BNs in
    inference mode (Keras's base.trainable = False, base(x, training=False)), 'features': a feature extractor's},
    at 64 px."""
    from porting import checkpoint
    from porting.converters.port import port
    from porting.specs import resolve

    spec, made = resolve(SPEC), {}
    for name, text, changes in (("frozen", SEQUENTIAL, {"backbone_bn": "inference", "backbone_trainable": False}),
                                ("features", "none", {"backbone_bn": "inference"})):
        head = dataclasses.replace(parse_head(text, FEATURES, prefix="fc"), **changes)
        ported = port(spec, source_result(head, timm_state_dict(head)[1]))
        made[name] = work / f"{name}.ckpt"
        checkpoint.save(ported.params, made[name], ported.card.replace(input_size=SIZE))
    return made


TRAIN = ["--epochs", "1", "--image-size", str(SIZE), "--batch-size", "4", "--workers", "1", "--log-every", "1",
         "--max-steps", "1", "--pynative"]


def test_finetune_replaces_the_last_dense_and_holds_the_backbone(head_checkpoints, tiny_data, work):
    """The 3 class folders replace only the head's last dense layer; the backbone stays frozen with its BNs on
    their moving statistics, as the source trained it, and the log says so; --resume continues with the head."""
    from porting import checkpoint

    out = work / "frozen-run"
    run = porting("finetune", head_checkpoints["frozen"], "--data", tiny_data, *TRAIN, "-o", out)
    assert run.code == 0, run.stderr
    log = " ".join(run.stderr.split())
    assert "new classifier (the head's last dense layer) 'fc.4' for 3 classes" in log
    assert "backbone BatchNorm: inference mode, as its source ran it (training=False)" in log
    assert "backbone frozen, as its source froze it (trainable=False)" in log
    before, _ = checkpoint.load(head_checkpoints["frozen"])
    (first,) = out.glob("*.ckpt")
    after, card = checkpoint.load(first)
    assert card.custom_head.num_classes == 3 and card.custom_head.backbone_bn == "inference"
    assert card.custom_head.layers[:4] == parse_head(SEQUENTIAL, FEATURES, prefix="fc").layers[:4]
    backbone = [k for k in before if not k.startswith("fc.")]
    assert all(np.array_equal(before[k], after[k]) for k in backbone)  # weights and moving statistics alike
    assert not np.array_equal(before["fc.0.weight"], after["fc.0.weight"])  # the head trains
    assert not np.array_equal(before["fc.1.moving_mean"], after["fc.1.moving_mean"])  # its own BN in training mode
    again = porting("finetune", head_checkpoints["frozen"], "--data", tiny_data, *TRAIN, "-o", out, "--resume")
    assert again.code == 0, again.stderr
    assert "resuming from" in again.stderr
    resumed, card = checkpoint.load(max(out.glob("*.ckpt"), key=lambda p: p.stat().st_mtime))
    assert card.train_state.global_step == 2 and card.custom_head.num_classes == 3
    assert all(np.array_equal(before[k], resumed[k]) for k in backbone)


def test_a_feature_extractor_gets_a_classifier_and_the_run_may_train_its_bns(head_checkpoints, tiny_data, work):
    from porting import checkpoint

    out = work / "features-run"
    run = porting("finetune", head_checkpoints["features"], "--data", tiny_data, *TRAIN, "--backbone-bn", "train",
                  "-o", out)
    assert run.code == 0, run.stderr
    log = " ".join(run.stderr.split())
    assert "'fc.0' for 3 classes" in log and "the checkpoint had none (a feature extractor)" in log
    assert "backbone BatchNorm: training mode, --backbone-bn train" in log
    before, _ = checkpoint.load(head_checkpoints["features"])
    (first,) = out.glob("*.ckpt")
    after, card = checkpoint.load(first)
    assert card.num_classes == 3 and card.custom_head.layers == (HeadLayer("dense", "fc.0", units=3),)
    assert after["fc.0.weight"].shape == (3, FEATURES)
    moving = [k for k in before if k.endswith("moving_mean")]
    assert any(not np.array_equal(before[k], after[k]) for k in moving)


def test_eval_and_predict_refuse_a_feature_extractor(head_checkpoints, tiny_data, tmp_path):
    """One line each, exit 2, nothing written: a feature extractor has no classes to score or predict."""
    features = head_checkpoints["features"]
    results = tmp_path / "r.json"
    for args in (("eval", features, "--data", tiny_data, "--results", results),
                 ("predict", features, tiny_data / "val" / "circle" / "0.png")):
        run = porting(*args)
        assert run.code == 2, run.stderr
        assert "is a feature extractor" in error_line(run) and "--num-classes N" in error_line(run)
    assert list(tmp_path.iterdir()) == []


def test_a_feature_extractors_parity_report_says_features_and_no_top1():
    """Its output has no classes: the report compares 'features' and shows no top-1 (nor calls it 0%)."""
    import io

    from rich.console import Console

    from porting.compare import Comparison
    from porting.report import Report, ReportInfo, summary_table, verdict

    report = Report(spec=SPEC, info=ReportInfo(output="features", batch=2, size=SIZE))
    reference = {"features": np.random.default_rng(0).normal(size=(2, 8)).astype(np.float32)}
    comparison = Comparison(report, "mindspore", [], "features", top1=False)
    comparison.add(reference, {"features": reference["features"] + 1e-6})
    comparison.finish()
    assert report.ok and report.top1_agree == {}
    console = Console(width=100, record=True, file=io.StringIO())
    for part in (summary_table(report), *verdict(report)):
        console.print(part)
    text = console.export_text()
    assert "n/a" in text and "0%" not in text and "top-1 for every input" not in text, text
    assert "features too: a feature extractor has no top-1" in " ".join(text.split())
