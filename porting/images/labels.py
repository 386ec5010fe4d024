"""Labels: which of the model's outputs each image is. From class-folder names, mapped to the checkpoint's
classes (its class names after fine-tuning, ImageNet's WordNet ids `n01440764` for 1000-class checkpoints, or
folder position only when the folders are all of the checkpoint's classes), or from the deployment guide's
label file beside a flat folder of images. A mapping that cannot be trusted is refused. No framework here."""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from porting.card import ModelCard
from porting.errors import PortingError
from porting.images.folders import class_names, folder_images, is_image, warn_others

def imagenet_table() -> list[tuple[str, str]]:
    """[(WordNet id, class name)] in ImageNet-1k index order."""
    text = resources.files("porting").joinpath("data/imagenet_classes.txt").read_text()
    return [tuple(line.split("\t", 1)) for line in text.splitlines() if line]


def imagenet_classes() -> list[str]:
    return [name for _, name in imagenet_table()]


def label_mapping(root: Path, card: ModelCard) -> dict[str, int]:
    """Class folder -> the checkpoint's output index, or a one-line refusal when it cannot be trusted."""
    folders = class_names(root)
    n = card.num_classes
    known = card.class_names
    if known and known == imagenet_classes():
        known = None  # ImageNet's own names (an export adds them): its folders are named by WordNet id
    if known:  # fine-tuned: folders are (a subset of) its classes, by name
        unknown = [f for f in folders if f not in known]
        if unknown:
            raise PortingError(f"class folder(s) {', '.join(unknown[:5])} of '{root}' are not among the "
                               f"checkpoint's classes ({', '.join(known[:5])}{'...' if len(known) > 5 else ''})")
        return {f: known.index(f) for f in folders}
    offset = 1 if card.background_kept else 0  # a kept TF-slim background class is output 0
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



@dataclass
class Samples:
    """Image files and their labels (indices into the model's outputs), from either layout."""

    root: Path
    paths: list[Path]
    labels: np.ndarray  # -1: unlabelled
    groups: np.ndarray | None = None  # unlabelled images in class folders: each one's folder (to draw from all)


def labelled_images(data: Path, card: ModelCard, label_file: Path | None = None, log=lambda msg: None,
                    unlabelled_ok: bool = False) -> Samples:
    """DATA/val/<class>/<image> (or DATA/<class>/<image>): labels from the folder names (label_mapping).
    The deployment guide's layout, a flat folder of images (DATA/val/*.JPEG or DATA/*.JPEG) with a label file
    of `FILENAME LABEL` lines (--label-file, else val_label.txt beside the images or beside their folder).
    unlabelled_ok: a flat folder without a label file, or class folders that are not the checkpoint's classes, give
    label -1 for every image (class folders: with the folder of each as its group)."""
    data = Path(os.path.abspath(data))
    if not data.is_dir():
        raise PortingError(f"dataset '{data}' is a file: give the folder that holds the images" if data.exists()
                           else f"dataset folder '{data}' does not exist")
    root = data / "val" if (data / "val").is_dir() else data
    if any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir()):
        if label_file is not None:
            raise PortingError(f"'{root}' holds class folders: their names are the labels, --label-file applies to "
                               f"a flat folder of images")
        try:
            mapping = label_mapping(root, card)
        except PortingError:
            if not unlabelled_ok:
                raise
            folders = class_names(root)
            log(f"'{root}': its {len(folders)} class folder(s) are not named as the checkpoint's {card.num_classes} "
                f"classes; their images are used unlabelled (no accuracy), drawn across the folders")
            paths = folder_images(root, log)
            return Samples(root, paths, np.full(len(paths), -1, np.int32),
                           np.array([folders.index(p.parent.name) for p in paths], np.int32))
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
    return _flat_samples(root, found, card, log)


def _flat_samples(root: Path, label_file: Path, card: ModelCard, log) -> Samples:
    n = card.num_classes
    offset = 1 if card.background_kept else 0  # ImageNet labels, output 0 = background
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
    warn_others(root, others, log)
    unlisted = [p.name for p in images if p.name not in listed]
    if unlisted:
        raise PortingError(f"{len(unlisted)} image(s) in '{root}' have no line in '{label_file}' "
                           f"({', '.join(unlisted[:3])}{'...' if len(unlisted) > 3 else ''})")
    missing = sorted(set(listed) - {p.name for p in images})
    if missing:
        raise PortingError(f"'{label_file}' lists {len(missing)} file(s) that '{root}' does not hold "
                           f"({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''})")
    return Samples(root, images, np.array([listed[p.name] for p in images], np.int32))

