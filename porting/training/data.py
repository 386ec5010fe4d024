"""ImageFolder pipelines with mindspore.dataset; preprocessing comes from the checkpoint's metadata."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from porting.errors import PortingError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG", ".JPG", ".PNG")


def class_names(root: Path) -> list[str]:
    """Class folders of an ImageFolder root, sorted as mindspore.dataset.ImageFolderDataset indexes them."""
    if not root.is_dir():
        raise PortingError(f"dataset folder '{root}' does not exist")
    names = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not names:
        raise PortingError(f"'{root}' has no class folders (expected ImageFolder layout: {root}/<class>/<image>)")
    empty = [n for n in names if not any(f.suffix in IMAGE_SUFFIXES for f in (root / n).iterdir())]
    if empty:
        raise PortingError(f"class folder(s) without images in '{root}': {', '.join(empty)}")
    return names


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
                 num_shards: int | None = None, shard_id: int | None = None, seed: int = 0):
    """A batched (image float32 NCHW, label int32) dataset over root/<class>/<image>."""
    import mindspore as ms
    import mindspore.dataset as ds
    from mindspore.dataset import vision

    class_names(root)  # clear errors before MindSpore's own
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    ds.config.set_seed(seed)
    data = ds.ImageFolderDataset(str(root), shuffle=train, num_parallel_workers=workers,
                                 num_shards=num_shards, shard_id=shard_id, decode=False)
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
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise PortingError(f"cannot read image '{path}': {exc.__class__.__name__}") from None
    for op in eval_transforms(metadata, size):
        array = op(array)
    return np.asarray(array, dtype=np.float32)
