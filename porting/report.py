"""A parity report: typed rows, JSON both ways, and its renderings (rich tables, a plot). No framework here.

A row says which source layer was compared (`layer`, the source's name), with which MindSpore cell (`target`),
of what kind (conv, bn, separable, block, pool, se, act; `logits` for the output), on which runtime, and how
close it came. The comparator (porting.compare) fills a report; `porting parity` renders it; a saved report
(`--report FILE`) loads back with `Report.from_json` and renders or plots the same.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from porting.tables import Fitted

RTOL = 1e-4
LOGITS = "logits"
TOLERANCE = "max_abs <= rtol * max(1, max|reference|); logits top-1 agree on every sample"


@dataclass
class Row:
    layer: str  # the source's name for it ('block5.rep.1'), or 'logits'
    runtime: str  # mindspore | onnx | openvino | tensorrt | mindir
    shape: list[int]
    max_abs: float
    max_rel: float
    cosine: float
    bound: float
    ok: bool
    note: str = ""
    target: str = ""  # the MindSpore cell ('features.block5.rep.sep1'); '' for the logits
    kind: str = LOGITS  # what the layer is: conv, bn, separable, block, pool, se, act, or logits


@dataclass
class OtherPrecision:
    """A deployment runtime at a precision other than f32 (OpenVINO's default, TensorRT's TF32, an fp16 export)
    against the reference logits: reported beside the verdict, not part of it."""

    runtime: str  # 'openvino at its default precision'
    precision: str  # what the runtime says it computed at
    max_abs: float
    max_rel: float
    top1_agree: float
    inputs: str
    within_tolerance: bool


@dataclass
class TrainStepInfo:
    """parity --train-step: the recipe the step ran with, in MindSpore's terms, and how each library writes it."""

    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    label_smooth_factor: float
    loss_scale: float
    bn_momentum: float
    conversions: dict[str, str] = field(default_factory=dict)  # what each convention is in the libraries
    source_changes: dict | None = None  # what the source's step was altered by (the mutation tests)


@dataclass
class ReportInfo:
    """What a report was run on and what it says beside its rows. In the JSON as `info`, fields unset left out."""

    batch: int | None = None  # inputs compared
    size: int | None = None
    inputs: str = "seeded synthetic images"
    weights: str | None = None
    seconds: float | None = None
    reference: str | None = None  # what the rows were compared against, where it is not the source (export --to)
    skipped: dict[str, str] = field(default_factory=dict)  # runtime or tensor: why it was not compared
    default_precision: dict[str, OtherPrecision] = field(default_factory=dict)  # by runtime
    train_step: TrainStepInfo | None = None  # a training-step report (porting.training.step_parity) ...
    noise: float | None = None  # ... its tolerance's factor on the source's own float32 spread ...
    grad_rtol: float | None = None  # ... the gradients' r ...
    spread: dict[str, float] = field(default_factory=dict)  # ... and that spread, per kind
    output: str | None = None  # 'features': a feature extractor's output, compared without a top-1; None: logits

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if v is not None and v != {}}
        if "train_step" in out:
            out["train_step"] = {k: v for k, v in out["train_step"].items() if v is not None}
        return out

    @classmethod
    def from_dict(cls, raw: dict) -> ReportInfo:
        """From a saved report's `info` (keys this porting does not know are left out, as a row's are)."""
        known = {f.name for f in fields(cls)}
        info = cls(**{k: v for k, v in raw.items() if k in known})
        info.default_precision = {k: OtherPrecision(**{"runtime": k, **v}) for k, v in info.default_precision.items()}
        if info.train_step is not None:
            info.train_step = TrainStepInfo(**info.train_step)
        return info


@dataclass
class Report:
    spec: str
    rows: list[Row] = field(default_factory=list)
    top1_agree: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    info: ReportInfo = field(default_factory=ReportInfo)
    rtol: float = RTOL

    @property
    def ok(self) -> bool:
        return (not self.errors and all(r.ok for r in self.rows)
                and all(v == 1.0 for v in self.top1_agree.values()))

    def first_failure(self, runtime: str | None = None) -> Row | None:
        for row in self.rows:
            if not row.ok and (runtime is None or row.runtime == runtime):
                return row
        return None

    def disagreement(self) -> str:
        """Where the comparison failed, in a phrase (an error line's tail)."""
        row = self.first_failure()
        if row is not None:
            return f"first at '{row.layer}' (max abs {row.max_abs:.3g}, max rel {row.max_rel:.3g})"
        return "; ".join(self.errors) or f"top-1 agreement {self.top1_agree}"

    def runtimes(self) -> list[str]:
        return list(dict.fromkeys(r.runtime for r in self.rows))

    def layers(self, runtime: str = "mindspore") -> dict[str, Row]:
        """The compared layers of one runtime (not the logits), by source name, in the source's order."""
        return {r.layer: r for r in self.rows if r.runtime == runtime and r.kind != LOGITS}

    def to_json(self) -> str:
        first = self.first_failure()
        return json.dumps({
            "spec": self.spec, "ok": self.ok, "rtol": self.rtol, "tolerance": TOLERANCE,
            "first_failure": asdict(first) if first else None,
            "top1_agreement": self.top1_agree, "errors": self.errors, "info": self.info.to_dict(),
            "rows": [asdict(r) for r in self.rows],
        }, indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Report":
        data = json.loads(text)
        known = {f.name for f in fields(Row)}
        return cls(spec=data["spec"], rows=[Row(**{k: v for k, v in r.items() if k in known}) for r in data["rows"]],
                   top1_agree=data.get("top1_agreement", {}), errors=data.get("errors", []),
                   info=ReportInfo.from_dict(data.get("info", {})), rtol=data.get("rtol", RTOL))


# --------------------------------------------------------------------------------------------- renderings

def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def summary_table(report: Report) -> Fitted:
    """Per runtime: layers compared, the worst layer against its bound, top-1 agreement, the first failure."""
    from porting.tables import Column, Fitted

    info = report.info
    if info.train_step is not None:
        return _train_step_table(report)
    table = Fitted(f"parity {report.spec}: {info.batch} x {info.size} px ({info.inputs}), weights {info.weights}",
                   [Column("runtime"), Column("compared", prose=True, drop=1), Column("worst layer"),
                    Column("MindSpore cell", under="worst layer"),
                    Column("worst error / bound", justify="right"), Column("top-1 agreement", justify="right"),
                    Column("first failure")])
    output = info.output or "logits"  # 'features': a feature extractor's, which has no top-1
    for runtime in report.runtimes():
        rows = [r for r in report.rows if r.runtime == runtime]
        worst = max(rows, key=lambda r: r.max_abs / r.bound if r.bound else math.inf)
        first = report.first_failure(runtime)
        table.add_row(runtime, f"{len(rows) - 1} layers + {output}" if len(rows) > 1 else output,
                      _escape(worst.layer), _escape(worst.target or "(output)"),
                      f"{worst.max_abs / worst.bound:.3f}" if worst.bound else "inf",
                      f"{report.top1_agree[runtime]:.0%}" if runtime in report.top1_agree else "n/a",
                      "[green]none[/green]" if first is None else f"[bold red]{_escape(first.layer)}[/bold red]")
    return table


TRAIN_KINDS = {"loss": "loss", "grad": "gradients", "update": "updates", "bn-update": "BN statistics' updates"}


def _train_step_table(report: Report) -> Fitted:
    """parity --train-step: per quantity (loss, gradients, updates, BN statistics), the worst tensor and the first
    failure."""
    from porting.tables import Column, Fitted

    info, step = report.info, report.info.train_step
    table = Fitted(f"training-step parity {report.spec}: {info.batch} x {info.size} px ({info.inputs}), weights "
                   f"{info.weights}; {step.optimizer}, lr {step.lr:g}, weight decay {step.weight_decay:g}, label "
                   f"smoothing {step.label_smooth_factor:g}, BN momentum {step.bn_momentum:g}",
                   [Column("compared", prose=True), Column("tensors", justify="right", drop=1),
                    Column("worst tensor (MindSpore)"), Column("worst error / bound", justify="right"),
                    Column("first failure")])
    for kind, label in TRAIN_KINDS.items():
        rows = [r for r in report.rows if r.kind == kind]
        if not rows:
            continue
        worst = max(rows, key=lambda r: r.max_abs / r.bound if r.bound else math.inf)
        first = next((r for r in rows if not r.ok), None)
        table.add_row(label, str(len(rows)), _escape(worst.layer),
                      f"{worst.max_abs / worst.bound:.3f}" if worst.bound else "inf",
                      "[green]none[/green]" if first is None else f"[bold red]{_escape(first.layer)}[/bold red]")
    return table


def verdict(report: Report) -> list[str]:
    """The lines under the summary: the tolerance, problems, PASS or the first diverging layer."""
    info = report.info
    if info.train_step is not None:
        spread = ", ".join(f"{TRAIN_KINDS.get(k, k)} {v:.1e}" for k, v in info.spread.items())
        lines = [f"tolerance: a tensor passes if max |source float64 - MindSpore| <= (r + {info.noise:g} x "
                 f"the source's own float32 spread) x max |source|, r = {report.rtol:g} for the loss, the updates (the "
                 f"source's optimizer on MindSpore's gradients) and the BN statistics, {info.grad_rtol:g} for "
                 f"the gradients (float32 spread of this run: {spread})"]
        lines += [f"not compared: {_escape(name)}: {_escape(why)}" for name, why in info.skipped.items()]
        failure = report.first_failure()
        lines.append(f"[bold green]PASS[/bold green] {report.spec}: {len(report.rows)} tensors of one training step "
                     f"within tolerance (--full lists them)" if report.ok else
                     f"[bold red]FAIL[/bold red] {report.spec}: first disagreeing tensor '{_escape(failure.layer)}' "
                     f"({TRAIN_KINDS.get(failure.kind, failure.kind)}): max abs {failure.max_abs:.3e} > "
                     f"{failure.bound:.3e} (max rel {failure.max_rel:.3e})" if failure else
                     f"[bold red]FAIL[/bold red] {report.spec}: {'; '.join(report.errors)}")
        return lines
    output = report.info.output or "logits"
    lines = [f"tolerance: a layer passes if max |ref - out| <= {report.rtol:g} x max(1, max |ref|)"
             + (", and the logits give the same top-1 for every input" if output == "logits" else
                f" (the {output} too: a feature extractor has no top-1)")]
    lines += [f"[red]problem:[/red] {_escape(e)}" for e in report.errors]
    for d in info.default_precision.values():
        lines.append(f"{_escape(d.runtime)} ({_escape(d.precision)}): {output} max abs {d.max_abs:.2e}, max rel "
                     f"{d.max_rel:.2e}" + (f", top-1 agreement {d.top1_agree:.0%}" if output == "logits" else "")
                     + f" on {_escape(d.inputs)}"
                     + ("" if d.within_tolerance else " [yellow](outside the tolerance)[/yellow]")
                     + " (not in the verdict, which is f32: README 'Deployment runtimes' says how to pin it)")
    for name, why in info.skipped.items():
        lines.append(f"{name}: skipped, {_escape(why)}")
    failure = report.first_failure()
    if report.ok:
        lines.append(f"[bold green]PASS[/bold green] {report.spec}: {len(report.rows)} comparisons within tolerance "
                     f"(--full lists them)")
    elif failure:
        lines.append(f"[bold red]FAIL[/bold red] {report.spec}: first diverging layer '{_escape(failure.layer)}' "
                     f"(MindSpore '{_escape(failure.target or failure.layer)}', {failure.kind}) on {failure.runtime}: "
                     f"max abs {failure.max_abs:.3e} > {failure.bound:.3e}")
    else:
        lines.append(f"[bold red]FAIL[/bold red] {report.spec}: top-1 disagreement or errors")
    return lines


def full_table(report: Report) -> Fitted:
    """Every comparison, the first failure of each runtime marked."""
    from porting.tables import Column, Fitted

    first = {rt: report.first_failure(rt) for rt in report.runtimes()}
    table = Fitted(f"parity {report.spec}: batch {report.info.batch}, size {report.info.size}, "
                   f"weights {report.info.weights}; pass if max_abs <= {report.rtol:g} x max(1, max|ref|)",
                   [Column("#", justify="right", drop=2), Column("runtime"), Column("layer (source)"),
                    Column("MindSpore cell", under="layer (source)"), Column("kind", drop=4),
                    Column("shape", drop=5), Column("max abs", justify="right"),
                    Column("max rel", justify="right", drop=3), Column("cosine", justify="right", drop=1),
                    Column("", prose=True)],
                   dropped_hint="--report FILE.json has them all", key="layer (source)")
    for i, row in enumerate(report.rows):
        status = "[green]ok[/green]" if row.ok else "[bold red]FAIL[/bold red]"
        if first.get(row.runtime) is row:
            status = "[bold red]<< FIRST FAILURE[/bold red]"
        table.add_row(str(i), row.runtime, _escape(row.layer), _escape(row.target or "(output)"), row.kind,
                      "x".join(map(str, row.shape)), f"{row.max_abs:.2e}", f"{row.max_rel:.2e}", f"{row.cosine:.8f}",
                      status + (f" {_escape(row.note)}" if row.note else ""))
    return table


def plot(report: Report, path: str | Path) -> Path:
    """Per-layer error against depth (log scale), the tolerance line, each runtime's first failure circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 5), dpi=110)
    for runtime in report.runtimes():
        rows = [r for r in report.rows if r.runtime == runtime]
        # error in units of the tested scale, max(1, max|ref|): the pass line is then rtol for every layer
        errors = [max(r.max_abs / max(r.bound / report.rtol, 1e-30), 1e-12) for r in rows]
        ax.plot(range(len(rows)), errors, marker=".", label=runtime, linewidth=1)
        first = report.first_failure(runtime)
        if first is not None:
            i = rows.index(first)
            ax.scatter([i], [errors[i]], s=140, facecolors="none", edgecolors="red", linewidths=2, zorder=5)
            ax.annotate(f"first failure: {first.layer} ({first.kind})", (i, errors[i]), textcoords="offset points",
                        xytext=(8, 8), color="red")
    ax.axhline(report.rtol, color="red", linestyle="--", label=f"tolerance {report.rtol:g}")
    ax.set_yscale("log")
    ax.set_xlabel("layer (source order; the last point is the logits)")
    ax.set_ylabel("max |ref - out| / max(1, max |ref|)")
    ax.set_title(f"parity {report.spec}: {'PASS' if report.ok else 'FAIL'} (batch {report.info.batch}, "
                 f"size {report.info.size})")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
