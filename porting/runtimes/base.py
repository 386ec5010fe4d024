"""The one contract for running a model, as Polygraphy's runners (activate / infer / deactivate): a runtime is
made with what it will run and allocates nothing; `open()` loads it (a session, a compiled model, an engine),
`infer(x, taps)` takes a normalised NCHW float32 batch and returns {tap: output, LOGITS: logits} for the taps
this runtime can show (a runtime that shows none returns the logits alone), and `close()` frees what open took.
It is a context manager: `with record.runtime(model) as runtime: runtime.infer(x)`. parity loops over the
runtimes asked and compares each with the reference; eval, predict, quantize and bench call the same runtimes.
The comparator never learns which framework answered.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np

if TYPE_CHECKING:
    from porting.runtimes.registry import RuntimeRecord

LOGITS = "logits"


class Runtime:
    """A model to run. Subclasses registered with @register_runtime get `record` (what the runtime can do);
    they set `name` (the report's column) and `description`, and implement `open`, `infer` and `close`;
    `logits(x)` is infer without taps."""

    record: ClassVar[RuntimeRecord]
    name = "runtime"
    description = "a model"
    precision: str | None = "f32"  # what it computes at (where the runtime decides: known once open)
    input_shape: list | None = None  # the input the opened model declares (None in a dimension: dynamic)

    def open(self) -> Runtime:
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> Runtime:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def infer(self, x: np.ndarray, taps: Sequence[str] = ()) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.infer(x)[LOGITS]

    @property
    def label(self) -> str:
        """Its row in a table: 'OpenVINO (CPU, f32)'."""
        return self.record.title

    @property
    def engine(self) -> str:
        """What runs a file, in a few words: 'OpenVINO CPU, f32'."""
        return self.record.title

    def describe_precision(self) -> str:
        """The precision it runs at, and why where that is not what was asked: 'f32', 'bf16: OpenVINO's default
        on this CPU'."""
        return "f32"

    def metadata_props(self) -> dict[str, str] | None:
        """The opened ONNX file's metadata_props, where this runtime reads them (None: it does not)."""
        return None

    def _opened(self, handle):
        """`handle` (what open() made), or a plain error for a runtime used before open() or after close()."""
        if handle is None:
            raise RuntimeError(f"{type(self).__name__} is not open: use it as `with runtime: ...` or call open()")
        return handle
