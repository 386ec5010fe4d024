"""Evaluation preprocessing, from a model's card with timm validate.py's overrides. No framework here."""
from __future__ import annotations

from dataclasses import dataclass

from porting.card import INTERPOLATIONS, ModelCard
from porting.errors import PortingError




@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing: resize the short side to `resize`, center-crop `size`, normalise.

    backend: how the source library resizes, which the pipeline copies: 'pil' (timm's torchvision transforms and
    Keras work on PIL images: PIL's resampling filters, antialiased when shrinking; MindSpore's vision ops do
    the same on PIL images, bit for bit), 'opencv' (PaddleClas's cv2.resize arithmetic; MindSpore's ops on
    arrays), 'mindspore' / 'mindspore-square' (the model zoo's own MindSpore ops, card.RESIZE_BACKENDS)."""

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


def preprocessing(card: ModelCard, size: int | None = None, resize: int | None = None, crop_pct: float | None = None,
                  interpolation: str | None = None, mean=None, std=None) -> Preprocessing:
    """The model's preprocessing with timm validate.py's overrides. Without --size, a size timm evaluates the
    weights at (test_input_size, with its test_crop_pct) wins over the training size, as in timm."""
    if resize is not None and crop_pct is not None:
        raise PortingError("give --resize or --crop-pct, not both (--resize R --size S means crop S / R)")
    test = size is None and card.test_input_size
    size = size or (card.test_input_size if test else card.input_size)
    crop = crop_pct or (card.test_crop_pct if test else None) or card.crop_pct
    resize = resize or int(size / crop + 1e-6)  # timm: floor(img_size / crop_pct); 1e-6: 299 / (299 / 320) is 320
    if resize < size:
        raise PortingError(f"--resize {resize} is smaller than the crop {size}")
    for name, value in (("--mean", mean), ("--std", std)):
        if value is not None and len(value) != 3:
            raise PortingError(f"{name} takes 3 values (R G B), got {len(value)}")
    if std is not None and min(std) <= 0:
        raise PortingError(f"--std must be positive, not {list(std)}")
    interpolation = interpolation or card.interpolation
    if interpolation not in INTERPOLATIONS:
        raise PortingError(f"interpolation '{interpolation}': use {', '.join(INTERPOLATIONS)}")
    return Preprocessing(int(size), int(resize), interpolation, tuple(mean or card.mean), tuple(std or card.std),
                         card.resize_backend)

