"""The deployment workflow (issue 11): timm's tagged names, evaluating the deployed files in both dataset layouts,
export options, int8, parity on the user's images and the image pipelines against the source libraries'."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import error_line, porting

from porting import api, checkpoint
from porting.errors import PortingError
from porting.results import EvalResult
from porting.specs import resolve

XCEPTION = "timm:legacy_xception"
FP16_RTOL = 2e-2  # README "Exports": float16 logits within 2e-2 x max(1, max |fp32 logits|)
INT8_TOP1_FLOOR = 0.8  # README "int8": top-1 agreement with float32 on the held-out images of this test


@pytest.fixture(scope="module")
def trained(work, tiny_data) -> Path:
    """A 3-class Xception fine-tuned on the tiny colour dataset: decisive logits for the int8 comparison."""
    ported = work / "x3.ckpt"
    api.port(XCEPTION, seed=0, num_classes=3, output=ported)  # in this process: its command is tested elsewhere
    run = porting("finetune", ported, "--data", tiny_data, "--epochs", "3", "--image-size", "64", "--batch-size", "4",
                  "--lr-max", "0.01", "--workers", "2", "-o", work / "ft")
    assert run.code == 0, run.stderr
    return work / "ft" / "xception-3_6.ckpt"


@pytest.fixture(scope="module")
def flat_data(work, tiny_data) -> Path:
    """The deployment guide's layout: DATA/val/*.JPEG and DATA/val_label.txt ('FILENAME LABEL')."""
    from PIL import Image

    root = work / "flat"
    (root / "val").mkdir(parents=True)
    lines = []
    for label, name in enumerate(sorted(p.name for p in (tiny_data / "val").iterdir())):
        for i, src in enumerate(sorted((tiny_data / "val" / name).iterdir())):
            target = f"ILSVRC2012_val_{label * 10 + i:08d}.JPEG"
            Image.open(src).convert("RGB").save(root / "val" / target, format="JPEG", quality=95)
            lines.append(f"{target} {label}")
    (root / "val_label.txt").write_text("\n".join(lines) + "\n")
    return root


# --------------------------------------------------------------------------------------------- timm's names

def test_timm_tags_and_hub_names_resolve():
    tagged = resolve("timm:xception65.tf_in1k")
    assert (tagged.name, tagged.tag, tagged.source_name, tagged.id) == (
        "xception65", "tf_in1k", "xception65.tf_in1k", "timm:xception65.tf_in1k")
    assert resolve("timm:xception.tf_in1k").source_name == "legacy_xception.tf_in1k"  # alias + tag
    hub = resolve("hf-hub:timm/xception41.tf_in1k")
    assert (hub.name, hub.tag, hub.hub) == ("xception41", "tf_in1k", "timm/xception41.tf_in1k")
    assert resolve("timm:seresnext50_32x4d.gluon_in1k").tag == ""  # the registered gluon spec itself
    assert "timm's own Hub repos" in error_line(porting("port-weights", "hf-hub:someone/net", "--random-init", "0"))


def test_a_tag_picks_the_recorded_preprocessing(source_weights, tmp_path):
    """The tag's own preprocessing is recorded even for a local file: tf_in1k's crop 0.903, not ra3's 0.94."""
    weights = source_weights("timm:xception65", ".pth")
    api.port("timm:xception65.tf_in1k", weights, output=tmp_path / "tf.ckpt")
    _, meta = checkpoint.load(tmp_path / "tf.ckpt")
    assert meta.crop_pct == 0.903 and meta.pretrained_tag == "tf_in1k"
    assert meta.source == "timm:xception65.tf_in1k" and meta.resize_backend == "pil"
    said = []
    api.port("timm:xception65", weights, output=tmp_path / "default.ckpt", log=said.append)
    assert any("default tag xception65.ra3_in1k" in line for line in said), said
    assert checkpoint.load(tmp_path / "default.ckpt")[1].crop_pct == 0.94
    with pytest.raises(PortingError, match="bogus") as refused:
        api.port("timm:xception65.bogus", weights, output=tmp_path / "b.ckpt")
    assert "xception65.tf_in1k" in str(refused.value) and not (tmp_path / "b.ckpt").exists()
    # racm_in1k is evaluated at 288 with crop 0.95, trained at 224: both are recorded, eval uses the test size
    api.port("timm:seresnext50_32x4d.racm_in1k", seed=0, output=tmp_path / "r.ckpt")
    meta = checkpoint.load(tmp_path / "r.ckpt")[1]
    assert (meta.input_size, meta.test_input_size, meta.test_crop_pct) == (224, 288, 0.95)
    from porting.images.preprocessing import preprocessing

    assert (preprocessing(meta).size, preprocessing(meta).resize) == (288, 303)
    assert (preprocessing(meta, size=224).size, preprocessing(meta, size=224).resize) == (224, 256)


# --------------------------------------------------------------------------------------------- evaluating files

def test_ckpt_onnx_and_mindir_evaluate_alike_in_both_layouts(trained, tiny_data, flat_data, work):
    """Same top-1/top-5 from the .ckpt, the .onnx (onnxruntime) and the .mindir: in the deployment guide's flat
    layout with its resize 342 -> crop 299, and in the ImageFolder layout (at 128 px: the MINDIR's size is fixed
    at 299, so there the .ckpt and the dynamic-size .onnx, in onnxruntime and in OpenVINO); the per-image
    results file."""
    onnx_file, mindir = work / "x.onnx", work / "x.mindir"
    api.export(trained, onnx_file, dynamic_size=True)
    assert porting("export", trained, "--format", "mindir", "--size", "299", "--batch", "4", "-o", mindir).code == 0
    results = {}
    for layout, data, models, (resize, size) in (("flat", flat_data, (trained, onnx_file, mindir), (342, 299)),
                                                 ("folders", tiny_data, (trained, onnx_file), (146, 128))):
        for model in models:
            out = work / f"{model.suffix[1:]}-{layout}.txt"
            # through the API, in this process (the command's JSON line: OpenVINO's eval below)
            messages = []
            results[model.suffix, layout] = api.evaluate(model, data, resize=resize, size=size, results=out,
                                                         log=messages.append)
            said = "\n".join(messages)
            assert f"resize {resize} (bicubic, pil) -> center crop {size}" in said
            lines = out.read_text().splitlines()
            assert len(lines) == 12 * 3 and ": Relay top-0 id: " in lines[0] and ", class name: " in lines[0]
    # the same .onnx in OpenVINO at f32, through the command; the precision it ran at is said
    run = porting("eval", onnx_file, "--data", tiny_data, "--resize", 146, "--size", 128, "--json",
                  "--runtime", "openvino", "--precision", "f32", "--results", work / "openvino-folders.txt")
    assert run.code == 0, run.stderr
    assert "ONNX (OpenVINO CPU, f32)" in run.stderr and "resize 146 (bicubic, pil) -> center crop 128" in run.stderr

    def ranked(path):  # 'IMAGE: Relay top-K id: N' of every line: the same classes in the same order
        return [line.split(", prob: ")[0] for line in path.read_text().splitlines()]
    assert ranked(work / "openvino-folders.txt") == ranked(work / "onnx-folders.txt")
    line = json.loads(run.stdout.splitlines()[-1])  # eval --json: the model zoo's keys, and what ran
    results["openvino", "folders"] = EvalResult(line["Loss"], line["Top_1_Acc"], line["Top_5_Acc"], line["runtime"],
                                                line["precision"], line["samples"])
    assert (results["openvino", "folders"].runtime, results["openvino", "folders"].precision) == ("openvino", "f32")
    assert len(results) == 6
    for (suffix, layout), r in results.items():  # the flat layout's files are JPEG re-encodings: compared within it
        ref = results[".ckpt", layout]
        assert r.samples == 12, (suffix, layout)
        assert (r.top1, r.top5) == (ref.top1, ref.top5), (suffix, layout)
        assert r.loss == pytest.approx(ref.loss, abs=1e-4), (suffix, layout)


def test_one_file_in_several_runtimes(trained, tiny_data, work):
    """eval and predict take a list of runtimes: the same .onnx in onnxruntime and OpenVINO at f32, one result
    per runtime, named, with the same accuracy and the same top classes; `runtime=` keeps its single result."""
    onnx_file = work / "several.onnx"
    api.export(trained, onnx_file, dynamic_size=True)
    results = api.evaluate(onnx_file, tiny_data, size=64, runtimes="ort,openvino")
    assert [(r.runtime, r.precision, r.samples) for r in results] == [("ort", "f32", 12), ("openvino", "f32", 12)]
    assert results[0].top1 == results[1].top1 and results[0].top5 == results[1].top5
    assert results[0].loss == pytest.approx(results[1].loss, abs=1e-4)
    single = api.evaluate(onnx_file, tiny_data, size=64, runtime="openvino")
    assert single.runtime == "openvino" and single.loss == pytest.approx(results[1].loss, abs=1e-6)
    # in batches of 5 (5, 5 and 2 of the 12 images), each runtime folds its own scores: those of it alone
    batched = api.evaluate(onnx_file, tiny_data, size=64, batch_size=5, runtimes="ort,openvino")
    assert batched == [api.evaluate(onnx_file, tiny_data, size=64, batch_size=5, runtime=name)
                       for name in ("ort", "openvino")]
    image = tiny_data / "val" / "stripes" / "0.png"
    top = api.predict(onnx_file, [image], topk=3, runtimes=["onnx", "openvino"])
    assert [(t.image, t.runtime) for t in top] == [(str(image), "ort"), (str(image), "openvino")]
    assert [c.index for c in top[0].top] == [c.index for c in top[1].top]


TIMM_TOP1 = """import json, sys
import numpy as np, timm, torch
model = timm.create_model("local-dir:" + sys.argv[1], pretrained=True).eval()
with torch.no_grad():
    top1 = model(torch.from_numpy(np.load(sys.argv[2]))).argmax(1).tolist()
print(json.dumps({"labels": model.pretrained_cfg.get("label_names"), "top1": top1}))
"""


def test_a_finetuned_checkpoint_goes_back_to_timm_with_its_class_names(trained, tiny_data, tmp_path):
    """export --to timm: a folder that timm.create_model("local-dir:...") loads in a fresh process, with the
    class names, giving the top-1 porting eval gives on the same preprocessed images."""
    report, fit, spec = api.export_to(trained, tmp_path / "x3", "timm", size=64, batch=1)  # as it was trained
    assert spec.id == XCEPTION and fit.exact and report.ok, report.first_failure()
    card = checkpoint.load(trained)[1]
    from porting.images.folders import list_images
    from porting.images.pipelines import load_image
    from porting.images.preprocessing import preprocessing

    pre = preprocessing(card, size=64)
    images = list_images(tiny_data / "val")
    np.save(tmp_path / "x.npy", np.stack([load_image(p, pre) for p in images]))
    proc = subprocess.run([sys.executable, "-c", TIMM_TOP1, str(tmp_path / "x3"), str(tmp_path / "x.npy")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    timm_says = json.loads(proc.stdout.splitlines()[-1])
    assert timm_says["labels"] == card.class_names == ["circle", "square", "stripes"]
    result = api.evaluate(trained, tiny_data, size=64, dump_logits=tmp_path / "l.npz")
    with np.load(tmp_path / "l.npz") as dumped:
        ours, labels = dumped["logits"].argmax(1), dumped["labels"]
    assert timm_says["top1"] == ours.tolist() and len(ours) == len(images) == 12
    assert result.top1 == pytest.approx(np.mean(np.array(timm_says["top1"]) == labels))


def test_predict_names_classes_from_the_guides_label_file(trained, tiny_data, work):
    onnx_file = work / "x64.onnx"
    api.export(trained, onnx_file)
    labels = work / "label.txt"
    labels.write_text("circle, a round thing\nsquare, a box\nstripes, lines\n")
    run = porting("predict", onnx_file, tiny_data / "val" / "square" / "0.png", "--labels", labels, "--json")
    assert run.code == 0, run.stderr
    top = json.loads(run.stdout)[0]["top"]
    assert top[0]["class"] == "square, a box" and {t["class"] for t in top} == {
        "circle, a round thing", "square, a box", "stripes, lines"}


def test_predict_runs_many_images_a_batch_at_a_time(trained, tiny_data, work, monkeypatch):
    """predict on more images than a batch: the model sees at most PREDICT_BATCH of them at once (their
    activations, not their number, set the memory), and every image gets its answer, in order."""
    from porting.deploy import artifacts, evaluate

    onnx_file = work / "x64.onnx"
    if not onnx_file.exists():
        api.export(trained, onnx_file)
    seen = []
    call = artifacts.Artifact.__call__

    def counted(self, x):
        seen.append(len(x))
        return call(self, x)

    monkeypatch.setattr(artifacts.Artifact, "__call__", counted)
    images = sorted((tiny_data / "train").rglob("*.png")) * 2  # 48
    results = api.predict(onnx_file, images, topk=1)
    assert seen == [evaluate.PREDICT_BATCH, 48 - evaluate.PREDICT_BATCH]
    assert [r.image for r in results] == [str(p) for p in images]
    assert [r.top[0].name for r in results[:24]] == [r.top[0].name for r in results[24:]]


def test_flat_layout_mistakes_are_refused(trained, flat_data, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(flat_data, data)
    label_file = data / "val_label.txt"
    lines = label_file.read_text().splitlines()
    label_file.write_text("\n".join(lines[:-1] + [lines[-1].rsplit(" ", 1)[0] + " 7"]) + "\n")
    assert "outside the model's 3 classes" in error_line(porting("eval", trained, "--data", data))
    label_file.write_text("\n".join(lines[1:]) + "\n")
    assert "have no line in" in error_line(porting("eval", trained, "--data", data))
    label_file.write_text("\n".join(lines + ["ILSVRC2012_val_99999999.JPEG 1"]) + "\n")
    assert "does not hold" in error_line(porting("eval", trained, "--data", data))
    label_file.unlink()
    assert "--label-file" in error_line(porting("eval", trained, "--data", data))


# --------------------------------------------------------------------------------------------- int8

def test_quantize_gives_an_int8_onnx_that_agrees(trained, tiny_data, work):
    onnx_file, int8 = work / "q.onnx", work / "q.int8.onnx"
    api.export(trained, onnx_file)
    run = porting("quantize", onnx_file, "--calib", tiny_data / "train", "--images", "9", "--holdout", "15",
                  "-o", int8, "--json")
    assert run.code == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["calibration_images"] == 9 and report["classes_covered"] == 3 and report["held_out"] == 15
    assert report["top1_agreement"] >= INT8_TOP1_FLOOR, report
    assert report["size_mib"]["int8"] < report["size_mib"]["float32"] / 3
    assert {"float32", "int8", "top5_overlap", "max_logit_error"} <= set(report)
    import onnx

    model = onnx.load(str(int8))
    assert any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    props = {p.key: json.loads(p.value) if p.key == "export" else p.value for p in model.metadata_props}
    assert props["export"]["precision"] == "int8" and props["arch"] == "xception"
    run = porting("eval", int8, "--data", tiny_data, "--json")  # the int8 file is a deployable artifact too
    assert run.code == 0, run.stderr


def test_quantize_uses_a_small_folder_whole_unless_a_count_is_asked(trained, tiny_data, work, tmp_path):
    """The default of 1000 calibration images is a wish: a folder of 24 is used whole, and said so; only an
    explicit --images above what the folder holds is an error."""
    onnx_file, int8 = work / "q.onnx", tmp_path / "q.int8.onnx"
    if not onnx_file.exists():
        api.export(trained, onnx_file)
    run = porting("quantize", onnx_file, "--calib", tiny_data / "train", "--holdout", "0", "-o", int8, "--json")
    assert run.code == 0, run.stderr
    assert "holds 24 images, fewer than the default 1000" in run.stderr
    assert json.loads(run.stdout)["calibration_images"] == 24
    int8.unlink()
    line = error_line(porting("quantize", onnx_file, "--calib", tiny_data / "train", "--images", "1000", "-o", int8))
    assert "--images 1000" in line and "holds 24 images" in line and not int8.exists()


def test_quantize_at_the_files_own_size_on_any_class_folders_keeping_its_holdout(trained, tiny_data, tmp_path):
    """An ONNX exported at another size than the checkpoint's (trained at 64, exported at 96) is calibrated, compared
    and evaluated at its own; class folders that are not the model's classes calibrate unlabelled (calibration needs
    no labels); --holdout without --images keeps that many images out; sizes in MiB."""
    onnx_file, int8 = tmp_path / "q96.onnx", tmp_path / "q96.int8.onnx"
    api.export(trained, onnx_file, size=96)
    calib = tmp_path / "calib"
    for i, folder in enumerate(sorted((tiny_data / "train").iterdir())):
        shutil.copytree(folder, calib / f"kind{i}")
    run = porting("quantize", onnx_file, "--calib", calib, "--holdout", "6", "-o", int8, "--json")
    assert run.code == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["calibration_images"], report["held_out"], report["input_size"]) == (18, 6, 96), report
    assert report["classes_covered"] == 3 and "float32" not in report, report  # unlabelled: no accuracies
    assert "not named as the checkpoint's 3 classes" in run.stderr and " MiB, from " in run.stderr
    assert api.evaluate(onnx_file, tiny_data).samples == 12  # eval feeds it at 96 too


def test_quantize_calibrates_one_batch_at_a_time(trained, tiny_data, work, tmp_path, monkeypatch):
    """Calibration memory does not grow with --images: onnxruntime's histogram calibrators (percentile, entropy)
    would keep every activation of every calibration image until the last (9.3 GB for 32 images at 299 px,
    measured); porting hands them one batch at a time, and each is folded into the histograms before the next."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    onnx_file = work / "q.onnx"
    if not onnx_file.exists():
        api.export(trained, onnx_file)
    batches_at_once = []
    collect = HistogramCollector.collect

    def counted(self, name_to_arr):
        batches_at_once.append(max(len(v) for v in name_to_arr.values()))
        return collect(self, name_to_arr)

    monkeypatch.setattr(HistogramCollector, "collect", counted)
    report = api.quantize(onnx_file, tiny_data / "train", tmp_path / "q.int8.onnx", images=24, holdout=4,
                          method="percentile")
    assert report.calibration_images == 24 and batches_at_once == [1, 1, 1]  # 24 images, batches of 8
    assert report.top1_agreement >= INT8_TOP1_FLOOR, report


# --------------------------------------------------------------------------------------------- export options

@pytest.fixture(scope="module")
def ported_nets(work):
    paths = {}
    for spec in (XCEPTION, "timm:seresnext50_32x4d"):
        paths[spec] = work / f"{spec.split(':')[1]}.ckpt"
        api.port(spec, seed=0, output=paths[spec])
    return paths


@pytest.mark.parametrize("spec,options,sizes", [
    (XCEPTION, {"opset": 13}, [299]),
    (XCEPTION, {"opset": 21}, [299]),
    (XCEPTION, {"batch": 4}, [299]),
    (XCEPTION, {"dynamic_size": True}, [299, 331]),
    ("timm:seresnext50_32x4d", {"dynamic_size": True}, [224, 288]),
    (XCEPTION, {"float16": True}, [299]),
    ("timm:seresnext50_32x4d", {"float16": True, "fold_bn": True}, [224]),
    (XCEPTION, {"fold_bn": True, "opset": 21}, [299]),
])
def test_onnx_export_options_match_the_checkpoint(ported_nets, tmp_path, spec, options, sizes):
    import mindspore as ms
    import onnx
    import onnxruntime as ort

    from porting import msenv
    from porting.compare import compare_tensor
    from porting.converters.export import OnnxOptions, export_onnx
    from porting.sources.inputs import make_images

    msenv.setup("CPU")
    net, meta = checkpoint.load_model(ported_nets[spec])
    opts = OnnxOptions(**options)
    path = tmp_path / "options.onnx"
    export_onnx(net, meta, path, sizes[0], options=opts)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == opts.opset and model.producer_version
    props = {p.key: p.value for p in model.metadata_props}
    assert len(json.loads(props["class_names"])) == 1000 and json.loads(props["export"])["opset"] == opts.opset
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [opts.batch or "batch", 3, *(["height", "width"] if opts.dynamic_size else [sizes[0]] * 2)]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for size in sizes:
        x = make_images(3, opts.batch or 2, size, meta.mean, meta.std)
        ref = net(ms.Tensor(x)).asnumpy()
        got = session.run(None, {"input": x})[0]
        assert got.dtype == np.float32
        if opts.float16:
            assert np.abs(got - ref).max() <= FP16_RTOL * max(1.0, float(np.abs(ref).max())), (size, options)
        else:
            row = compare_tensor("logits", "onnx", ref, got)
            assert row.ok, (size, options, row)
        assert (got.argmax(1) == ref.argmax(1)).all(), (size, options)


# --------------------------------------------------------------------------------------------- parity

@pytest.fixture(scope="module")
def photos(work) -> Path:
    """Two photo-like images, odd and rotated sizes, JPEG and PNG."""
    from PIL import Image

    folder = work / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:375, 0:500]
    img = np.stack([128 + 100 * np.sin(xx / 37.0 + c) * np.cos(yy / 23.0 - c) for c in range(3)], -1)
    img = Image.fromarray((img + rng.normal(0, 12, img.shape)).clip(0, 255).astype(np.uint8))
    img.save(folder / "a.jpg", quality=92)
    img.rotate(90, expand=True).save(folder / "b.png")
    return folder


def test_parity_on_the_users_images_prints_a_summary(photos, tmp_path):
    run = porting("parity", XCEPTION, "--random-init", "0", "--images", photos, "--size", "160", "--rtol", "2e-4",
                  "--report", tmp_path / "r.json")
    assert run.code == 0, run.stderr
    assert "2 image file(s)" in run.stdout and "<= 0.0002 x max(1, max |ref|)" in run.stdout
    assert "layers + logits" in run.stdout and "PASS" in run.stdout
    assert "layer (source)" not in run.stdout  # the per-layer table only with --full
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rtol"] == 2e-4 and report["info"]["inputs"] == "2 image file(s)"
    full = porting("parity", XCEPTION, "--random-init", "0", "--batch", "1", "--size", "96", "--full")
    assert full.code == 0 and "layer (source)" in full.stdout and "block12.rep.4" in full.stdout


@pytest.mark.parametrize("spec,same", [(XCEPTION, True), ("paddleclas:Xception41", True), ("keras:xception", False)])
def test_image_pipelines_against_the_source_libraries(photos, spec, same, tmp_path):
    """timm (create_transform, PIL) and PaddleClas (deploy operators, cv2) are reproduced bit for bit; Keras's
    own recipe squeezes the whole image without a crop, which porting does not copy (README: Preprocessing)."""
    run = porting("parity", spec, "--check-preprocessing", "--images", photos, "--report", tmp_path / "p.json")
    assert run.code == 0, run.stderr
    result = json.loads((tmp_path / "p.json").read_text())
    assert len(result["images"]) == 2
    if same:
        # the same pixels; PaddleClas normalises (x / 255 - mean) / std, MindSpore (x - 255 mean) / (255 std)
        assert result["max_abs"] < 1e-6 and "IDENTICAL" in run.stdout
    else:
        assert result["mean_abs"] > 0.1 and "DIFFERENT" in run.stdout and "no crop" in result["theirs"]


def test_the_python_api_does_what_the_commands_do(trained, tiny_data, work):
    """The README's Python API example, in this process (no framework is loaded by `import porting`)."""
    import importlib.util

    import porting

    # a function named like a submodule would be shadowed by it once imported (porting.bench is one)
    assert not [name for name in porting.__all__ if importlib.util.find_spec(f"porting.{name}")]

    path, shape = porting.export(trained, work / "api.onnx", dynamic_size=True)
    assert path.is_file() and shape == ["batch", 3, "height", "width"]
    result = porting.evaluate(path, tiny_data, size=64)
    from_ckpt = porting.evaluate(trained, tiny_data, size=64)  # same accuracies from the checkpoint
    assert result.samples == 12 and result == replace(from_ckpt, loss=result.loss, runtime="ort")
    assert from_ckpt.runtime == "mindspore"
    top = porting.predict(path, [tiny_data / "val" / "circle" / "0.png"], topk=2)[0].top
    assert len(top) == 2 and top[0].probability >= top[1].probability
    net, metadata = porting.load(trained)
    assert metadata.class_names == ["circle", "square", "stripes"] and net.fc.weight.shape == (3, 2048)
    ported = porting.port(XCEPTION, seed=0, output=work / "api.ckpt")
    assert ported.card.weights == "random-init:0" and (work / "api.ckpt").is_file()
    report = porting.parity(XCEPTION, seed=0, batch=1, size=96)
    assert report.ok and report.rows and report.layers()["block5.rep.1"].target == "features.block5.rep.sep1"
    assert XCEPTION in {s.id for s in porting.models()} | {f"timm:{a}" for s in porting.models() for a in s.aliases}
    rows = {r.source: r for r in porting.weight_map(XCEPTION).rows}
    assert rows["block1.rep.0.conv1.weight"].target == "features.block1.rep.sep1.depthwise.weight"
    with pytest.raises(porting.errors.PortingError, match="unknown format"):
        porting.export(trained, work / "x.tflite", "tflite")
