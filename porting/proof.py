"""The proofs: `parity`, the source model and the ported model on the same inputs, layer by layer, in every
runtime; `prove_export`, the file `export --to` writes, read back and run in its library's code against the
checkpoint in MindSpore; `check_preprocessing`, the port's image pipeline against the library's. The first two
compare the weight map's layers that the source computed, in its order, under its names (pair_layers).

parity: the source runs in its worker on the inputs (a runtime: sources.jobs.SourceRuntime) while the MindSpore
network is built once; `port()` (the very path port-weights takes, drop_background included) maps its tensors; the
parameters round-trip through a real .ckpt into that network; then each runtime (MindSpore, ONNX Runtime,
OpenVINO, MINDIR) infers and the framework-agnostic comparator compares its outputs, renamed to the source's layer
names, with the source's.

The inputs go through in chunks: every recorded layer of every image is ~180 MiB at 299 px for Xception, and
each runtime holds about as much again, so a chunk is as many images as keep its recorded layers near
TAPS_PER_CHUNK (measured on the first image), and each chunk goes through the source (the model kept loaded in
its worker) and every runtime before the next one is drawn; the comparator folds it into running statistics.
Memory stays that of one chunk, whatever the number of images.
"""
from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from porting import files
from porting.compare import RTOL, Comparison, Report, compare
from porting.report import OtherPrecision, ReportInfo
from porting.results import ImageDifference, PipelineCheck
from porting.converters.port import port, weight_map_for
from porting.converters.target import Export, writing
from porting.errors import PortingError
from porting.heads import Head
from porting.weight_maps.heads import HEAD_KIND
from porting.runtimes import LOGITS, Runtime, choose_runtimes
from porting.sources import library
from porting.sources.inputs import SeededImages, make_images
from porting.sources.jobs import SourceRuntime, reusing_workers, run_source, source_job
from porting.sources.registry import own_model
from porting.specs import ModelSpec, spec_card
from porting.weight_maps import Layer

# Bytes of recorded layer outputs (float32) one chunk of images may hold; the source's worker, the reference and
# each runtime's outputs and allocator hold about as much again each (measured at 299 px: 1.3 GB per Xception
# image with --onnx --openvino, when every image went through at once). At least one image a chunk.
TAPS_PER_CHUNK = 256 << 20


@dataclass(frozen=True)
class Pairing:
    """The weight map's layers the source library computed, in the order it computed them: what a comparison of
    the source's outputs (by its layer names) and a MindSpore runtime's (by cell) pairs."""

    layers: list[Layer]

    @property
    def taps(self) -> list[str]:
        """The source's layer names, to record there."""
        return [layer.source for layer in self.layers]

    @property
    def cells(self) -> list[str]:
        """The MindSpore cells, to record in a runtime."""
        return [layer.target for layer in self.layers]

    def by_source_name(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A runtime's outputs (by cell) under the source's layer names, the logits as they are; other cells left
        out."""
        names = {layer.target: layer.source for layer in self.layers}
        return {names.get(k, k): v for k, v in outputs.items() if k in names or k == LOGITS}


def pair_layers(layers: Sequence[Layer], order: Sequence[str]) -> Pairing:
    """`layers` (a weight map's) that the source computed, in `order` (its taps, as it ran them)."""
    by_source = {layer.source: layer for layer in layers}
    return Pairing([by_source[name] for name in order if name in by_source])


def user_images(images: list[Path], spec: ModelSpec, size: int) -> np.ndarray:
    """The user's image files through the port's own evaluation preprocessing (porting.images)."""
    from porting.images.pipelines import load_image
    from porting.images.preprocessing import preprocessing

    pre = preprocessing(spec_card(spec), size=size)
    return np.stack([load_image(Path(p), pre) for p in images])


def _images(spec: ModelSpec, size: int, images: list[Path] | None, batch: int,
            seed: int) -> Callable[[int], np.ndarray]:
    """take(n): the next n inputs, the user's files (preprocessed n at a time) or the seeded images."""
    if not images:
        return SeededImages(seed, batch, size, spec.mean, spec.std).take
    taken = 0

    def take(n: int) -> np.ndarray:
        nonlocal taken
        chunk, taken = images[taken:taken + n], taken + n
        return user_images(chunk, spec, size)

    return take


def chunks(count: int, first: int, chunk: int) -> list[int]:
    """The chunk sizes: `first`, then `chunk` at a time (the last one what is left)."""
    rest = count - first
    return [first] + [chunk] * (rest // chunk) + ([rest % chunk] if rest % chunk else [])


class Padded:
    """An open runtime of one input shape (its record's fixed_batch: a MINDIR's batch is fixed at export, TensorRT
    builds an engine per shape) on chunks of at most `batch` inputs: zeros fill the batch and their outputs are
    dropped (inference computes each image on its own). Everything else (name, description, precision,
    describe_precision()) is the runtime's own."""

    def __init__(self, runtime: Runtime, batch: int):
        self.runtime, self.batch = runtime, batch

    def __getattr__(self, name):
        if name == "runtime":  # not set yet
            raise AttributeError(name)
        return getattr(self.runtime, name)

    def infer(self, x: np.ndarray, taps=()) -> dict[str, np.ndarray]:
        n = len(x)
        if n < self.batch:
            x = np.concatenate([x, np.zeros((self.batch - n, *x.shape[1:]), x.dtype)])
        return {k: v[:n] for k, v in self.runtime.infer(x, taps).items()}

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.infer(x)[LOGITS]


@dataclass
class DefaultPrecision:
    """What a deployment runtime computes at a precision other than f32 (its own default: OpenVINO's bf16 on CPUs
    that have it, TensorRT's TF32; or f16), against the reference logits, folded chunk by chunk: reported beside
    the table, not part of the verdict (the f32 rows are)."""

    runtime: Runtime | Padded
    label: str = "at its default precision"
    max_abs: float = 0.0
    ref_abs_max: float = 0.0
    agree: int = 0
    samples: int = 0

    def add(self, reference_logits: np.ndarray, x: np.ndarray) -> None:
        ref = reference_logits.astype(np.float64)
        got = self.runtime.logits(x).astype(np.float64)
        self.max_abs = float(np.maximum(self.max_abs, np.abs(ref - got).max()))  # a NaN stays
        self.ref_abs_max = float(np.maximum(self.ref_abs_max, np.abs(ref).max()))
        self.agree += int(np.sum(np.argmax(ref, axis=-1) == np.argmax(got, axis=-1)))
        self.samples += len(ref)

    def finish(self, report: Report, what: str) -> None:
        runtime = self.runtime
        report.info.default_precision[runtime.name] = OtherPrecision(
            runtime=f"{runtime.name.split('-')[0]} {self.label}", precision=runtime.describe_precision(),
            max_abs=self.max_abs, max_rel=self.max_abs / max(self.ref_abs_max, 1e-12),
            top1_agree=self.agree / self.samples, inputs=what,
            within_tolerance=self.max_abs <= report.rtol * max(1.0, self.ref_abs_max))


def parity(spec: ModelSpec, *, weights: str | None = None, seed: int | None = None, batch: int = 2,
           size: int | None = None, runtimes: Sequence[str] = (), onnx: bool = False, mindir: bool = False,
           openvino: bool = False, tensorrt: bool = False, input_seed: int = 1234, log=lambda msg: None,
           weight_map=None, images: list[Path] | None = None, rtol: float = RTOL, chunk: int | None = None,
           head: Head | None = None) -> Report:
    """Seeded image-like inputs, or `images` (the user's files, preprocessed as the port evaluates); `rtol`
    scales the tolerance. `weight_map` overrides the spec's table (the mapping-bug tests inject a broken one).
    `runtimes`: where else the port is checked, in that order, after MindSpore (names from porting.runtimes:
    ort, openvino, tensorrt, mindir); `onnx`, `mindir`, `openvino`, `tensorrt` are the same, as flags. Each at
    f32, layer by layer where it shows layers; beside it, what its other precisions give (OpenVINO's default,
    TensorRT's TF32 default and its fp16 export). A runtime that cannot run here (TensorRT without a CUDA device)
    is skipped, in one line. `chunk`: inputs run at once (default: from the size of the recorded layers,
    TAPS_PER_CHUNK); the report is the one all of them at once would give. `head`: the user's own head the
    source's model has (else the one its worker reports, if any): each of its layers is compared; a feature
    extractor's output is compared as 'features', without a top-1."""
    with reusing_workers():  # the source's model stays loaded in its worker from one chunk to the next
        return _parity(spec, weights=weights, seed=seed, batch=batch, size=size, runtimes=runtimes, onnx=onnx,
                       mindir=mindir, openvino=openvino, tensorrt=tensorrt, input_seed=input_seed, log=log,
                       weight_map=weight_map, images=images, rtol=rtol, chunk=chunk, head=head)


def _parity(spec: ModelSpec, *, weights, seed, batch, size, runtimes, onnx, mindir, openvino, tensorrt, input_seed,
            log, weight_map, images, rtol, chunk, head) -> Report:
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

    file_head, file_size = own_model(spec, weights)  # a user's Keras model: its head, the size it was built at
    head, size = head or file_head, size or file_size
    wm = weight_map or weight_map_for(spec, head)
    count = len(images) if images else batch
    take = _images(spec, size, images, batch, input_seed)
    x = take(min(count, chunk or 1))  # without a chunk size, the first image measures the recorded layers
    report = Report(spec=spec.id, rtol=rtol, info=ReportInfo(
        batch=count, size=size, inputs=f"{count} image file(s)" if images else "seeded synthetic images",
        weights=weights or (f"random-init:{seed}" if seed is not None else "pretrained"), skipped=skipped))
    t0 = time.perf_counter()
    log(f"running the {spec.source} source model ({count}x3x{size}x{size}) in its own process")
    job = {"weights": weights, "seed": seed, "keep_model": uuid.uuid4().hex, "head": head}
    with source_job(spec, inputs=x, taps=[layer.source for layer in wm.layers], **job) as done:
        msenv.setup()  # MindSpore loads, and the target network is built, while the worker runs the source
        net = archs.build(spec.arch, spec.arch_config, *((head.num_classes, head, spec.head) if head is not None
                                                          else (spec.num_classes,)))
        source = SourceRuntime(spec, done(), x, job)
    late_head = head is None and source.source.info.head is not None
    if late_head:  # the file says its head (Keras): its rows and layers
        head = Head.from_dict(source.source.info.head, spec.id)
        log(f"the model's own head: {head.describe()}")
        wm = weight_map_for(spec, head) if weight_map is None else _with_head(spec, weight_map, head)
        net = archs.build(spec.arch, spec.arch_config, head.num_classes, head, spec.head)
        source.inputs = None  # the first chunk runs again, its head layers tapped too
        job["head"] = head
    # the very path port-weights takes (drop_background included), checked against the network parity runs
    ported = port(spec, source.source, weight_map=wm, net=net, head=head, log=log)
    source.source.tensors = {}  # ported: the source's weights are not needed again
    background_dropped = ported.card.background_dropped
    pairing = pair_layers(wm.layers, source.order)
    if late_head:  # the first run did not tap the head the file turned out to have: its layers follow the backbone
        pairing.layers += [layer for layer in wm.layers
                           if layer.kind == HEAD_KIND and layer.source not in source.order]
    layers, taps = pairing.layers, pairing.taps
    if chunk is None:
        per_image = sum(v.nbytes for v in source.source.outputs.values()) / len(x)
        chunk = max(1, min(count, int(TAPS_PER_CHUNK // max(per_image, 1))))
    sizes = chunks(count, len(x), min(chunk, count))
    if len(sizes) > 1:
        log(f"comparing the {count} inputs in {len(sizes)} chunks of at most {max(sizes)}")
    cells = pairing.cells
    # a feature extractor's output is compared as 'features', without a top-1 (it has no classes)
    output = "features" if ported.card.headless else LOGITS
    if output != LOGITS:
        report.info.output = output
    with files.scratch_dir("parity-") as tmp:
        # Round-trip through the real files users get: the .ckpt, the checked .onnx, the .mindir.
        checkpoint.save(ported.params, tmp / "model.ckpt", ported.card)
        net, card = checkpoint.load_model(tmp / "model.ckpt", into=net)
        del ported

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
            other precision; the float16 export where the runtime computes f16 from the file), the MINDIR (its
            batch fixed: the largest chunk's)."""
            if record.runs == "network":
                return net, None, ""
            if record.runs == "mindir":
                return (export_ms(net, "MINDIR", tmp / "model.mindir", size, batch=max(sizes), card=card), None,
                        "")
            if precision == "f32":
                return (*onnx_graph(), str(tmp / "model.onnx"))
            if precision == "f16" and record.f16_from_file:
                if not (tmp / "model.fp16.onnx").exists():
                    half, _ = trace_onnx(net, card, size, options=OnnxOptions(float16=True))
                    write_onnx(half, tmp / "model.fp16.onnx")
                return tmp / "model.fp16.onnx", None, ""
            return tmp / "model.onnx", None, ""

        def padded(record, runtime: Runtime) -> Runtime | Padded:
            """A runtime of one input shape (its record's fixed_batch) takes every chunk padded to the largest."""
            return Padded(runtime, max(sizes)) if record.fixed_batch else runtime

        with contextlib.ExitStack() as opened:  # every runtime open before the first chunk, closed at the end
            running = []  # each chunk goes through all of them, then is let go
            for record in [runtime_record("mindspore"), *chosen]:
                model, tapped, what = model_for(record)
                running.append(padded(record, opened.enter_context(
                    record.runtime(model, taps=tapped, precision="f32", what=what))))
            beside = []  # what a deployer gets at the runtime's other precisions, reported beside the verdict
            for record in chosen:
                for precision in record.beside:
                    label = ("at its default precision" if precision == "default" else "on the --fp16 export"
                             if precision == "f16" and record.f16_from_file else f"at {precision}")
                    model, _, _ = model_for(record, precision)
                    runtime = opened.enter_context(record.runtime(model, precision=precision))
                    beside.append(DefaultPrecision(padded(record, runtime), label))
            for runtime in [*running, *(b.runtime for b in beside)]:
                log(f"running {runtime.description}")
            comparisons = [Comparison(report, runtime.name, layers, output, top1=output == LOGITS)
                           for runtime in running]
            done_count = 0
            for i, n in enumerate(sizes):
                x = x if i == 0 else take(n)
                if len(sizes) > 1:
                    log(f"inputs {done_count + 1}-{done_count + n} of {count}")
                done_count += n
                reference = source.infer(x, taps)
                if background_dropped:
                    reference[LOGITS] = reference[LOGITS][:, 1:]  # what port-weights ports: TF-slim's class 0 dropped
                compared = {output if k == LOGITS else k: v for k, v in reference.items()}
                for runtime, comparison in zip(running, comparisons):
                    outputs = runtime.infer(x, cells)
                    comparison.add(compared, {output if k == LOGITS else k: v
                                              for k, v in pairing.by_source_name(outputs).items()})
                    del outputs  # before the next runtime's
                for default in beside:
                    default.add(reference[LOGITS], x)
                del reference
            for comparison in comparisons:
                comparison.finish()
            for default in beside:
                default.finish(report, report.info.inputs)
    report.info.seconds = round(time.perf_counter() - t0, 1)
    return report


def _with_head(spec: ModelSpec, weight_map, head: Head):
    from porting.sources import library
    from porting.weight_maps.heads import with_head

    return with_head(weight_map, head, library(spec.source).convention, spec.head)


PREPROCESS_CHUNK = 32  # images preprocessed at once on each side (~1 MB each at 299 px)


def check_preprocessing(spec: ModelSpec, images: list[Path], size: int | None = None,
                        log=lambda msg: None) -> PipelineCheck:
    """The port's image pipeline against the source library's own (timm.data.create_transform, Keras's
    load_img + preprocess_input, PaddleClas's deploy operators) on the same files, in normalised units,
    PREPROCESS_CHUNK images at a time (the library's model built once, kept in its worker)."""
    from porting.images.preprocessing import preprocessing

    size = size or spec.input_size
    pre = preprocessing(spec_card(spec), size=size)
    log(f"running {spec.source}'s own preprocessing of {len(images)} image(s) in its worker")
    job = {"untrained": True, "want_tensors": False, "keep_model": uuid.uuid4().hex}
    rows, pipeline = [], ""
    with reusing_workers():
        for start in range(0, len(images), PREPROCESS_CHUNK):
            chunk = images[start:start + PREPROCESS_CHUNK]
            ours = user_images(chunk, spec, size)
            theirs = run_source(spec, preprocess=([str(Path(p).resolve()) for p in chunk], size, pre.resize), **job)
            pipeline = theirs.info.pipeline
            for path, a, b in zip(chunk, ours, theirs.preprocessed):
                if a.shape != b.shape:
                    rows.append(ImageDifference(str(path), None, None, shapes=(list(a.shape), list(b.shape))))
                    continue
                diff = np.abs(a.astype(np.float64) - b)
                rows.append(ImageDifference(str(path), float(diff.mean()), float(diff.max())))
    same_shape = [r for r in rows if r.mean_abs is not None]
    return PipelineCheck(spec.id, pre.describe(), pipeline, rows,
                         mean_abs=float(np.mean([r.mean_abs for r in same_shape])) if same_shape else None,
                         max_abs=float(max(r.max_abs for r in same_shape)) if same_shape else None)


def prove_export(export: Export, *, batch: int = 2, input_seed: int = 1234, approximate: bool = False,
                 log=lambda msg: None) -> Report:
    """export --to's proof: while the target library's worker writes the file (converters.target.writing), it reads
    it back with its own loader and runs it on `batch` seeded inputs of the export's size; the checkpoint's MindSpore
    network is the reference, compared layer by layer as `parity` compares, and the file must hold, bit for bit,
    what was meant. A disagreement (unless `approximate`: then measured) leaves nothing written."""
    from porting.runtimes.mindspore_runtime import MindSporeRuntime

    spec, card, wm, output = export.spec, export.card, export.weight_map, export.output
    lib = library(spec.source)
    x = make_images(input_seed, batch, export.size, card.mean, card.std)
    report = Report(spec=f"{export.ckpt.name} -> {spec.id}", rtol=1e-4, info=ReportInfo(
        batch=batch, size=export.size, inputs="seeded synthetic images", weights=str(output),
        reference=f"{export.ckpt.name} in MindSpore"))
    with writing(export, inputs=x, taps=[layer.source for layer in wm.layers], log=log) as written:
        with MindSporeRuntime(export.network()) as runtime:  # while the worker writes and reads back
            reference = runtime.infer(x, [layer.target for layer in wm.layers])
        result = written()
        _check_written(result.tensors, export.tensors, output)
        labels = result.info.pretrained_cfg.label_names
        # the class names go in a model folder's config (timm's config.json); a state dict has no place for them
        if export.folder and lib.export_has_class_names and card.class_names and labels != card.class_names:
            raise PortingError(f"'{output}': {lib.title} reads back class names {labels}, not the "
                               f"checkpoint's")
        pairing = pair_layers(wm.layers, result.info.order)
        compare(report, spec.source, pairing.by_source_name(reference), result.outputs, pairing.layers)
        if not report.ok and not approximate:
            raise PortingError(f"{spec.id} read back from the export disagrees with '{export.ckpt}': "
                               f"{report.disagreement()}; nothing written")
    return report


def _check_written(read_back: dict[str, np.ndarray], meant: dict[str, np.ndarray], output: Path) -> None:
    """The file holds, bit for bit, what was meant (the library's saver and loader changed nothing)."""
    for name, value in meant.items():
        got = read_back.get(name)
        if got is None or got.dtype != value.dtype or got.shape != value.shape or got.tobytes() != value.tobytes():
            raise PortingError(f"'{output}': tensor '{name}' read back from it is not the one written")
