"""parity: run the source model and the ported model on the same inputs, layer by layer, in every runtime.

One `port()` (the very path port-weights takes, drop_background included) runs the source in its worker on the
inputs and builds the MindSpore network once; the parameters round-trip through a real .ckpt into that network;
then each target runner (MindSpore, ONNX Runtime, MINDIR) infers and the framework-agnostic comparator compares
its outputs, renamed to the source's layer names, with the source's.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from porting import files
from porting.compare import RTOL, Report, compare
from porting.converters.port import port
from porting.runners.inputs import make_images
from porting.runners.source import run_source
from porting.specs import ModelSpec


def user_images(images: list[Path], spec: ModelSpec, size: int) -> np.ndarray:
    """The user's image files through the port's own evaluation preprocessing (porting.training.data)."""
    from porting.training import data as data_mod

    pre = data_mod.preprocessing(spec.preprocessing(), size=size)
    return np.stack([data_mod.load_image(Path(p), pre) for p in images])


def parity(spec: ModelSpec, *, weights: str | None = None, seed: int | None = None, batch: int = 2,
           size: int | None = None, onnx: bool = False, mindir: bool = False, input_seed: int = 1234,
           log=lambda msg: None, weight_map=None, images: list[Path] | None = None, rtol: float = RTOL) -> Report:
    """Seeded image-like inputs, or `images` (the user's files, preprocessed as the port evaluates); `rtol`
    scales the tolerance. `weight_map` overrides the spec's table (the mapping-bug tests inject a broken one)."""
    from porting import checkpoint
    from porting.runners.targets import MindirRunner, MindSporeRunner, OnnxRunner

    size = size or spec.input_size
    wm = weight_map or spec.build_weight_map()
    x = user_images(images, spec, size) if images else make_images(input_seed, batch, size, spec.mean, spec.std)
    batch = len(x)
    report = Report(spec=spec.id, rtol=rtol, info={
        "batch": batch, "size": size, "inputs": f"{batch} image file(s)" if images else "seeded synthetic images",
        "weights": weights or (f"random-init:{seed}" if seed is not None else "pretrained")})
    t0 = time.perf_counter()
    log(f"running the {spec.source} source model ({batch}x3x{size}x{size}) in its own process")
    ported = port(spec, weights=weights, seed=seed, inputs=x, taps=[layer.source for layer in wm.layers],
                  weight_map=wm, keep_net=True, log=log)
    reference = dict(ported.source.outputs)
    if ported.metadata.get("background_class") == {"index": 0, "kept": False}:
        reference["logits"] = reference["logits"][:, 1:]  # what port-weights ports: TF-slim's class 0 dropped
    by_source = {layer.source: layer for layer in wm.layers}
    layers = [by_source[name] for name in ported.source.order if name in by_source]  # in the source's order
    cells = [layer.target for layer in layers]
    to_source = {layer.target: layer.source for layer in layers}
    with files.scratch_dir("parity-") as tmp:
        # Round-trip through the real files users get: the .ckpt, the checked .onnx, the .mindir.
        checkpoint.save(ported.params, Path(tmp) / "model.ckpt", ported.metadata)
        net, metadata = checkpoint.load_model(Path(tmp) / "model.ckpt", into=ported.net)
        runners = [lambda: MindSporeRunner(net)]
        if onnx:
            runners.append(lambda: OnnxRunner(net, metadata, size, Path(tmp) / "model.onnx"))
        if mindir:
            runners.append(lambda: MindirRunner(net, metadata, size, batch, Path(tmp) / "model.mindir"))
        for make in runners:
            runner = make()
            log(f"running {runner.description}")
            outputs = runner.infer(x, cells)
            compare(report, runner.name, reference, {to_source.get(k, k): v for k, v in outputs.items()}, layers)
    report.info["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def check_preprocessing(spec: ModelSpec, images: list[Path], size: int | None = None, log=lambda msg: None) -> dict:
    """The port's image pipeline against the source library's own (timm.data.create_transform, Keras's
    load_img + preprocess_input, PaddleClas's deploy operators) on the same files, in normalised units."""
    from porting.training import data as data_mod

    size = size or spec.input_size
    pre = data_mod.preprocessing(spec.preprocessing(), size=size)
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
    return {"spec": spec.id, "ours": pre.describe(), "theirs": theirs.info.get("pipeline", ""), "images": rows,
            "mean_abs": float(np.mean([r["mean_abs"] for r in same_shape])) if same_shape else None,
            "max_abs": float(max(r["max_abs"] for r in same_shape)) if same_shape else None}
