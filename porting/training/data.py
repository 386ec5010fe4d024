"""ImageFolder pipelines with mindspore.dataset; preprocessing comes from the checkpoint's metadata.

Before a pipeline starts, every image is opened and decoded once (reduced-size JPEG decoding, in threads), so
an unreadable file stops the command in one line naming it instead of crashing MindSpore's pipeline hours
later; files that are not images are ignored (and counted). Labels come from folder names, mapped to the
checkpoint's classes: its class names after fine-tuning, ImageNet's WordNet ids (`n01440764`) for 1000-class
checkpoints, or folder position only when the folders are all of the checkpoint's classes.
"""
from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

import numpy as np

from porting import files
from porting.errors import PortingError

# what mindspore.dataset's Decode reads (it cannot decode WebP or GIF); matched case-insensitively
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".ppm")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def class_names(root: Path) -> list[str]:
    """Class folders of an ImageFolder root, sorted as mindspore.dataset.ImageFolderDataset indexes them."""
    if not root.is_dir():
        raise PortingError(f"dataset folder '{root}' does not exist")
    names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise PortingError(f"'{root}' has no class folders (expected ImageFolder layout: {root}/<class>/<image>)")
    empty = [n for n in names if not any(is_image(f) for f in (root / n).iterdir())]
    if empty:
        raise PortingError(f"class folder(s) without images in '{root}': {', '.join(empty[:5])}"
                           + ("..." if len(empty) > 5 else ""))
    return names


def imagenet_table() -> list[tuple[str, str]]:
    """[(WordNet id, class name)] in ImageNet-1k index order."""
    text = resources.files("porting").joinpath("data/imagenet_classes.txt").read_text()
    return [tuple(line.split("\t", 1)) for line in text.splitlines() if line]


def label_mapping(root: Path, meta: dict) -> dict[str, int]:
    """Class folder -> the checkpoint's output index, or a one-line refusal when it cannot be trusted."""
    folders = class_names(root)
    n = int(meta["num_classes"])
    known = meta.get("class_names")
    if known:  # fine-tuned: folders are (a subset of) its classes, by name
        unknown = [f for f in folders if f not in known]
        if unknown:
            raise PortingError(f"class folder(s) {', '.join(unknown[:5])} of '{root}' are not among the "
                               f"checkpoint's classes ({', '.join(known[:5])}{'...' if len(known) > 5 else ''})")
        return {f: known.index(f) for f in folders}
    background = meta.get("background_class") or {}
    offset = 1 if background.get("kept") else 0  # a kept TF-slim background class is output 0
    if n - offset == 1000:
        synsets = {wnid: i + offset for i, (wnid, _) in enumerate(imagenet_table())}
        if all(f in synsets for f in folders):
            return {f: synsets[f] for f in folders}
    if len(folders) == n:
        return {f: i for i, f in enumerate(folders)}
    hint = (" name them by ImageNet WordNet id (n01440764 ...) or" if n - offset == 1000 else "")
    raise PortingError(f"cannot tell which of the checkpoint's {n} classes the {len(folders)} class folder(s) of "
                       f"'{root}' ({', '.join(folders[:3])}{'...' if len(folders) > 3 else ''}) are:{hint} give "
                       f"all {n} classes as folders")


def _unreadable(path: Path) -> str | None:
    """None if PIL can decode the image (at reduced size for JPEG, which still reads every byte), else why."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.draft("RGB", (64, 64))
            img.load()
    except Exception as exc:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError... for bad files
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def check_images(root: Path, log=lambda msg: None, progress=None) -> int:
    """Open every image under root/<class>/; refuse unreadable ones by name. Returns the image count."""
    images, others = [], []
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for f in sorted(folder.iterdir()):
            (images if f.is_file() and is_image(f) else others).append(f)
    if others:
        log(f"warning: ignoring {len(others)} file(s) that are not {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} "
            f"images in '{root}' ({', '.join(str(p.relative_to(root)) for p in others[:3])}"
            f"{'...' if len(others) > 3 else ''})")
    task = progress.add_task(f"checking images in {root.name}", total=len(images)) if progress else None
    bad = []
    with ThreadPoolExecutor(max_workers=min(32, 2 * (os.cpu_count() or 1))) as pool:
        for path, why in zip(images, pool.map(_unreadable, images, chunksize=16)):
            if why:
                bad.append((path, why))
            if task is not None:
                progress.update(task, advance=1)
    if bad:
        shown = "; ".join(f"{p.relative_to(root)}: {why}" for p, why in bad[:3])
        raise PortingError(f"{len(bad)} unreadable image(s) in '{root}' ({shown}{'...' if len(bad) > 3 else ''}); "
                           f"remove or replace them")
    return len(images)


@contextlib.contextmanager
def pipeline_cwd():
    """Run MindSpore's pipeline from a scratch folder: on a decode failure it dumps ./abnormal_image.*, and
    that must not land in the user's working directory. Callers pass absolute paths only."""
    previous = os.getcwd()
    with files.scratch_dir("pipeline-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(previous)


def _inter(name: str | None):
    from mindspore.dataset.vision import Inter

    return {"bicubic": Inter.BICUBIC, "bilinear": Inter.BILINEAR, "nearest": Inter.NEAREST}.get(
        (name or "bilinear").lower(), Inter.BILINEAR)


def eval_transforms(metadata: dict, size: int):
    """Resize the short side to size / crop_pct, center-crop `size`, normalise, HWC -> CHW."""
    from mindspore.dataset import vision

    resize = int(size / float(metadata.get("crop_pct") or 0.875))
    return [vision.Resize(resize, _inter(metadata.get("interpolation"))), vision.CenterCrop(size),
            *_normalise(metadata)]


def _normalise(metadata: dict):
    from mindspore.dataset import vision

    mean = [255.0 * m for m in metadata["mean"]]
    std = [255.0 * s for s in metadata["std"]]
    return [vision.Normalize(mean, std), vision.HWC2CHW()]


def image_folder(root: Path, metadata: dict, size: int, batch_size: int, train: bool, workers: int | None = None,
                 num_shards: int | None = None, shard_id: int | None = None, seed: int = 0,
                 labels: dict[str, int] | None = None):
    """A batched (image float32 NCHW, label int32) dataset over root/<class>/<image> (checked first)."""
    import mindspore as ms
    import mindspore.dataset as ds
    from mindspore.dataset import vision

    root = Path(os.path.abspath(root))
    labels = labels or {name: i for i, name in enumerate(class_names(root))}
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    suffixes = sorted({f.suffix for d in labels for f in (root / d).iterdir() if is_image(f)})
    ds.config.set_seed(seed)
    data = ds.ImageFolderDataset(str(root), shuffle=train, num_parallel_workers=workers, extensions=suffixes,
                                 class_indexing=labels, num_shards=num_shards, shard_id=shard_id, decode=False)
    if train:
        ops = [vision.RandomCropDecodeResize(size, scale=(0.08, 1.0), interpolation=_inter(metadata.get("interpolation"))),
               vision.RandomHorizontalFlip(), *_normalise(metadata)]
    else:
        ops = [vision.Decode(), *eval_transforms(metadata, size)]
    data = data.map(ops, input_columns="image", num_parallel_workers=workers)
    data = data.map(ds.transforms.TypeCast(ms.int32), input_columns="label")
    data = data.batch(batch_size, drop_remainder=train)
    if data.get_dataset_size() == 0:
        raise PortingError(f"'{root}' has fewer images than one batch of {batch_size} "
                           f"{'per shard ' if num_shards else ''}(lower --batch-size)")
    return data


def load_image(path: Path, metadata: dict, size: int) -> np.ndarray:
    """One image file -> CHW float32, preprocessed exactly as evaluation does."""
    from PIL import Image

    if not path.is_file():
        raise PortingError(f"image '{path}' does not exist")
    why = _unreadable(path)
    if why:
        raise PortingError(f"cannot read image '{path}': {why}")
    with Image.open(path) as img:
        array = np.asarray(img.convert("RGB"))
    for op in eval_transforms(metadata, size):
        array = op(array)
    return np.asarray(array, dtype=np.float32)
