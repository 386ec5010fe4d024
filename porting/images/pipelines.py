"""mindspore.dataset pipelines: evaluation batches in the source library's own resize arithmetic, augmented
training batches, and one image through the very ops evaluation runs. MindSpore is imported when one is built."""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from porting import files
from porting.card import ModelCard
from porting.errors import PortingError
from porting.images.folders import folder_images, is_image, unreadable
from porting.images.labels import Samples
from porting.images.preprocessing import Preprocessing

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

    return {"bicubic": Inter.BICUBIC, "bilinear": Inter.BILINEAR, "nearest": Inter.NEAREST}[name or "bilinear"]



class ResizeShortCrop:
    """PaddleClas's ResizeImage(resize_short) then CropImage, with its arithmetic: the long side is rounded
    (MindSpore's Resize truncates) and the crop starts at (side - crop) // 2. The resampling itself is
    MindSpore's OpenCV-based Resize, the same as cv2.resize bit for bit."""

    def __init__(self, resize: int, size: int, interpolation: str):
        self.resize, self.size, self.interpolation = resize, size, interpolation

    def __call__(self, img: np.ndarray) -> np.ndarray:
        from mindspore.dataset import vision

        h, w = img.shape[:2]
        scale = self.resize / min(h, w)
        rh, rw = int(round(h * scale)), int(round(w * scale))
        img = vision.Resize((rh, rw), _inter(self.interpolation))(img)
        top, left = (rh - self.size) // 2, (rw - self.size) // 2
        return np.ascontiguousarray(img[top:top + self.size, left:left + self.size])


def eval_transforms(pre: Preprocessing):
    """Decode, resize the short side, center-crop, normalise, HWC -> CHW. 'pil': MindSpore's vision ops on PIL
    images, which are timm's torchvision transforms bit for bit; 'opencv': PaddleClas's arithmetic on arrays."""
    from mindspore.dataset import vision

    if pre.backend == "pil":
        return [vision.Decode(to_pil=True), vision.Resize(pre.resize, _inter(pre.interpolation)),
                vision.CenterCrop(pre.size), vision.ToTensor(),
                vision.Normalize(list(pre.mean), list(pre.std), is_hwc=False)]
    if pre.backend in ("mindspore", "mindspore-square"):  # the model zoo's src/dataset.py, op for op
        resize = (pre.resize, pre.resize) if pre.backend == "mindspore-square" else pre.resize
        return [vision.Decode(), vision.Resize(resize, _inter(pre.interpolation)), vision.CenterCrop(pre.size),
                *_normalise(pre.mean, pre.std)]
    return [vision.Decode(), ResizeShortCrop(pre.resize, pre.size, pre.interpolation), *_normalise(pre.mean, pre.std)]


def _normalise(mean, std):
    from mindspore.dataset import vision

    return [vision.Normalize([255.0 * m for m in mean], [255.0 * s for s in std]), vision.HWC2CHW()]


def _read_bytes(path) -> np.ndarray:
    return np.fromfile(str(path.item() if hasattr(path, "item") else path), np.uint8)


def file_dataset(samples: Samples, pre: Preprocessing, batch_size: int, workers: int | None = None):
    """A batched (image float32 NCHW, label int32) dataset over `samples`, in their order."""
    import mindspore.dataset as ds

    workers = workers or max(1, min(8, os.cpu_count() or 1))
    data = ds.NumpySlicesDataset({"image": np.array([str(p) for p in samples.paths]), "label": samples.labels},
                                 shuffle=False, num_parallel_workers=1)
    data = data.map(_read_bytes, input_columns="image", num_parallel_workers=workers)
    data = data.map(eval_transforms(pre), input_columns="image", num_parallel_workers=workers)
    return data.batch(batch_size, drop_remainder=False)


def folder_dataset(root: Path, labels: dict[str, int], pre: Preprocessing, batch_size: int,
                   workers: int | None = None):
    """Evaluation batches over root/<class>/<image>, labelled by `labels` (class folder -> output index)."""
    paths = [p for p in folder_images(root) if p.parent.name in labels]
    samples = Samples(root, paths, np.array([labels[p.parent.name] for p in paths], np.int32))
    return file_dataset(samples, pre, batch_size, workers)


def train_folder(root: Path, card: ModelCard, size: int, batch_size: int, labels: dict[str, int],
                 workers: int | None = None, num_shards: int | None = None, shard_id: int | None = None,
                 seed: int = 0):
    """Shuffled, augmented training batches (image float32 NCHW, label int32) over root/<class>/<image>."""
    import mindspore as ms
    import mindspore.dataset as ds
    from mindspore.dataset import vision

    root = Path(os.path.abspath(root))
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    suffixes = sorted({f.suffix for d in labels for f in (root / d).iterdir() if is_image(f)})
    ds.config.set_seed(seed)
    data = ds.ImageFolderDataset(str(root), shuffle=True, num_parallel_workers=workers, extensions=suffixes,
                                 class_indexing=labels, num_shards=num_shards, shard_id=shard_id, decode=False)
    ops = [vision.RandomCropDecodeResize(size, scale=(0.08, 1.0), interpolation=_inter(card.interpolation)),
           vision.RandomHorizontalFlip(), *_normalise(card.mean, card.std)]
    data = data.map(ops, input_columns="image", num_parallel_workers=workers)
    data = data.map(ds.transforms.TypeCast(ms.int32), input_columns="label")
    data = data.batch(batch_size, drop_remainder=True)
    if data.get_dataset_size() == 0:
        raise PortingError(f"'{root}' has fewer images than one batch of {batch_size} "
                           f"{'per shard ' if num_shards else ''}(lower --batch-size)")
    return data


def load_image(path: Path, pre: Preprocessing) -> np.ndarray:
    """One image file -> CHW float32, through the very ops evaluation runs (decode included)."""
    if not path.is_file():
        raise PortingError(f"image '{path}' is a folder, not an image file" if path.is_dir() else
                           f"image '{path}' does not exist")
    why = unreadable(path)
    if why:
        raise PortingError(f"cannot read image '{path}': {why}")
    array = np.fromfile(str(path), np.uint8)
    with pipeline_cwd():
        for op in eval_transforms(pre):
            array = op(array)
    return np.asarray(array, dtype=np.float32)
