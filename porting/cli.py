"""`porting` command line. Heavy frameworks are imported inside the commands that need them.

Every numeric option is range-checked here (a bad value is a one-line usage error), every output path is
checked before the work starts, and every failure leaves through porting.boundary as one `error:` line.
"""
from __future__ import annotations

import json
import os
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Optional

from porting import boundary

boundary.quiet_start()  # before the imports below (a third of a second): a Ctrl-C now is one line too

import typer
from rich.console import Console
from rich.markup import escape

from porting import api, files, formats
from porting.errors import PortingError
from porting.heads import BACKBONE_BN
from porting.options import PRECISIONS, Preprocess, TrainingRun
from porting.results import BenchRow, MapTable, PipelineCheck, Prediction, QuantizeReport, TargetFit, to_json
from porting.runtimes import all_runtimes, runtime_names
from porting.specs import weight_files_text
from porting.tables import Column, Fitted
from porting.training.recipes import RECIPES
from porting.version import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Port timm / Keras / PaddleClas image classifiers to MindSpore, with proof.")
# a terminal's own width (or $COLUMNS); 200 columns into a pipe or a file
out = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)
err = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else 200)

SEED_MAX = 2**32 - 1


def log(message: str) -> None:
    err.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] {message}", highlight=False, markup=True)


def _weights_args(weights: Optional[Path], random_init: Optional[int]):
    if weights is not None and random_init is not None:
        raise PortingError("give either --weights or --random-init, not both")
    if weights is not None and not weights.is_file():
        raise PortingError(f"weights file '{weights}' does not exist" if not weights.exists()
                           else f"weights file '{weights}' is not a file")
    return (str(weights) if weights else None), random_init


class Device(StrEnum):
    CPU = "CPU"
    GPU = "GPU"
    Ascend = "Ascend"


class Format(StrEnum):
    onnx = "onnx"
    mindir = "mindir"
    air = "air"


RecipeName = StrEnum("RecipeName", {name: name for name in RECIPES})  # the registry's recipes, not a copy
Amp = StrEnum("Amp", {v: v for v in ("O0", "O1", "O2", "O3")})
Optim = StrEnum("Optim", {v: v for v in ("momentum", "rmsprop")})
Decay = StrEnum("Decay", {v: v for v in ("linear", "cosine")})
BackboneBn = StrEnum("BackboneBn", {v: v for v in BACKBONE_BN})
RUNTIME_NAMES = runtime_names(leave_out=("mindspore",))  # the registry's, not a copy: MindSpore always runs


def _runs_in(form: str) -> str:
    return " or ".join(r.name for r in all_runtimes() if r.runs == form)
Precision = StrEnum("Precision", {v: v for v in PRECISIONS})


def _value(choice) -> str | None:
    return None if choice is None else str(choice.value)


# Every option has its help and shows its default: typer shows a value's own; where the default is decided at run
# time (None here), show_default says what it is
WEIGHTS = typer.Option(None, "--weights", "-w", help=f"Local source weights: {weight_files_text()}.",
                       show_default="none: the library's own pretrained download, unless --random-init")
RANDOM = typer.Option(None, "--random-init", metavar="SEED", min=0, max=SEED_MAX,
                      help="Seeded synthetic weights instead of a file: checks the pipeline offline.",
                      show_default="none: real weights")
DEVICE = typer.Option(None, "--device", case_sensitive=False, help="CPU | GPU | Ascend.",
                      show_default="$PORTING_DEVICE, else MindSpore's own")
MODELZOO = typer.Option(None, "--modelzoo", metavar="DIR",
                        help="modelzoo: specs: your checkout of the MindSpore models repository (its root, or the "
                             "model's folder).", show_default="$PORTING_MODELZOO")
NONE = "none"  # an optional output or input that is simply not written or read unless given
HEAD = typer.Option(None, "--head", metavar="SPEC",
                    help="timm and PaddleClas: the head your model has instead of the library's classifier, as the "
                         "layers of the nn.Sequential you put there, in order, e.g. linear:256,relu,dropout:0.3,"
                         "linear:5: linear:N (linear:N:nobias), bn, relu, relu6, gelu, silu, sigmoid, tanh, softmax, "
                         "leaky_relu[:A], elu[:A], dropout:P; first pool:max for global max pooling; 'none' for a "
                         "model without a head (timm num_classes=0). Checked against the file's tensors (README "
                         "'Your own model').", show_default="the library's standard classifier")


def _size_option(flag: str = "--size", help: str = "Input size in pixels.", default: str = "the model's"):
    from porting.archs import MAX_INPUT_SIZE, MIN_SIZE_FLOOR

    return typer.Option(None, flag, min=MIN_SIZE_FLOOR, max=MAX_INPUT_SIZE, help=help, show_default=default)


def _recipe_default(key: str) -> str:
    """finetune's default for a recipe value: the architecture's model-zoo recipe (--print-recipe: the run's own)."""
    from porting.archs import DEVICE_CHANGES
    from porting.training.recipes import LR_KEYS

    def shown(value) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    values = {name: shown(getattr(recipe, key)) for name, recipe in RECIPES.items()}
    scaled = f" x global batch / {next(iter(RECIPES.values())).reference_batch}" if key in LR_KEYS else ""
    if len(set(values.values())) == 1:
        text = f"the recipe's, {next(iter(values.values()))}{scaled}"
    else:
        text = f"the recipe's{scaled}: " + ", ".join(f"{name} {value}" for name, value in values.items())
    if any(key in changes for per_device in DEVICE_CHANGES.values() for changes in per_device.values()):
        text += " on Ascend; --print-recipe shows the device's"
    return text


@app.command("models")
def models_cmd(markdown: bool = typer.Option(False, "--markdown",
                                            help="Print the README's table of supported models instead."),
               params: bool = typer.Option(False, "--params",
                                           help="Also count each model's parameters (builds every network)."),
               targets: bool = typer.Option(False, "--targets", help="Show where each spec's checkpoints go with "
                                            "`export --to`: exactly, approximately, or not.")) -> None:
    """List every supported SOURCE:MODEL with its MindSpore architecture, variant, input and preprocessing."""
    from porting.specs import readme_table

    if params and (targets or markdown):
        raise PortingError(f"--params counts the parameters in `porting models`'s own table, not in "
                           f"{'--targets' if targets else '--markdown'}'s: leave one of them out")
    if targets:
        _print_targets(markdown)
        return

    if markdown:  # the registry alone: no framework is imported
        print(readme_table())
        return
    out.print(models_table(api.models(), api.parameter_counts() if params else None))


def models_table(specs, counts: dict[str, int] | None = None) -> Fitted:
    """`porting models`: each spec (and its aliases), its architecture and preprocessing; `counts` its parameters."""
    from porting.specs import preprocessing_text

    table = Fitted("supported models", [Column("spec"), Column("architecture (variant)", prose=True),
                                        Column("input and preprocessing", prose=True,
                                               under="architecture (variant)"),
                                        *([Column("params", justify="right")] if counts is not None else [])])
    for s in specs:
        spec = s.id + "".join(f"\n = {s.source}:{a}" for a in s.aliases)
        row = [spec, f"{s.arch}: {s.variant}", preprocessing_text(s)]
        table.add_row(*(escape(v) for v in row), *([f"{counts[s.id] / 1e6:.2f}M"] if counts is not None else []))
    return table


def _print_targets(markdown: bool) -> None:
    if markdown:
        print(api.targets(markdown=True), end="")
        return
    out.print(targets_table(api.targets()))


def targets_table(fits: list[TargetFit]) -> Fitted:
    """`porting models --targets`: (from spec, to spec, Fit) rows."""
    table = Fitted("export --to: where a checkpoint of each spec goes (every spec goes back to itself)",
                   [Column("from"), Column("to", under="from"), Column("how", prose=True)])
    for a, b, fit in fits:
        table.add_row(escape(a), escape(b), escape(fit.verdict()))
    return table


@app.command("map")
def map_cmd(spec: str = typer.Argument(..., help="SOURCE:MODEL, e.g. timm:xception"),
            as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
            modelzoo: Optional[Path] = MODELZOO, head: Optional[str] = HEAD,
            weights: Optional[Path] = typer.Option(
                None, "--weights", "-w", help="Keras: a whole-model .keras / .h5 file whose own head's rows to list "
                                              "(read from its graph, nothing of it run).",
                show_default="none: the library's standard classifier")) -> None:
    """Print the expanded weight map: source name and shape, target name and shape, transform."""

    table_map = api.weight_map(spec, modelzoo=modelzoo, head=head, weights=weights)
    if as_json:
        out.print_json(table_map.to_json())
        return
    out.print(map_table(table_map))


def map_table(table_map: MapTable) -> Fitted:
    """`porting map`: api.weight_map's rows; each source tensor over its MindSpore parameter when narrow."""
    rows = table_map.rows
    head = f"; its own head: {table_map.head}" if table_map.head else ""
    table = Fitted(f"{table_map.spec} -> MindSpore {table_map.arch} ({len(rows)} tensors; ignored: "
                   f"{', '.join(table_map.ignore) or 'none'}{head})",
                   [Column("source"), Column("source shape"), Column("target", under="source"),
                    Column("target shape", under="source shape"), Column("transform")])
    for r in rows:
        table.add_row(*(escape(str(v)) for v in (r.source, r.source_shape, r.target or "-", r.target_shape or "-",
                                                   r.transform)))
    return table


@app.command("port-weights")
def port_weights(spec: str = typer.Argument(..., help="SOURCE:MODEL, e.g. timm:xception"),
                 weights: Optional[Path] = WEIGHTS, random_init: Optional[int] = RANDOM,
                 output: Optional[Path] = typer.Option(None, "-o", "--output",
                                                       help="Output .ckpt (replaced if it exists, only once the "
                                                            "new one is complete).",
                                                       show_default="SOURCE_MODEL.ckpt"),
                 num_classes: Optional[int] = typer.Option(None, "--num-classes", min=2,
                                                           help="Re-initialise the head for N classes.",
                                                           show_default="the source's, kept"),
                 keep_background: bool = typer.Option(
                     False, "--keep-background",
                     help="Keep the background class (index 0) of a 1001-class TF-slim head instead of dropping it."),
                 allow_nonfinite: bool = typer.Option(
                     False, "--allow-nonfinite", help="Port source tensors holding NaN/Inf instead of refusing."),
                 modelzoo: Optional[Path] = MODELZOO, head: Optional[str] = HEAD,
                 ) -> None:
    """Port source weights to a MindSpore .ckpt that carries its own metadata and digests."""

    model = api.spec_for(spec, modelzoo)  # the checkout checked now, before any work
    own_head = api.own_head(model, head)  # and the head
    weights_path, seed = _weights_args(weights, random_init)
    if weights_path is None and seed is None and own_head is None:  # with a head, api.port says what it needs
        log(f"no --weights given: downloading {model.source}'s pretrained {model.hub or model.source_name}")
    output = output or Path(f"{model.source}_{model.name}.ckpt")
    t0 = time.perf_counter()
    ported = api.port(model, weights_path, seed=seed, output=output, num_classes=num_classes,
                      keep_background=keep_background, allow_nonfinite=allow_nonfinite, head=own_head, log=log)
    card = ported.card
    log(f"wrote {output} ({len(ported.params)} parameters, {card.num_classes} classes, "
        f"input {card.input_size}) in {time.perf_counter() - t0:.1f}s")


@app.command("export")
def export_cmd(ckpt: Path = typer.Argument(..., help="A .ckpt written by port-weights or finetune"),
               fmt: Optional[Format] = typer.Option(None, "--format", "-f", case_sensitive=False,
                                                    help="onnx | mindir | air; the output is named for it "
                                                         "(x.onnx, x.mindir, x.air).",
                                                    show_default="none: give it, or --to"),
               to: Optional[str] = typer.Option(None, "--to", help="Back to a source library instead: a spec "
                                                "(keras:xception) or a library (timm: the checkpoint's own spec); "
                                                "`porting models --targets` says which go exactly.",
                                                show_default="none: --format"),
               approximate: bool = typer.Option(False, "--approximate", help="--to: write a target that computes "
                                                "differently too, and report the measured agreement."),
               no_check: bool = typer.Option(False, "--no-check", help="--to: skip the proof in the target "
                                             "library's own code."),
               modelzoo: Optional[Path] = MODELZOO,
               output: Path = typer.Option(..., "-o", "--output",
                                           help="Output file (replaced if it exists, once the new one is whole)."),
               size: Optional[int] = _size_option(help="Input size of the export; with --to, of the proof's "
                                                       "inputs only.", default="the checkpoint's"),
               batch: Optional[int] = typer.Option(None, "--batch", min=1, max=4096, help="A fixed batch.",
                                                   show_default="1 for MINDIR / AIR, dynamic for ONNX"),
               opset: int = typer.Option(17, "--opset", min=13, max=21, help="ONNX opset, 13 to 21."),
               dynamic_size: bool = typer.Option(False, "--dynamic-size",
                                                 help="ONNX: dynamic height and width (the models pool globally)."),
               fp16: bool = typer.Option(False, "--fp16", help="ONNX: weights and computation in float16 (input "
                                                               "and logits stay float32)."),
               fold_bn: bool = typer.Option(False, "--fold-bn", help="ONNX: fold BatchNormalization into the "
                                                                     "preceding convolutions.")) -> None:
    """Export a checkpoint to ONNX (checked by onnx.checker), MINDIR or AIR (Ascend only), or with --to back to
    timm, Keras, PaddleClas, mindcv or the model zoo, proven in that library's code."""
    if to is not None:
        _export_to(ckpt, output, to, fmt, approximate, no_check, modelzoo, size, batch=batch, opset=opset != 17,
                   dynamic_size=dynamic_size, fp16=fp16, fold_bn=fold_bn)
        return
    if approximate or no_check or modelzoo is not None:
        raise PortingError("--approximate, --no-check and --modelzoo are for --to exports")
    if fmt is None:
        raise PortingError("say what to export to: --format onnx|mindir|air, or --to SPEC")
    _, shape = api.export(ckpt, output, _value(fmt), size=size, batch=batch, opset=opset, dynamic_size=dynamic_size,
                          fp16=fp16, fold_bn=fold_bn)
    dims = "x".join({"batch": "N", "height": "H", "width": "W"}.get(str(d), str(d)) for d in shape)
    log(f"wrote {output} ({_value(fmt)}, input {dims}{', float16' if fp16 else ''}{', BN folded' if fold_bn else ''}"
        f"{f', opset {opset}' if _value(fmt) == 'onnx' else ''})")


def _export_to(ckpt, output, to, fmt, approximate, no_check, modelzoo, size, **onnx_flags) -> None:
    """export --to; --size is the proof's input size there."""
    given = [f"--{k.replace('_', '-')}" for k, v in onnx_flags.items() if v] + (["--format"] if fmt else [])
    if given:
        raise PortingError(f"{', '.join(given)} apply to ONNX / MINDIR / AIR exports, not to --to")
    report, fit, spec = api.export_to(ckpt, output, to, approximate=approximate, check=not no_check,
                                      modelzoo=modelzoo, size=size, log=log)
    from porting import report as rendering

    if report is not None:
        out.print(rendering.summary_table(report))
        if fit.exact:
            log(f"wrote {output} ({spec.id}): exact, {len(report.rows)} comparisons within tolerance in "
                f"{spec.source}'s own code")
        else:
            worst = max((r.max_rel for r in report.rows), default=0.0)
            log(f"wrote {output} ({spec.id}, --approximate): worst max rel {worst:.3g}, top-1 agreement "
                f"{report.top1_agree.get(spec.source, 0.0):.0%}" + ("" if report.ok else f"; {report.disagreement()}"))
    else:
        log(f"wrote {output} ({spec.id}), not proven" + (" (--no-check)" if no_check else ""))


@app.command("parity")
def parity_cmd(spec: str = typer.Argument(..., help="SOURCE:MODEL, e.g. timm:xception"),
               weights: Optional[Path] = WEIGHTS, random_init: Optional[int] = RANDOM,
               batch: int = typer.Option(
                   2, "--batch", min=1, max=65536, help="Inputs compared (with --images: the first N files), in "
                   "chunks (--chunk): memory does not grow with it. With --train-step the step's batch, held whole "
                   "(at most 16)."),
               chunk: Optional[int] = typer.Option(
                   None, "--chunk", min=1, max=65536, help="Inputs run through every model at once; the verdict and "
                   "the errors are those of all inputs at once.", show_default="as many as hold about 256 MiB of "
                   "recorded layers, one image at 299 px"),
               size: Optional[int] = _size_option(),
               images: Optional[Path] = typer.Option(None, "--images", help="Compare on these image files (a folder, "
                                                                            "or class folders) instead of seeded ones.",
                                                     show_default="seeded synthetic images"),
               rtol: Optional[float] = typer.Option(
                   None, "--rtol", min=1e-9, max=1.0, help="Tolerance: max |ref - out| <= rtol x max(1, max |ref|) "
                   "per layer (with --train-step: the loss's, updates' and BN statistics' r; README 'Training-step "
                   "parity').", show_default="1e-4"),
               runtime: Optional[list[str]] = typer.Option(
                   None, "--runtime", metavar="NAMES", help=f"Also check the port in these runtimes, in this "
                   f"order, comma-separated or repeated: {RUNTIME_NAMES}. Each at f32 (OpenVINO's default and "
                   f"TensorRT's TF32 and fp16 reported beside); tensorrt is skipped without a CUDA device.",
                   show_default="none, MindSpore alone"),
               onnx: bool = typer.Option(False, "--onnx", help="Same as --runtime ort: the ONNX export in "
                                                               "onnxruntime."),
               mindir: bool = typer.Option(False, "--mindir", help="Same as --runtime mindir: the MINDIR export."),
               openvino: bool = typer.Option(False, "--openvino", help="Same as --runtime openvino."),
               tensorrt: bool = typer.Option(False, "--tensorrt", help="Same as --runtime tensorrt."),
               full: bool = typer.Option(False, "--full", help="Print every compared layer, not just the summary."),
               check_preprocessing: bool = typer.Option(
                   False, "--check-preprocessing",
                   help="Compare porting's image pipeline with the source library's own on --images (no network)."),
               report: Optional[Path] = typer.Option(None, "--report", help="Write the report as JSON.",
                                                     show_default=NONE),
               plot: Optional[Path] = typer.Option(None, "--plot", help="Plot error against depth to a .png, .pdf or "
                                                                         ".svg file.", show_default=NONE),
               modelzoo: Optional[Path] = MODELZOO, head: Optional[str] = HEAD,
               train_step: bool = typer.Option(
                   False, "--train-step", help="Compare one training step instead (loss, every gradient, every "
                   "update, BN statistics) with the recipe finetune trains with, on one --batch held at once."),
               ) -> None:
    """Compare the source model and the ported model(s) layer by layer; exit 0 only if all agree. The inputs are
    compared in chunks, so memory does not grow with their number."""
    model = api.spec_for(spec, modelzoo)
    own_head = api.own_head(model, head)
    weights_path, seed = _weights_args(weights, random_init)
    if size is not None:
        model.check_size(size)
    for path in (report, plot):
        if path is not None:
            files.check_output(path, (weights_path,))
    if plot is not None:
        formats.check_named_as(plot, formats.PLOT_SUFFIXES, "--plot")
    if check_preprocessing:
        if images is None:
            raise PortingError("--check-preprocessing compares image pipelines: give --images DIR")
        if chunk is not None:
            raise PortingError("--chunk is for the layer comparison; --check-preprocessing goes 32 images at a time")
        result = api.check_preprocessing(model, images, count=batch, size=size, log=log)
        _print_pipelines(result)
        if report:
            with files.atomic_output(report) as staged:
                staged.file.write_text(result.to_json(indent=2))
        return
    from porting import report as rendering

    if train_step:
        given = [flag for flag, on in (("--runtime", runtime), ("--onnx", onnx), ("--mindir", mindir),
                                       ("--openvino", openvino), ("--tensorrt", tensorrt),
                                       ("--images", images is not None), ("--chunk", chunk is not None)) if on]
        if given:
            raise PortingError(f"--train-step compares a training step in MindSpore; {', '.join(given)} is for "
                               f"inference parity")
        result = api.train_step_parity(model, weights_path, seed=seed, batch=batch, size=size,
                                       rtol=rtol, head=own_head, log=log)
    else:
        result = api.parity(model, weights_path, seed=seed, batch=batch, size=size, runtimes=runtime or (),
                            onnx=onnx, mindir=mindir, openvino=openvino, tensorrt=tensorrt, images=images,
                            rtol=rtol or 1e-4, chunk=chunk, head=own_head, log=log)

    if full:
        out.print(rendering.full_table(result))
    out.print(rendering.summary_table(result))
    for line in rendering.verdict(result):
        out.print(line)
    if report:
        with files.atomic_output(report) as staged:
            staged.file.write_text(result.to_json())
    if plot:
        with files.atomic_output(plot) as staged:
            rendering.plot(result, staged.file)
    if not result.ok:
        raise typer.Exit(1)


def _print_pipelines(result: PipelineCheck) -> None:
    out.print(pipelines_table(result))
    out.print(f"porting: {escape(result.ours)}")
    out.print(f"source:  {escape(result.theirs)}")
    if result.max_abs is not None and result.max_abs < 1e-6:
        out.print("[bold green]IDENTICAL[/bold green] pipelines on these images")
    elif result.mean_abs is not None:
        out.print(f"[bold yellow]DIFFERENT[/bold yellow]: mean |diff| {result.mean_abs:.2e}, max "
                  f"{result.max_abs:.2e} (README: 'Preprocessing' says why)")


def pipelines_table(result: PipelineCheck) -> Fitted:
    """parity --check-preprocessing: per image, how far porting's pipeline is from the source library's."""
    table = Fitted(f"{result.spec}: porting's preprocessing vs the source library's own, normalised units",
                   [Column("image"), Column("mean |diff|", justify="right"), Column("max |diff|", justify="right")])
    for row in result.images:
        if row.shapes is not None:
            table.add_row(escape(row.image), "shapes differ", f"{row.shapes[0]} vs {row.shapes[1]}")
        else:
            table.add_row(escape(row.image), f"{row.mean_abs:.2e}", f"{row.max_abs:.2e}")
    return table


@app.command("random-weights")
def random_weights(spec: str = typer.Argument(..., help="SOURCE:MODEL"),
                   seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX, help="Seed of the synthetic weights."),
                   output: Path = typer.Option(..., "-o", "--output", help="File in the source's own format "
                                                                           "(.pth or .safetensors for timm)."),
                   num_classes: Optional[int] = typer.Option(None, "--num-classes", min=2,
                                                             help="Classes of the head.", show_default="the model's"),
                   modelzoo: Optional[Path] = MODELZOO, head: Optional[str] = HEAD) -> None:
    """Write seeded synthetic source weights in the source library's own file format."""

    model = api.spec_for(spec, modelzoo)
    own_head = api.own_head(model, head)
    api.random_weights(model, output, seed=seed, num_classes=num_classes, head=own_head)
    log(f"wrote {output} ({model.id}" + (f" with the head {own_head.describe()}" if own_head else "") + f", seed {seed})")


@app.command("bench")
def bench_cmd(ckpt: Path = typer.Argument(..., help="A .ckpt written by port-weights or finetune"),
              batch: list[int] = typer.Option([1, 8], "--batch", min=1, max=1024, help="Batch sizes (repeatable)"),
              size: Optional[int] = _size_option(default="the checkpoint's"),
              reps: int = typer.Option(10, "--reps", min=1, max=1000, help="Timed calls per runtime and batch"),
              device: Optional[Device] = DEVICE,
              runtime: Optional[list[str]] = typer.Option(
                  None, "--runtime", metavar="NAMES",
                  help=f"Runtimes to time beside MindSpore, comma-separated or repeated: {RUNTIME_NAMES}; one that "
                       f"cannot run here (tensorrt without a CUDA device) is skipped in one line (default: ort, and "
                       f"openvino and tensorrt where installed and able to run)."),
              precision: list[Precision] = typer.Option(
                  [Precision.f32, Precision.default], "--precision", case_sensitive=False,
                  help="Precisions to time each runtime at, where it takes them; one that takes none of them runs "
                       "f32 (repeatable; default: f32 and default, each runtime's own choice)."),
              as_json: bool = typer.Option(False, "--json", help="Print the results as JSON")) -> None:
    """Images per second of a ported model in MindSpore (GRAPH mode) and in ONNX Runtime, OpenVINO, TensorRT or
    MINDIR on this machine."""
    with _progress() as progress:
        results = api.benchmark(ckpt, tuple(batch), size=size, reps=reps, device=_value(device), progress=progress,
                                runtimes=runtime or None,
                                precisions=tuple(map(_value, precision)), log=log)
    if as_json:
        print(to_json(results))
        return
    out.print(bench_table(ckpt.name, reps, results))


def bench_table(name: str, reps: int, results: list[BenchRow]) -> Fitted:
    """`porting bench`: api.benchmark's rows, each against MindSpore (and ONNX Runtime) at its batch."""
    columns = ["runtime", "batch", "input", "ms / call", "img/s", "vs MindSpore"]
    with_ort = any(r.runtime.startswith("ONNX Runtime") for r in results)
    table = Fitted(f"{name}: median of {reps} calls per runtime, interleaved; x > 1: faster",
                   [Column("runtime", prose=True)]  # 'OpenVINO (CPU, bf16: OpenVINO's default on this CPU)'
                   + [Column(col, justify="right") for col in columns[1:] + (["vs ONNX Runtime"] if with_ort else [])])
    for r in results:
        same = [b for b in results if b.batch == r.batch]
        base = next(b for b in same if b.runtime.startswith("MindSpore"))
        row = [r.runtime, str(r.batch), f"{r.size}x{r.size}", f"{r.median_s * 1000:.1f}", f"{r.img_per_s:.2f}",
               f"x{base.median_s / r.median_s:.2f}"]
        if with_ort:
            ort = next(b for b in same if b.runtime.startswith("ONNX Runtime"))
            row.append(f"x{ort.median_s / r.median_s:.2f}")
        table.add_row(*map(escape, row))
    return table


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, disable=not err.is_terminal)


def _nonneg(flag: str, help: str):
    """A recipe value of finetune's (a float >= 0), its default the recipe's."""
    key = {"--weight-decay": "weight_decay"}.get(flag, flag[2:].replace("-", "_"))
    return typer.Option(None, flag, min=0.0, help=help, show_default=_recipe_default(key))


@app.command("finetune")
def finetune_cmd(
        ckpt: Path = typer.Argument(..., help="A ported (or fine-tuned) .ckpt"),
        data: Optional[Path] = typer.Option(None, "--data", help="ImageFolder root with train/ (and optionally "
                                                                 "val/).", show_default="none: required, unless "
                                                                                        "--print-recipe"),
        output: Path = typer.Option(Path("finetune_out"), "-o", "--output-dir", help="Checkpoints and train.log."),
        recipe: Optional[RecipeName] = typer.Option(None, "--recipe", case_sensitive=False,
                                                    help="Model-zoo recipe.", show_default="the architecture's"),
        config: Optional[Path] = typer.Option(None, "--config", help="YAML of recipe keys overriding the recipe "
                                                                     "(a model zoo's default_config.yaml works).",
                                              show_default=NONE),
        num_classes: Optional[int] = typer.Option(None, "--num-classes", min=2, help="New head for N classes.",
                                                  show_default="the class folders'"),
        epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="Training epochs.",
                                             show_default=_recipe_default("epochs")),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, max=65536, help="Batch per device.",
                                                 show_default=_recipe_default("batch_size")),
        lr_max: Optional[float] = _nonneg("--lr-max", "Peak learning rate, used as given (not batch-scaled)."),
        lr_init: Optional[float] = _nonneg("--lr-init", "Learning rate the warmup starts from, used as given."),
        lr_end: Optional[float] = _nonneg("--lr-end", "Learning rate the decay ends at, used as given."),
        warmup_epochs: Optional[float] = _nonneg("--warmup-epochs", "Epochs of linear warmup to --lr-max."),
        lr_decay_mode: Optional[Decay] = typer.Option(None, "--lr-decay-mode", case_sensitive=False,
                                                      help="How the learning rate decays after the warmup.",
                                                      show_default=_recipe_default("lr_decay_mode")),
        optimizer: Optional[Optim] = typer.Option(None, "--optimizer", case_sensitive=False, help="Optimizer.",
                                                  show_default=_recipe_default("optimizer")),
        weight_decay: Optional[float] = _nonneg("--weight-decay", "L2 weight decay of conv and dense weights."),
        label_smooth: Optional[float] = typer.Option(None, "--label-smooth-factor", min=0.0, max=1.0,
                                                     help="Label smoothing.",
                                                     show_default=_recipe_default("label_smooth_factor")),
        loss_scale: Optional[float] = typer.Option(None, "--loss-scale", min=1.0, help="Fixed loss scale.",
                                                   show_default=_recipe_default("loss_scale")),
        amp_level: Optional[Amp] = typer.Option(None, "--amp-level", case_sensitive=False,
                                                help="Mixed precision: O0 float32; O1-O3 float16 (GPU, Ascend).",
                                                show_default="the recipe's for the device; O0 on CPU"),
        save_epochs: Optional[int] = typer.Option(None, "--save-checkpoint-epochs", min=1,
                                                  help="Save a checkpoint every N epochs.",
                                                  show_default=_recipe_default("save_checkpoint_epochs")),
        save_steps: Optional[int] = typer.Option(None, "--save-checkpoint-steps", min=0,
                                                 help="Save every N steps instead (0: by epochs).",
                                                 show_default=_recipe_default("save_checkpoint_steps")),
        keep_max: Optional[int] = typer.Option(None, "--keep-checkpoint-max", min=1,
                                               help="Checkpoints kept (the oldest go).",
                                               show_default=_recipe_default("keep_checkpoint_max")),
        image_size: Optional[int] = _size_option("--image-size", "Train and validation size.", "the checkpoint's"),
        device: Optional[Device] = DEVICE,
        distributed: bool = typer.Option(False, "--distributed", help="Data parallel, one process per device: "
                                                                      "launch with msrun."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --output-dir."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, max=256, help="Dataset workers.",
                                              show_default="the cores, at most 8"),
        log_every: int = typer.Option(0, "--log-every", min=0, help="Log the loss every N steps (0: once per "
                                                                    "epoch)."),
        max_steps: int = typer.Option(0, "--max-steps", min=0, help="Stop this run after N steps (0: no stop; "
                                                                    "--resume continues)."),
        shard: Optional[str] = typer.Option(None, "--shard", help="K/N: train on shard K of N (single worker).",
                                            show_default="none: all the data"),
        seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX,
                                 help="Seed of a new head, the data order and the augmentation."),
        save_rank_weights: bool = typer.Option(False, "--save-rank-weights",
                                               help="Every rank writes OUTPUT/rank_R.npz of its trainable weights."),
        pynative: bool = typer.Option(False, "--pynative",
                                      help="Run cell by cell instead of compiling the training step (debugging)."),
        dataset_sink: Optional[bool] = typer.Option(None, "--dataset-sink/--no-dataset-sink",
                                                    help="Sink the data to the device.",
                                                    show_default="on Ascend / GPU, off on CPU"),
        bn_momentum: Optional[float] = typer.Option(
            None, "--bn-momentum", min=0.0, max=1.0,
            help="BatchNorm momentum in MindSpore's convention (moving = m x moving + (1 - m) x batch: PyTorch's "
                 "momentum is 1 - m; Keras trains with 0.99).", show_default="0.9, PyTorch's 0.1"),
        backbone_bn: Optional[BackboneBn] = typer.Option(
            None, "--backbone-bn", case_sensitive=False,
            help="The backbone's BatchNorms in training: 'train' (batch statistics, moving ones updated) or "
                 "'inference' (moving statistics, left as they are).",
            show_default="inference where the source ran its backbone so (Keras training=False), else train"),
        train_backbone: bool = typer.Option(False, "--train-backbone",
                                            help="Train a backbone its source froze (Keras base.trainable = False)."),
        print_recipe: bool = typer.Option(False, "--print-recipe",
                                          help="Print the recipe (JSON) and the learning rates this run would train "
                                               "with, scaled to its global batch, and exit"),
) -> None:
    """Fine-tune with the MindSpore model-zoo recipes; one device or data-parallel under msrun."""

    recipe_values = dict(epochs=epochs, batch_size=batch_size, lr_max=lr_max, lr_init=lr_init, lr_end=lr_end,
                         warmup_epochs=warmup_epochs, lr_decay_mode=_value(lr_decay_mode), optimizer=_value(optimizer),
                         weight_decay=weight_decay, label_smooth_factor=label_smooth, loss_scale=loss_scale,
                         amp_level=_value(amp_level), save_checkpoint_epochs=save_epochs,
                         save_checkpoint_steps=save_steps, keep_checkpoint_max=keep_max)
    shard_pair = None
    if shard:
        try:
            k, n = (int(v) for v in shard.split("/"))
            if not 0 <= k < n:
                raise ValueError
        except ValueError:
            raise PortingError(f"--shard must look like K/N with 0 <= K < N, not '{shard}'") from None
        shard_pair = (k, n)
    if print_recipe:
        from porting.training.recipes import as_dict, trained_with

        chosen, settings, on = api.finetune_recipe(ckpt, recipe=_value(recipe), config=config, device=_value(device),
                                                   log=log, **recipe_values)
        ranks = int(os.environ.get("MS_WORKER_NUM", "1")) if distributed else 1  # msrun's rank count
        print(json.dumps({"device": on, "recipe": as_dict(chosen),
                          "trained_with": trained_with(chosen, ranks, settings["lr_given"])}, indent=2))
        return
    if data is None:
        raise PortingError("finetune needs --data DIR (an ImageFolder root with train/)")
    run = TrainingRun(num_classes=num_classes, image_size=image_size, device=_value(device), distributed=distributed,
                      resume=resume, workers=workers, log_every=log_every, max_steps=max_steps, shard=shard_pair,
                      seed=seed, save_rank_weights=save_rank_weights, pynative=pynative, dataset_sink=dataset_sink,
                      bn_momentum=bn_momentum, backbone_bn=_value(backbone_bn), train_backbone=train_backbone)
    with _progress() as progress:
        api.finetune(ckpt, data, output, recipe=_value(recipe), config=config, run=run, log=log, progress=progress,
                     **recipe_values)


class QuantMethod(StrEnum):
    minmax = "minmax"
    percentile = "percentile"
    entropy = "entropy"


@app.command("quantize")
def quantize_cmd(model: Path = typer.Argument(..., help="A float32 .onnx written by porting export"),
                 calib: Path = typer.Option(..., "--calib", help="Calibration images: class folders, or a flat "
                                                                 "folder (with a 'FILENAME LABEL' file, or "
                                                                 "unlabelled)."),
                 output: Path = typer.Option(..., "-o", "--output", help="The int8 .onnx."),
                 images: Optional[int] = typer.Option(None, "--images", min=1,
                                                      help="Calibration images, drawn to cover every class.",
                                                      show_default="1000, or what the folder holds beside the "
                                                                   "--holdout images"),
                 holdout: int = typer.Option(200, "--holdout", min=0, help="Images kept out of calibration to "
                                                                           "compare float32 and int8."),
                 method: QuantMethod = typer.Option(QuantMethod.minmax, "--method", case_sensitive=False,
                                                    help="How activation ranges are calibrated."),
                 label_file: Optional[Path] = typer.Option(None, "--label-file", help="Labels of a flat folder.",
                                                           show_default="val_label.txt beside it, else none"),
                 as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
    """int8 ONNX by ONNX Runtime's static QDQ quantization (per-channel), compared with the float32 model."""
    with _progress() as progress:
        report = api.quantize(model, calib, output, images=images, holdout=holdout, method=_value(method),
                              label_file=label_file, log=log, progress=progress)
    log(f"wrote {output} ({report.size_mib.int8} MiB, from {report.size_mib.float32} MiB)")
    if as_json:
        print(report.to_json(indent=2))
        return
    out.print(quantize_table(report))


def quantize_table(report: QuantizeReport) -> Fitted:
    """`porting quantize`: api.quantize's comparison of the float32 and int8 models."""
    table = Fitted(f"float32 vs int8 on {report.held_out} held-out images" if report.held_out else
                   f"float32 vs int8 on {report.compared_images} calibration images (none held out)",
                   [Column("measure", prose=True), Column("value", justify="right", prose=True)])
    if report.output == "features":  # a feature extractor: no classes to agree on
        table.add_row("max feature error", f"{report.max_logit_error:.4f} (features up to {report.logit_scale:.2f})")
        return table
    table.add_row("top-1 agreement", f"{report.top1_agreement:.2%}")
    table.add_row("top-5 overlap", f"{report.top5_overlap:.2%}")
    table.add_row("max logit error", f"{report.max_logit_error:.4f} (logits up to {report.logit_scale:.2f})")
    for precision, scores in (("float32", report.float32), ("int8", report.int8)):
        if scores is not None:
            table.add_row(f"{precision} top-1 / top-5", f"{scores.top1:.2%} / {scores.top5:.2%}")
    return table


class Interp(StrEnum):
    bicubic = "bicubic"
    bilinear = "bilinear"
    nearest = "nearest"


def _preprocessing_options(size, resize, crop_pct, interpolation, mean, std) -> Preprocess:
    return Preprocess(size=size, resize=resize, crop_pct=crop_pct, interpolation=_value(interpolation), mean=mean,
                      std=std)


RESIZE = typer.Option(None, "--resize", min=8, max=4096, help="Resize the short side to N before the center crop "
                                                             "(--resize 342 --size 299: the deployment guide's).",
                      show_default="size / crop-pct")
CROP_PCT = typer.Option(None, "--crop-pct", min=0.05, max=1.0, help="Crop fraction: resize to size / crop-pct.",
                        show_default="the model's")
INTERP = typer.Option(None, "--interpolation", case_sensitive=False, help="Resize interpolation.",
                      show_default="the model's")
# three values after one flag (--mean 0.5 0.5 0.5): typer's own metavar would suggest commas
MEAN = typer.Option(None, "--mean", metavar="R G B", help="Mean in [0, 1] units, three values.",
                    show_default="the model's")
STD = typer.Option(None, "--std", metavar="R G B", help="Std in [0, 1] units, three values.",
                   show_default="the model's")
MODEL_FILE = typer.Argument(..., help="A .ckpt (port-weights / finetune), or an .onnx / .mindir from porting export")
RUNTIME = typer.Option(None, "--runtime", metavar="NAMES",
                       help=f"What runs the file, comma-separated or repeated; several: one result each, the images "
                            f"read once. An .onnx runs in {_runs_in('onnx')}, a .ckpt in {_runs_in('network')}, a "
                            f".mindir in {_runs_in('mindir')}; one that cannot run here (tensorrt without a CUDA "
                            f"device) is skipped in one line, an error if alone.",
                       show_default="the file's own: ort, mindspore, mindir")
PRECISION = typer.Option(None, "--precision", case_sensitive=False,
                         help="The runtime's inference precision: f32, or 'default' (its own choice: OpenVINO's bf16 "
                              "on CPUs that have it, TensorRT's TF32); bf16 and f16 in OpenVINO, f16 in TensorRT on "
                              "an --fp16 export.", show_default="f32")


@app.command("eval")
def eval_cmd(model: Path = MODEL_FILE,
             data: Path = typer.Option(..., "--data", help="ImageFolder root (uses val/ if present), or a flat folder "
                                                           "of images with a 'FILENAME LABEL' file"),
             label_file: Optional[Path] = typer.Option(None, "--label-file", help="Labels of a flat image folder.",
                                                       show_default="val_label.txt beside it"),
             batch_size: int = typer.Option(32, "--batch-size", min=1, max=65536, help="Images per batch."),
             size: Optional[int] = _size_option(help="Crop size.", default="the model's: timm's test size if it has "
                                                                           "one, a fixed-size file's own"),
             resize: Optional[int] = RESIZE, crop_pct: Optional[float] = CROP_PCT,
             interpolation: Optional[Interp] = INTERP,
             mean: Optional[tuple[float, float, float]] = MEAN, std: Optional[tuple[float, float, float]] = STD,
             device: Optional[Device] = DEVICE,
             workers: Optional[int] = typer.Option(None, "--workers", min=1, max=256, help="Dataset workers.",
                                                   show_default="the cores, at most 8"),
             results: Optional[Path] = typer.Option(None, "--results", help="Write per-image top-k lines (the "
                                                                            "deployment guide's eval_topk format).",
                                                    show_default=NONE),
             topk: int = typer.Option(5, "--topk", min=1, help="Classes per image in --results."),
             runtime: Optional[list[str]] = RUNTIME, precision: Optional[Precision] = PRECISION,
             as_json: bool = typer.Option(False, "--json", help="Print the result as JSON (a line per runtime)."),
             dump_logits: Optional[Path] = typer.Option(None, "--dump-logits", help="Save logits and labels (.npz).",
                                                        show_default=NONE)) -> None:
    """Top-1 / top-5 accuracy and loss, printed as the model zoo's eval.py does."""
    with _progress() as progress:
        result = api.evaluate(model, data, batch_size=batch_size, device=_value(device), workers=workers,
                              progress=progress, log=log, label_file=label_file, results=results, topk=topk,
                              dump_logits=dump_logits, runtimes=runtime or None, precision=_value(precision),
                              preprocessing=_preprocessing_options(size, resize, crop_pct, interpolation, mean, std))
    found = result if isinstance(result, list) else [result]
    for each in found:  # the model zoo's eval.py line; several runtimes: each one's, named
        if as_json:
            print(each.to_json())
        else:
            named = f" ({each.runtime}, {each.precision})" if len(found) > 1 else ""
            print(f"result{named}: {each.metrics()}")


@app.command("predict")
def predict_cmd(model: Path = MODEL_FILE, images: list[Path] = typer.Argument(..., help="Image files"),
                topk: Optional[int] = typer.Option(None, "--topk", min=1, help="How many classes to show.",
                                                   show_default="5, or all if fewer"),
                labels: Optional[Path] = typer.Option(None, "--labels", help="Class names, one per line (label.txt).",
                                                      show_default="the model's (ImageNet's for 1000 classes)"),
                size: Optional[int] = _size_option(help="Crop size.", default="the model's, a fixed-size file's own"),
                resize: Optional[int] = RESIZE, crop_pct: Optional[float] = CROP_PCT,
                interpolation: Optional[Interp] = INTERP,
                mean: Optional[tuple[float, float, float]] = MEAN, std: Optional[tuple[float, float, float]] = STD,
                device: Optional[Device] = DEVICE,
                runtime: Optional[list[str]] = RUNTIME, precision: Optional[Precision] = PRECISION,
                as_json: bool = typer.Option(False, "--json", help="Print the results as JSON.")) -> None:
    """Softmax top-k with class names (ImageNet's for 1000 classes, the class folders' after fine-tuning)."""
    results = api.predict(model, images, topk=topk, labels=labels, device=_value(device), runtimes=runtime or None,
                          precision=_value(precision), log=log,
                          preprocessing=_preprocessing_options(size, resize, crop_pct, interpolation, mean, std))
    if as_json:
        print(to_json(results))
        return
    several = len({r.runtime for r in results}) > 1
    for r in results:
        out.print(predict_table(r, named=several))


def predict_table(result: Prediction, named: bool = False) -> Fitted:
    """`porting predict`: one image's top classes (api.predict's result for it); `named`: the runtime and its
    precision in the title (several runtimes ran)."""
    title = result.image + (f" ({result.runtime}, {result.precision})" if named else "")
    table = Fitted(title, [Column("rank", justify="right"), Column("class", prose=True),
                           Column("index", justify="right"), Column("probability", justify="right")])
    for i, t in enumerate(result.top, 1):
        table.add_row(str(i), escape(t.name), str(t.index), f"{t.probability:.4f}")
    return table


@app.callback(invoke_without_command=True)
def _options(version: bool = typer.Option(False, "--version", help="Print the version and exit."),
             verbose: bool = typer.Option(False, "--verbose", "-v",
                                          help="Print tracebacks, worker output and the frameworks' own logs.")
             ) -> None:
    if verbose:
        os.environ["PORTING_VERBOSE"] = "1"  # read by msenv, the boundary and the workers
    if version:
        out.print(f"porting {__version__}")
        raise typer.Exit()


def main() -> None:
    sys.exit(boundary.run(app))
