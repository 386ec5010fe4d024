"""One contender of the benchmark, in a process of its own: `python benchmarks/contender.py SPEC.json`.

It builds what it times (a timm model in PyTorch, porting's MindSpore model in PYNATIVE or GRAPH mode, an ONNX
file in onnxruntime or OpenVINO, mindcv's model, one training step), prints `ready`, then answers each `run` line on stdin
with the seconds one call took. Frameworks stay apart (each has its own threads and its own oneDNN build,
which MindSpore's processes cap at AVX2, see porting/msenv.py); the harness (run.py) interleaves the calls.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np


def torch_eager(spec: dict):
    import timm
    import torch

    model = timm.create_model(spec["timm"], pretrained=False)
    model.load_state_dict(torch.load(spec["weights"], weights_only=True))
    model.eval()
    x = torch.from_numpy(_images(spec))

    def call():
        with torch.no_grad():
            model(x)
    return call


def onnxruntime(spec: dict):
    import onnxruntime as ort

    session = ort.InferenceSession(spec["onnx"], providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = _images(spec)
    return lambda: session.run(None, {name: x})


def openvino(spec: dict):
    """porting's ONNX in OpenVINO's CPU plugin; precision 'default' leaves the choice to OpenVINO."""
    import openvino as ov

    core = ov.Core()
    config = {} if spec["precision"] == "default" else {"INFERENCE_PRECISION_HINT": spec["precision"]}
    compiled = core.compile_model(core.read_model(spec["onnx"]), "CPU", config)
    request = compiled.create_infer_request()
    x = _images(spec)
    return lambda: request.infer([x])


def _mindspore(graph: bool):
    from porting import msenv

    msenv.setup("CPU", graph=graph)
    import mindspore as ms

    return ms


def porting_mindspore(spec: dict):
    ms = _mindspore(spec["graph"])
    from porting import checkpoint

    net, _ = checkpoint.load_model(spec["ckpt"])
    x = ms.Tensor(_images(spec))
    return lambda: net(x).asnumpy()


def mindcv_mindspore(spec: dict):
    ms = _mindspore(spec["graph"])
    from mindcv.models import create_model

    net = create_model(spec["mindcv"], pretrained=False)
    net.set_train(False)
    x = ms.Tensor(_images(spec))
    return lambda: net(x).asnumpy()


def train_step(spec: dict):
    """One fine-tuning step of porting's training cell (the xception recipe's Momentum + smoothed loss)."""
    ms = _mindspore(spec["graph"])
    from mindspore import nn

    from porting import checkpoint
    from porting.training.step import CrossEntropySmooth, param_groups as _param_groups

    net, meta = checkpoint.load_model(spec["ckpt"])
    classes = meta.num_classes  # the checkpoint's ModelCard
    opt = nn.Momentum(_param_groups(net, 1e-4), 0.001, 0.9, loss_scale=1024.0)
    step = nn.TrainOneStepCell(nn.WithLossCell(net, CrossEntropySmooth(classes, 0.1)), opt, sens=1024.0)
    step.set_train(True)
    x = ms.Tensor(_images(spec))
    y = ms.Tensor(np.arange(spec["batch"], dtype=np.int32) % classes)
    return lambda: step(x, y).asnumpy()


def _images(spec: dict) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(0, 1, (spec["batch"], 3, spec["size"], spec["size"])).astype(np.float32)


KINDS = {"torch": torch_eager, "onnxruntime": onnxruntime, "openvino": openvino, "porting-mindspore": porting_mindspore,
         "mindcv": mindcv_mindspore, "train-step": train_step}


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    call = KINDS[spec["kind"]](spec)
    for _ in range(spec.get("warmup", 2)):  # compile (GRAPH), allocate, settle caches
        call()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        t0 = time.perf_counter()
        call()
        print(f"{time.perf_counter() - t0:.6f}", flush=True)
    sys.stdout.flush()
    os._exit(0)  # skip framework teardown


if __name__ == "__main__":
    main()
