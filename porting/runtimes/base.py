"""The one contract for running a model, as Polygraphy's runners: `runtime.infer(x, taps)` takes a normalised
NCHW float32 batch and returns {tap: output, LOGITS: logits} for the taps this runtime can show (a runtime that
shows none returns the logits alone). parity loops over runtimes and compares each with the reference; eval,
predict, quantize and bench call the same runtimes. The comparator never learns which framework answered.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

LOGITS = "logits"


class Runtime:
    """A model ready to run. Subclasses set `name` (the report's column) and `description`, and implement
    `infer`; `logits(x)` is infer without taps."""

    name = "runtime"
    description = "a model"

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.infer(x)[LOGITS]
