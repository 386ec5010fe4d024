"""The registry of runtimes: one record per runtime, saying what it can do, registered by its class as
architectures register themselves (`@register_runtime(...)` in porting/runtimes/<name>_runtime.py). No framework
is imported here: a record names the module whose import proves its extra is installed, and that import happens
only when the runtime is asked for."""
from __future__ import annotations

import ctypes
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from porting.errors import PortingError
from porting.options import PRECISIONS

if TYPE_CHECKING:
    from porting.runtimes.base import Runtime

# the model a runtime takes: a MindSpore network (a .ckpt, loaded), porting's ONNX, a MINDIR
FORMS = ("network", "onnx", "mindir")


@dataclass(frozen=True)
class RuntimeRecord:
    """What a runtime is and can do. `precisions`: what --precision may ask of it ('default': its own choice);
    `default_precision`: what 'default' computes at when that is known without running it (f32), None where the
    machine decides (OpenVINO's bf16 on CPUs that have it, TensorRT's TF32); `beside`: the other precisions parity
    reports beside its f32 verdict; `f16_from_file`: it computes f16 only from a float16 file (export --fp16),
    keeping the file's types; `devices`: where it computes ('CUDA' alone: skipped without a CUDA device);
    `fixed_batch`: it runs one input shape (a MINDIR's batch is fixed at export, TensorRT builds an engine per
    shape), so parity gives it every chunk padded to the largest."""

    name: str  # as --runtime takes it
    title: str  # as people name it: 'ONNX Runtime'
    runs: str  # one of FORMS
    taps: bool  # shows inner layers: parity compares it layer by layer, else on the logits alone
    precisions: tuple[str, ...]
    devices: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    default_precision: str | None = "f32"
    beside: tuple[str, ...] = ()
    f16_from_file: bool = False
    fixed_batch: bool = False
    extra: str | None = None  # pyproject's extra that installs it (None: porting's own dependencies)
    package: str | None = None  # the module whose import proves the extra is installed
    cls: type[Runtime] | None = field(default=None, compare=False, repr=False)  # set by register_runtime

    @property
    def install(self) -> str:
        return f"pip install 'porting[{self.extra}]'"

    def require(self) -> None:
        """A missing extra is one line naming it, before any work."""
        if self.package is None:
            return
        try:
            importlib.import_module(self.package)
        except ImportError:
            raise PortingError(f"{self.title} is not installed: {self.install}") from None

    def installed(self) -> bool:
        try:
            self.require()
        except PortingError:
            return False
        return True

    def unavailable(self) -> str | None:
        """Why it cannot run on this machine whatever is installed (no CUDA device for a CUDA-only runtime),
        or None."""
        if "CUDA" in self.devices and "CPU" not in self.devices and not cuda_devices():
            return "no CUDA device on this machine"
        return None

    def takes(self, precision: str) -> bool:
        return precision in self.precisions

    def same_precision(self, precision: str) -> str:
        """`precision` as this runtime computes it where that is known ('default' -> 'f32' for onnxruntime), so
        two asks that compute alike run once."""
        return self.default_precision if precision == "default" and self.default_precision else precision

    def runtime(self, model, *, taps: dict[str, str] | None = None, precision: str = "f32",
                what: str = "") -> Runtime:
        """The runtime for `model` (a network, an ONNX file or ModelProto, a MINDIR file: as `runs` says), not
        yet open: `with record.runtime(model) as runtime: runtime.infer(x)`. `taps`: {tap: graph output} of a
        traced ONNX graph; `what`: the file named in errors."""
        if not self.takes(precision):
            raise PortingError(f"{self.name} does not run at precision '{precision}': it takes "
                               f"{', '.join(self.precisions)}")
        return self.cls(model, taps=taps, precision=precision, what=what)


RUNTIMES: dict[str, RuntimeRecord] = {}


def register_runtime(**fields):
    """Class decorator: registers a Runtime subclass under its record (RuntimeRecord's fields)."""

    def register(cls):
        record = RuntimeRecord(**fields, cls=cls)
        if record.runs not in FORMS:
            raise ValueError(f"runtime {record.name}: runs {record.runs!r}, not one of {FORMS}")
        unknown = set(record.precisions + record.beside) - set(PRECISIONS)
        if unknown or "default" not in record.precisions:
            raise ValueError(f"runtime {record.name}: precisions {record.precisions} must take 'default' and "
                             f"come from {PRECISIONS}")
        taken = {n for r in RUNTIMES.values() for n in (r.name, *r.aliases)}
        if taken & {record.name, *record.aliases}:
            raise ValueError(f"runtime {record.name}: name or alias already registered")
        RUNTIMES[record.name] = record
        cls.record = record
        return cls

    return register


def all_runtimes() -> list[RuntimeRecord]:
    return list(RUNTIMES.values())


def runtime_names(leave_out: tuple[str, ...] = ()) -> str:
    """'mindspore, mindir, ort (onnx), ...': the names --runtime takes, for help texts and errors."""
    return ", ".join(r.name + (f" ({', '.join(r.aliases)})" if r.aliases else "") for r in RUNTIMES.values()
                     if r.name not in leave_out)


def runtime_record(name: str) -> RuntimeRecord:
    wanted = name.strip().lower()
    for record in RUNTIMES.values():
        if wanted == record.name or wanted in record.aliases:
            return record
    raise PortingError(f"unknown runtime '{name}': use {runtime_names()}")


def choose_runtimes(asked: Iterable[str] | str | None = (), **flags: bool) -> list[RuntimeRecord]:
    """The runtimes asked, in the order asked, each once: `asked` as --runtime gives them (names or aliases,
    repeated or comma-separated: ['ort,openvino', 'mindir']), then the old flags that are set (onnx=True is
    'ort'), in the order passed."""
    names = [asked] if isinstance(asked, str) else list(asked or ())
    words = [word.strip() for value in names for word in value.split(",")]
    if any(not word for word in words):
        raise PortingError(f"--runtime takes names separated by commas, not '{','.join(names)}': use "
                           f"{runtime_names()}")
    chosen = [runtime_record(word) for word in words] + [runtime_record(flag) for flag, on in flags.items() if on]
    return list(dict.fromkeys(chosen))


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise PortingError(f"unknown precision '{precision}': use {', '.join(PRECISIONS)}")
    return precision


def precision_takers(precision: str) -> str:
    """'openvino or tensorrt': the runtimes that take `precision`, for an error that says where it goes."""
    takers = [r.name for r in RUNTIMES.values() if r.takes(precision)]
    return " or ".join(takers) if takers else "none"


def cuda_devices() -> int:
    """How many CUDA devices the driver sees, asked of libcuda itself (0 without a driver): no framework loads."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value
