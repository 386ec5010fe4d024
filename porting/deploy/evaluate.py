"""eval and predict on any deployed artifact: a ported or fine-tuned .ckpt, an exported .onnx or .mindir."""
from __future__ import annotations

import contextlib
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
from porting.images.preprocessing import preprocessing
from porting.runtimes import choose_runtimes


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[-1])
    top = np.argsort(-logits, axis=-1)[:, :k]
    return float(np.mean([label in row for row, label in zip(top, labels)]))


def evaluate(model: Path, data: Path, batch_size: int = 32, workers: int | None = None, device: str | None = None,
             progress=None, log=lambda msg: None, label_file: Path | None = None, overrides: dict | None = None,
             results: Path | None = None, topk: int = 5, runtimes: Sequence[str] | None = None,
             precision: str | None = None) -> tuple[list[dict], list[np.ndarray], np.ndarray]:
    """([{'Loss', 'Top_1_Acc', 'Top_5_Acc', 'runtime', 'precision'}], logits, labels): one result and one
    logits array per runtime, over DATA/val (or DATA), in either layout (data.labelled_images), the images read
    once for all runtimes; `results` gets the deployment guide's per-image top-k lines (of one runtime).
    `runtimes` and `precision`: what runs the file (deploy.artifacts.open_artifacts)."""
    if results is not None and len(choose_runtimes(runtimes)) > 1:
        raise PortingError("--results writes one runtime's top-k lines: give one --runtime")
    artifacts = open_artifacts(model, device, runtimes, precision, log)
    with contextlib.ExitStack() as opened:
        for artifact in artifacts:
            opened.enter_context(artifact)
        card = artifacts[0].card
        pre = preprocessing(card, **(overrides or {}))
        archs.check_input_size(card.arch, pre.size)
        for artifact in artifacts:
            artifact.check_size(pre.size)
        if results is not None:
            files.check_output(results, (model,))
        samples = labelled_images(data, card, label_file, log)
        log(f"{len(samples.paths)} images in '{samples.root}'; {'; '.join(a.kind for a in artifacts)}; "
            f"preprocessing: {pre.describe()}")
        check_images(samples.root, log, progress, images=samples.paths)
        dataset = file_dataset(samples, pre, batch_size, workers)
        with pipeline_cwd():  # one pass over the images feeds every runtime
            both, labels = run_dataset(lambda x: np.concatenate([a(x) for a in artifacts], axis=1), dataset,
                                       progress, "eval")
    logits = np.split(both, len(artifacts), axis=1)
    if results is not None:
        names = label_names(card, None)
        with files.atomic_output(results, (model,)) as staged:
            write_topk(staged.file, samples.paths, logits[0], names, min(topk, len(names)))
    return [dict(scores(each, labels), runtime=a.runtime, precision=a.precision)
            for a, each in zip(artifacts, logits)], logits, labels


def run_dataset(run, dataset, progress=None, description: str = "eval") -> tuple[np.ndarray, np.ndarray]:
    """All logits and labels of one pass over a batched (image, label) dataset; `run` maps a float32 NCHW batch
    to logits. A short last batch is padded to the batch size, so a compiled network compiles once."""
    task = progress.add_task(description, total=dataset.get_dataset_size()) if progress else None
    all_logits, all_labels = [], []
    batch = dataset.get_batch_size()
    for images, labels in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
        n = images.shape[0]
        if n < batch:
            images = np.concatenate([images, np.zeros((batch - n, *images.shape[1:]), images.dtype)])
        all_logits.append(run(images)[:n])
        all_labels.append(labels)
        if task is not None:
            progress.update(task, advance=1)
    return np.concatenate(all_logits), np.concatenate(all_labels)


def scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    """The model zoo's eval.py result: mean cross-entropy loss, top-1 and top-5 accuracy."""
    probs = softmax(logits.astype(np.float64))
    loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-30))))
    return {"Loss": loss, "Top_1_Acc": topk_accuracy(logits, labels, 1), "Top_5_Acc": topk_accuracy(logits, labels, 5)}


def write_topk(path: Path, images: list[Path], logits: np.ndarray, names: list[str], k: int) -> None:
    """`IMAGE: Relay top-K id: N, prob: P, class name: NAME`, k lines per image: what the deployment guide's
    eval_topk.py reads (it takes the true class from the image's folder, a WordNet id)."""
    probs = softmax(logits.astype(np.float64))
    with open(path, "w") as f:
        for image, row in zip(images, probs):
            for rank, index in enumerate(np.argsort(-row)[:k]):
                f.write(f"{image}: Relay top-{rank} id: {index}, prob: {row[index]:.8f}, class name: {names[index]}\n")


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


def predict(model: Path, images: list[Path], topk: int | None = None, labels_file: Path | None = None,
            device: str | None = None, overrides: dict | None = None, runtimes: Sequence[str] | None = None,
            precision: str | None = None, log=lambda msg: None) -> list[dict]:
    """[{'image', 'runtime', 'precision', 'top': [{'class', 'index', 'probability'}]}], image by image for each
    runtime in turn."""
    artifacts = open_artifacts(model, device, runtimes, precision, log)
    with contextlib.ExitStack() as opened:
        for artifact in artifacts:
            opened.enter_context(artifact)
        card = artifacts[0].card
        names = label_names(card, labels_file)
        if topk is not None and topk > len(names):
            raise PortingError(f"--topk {topk} is more than the model's {len(names)} classes")
        topk = topk or min(5, len(names))
        pre = preprocessing(card, **(overrides or {}))
        for artifact in artifacts:
            artifact.check_size(pre.size)
        batch = np.stack([load_image(p, pre) for p in images])  # unreadable files fail here, by name
        results = []
        for artifact in artifacts:
            probs = softmax(artifact(batch).astype(np.float64))
            for path, row in zip(images, probs):
                order = np.argsort(-row)[:topk]
                results.append({"image": str(path), "runtime": artifact.runtime, "precision": artifact.precision,
                                "top": [{"class": names[i], "index": int(i), "probability": float(row[i])}
                                        for i in order]})
    return results
