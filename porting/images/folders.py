"""Image folders: which files are images, the class folders of an ImageFolder root, and a check that every
image decodes before a pipeline starts (reduced-size JPEG decoding, in threads), so an unreadable file stops
the command in one line naming it instead of crashing MindSpore's pipeline hours later. No framework here."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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



def unreadable(path: Path) -> str | None:
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
    warn_others(root, others, log)
    return images


def warn_others(root: Path, others: list[Path], log) -> None:
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
        for path, why in zip(images, pool.map(unreadable, images, chunksize=16)):
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

