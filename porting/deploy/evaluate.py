"""eval and predict on any deployed artifact: a ported or fine-tuned .ckpt, an exported .onnx or .mindir."""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from porting import archs, files
from porting.card import ModelCard
from porting.errors import PortingError
from porting.deploy.artifacts import open_artifacts
from porting.images.folders import check_images
from porting.images.labels import imagenet_classes, labelled_images
from porting.images.pipelines import file_dataset, load_image, pipeline_cwd
from porting.results import Accuracy, ClassProbability, EvalResult, Prediction
from porting.runtimes import choose_runtimes


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def as_logits(card: ModelCard, outputs: np.ndarray) -> np.ndarray:
    """A model's outputs as logits: a head that ends in a softmax gives probabilities, whose log the softmax, the
    loss and the top-k read as they read logits."""
    if card.output == "probabilities":
        return np.log(np.maximum(outputs.astype(np.float64), 1e-30))
    return outputs


def check_classifier(card: ModelCard, model: Path, command: str) -> None:
    """A feature extractor has no classes to score or predict: refused in one line saying how to add them."""
    if card.headless:
        raise PortingError(f"'{model}' is a feature extractor (its head has no classifier: it outputs features, not "
                           f"classes), so {command} has nothing to score; give it one with porting finetune {model} "
                           f"--data DIR --num-classes N")


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows have their label among their k largest logits."""
    k = min(k, logits.shape[-1])
    top = np.argsort(-logits, axis=-1)[:, :k]
    return int(sum(label in row for row, label in zip(top, labels)))


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    return topk_hits(logits, labels, k) / len(labels)


class Scores:
    """The model zoo's eval.py result (mean cross-entropy loss, top-1 and top-5 accuracy) folded batch by batch:
    sums and counts, so no pass keeps more than one batch of logits."""

    def __init__(self):
        self.loss_sum, self.top1, self.top5, self.samples = 0.0, 0, 0, 0

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        probs = softmax(logits.astype(np.float64))
        self.loss_sum -= float(np.sum(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-30))))
        self.top1 += topk_hits(logits, labels, 1)
        self.top5 += topk_hits(logits, labels, 5)
        self.samples += len(labels)

    def result(self) -> Accuracy:
        n = max(self.samples, 1)
        return Accuracy(loss=self.loss_sum / n, top1=self.top1 / n, top5=self.top5 / n)


def scores(logits: np.ndarray, labels: np.ndarray) -> Accuracy:
    """Scores of one batch."""
    folded = Scores()
    folded.add(logits, labels)
    return folded.result()


class LogitsFile:
    """--dump-logits: an .npz as np.savez writes it ('logits' [N, classes], 'labels' [N]), the logits streamed into
    it batch by batch: N is known before the first batch, so the .npy header goes first."""

    def __init__(self, path: Path, count: int):
        import zipfile

        self.zip = zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.count, self.written, self.member, self.labels = count, 0, None, []

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        if self.member is None:
            self.member = self.zip.open("logits.npy", "w", force_zip64=True)
            np.lib.format.write_array_header_1_0(self.member, {
                "descr": np.lib.format.dtype_to_descr(logits.dtype), "fortran_order": False,
                "shape": (self.count, *logits.shape[1:])})
            self.dtype = logits.dtype
        self.member.write(np.ascontiguousarray(logits, self.dtype).tobytes())
        self.written += len(logits)
        self.labels.append(np.asarray(labels))

    def close(self) -> None:
        if self.written != self.count:
            raise PortingError(f"--dump-logits: {self.written} logits for {self.count} images")
        if self.member is not None:
            self.member.close()
        with self.zip.open("labels.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.concatenate(self.labels) if self.labels else np.zeros(0, np.int32))
        self.zip.close()


def evaluate(model: Path, data: Path, batch_size: int = 32, workers: int | None = None, device: str | None = None,
             progress=None, log=lambda msg: None, label_file: Path | None = None, overrides: dict | None = None,
             results: Path | None = None, topk: int = 5, runtimes: Sequence[str] | None = None,
             precision: str | None = None, dump_logits: Path | None = None) -> list[EvalResult]:
    """One result per runtime (its loss, top-1, top-5, samples, runtime and precision: results.EvalResult), over
    DATA/val (or DATA), in either layout (data.labelled_images), the images read once for all runtimes and one
    batch of logits held at a time (each runtime's scores folded as the batches come). `results` gets the
    deployment guide's per-image top-k lines and `dump_logits` an .npz of the logits and labels, both of one
    runtime, written as the batches come. `runtimes` and `precision`: what runs the file
    (deploy.artifacts.open_artifacts)."""
    several = len(choose_runtimes(runtimes)) > 1
    if results is not None and several:
        raise PortingError("--results writes one runtime's top-k lines: give one --runtime")
    if dump_logits is not None and several:
        raise PortingError("--dump-logits holds one runtime's outputs: give one --runtime")
    artifacts = open_artifacts(model, device, runtimes, precision, log)
    with contextlib.ExitStack() as opened:
        for artifact in artifacts:
            opened.enter_context(artifact)
        card = artifacts[0].card
        check_classifier(card, model, "eval")
        pre = artifacts[0].preprocessing(overrides)  # a fixed-size file at its own size (the same in every runtime)
        archs.check_input_size(card.arch, pre.size)
        for path in (results, dump_logits):
            if path is not None:
                files.check_output(path, (model,))
        samples = labelled_images(data, card, label_file, log)
        log(f"{len(samples.paths)} images in '{samples.root}'; {'; '.join(a.kind for a in artifacts)}; "
            f"preprocessing: {pre.describe()}")
        check_images(samples.root, log, progress, images=samples.paths)
        dataset = file_dataset(samples, pre, batch_size, workers)
        folded = [Scores() for _ in artifacts]  # one running fold per runtime
        topk_lines = dumped = None
        if results is not None:
            names = label_names(card, None)
            staged = opened.enter_context(files.atomic_output(results, (model,)))
            topk_lines = opened.enter_context(open(staged.file, "w"))
        if dump_logits is not None:
            staged = opened.enter_context(files.atomic_output(dump_logits, (model,)))
            dumped = LogitsFile(staged.file, len(samples.paths))
        with pipeline_cwd():  # one pass over the images feeds every runtime, a batch at a time
            for both, labels in run_batches(lambda x: np.concatenate([as_logits(card, a(x)) for a in artifacts],
                                                                     axis=1), dataset, progress, "eval"):
                each = np.split(both, len(artifacts), axis=1)
                for fold, logits in zip(folded, each):
                    fold.add(logits, labels)
                seen = folded[0].samples  # --results and --dump-logits: the one runtime's
                if topk_lines is not None:
                    write_topk(topk_lines, samples.paths[seen - len(labels):seen], each[0], names,
                               min(topk, len(names)))
                if dumped is not None:
                    dumped.add(each[0], labels)
        if dumped is not None:
            dumped.close()
    return [EvalResult(**asdict(each.result()), runtime=a.runtime, precision=a.precision, samples=each.samples)
            for a, each in zip(artifacts, folded)]


def run_batches(run, dataset, progress=None, description: str = "eval"):
    """(logits, labels) of each batch of one pass over a batched (image, label) dataset; `run` maps a float32 NCHW
    batch to logits. A short last batch is padded to the batch size, so a compiled network compiles once."""
    task = progress.add_task(description, total=dataset.get_dataset_size()) if progress else None
    batch = dataset.get_batch_size()
    for images, labels in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
        n = images.shape[0]
        if n < batch:
            images = np.concatenate([images, np.zeros((batch - n, *images.shape[1:]), images.dtype)])
        yield run(images)[:n], labels
        if task is not None:
            progress.update(task, advance=1)


def score_dataset(run, dataset, progress=None, description: str = "eval") -> Accuracy:
    """Scores of one pass over a batched (image, label) dataset, one batch of logits held at a time."""
    folded = Scores()
    for logits, labels in run_batches(run, dataset, progress, description):
        folded.add(logits, labels)
    return folded.result()


def write_topk(out, images: list[Path], logits: np.ndarray, names: list[str], k: int) -> None:
    """`IMAGE: Relay top-K id: N, prob: P, class name: NAME`, k lines per image (to an open text file): what the
    deployment guide's eval_topk.py reads (it takes the true class from the image's folder, a WordNet id)."""
    probs = softmax(logits.astype(np.float64))
    for image, row in zip(images, probs):
        for rank, index in enumerate(np.argsort(-row)[:k]):
            out.write(f"{image}: Relay top-{rank} id: {index}, prob: {row[index]:.8f}, class name: {names[index]}\n")


def read_label_names(labels_file: Path) -> list[str]:
    """Class names, one per line (`tench, Tinca tinca`, as the deployment guide's label.txt), or `INDEX<TAB>NAME`."""
    if not labels_file.is_file():
        raise PortingError(f"labels file '{labels_file}' does not exist")
    try:
        lines = labels_file.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise PortingError(f"labels file '{labels_file}' is not text: {exc}") from None
    return [ln.split("\t", 1)[-1].strip() for ln in lines if ln.strip()]


def label_names(card: ModelCard, labels_file: Path | None) -> list[str]:
    n = card.num_classes
    if labels_file is not None:
        names = read_label_names(labels_file)
        if len(names) != n:
            raise PortingError(f"labels file '{labels_file}' has {len(names)} names, the model {n} classes")
        return names
    if card.class_names:
        return list(card.class_names)
    if n == 1000:
        return imagenet_classes()
    if n == 1001 and card.background_kept:
        return ["background"] + imagenet_classes()
    return [f"class_{i}" for i in range(n)]


PREDICT_BATCH = 32  # images predict runs at once


def predict(model: Path, images: list[Path], topk: int | None = None, labels_file: Path | None = None,
            device: str | None = None, overrides: dict | None = None, runtimes: Sequence[str] | None = None,
            precision: str | None = None, log=lambda msg: None) -> list[Prediction]:
    """Each image's top classes (results.Prediction), image by image for each runtime in turn; the images go
    PREDICT_BATCH at a time through every runtime, so memory does not grow with their number."""
    artifacts = open_artifacts(model, device, runtimes, precision, log)
    with contextlib.ExitStack() as opened:
        for artifact in artifacts:
            opened.enter_context(artifact)
        card = artifacts[0].card
        check_classifier(card, model, "predict")
        names = label_names(card, labels_file)
        if topk is not None and topk > len(names):
            raise PortingError(f"--topk {topk} is more than the model's {len(names)} classes")
        topk = topk or min(5, len(names))
        pre = artifacts[0].preprocessing(overrides)
        results = [[] for _ in artifacts]  # each runtime's, in the images' order
        for start in range(0, len(images), PREDICT_BATCH):
            chunk = images[start:start + PREDICT_BATCH]
            batch = np.stack([load_image(p, pre) for p in chunk])  # unreadable files fail here, by name
            for artifact, found in zip(artifacts, results):
                probs = softmax(as_logits(card, artifact(batch)).astype(np.float64))
                for path, row in zip(chunk, probs):
                    order = np.argsort(-row)[:topk]
                    found.append(Prediction(str(path), artifact.runtime, artifact.precision,
                                            [ClassProbability(names[i], int(i), float(row[i])) for i in order]))
    return [result for found in results for result in found]
