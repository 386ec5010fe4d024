"""The comparator: knows nothing about frameworks, only named NumPy arrays.

Tolerance (fp32), for every compared tensor, reference `r` and candidate `c`:

    max|r - c| <= rtol * max(1, max|r|)          rtol = 1e-4

That is 1e-4 absolute for tensors of magnitude <= 1 and 1e-4 relative to the largest value otherwise
("max rel" in reports is max|r - c| / max|r|; element-wise ratios explode near zero and say nothing). The
logits must in addition agree on top-1 for every sample. A reference layer that is degenerate (all values
equal, e.g. every ReLU dead) is flagged, because a check on dead activations proves nothing.
"""
from __future__ import annotations

import math

import numpy as np

from porting.report import LOGITS, RTOL, Report, Row  # noqa: F401 - RTOL and Report are part of this interface


def compare_tensor(layer: str, runtime: str, ref: np.ndarray, out: np.ndarray, rtol: float = RTOL,
                   target: str = "", kind: str = LOGITS, floor: float = 1.0, atol: float = 0.0,
                   constant_ok: bool = False) -> Row:
    """One row; `floor` the least scale the bound is relative to (1: activations; 0: purely relative to the
    tensor's own largest value, for gradients and updates, which are small by nature); `atol` added to the bound
    (an update known only to the float32 resolution of the weight it changes); `constant_ok` where a constant
    reference is a result, not a dead layer (a gradient that is zero in exact arithmetic, and its zero update)."""
    ref, out = np.asarray(ref), np.asarray(out)
    if ref.shape != out.shape:
        return Row(layer, runtime, list(ref.shape), math.inf, math.inf, 0.0, 0.0, False,
                   f"shape {list(out.shape)} != reference {list(ref.shape)}", target, kind)
    shape = list(ref.shape)
    # float64 throughout (the errors looked for are 1e-4 of the values), flat: one pass per statistic
    ref, out = ref.astype(np.float64).ravel(), out.astype(np.float64).ravel()
    finite = bool(np.isfinite(out).all())
    ref_max = float(np.abs(ref).max(initial=0.0))
    scale = max(floor, ref_max)
    max_abs = float(np.abs(ref - out).max(initial=0.0))
    max_rel = max_abs / max(ref_max, 1e-12)  # relative to the tensor's scale
    denom = float(np.sqrt(np.dot(ref, ref) * np.dot(out, out)))
    cosine = float(np.dot(ref, out) / denom) if denom > 0 else float(max_abs == 0.0)
    bound = rtol * scale + atol
    ok = finite and max_abs <= bound
    note = ""
    if not finite:
        note = "non-finite values"
    elif ref.size > 1 and ref.min() == ref.max() and not constant_ok:  # its standard deviation is 0
        ok, note = False, "degenerate reference (constant): check proves nothing"
    return Row(layer, runtime, shape, max_abs, max_rel, cosine, bound, ok, note, target, kind)


def compare(
    report: Report,
    runtime: str,
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    layers: list,
    logits: str = LOGITS,
) -> None:
    """Compare `candidate` against `reference` on each layer (in order), then on the logits. A layer is a
    weight map's Layer (source name, MindSpore cell, kind) or a bare name; outputs are keyed by source name."""
    for layer in [*layers, logits]:
        name = getattr(layer, "source", layer)
        if name not in candidate:
            continue
        if name not in reference:
            report.errors.append(f"{runtime}: reference has no output for '{name}'")
            continue
        report.rows.append(compare_tensor(name, runtime, reference[name], candidate[name], report.rtol,
                                          getattr(layer, "target", ""),
                                          getattr(layer, "kind", LOGITS if name == logits else "layer")))
    if logits in candidate and logits in reference:
        agree = np.argmax(reference[logits], axis=-1) == np.argmax(candidate[logits], axis=-1)
        report.top1_agree[runtime] = float(np.mean(agree))
