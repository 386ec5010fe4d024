"""porting's Python API: what the `porting` commands do, as functions (`import porting` loads no framework).

    import porting

    ported = porting.port("timm:xception65.tf_in1k", weights="xception65.pth", output="x65.ckpt")
    porting.export("x65.ckpt", "x65.onnx", opset=17, dynamic_size=True)
    report = porting.check_parity("timm:xception65.tf_in1k", weights="xception65.pth", onnx=True)
    assert report.ok, report.first_failure()
    net, metadata = porting.load("x65.ckpt")                  # a MindSpore nn.Cell, in inference mode
    result = porting.evaluate("x65.onnx", "imagenet/", resize=342, size=299)
    porting.quantize("x65.onnx", "calib/", "x65.int8.onnx", images=1000)

Failures raise porting.errors.PortingError with the one-line message the CLI prints.
"""
from __future__ import annotations

from pathlib import Path

from porting import files
from porting.errors import PortingError
from porting.specs import ModelSpec, resolve

__all__ = ["port", "load", "export", "check_parity", "evaluate", "predict", "quantize", "benchmark", "resolve"]


def _spec(spec: str | ModelSpec) -> ModelSpec:
    return spec if isinstance(spec, ModelSpec) else resolve(spec)


def port(spec: str | ModelSpec, weights: str | Path | None = None, *, seed: int | None = None,
         output: str | Path | None = None, num_classes: int | None = None, keep_background: bool = False,
         allow_nonfinite: bool = False, log=lambda msg: None):
    """Source weights (a file, `seed` for seeded synthetic ones, neither: the library's download) to porting's
    parameters and metadata (a `Ported`); with `output`, the .ckpt is written too."""
    from porting.converters.port import port as port_params
    from porting.converters.port import port_to_file

    kwargs = dict(weights=str(weights) if weights is not None else None, seed=seed, num_classes=num_classes,
                  keep_background=keep_background, allow_nonfinite=allow_nonfinite, log=log)
    if output is None:
        return port_params(_spec(spec), **kwargs)
    return port_to_file(_spec(spec), str(output), **kwargs)


def load(path: str | Path, device: str | None = None):
    """(MindSpore network in inference mode, metadata) from a porting .ckpt, digests verified."""
    from porting import checkpoint, msenv

    msenv.setup(device)
    return checkpoint.load_model(path)


def export(ckpt: str | Path, output: str | Path, format: str = "onnx", *, size: int | None = None,
           batch: int | None = None, opset: int = 17, dynamic_size: bool = False, fp16: bool = False,
           fold_bn: bool = False, device: str | None = None) -> tuple[Path, list]:
    """Export a .ckpt to ONNX (checked by onnx.checker), MINDIR or AIR; returns (path, input shape)."""
    from porting import archs, checkpoint, msenv
    from porting.converters import export as exporter

    fmt = format.lower()
    if fmt not in ("onnx", "mindir", "air"):
        raise PortingError(f"unknown format '{format}': use onnx, mindir or air")
    onnx_only = [flag for flag, on in (("--dynamic-size", dynamic_size), ("--fp16", fp16), ("--fold-bn", fold_bn),
                                       ("--opset", opset != 17)) if on]
    if fmt != "onnx" and onnx_only:
        raise PortingError(f"{', '.join(onnx_only)} apply to ONNX exports, not {fmt.upper()}")
    files.check_output(output, (ckpt,), what=f"{fmt.upper()} output")
    msenv.setup(device)
    if fmt == "air" and msenv.device() != "Ascend":
        raise PortingError(f"AIR export needs an Ascend device (this machine runs MindSpore on {msenv.device()}); "
                           f"use --format mindir or --format onnx instead")
    net, metadata = checkpoint.load_model(ckpt)
    size = archs.check_input_size(metadata["arch"], size or int(metadata["input_size"]))
    if fmt == "onnx":
        options = exporter.OnnxOptions(opset=opset, batch=batch, dynamic_size=dynamic_size, float16=fp16,
                                       fold_bn=fold_bn)
        exporter.export_onnx(net, metadata, output, size, inputs=(ckpt,), options=options)
        return Path(output), options.input_shape(size)
    exporter.export_ms(net, fmt, output, size, batch=batch or 1, inputs=(ckpt,), metadata=metadata)
    return Path(output), [batch or 1, 3, size, size]


def check_parity(spec: str | ModelSpec, weights: str | Path | None = None, *, seed: int | None = None, batch: int = 2,
                 size: int | None = None, onnx: bool = False, mindir: bool = False,
                 images: str | Path | None = None, rtol: float = 1e-4, log=lambda msg: None):
    """Source model vs ported model(s), layer by layer: a porting.compare.Report (`.ok`, `.first_failure()`)."""
    from porting import msenv
    from porting.parity import parity as run_parity
    from porting.training.data import list_images

    model = _spec(spec)
    if size is not None:
        model.check_size(size)
    msenv.setup()
    return run_parity(model, weights=str(weights) if weights is not None else None, seed=seed, batch=batch,
                      size=size, onnx=onnx, mindir=mindir, log=log, rtol=rtol,
                      images=list_images(Path(images))[:batch] if images is not None else None)


def evaluate(model: str | Path, data: str | Path, *, batch_size: int = 32, label_file: str | Path | None = None,
             size: int | None = None, resize: int | None = None, crop_pct: float | None = None,
             interpolation: str | None = None, mean=None, std=None, results: str | Path | None = None,
             device: str | None = None) -> dict:
    """{'Loss', 'Top_1_Acc', 'Top_5_Acc', 'samples'} of a .ckpt, .onnx or .mindir on DATA (class folders, or a
    flat folder with val_label.txt)."""
    from porting.training.evaluate import evaluate as run_eval

    result, _, labels = run_eval(Path(model), Path(data), batch_size=batch_size, device=device,
                                 label_file=Path(label_file) if label_file else None,
                                 results=Path(results) if results else None,
                                 overrides=dict(size=size, resize=resize, crop_pct=crop_pct,
                                                interpolation=interpolation, mean=mean, std=std))
    return dict(result, samples=int(len(labels)))


def predict(model: str | Path, images: list[str | Path], *, topk: int | None = None,
            labels: str | Path | None = None, device: str | None = None, **preprocessing) -> list[dict]:
    """Softmax top-k per image: [{'image', 'top': [{'class', 'index', 'probability'}]}]."""
    from porting.training.evaluate import predict as run_predict

    return run_predict(Path(model), [Path(p) for p in images], topk=topk, labels_file=Path(labels) if labels else None,
                       device=device, overrides=preprocessing)


def quantize(model: str | Path, calib: str | Path, output: str | Path, *, images: int = 1000, holdout: int = 200,
             method: str = "minmax", label_file: str | Path | None = None) -> dict:
    """int8 ONNX (static QDQ, per-channel) and the float32-vs-int8 report."""
    from porting.converters.quantize import METHODS
    from porting.converters.quantize import quantize as run_quantize

    if method not in METHODS:
        raise PortingError(f"unknown calibration method '{method}': use {', '.join(METHODS)}")
    return run_quantize(Path(model), Path(calib), Path(output), images=images, holdout=holdout, method=method,
                        label_file=Path(label_file) if label_file else None)


def benchmark(ckpt: str | Path, batches: tuple[int, ...] = (1, 8), *, size: int | None = None,
              reps: int = 10, device: str | None = None) -> list[dict]:
    """img/s of a ported model in MindSpore (GRAPH) and ONNX Runtime on this machine."""
    from porting.bench import bench as run_bench

    return run_bench(Path(ckpt), tuple(batches), size=size, reps=reps, device=device)
