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


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def file_dataset(samples: Samples, pre: Preprocessing, batch_size: int, workers: int | None = None):
    """A batched (image float32 NCHW, label int32) dataset over `samples`, in their order."""
    import mindspore.dataset as ds

    workers = workers or default_workers()
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


# std::mt19937's default seed: mindspore.dataset takes it for "no seed set" and draws a random one instead
MT19937_DEFAULT_SEED = 5489


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's order and random crops / flips: a function of the run's seed and the epoch (0-based)
    alone, so that any epoch can be built again exactly without replaying the ones before it."""
    value = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return value + 1 if value == MT19937_DEFAULT_SEED else value


class TrainFolder:
    """Shuffled, augmented training batches (image float32 NCHW, label int32) over root/<class>/<image>, one
    pipeline per epoch.

    One mindspore.dataset iterator over several epochs draws epoch e's order and crops from where epoch e - 1 left
    its generators (the sampler's reshuffle and each random op's generator run on from there), so an iterator
    started at epoch e (a resumed run) replays epoch 0's draws. Here each epoch is a pipeline of its own, seeded
    by epoch_seed(seed, epoch): epoch e is the same whether the run reached it or resumed in it. The draws also
    depend on the number of workers (each has its own generators), so a resumed run keeps its run's `workers`."""

    def __init__(self, root: Path, card: ModelCard, size: int, batch_size: int, labels: dict[str, int],
                 workers: int, num_shards: int | None = None, shard_id: int | None = None, seed: int = 0):
        self.root = Path(os.path.abspath(root))
        self.card, self.size, self.batch_size, self.labels, self.workers = card, size, batch_size, labels, workers
        self.num_shards, self.shard_id, self.seed = num_shards, shard_id, seed
        self.suffixes = sorted({f.suffix for d in labels for f in (self.root / d).iterdir() if is_image(f)})
        self.steps_per_epoch = self._pipeline(epoch_seed(seed, 0)).get_dataset_size()
        if self.steps_per_epoch == 0:
            raise PortingError(f"'{self.root}' has fewer images than one batch of {batch_size} "
                               f"{'per shard ' if num_shards else ''}(lower --batch-size)")

    def _pipeline(self, seed: int):
        import mindspore as ms
        import mindspore.dataset as ds
        from mindspore.dataset import vision

        # the sampler takes the seed when it is made (DistributedSampler) or when the pipeline starts
        # (RandomSampler, the random ops): the caller starts it before the seed can change
        ds.config.set_seed(seed)
        data = ds.ImageFolderDataset(str(self.root), shuffle=True, num_parallel_workers=self.workers,
                                     extensions=self.suffixes, class_indexing=self.labels, num_shards=self.num_shards,
                                     shard_id=self.shard_id, decode=False)
        crop = vision.RandomCropDecodeResize(self.size, scale=(0.08, 1.0),
                                             interpolation=_inter(self.card.interpolation))
        ops = [crop, vision.RandomHorizontalFlip(), *_normalise(self.card.mean, self.card.std)]
        data = data.map(ops, input_columns="image", num_parallel_workers=self.workers)
        data = data.map(ds.transforms.TypeCast(ms.int32), input_columns="label")
        return data.batch(self.batch_size, drop_remainder=True)

    def epoch(self, epoch: int, skip: int = 0, numpy: bool = False):
        """Epoch `epoch`'s (0-based) batches after its first `skip`, as MindSpore tensors or NumPy arrays. The
        skipped batches are still read and augmented, unused: the random draws of the rest follow theirs."""
        batches = self._pipeline(epoch_seed(self.seed, epoch)).create_tuple_iterator(num_epochs=1, output_numpy=numpy)
        for _ in range(skip):
            next(batches)
        yield from batches


def load_image(path: Path, pre: Preprocessing) -> np.ndarray:
    """One image file -> CHW float32, through the very ops evaluation runs (decode included)."""
    if not path.is_file():
        raise PortingError(f"image '{path}' does not exist")
    why = unreadable(path)
    if why:
        raise PortingError(f"cannot read image '{path}': {why}")
    array = np.fromfile(str(path), np.uint8)
    with pipeline_cwd():
        for op in eval_transforms(pre):
            array = op(array)
    return np.asarray(array, dtype=np.float32)
