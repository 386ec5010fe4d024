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
from dataclasses import dataclass
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


INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


def imagenet_table() -> list[tuple[str, str]]:
    """[(WordNet id, class name)] in ImageNet-1k index order."""
    text = resources.files("porting").joinpath("data/imagenet_classes.txt").read_text()
    return [tuple(line.split("\t", 1)) for line in text.splitlines() if line]


def imagenet_classes() -> list[str]:
    return [name for _, name in imagenet_table()]


def label_mapping(root: Path, meta: dict) -> dict[str, int]:
    """Class folder -> the checkpoint's output index, or a one-line refusal when it cannot be trusted."""
    folders = class_names(root)
    n = int(meta["num_classes"])
    known = meta.get("class_names")
    if known and known == imagenet_classes():
        known = None  # ImageNet's own names (an export adds them): its folders are named by WordNet id
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


def folder_images(root: Path, log=lambda msg: None) -> list[Path]:
    """The images under root/<class>/ (ImageFolder); files that are not images are ignored, with a warning."""
    images, others = [], []
    for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for f in sorted(folder.iterdir()):
            (images if f.is_file() and is_image(f) else others).append(f)
    _warn_others(root, others, log)
    return images


def _warn_others(root: Path, others: list[Path], log) -> None:
    if others:
        log(f"warning: ignoring {len(others)} file(s) that are not {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} "
            f"images in '{root}' ({', '.join(str(p.relative_to(root)) for p in others[:3])}"
            f"{'...' if len(others) > 3 else ''})")


def check_images(root: Path, log=lambda msg: None, progress=None, images: list[Path] | None = None) -> int:
    """Open every image (those under root/<class>/, or `images`); refuse unreadable ones by name."""
    images = folder_images(root, log) if images is None else images
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


def list_images(root: Path) -> list[Path]:
    """Image files in `root` and in its sub-folders (one level: class folders), sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise PortingError(f"images folder '{root}' does not exist")
    found = [f for f in root.iterdir() if f.is_file() and is_image(f)]
    found += [f for d in root.iterdir() if d.is_dir() for f in d.iterdir() if f.is_file() and is_image(f)]
    if not found:
        raise PortingError(f"'{root}' holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
    return sorted(found)


@dataclass
class Samples:
    """Image files and their labels (indices into the model's outputs), from either layout."""

    root: Path
    paths: list[Path]
    labels: np.ndarray


def labelled_images(data: Path, meta: dict, label_file: Path | None = None, log=lambda msg: None,
                    unlabelled_ok: bool = False) -> Samples:
    """DATA/val/<class>/<image> (or DATA/<class>/<image>): labels from the folder names (label_mapping).
    The deployment guide's layout, a flat folder of images (DATA/val/*.JPEG or DATA/*.JPEG) with a label file
    of `FILENAME LABEL` lines (--label-file, else val_label.txt beside the images or beside their folder).
    unlabelled_ok: a flat folder without a label file gives label -1 for every image."""
    data = Path(os.path.abspath(data))
    if not data.is_dir():
        raise PortingError(f"dataset folder '{data}' does not exist")
    root = data / "val" if (data / "val").is_dir() else data
    if any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir()):
        if label_file is not None:
            raise PortingError(f"'{root}' holds class folders: their names are the labels, --label-file applies to "
                               f"a flat folder of images")
        mapping = label_mapping(root, meta)
        paths = folder_images(root, log)
        return Samples(root, paths, np.array([mapping[p.parent.name] for p in paths], np.int32))
    candidates = [label_file] if label_file else [root / "val_label.txt", root.parent / "val_label.txt"]
    found = next((c for c in candidates if c is not None and c.is_file()), None)
    if found is None and unlabelled_ok and label_file is None:
        images = [f for f in sorted(root.iterdir()) if f.is_file() and is_image(f)]
        if not images:
            raise PortingError(f"'{root}' holds no images")
        return Samples(root, images, np.full(len(images), -1, np.int32))
    if found is None:
        raise PortingError(f"'{root}' holds images but no class folders, and no label file"
                           + (f" '{label_file}'" if label_file else " (val_label.txt beside it)")
                           + ": give --label-file with 'FILENAME LABEL' lines")
    return _flat_samples(root, found, meta, log)


def _flat_samples(root: Path, label_file: Path, meta: dict, log) -> Samples:
    n = int(meta["num_classes"])
    offset = 1 if (meta.get("background_class") or {}).get("kept") else 0  # ImageNet labels, output 0 = background
    listed: dict[str, int] = {}
    try:
        lines = label_file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise PortingError(f"cannot read label file '{label_file}': {exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise PortingError(f"'{label_file}' line {number}: expected 'FILENAME LABEL', got {line.strip()!r}")
        label = int(parts[1]) + offset
        if not 0 <= label < n:
            raise PortingError(f"'{label_file}' line {number}: label {parts[1]} is outside the model's {n} classes")
        listed[parts[0]] = label
    images, others = [], []
    for f in sorted(root.iterdir()):
        (images if f.is_file() and is_image(f) else others).append(f)
    others = [f for f in others if f != label_file]
    _warn_others(root, others, log)
    unlisted = [p.name for p in images if p.name not in listed]
    if unlisted:
        raise PortingError(f"{len(unlisted)} image(s) in '{root}' have no line in '{label_file}' "
                           f"({', '.join(unlisted[:3])}{'...' if len(unlisted) > 3 else ''})")
    missing = sorted(set(listed) - {p.name for p in images})
    if missing:
        raise PortingError(f"'{label_file}' lists {len(missing)} file(s) that '{root}' does not hold "
                           f"({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''})")
    return Samples(root, images, np.array([listed[p.name] for p in images], np.int32))


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


# 'mindspore': the model zoo's own eval pipeline, MindSpore's Resize(short side) and CenterCrop on the decoded
# array; 'mindspore-square': its SE_ResNeXt50's Resize((R, R)), both sides to R (the aspect ratio is not kept)
RESIZE_BACKENDS = ("pil", "opencv", "mindspore", "mindspore-square")


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing: resize the short side to `resize`, center-crop `size`, normalise.

    backend: how the source library resizes, which the pipeline copies: 'pil' (timm's torchvision transforms and
    Keras work on PIL images: PIL's resampling filters, antialiased when shrinking; MindSpore's vision ops do
    the same on PIL images, bit for bit), 'opencv' (PaddleClas's cv2.resize arithmetic; MindSpore's ops on
    arrays), 'mindspore' / 'mindspore-square' (the model zoo's own MindSpore ops, RESIZE_BACKENDS)."""

    size: int
    resize: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    backend: str = "opencv"

    def describe(self) -> str:
        resize = f"{self.resize}x{self.resize}" if self.backend == "mindspore-square" else str(self.resize)
        return (f"resize {resize} ({self.interpolation}, {self.backend}) -> center crop {self.size}, mean "
                f"{[round(m, 4) for m in self.mean]}, std {[round(s, 4) for s in self.std]}")


def preprocessing(meta: dict, size: int | None = None, resize: int | None = None, crop_pct: float | None = None,
                  interpolation: str | None = None, mean=None, std=None) -> Preprocessing:
    """The model's preprocessing with timm validate.py's overrides. Without --size, a size timm evaluates the
    weights at (test_input_size, with its test_crop_pct) wins over the training size, as in timm."""
    if resize is not None and crop_pct is not None:
        raise PortingError("give --resize or --crop-pct, not both (--resize R --size S means crop S / R)")
    test = size is None and meta.get("test_input_size")
    size = size or (meta["test_input_size"] if test else int(meta["input_size"]))
    crop = crop_pct or (meta.get("test_crop_pct") if test else None) or meta.get("crop_pct") or 0.875
    resize = resize or int(size / crop + 1e-6)  # timm: floor(img_size / crop_pct); 1e-6: 299 / (299 / 320) is 320
    if resize < size:
        raise PortingError(f"--resize {resize} is smaller than the crop {size}")
    for name, value in (("--mean", mean), ("--std", std)):
        if value is not None and len(value) != 3:
            raise PortingError(f"{name} takes 3 values (R G B), got {len(value)}")
    if std is not None and min(std) <= 0:
        raise PortingError(f"--std must be positive, not {list(std)}")
    interpolation = interpolation or meta.get("interpolation") or "bilinear"
    if interpolation not in INTERPOLATIONS:
        raise PortingError(f"interpolation '{interpolation}': use {', '.join(INTERPOLATIONS)}")
    # resize_backend is checked with the rest of the metadata when the file is loaded (validate_metadata)
    return Preprocessing(int(size), int(resize), interpolation, tuple(mean or meta["mean"]), tuple(std or meta["std"]),
                         meta.get("resize_backend", "opencv"))


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


def train_folder(root: Path, metadata: dict, size: int, batch_size: int, labels: dict[str, int],
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
    ops = [vision.RandomCropDecodeResize(size, scale=(0.08, 1.0), interpolation=_inter(metadata.get("interpolation"))),
           vision.RandomHorizontalFlip(), *_normalise(metadata["mean"], metadata["std"])]
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
        raise PortingError(f"image '{path}' does not exist")
    why = _unreadable(path)
    if why:
        raise PortingError(f"cannot read image '{path}': {why}")
    array = np.fromfile(str(path), np.uint8)
    with pipeline_cwd():
        for op in eval_transforms(pre):
            array = op(array)
    return np.asarray(array, dtype=np.float32)
