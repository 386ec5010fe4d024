"""Users' own Keras models (issue 32): keras.applications.Xception with a head the user built, nested, flat or in a
Sequential, or include_top=False, saved as Keras saves them, at 96 px (not Xception's 299).

The models are built the way Keras's transfer-learning guide builds them, in a subprocess of their own (TensorFlow
never enters this process), with the seeded Xception weights of `source_weights` in the backbone and Keras's seeded
initialisation in the head. porting reads the head from the file's JSON (no flag) before Keras loads it.
"""
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from conftest import assert_openvino, assert_parity, error_line, porting

from porting.heads import Head
from porting.specs import resolve

SPEC = "keras:xception"
SIZE = 96

# argv: the seeded standard Xception .weights.h5, the output folder, the size, a marker file a Lambda would write
BUILD = textwrap.dedent("""
    import os, sys
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # as the worker runs it: the same sums, bit for bit
    src, out, size, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    keras.utils.set_random_seed(0)
    full = keras.applications.Xception(weights=None, classifier_activation=None)
    full.load_weights(src)
    weighted = [layer for layer in full.layers if layer.weights and layer.name != "predictions"]

    def base_model(pooling=None):
        # the backbone as users make it (include_top=False, their size), with the seeded weights
        base = keras.applications.Xception(weights=None, include_top=False, input_shape=(size, size, 3),
                                           pooling=pooling)
        for a, b in zip([layer for layer in base.layers if layer.weights], weighted, strict=True):
            a.set_weights(b.get_weights())
        return base

    def guide_head(x):  # the transfer-learning guide's head
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(32, activation="relu")(x)
        x = keras.layers.Dropout(0.2)(x)
        return keras.layers.Dense(6)(x)

    def write_marker(t):  # what a Lambda's code would do if anything ran it
        open(marker, "w").close()
        return t * 2

    def nested():
        base = base_model()
        base.trainable = False
        inputs = keras.Input((size, size, 3))
        return keras.Model(inputs, guide_head(base(inputs, training=False)))

    def flat():
        base = base_model()
        base.trainable = False  # saved layer by layer: its BatchNorms run on their statistics, in fit() too
        return keras.Model(base.input, guide_head(base.output))

    def sequential():
        model = keras.Sequential([keras.Input((size, size, 3)), base_model(), keras.layers.GlobalMaxPooling2D(),
                                  keras.layers.BatchNormalization(), keras.layers.LeakyReLU(0.1),
                                  keras.layers.Dense(5)])
        rng = np.random.default_rng(1)  # statistics that are not the initial 0 / 1
        model.layers[2].set_weights([rng.uniform(0.5, 1.5, 2048), rng.normal(0, 0.2, 2048),
                                     rng.normal(0, 0.3, 2048), rng.uniform(0.5, 2, 2048)])
        return model

    def lambda_head():
        base = base_model()
        x = keras.layers.GlobalAveragePooling2D()(base.output)
        x = keras.layers.Lambda(write_marker)(x)
        return keras.Model(base.input, keras.layers.Dense(3)(x))

    def conv_head():
        base = base_model()
        x = keras.layers.Conv2D(8, 1)(base.output)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(base.input, keras.layers.Dense(3)(x))

    builders = {"nested": nested, "flat": flat, "sequential": sequential, "lambda": lambda_head,
                "conv": conv_head, "notop-none": lambda: base_model(None), "notop-avg": lambda: base_model("avg"),
                "notop-max": lambda: base_model("max")}
    x = np.random.default_rng(2).normal(0, 1, (2, size, size, 3)).astype(np.float32)
    np.save(os.path.join(out, "x.npy"), x)
    for kind, build in builders.items():
        model = build()
        model.save(os.path.join(out, kind + ".keras"))
        if kind not in ("lambda", "conv"):
            np.save(os.path.join(out, kind + ".npy"), np.asarray(model(x, training=False)))
""")


@pytest.fixture(scope="module")
def user_models(work, source_weights):
    """{kind: .keras file} of the users' models above, plus 'x' (their NCHW inputs) and '<kind>.y' (Keras's own
    outputs on them), built once per module."""
    folder = work / "keras_models"
    folder.mkdir()
    marker = folder / "lambda_ran"
    proc = subprocess.run([sys.executable, "-c", BUILD, str(source_weights(SPEC, ".weights.h5")), str(folder),
                           str(SIZE), str(marker)], capture_output=True, text=True,
                          env=_keras_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    marker.unlink()  # Keras ran the Lambda once while building the model; nothing may run it again
    found = {path.stem: path for path in folder.glob("*.keras")}
    found["x"] = np.ascontiguousarray(np.load(folder / "x.npy").transpose(0, 3, 1, 2))
    found.update({f"{path.stem}.y": np.load(path) for path in folder.glob("*.npy") if path.stem != "x"})
    found["marker"] = marker
    return found


def _keras_env() -> dict:
    """A Keras subprocess's environment as a source worker's (porting.sources.jobs): the same kernels, so the
    same sums, bit for bit (the AVX2 cap is MindSpore's alone)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if env.pop("PORTING_CAPPED_ONEDNN", None):
        env.pop("ONEDNN_MAX_CPU_ISA", None)
    return env


def _spec():
    import dataclasses

    return dataclasses.replace(resolve(SPEC), input_size=SIZE)


# ------------------------------------------------------------------------------------ reading the file's graph


def test_the_head_is_read_from_the_files_own_graph(user_models):
    """No flag: the layout, the pooling, every head layer under its own name, training=False and trainable, and the
    file's input size, from the JSON alone (no framework in this process)."""
    from porting.archs.xception.from_keras import KERAS_MODEL
    from porting.sources.keras.graph import read_file

    nested = read_file(str(user_models["nested"]), KERAS_MODEL)
    assert nested.input_size == SIZE and nested.backbone == "xception"
    head = nested.head
    assert (head.layout, head.pooling, head.features) == ("keras-nested", "avg", 2048)
    assert [(layer.kind, layer.units, layer.activation, layer.rate) for layer in head.layers] == [
        ("dense", 32, "relu", 0.0), ("dropout", 0, "", 0.2), ("dense", 6, "", 0.0)]
    assert head.layers[0].name == "dense" and head.layers[2].name.startswith("dense_")
    assert head.backbone_bn == "inference" and head.backbone_trainable is False and head.num_classes == 6

    flat = read_file(str(user_models["flat"]), KERAS_MODEL).head
    assert flat.layout == "keras-flat" and flat.backbone_bn == "inference" and not flat.backbone_trainable
    assert [layer.kind for layer in flat.layers] == ["dense", "dropout", "dense"]

    seq = read_file(str(user_models["sequential"]), KERAS_MODEL)
    assert seq.input_size == SIZE and seq.head.layout == "keras-sequential" and seq.head.pooling == "max"
    assert seq.head.backbone_bn == "train" and seq.head.backbone_trainable
    assert [(layer.kind, layer.activation, layer.alpha) for layer in seq.head.layers] == [
        ("batchnorm", "", 0.0), ("activation", "leaky_relu", pytest.approx(0.1)), ("dense", "", 0.0)]
    assert seq.head.layers[0].eps == 1e-3 and seq.head.layers[0].momentum == 0.99

    for pooling in ("none", "avg", "max"):
        notop = read_file(str(user_models[f"notop-{pooling}"]), KERAS_MODEL)
        assert notop.input_size == SIZE and notop.head.headless and notop.head.num_classes == 0
        assert notop.head.pooling == pooling and notop.head.layers == ()


def _edited(path, tmp_path, edit) -> str:
    """A copy of a .keras archive whose config.json `edit` changed (what a file from elsewhere may hold)."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    edit(config)
    out = tmp_path / f"edited_{path.name}"
    with zipfile.ZipFile(out, "w") as archive:  # the graph alone: porting must refuse before any weight is read
        archive.writestr("config.json", json.dumps(config))
    return str(out)


def test_a_custom_class_or_a_second_branch_is_refused_from_the_json(user_models, tmp_path):
    from porting.archs.xception.from_keras import KERAS_MODEL
    from porting.errors import PortingError
    from porting.sources.keras.graph import read_file

    def custom(config):
        layer = next(raw for raw in config["config"]["layers"] if raw["class_name"] == "Dropout")
        layer.update(module="my_layers", registered_name="MyDropout")

    with pytest.raises(PortingError, match=r"layer 'dropout\w*' \(Dropout\) is a custom class from module 'my_layers'"):
        read_file(_edited(user_models["flat"], tmp_path, custom), KERAS_MODEL)

    def branch(config):  # a second layer on the pooled vector: a head that is no chain
        layers = config["config"]["layers"]
        dense = next(raw for raw in layers if raw["class_name"] == "Dense")
        layers.append({**json.loads(json.dumps(dense)), "name": "side"})

    with pytest.raises(PortingError, match="the head branches after"):
        read_file(_edited(user_models["flat"], tmp_path, branch), KERAS_MODEL)


# ------------------------------------------------------------------------------------ the user's model, run


def _graph_head(path) -> Head:
    from porting.archs.xception.from_keras import KERAS_MODEL
    from porting.sources.keras.graph import read_file

    return read_file(str(path), KERAS_MODEL).head


@pytest.mark.parametrize("kind,backbone_taps", [
    ("nested", ["block1_conv1", "block2_residual_bn", "block13_residual_bn", "block14_sepconv2_act"]),
    ("flat", ["block2_add", "block14_sepconv2_act"]),
    ("sequential", ["block1_conv1_bn", "block14_sepconv2_act"]),
    ("notop-none", ["block14_sepconv2_act"]),
    ("notop-max", ["block14_sepconv2_act"]),
])
def test_the_worker_runs_the_users_own_model(user_models, kind, backbone_taps):
    """The logits are the user's whole model's, as Keras computes them; the backbone's layers (inside the nested
    model too, by the family's names: its residual layers' automatic names differ by process) and every head layer
    (by its own name) are tapped; the file's size and head come back to the parent."""
    from porting.sources.jobs import run_source

    head = _graph_head(user_models[kind])
    head_taps = [layer.name for layer in head.layers]
    result = run_source(_spec(), weights=str(user_models[kind]), inputs=user_models["x"],
                        taps=backbone_taps + head_taps)
    info = result.info
    keras_y = user_models[f"{kind}.y"]  # a feature map comes back NCHW, as porting compares every 4-D tensor
    np.testing.assert_array_equal(result.outputs["logits"], keras_y.transpose(0, 3, 1, 2) if keras_y.ndim == 4
                                  else keras_y)
    assert info.pretrained_cfg.input_size == SIZE
    assert Head.from_dict(info.head, kind) == head and info.num_classes == head.num_classes
    assert info.order == backbone_taps + head_taps  # the order Keras computes them
    assert result.outputs["block14_sepconv2_act"].shape == (2, 2048, 3, 3)
    for name, layer, width in zip(head_taps, head.layers, head.widths()):  # a dense changes the width
        assert result.outputs[name].shape == (2, layer.units if layer.kind == "dense" else width), name
    if head.layers:  # the last head layer is the output
        np.testing.assert_array_equal(result.outputs[head_taps[-1]], result.outputs["logits"])
    # the tensors: the backbone's by the family's names, the head's by their own
    assert "block2_residual_bn/moving_variance" in result.tensors
    assert {name.split("/")[0] for name in result.tensors if not name.startswith("block")} == {
        layer.name for layer in head.layers if layer.kind in ("dense", "batchnorm")}


@pytest.mark.parametrize("kind,why", [
    ("lambda", r"layer 'lambda' \(Lambda\) is a Lambda in the head \(its Python code is never run\)"),
    ("conv", r"layer 'conv2d\w*' \(Conv2D\) is not a layer porting's heads compute"),
])
def test_an_unsupported_head_fails_in_one_line_and_runs_nothing(user_models, tmp_path, kind, why):
    import re

    out = tmp_path / "m.ckpt"
    line = error_line(porting("port-weights", SPEC, "--weights", user_models[kind], "-o", out))
    assert re.search(why, line), line
    assert f"{kind}.keras" in line and "GlobalAveragePooling2D" in line  # the file, and what porting reads
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert not user_models["marker"].exists()  # the Lambda's code never ran


# ------------------------------------------------------------------------------------ training and the way back


def test_train_step_keeps_a_training_false_backbones_statistics(user_models):
    """keras's own step on the nested model (base.trainable = False, base(inputs, training=False)): only the head
    moves; the backbone's BatchNorm statistics and weights stay as they were."""
    from porting.job import TrainStep
    from porting.sources.jobs import run_source

    step = TrainStep(labels=[1, 4], lr=0.1, optimizer="momentum", momentum=0.9, weight_decay=1e-4,
                     label_smooth_factor=0.1, bn_momentum=0.9)
    result = run_source(_spec(), weights=str(user_models["nested"]), inputs=user_models["x"], train_step=step)
    before, after = result.tensors, result.step
    dense = [layer.name for layer in _graph_head(user_models["nested"]).layers if layer.kind == "dense"]
    for run in ("32", "64"):
        moved = sorted(name for name in before if not np.array_equal(before[name], after[f"after/{run}/{name}"]))
        assert moved == sorted(f"{name}/{var}" for name in dense for var in ("kernel", "bias")), run
    assert not any(key.startswith("count/") for key in after)  # no BatchNorm updated its statistics


CHECK_EXPORT = textwrap.dedent("""
    import os, sys, json
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    model = keras.models.load_model(sys.argv[1])
    x = np.load(sys.argv[2])
    np.save(sys.argv[3], np.asarray(model(x, training=False)))
    print(json.dumps([type(model).__name__] + [[type(layer).__name__, layer.name, layer.trainable]
                                                for layer in model.layers]))
""")


@pytest.mark.parametrize("kind", ["sequential", "notop-avg"])  # nested: through export --to, below
def test_the_users_model_written_back_loads_in_keras_in_its_own_shape(user_models, tmp_path, kind):
    """The worker builds the user's model from its Head, takes its tensors, writes a .keras; keras.models.load_model
    in a fresh process reads the same structure and gives the same outputs."""
    from porting.sources.jobs import run_source

    spec = _spec()
    source = run_source(spec, weights=str(user_models[kind]))
    head = Head.from_dict(source.info.head, kind)
    out = tmp_path / "back.keras"
    back = run_source(spec, untrained=True, head=head, num_classes=head.num_classes or None, assign=source.tensors,
                      save_weights=str(out), inputs=user_models["x"])
    assert back.info.head == source.info.head
    np.testing.assert_array_equal(back.outputs["logits"], user_models[f"{kind}.y"])

    np.save(tmp_path / "x.npy", user_models["x"].transpose(0, 2, 3, 1))
    proc = subprocess.run([sys.executable, "-c", CHECK_EXPORT, str(out), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True,
                          env=_keras_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), user_models[f"{kind}.y"])
    cls, *layers = json.loads(proc.stdout.strip().splitlines()[-1])
    if kind == "sequential":
        assert cls == "Sequential"
        assert [layer[0] for layer in layers] == ["Functional", "GlobalMaxPooling2D", "BatchNormalization",
                                                  "LeakyReLU", "Dense"]
    else:
        assert cls == "Functional" and layers[-1][0] == "GlobalAveragePooling2D" and len(layers) == 133


# ------------------------------------------------------------------------------------ the pipeline, end to end


def _head_rows(report) -> list[str]:
    return [name for name, row in report.layers().items() if row.kind == "head"]


def test_the_guides_model_ports_without_a_flag_and_passes_parity_in_every_runtime(user_models, work):
    """The transfer-learning guide's model (nested, frozen, training=False, 6 logits) at 96 px: port-weights reads
    its head and size from the file; parity (ONNX, OpenVINO) compares every head layer at the file's size."""
    from porting import api

    ported = api.port(SPEC, user_models["nested"], output=work / "nested.ckpt")
    card = ported.card
    assert card.custom_head == _graph_head(user_models["nested"])
    assert card.num_classes == 6 and card.input_size == SIZE and card.mean == [0.5] * 3
    assert ported.params["fc.0.weight"].shape == (32, 2048) and ported.params["fc.2.weight"].shape == (6, 32)

    report = api.parity(SPEC, user_models["nested"], onnx=True, openvino=True)  # no --size: the file's
    assert report.info.size == SIZE
    assert_parity(report, ("mindspore", "onnx", "openvino"))
    assert_openvino(report)
    head = [layer.name for layer in card.custom_head.layers]
    assert _head_rows(report) == head  # every head layer, in order, after the backbone's


def test_on_labelled_photos_the_port_agrees_with_the_users_model_on_every_image(user_models, tiny_data):
    """parity --images on the repository's small class folders (porting's preprocessing at the file's 96 px, fed
    to both): the ported model's top-1 is the Keras model's for every image."""
    from porting import api

    images = sorted((tiny_data / "val").rglob("*.png"))
    report = api.parity(SPEC, user_models["nested"], images=tiny_data / "val", batch=len(images))
    assert_parity(report, ("mindspore",))
    assert report.info.batch == len(images) == 12 and report.info.size == SIZE


@pytest.mark.parametrize("kind", ["flat", "sequential", "notop-none"])
def test_the_flat_sequential_and_headless_models_pass_parity(user_models, kind):
    from porting import api

    report = api.parity(SPEC, user_models[kind])
    if kind == "notop-none":  # a feature extractor: its 3x3 feature map compared, no classes to agree on
        assert report.first_failure() is None and not report.errors and "mindspore" not in report.top1_agree
        output = [row for row in report.rows if row.runtime == "mindspore" and row.layer == "features"]
        assert len(output) == 1 and output[0].shape == [2, 2048, 3, 3] and output[0].ok
    else:
        assert_parity(report, ("mindspore",))
    assert _head_rows(report) == [layer.name for layer in _graph_head(user_models[kind]).layers]
    assert report.info.size == SIZE


def test_map_lists_the_rows_of_a_files_own_head(user_models):
    """`porting map keras:xception --weights FILE`: the head's rows, named by the file's layers, from its graph."""
    from porting import api

    head = _graph_head(user_models["sequential"])
    table = api.weight_map(SPEC, weights=user_models["sequential"])
    assert table.head == head.describe()
    rows = {row.source: row for row in table.rows if row.target.startswith("fc.")}
    bn, dense = head.layers[0].name, head.layers[2].name
    assert set(rows) == {f"{bn}/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance")} | {
        f"{dense}/kernel", f"{dense}/bias"}
    assert rows[f"{dense}/kernel"].target == "fc.2.weight" and rows[f"{dense}/kernel"].target_shape == [5, 2048]


@pytest.mark.parametrize("kind", ["nested", "sequential"])
def test_train_step_parity_on_the_users_model(user_models, kind):
    """One step of keras's own training against finetune's: the nested model's backbone (training=False, frozen)
    keeps its BatchNorm statistics on both sides; the Sequential's head BatchNorm keeps its own momentum."""
    from porting import api

    report = api.train_step_parity(SPEC, user_models[kind])
    assert report.ok, report.first_failure()
    bn = {row.layer: row for row in report.rows if row.kind == "bn-update"}
    if kind == "nested":
        assert len(bn) == 80 and all(row.max_abs == 0 for row in bn.values())  # 40 BNs held, none moved
        assert {row.layer for row in report.rows if row.kind == "update"} == {
            "fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"}
    else:
        assert "fc.0.moving_variance" in bn and len(bn) == 82


def test_a_finetuned_checkpoint_goes_back_to_keras_in_the_users_shape(user_models, work, tiny_data, tmp_path):
    """port -> finetune 1 epoch (3 classes: only the last dense changes) -> export --to keras: the .keras loads with
    keras.models.load_model in a fresh process, nested as the user's, and gives the checkpoint's logits."""
    from porting import archs, checkpoint, msenv
    from porting.runtimes.mindspore_runtime import MindSporeRuntime

    ckpt = work / "nested.ckpt"
    if not ckpt.exists():
        from porting import api

        api.port(SPEC, user_models["nested"], output=ckpt)
    out = tmp_path / "ft"
    run = porting("finetune", ckpt, "--data", tiny_data, "--epochs", "1", "--batch-size", "4", "--workers", "1",
                  "--max-steps", "1", "--pynative", "-o", out)
    assert run.code == 0, run.stderr
    trained = sorted(out.glob("*.ckpt"))[-1]
    back = tmp_path / "back.keras"
    run = porting("export", trained, "--to", "keras", "-o", back)
    assert run.code == 0, run.stderr

    x = user_models["x"]
    np.save(tmp_path / "x.npy", x.transpose(0, 2, 3, 1))
    proc = subprocess.run([sys.executable, "-c", CHECK_EXPORT, str(back), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True, env=_keras_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    cls, *layers = json.loads(proc.stdout.strip().splitlines()[-1])
    assert cls == "Functional" and [layer[0] for layer in layers] == [
        "InputLayer", "Functional", "GlobalAveragePooling2D", "Dense", "Dropout", "Dense"]
    assert layers[1][2] is False  # the backbone stays frozen, as the user froze it

    params, card = checkpoint.load(trained)
    assert card.num_classes == 3 and card.custom_head.layers[2].units == 3
    msenv.setup()
    net = archs.build(card.arch, card.arch_config, card.num_classes, card.custom_head, card.head)
    checkpoint.load_params(net, params, str(trained), train_state_ok=True)
    with MindSporeRuntime(net) as runtime:
        ours = runtime.infer(x)["logits"]
    theirs = np.load(tmp_path / "y.npy")
    assert theirs.shape == (2, 3)
    assert np.abs(theirs - ours).max() <= 1e-4 * max(1.0, np.abs(theirs).max())  # parity's tolerance
