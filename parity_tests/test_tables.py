"""Every table keeps every name whole at 80 and at 200 columns (issue 30, point 5): layer names, MindSpore cells,
spec ids, tensor names, numbers. rich cut them (`block11.re…`, `features.bloc…`, `paddleclas:SE_ResNeXt5…`).

The renderers are pure functions of data: each is fed realistic rows (the registry's own weight maps: every
spec's layer and tensor names, the longest included) and printed at both widths; a name counts as whole when it
stands on one line between delimiters. A few real commands run at COLUMNS=80 as well.
"""
from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys

import pytest
from rich.console import Console

from porting import cli
from porting.report import LOGITS, Report, ReportInfo, Row, TrainStepInfo, full_table, summary_table, verdict
from porting.results import (Accuracy, BenchRow, ClassProbability, FileSizes, ImageDifference, MapTable,
                             PipelineCheck, Prediction, QuantizeReport)
from porting.specs import all_specs, build_weight_map
from porting.tables import Column, Fitted

WIDTHS = (80, 200)
SPECS = all_specs()
WEIGHTS = "/home/someone/Downloads/paddleclas/Xception65_deeplab_pretrained.pdparams"


def render(renderable, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def assert_whole(text: str, names, width: int) -> None:
    """No cut and no line wider than the terminal; each name on one line, not part of a longer word."""
    assert "…" not in text, text
    widest = max(text.splitlines(), key=len)
    assert len(widest) <= width, widest
    tokens = {token.lstrip("('").rstrip(")',:;") for token in re.split(r"[\s│┃]+", text)}
    for name in map(str, names):
        if " " in name:  # a shape, a sentence: between the same delimiters
            whole = re.search(r"(?<![^\s│┃('])" + re.escape(name) + r"(?![^\s│┃)',:;])", text)
        else:
            whole = name.lstrip("('").rstrip(")',:;") in tokens
        assert whole, f"{name!r} is not whole at {width} columns:\n{text}"


def words(text: str) -> list[str]:
    """The words of prose: each must stay whole too (`timm:seresnext50_32x4d` in a sentence)."""
    return text.split()


def test_a_fitted_table_cuts_no_name_and_no_header_at_any_width():
    """The layout itself, every width from 70 to 200 columns: stacked cells, dropped columns, records."""
    rng = random.Random(0)
    parts = ["features", "block11", "rep", "sep3", "bn_dw", "moving_variance", "_middle_flow", "_conv_15", "0"]
    table = Fitted("synthetic: a title whose words stay whole", [
        Column("layer (source)"), Column("MindSpore cell", under="layer (source)"),
        Column("vs ONNX Runtime", justify="right"), Column("worst error / bound", justify="right", drop=1),
        Column("how it goes", prose=True), Column("#", justify="right", drop=2)])
    names, prose = [], []
    for i in range(12):
        layer, cell = (".".join(rng.choices(parts, k=rng.randint(1, 4))) for _ in range(2))
        how = " ".join(rng.choices(parts + ["exact", "no:", "approximate;"], k=rng.randint(1, 12)))
        table.add_row(layer, cell, f"x{rng.uniform(0, 9):.2f}", f"{rng.uniform(0, 2):.3f}", how, str(i))
        names += [layer, cell]
        prose += how.split()
    headers = ["layer", "(source)", "MindSpore", "cell", "vs", "ONNX", "Runtime", "how", "it", "goes"]
    for width in range(70, 201, 3):
        text = render(table, width)
        assert_whole(text, names + prose + ["synthetic:", "title", "whose", "words", "stay", "whole"], width)
        if "┃" in text:  # a table: every header word whole
            assert_whole(text, headers, width)


def longest_per_library() -> list:
    """Per source library, its spec with the longest layer names (the hardest to fit)."""
    best = {}
    for spec in SPECS:
        longest = max(len(layer.source) + len(layer.target) for layer in build_weight_map(spec).layers)
        if longest > best.get(spec.source, (0, None))[0]:
            best[spec.source] = (longest, spec)
    return [spec for _, spec in best.values()]


def parity_report(spec, runtimes=("mindspore", "onnx", "openvino")) -> Report:
    """What parity reports for `spec`: every mapped layer per runtime; the worst is the longest-named layer, and
    onnx fails first at the second longest."""
    layers = build_weight_map(spec).layers
    by_length = sorted(layers, key=lambda layer: len(layer.source) + len(layer.target))
    worst, failing = by_length[-1], by_length[-2]
    report = Report(spec=spec.id, info=ReportInfo(batch=2, size=299, inputs="seeded synthetic images",
                                                  weights=WEIGHTS))
    for runtime in runtimes:
        for i, layer in enumerate(layers):
            max_abs = 7.3e-05 if layer is worst else 9.5367e-07 * (1 + i % 7)
            ok = not (runtime == "onnx" and layer is failing)
            report.rows.append(Row(layer.source, runtime, [2, 728, 19, 19], max_abs if ok else 3.0518e-04,
                                   max_abs / 4.2, 0.99999994, 1e-4, ok,
                                   "" if ok else "degenerate reference (constant): check proves nothing",
                                   layer.target, layer.kind))
        report.rows.append(Row(LOGITS, runtime, [2, 1000], 1.1921e-06, 2.3e-07, 1.0, 1.1e-3, True))
        report.top1_agree[runtime] = 1.0
    return report


@pytest.mark.parametrize("width", WIDTHS)
def test_parity_summary_and_verdict_keep_every_name_whole(width):
    for spec in SPECS:
        report = parity_report(spec)
        worst = max(report.layers(), key=lambda name: report.layers()[name].max_abs)
        failure = report.first_failure()
        text = render(summary_table(report), width)
        assert_whole(text, [spec.id, *report.runtimes(), worst, report.layers()[worst].target, failure.layer,
                            "0.730", "100%", WEIGHTS], width)
        lines = "".join(render(line, width) for line in verdict(report))
        assert_whole(lines, [f"'{failure.layer}'", f"'{failure.target}',", "3.052e-04"], width)


# reports as porting wrote them before the report's info was typed (porting.report.ReportInfo), and the lines its
# verdict printed for them then
SAVED_PARITY = (
    '{"spec": "timm:xception", "ok": true, "rtol": 0.0001, "tolerance": "max_abs <= rtol * max(1, '
    'max|reference|); logits top-1 agree on every sample", "first_failure": null, "top1_agreement": '
    '{"mindspore": 1.0}, "errors": [], "info": {"skipped": {"tensorrt": "no CUDA device on this '
    'machine"}, "batch": 2, "size": 96, "inputs": "seeded synthetic images", "weights": "random-init:0", '
    '"default_precision": {"openvino-default": {"runtime": "openvino at its default precision", '
    '"precision": "f32: OpenVINO\'s default on this CPU", "max_abs": 1.2e-06, "max_rel": 3e-07, '
    '"top1_agree": 1.0, "inputs": "seeded synthetic images", "within_tolerance": true}}, "seconds": '
    '12.5}, "rows": [{"layer": "block1", "runtime": "mindspore", "shape": [2, 128, 47, 47], "max_abs": '
    '1e-06, "max_rel": 1e-07, "cosine": 0.99999, "bound": 1.0, "ok": true, "note": "", "target": '
    '"features.block1", "kind": "block"}, {"layer": "logits", "runtime": "mindspore", "shape": [2, 1000],'
    ' "max_abs": 1e-06, "max_rel": 1e-07, "cosine": 1.0, "bound": 1.0, "ok": true, "note": "", "target": '
    '"", "kind": "logits"}]}')
SAVED_STEP = (
    '{"spec": "timm:xception", "ok": true, "rtol": 0.0001, "tolerance": "max_abs <= rtol * max(1, '
    'max|reference|); logits top-1 agree on every sample", "first_failure": null, "top1_agreement": {}, '
    '"errors": [], "info": {"noise": 2.0, "grad_rtol": 0.2, "train_step": {"optimizer": "rmsprop", "lr": '
    '0.045, "momentum": 0.9, "weight_decay": 1e-05, "label_smooth_factor": 0.1, "loss_scale": 1024.0, '
    '"bn_momentum": 0.9, "conversions": {"BN momentum": "MindSpore m: PyTorch 1 - m"}, "source_changes": '
    '{"bn_momentum": 0.1}}, "skipped": {"fc.weight": "a folded inference scale"}, "spread": {"loss": '
    '1e-07, "grad": 0.03}, "batch": 2, "size": 96, "inputs": "seeded synthetic images and labels", '
    '"weights": "random-init:0", "seconds": 30.1}, "rows": [{"layer": "loss", "runtime": "mindspore", '
    '"shape": [], "max_abs": 1e-07, "max_rel": 1e-07, "cosine": 1.0, "bound": 0.0001, "ok": true, '
    '"note": "", "target": "", "kind": "loss"}]}')
SAVED_VERDICTS = {
    SAVED_PARITY: ["openvino at its default precision (f32: OpenVINO's default on this CPU): logits max abs 1.20e-06, "
                   "max rel 3.00e-07, top-1 agreement 100% on seeded synthetic images (not in the verdict, which is "
                   "f32: README 'Deployment runtimes' says how to pin it)",
                   "tensorrt: skipped, no CUDA device on this machine",
                   "[bold green]PASS[/bold green] timm:xception: 2 comparisons within tolerance (--full lists them)"],
    SAVED_STEP: ["tolerance: a tensor passes if max |source float64 - MindSpore| <= (r + 2 x the source's own float32 "
                 "spread) x max |source|, r = 0.0001 for the loss, the updates (the source's optimizer on MindSpore's "
                 "gradients) and the BN statistics, 0.2 for the gradients (float32 spread of this run: loss 1.0e-07, "
                 "gradients 3.0e-02)", "not compared: fc.weight: a folded inference scale",
                 "[bold green]PASS[/bold green] timm:xception: 1 tensors of one training step within tolerance (--full "
                 "lists them)"],
}


@pytest.mark.parametrize("saved", [SAVED_PARITY, SAVED_STEP])
def test_a_saved_report_loads_renders_and_saves_as_it_was(saved):
    """parity --report files keep loading: the same verdict lines as when they were written, the same tables'
    titles, and the same JSON written back."""
    report = Report.from_json(saved)
    assert verdict(report)[-len(SAVED_VERDICTS[saved]):] == SAVED_VERDICTS[saved]
    assert json.loads(report.to_json()) == json.loads(saved)
    assert "96 px" in render(summary_table(report), 200) and "size 96" in render(full_table(report), 200)


@pytest.mark.parametrize("width", WIDTHS)
def test_parity_full_keeps_every_name_whole(width):
    for spec in longest_per_library():
        report = parity_report(spec, runtimes=("mindspore", "onnx"))
        text = render(full_table(report), width)
        assert_whole(text, [name for row in report.rows for name in (row.layer, row.target) if name], width)
        assert_whole(text, ["9.54e-07", "7.30e-05", "3.05e-04", "FAILURE", "degenerate", "nothing"], width)
        if width == 200:  # a wide terminal shows every column
            assert "not shown" not in text and "0.99999994" in text and "2x728x19x19" in text
        else:  # a narrow one says what it left out, never a cut name
            assert "not shown at 80 columns" in text or "0.99999994" in text


@pytest.mark.parametrize("width", WIDTHS)
def test_train_step_summary_keeps_every_name_whole(width):
    for spec in longest_per_library():
        if spec.source not in ("timm", "keras", "paddleclas"):
            continue
        params = [row.target for row in build_weight_map(spec).rows]
        longest = max(params, key=len)
        report = Report(spec=spec.id, info=ReportInfo(
            batch=2, size=96, inputs="seeded synthetic images", weights=WEIGHTS, noise=4.0,
            grad_rtol=0.2, spread={"grad": 3.1e-2, "update": 1e-7},
            train_step=TrainStepInfo(optimizer="momentum", lr=0.00078125, momentum=0.9, weight_decay=1e-4,
                                     label_smooth_factor=0.1, loss_scale=1024.0, bn_momentum=0.9)))
        report.rows.append(Row("loss", "mindspore", [], 1e-7, 1e-7, 1.0, 1e-4, True, kind="loss"))
        for kind in ("grad", "update", "bn-update"):
            for name in params:
                bad = kind == "update" and name == longest
                report.rows.append(Row(name, "mindspore", [728], 5e-3 if bad else 1e-6, 1e-6, 1.0, 1e-4, not bad,
                                       target=name, kind=kind))
        text = render(summary_table(report), width)
        assert_whole(text, [spec.id, longest, "gradients", "updates", "0.00078125", WEIGHTS], width)
        lines = "".join(render(line, width) for line in verdict(report))
        assert_whole(lines, [f"'{longest}'", "5.000e-03"], width)


@pytest.mark.parametrize("width", WIDTHS)
def test_models_and_targets_keep_every_spec_whole(width):
    from porting.converters.target import target_fits
    from porting.specs import preprocessing_text

    for counts in (None, {s.id: 21_000_000 + i for i, s in enumerate(SPECS)}):
        text = render(cli.models_table(SPECS, counts), width)
        assert_whole(text, [name for s in SPECS for name in (s.id, *(f"{s.source}:{a}" for a in s.aliases))], width)
        assert_whole(text, [w for s in SPECS for w in words(f"{s.arch}: {s.variant} {preprocessing_text(s)}")],
                     width)
        if counts:
            assert_whole(text, ["21.00M", "21.00M"], width)
    fits = target_fits()
    text = render(cli.targets_table(fits), width)
    assert_whole(text, [name for a, b, _ in fits for name in (a, b)], width)
    assert_whole(text, [w for _, _, how in fits for w in words(how.verdict())], width)


@pytest.mark.parametrize("width", WIDTHS)
def test_map_keeps_every_tensor_whole(width):
    for spec in longest_per_library():
        wm = build_weight_map(spec)
        rows = wm.table()
        for row in rows:
            row.source_shape, row.target_shape = [2048, 1024, 1, 1], [2048, 1024, 1, 1]
        text = render(cli.map_table(MapTable(spec=spec.id, arch=spec.arch, ignore=wm.ignore, rows=rows)), width)
        assert_whole(text, [name for row in rows for name in (row.source, row.target)], width)
        assert_whole(text, ["[2048, 1024, 1, 1]", *{row.transform for row in rows}, spec.id], width)


@pytest.mark.parametrize("width", WIDTHS)
def test_deployment_tables_keep_every_name_whole(width):
    """bench, quantize, predict and parity --check-preprocessing."""
    runtimes = ["MindSpore (CPU, GRAPH)", "ONNX Runtime (CPU)", "OpenVINO (CPU, f32)",
                "OpenVINO (CPU, bf16: OpenVINO's default on this CPU)"]
    results = [BenchRow(runtime=name, batch=batch, size=299, median_s=0.0123 * (i + 1) * batch,
                        img_per_s=81.3 / (i + 1), precision="f32")
               for batch in (1, 8) for i, name in enumerate(runtimes)]
    text = render(cli.bench_table("xception_finetuned_on_my_own_photos-3_150.ckpt", 10, results), width)
    assert_whole(text, ["xception_finetuned_on_my_own_photos-3_150.ckpt:", "299x299", "12.3", "98.4", "x0.50",
                        "x0.25", "81.30", "27.10", *words(" ".join(runtimes))], width)

    report = QuantizeReport(calibration_images=1000, classes_covered=1000, compared_images=200, held_out=200,
                            method="minmax", input_size=299, size_mib=FileSizes(float32=87.5, int8=22.3),
                            top1_agreement=0.985, top5_overlap=0.9912, max_logit_error=0.84213, logit_scale=17.125,
                            float32=Accuracy(loss=0.9, top1=0.79, top5=0.945),
                            int8=Accuracy(loss=0.92, top1=0.785, top5=0.94))
    text = render(cli.quantize_table(report), width)
    assert_whole(text, ["98.50%", "99.12%", "0.8421", "17.12)", "79.00%", "94.50%", "78.50%", "94.00%"], width)

    from porting.images.labels import imagenet_classes

    names = imagenet_classes()
    longest = max(range(len(names)), key=lambda i: len(names[i]))
    image = "/data/photos/holidays/2024-07-14 lake district/IMG_20240714_153012.jpg"
    top = [ClassProbability(names[i], i, p) for i, p in ((longest, 0.8123), (319, 0.1), (0, 0.01))]
    text = render(cli.predict_table(Prediction(image, "ort", "f32", top)), width)
    assert_whole(text, [*words(image), *words(names[longest]), str(longest), "0.8123", "319"], width)

    rows = [ImageDifference(f"/data/photos/class_{k}/IMG_20240714_1530{k:02d}.jpg", 1.2e-3 * k, 3.1e-2)
            for k in range(1, 5)]
    rows.append(ImageDifference("/data/photos/odd/panorama_wide.png", None, None,
                                shapes=([3, 299, 299], [3, 299, 448])))
    text = render(cli.pipelines_table(PipelineCheck("paddleclas:SE_ResNeXt50_vd_32x4d", "", "", rows)), width)
    assert_whole(text, [*(r.image for r in rows), "1.20e-03", "4.80e-03", "3.10e-02",
                        "paddleclas:SE_ResNeXt50_vd_32x4d:", "[3, 299, 448]"], width)


def run_cli(*args: str, columns: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "porting", *args], capture_output=True, text=True,
                          env=dict(os.environ, COLUMNS=str(columns)))


@pytest.mark.parametrize("width", WIDTHS)
def test_models_targets_at_the_terminal_width(width):
    run = run_cli("models", "--targets", columns=width)
    assert run.returncode == 0, run.stderr
    assert_whole(run.stdout, ["paddleclas:SE_ResNeXt50_32x4d", "paddleclas:SE_ResNeXt50_vd_32x4d",
                              "timm:seresnext50_32x4d.gluon_in1k", "paddleclas:Xception41_deeplab"], width)


def test_map_at_80_columns():
    """The longest names of all (PaddleClas Xception65's), from the real weight map and shapes."""
    run = run_cli("map", "paddleclas:Xception65", columns=80)
    assert run.returncode == 0, run.stderr
    assert_whole(run.stdout, ["_middle_flow._conv_15._conv_2._pointwise_conv._batch_norm._variance",
                              "middle.block15.sep3.pointwise.bn.moving_variance", "[728, 728, 1, 1]"], 80)


def test_models_params_refuses_what_it_would_ignore():
    """`models --params --targets` printed the targets and ignored --params (issue 30, point 17)."""
    for extra in ("--targets", "--markdown"):
        run = run_cli("models", "--params", extra, columns=80)
        assert run.returncode == 2 and run.stdout == "", run.stdout
        assert run.stderr.count("\n") == 1 and run.stderr.startswith("error: --params") and extra in run.stderr
