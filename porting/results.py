"""What the commands give back, as typed records: eval's scores, predict's classes, quantize's comparison, bench's
rows, parity --check-preprocessing's differences, map's table, the targets of `export --to`. The API returns them,
the CLI renders them, and `as_dict()` / `to_json()` give the `--json` output, whose keys README "Python API" lists
(eval's are the model zoo's eval.py's). No framework here.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from porting.converters.target import Fit


class _AsJson:
    def as_dict(self) -> dict:
        return asdict(self)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.as_dict(), indent=indent)


def to_json(results: list, indent: int | None = 2) -> str:
    """A list of results as the `--json` of a command that gives several (bench's rows, predict's images)."""
    return json.dumps([r.as_dict() for r in results], indent=indent)


@dataclass(frozen=True)
class Accuracy(_AsJson):
    """The model zoo's eval.py result: mean cross-entropy loss, top-1 and top-5 accuracy."""

    loss: float
    top1: float
    top5: float

    def metrics(self) -> dict:
        """As eval.py prints it: {'Loss', 'Top_1_Acc', 'Top_5_Acc'}."""
        return {"Loss": self.loss, "Top_1_Acc": self.top1, "Top_5_Acc": self.top5}

    def as_dict(self) -> dict:
        return self.metrics()


@dataclass(frozen=True)
class EvalResult(Accuracy):
    """`porting eval`: one runtime's scores on a dataset."""

    runtime: str  # what ran the file (mindspore, mindir, ort, openvino, tensorrt)
    precision: str  # what it ran at, as it reports
    samples: int

    def as_dict(self) -> dict:
        return {**self.metrics(), "runtime": self.runtime, "precision": self.precision, "samples": self.samples}


@dataclass(frozen=True)
class ClassProbability:
    name: str  # the class's name (JSON: 'class')
    index: int
    probability: float


@dataclass(frozen=True)
class Prediction(_AsJson):
    """`porting predict`: one image's top classes in one runtime."""

    image: str
    runtime: str
    precision: str
    top: list[ClassProbability]

    def as_dict(self) -> dict:
        return {"image": self.image, "runtime": self.runtime, "precision": self.precision,
                "top": [{"class": t.name, "index": t.index, "probability": t.probability} for t in self.top]}


@dataclass(frozen=True)
class BenchRow(_AsJson):
    """`porting bench`: one runtime at one batch size, the median of its timed calls."""

    runtime: str  # the runtime as it describes itself ('OpenVINO (CPU, f32)')
    batch: int
    size: int
    median_s: float
    img_per_s: float
    precision: str


@dataclass(frozen=True)
class FileSizes:
    """In MiB."""

    float32: float
    int8: float


@dataclass(frozen=True)
class QuantizeReport(_AsJson):
    """`porting quantize`: how the int8 file was calibrated, and how far it moved from the float32 one."""

    calibration_images: int
    classes_covered: int
    compared_images: int  # held out, or (none left) calibration images
    held_out: int
    method: str
    input_size: int
    size_mib: FileSizes
    top1_agreement: float | None  # None for a feature extractor (output 'features': no classes)
    top5_overlap: float | None
    max_logit_error: float  # a feature extractor's: its largest feature difference
    logit_scale: float  # the largest float32 logit (feature), for scale
    float32: Accuracy | None = None  # on labelled images
    int8: Accuracy | None = None
    output: str = "logits"  # 'features': a feature extractor's, compared without top-1

    def as_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("float32", "int8")}
        for name, scores in (("float32", self.float32), ("int8", self.int8)):
            if scores is not None:
                out[name] = scores.as_dict()
        return out


@dataclass(frozen=True)
class ImageDifference:
    """One image through porting's pipeline and the source library's own, in normalised units."""

    image: str
    mean_abs: float | None  # None where the shapes differ ...
    max_abs: float | None
    shapes: tuple[list[int], list[int]] | None = None  # ... (porting's, the library's) (JSON: 'shape')

    def as_dict(self) -> dict:
        shape = {"shape": [list(s) for s in self.shapes]} if self.shapes is not None else {}
        return {"image": self.image, **shape, "mean_abs": self.mean_abs, "max_abs": self.max_abs}


@dataclass(frozen=True)
class PipelineCheck(_AsJson):
    """`parity --check-preprocessing`: porting's image pipeline against the source library's own."""

    spec: str
    ours: str  # porting's pipeline, described
    theirs: str  # the library's
    images: list[ImageDifference] = field(default_factory=list)
    mean_abs: float | None = None  # over the images of the same shape
    max_abs: float | None = None

    def as_dict(self) -> dict:
        return {"spec": self.spec, "ours": self.ours, "theirs": self.theirs,
                "images": [i.as_dict() for i in self.images], "mean_abs": self.mean_abs, "max_abs": self.max_abs}


@dataclass
class MapRow:
    """One row of a weight map: a source tensor (or the parts stacked into one), the MindSpore parameter it
    becomes and how; a source tensor the map drops has no target."""

    source: str
    source_shape: list[int] | str | None  # [d, ...], "N x [d, ...]" for stacked parts; None where unknown
    target: str | None
    target_shape: list[int] | None
    transform: str


@dataclass(frozen=True)
class MapTable(_AsJson):
    """`porting map`: a spec's expanded weight map, checked on the library's untrained model."""

    spec: str
    arch: str
    ignore: list[str]
    rows: list[MapRow]
    head: str | None = None  # the user's own head whose rows it lists (map --head), described


class TargetFit(NamedTuple):
    """`porting models --targets`: where a checkpoint of spec `source` goes with `export --to target`."""

    source: str
    target: str
    fit: Fit  # exactly, folded, approximately, or not
