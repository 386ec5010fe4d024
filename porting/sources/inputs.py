"""Seeded, image-like test inputs shared by every runner (NumPy only)."""
from __future__ import annotations

import numpy as np


def make_images(seed: int, batch: int, size: int, mean, std) -> np.ndarray:
    """NCHW float32: smooth random images in [0, 1], normalised with the model's mean/std."""
    return SeededImages(seed, batch, size, mean, std).take(batch)


class SeededImages:
    """make_images(seed, batch, ...) taken in consecutive chunks, each equal to its slice of the whole, which is
    never held: the generator draws its numbers in the same order."""

    def __init__(self, seed: int, batch: int, size: int, mean, std):
        self.rng = np.random.default_rng(seed)
        self.coarse = self.rng.uniform(0.0, 1.0, size=(batch, 3, 8, 8))
        self.size, self.taken = size, 0
        self.mean = np.asarray(mean, np.float64).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float64).reshape(1, 3, 1, 1)

    def take(self, n: int) -> np.ndarray:
        """The next `n` images (fewer where the batch ends)."""
        coarse = self.coarse[self.taken:self.taken + n]
        self.taken += len(coarse)
        # Bilinear-ish upsampling of a coarse grid plus pixel noise: structure at several scales, like photos.
        idx = np.linspace(0, 7, self.size)
        lo = np.floor(idx).astype(int)
        hi = np.minimum(lo + 1, 7)
        w = (idx - lo)[None, None]
        rows = coarse[:, :, lo, :] * (1 - w[..., None]) + coarse[:, :, hi, :] * w[..., None]
        img = rows[:, :, :, lo] * (1 - w[:, :, None, :]) + rows[:, :, :, hi] * w[:, :, None, :]
        img = np.clip(img + self.rng.normal(0.0, 0.1, size=img.shape), 0.0, 1.0)
        return ((img - self.mean) / self.std).astype(np.float32)
