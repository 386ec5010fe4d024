"""porting's Python API: what the `porting` commands do, as functions (`import porting` loads no framework).

    import porting

    ported = porting.port("timm:xception65.tf_in1k", weights="xception65.pth", output="x65.ckpt")
    porting.export("x65.ckpt", "x65.onnx", opset=17, dynamic_size=True)
    report = porting.parity("timm:xception65.tf_in1k", weights="xception65.pth", runtimes=["ort", "openvino"])
    assert report.ok, report.first_failure()
    net, card = porting.load("x65.ckpt")                      # a MindSpore nn.Cell, in inference mode
    result = porting.evaluate("x65.onnx", "imagenet/", resize=342, size=299)
    porting.quantize("x65.onnx", "calib/", "x65.int8.onnx", images=1000)

Failures raise porting.errors.PortingError with the one-line message the CLI prints.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from porting import files, formats
from porting.errors import PortingError
from porting.heads import Head
from porting.options import Preprocess, TrainingRun
from porting.results import BenchRow, EvalResult, MapTable, PipelineCheck, Prediction, QuantizeReport, TargetFit
from porting.specs import ModelSpec, build_weight_map, resolve

__all__ = ["port", "load", "export", "export_to", "targets", "parity", "check_parity", "check_preprocessing", "evaluate", "predict", "quantize",
           "benchmark", "resolve", "models", "weight_map", "random_weights", "finetune", "finetune_recipe",
           "reusing_workers"]


def spec_for(spec: str | ModelSpec, modelzoo: str | Path | None = None) -> ModelSpec:
    """The spec a name (or spec) stands for, with the checkout its library runs from where it is one: `modelzoo`
    for a modelzoo: spec (else $PORTING_MODELZOO when it runs), checked now, before any work."""
    from porting.sources import with_checkout

    return with_checkout(spec if isinstance(spec, ModelSpec) else resolve(spec), modelzoo)


def own_head(spec: str | ModelSpec, head: str | Head | None) -> Head | None:
    """The user's own head of a timm or PaddleClas model (`head`: --head's spelling, 'linear:256,relu,dropout:0.3,
    linear:5' or 'none', or a Head laid out as an nn.Sequential at the classifier's place), checked before any
    framework loads (porting.sources.head_option); None: the library's standard head, or a Keras file's own. Its
    `features` stay 0 until the backbone's width is read (_over_backbone)."""
    if head is None:
        return None
    from porting.sources.head_option import asked_head

    return asked_head(spec if isinstance(spec, ModelSpec) else resolve(spec), head)


def _over_backbone(model: ModelSpec, head: Head | None) -> Head | None:
    """A --head's Head over the backbone's width, the channels the MindSpore model's standard classifier takes
    (MindSpore set up; the network is built once per variant and process)."""
    if head is None or head.features:
        return head
    from porting.converters.port import target_shapes

    return replace(head, features=int(target_shapes(model, model.num_classes)[f"{model.head}.weight"][1]))


def _head_needs_weights(model: ModelSpec, head: Head | None, weights, seed) -> None:
    """A head of the user's own describes their file: the library's download has its standard head."""
    if head is not None and weights is None and seed is None:
        raise PortingError(f"--head describes your weights file: give --weights FILE (or --random-init SEED); "
                           f"{model.source}'s own download of {model.source_name} holds its standard head")


def reusing_workers():
    """`with porting.reusing_workers(): ...`: the calls inside share one source worker per library, so torch,
    TensorFlow or Paddle is imported once rather than once per call (seconds each; a notebook, a test session)."""
    from porting.sources.jobs import reusing_workers as reusing

    return reusing()


def models() -> list[ModelSpec]:
    """Every supported SOURCE:MODEL spec, from the registry (no framework imported)."""
    from porting.specs import all_specs

    return all_specs()


def parameter_counts() -> dict[str, int]:
    """{spec id: trainable parameter count} of every spec's MindSpore network (builds each: seconds each)."""
    from porting import archs, msenv

    msenv.setup()
    counts = {}
    for spec in models():
        net = archs.build(spec.arch, spec.arch_config, spec.num_classes)
        counts[spec.id] = sum(p.size for p in net.get_parameters() if "moving_" not in p.name)
    return counts


def weight_map(spec: str | ModelSpec, *, modelzoo: str | Path | None = None, head: str | Head | None = None,
               weights: str | Path | None = None) -> MapTable:
    """The expanded weight map of `spec`, checked as port-weights checks it (on the library's untrained model):
    a porting.results.MapTable (spec, arch, ignore, rows: source, source_shape, target, target_shape,
    transform; head: the head's description or None). `head`: the user's own head (porting.heads; for timm and
    PaddleClas also --head's spelling, as for port), whose rows replace the classifier's; `weights`: a Keras
    whole-model file whose own head it is (read from its graph, as port reads it)."""
    import numpy as np

    from porting import msenv
    from porting.converters.port import target_shapes, weight_map_for
    from porting.sources import library
    from porting.sources.jobs import run_source
    from porting.sources.registry import own_model

    model = spec_for(spec, modelzoo)
    head = own_head(model, head)
    if weights is not None:
        _check_weights(model, weights)
        if library(model.source).read_own_model is None:
            raise PortingError(f"map --weights reads the head of a file that carries its graph (Keras); "
                               f"{model.source} files carry none: describe it with --head")
        file_head, size = own_model(model, weights)
        head, model = head or file_head, replace(model, input_size=size)  # a Flatten's width is the file's size
    wm = weight_map_for(model, head)
    sources = {k: v.shape for k, v in run_source(model, untrained=True, head=head).tensors.items()}
    msenv.setup()
    head = _over_backbone(model, head)
    targets = target_shapes(model, model.num_classes, head=head)
    wm.apply({k: np.zeros(v, np.float32) for k, v in sources.items()}, targets, model.id)
    return MapTable(spec=model.id, arch=model.arch, ignore=wm.ignore, rows=wm.table(sources, targets),
                    head=head.describe() if head is not None else None)


def _check_weights(model: ModelSpec, weights: str | Path) -> None:
    """A weights file named and made as the spec's library's are (a folder where its runner reads one), before any
    framework loads."""
    from porting.sources import library

    record = library(model.source)
    formats.check_weights(weights, record.weight_suffixes, model.id, folder_ok="" in record.export_suffixes)


def random_weights(spec: str | ModelSpec, output: str | Path, *, seed: int = 0,
                   num_classes: int | None = None, modelzoo: str | Path | None = None,
                   head: str | Head | None = None) -> Path:
    """Seeded synthetic source weights, written by the source library in its own format (by `output`'s suffix);
    `head`: a timm or PaddleClas model with a head of the user's own (--head's spelling), saved with its keys."""
    from porting.sources import library
    from porting.sources.jobs import run_source

    model = spec_for(spec, modelzoo)
    head = own_head(model, head)
    if head is not None and num_classes is not None:
        raise PortingError("give --num-classes or --head, not both: with --head, the classes are its last linear "
                           "layer's")
    formats.check_weights_output(output, library(model.source).weight_suffixes, model.id)
    # a library whose own checkpoints carry the optimizer's state (the model zoo's) gets its recipe's
    training = _training(model) if library(model.source).checkpoint_has_optimizer else None
    with files.atomic_output(output, what="weights file") as staged:
        run_source(model, seed=seed, num_classes=num_classes, want_tensors=False, save_weights=str(staged.file),
                   save_weights_as=str(output), training=training, head=head)
    return Path(output)


def _training(spec: ModelSpec):
    """The recipe a library's train.py wraps its network in (the model zoo's): its checkpoints carry that
    optimizer's state."""
    from porting.archs import get_arch
    from porting.job import Training
    from porting.training.recipes import RECIPES

    recipe = RECIPES[get_arch(spec.arch).recipe]
    return Training(recipe.optimizer, recipe.lr_max, recipe.momentum, recipe.weight_decay, recipe.loss_scale,
                    recipe.rmsprop_decay, recipe.rmsprop_epsilon)


def port(spec: str | ModelSpec, weights: str | Path | None = None, *, seed: int | None = None,
         output: str | Path | None = None, num_classes: int | None = None, keep_background: bool = False,
         allow_nonfinite: bool = False, modelzoo: str | Path | None = None, head: str | Head | None = None,
         log=lambda msg: None):
    """Source weights (a file, `seed` for seeded synthetic ones, neither: the library's download) to porting's
    parameters and model card (a `Ported`); with `output`, the .ckpt is written too. `head`: the user's own head
    (porting.heads) the source's model has instead of its library's standard classifier; a library that reads
    the head from the file itself (Keras) says it without one; timm and PaddleClas take --head's spelling too
    ('linear:256,relu,dropout:0.3,linear:5', 'none' for no head), checked against the file's tensors.
    `num_classes` replaces a custom head's last dense layer only (a feature extractor gets one)."""
    from porting.converters.port import port as port_tensors
    from porting.converters.port import target_shapes
    from porting.sources.jobs import source_job

    model = spec_for(spec, modelzoo)
    head = own_head(model, head)
    weights = str(weights) if weights is not None else None
    if weights is not None and seed is not None:
        raise PortingError("give either --weights or --random-init, not both")
    _head_needs_weights(model, head, weights, seed)
    if weights is not None:
        _check_weights(model, weights)
    if output is not None:  # before minutes of work, not after
        files.check_output(output, (weights,), what="checkpoint")
        formats.check_checkpoint_output(output)
    log(f"building {model.id} in a {model.source} worker process")
    with source_job(model, weights=weights, seed=seed, head=head) as source_result:
        from porting import msenv

        msenv.setup()  # MindSpore loads, and the target network is built, while the worker loads its framework
        head = _over_backbone(model, head)
        target_shapes(model, model.num_classes, head=head)
        source = source_result()
    ported = port_tensors(model, source, num_classes=num_classes, keep_background=keep_background,
                          allow_nonfinite=allow_nonfinite, head=head, log=log)
    if output is not None:
        from porting import checkpoint

        checkpoint.save(ported.params, output, ported.card, inputs=(weights,))
    return ported


def load(path: str | Path, device: str | None = None):
    """(MindSpore network in inference mode, porting.card.ModelCard) from a porting .ckpt, digests verified."""
    formats.check_checkpoint(path)
    from porting import checkpoint, msenv

    msenv.setup(device)
    return checkpoint.load_model(path)


def export(ckpt: str | Path, output: str | Path, format: str = "onnx", *, size: int | None = None,
           batch: int | None = None, opset: int = 17, dynamic_size: bool = False, fp16: bool = False,
           fold_bn: bool = False, device: str | None = None):
    """Export a .ckpt to ONNX (checked by onnx.checker), MINDIR or AIR; returns (path, input shape). For the way
    back to a source library, see export_to."""
    fmt = format.lower()
    if fmt not in ("onnx", "mindir", "air"):
        raise PortingError(f"unknown format '{format}': use onnx, mindir or air")
    onnx_only = [flag for flag, on in (("--dynamic-size", dynamic_size), ("--fp16", fp16), ("--fold-bn", fold_bn),
                                       ("--opset", opset != 17)) if on]
    if fmt != "onnx" and onnx_only:
        raise PortingError(f"{', '.join(onnx_only)} apply to ONNX exports, not {fmt.upper()}")
    formats.check_checkpoint(ckpt)  # the command line's mistakes before MindSpore loads
    files.check_output(output, (ckpt,), what=f"{fmt.upper()} output")
    formats.check_export_output(output, fmt)
    from porting import archs, checkpoint, msenv
    from porting.converters import export as exporter

    msenv.setup(device)
    if fmt == "air" and msenv.device() != "Ascend":
        raise PortingError(f"AIR export needs an Ascend device (this machine runs MindSpore on {msenv.device()}); "
                           f"use --format mindir or --format onnx instead")
    net, card = checkpoint.load_model(ckpt)
    size = card.check_size(archs.check_input_size(card.arch, size or card.input_size))
    if fmt == "onnx":
        options = exporter.OnnxOptions(opset=opset, batch=batch, dynamic_size=dynamic_size, float16=fp16,
                                       fold_bn=fold_bn)
        exporter.export_onnx(net, card, output, size, inputs=(ckpt,), options=options)
        return Path(output), options.input_shape(size)
    exporter.export_ms(net, fmt, output, size, batch=batch or 1, inputs=(ckpt,), card=card)
    return Path(output), [batch or 1, 3, size, size]


def export_to(ckpt: str | Path, output: str | Path, to: str, *, approximate: bool = False, check: bool = True,
              modelzoo: str | Path | None = None, size: int | None = None, batch: int = 2, log=lambda msg: None):
    """The checkpoint in a source library's own format (`to`: a spec, or a bare library for the checkpoint's own
    spec), written by that library's saver (porting.converters.target) and, unless check=False, read back by its
    loader and compared layer by layer with the checkpoint in MindSpore (porting.proof.prove_export: `batch` seeded
    inputs of `size`, default the checkpoint's). Returns (report, or None when unproven; the
    porting.converters.target.Fit; the target spec). Inexact targets need `approximate`."""
    from porting.converters import target

    ckpt, output = Path(ckpt), Path(output)
    target.check_early(ckpt, output, to)  # the command line's mistakes before MindSpore loads (checkpoint imports it)
    from porting import checkpoint

    params, card = checkpoint.load(ckpt)
    model = spec_for(target.target_spec(to, card), modelzoo)  # --to names a spec, or a library: the card's own
    export = target.prepare(ckpt, output, params, card, model, approximate=approximate, size=size, log=log)
    if not (check and export.runnable):  # --no-check, or the model zoo without a checkout (a line says so)
        target.write(export, log=log)
        return None, export.fit, model
    from porting.proof import prove_export

    return prove_export(export, batch=batch, approximate=approximate, log=log), export.fit, model


def targets(markdown: bool = False) -> list[TargetFit] | str:
    """Where each spec's checkpoints go with export_to: a porting.results.TargetFit (source, target, fit) for
    every pair of specs of one architecture (fit.exact, .folds, .differences, .mismatch, .verdict()), or the
    README's markdown table."""
    from porting.converters.target import target_fits, targets_table

    return targets_table() if markdown else target_fits()


def parity(spec: str | ModelSpec, weights: str | Path | None = None, *, seed: int | None = None, batch: int = 2,
           size: int | None = None, runtimes: Sequence[str] | str = (), onnx: bool = False, mindir: bool = False,
           openvino: bool = False, tensorrt: bool = False, images: str | Path | None = None, rtol: float = 1e-4,
           modelzoo: str | Path | None = None, chunk: int | None = None, head: str | Head | None = None,
           log=lambda msg: None):
    """Source model vs ported model(s), layer by layer: a porting.report.Report (`.ok`, `.first_failure()`, rows
    with the source layer, the MindSpore cell and its kind). `runtimes`: where else the port is checked after
    MindSpore, in that order (['ort', 'openvino'] or 'ort,openvino'; porting.runtimes lists them: ort, openvino,
    tensorrt, mindir); `onnx`, `mindir`, `openvino`, `tensorrt` say the same as flags. Each runs at f32 (in the
    verdict); OpenVINO's default precision and TensorRT's TF32 default and fp16 export are reported beside it
    (`report.info.default_precision`); TensorRT is skipped, in one line, without a CUDA device. `images`: a
    folder whose first `batch` images are the inputs instead of seeded synthetic ones. The inputs are compared
    `chunk` at a time (default: as many as hold about 256 MiB of recorded layers), so memory does not grow with
    `batch`; the report is the one of all inputs at once. `head`: the user's own head (porting.heads) the source's
    model has (timm and PaddleClas: --head's spelling too, as for port); every one of its layers is compared
    (kind 'head'); a library that reads it from the file (Keras) says it without one."""
    from porting import msenv
    from porting.proof import parity as run_parity
    from porting.images.folders import list_images

    model = spec_for(spec, modelzoo)
    head = own_head(model, head)
    _head_needs_weights(model, head, weights, seed)
    if size is not None:
        model.check_size(size)
    if weights is not None:
        _check_weights(model, weights)
    msenv.setup()
    head = _over_backbone(model, head)
    return run_parity(model, weights=str(weights) if weights is not None else None, seed=seed, batch=batch,
                      size=size, runtimes=[runtimes] if isinstance(runtimes, str) else list(runtimes), onnx=onnx,
                      mindir=mindir, openvino=openvino, tensorrt=tensorrt, log=log, rtol=rtol, chunk=chunk, head=head,
                      images=list_images(Path(images))[:batch] if images is not None else None)


check_parity = parity  # its name in porting 0.2.0


# One training step needs its whole batch at once (a train-mode BatchNorm normalises each image by the statistics of
# all of them), so it cannot go in chunks: its memory grows with the batch, about 4.3 GB + 0.25 GB an image at 299 px
# for Xception (measured: batch 2 4.7 GB, 6 5.6 GB). The batch is bounded instead: at most this many.
TRAIN_STEP_MAX_BATCH = 16


def train_step_parity(spec: str | ModelSpec, weights: str | Path | None = None, *, seed: int | None = None,
                      batch: int = 2, size: int | None = None, rtol: float | None = None,
                      modelzoo: str | Path | None = None, source_changes: dict | None = None,
                      head: str | Head | None = None, log=lambda msg: None):
    """One training step of the source library against one call of finetune's step: a Report whose rows are the
    loss and, per MindSpore parameter, its gradient ('grad'), its update ('update': the source's optimizer on
    MindSpore's gradients) and each BN moving statistic's update ('bn-update'); tolerances in
    porting.training.step_parity. `source_changes` alter the source's step alone (job.TrainStep fields: what the
    mutation tests get wrong on purpose); `head`: the user's own head, as for port."""
    from porting.sources import library

    model = spec_for(spec, modelzoo)
    head = own_head(model, head)
    _head_needs_weights(model, head, weights, seed)
    if batch > TRAIN_STEP_MAX_BATCH:
        raise PortingError(f"--train-step compares one step on its whole batch, held at once (BatchNorm's batch "
                           f"statistics join its images): --batch {batch} is more than the {TRAIN_STEP_MAX_BATCH} "
                           f"it takes")
    if not library(model.source).train_step:
        raise PortingError(f"--train-step compares the training step of timm, Keras and PaddleClas models; "
                           f"{model.id} is MindSpore code itself (its step is finetune's)")
    if size is not None:
        model.check_size(size)
    if weights is not None:
        _check_weights(model, weights)
    from porting import msenv
    from porting.training.step_parity import TRAIN_RTOL, train_step_parity as run

    if head is not None:
        msenv.setup(graph=True)  # as the step runs
        head = _over_backbone(model, head)
    return run(model, weights=str(weights) if weights is not None else None, seed=seed, batch=batch, size=size,
               rtol=rtol or TRAIN_RTOL, variants=[source_changes or {}], head=head, log=log)[0]


def evaluate(model: str | Path, data: str | Path, *, batch_size: int = 32, label_file: str | Path | None = None,
             results: str | Path | None = None, topk: int = 5, dump_logits: str | Path | None = None,
             workers: int | None = None, device: str | None = None, preprocessing: Preprocess | None = None,
             runtimes: Sequence[str] | str | None = None, runtime: str | None = None, precision: str | None = None,
             log=lambda msg: None, progress=None, **overrides) -> EvalResult | list[EvalResult]:
    """The loss, top-1 and top-5 accuracy (a porting.results.EvalResult: loss, top1, top5, samples, runtime,
    precision; `.as_dict()` in the model zoo's eval.py keys) of a .ckpt, .onnx or .mindir on DATA
    (class folders, or a flat folder with val_label.txt). `preprocessing` (porting.options.Preprocess) or its
    fields as keywords (size=, resize=, crop_pct=, interpolation=, mean=, std=) override the model card's.
    `runtime` says what runs the file (default: its own: mindspore for a .ckpt, 'ort' for an .onnx, 'mindir'
    for a .mindir; an .onnx also in 'openvino' or 'tensorrt'); `runtimes` (['ort', 'openvino'] or 'ort,openvino')
    runs it in each, the images read once, and returns a list of results, one per runtime that can run here.
    `precision` ('f32' unless said; 'default' lets the runtime choose): 'precision' in a result is what the
    runtime ran at. `results`: the deployment guide's per-image top-`topk` lines; `dump_logits`: an .npz of the
    logits and labels (both of one runtime). One batch of logits is held at a time (the files are written as the
    batches come), whatever the number of images."""
    from porting.deploy.evaluate import evaluate as run_eval

    if Path(data).is_file():  # before any runtime loads
        raise PortingError(f"--data '{data}' is a file: give the dataset's folder (class folders, or a flat folder of "
                           f"images with their val_label.txt)")
    asked = _runtimes_asked(runtimes, runtime)
    if dump_logits is not None:
        files.check_output(dump_logits, (model,))
    found = run_eval(Path(model), Path(data), batch_size=batch_size, device=device, workers=workers,
                     label_file=Path(label_file) if label_file else None, results=Path(results) if results else None,
                     topk=topk, log=log, progress=progress, runtimes=asked, precision=precision,
                     dump_logits=Path(dump_logits) if dump_logits is not None else None,
                     overrides=replace(preprocessing or Preprocess(), **overrides).as_dict())
    return found if runtimes is not None else found[0]


def _runtimes_asked(runtimes: Sequence[str] | str | None, runtime: str | None) -> list[str] | None:
    """`runtimes`, or the one `runtime` (the older keyword), or None: the file's own runtime."""
    if runtimes is not None and runtime is not None:
        raise PortingError("give runtimes=[...] or runtime=..., not both")
    if runtimes is not None:
        return [runtimes] if isinstance(runtimes, str) else list(runtimes)
    return [runtime] if runtime is not None else None


def predict(model: str | Path, images: list[str | Path], *, topk: int | None = None,
            labels: str | Path | None = None, device: str | None = None, preprocessing: Preprocess | None = None,
            runtimes: Sequence[str] | str | None = None, runtime: str | None = None, precision: str | None = None,
            log=lambda msg: None, **overrides) -> list[Prediction]:
    """Softmax top-k per image: a porting.results.Prediction (image, runtime, precision, top: name, index,
    probability) for every image in each runtime in turn; preprocessing, runtimes, runtime and precision as for
    evaluate."""
    from porting.deploy.evaluate import predict as run_predict

    for image in map(Path, images):  # before any runtime loads
        if image.is_dir():
            raise PortingError(f"'{image}' is a folder: predict takes image files ({image}/*.jpg...); for a "
                               f"folder's accuracy, porting eval --data {image}")
        if not image.is_file():
            raise PortingError(f"image '{image}' does not exist")
    return run_predict(Path(model), [Path(p) for p in images], topk=topk, labels_file=Path(labels) if labels else None,
                       device=device, overrides=replace(preprocessing or Preprocess(), **overrides).as_dict(),
                       runtimes=_runtimes_asked(runtimes, runtime), precision=precision, log=log)


def quantize(model: str | Path, calib: str | Path, output: str | Path, *, images: int | None = None,
             holdout: int = 200, method: str = "minmax", label_file: str | Path | None = None,
             log=lambda msg: None, progress=None) -> QuantizeReport:
    """int8 ONNX (static QDQ, per-channel) and the float32-vs-int8 report (porting.results.QuantizeReport);
    `images` calibration images (default 1000, or all that `calib` holds if fewer)."""
    from porting.deploy.quantize import METHODS
    from porting.deploy.quantize import quantize as run_quantize

    if method not in METHODS:
        raise PortingError(f"unknown calibration method '{method}': use {', '.join(METHODS)}")
    files.check_output(output, (model,), what="int8 ONNX output")
    formats.check_named(output, ".onnx", "quantize writes an int8 ONNX")
    return run_quantize(Path(model), Path(calib), Path(output), images=images, holdout=holdout, method=method,
                        label_file=Path(label_file) if label_file else None, log=log, progress=progress)


def benchmark(ckpt: str | Path, batches: tuple[int, ...] = (1, 8), *, size: int | None = None,
              reps: int = 10, device: str | None = None, runtimes: Sequence[str] | str | None = None,
              precisions: tuple[str, ...] = ("f32", "default"), progress=None,
              log=lambda msg: None) -> list[BenchRow]:
    """img/s of a ported model on this machine (porting.results.BenchRow: runtime, batch, size, median_s,
    img_per_s, precision) in MindSpore (GRAPH) and in each of `runtimes` (['ort',
    'openvino'] or 'ort,openvino'; default: ort, and every other ONNX runtime that is installed and can run
    here), each at every one of `precisions` it takes (a runtime that takes none of them: at f32)."""
    from porting.deploy.bench import bench as run_bench

    asked = _runtimes_asked(runtimes, None)
    return run_bench(Path(ckpt), tuple(batches), size=size, reps=reps, device=device, progress=progress,
                     runtimes=asked or None, precisions=tuple(precisions), log=log)


def check_preprocessing(spec: str | ModelSpec, images: str | Path, *, count: int | None = None,
                        size: int | None = None, modelzoo: str | Path | None = None,
                        log=lambda msg: None) -> PipelineCheck:
    """The port's image pipeline against the source library's own on the images in `images` (a folder, its
    first `count`, or a file): a porting.results.PipelineCheck (spec, ours, theirs, images: image, mean_abs,
    max_abs, shapes where they differ; mean_abs, max_abs)."""
    from porting import msenv
    from porting.images.folders import list_images
    from porting.proof import check_preprocessing as run_check

    model = spec_for(spec, modelzoo)
    if size is not None:
        model.check_size(size)
    msenv.setup()
    return run_check(model, list_images(Path(images))[:count], size=size, log=log)


def finetune_recipe(ckpt: str | Path, *, recipe: str | None = None, config: str | Path | None = None,
                    device: str | None = None, log=lambda msg: None, **recipe_values):
    """(recipe, settings, device): what `finetune` would train `ckpt` with on `device` (default: the config's
    device_target, else $PORTING_DEVICE, else MindSpore's own): the model-zoo recipe of its architecture (or
    `recipe`) for that device, `config` (a YAML) and `recipe_values` overriding it, in that order. A config's
    device_target that this machine cannot use is refused, naming the --device that overrides it."""
    formats.check_checkpoint(ckpt)
    from porting import checkpoint, msenv
    from porting.training import recipes

    _, card = checkpoint.load(ckpt)
    config = Path(config) if config else None
    named = recipes.config_device(config) if config and not device else None
    if named and named not in msenv.usable_devices():  # a model-zoo default_config.yaml, written for Ascend
        here = msenv.usable_devices()
        raise PortingError(f"config file '{config}' sets device_target: {named}, which this MindSpore cannot use "
                           f"here; --device {here[-1]} overrides it (the file's recipe values still apply; "
                           f"usable here: {', '.join(here)})")
    device = msenv.canonical_device(device) if device else (named or msenv.default_device())
    chosen, settings = recipes.load(recipe, card.arch, config, recipe_values, log=log, device=device)
    return chosen, settings, device


def _launched_as_ranks() -> bool:
    """Started as one rank of a data-parallel job: by msrun (MindSpore's dynamic cluster: MS_ROLE), mpirun, or an
    Ascend rank table; mindspore.communication.init() needs one of them."""
    import os

    return any(os.environ.get(v) for v in ("MS_ROLE", "OMPI_COMM_WORLD_RANK", "RANK_TABLE_FILE"))


def finetune(ckpt: str | Path, data: str | Path, output: str | Path = "finetune_out", *, recipe: str | None = None,
             config: str | Path | None = None, run: TrainingRun | None = None, log=lambda msg: None, progress=None,
             **options) -> Path:
    """Fine-tune a .ckpt with the model-zoo recipe of its architecture for the device it runs on (or `recipe`),
    `config` (a YAML) and recipe values (epochs=, batch_size=, lr_max=...) overriding it, in that order; `run`
    (porting.options.TrainingRun: device, resume, distributed...) or its fields as keywords says how it runs.
    Returns the output folder."""
    from porting.options import share_out
    from porting.training.recipes import Recipe

    run_fields, recipe_values = share_out(options, TrainingRun, Recipe)
    run = replace(run or TrainingRun(), **run_fields)
    # what the command line alone says is wrong, before MindSpore loads
    from porting.heads import BACKBONE_BN

    if run.backbone_bn not in (None, *BACKBONE_BN):
        raise PortingError(f"backbone_bn '{run.backbone_bn}' is not one of {', '.join(BACKBONE_BN)}")
    if run.distributed and not _launched_as_ranks():
        raise PortingError("--distributed trains one process per device, and MindSpore's msrun starts them: msrun "
                           "--worker_num=N --local_worker_num=N --master_port=8118 --log_dir=msrun_log --join=True "
                           "\"$(which porting)\" finetune ... --distributed (README 'Data parallel with msrun'); on "
                           "one device, leave --distributed out")
    if not Path(data).is_dir():
        raise PortingError(f"--data '{data}' {'is a file' if Path(data).exists() else 'does not exist'}: give the "
                           f"dataset's folder ({data}/train/<class>/<image>)")
    files.writable_folder(output)
    from porting.training.finetune import Options
    from porting.training.finetune import finetune as run_finetune

    chosen, settings, device = finetune_recipe(ckpt, recipe=recipe, config=config, device=run.device, log=log,
                                               **recipe_values)
    opts = Options(ckpt=Path(ckpt), data=Path(data), output=Path(output), recipe=chosen,
                   run=replace(run, device=device), lr_given=tuple(settings["lr_given"]))
    run_finetune(opts, log=log, progress=progress)
    return Path(output)
