"""`porting bench CKPT`: how fast a ported model runs on this machine, in MindSpore and the runtimes asked
(porting.runtimes: by default ONNX Runtime, and OpenVINO / TensorRT where they are installed and can run).

The runtimes run in this process, one call at a time in a rotating order (so the machine's drift hits all
alike), after a warm-up that includes MindSpore's graph compilation; the result is the median per call.
A runtime runs the same ONNX file at each precision asked that it takes (OpenVINO: f32, and its own default:
bf16 on CPUs that have it); a MINDIR is exported once per batch (its batch is fixed). Side-by-side comparisons
with other libraries are in benchmarks/ (one process per framework).
"""
from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path

from porting import archs, checkpoint, files
from porting.errors import PortingError
from porting.results import BenchRow
from porting.runtimes import RuntimeRecord, all_runtimes, check_precision, choose_runtimes, runtime_record
from porting.sources.inputs import make_images


def bench_runtimes(runtimes: tuple[str, ...] | None, log) -> list[RuntimeRecord]:
    """The runtimes beside MindSpore: those asked (one that cannot run here is skipped in one log line, a missing
    extra is an error), or by default every ONNX runtime that can run here and is installed (one that is not
    installed is one log line)."""
    if runtimes is not None:
        chosen = []
        for record in choose_runtimes(runtimes):
            why = record.unavailable()
            if why:
                log(f"{record.name}: skipped, {why}")
            elif record.name != "mindspore":  # MindSpore always runs: the others are measured against it
                record.require()
                chosen.append(record)
        return chosen
    chosen = []
    for record in all_runtimes():
        if record.runs != "onnx" or record.unavailable():
            continue
        if record.installed():
            chosen.append(record)
        else:
            log(f"{record.title} is not installed ({record.install}): its rows are left out")
    return chosen


def _precisions(record: RuntimeRecord, precisions: tuple[str, ...]) -> list[str]:
    """The precisions `record` runs at here, each once: those asked that it takes ('default' where that is f32
    counts as f32), or f32 when it takes none of them."""
    taken = [record.same_precision(p) for p in precisions if record.takes(p)]
    return list(dict.fromkeys(taken)) or ["f32"]


def bench(ckpt: Path, batches: tuple[int, ...] = (1, 8), size: int | None = None, reps: int = 10, warmup: int = 2,
          device: str | None = None, progress=None, runtimes: tuple[str, ...] | None = None,
          precisions: tuple[str, ...] = ("f32", "default"), log=lambda msg: None) -> list[BenchRow]:
    """A row (results.BenchRow: runtime, batch, size, median_s, img_per_s, precision) for MindSpore (GRAPH mode)
    and each of `runtimes` (bench_runtimes) at each of `precisions` it takes, per batch size."""
    from porting import msenv
    from porting.converters.export import OnnxOptions, export_ms, export_onnx

    for precision in precisions:
        check_precision(precision)
    records = bench_runtimes(runtimes, log)
    msenv.setup(device, graph=True)
    net, card = checkpoint.load_model(ckpt)
    size = card.check_size(archs.check_input_size(card.arch, size or card.input_size))
    with files.scratch_dir("bench-") as tmp, contextlib.ExitStack() as opened:

        def model_for(record: RuntimeRecord, precision: str, batch: int):
            """The file `record` runs, written on first use."""
            if record.runs == "mindir":
                path = tmp / f"model-{batch}.mindir"
                return path if path.exists() else export_ms(net, "MINDIR", path, size, batch=batch, card=card)
            half = precision == "f16" and record.f16_from_file
            path = tmp / ("model.fp16.onnx" if half else "model.onnx")
            return path if path.exists() else export_onnx(net, card, path, size, options=OnnxOptions(float16=half))

        # {row name: ({batch: open runtime}, precision it runs at)}; MindSpore first, the others measured against it
        mindspore = opened.enter_context(runtime_record("mindspore").runtime(net))
        calls = {mindspore.label: (dict.fromkeys(batches, mindspore), "f32")}
        for record in records:
            for precision in _precisions(record, precisions):
                by_batch = {}
                for batch in batches:
                    if record.runs == "mindir" or not by_batch:
                        runtime = record.runtime(model_for(record, precision, batch), precision=precision)
                        runtime = opened.enter_context(runtime)
                    by_batch[batch] = runtime
                if runtime.label in calls:
                    raise PortingError(f"bench measured {runtime.label} twice")  # a record's labels must differ
                calls[runtime.label] = (by_batch, runtime.precision or precision)
        results = _time(calls, batches, size, card, reps, warmup, progress)
    return results


def _time(calls: dict, batches: tuple[int, ...], size: int, card, reps: int, warmup: int,
          progress) -> list[BenchRow]:
    task = progress.add_task("bench", total=len(batches) * len(calls) * (warmup + reps)) if progress else None
    results = []
    for batch in batches:
        x = make_images(0, batch, size, card.mean, card.std)
        # each call includes its runtime's own copy in and out (NumPy -> Tensor -> NumPy, as for ONNX Runtime)
        timed = {name: (lambda run=by_batch[batch]: run.logits(x)) for name, (by_batch, _) in calls.items()}
        times: dict[str, list[float]] = {name: [] for name in timed}
        for rep in range(warmup + reps):
            order = list(timed) if rep % 2 == 0 else list(timed)[::-1]
            for name in order:
                if task is not None:
                    progress.update(task, advance=1, description=f"batch {batch}: {name}, run {rep + 1}/"
                                                                 f"{warmup + reps}")
                t0 = time.perf_counter()
                timed[name]()
                if rep >= warmup:
                    times[name].append(time.perf_counter() - t0)
        for name, measured in times.items():
            median = statistics.median(measured)
            results.append(BenchRow(runtime=name, batch=batch, size=size, median_s=median, img_per_s=batch / median,
                                    precision=calls[name][1]))
    return results
