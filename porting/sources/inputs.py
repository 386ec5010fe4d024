"""Seeded, image-like test inputs shared by every runner (NumPy only)."""
from __future__ import annotations

import numpy as np


def make_images(seed: int, batch: int, size: int, mean, std) -> np.ndarray:
    """NCHW float32: smooth random images in [0, 1], normalised with the model's mean/std."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.0, 1.0, size=(batch, 3, 8, 8))
    # Bilinear-ish upsampling of a coarse grid plus pixel noise: structure at several scales, like photos.
    idx = np.linspace(0, 7, size)
    lo = np.floor(idx).astype(int)
    hi = np.minimum(lo + 1, 7)
    w = (idx - lo)[None, None]
    rows = coarse[:, :, lo, :] * (1 - w[..., None]) + coarse[:, :, hi, :] * w[..., None]
    img = rows[:, :, :, lo] * (1 - w[:, :, None, :]) + rows[:, :, :, hi] * w[:, :, None, :]
    img = np.clip(img + rng.normal(0.0, 0.1, size=img.shape), 0.0, 1.0)
    mean = np.asarray(mean, np.float64).reshape(1, 3, 1, 1)
    std = np.asarray(std, np.float64).reshape(1, 3, 1, 1)
    return ((img - mean) / std).astype(np.float32)
