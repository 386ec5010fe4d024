"""The comparator: knows nothing about frameworks, only named NumPy arrays.

Tolerance (fp32), for every compared tensor, reference `r` and candidate `c`:

    max|r - c| <= rtol * max(1, max|r|)          rtol = 1e-4

That is 1e-4 absolute for tensors of magnitude <= 1 and 1e-4 relative to the largest value otherwise
("max rel" in reports is max|r - c| / max|r|; element-wise ratios explode near zero and say nothing). The
logits must in addition agree on top-1 for every sample. A reference layer that is degenerate (all values
equal, e.g. every ReLU dead) is flagged, because a check on dead activations proves nothing.

Every statistic is a running maximum, minimum, sum or count, so a comparison folds its inputs chunk by chunk
(`Comparison.add`, chunks split the batch axis) and ends with the rows the whole batch at once would give (the
cosine's sums up to their float64 rounding): parity holds one chunk's outputs at a time, however many images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from porting.report import LOGITS, RTOL, Report, Row  # noqa: F401 - RTOL and Report are part of this interface


@dataclass
class TensorStats:
    """One tensor's comparison, folded chunk by chunk along its first (batch) axis."""

    shape: list[int] | None = None  # the reference's, its batch axis summed over the chunks
    mismatch: tuple[list[int], list[int]] | None = None  # (candidate, reference) shapes, batch axes summed
    finite: bool = True
    ref_abs_max: float = 0.0
    max_abs: float = 0.0
    ref_ref: float = 0.0  # sums of products, for the cosine
    out_out: float = 0.0
    ref_out: float = 0.0
    ref_min: float = math.inf  # the reference's range: a constant one proves nothing
    ref_max: float = -math.inf
    size: int = 0

    def add(self, ref: np.ndarray, out: np.ndarray) -> None:
        ref, out = np.asarray(ref), np.asarray(out)
        if self.mismatch is None and ref.shape != out.shape:
            self.mismatch = (list(out.shape), list(ref.shape))
            if self.shape is not None and ref.ndim and out.ndim:  # earlier chunks matched: count them too
                self.mismatch[0][0] += self.shape[0]
                self.mismatch[1][0] += self.shape[0]
            return
        if self.mismatch is not None:
            if ref.ndim and out.ndim:
                self.mismatch[0][0] += out.shape[0]
                self.mismatch[1][0] += ref.shape[0]
            return
        if self.shape is None:
            self.shape = list(ref.shape)
        else:
            self.shape[0] += ref.shape[0]
        # float64 throughout (the errors looked for are 1e-4 of the values), flat: one pass per statistic
        ref, out = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
        self.finite = self.finite and bool(np.isfinite(out).all())
        # np.maximum / np.minimum: a NaN stays, as in one pass over the whole
        self.ref_abs_max = float(np.maximum(self.ref_abs_max, np.abs(ref).max(initial=0.0)))
        self.max_abs = float(np.maximum(self.max_abs, np.abs(ref - out).max(initial=0.0)))
        self.ref_ref += float(np.dot(ref, ref))
        self.out_out += float(np.dot(out, out))
        self.ref_out += float(np.dot(ref, out))
        if ref.size:
            self.ref_min = float(np.minimum(self.ref_min, ref.min()))
            self.ref_max = float(np.maximum(self.ref_max, ref.max()))
        self.size += ref.size

    def row(self, layer: str, runtime: str, rtol: float = RTOL, target: str = "", kind: str = LOGITS,
            floor: float = 1.0, atol: float = 0.0, constant_ok: bool = False) -> Row:
        """compare_tensor's row of everything added (its arguments)."""
        if self.mismatch is not None:
            out_shape, ref_shape = self.mismatch
            return Row(layer, runtime, ref_shape, math.inf, math.inf, 0.0, 0.0, False,
                       f"shape {out_shape} != reference {ref_shape}", target, kind)
        scale = max(floor, self.ref_abs_max)
        max_rel = self.max_abs / max(self.ref_abs_max, 1e-12)  # relative to the tensor's scale
        denom = math.sqrt(self.ref_ref * self.out_out)
        cosine = self.ref_out / denom if denom > 0 else float(self.max_abs == 0.0)
        bound = rtol * scale + atol
        ok = self.finite and self.max_abs <= bound
        note = ""
        if not self.finite:
            note = "non-finite values"
        elif self.size > 1 and self.ref_min == self.ref_max and not constant_ok:  # its standard deviation is 0
            ok, note = False, "degenerate reference (constant): check proves nothing"
        return Row(layer, runtime, list(self.shape or []), self.max_abs, max_rel, cosine, bound, ok, note, target,
                   kind)


def compare_tensor(layer: str, runtime: str, ref: np.ndarray, out: np.ndarray, rtol: float = RTOL,
                   target: str = "", kind: str = LOGITS, floor: float = 1.0, atol: float = 0.0,
                   constant_ok: bool = False) -> Row:
    """One row; `floor` the least scale the bound is relative to (1: activations; 0: purely relative to the
    tensor's own largest value, for gradients and updates, which are small by nature); `atol` added to the bound
    (an update known only to the float32 resolution of the weight it changes); `constant_ok` where a constant
    reference is a result, not a dead layer (a gradient that is zero in exact arithmetic, and its zero update)."""
    stats = TensorStats()
    stats.add(ref, out)
    return stats.row(layer, runtime, rtol, target, kind, floor, atol, constant_ok)


@dataclass
class Comparison:
    """One runtime against the reference on each layer (in order), then on the logits, over any number of chunks:
    `add` one chunk's outputs at a time (neither is kept), `finish` writes the rows, errors and top-1 agreement
    into the report. A layer is a weight map's Layer (source name, MindSpore cell, kind) or a bare name; outputs
    are keyed by source name."""

    report: Report
    runtime: str
    layers: list
    logits: str = LOGITS
    top1: bool = True  # False: the output has no classes (a feature extractor's features)
    stats: dict[str, TensorStats] = field(default_factory=dict)
    errors: dict[str, None] = field(default_factory=dict)  # ordered, each once however many chunks said it
    agree: int = 0
    samples: int = 0

    def add(self, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray]) -> None:
        for layer in [*self.layers, self.logits]:
            name = getattr(layer, "source", layer)
            if name not in candidate:
                continue
            if name not in reference:
                self.errors[f"{self.runtime}: reference has no output for '{name}'"] = None
                continue
            self.stats.setdefault(name, TensorStats()).add(reference[name], candidate[name])
        if self.top1 and self.logits in candidate and self.logits in reference:
            same = np.argmax(reference[self.logits], axis=-1) == np.argmax(candidate[self.logits], axis=-1)
            self.agree += int(np.sum(same))
            self.samples += int(np.size(same))

    def finish(self) -> None:
        for layer in [*self.layers, self.logits]:
            name = getattr(layer, "source", layer)
            if name in self.stats:
                self.report.rows.append(self.stats[name].row(
                    name, self.runtime, self.report.rtol, getattr(layer, "target", ""),
                    getattr(layer, "kind", LOGITS if name == self.logits else "layer")))
        self.report.errors.extend(self.errors)
        if self.samples:
            self.report.top1_agree[self.runtime] = self.agree / self.samples


def compare(
    report: Report,
    runtime: str,
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    layers: list,
    logits: str = LOGITS,
) -> None:
    """Compare `candidate` against `reference` on each layer (in order), then on the logits: one chunk's
    Comparison."""
    comparison = Comparison(report, runtime, layers, logits)
    comparison.add(reference, candidate)
    comparison.finish()
