"""eval and predict on ported or fine-tuned checkpoints."""
from __future__ import annotations

import os
from pathlib import Path

import mindspore as ms
import numpy as np

from porting import checkpoint
from porting.errors import PortingError
from porting.training import data as data_mod


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    k = min(k, logits.shape[-1])
    top = np.argsort(-logits, axis=-1)[:, :k]
    return float(np.mean([label in row for row, label in zip(top, labels)]))


def evaluate(ckpt: Path, data: Path, batch_size: int = 32, workers: int | None = None, size: int | None = None,
             device: str | None = None, progress=None, log=lambda msg: None) -> tuple[dict, np.ndarray, np.ndarray]:
    """({'Loss', 'Top_1_Acc', 'Top_5_Acc'}, logits, labels) over data/val (or data itself if it has no val/)."""
    from porting import models, msenv

    msenv.setup(device, graph=True)
    data = Path(os.path.abspath(data))
    root = data / "val" if (data / "val").is_dir() else data
    net, meta = checkpoint.load_model(ckpt)
    labels_of = data_mod.label_mapping(root, meta)
    size = models.check_input_size(meta["arch"], size or int(meta["input_size"]))
    data_mod.check_images(root, log, progress)
    dataset = data_mod.image_folder(root, meta, size, batch_size, train=False, workers=workers, labels=labels_of)
    with data_mod.pipeline_cwd():
        logits, labels = run_dataset(net, dataset, progress, "eval")
    return scores(logits, labels), logits, labels


def run_dataset(net, dataset, progress=None, description: str = "eval") -> tuple[np.ndarray, np.ndarray]:
    """All logits and labels of one pass over a batched (image, label) dataset. A short last batch is padded to
    the batch size, so GRAPH mode compiles the network once."""
    task = progress.add_task(description, total=dataset.get_dataset_size()) if progress else None
    all_logits, all_labels = [], []
    batch = dataset.get_batch_size()
    for images, labels in dataset.create_tuple_iterator(num_epochs=1):
        n = images.shape[0]
        if n < batch:
            images = ms.Tensor(np.concatenate([images.asnumpy(), np.zeros((batch - n, *images.shape[1:]),
                                                                           np.float32)]))
        all_logits.append(net(images).asnumpy()[:n])
        all_labels.append(labels.asnumpy())
        if task is not None:
            progress.update(task, advance=1)
    return np.concatenate(all_logits), np.concatenate(all_labels)


def scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    """The model zoo's eval.py result: mean cross-entropy loss, top-1 and top-5 accuracy."""
    probs = softmax(logits.astype(np.float64))
    loss = float(-np.mean(np.log(np.maximum(probs[np.arange(len(labels)), labels], 1e-30))))
    return {"Loss": loss, "Top_1_Acc": topk_accuracy(logits, labels, 1), "Top_5_Acc": topk_accuracy(logits, labels, 5)}


def imagenet_classes() -> list[str]:
    return [name for _, name in data_mod.imagenet_table()]


def label_names(meta: dict, labels_file: Path | None) -> list[str]:
    n = int(meta["num_classes"])
    if labels_file is not None:
        if not labels_file.is_file():
            raise PortingError(f"labels file '{labels_file}' does not exist")
        names = [ln.split("\t", 1)[-1].strip() for ln in labels_file.read_text().splitlines() if ln.strip()]
        if len(names) != n:
            raise PortingError(f"labels file '{labels_file}' has {len(names)} names, the checkpoint {n} classes")
        return names
    if meta.get("class_names"):
        return list(meta["class_names"])
    if n == 1000:
        return imagenet_classes()
    if n == 1001 and (meta.get("background_class") or {}).get("kept"):
        return ["background"] + imagenet_classes()
    return [f"class_{i}" for i in range(n)]


def predict(ckpt: Path, images: list[Path], topk: int | None = None, labels_file: Path | None = None,
            device: str | None = None) -> list[dict]:
    from porting import msenv

    msenv.setup(device, graph=True)
    net, meta = checkpoint.load_model(ckpt)
    names = label_names(meta, labels_file)
    if topk is not None and topk > len(names):
        raise PortingError(f"--topk {topk} is more than the checkpoint's {len(names)} classes")
    topk = topk or min(5, len(names))
    size = int(meta["input_size"])
    batch = np.stack([data_mod.load_image(p, meta, size) for p in images])  # unreadable files fail here, by name
    probs = softmax(net(ms.Tensor(batch)).asnumpy().astype(np.float64))
    k = topk
    results = []
    for path, row in zip(images, probs):
        order = np.argsort(-row)[:k]
        results.append({"image": str(path), "top": [{"class": names[i], "index": int(i), "probability": float(row[i])}
                                                    for i in order]})
    return results
