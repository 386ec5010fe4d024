"""parity: run the source model and the ported model on the same inputs, layer by layer, in every runtime.

The source runs in its worker on the inputs (a runtime: sources.jobs.SourceRuntime) while the MindSpore network is built
once; `port()` (the very path port-weights takes, drop_background included) maps its tensors; the parameters
round-trip through a real .ckpt into that network; then each runtime (MindSpore, ONNX Runtime, OpenVINO, MINDIR)
infers and the framework-agnostic comparator compares its outputs, renamed to the source's layer names, with the
source's.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from porting import files
from porting.compare import RTOL, Report, compare
from porting.converters.port import port
from porting.runtimes import LOGITS, choose_runtimes
from porting.sources.inputs import make_images
from porting.sources.jobs import SourceRuntime, run_source, source_job
from porting.specs import ModelSpec, spec_card


def user_images(images: list[Path], spec: ModelSpec, size: int) -> np.ndarray:
    """The user's image files through the port's own evaluation preprocessing (porting.images)."""
    from porting.images.pipelines import load_image
    from porting.images.preprocessing import preprocessing

    pre = preprocessing(spec_card(spec), size=size)
    return np.stack([load_image(Path(p), pre) for p in images])


def runtime_default(report: Report, runtime, reference: dict[str, np.ndarray], x: np.ndarray, what: str,
                    label: str = "at its default precision") -> None:
    """What a deployment runtime computes at a precision other than f32 (its own default: OpenVINO's bf16 on CPUs
    that have it, TensorRT's TF32; or f16), against the reference logits: reported beside the table, not part of
    the verdict (the f32 rows are)."""
    ref = reference[LOGITS].astype(np.float64)
    got = runtime.logits(x).astype(np.float64)
    max_abs = float(np.abs(ref - got).max())
    agree = np.argmax(ref, axis=-1) == np.argmax(got, axis=-1)
    report.info.setdefault("default_precision", {})[runtime.name] = {
        "runtime": f"{runtime.name.split('-')[0]} {label}", "precision": runtime.describe_precision(),
        "max_abs": max_abs,
        "max_rel": max_abs / max(float(np.abs(ref).max()), 1e-12), "top1_agree": float(np.mean(agree)),
        "inputs": what, "within_tolerance": max_abs <= report.rtol * max(1.0, float(np.abs(ref).max()))}


def parity(spec: ModelSpec, *, weights: str | None = None, seed: int | None = None, batch: int = 2,
           size: int | None = None, runtimes: Sequence[str] = (), onnx: bool = False, mindir: bool = False,
           openvino: bool = False, tensorrt: bool = False, input_seed: int = 1234, log=lambda msg: None,
           weight_map=None, images: list[Path] | None = None, rtol: float = RTOL) -> Report:
    """Seeded image-like inputs, or `images` (the user's files, preprocessed as the port evaluates); `rtol`
    scales the tolerance. `weight_map` overrides the spec's table (the mapping-bug tests inject a broken one).
    `runtimes`: where else the port is checked, in that order, after MindSpore (names from porting.runtimes:
    ort, openvino, tensorrt, mindir); `onnx`, `mindir`, `openvino`, `tensorrt` are the same, as flags. Each at
    f32, layer by layer where it shows layers; beside it, what its other precisions give (OpenVINO's default,
    TensorRT's TF32 default and its fp16 export). A runtime that cannot run here (TensorRT without a CUDA device)
    is skipped, in one line."""
    from porting import archs, checkpoint, msenv
    from porting.converters.export import (OnnxOptions, export_ms, trace_onnx, without_extra_outputs,
                                           write_onnx)
    from porting.runtimes import runtime_record

    # the port itself runs in MindSpore first; a missing extra is one line at once, before the source runs
    chosen, skipped = [], {}
    for record in choose_runtimes(runtimes, onnx=onnx, openvino=openvino, tensorrt=tensorrt, mindir=mindir):
        if record.name == "mindspore":
            continue
        why = record.unavailable()
        if why:
            skipped[record.name] = why  # one verdict line says so
            continue
        record.require()
        chosen.append(record)

    size = size or spec.input_size
    wm = weight_map or spec.build_weight_map()
    x = user_images(images, spec, size) if images else make_images(input_seed, batch, size, spec.mean, spec.std)
    batch = len(x)
    report = Report(spec=spec.id, rtol=rtol, info={**({"skipped": skipped} if skipped else {}),
        "batch": batch, "size": size, "inputs": f"{batch} image file(s)" if images else "seeded synthetic images",
        "weights": weights or (f"random-init:{seed}" if seed is not None else "pretrained")})
    t0 = time.perf_counter()
    log(f"running the {spec.source} source model ({batch}x3x{size}x{size}) in its own process")
    with source_job(spec, weights=weights, seed=seed, inputs=x, taps=[layer.source for layer in wm.layers]) as done:
        msenv.setup()  # MindSpore loads, and the target network is built, while the worker runs the source
        net = archs.build(spec.arch, spec.arch_config, spec.num_classes)
        source = SourceRuntime(spec, done(), x)
    # the very path port-weights takes (drop_background included), checked against the network parity runs
    ported = port(spec, source.source, weight_map=wm, net=net, log=log)
    by_source = {layer.source: layer for layer in wm.layers}
    layers = [by_source[name] for name in source.order if name in by_source]  # in the source's order
    reference = source.infer(x, [layer.source for layer in layers])
    if ported.card.background_dropped:
        reference[LOGITS] = reference[LOGITS][:, 1:]  # what port-weights ports: TF-slim's class 0 dropped
    cells = [layer.target for layer in layers]
    to_source = {layer.target: layer.source for layer in layers}
    with files.scratch_dir("parity-") as tmp:
        # Round-trip through the real files users get: the .ckpt, the checked .onnx, the .mindir.
        checkpoint.save(ported.params, tmp / "model.ckpt", ported.card)
        net, card = checkpoint.load_model(tmp / "model.ckpt", into=net)

        traced = {}

        def onnx_graph():
            # traced once with the tapped cells as extra outputs; the file written (and checked by onnx.checker)
            # is that same graph with the logits as its only output, so the file's nodes are the ones compared
            if not traced:
                traced["model"], traced["taps"] = trace_onnx(net, card, size, cells)
                write_onnx(without_extra_outputs(traced["model"]), tmp / "model.onnx")
            return traced["model"], traced["taps"]

        def model_for(record, precision: str = "f32"):
            """What `record` runs: the network, the traced ONNX graph with its taps (the written file, at any
            other precision; the float16 export where the runtime computes f16 from the file), the MINDIR."""
            if record.runs == "network":
                return net, None, ""
            if record.runs == "mindir":
                return export_ms(net, "MINDIR", tmp / "model.mindir", size, batch=batch, card=card), None, ""
            if precision == "f32":
                return (*onnx_graph(), str(tmp / "model.onnx"))
            if precision == "f16" and record.f16_from_file:
                if not (tmp / "model.fp16.onnx").exists():
                    half, _ = trace_onnx(net, card, size, options=OnnxOptions(float16=True))
                    write_onnx(half, tmp / "model.fp16.onnx")
                return tmp / "model.fp16.onnx", None, ""
            return tmp / "model.onnx", None, ""

        with contextlib.ExitStack() as opened:  # every runtime open before the first input, closed at the end
            runtimes = []
            for record in [runtime_record("mindspore"), *chosen]:
                model, taps, what = model_for(record)
                runtimes.append(opened.enter_context(record.runtime(model, taps=taps, precision="f32", what=what)))
            beside = []  # what a deployer gets at the runtime's other precisions, reported beside the verdict
            for record in chosen:
                for precision in record.beside:
                    label = ("at its default precision" if precision == "default" else "on the --fp16 export"
                             if precision == "f16" and record.f16_from_file else f"at {precision}")
                    model, _, _ = model_for(record, precision)
                    beside.append((opened.enter_context(record.runtime(model, precision=precision)), label))
            for runtime in runtimes:
                log(f"running {runtime.description}")
                outputs = runtime.infer(x, cells)
                compare(report, runtime.name, reference, {to_source.get(k, k): v for k, v in outputs.items()},
                        layers)
            for runtime, label in beside:
                log(f"running {runtime.description}")
                runtime_default(report, runtime, reference, x, report.info["inputs"], label)
    report.info["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def check_preprocessing(spec: ModelSpec, images: list[Path], size: int | None = None, log=lambda msg: None) -> dict:
    """The port's image pipeline against the source library's own (timm.data.create_transform, Keras's
    load_img + preprocess_input, PaddleClas's deploy operators) on the same files, in normalised units."""
    from porting.images.preprocessing import preprocessing

    size = size or spec.input_size
    pre = preprocessing(spec_card(spec), size=size)
    ours = user_images(images, spec, size)
    log(f"running {spec.source}'s own preprocessing of {len(images)} image(s) in its worker")
    theirs = run_source(spec, untrained=True, want_tensors=False,
                        preprocess=([str(Path(p).resolve()) for p in images], size, pre.resize))
    rows = []
    for path, a, b in zip(images, ours, theirs.preprocessed):
        if a.shape != b.shape:
            rows.append({"image": str(path), "shape": [list(a.shape), list(b.shape)], "mean_abs": None,
                         "max_abs": None})
            continue
        diff = np.abs(a.astype(np.float64) - b)
        rows.append({"image": str(path), "mean_abs": float(diff.mean()), "max_abs": float(diff.max())})
    same_shape = [r for r in rows if r["mean_abs"] is not None]
    return {"spec": spec.id, "ours": pre.describe(), "theirs": theirs.info.pipeline, "images": rows,
            "mean_abs": float(np.mean([r["mean_abs"] for r in same_shape])) if same_shape else None,
            "max_abs": float(max(r["max_abs"] for r in same_shape)) if same_shape else None}
