"""parity: run the source model and the ported model(s) on the same inputs, layer by layer.

The source runs in its worker process; MindSpore, onnxruntime and the MINDIR run here. Each runtime's
outputs are renamed to the source's layer names and handed to the framework-agnostic comparator.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from porting import files
from porting.compare import RTOL, Report, compare
from porting.converters.port import check_finite, map_source, metadata_for
from porting.runners.inputs import make_images
from porting.runners.source import run_source
from porting.specs import ModelSpec


def run_mindspore(net, x: np.ndarray, cells: list[str]) -> dict[str, np.ndarray]:
    import mindspore as ms

    from porting.models.layers import record_outputs

    with record_outputs(net, cells) as outputs:
        logits = net(ms.Tensor(x)).asnumpy()
    return {**outputs, "logits": logits}


def run_onnx(net, metadata: dict, x: np.ndarray, cells: list[str], size: int) -> dict[str, np.ndarray]:
    """Our ONNX graph traced with every tapped layer as an extra output, run in onnxruntime.

    The exported file itself has only the logits; parity runs it separately (run_onnx_file).
    """
    import onnxruntime as ort

    from porting.converters.export import trace_onnx

    model, tap_names = trace_onnx(net, metadata, size, cells)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    results = dict(zip(names, session.run(None, {"input": x})))
    return {**{cell: results[onnx_name] for cell, onnx_name in tap_names.items()}, "logits": results["logits"]}


def run_onnx_file(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


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
    from porting.converters import export

    size = size or spec.input_size
    wm = weight_map or spec.build_weight_map()
    x = user_images(images, spec, size) if images else make_images(input_seed, batch, size, spec.mean, spec.std)
    batch = len(x)
    report = Report(spec=spec.id, rtol=rtol, info={
        "batch": batch, "size": size, "inputs": f"{batch} image file(s)" if images else "seeded synthetic images",
        "weights": weights or (f"random-init:{seed}" if seed is not None else "pretrained")})
    t0 = time.perf_counter()
    log(f"running the {spec.source} source model ({batch}x3x{size}x{size}) in its own process")
    source = run_source(spec, weights=weights, seed=seed, inputs=x, taps=[l.source for l in wm.layers])
    by_source = {l.source: l for l in wm.layers}
    order = [name for name in source.order if name in by_source]
    report.info["layers"] = {name: by_source[name].target for name in order}
    report.info["layer_kinds"] = {name: by_source[name].kind for name in order}
    check_finite(source.tensors, weights or spec.id)
    params = map_source(spec, source, spec.id, weight_map=wm)
    metadata = metadata_for(spec, source, weights, seed, int(source.info["num_classes"]), False)
    cells = [by_source[name].target for name in order]
    to_source = {by_source[name].target: name for name in order}

    def renamed(outputs):
        return {to_source.get(k, k): v for k, v in outputs.items()}

    with files.scratch_dir("parity-") as tmp:
        # Round-trip through the real files users get: the .ckpt, the checked .onnx, the .mindir.
        ckpt = Path(tmp) / "model.ckpt"
        checkpoint.save(params, ckpt, metadata)
        net, metadata = checkpoint.load_model(ckpt)
        log("running the ported MindSpore model")
        compare(report, "mindspore", source.outputs, renamed(run_mindspore(net, x, cells)), order)
        if onnx:
            log("running the ONNX export in onnxruntime")
            path = export.export_onnx(net, metadata, Path(tmp) / "model.onnx", size)
            per_layer = renamed(run_onnx(net, metadata, x, cells, size))
            per_layer["logits"] = run_onnx_file(path, x)
            compare(report, "onnx", source.outputs, per_layer, order)
        if mindir:
            log("exporting and reloading MINDIR")
            path = export.export_ms(net, "MINDIR", Path(tmp) / "model.mindir", size, batch=batch, metadata=metadata)
            compare(report, "mindir", source.outputs, {"logits": export.run_mindir(path, x)}, [])
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
