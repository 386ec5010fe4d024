"""`porting quantize`: an int8 ONNX by ONNX Runtime's static quantization, and how far it moved from float32.

QDQ format, per-channel int8 weights, int8 activations whose ranges are calibrated on images drawn to cover
every class (the deployment guide's 1000 ImageNet images, one per class), preprocessed as the model's metadata
says. Images left over are held out to compare the int8 model with the float32 one: top-1 agreement, top-5
overlap, the largest logit difference and, where the images have labels, both accuracies.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from porting import files
from porting.card import Quantization
from porting.errors import PortingError, first_line
from porting.deploy.artifacts import open_artifact
from porting.images.folders import check_images
from porting.images.labels import Samples, labelled_images
from porting.images.pipelines import file_dataset, pipeline_cwd
from porting.results import FileSizes, QuantizeReport

METHODS = ("minmax", "percentile", "entropy")


def draw(groups: np.ndarray, count: int, seed: int = 0) -> tuple[list[int], list[int]]:
    """(calibration indices, the rest): round-robin over the groups (the images' classes, or their class folders)
    in a seeded order, so that `count` images cover every group before any group gets a second one."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i in rng.permutation(len(groups)):
        by_class.setdefault(int(groups[i]), []).append(int(i))
    queues = [by_class[c] for c in sorted(by_class)]
    chosen: list[int] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop())
    taken = set(chosen)
    return chosen, [i for i in rng.permutation(len(groups)).tolist() if i not in taken]


def _subset(samples: Samples, indices: list[int]) -> Samples:
    return Samples(samples.root, [samples.paths[i] for i in indices], samples.labels[indices])


class _Reader:
    """onnxruntime's CalibrationDataReader over a preprocessed dataset, batch by batch; `used` counts the images
    it handed over (a static-batch export takes whole batches only). quantize_static asks for it one batch at a
    time (CalibStridedMinMax: set_range, then get_next until None), and folds each batch into its running ranges
    or histograms before the next: its calibrators otherwise keep every calibration image's every activation
    (~100 MB an image at 299 px for Xception) until the last one is read."""

    def __init__(self, dataset, name: str, batch: int | None, images: int):
        self.batches = dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)
        self.name, self.batch, self.used = name, batch, 0
        self.count = images // batch if batch is not None else -(-images // dataset.get_batch_size())
        self.left = self.count

    def __len__(self) -> int:
        return self.count

    def set_range(self, start_index: int, end_index: int) -> None:
        self.left = end_index - start_index  # the calls come in order: the next batches

    def get_next(self):
        if self.left <= 0:
            return None
        for images, _ in self.batches:
            if self.batch is not None and images.shape[0] != self.batch:
                continue
            self.used += images.shape[0]
            self.left -= 1
            return {self.name: images}
        return None


class _Agreement:
    """float32 against int8 on the held-out images, folded batch by batch: top-1 agreement, top-5 overlap, the
    largest logit difference and, on labelled images, both models' scores; for a feature extractor (`classes`
    False) the largest feature difference alone."""

    def __init__(self, labelled: bool, classes: bool = True):
        from porting.deploy.evaluate import Scores

        self.agree, self.overlap, self.max_error, self.scale, self.samples = 0, 0.0, 0.0, 0.0, 0
        self.classes = classes
        self.scores = (Scores(), Scores()) if labelled and classes else None

    def add(self, a: np.ndarray, b: np.ndarray, labels: np.ndarray) -> None:
        self.max_error = max(self.max_error, float(np.abs(a - b).max()))
        self.scale = max(self.scale, float(np.abs(a).max()))
        self.samples += len(a)
        if not self.classes:
            return
        self.agree += int(np.sum(a.argmax(1) == b.argmax(1)))
        self.overlap += sum(len(set(np.argsort(-x)[:5]) & set(np.argsort(-y)[:5])) / min(5, a.shape[1])
                            for x, y in zip(a, b))
        if self.scores:
            self.scores[0].add(a, labels)
            self.scores[1].add(b, labels)

    def result(self) -> dict:
        """QuantizeReport's fields of the comparison."""
        n = max(self.samples, 1)
        float32, int8 = (self.scores[0].result(), self.scores[1].result()) if self.scores else (None, None)
        if not self.classes:  # a feature extractor: its largest feature difference, no top-1
            return dict(top1_agreement=None, top5_overlap=None, max_logit_error=self.max_error,
                        logit_scale=self.scale, output="features")
        return dict(top1_agreement=self.agree / n, top5_overlap=self.overlap / n, max_logit_error=self.max_error,
                    logit_scale=self.scale, float32=float32, int8=int8)


DEFAULT_IMAGES = 1000  # the deployment guide's: one ImageNet image per class


def quantize(model: Path, calib: Path, out: Path, images: int | None = None, holdout: int = 200,
             method: str = "minmax", label_file: Path | None = None, log=lambda msg: None,
             progress=None) -> QuantizeReport:
    """`images`: how many calibration images; None: DEFAULT_IMAGES, or what the folder holds beside the `holdout`
    images if that is fewer (all of it when it holds no more than `holdout`)."""
    model, out = Path(os.path.abspath(model)), Path(os.path.abspath(out))  # the pipeline runs from a scratch cwd
    if model.suffix.lower() != ".onnx":
        raise PortingError(f"'{model}': quantize takes an ONNX file exported by porting (porting export -f onnx)")
    files.check_output(out, (model,), what="int8 ONNX output")  # before onnxruntime loads
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    from porting.deploy.evaluate import as_logits, run_batches

    fp32 = open_artifact(model)
    card = fp32.card
    if card.export_info.precision == "float16":
        raise PortingError(f"'{model}' is a float16 export: quantize the float32 one")
    pre = fp32.preprocessing()  # at the file's own input size (an export at --size 96 takes 96)
    samples = labelled_images(calib, card, label_file, log, unlabelled_ok=True)
    groups = samples.labels if samples.groups is None else samples.groups  # what the calibration draw covers
    kind = "classes" if samples.groups is None else "folders"
    classes, total = len(set(groups.tolist()) - {-1}), len(samples.paths)
    if images is None:  # the default is a wish, not a demand: a smaller folder gives what it holds, and says so
        room = total - holdout  # the held-out images come first: they are what --holdout asked for
        images = min(DEFAULT_IMAGES, room if room > 0 else total)
        if images < DEFAULT_IMAGES:
            beside = f" plus --holdout {holdout}: calibrating on the {images} beside the held-out ones" \
                if room > 0 and holdout else f": calibrating on {'those' if room > 0 else 'all of them'}"
            log(f"'{samples.root}' holds {total} images, fewer than the default {DEFAULT_IMAGES}{beside} (--images N "
                f"picks another count)")
    elif images > total:
        raise PortingError(f"--images {images}: '{samples.root}' holds {total} images")
    if not classes:
        log(f"warning: the images in '{samples.root}' have no labels: calibration images are drawn at random, "
            f"whatever classes they show")
    elif images < classes:
        log(f"warning: {images} calibration images cannot cover the {classes} {kind} in '{samples.root}'")
    chosen, rest = draw(groups, images)
    held = rest[:holdout] or chosen[: max(1, holdout)]  # no images left: compare on calibration images
    held_out = not set(held) & set(chosen)
    # only the images this run reads (1,200 of ImageNet's 50,000 by default)
    check_images(samples.root, log, progress, images=[samples.paths[i] for i in sorted({*chosen, *held})])
    covered = len({int(groups[i]) for i in chosen} - {-1})
    log(f"calibrating on {len(chosen)} images covering {covered} of {classes} {kind} ({method}); "
        + (f"{len(held)} held out for the comparison" if held_out else
           "warning: no images left to hold out: the comparison runs on calibration images")
        + f"; preprocessing: {pre.describe()}")
    batch = fp32.batch or 8
    reader = _Reader(file_dataset(_subset(samples, chosen), pre, batch), "input", fp32.batch, len(chosen))
    if not len(reader):
        raise PortingError(f"'{model}' takes batches of {fp32.batch} images: calibrating needs at least that many "
                           f"(--images {len(chosen)})")
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    with files.atomic_output(out, (model,), what="int8 ONNX output") as staged:
        with pipeline_cwd():
            try:
                # onnxruntime's recommended first step: shape inference and graph optimisation (BN folding...)
                prepared = staged.dir / "prepared.onnx"
                quant_pre_process(str(model), str(prepared))
                with contextlib.redirect_stdout(io.StringIO()):  # its histogram calibrators print to stdout (--json)
                    # one calibration batch at a time (_Reader)
                    quantize_static(str(prepared), str(staged.file), reader, quant_format=QuantFormat.QDQ,
                                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                                    calibrate_method=calibrate, extra_options={"CalibStridedMinMax": 1})
            except (PortingError, OSError):
                raise
            except Exception as exc:  # noqa: BLE001 - onnxruntime.quantization raises plain Exceptions
                raise PortingError(f"onnxruntime could not quantize '{model}': {first_line(exc)}") from None
        quantized = onnx.load(str(staged.file))
        del quantized.metadata_props[:]  # the float32 export's metadata, and how the int8 one was made
        export = replace(card.export_info, precision="int8", quantization=Quantization(
            format="QDQ", per_channel=True, weights="int8", activations="int8", calibration=method,
            calibration_images=reader.used, classes_covered=covered))
        for key, value in card.replace(export=export).to_props().items():
            quantized.metadata_props.add(key=key, value=value)
        onnx.save(quantized, str(staged.file))
    sizes = FileSizes(float32=round(Path(model).stat().st_size / 2**20, 1),
                      int8=round(Path(out).stat().st_size / 2**20, 1))
    int8 = open_artifact(out)
    agreement = _Agreement(labelled=bool(np.all(samples.labels[held] >= 0)), classes=not card.headless)
    with fp32, int8, pipeline_cwd():  # one pass over the held-out images feeds both models, a batch at a time
        for both, labels in run_batches(lambda x: np.concatenate([as_logits(card, fp32(x)), as_logits(card, int8(x))],
                                                                 axis=1),
                                        file_dataset(_subset(samples, held), pre, batch), progress,
                                        "float32 and int8"):
            agreement.add(*np.split(both, 2, axis=1), labels)
    return QuantizeReport(calibration_images=reader.used, classes_covered=covered, compared_images=len(held),
                          held_out=len(held) if held_out else 0, method=method, input_size=pre.size, size_mib=sizes,
                          **agreement.result())
