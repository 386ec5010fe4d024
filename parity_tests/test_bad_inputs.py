"""Bad input, faults and interruptions (issue 8): every failure is one `error:` line naming the culprit, exit 2
(130 on Ctrl-C), no traceback, nothing at the output path, no temporaries beside it or in TMPDIR, and no
process left behind. Each command runs the real CLI in a fresh process with a private TMPDIR and a tag in its
environment, by which the test finds any process (worker, guardian) that outlived it.
"""
from __future__ import annotations

import json
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from porting import api
from porting.errors import PortingError

TAG = "PORTING_TEST_TAG"
XCEPTION = "timm:legacy_xception"


# --------------------------------------------------------------------------------------------- harness

@dataclass
class Guarded:
    code: int
    stdout: str
    stderr: str
    tag: str
    tmpdir: Path


def _env(tmp_path: Path, extra: dict | None = None) -> tuple[dict, str, Path]:
    tmpdir = tmp_path / f"tmpdir-{uuid.uuid4().hex[:8]}"
    tmpdir.mkdir()
    tag = uuid.uuid4().hex
    return {**os.environ, "COLUMNS": "200", "TMPDIR": str(tmpdir), TAG: tag, **(extra or {})}, tag, tmpdir


def cli(tmp_path: Path, *args, env: dict | None = None, cwd: Path | None = None, preexec=None) -> Guarded:
    full_env, tag, tmpdir = _env(tmp_path, env)
    proc = subprocess.run([sys.executable, "-m", "porting", *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, preexec_fn=preexec, timeout=900)
    return Guarded(proc.returncode, proc.stdout, proc.stderr, tag, tmpdir)


def tagged(tag: str) -> list[int]:
    """Live processes whose environment carries the tag (workers, the guardian, the CLI itself)."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def assert_nothing_left(run: Guarded, outputs=()) -> None:
    deadline = time.time() + 20  # the guardian may still be removing what a killed run left
    while tagged(run.tag) and time.time() < deadline:
        time.sleep(0.1)
    assert not tagged(run.tag), f"processes outlived the command: {tagged(run.tag)}"
    assert os.listdir(run.tmpdir) == [], f"left in TMPDIR: {os.listdir(run.tmpdir)}"
    for out in map(Path, outputs):
        assert not out.exists(), f"{out} was written"
        folder = next(p for p in (out.parent, *out.parent.parents) if p.is_dir())  # where temporaries would go
        stray = [p.name for p in folder.iterdir() if "porting" in p.name or p.name.endswith((".tmp", ".partial"))]
        assert not stray, f"temporaries left in {folder}: {stray}"


def assert_refused(run: Guarded, culprit: str, outputs=(), code: int = 2) -> str:
    """Exit code, exactly one `error:` line naming the culprit, no traceback, nothing written or left behind."""
    assert run.code == code, (run.code, run.stderr[-3000:])
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, run.stderr[-3000:]
    assert culprit.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in run.stderr + run.stdout, run.stderr[-3000:]
    assert_nothing_left(run, outputs)
    return lines[0]


# --------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def ported(work, source_weights) -> Path:
    """A ported 1000-class legacy Xception."""
    path = work / "x.ckpt"
    api.port(XCEPTION, source_weights(XCEPTION, ".pth"), output=path)  # the files under test; made in this process
    return path


@pytest.fixture(scope="module")
def ported3(work) -> Path:
    path = work / "x3.ckpt"
    api.port(XCEPTION, seed=1, num_classes=3, output=path)
    return path


@pytest.fixture(scope="module")
def data(work) -> Path:
    """DATA/{train,val}/<3 classes>/*.png, 72 px."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for c, name in enumerate(("circle", "square", "stripes")):
            folder = work / "data" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                img = rng.uniform(0, 60, size=(72, 72, 3))
                img[..., c] += 150
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return work / "data"


def _jpeg(path: Path, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (80, 80, 3)).astype(np.uint8)).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def broken_data(work, data) -> Path:
    """The same dataset with one truncated JPEG in train/ and in val/."""
    root = work / "broken"
    shutil.copytree(data, root)
    for split in ("train", "val"):
        good = _jpeg(root / split / "square" / "photo.jpg")
        good.write_bytes(good.read_bytes()[:300])
    return root


class Evil:
    """Unpickling this runs a shell command: what a malicious weights file does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def bad_weights(work, source_weights) -> dict[str, tuple[str, Path]]:
    """name -> (spec, file): broken, malicious, mismatched and non-finite weights in every source format."""
    import h5py
    import torch

    out = work / "weights"
    out.mkdir()
    pth = source_weights(XCEPTION, ".pth")
    st = source_weights(XCEPTION, ".safetensors")
    h5 = source_weights("keras:xception", ".weights.h5")
    pdparams = source_weights("paddleclas:Xception41", ".pdparams")
    files: dict[str, tuple[str, Path]] = {}

    def add(name: str, spec: str, data: bytes | None = None, src: Path | None = None) -> Path:
        path = out / name
        if data is not None:
            path.write_bytes(data)
        elif src is not None:
            shutil.copy(src, path)
        files[name] = (spec, path)
        return path

    rng = np.random.default_rng(0)
    add("truncated.pth", XCEPTION, pth.read_bytes()[:4096])
    add("random.pth", XCEPTION, rng.bytes(50_000))
    add("empty.pth", XCEPTION, b"")
    add("truncated.safetensors", XCEPTION, st.read_bytes()[:4096])
    add("random.safetensors", XCEPTION, rng.bytes(50_000))
    add("truncated.weights.h5", "keras:xception", h5.read_bytes()[:4096])
    add("random.h5", "keras:xception", rng.bytes(50_000))
    add("random.keras", "keras:xception", rng.bytes(50_000))
    add("truncated.pdparams", "paddleclas:Xception41", pdparams.read_bytes()[:4096])
    add("random.pdparams", "paddleclas:Xception41", rng.bytes(50_000))
    with open(add("evil.pth", XCEPTION), "wb") as f:
        pickle.dump({"conv1.weight": Evil(work / "pwned-pth")}, f)
    with open(add("evil.pdparams", "paddleclas:Xception41"), "wb") as f:
        pickle.dump({"conv1.weight": Evil(work / "pwned-pdparams")}, f, protocol=2)

    state = torch.load(pth, weights_only=True)
    wrong = dict(state, **{"block2.rep.1.pointwise.weight": torch.zeros(128, 128, 1, 1)})
    torch.save(wrong, add("wrong_shape.pth", XCEPTION))
    nan = dict(state)
    nan["block4.rep.1.conv1.weight"] = state["block4.rep.1.conv1.weight"].clone()
    nan["block4.rep.1.conv1.weight"].view(-1)[:3] = float("nan")
    torch.save(nan, add("nan.pth", XCEPTION))
    add("x41_for_x65.pth", "timm:xception65", src=source_weights("timm:xception41", ".pth"))
    add("seresnext_for_xception.pth", XCEPTION, src=source_weights("timm:seresnext50_32x4d", ".pth"))
    add("x41_for_x65.pdparams", "paddleclas:Xception65", src=pdparams)

    with open(pdparams, "rb") as f:
        paddle_state = pickle.load(f)
    key = next(k for k, v in paddle_state.items() if getattr(v, "ndim", 0) == 4)
    paddle_state[key] = paddle_state[key].copy()
    paddle_state[key].reshape(-1)[:2] = np.inf
    with open(add("inf.pdparams", "paddleclas:Xception41"), "wb") as f:
        pickle.dump(paddle_state, f, protocol=2)

    keras_nan = add("nan.weights.h5", "keras:xception", src=h5)
    with h5py.File(keras_nan, "r+") as f:
        kernels = []
        f.visititems(lambda name, obj: kernels.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 4 else None)
        values = f[kernels[3]][...]
        values.reshape(-1)[0] = np.nan
        f[kernels[3]][...] = values
    return files


# --------------------------------------------------------------------------------------------- 1. weights files

@pytest.mark.parametrize("name,culprit", [
    ("truncated.pth", "truncated.pth"), ("random.pth", "random.pth"), ("empty.pth", "empty.pth"),
    ("truncated.safetensors", "truncated.safetensors"), ("random.safetensors", "random.safetensors"),
    ("truncated.weights.h5", "truncated.weights.h5"), ("random.h5", "random.h5"), ("random.keras", "random.keras"),
    ("truncated.pdparams", "truncated.pdparams"), ("random.pdparams", "random.pdparams"),
    ("evil.pth", "evil.pth"), ("evil.pdparams", "evil.pdparams"),
    # the wrong model or one tensor of the wrong shape: names the file, the model and the counts/shapes
    ("x41_for_x65.pth", "does not fit timm xception65"), ("seresnext_for_xception.pth", "does not fit timm legacy_xception"),
    ("wrong_shape.pth", "block2.rep.1.pointwise.weight [128, 128, 1, 1] != [256, 128, 1, 1]"),
    ("x41_for_x65.pdparams", "does not fit PaddleClas Xception65"),
    # non-finite source weights: refused by default, naming the tensor and the count
    ("nan.pth", "'block4.rep.1.conv1.weight' [728, 1, 3, 3] has 3 non-finite"),
    ("inf.pdparams", "has 2 non-finite"), ("nan.weights.h5", "has 1 non-finite"),
])
def test_bad_weights_file(bad_weights, work, tmp_path, name, culprit):
    """Through the command for one file per format and for the malicious and non-finite ones (exit 2, one line,
    nothing left, as every refusal: the boundary is the same for all); the rest through the API, in this
    process's kept source workers, which raise the same one-line PortingError."""
    spec, path = bad_weights[name]
    out = tmp_path / "out" / "x.ckpt"
    if name in CLI_CASES:
        line = assert_refused(cli(tmp_path, "port-weights", spec, "--weights", path, "-o", out), culprit, [out])
    else:
        with pytest.raises(PortingError) as refused:
            api.port(spec, path, output=out)
        line = str(refused.value)
        assert "\n" not in line and culprit.lower() in line.lower(), line
        assert not out.parent.exists() or not list(out.parent.iterdir())
    assert path.name in line
    assert not list(work.glob("pwned-*")), "a malicious pickle ran code"


CLI_CASES = {"truncated.pth", "random.safetensors", "truncated.weights.h5", "random.pdparams", "evil.pth",
             "evil.pdparams", "wrong_shape.pth", "nan.pth"}


def test_nonfinite_weights_port_only_when_allowed(bad_weights, tmp_path):
    from porting import checkpoint

    out = tmp_path / "nan.ckpt"
    run = cli(tmp_path, "port-weights", XCEPTION, "--weights", bad_weights["nan.pth"][1], "--allow-nonfinite", "-o", out)
    assert run.code == 0, run.stderr
    params, meta = checkpoint.load(out)
    assert meta.nonfinite_values == {"block4.rep.1.conv1.weight": 3}
    assert int(np.isnan(params["features.block4.rep.sep1.depthwise.weight"]).sum()) == 3
    assert_nothing_left(run)


# --------------------------------------------------------------------------------------------- flags

@pytest.mark.parametrize("args,culprit", [
    (["parity", XCEPTION, "--random-init", "0", "--size", "0"], "--size"),
    (["parity", XCEPTION, "--random-init", "0", "--batch", "0"], "--batch"),
    (["parity", "timm:inception_v4", "--random-init", "0", "--size", "64"], "--size 64 is out of range for inception_v4"),
    (["port-weights", XCEPTION, "--random-init", "0", "--num-classes", "0"], "--num-classes"),
    (["port-weights", XCEPTION, "--random-init", "-3"], "--random-init"),
    (["port-weights", "timm:nosuchnet", "--random-init", "0"], "nosuchnet"),
    (["random-weights", XCEPTION, "--seed", "-1", "-o", "OUT"], "--seed"),
])
def test_out_of_range_flags_before_any_work(tmp_path, args, culprit):
    args = [str(tmp_path / "o.pth") if a == "OUT" else a for a in args]
    assert_refused(cli(tmp_path, *args), culprit, [tmp_path / "o.pth"])


@pytest.mark.parametrize("args,culprit", [
    (["export", "CKPT", "--format", "mindir", "--batch", "0", "-o", "OUT"], "--batch"),
    (["export", "CKPT", "--format", "onnx", "--opset", "12", "-o", "OUT"], "--opset"),
    (["export", "CKPT", "--format", "mindir", "--fp16", "-o", "OUT"], "--fp16"),
    (["export", "CKPT", "--format", "onnx", "--size", "8", "-o", "OUT"], "--size"),
    (["export", "CKPT", "--format", "tflite", "-o", "OUT"], "--format"),
    (["predict", "CKPT", "IMG", "--topk", "-1"], "--topk"),
    (["predict", "CKPT", "IMG", "--topk", "1001"], "--topk 1001"),
    (["eval", "CKPT", "--data", "DATA", "--device", "TPU"], "--device"),
    (["eval", "CKPT", "--data", "DATA", "--device", "GPU"], "GPU"),
    (["eval", "CKPT", "--data", "DATA", "--batch-size", "0"], "--batch-size"),
    (["eval", "CKPT", "--data", "DATA", "--runtime", "openvino"], "--runtime and --precision choose how an .onnx"),
    (["eval", "CKPT", "--data", "DATA", "--runtime", "tensorrt"], "--runtime"),
    (["eval", "CKPT", "--data", "DATA", "--precision", "f64"], "--precision"),
    (["predict", "CKPT", "IMG", "--precision", "bf16"], "--precision bf16 needs --runtime openvino"),
    (["bench", "CKPT", "--precision", "int4"], "--precision"),
    (["eval", "CKPT", "--data", "DATA", "--runtime", "mindspore,tpu"], "unknown runtime 'tpu'"),
    (["predict", "CKPT", "IMG", "--runtime", "ort,,openvino"], "--runtime takes names separated by commas"),
    (["bench", "CKPT", "--runtime", "onnx", "--runtime", "nosuch"], "unknown runtime 'nosuch'"),
    (["predict", "CKPT", "IMG", "--runtime", "mindir"], "--runtime mindir runs a .mindir"),
    (["eval", "CKPT", "--data", "DATA", "--runtime", "mindspore,ort", "--results", "OUT"], "--results writes one"),
    (["eval", "CKPT", "--data", "DATA", "--runtime", "mindspore,ort", "--dump-logits", "OUT"],
     "--dump-logits holds one runtime's"),
    (["finetune", "CKPT", "--data", "DATA", "--batch-size", "0", "-o", "OUT"], "--batch-size"),
    (["finetune", "CKPT", "--data", "DATA", "--num-classes", "-3", "-o", "OUT"], "--num-classes"),
    (["finetune", "CKPT", "--data", "DATA", "--lr-max", "-1", "-o", "OUT"], "--lr-max"),
    (["finetune", "CKPT", "--data", "DATA", "--amp-level", "O5", "-o", "OUT"], "--amp-level"),
])
def test_out_of_range_flags_on_a_checkpoint(ported, data, tmp_path, args, culprit):
    if "GPU" in args:
        import mindspore as ms

        if ms.hal.is_available("GPU"):
            pytest.skip("MindSpore can use a GPU on this machine")
    img = _jpeg(tmp_path / "a.jpg")
    out = tmp_path / "out" / "o.onnx"
    sub = {"CKPT": str(ported), "OUT": str(out), "DATA": str(data), "IMG": str(img)}
    assert_refused(cli(tmp_path, *[sub.get(a, a) for a in args]), culprit, [out])


@pytest.mark.parametrize("args", [["eval", "CKPT", "--data", "DATA", "--runtime", "openvino"],
                                  ["bench", "CKPT", "--runtime", "openvino"],
                                  ["parity", XCEPTION, "--random-init", "0", "--openvino"],
                                  ["parity", XCEPTION, "--random-init", "0", "--runtime", "ort,openvino"]])
def test_a_missing_openvino_names_its_extra(ported, data, tmp_path, args):
    """As on a machine without the extra: `import openvino` fails (a package on PYTHONPATH that raises)."""
    shim = tmp_path / "no-openvino" / "openvino"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('No module named openvino')\n")
    sub = {"CKPT": str(ported), "DATA": str(data)}
    run = cli(tmp_path, *[sub.get(a, a) for a in args], env={"PYTHONPATH": str(shim.parent)})
    assert_refused(run, "OpenVINO is not installed: pip install 'porting[openvino]'")


def test_tensorrt_without_a_cuda_device_is_one_line(ported, data, tmp_path):
    """TensorRT is a runtime of eval, predict and bench as of parity: where no CUDA device is, asked alone it is
    one error line; beside another runtime it is skipped in one line and the other runs."""
    from porting.runtimes import cuda_devices

    if cuda_devices():
        pytest.skip("a CUDA device is here")
    skipped = "tensorrt: skipped, no CUDA device on this machine"
    assert_refused(cli(tmp_path, "eval", ported, "--data", data, "--runtime", "tensorrt"),
                   "--runtime tensorrt: no CUDA device on this machine")
    img = _jpeg(tmp_path / "a.jpg")
    run = cli(tmp_path, "predict", ported, img, "--size", "96", "--runtime", "tensorrt,mindspore", "--json")
    assert run.code == 0, run.stderr
    assert [line for line in run.stderr.splitlines() if "tensorrt" in line][0].endswith(skipped)
    assert [r["runtime"] for r in json.loads(run.stdout)] == ["mindspore"]
    run = cli(tmp_path, "bench", ported, "--batch", "1", "--size", "64", "--reps", "1", "--runtime", "tensorrt",
              "--json")
    assert run.code == 0, run.stderr
    assert sum(skipped in line for line in run.stderr.splitlines()) == 1
    assert [r["runtime"].split(" ")[0] for r in json.loads(run.stdout)] == ["MindSpore"]


@pytest.mark.parametrize("text,culprit", [
    ("epochs: two\n", "epochs must be a whole number"),
    ("lr_maxx: 0.1\n", "lr_maxx"),
    ("epoch_size: 0\n", "epochs must be in"),
    ("label_smooth_factor: 1.5\n", "label_smooth_factor"),
    ("optimizer: adam\n", "optimizer"),
    ("lr_max: [1, 2\n", "not valid YAML"),
])
def test_bad_finetune_config(ported3, data, tmp_path, text, culprit):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    assert_refused(cli(tmp_path, "finetune", ported3, "--data", data, "--config", config, "-o", out), culprit, [out])


def test_a_config_for_a_device_this_machine_lacks_names_the_flag_that_overrides_it(ported3, data, tmp_path):
    """A model-zoo default_config.yaml says device_target: "Ascend": where MindSpore has no Ascend, the line names
    --device CPU, with which the file's recipe values apply."""
    import mindspore as ms

    if ms.hal.is_available("Ascend"):
        pytest.skip("this MindSpore can use an Ascend device")
    config = tmp_path / "default_config.yaml"
    config.write_text('device_target: "Ascend"\nepoch_size: 7\n')
    out = tmp_path / "run"
    line = assert_refused(cli(tmp_path, "finetune", ported3, "--data", data, "--config", config, "-o", out),
                          "sets device_target: Ascend", [out])
    assert "--device CPU overrides it" in line, line
    run = cli(tmp_path, "finetune", ported3, "--config", config, "--device", "CPU", "--print-recipe")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["device"] == "CPU" and json.loads(run.stdout)["recipe"]["epochs"] == 7


# --------------------------------------------------------------------------------------------- at once

SHIMMED = ("mindspore", "torch", "tensorflow", "keras", "paddle", "onnxruntime", "timm", "openvino", "mindcv")


@pytest.fixture(scope="module")
def no_frameworks(work) -> dict:
    """An environment in which importing any framework fails: a mistake refused there is refused before one loads,
    within about a second whatever the machine (no timing needed)."""
    shim = work / "no-frameworks"
    for name in SHIMMED:
        (shim / name).mkdir(parents=True)
        (shim / name / "__init__.py").write_text(f"raise ImportError('{name} loaded before the mistake was seen')\n")
    return {"PYTHONPATH": os.pathsep.join(p for p in (str(shim), os.environ.get("PYTHONPATH")) if p)}


@pytest.mark.parametrize("args,culprit", [
    (["parity", XCEPTION, "--random-init", "0", "--plot", "OUT/p.txt"], "name it .png, .pdf or .svg"),
    (["port-weights", XCEPTION, "--weights", "PNG", "-o", "OUT/x.ckpt"], "it is a PNG image"),
    (["port-weights", XCEPTION, "--weights", "H5", "-o", "OUT/x.ckpt"], ".h5 is Keras's"),
    (["port-weights", XCEPTION, "--weights", "FAKE_PTH", "-o", "OUT/x.ckpt"],
     "is a PNG image, not the zip archive or pickle"),
    (["port-weights", "timm:xception65.in22k", "--random-init", "0", "-o", "OUT/x.ckpt"], "no pretrained tag 'in22k'"),
    (["port-weights", XCEPTION, "--random-init", "0", "-o", "OUT/x.pth"], "is not named .ckpt"),
    (["random-weights", XCEPTION, "-o", "OUT/x.h5"], "weights are written as .pth"),
    (["export", "CKPT", "--format", "onnx", "-o", "CKPT"], "is the input"),
    (["export", "CKPT", "--format", "onnx", "-o", "FOLDER"], "is a folder"),
    (["export", "CKPT", "--format", "onnx", "-o", "OUT/m.mindir"], "(a .mindir file is --format mindir)"),
    (["export", "CKPT", "--format", "mindir", "-o", "OUT/m"], "name it m.mindir"),
    (["export", "PTH", "--format", "onnx", "-o", "OUT/x.onnx"],
     "holds PyTorch weights, not a porting checkpoint"),
    (["export", "CKPT", "--to", "timm", "-o", "OUT/x.h5"], "is written as a folder (no suffix), .safetensors, .pth"),
    (["export", "CKPT", "--to", "timm:nosuchnet", "-o", "OUT/x"], "unknown model 'nosuchnet'"),
    (["quantize", "ONNX", "--calib", "DATA", "-o", "ONNX"], "is the input"),
    (["quantize", "ONNX", "--calib", "DATA", "-o", "OUT/q.mindir"], "quantize writes an int8 ONNX"),
    (["finetune", "CKPT", "--data", "DATA", "--distributed", "-o", "OUT/run"], "msrun --worker_num=N"),
    (["finetune", "CKPT", "--data", "IMG", "-o", "OUT/run"], "--data"),
    (["eval", "CKPT", "--data", "IMG"], "is a file: give the dataset's folder"),
    (["predict", "CKPT", "DATA"], "is a folder: predict takes image files"),
    (["predict", "PTH", "IMG"], "holds PyTorch weights, not a porting checkpoint"),
])
def test_mistakes_in_the_command_line_are_refused_before_any_framework_loads(
        ported, data, tmp_path, no_frameworks, args, culprit):
    """A wrong file, name or flag is seen in the command line: one line at once, not after a framework's import or
    a worker's start (the parity --plot mistake used to surface after a whole 32 s run)."""
    png = tmp_path / "circle_0.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(png)
    fake = tmp_path / "fake.pth"
    fake.write_bytes(png.read_bytes())
    h5 = tmp_path / "keras.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    pth = tmp_path / "xception.pth"
    pth.write_bytes(b"PK\x03\x04" + bytes(100))
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"\x08\x08")
    (tmp_path / "folder").mkdir()
    sub = {"CKPT": str(ported), "DATA": str(data), "IMG": str(_jpeg(tmp_path / "a.jpg")), "PNG": str(png),
           "FAKE_PTH": str(fake), "H5": str(h5), "PTH": str(pth), "ONNX": str(onnx_file),
           "FOLDER": str(tmp_path / "folder")}
    out = tmp_path / "OUT"
    args = [sub.get(a, a.replace("OUT", str(out))) for a in args]
    assert_refused(cli(tmp_path, *args, env=no_frameworks), culprit, [out / "x"])
    assert not out.exists()


# --------------------------------------------------------------------------------------------- output paths

def test_output_that_is_the_input_is_refused(ported, tmp_path):
    copy = tmp_path / "m.ckpt"
    shutil.copy(ported, copy)
    before = copy.read_bytes()
    run = cli(tmp_path, "export", copy, "--format", "onnx", "-o", copy)
    assert_refused(run, "is the input")
    assert copy.read_bytes() == before


@pytest.mark.parametrize("fmt", ["mindir", "onnx"])
def test_output_that_is_a_folder_is_refused(ported, tmp_path, fmt):
    folder = tmp_path / "exports"
    folder.mkdir()
    assert_refused(cli(tmp_path, "export", ported, "--format", fmt, "-o", folder), "is a folder")
    assert os.listdir(folder) == []


def test_output_whose_parent_is_a_file_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "notes.txt" / "x.ckpt"
    assert_refused(cli(tmp_path, "port-weights", XCEPTION, "--random-init", "0", "-o", out), "is a file", [out])


def test_output_under_proc_is_refused(ported, tmp_path):
    assert_refused(cli(tmp_path, "export", ported, "--format", "onnx", "-o", "/proc/porting.onnx"),
                   "/proc/porting.onnx")


def test_outputs_are_ordinary_files_that_replace_old_ones_only_when_whole(ported, tmp_path):
    """Mode 0644 under umask 022 (not mkstemp's 0600/0400); missing parents are created (MINDIR too); an existing
    output is replaced by a complete new file, and a failed run leaves it untouched."""
    out = tmp_path / "new" / "sub"
    run = cli(tmp_path, "export", ported, "--format", "mindir", "-o", out / "x.mindir", preexec=lambda: os.umask(0o022))
    assert run.code == 0, run.stderr
    assert (out / "x.mindir").stat().st_mode & 0o777 == 0o644 and os.listdir(out) == ["x.mindir"]
    mask = os.umask(0)
    os.umask(mask)
    assert ported.stat().st_mode & 0o777 == 0o666 & ~mask
    assert_nothing_left(run)
    old = tmp_path / "x.onnx"
    old.write_bytes(b"an older export")
    run = cli(tmp_path, "export", ported, "--format", "onnx", "--size", "8", "-o", old)
    assert_refused(run, "--size")
    assert old.read_bytes() == b"an older export"
    run = cli(tmp_path, "export", ported, "--format", "onnx", "-o", old)
    assert run.code == 0, run.stderr
    assert old.read_bytes()[:4] != b"an o" and old.stat().st_mode & 0o777 == 0o666 & ~mask
    assert_nothing_left(run)
    assert not [p for p in tmp_path.iterdir() if "porting" in p.name]


@pytest.fixture
def mounted(tmp_path):
    """mount(options) -> a fresh tmpfs folder (1 MiB; 'ro' for read-only), or None where mounting is not allowed."""
    made = []

    def mount(options: str = "size=1m") -> Path | None:
        point = tmp_path / f"mnt{len(made)}"
        point.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True).returncode:
            return None
        made.append(point)
        return point

    yield mount
    for point in made:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def _limit_file_size():  # where no tmpfs can be mounted: writes past 1 MiB fail with EFBIG (Python ignores SIGXFSZ)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_read_only_filesystem(ported, tmp_path, mounted):
    folder = mounted("ro,size=1m") or Path("/sys/fs")
    out = folder / "x.onnx"
    assert_refused(cli(tmp_path, "export", ported, "--format", "onnx", "-o", out), str(out), [out])


@pytest.mark.parametrize("args", [
    ["port-weights", XCEPTION, "--random-init", "0", "-o", "FULL/x.ckpt"],
    ["export", "CKPT", "--format", "onnx", "-o", "FULL/x.onnx"],
    ["export", "CKPT", "--format", "mindir", "-o", "FULL/sub/x.mindir"],
    ["random-weights", XCEPTION, "-o", "FULL/x.pth"],
])
def test_full_filesystem(ported, tmp_path, mounted, args):
    full = mounted("size=1m")
    preexec = None
    if full is None:
        full, preexec = tmp_path / "limited", _limit_file_size
        full.mkdir()
    args = [str(ported) if a == "CKPT" else a.replace("FULL", str(full)) for a in args]
    out = Path(args[-1])
    # a full tmpfs fails at the output; a file-size limit fails at the first big write, maybe a worker's
    line = assert_refused(cli(tmp_path, *args, preexec=preexec), str(out) if preexec is None else "File too large",
                          [out])
    assert "No space left" in line or "File too large" in line
    assert os.listdir(full) == []


def test_full_tmpdir_fails_in_the_worker_in_one_line(tmp_path, mounted):
    small = mounted("size=1m")
    if small is None:
        pytest.skip("cannot mount a small filesystem for TMPDIR here")
    out = tmp_path / "x.ckpt"
    run = cli(tmp_path, "port-weights", XCEPTION, "--random-init", "0", "-o", out, env={"TMPDIR": str(small)})
    run.tmpdir = small
    assert_refused(run, "No space left", [out])


# --------------------------------------------------------------------------------------------- checkpoints

def _flipped(src: Path, dst: Path, where: float) -> Path:
    data = bytearray(src.read_bytes())
    data[int(len(data) * where)] ^= 0x10
    dst.write_bytes(bytes(data))
    return dst


def _resealed(src: Path, dst: Path, edit) -> Path:
    """A checkpoint whose metadata was edited and whose digests were recomputed: a well-formed file whose
    metadata is wrong, which only validation can catch."""
    import mindspore as ms

    from porting import checkpoint as ck

    raw = ms.load_checkpoint(str(src))
    meta, table = str(raw.pop(ck.META_KEY)), str(raw.pop(ck.TABLE_KEY))
    raw.pop(ck.DIGEST_KEY)
    meta = edit(meta)
    ms.save_checkpoint([{"name": k, "data": v} for k, v in raw.items()], str(dst),
                       append_dict={ck.META_KEY: meta, ck.TABLE_KEY: table, ck.DIGEST_KEY: ck._digest(meta, table)})
    return dst


@pytest.mark.parametrize("command", ["export", "eval", "predict", "finetune", "resume"])
def test_a_flipped_tensor_byte_fails_every_command(ported3, data, tmp_path, command):
    bad = _flipped(ported3, tmp_path / "bad.ckpt", 0.5)
    out = tmp_path / "out"
    args = {"export": ["export", bad, "--format", "onnx", "-o", out / "x.onnx"],
            "eval": ["eval", bad, "--data", data],
            "predict": ["predict", bad, _jpeg(tmp_path / "a.jpg")],
            "finetune": ["finetune", bad, "--data", data, "-o", out],
            "resume": ["finetune", ported3, "--data", data, "--batch-size", "2", "-o", tmp_path / "run",
                       "--resume"]}[command]
    if command == "resume":
        (tmp_path / "run").mkdir()
        shutil.move(bad, tmp_path / "run" / "xception-1_3.ckpt")
    line = assert_refused(cli(tmp_path, *args), "does not match its sha256 digest", [out])
    assert "tensor '" in line


def test_corrupt_metadata_characters_are_named_as_such(ported, tmp_path):
    """MindSpore keeps a checkpoint's strings as UCS-4: one flipped byte of the metadata can make a lone surrogate
    (U+DD6F), which no text holds; the command names the file and its metadata, not a UnicodeEncodeError."""
    data = bytearray(ported.read_bytes())
    at = data.find('"tool_version"'.encode("utf-32-le"))
    assert at > 0
    data[at + 4 * 3 + 1] = 0xDD  # the 4th character, 'o' (U+006F), becomes U+DD6F
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(bytes(data))
    out = tmp_path / "x.onnx"
    line = assert_refused(cli(tmp_path, "export", bad, "--format", "onnx", "-o", out), "bad.ckpt", [out])
    assert "is corrupt: its metadata" in line and "U+DD6F" in line, line


@pytest.mark.parametrize("where", [0.25, 0.75, 0.999])
def test_flipped_bytes_anywhere_in_a_checkpoint_are_caught(ported, tmp_path, where):
    bad = _flipped(ported, tmp_path / "bad.ckpt", where)
    out = tmp_path / "x.onnx"
    assert_refused(cli(tmp_path, "export", bad, "--format", "onnx", "-o", out), "bad.ckpt", [out])


@pytest.mark.parametrize("edit,culprit", [
    (lambda m: m[:-5], "not valid JSON"),
    (lambda m: json.dumps({k: v for k, v in json.loads(m).items() if k != "arch"}), "'arch' is missing"),
    (lambda m: json.dumps(dict(json.loads(m), arch_config={"bn_eps": 1e-5, "kernel": 5})), "'kernel'"),
    (lambda m: json.dumps(dict(json.loads(m), arch="resnet9000")), "resnet9000"),
    (lambda m: json.dumps(dict(json.loads(m), num_classes=-3)), "num_classes"),
    (lambda m: json.dumps(dict(json.loads(m), format="porting-ckpt/1")), "format"),
    (lambda m: json.dumps(dict(json.loads(m), resize_backend="skimage")), "resize_backend"),
    (lambda m: json.dumps(dict(json.loads(m), train_state={"global_step": "12"})), "'train_state.global_step'"),
    (lambda m: json.dumps(dict(json.loads(m), export={"opset": 17, "colour": "red"})), "'colour'"),
])
def test_malformed_checkpoint_metadata(ported3, tmp_path, edit, culprit):
    bad = _resealed(ported3, tmp_path / "meta.ckpt", edit)
    out = tmp_path / "x.onnx"
    assert_refused(cli(tmp_path, "export", bad, "--format", "onnx", "-o", out), culprit, [out])


def test_a_card_written_before_its_nested_fields_were_typed_loads_and_saves_back_the_same():
    """train_state and export are records (TrainState, ExportInfo) stored as the JSON objects they always were, and
    arch_config is read through the architecture's config class: a card as fine-tuning and quantize have always written it
    loads, reads by attribute (the class's defaults for keys it leaves out) and saves back the same."""
    from porting.card import ModelCard
    from porting.specs import resolve, spec_card

    ported = spec_card(resolve("timm:seresnext50_32x4d")).to_dict()
    written = dict(ported, arch_config={"cardinality": 32}, train_state={
        "global_step": 12, "steps_per_epoch": 6, "epochs": 2, "world_size": 1, "loss": 0.5, "recipe": {"lr": 0.1},
        "settings": {"seed": 0, "workers": 2}, "start_loss": 2.5, "recent_losses": [0.7, 0.5]}, export={
        "opset": 17, "batch": None, "dynamic_size": True, "precision": "int8", "fold_bn": True, "quantization": {
            "format": "QDQ", "per_channel": True, "weights": "int8", "activations": "int8", "calibration": "minmax",
            "calibration_images": 8, "classes_covered": 2}})
    card = ModelCard.from_json(json.dumps(written), "old.ckpt")
    assert card.train_state.global_step == 12 and card.train_state.workers == 2
    assert card.export.batch is None and card.export.quantization.calibration_images == 8
    assert card.config.layers == [3, 4, 6, 3] and card.config.cardinality == 32
    assert json.loads(card.to_json()) == written
    props = dict(card.replace(train_state=None).to_props(), export='{"batch": 1, "size": 96}')  # a MINDIR's
    mindir = ModelCard.from_props(props, "m.mindir")
    assert (mindir.export_info.batch, mindir.export_info.size, mindir.export_info.precision) == (1, 96, None)
    assert json.loads(mindir.to_props()["export"]) == {"batch": 1, "size": 96}


def test_files_that_are_not_porting_checkpoints(ported3, tmp_path):
    import mindspore as ms

    (tmp_path / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(10_000))
    (tmp_path / "half.ckpt").write_bytes(ported3.read_bytes()[: ported3.stat().st_size // 2])
    ms.save_checkpoint([{"name": "w", "data": ms.Tensor(np.ones(3, np.float32))}], str(tmp_path / "plain.ckpt"))
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    for name, culprit in (("random.ckpt", "random.ckpt"), ("half.ckpt", "half.ckpt"),
                          ("plain.ckpt", "no porting metadata"), ("model.onnx", "exported ONNX"),
                          ("missing.ckpt", "does not exist")):
        out = tmp_path / "x.onnx"
        assert_refused(cli(tmp_path, "export", tmp_path / name, "--format", "onnx", "-o", out), culprit, [out])


# --------------------------------------------------------------------------------------------- datasets

@pytest.mark.parametrize("command", ["eval", "finetune"])
def test_a_corrupt_image_is_named_and_nothing_lands_in_the_working_directory(ported3, broken_data, tmp_path, command):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    args = ["eval", ported3, "--data", broken_data, "--size", "64"] if command == "eval" else \
        ["finetune", ported3, "--data", broken_data, "--image-size", "64", "--batch-size", "2", "-o", tmp_path / "run"]
    assert_refused(cli(tmp_path, *args, cwd=cwd), "photo.jpg", [tmp_path / "run"])
    assert os.listdir(cwd) == []


def test_stray_files_are_ignored_with_a_warning(ported3, data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(data / "val", root)
    (root / "circle" / "notes.txt").write_text("not an image")
    (root / "circle" / "anim.gif").write_bytes(b"GIF89a")
    run = cli(tmp_path, "eval", ported3, "--data", root, "--size", "64", "--json")
    assert run.code == 0, run.stderr
    assert "ignoring 2 file(s)" in run.stderr and json.loads(run.stdout.splitlines()[-1])["samples"] == 6
    assert_nothing_left(run)


def test_imagenet_synset_folders_map_to_their_classes(ported, tmp_path):
    """A subset of ImageNet's val folders: labels come from the WordNet ids, not from folder positions."""
    for wnid, seed in (("n01443537", 1), ("n01484850", 2)):  # goldfish = 1, great white shark = 2
        (tmp_path / "val" / wnid).mkdir(parents=True)
        _jpeg(tmp_path / "val" / wnid / f"{seed}.jpg", seed)
    run = cli(tmp_path, "eval", ported, "--data", tmp_path, "--size", "64", "--dump-logits", tmp_path / "l.npz")
    assert run.code == 0, run.stderr
    assert sorted(np.load(tmp_path / "l.npz")["labels"].tolist()) == [1, 2]
    (tmp_path / "val" / "cats").mkdir()
    _jpeg(tmp_path / "val" / "cats" / "c.jpg")
    assert_refused(cli(tmp_path, "eval", ported, "--data", tmp_path, "--size", "64"), "cannot tell which")


def test_class_folders_unknown_to_a_finetuned_checkpoint(ported3, data, tmp_path):
    named = _resealed(ported3, tmp_path / "named.ckpt",
                      lambda m: json.dumps(dict(json.loads(m), class_names=["cat", "dog", "fox"])))
    assert_refused(cli(tmp_path, "eval", named, "--data", data, "--size", "64"), "not among the checkpoint's classes")


def test_finetune_never_mixes_two_runs_in_one_folder(ported3, data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    assert_refused(cli(tmp_path, "finetune", ported3, "--data", data, "-o", out, "--resume"), "no checkpoint")
    shutil.copy(ported3, out / "xception-1_3.ckpt")
    assert_refused(cli(tmp_path, "finetune", ported3, "--data", data, "-o", out), "already holds checkpoints")


# --------------------------------------------------------------------------------------------- interruptions

def _staging_appears(folder: Path) -> bool:
    return folder.is_dir() and any(p.name.endswith(".porting-partial") for p in folder.iterdir())


POINTS = {
    # (command, moment to strike): the worker is running / the output is being written
    "port-worker": (["port-weights", XCEPTION, "--random-init", "0", "-o", "OUT/x.ckpt"], "worker"),
    "port-save": (["port-weights", XCEPTION, "--random-init", "0", "-o", "OUT/x.ckpt"], "staging"),
    "export-write": (["export", "CKPT", "--format", "onnx", "-o", "OUT/x.onnx"], "staging"),
    "finetune-train": (["finetune", "CKPT3", "--data", "DATA", "--image-size", "64", "--batch-size", "2",
                        "--lr-max", "0.01", "-o", "OUT/run"], "started"),
}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
@pytest.mark.parametrize("point", list(POINTS))
def test_interrupted_runs_leave_nothing_behind(ported, ported3, data, tmp_path, point, sig):
    args, moment = POINTS[point]
    out = tmp_path / "OUT"
    sub = {"CKPT": str(ported), "CKPT3": str(ported3), "DATA": str(data)}
    args = [sub.get(a, a.replace("OUT", str(out))) for a in args]
    env, tag, tmpdir = _env(tmp_path)
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "porting", *args], stdout=subprocess.DEVNULL, stderr=stderr,
                                env=env)
        deadline = time.time() + 300
        while proc.poll() is None and time.time() < deadline:
            if moment == "worker" and any(b"sources.worker" in open(f"/proc/{p}/cmdline", "rb").read()
                                          for p in tagged(tag) if os.path.exists(f"/proc/{p}/cmdline")):
                break
            if moment == "staging" and (_staging_appears(out) or _staging_appears(tmp_path)):
                break
            if moment == "started" and "training xception" in errors.read_text():
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the command ended before the {moment} moment: {errors.read_text()[-2000:]}"
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    run = Guarded(code, "", errors.read_text(), tag, tmpdir)
    outputs = [Path(args[-1])]
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert_nothing_left(run, outputs)
    else:
        assert_refused(run, "interrupted" if sig == signal.SIGINT else "terminated by SIGTERM", outputs,
                       code=130 if sig == signal.SIGINT else 2)


def test_the_api_leaves_nothing_in_tmpdir_or_home(tmp_path):
    """The Python API runs in the user's own TMPDIR (not the CLI's private one): what its frameworks write on the
    way (onnxruntime's telemetry: $TMPDIR/.ses, ~/.cache/Microsoft/...) must not be left there."""
    tmpdir, home = tmp_path / "tmp", tmp_path / "home"
    tmpdir.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    code = "import porting, onnxruntime"  # as every API call that runs an ONNX: porting first, then onnxruntime
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(env, TMPDIR=str(tmpdir), HOME=str(home)))
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmpdir) == [] and [str(p.relative_to(home)) for p in home.rglob("*")] == []


A_SIGNAL_TO_THE_COMMAND_PROCESS = """
import os, signal, sys, time
import typer
from porting import boundary

app = typer.Typer()

@app.command()
def main():
    try:  # a library around it would turn an interrupt into an error of its own, as MindSpore's import does
        os.kill(os.getpid(), signal.SIG{name})  # to the command's process alone (pkill; the OOM killer: KILL)
        time.sleep(30)
    except BaseException as exc:
        raise ImportError("initialization failed") from exc

sys.exit(boundary.run(app))
"""


@pytest.mark.parametrize("name, code, message", [("INT", 130, "interrupted"), ("TERM", 2, "terminated by SIGTERM"),
                                                 ("KILL", 2, "killed by SIGKILL (out of memory?)")])
def test_a_signal_to_the_command_process_is_one_line(tmp_path, name, code, message):
    env, tag, tmpdir = _env(tmp_path)
    done = subprocess.run([sys.executable, "-c", A_SIGNAL_TO_THE_COMMAND_PROCESS.replace("{name}", name)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert_refused(Guarded(done.returncode, done.stdout, done.stderr, tag, tmpdir), message, code=code)


# Issue 30: a signal at any moment, also while MindSpore loads (an interpreter stopped half-way through importing
# it crashed on its way out: SIGABRT and 40-120 lines) and while it trains (MindSpore's own SIGINT handler replaced
# ours: the run went on to the end). SIGINT goes to the whole process group, as a terminal's Ctrl-C does.

def _mindspore_importing(tag: str) -> bool:
    """A process of the run is half-way through `import mindspore` (about 2 s of Python after its C++ libraries
    load): its libraries are mapped, and psutil, which MindSpore's Python modules import (porting does not)."""
    for pid in tagged(tag):
        try:
            with open(f"/proc/{pid}/maps", "rb") as f:
                maps = f.read()
        except OSError:
            continue
        if b"libmindspore" in maps and b"_psutil_linux" in maps:
            return True
    return False


def _strike(tmp_path: Path, args: list, ready, sig: signal.Signals) -> tuple[Guarded, str]:
    """Run the CLI in a session of its own; when ready(tag), SIGINT to its process group or SIGTERM to it alone.
    Returns the run and what it printed on stderr after the signal."""
    env, tag, tmpdir = _env(tmp_path)
    errors = tmp_path / "stderr.txt"
    with open(errors, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "porting", *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=stderr, env=env, start_new_session=True)
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline and not ready(tag):
            time.sleep(0.005)
        assert proc.poll() is None, f"the command ended before the moment: {errors.read_text()[-2000:]}"
        printed = errors.stat().st_size
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        code = proc.wait(timeout=120)
    text = errors.read_text()
    return Guarded(code, "", text, tag, tmpdir), text[printed:]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_while_mindspore_loads_gives_one_line(ported, tmp_path, sig):
    out = tmp_path / "OUT" / "x.onnx"
    run, after = _strike(tmp_path, ["export", ported, "--format", "onnx", "-o", out], _mindspore_importing, sig)
    expected = "interrupted" if sig == signal.SIGINT else "terminated by SIGTERM"
    assert after.splitlines() == [f"error: {expected}"], after[-3000:]
    assert_refused(run, expected, [out], code=130 if sig == signal.SIGINT else 2)


def test_ctrl_c_stops_training_at_once_and_resume_continues(ported3, data, tmp_path):
    """Ctrl-C (SIGINT to the group) once a checkpoint is written: the run stops there, in one line, exit 130; its
    checkpoints are whole and --resume continues from the newest."""
    out = tmp_path / "run"
    args = ["finetune", ported3, "--data", data, "--image-size", "64", "--batch-size", "2", "--epochs", "2",
            "--save-checkpoint-steps", "1", "--keep-checkpoint-max", "100", "-o", out]
    run, after = _strike(tmp_path, args, lambda tag: any(out.glob("*.ckpt")), signal.SIGINT)
    assert after.splitlines() == ["error: interrupted"], after[-3000:]
    assert_refused(run, "interrupted", code=130)  # nothing left in TMPDIR, no process left
    assert not [p.name for p in out.iterdir() if "porting" in p.name], "a partial checkpoint was left"
    kept = sorted(out.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    assert 1 <= len(kept) < 12, [p.name for p in kept]  # 6 steps x 2 epochs: stopped before the end
    resumed = cli(tmp_path, *args[:-2], "--resume", "--max-steps", "1", "-o", out)
    assert resumed.code == 0, resumed.stderr[-3000:]
    assert f"resuming from {kept[-1].name}" in resumed.stderr
