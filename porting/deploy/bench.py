"""`porting bench CKPT`: how fast a ported model runs on this machine, in MindSpore, ONNX Runtime and OpenVINO.

The runtimes run in this process, one call at a time in a rotating order (so the machine's drift hits all
alike), after a warm-up that includes MindSpore's graph compilation; the result is the median per call.
OpenVINO runs the same ONNX file at each precision asked (f32, and OpenVINO's own default: bf16 on CPUs that have
it). Side-by-side comparisons with other libraries are in benchmarks/ (one process per framework).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from porting import archs, checkpoint, files
from porting.errors import PortingError
from porting.options import RUNTIMES
from porting.sources.inputs import make_images


def _openvino_wanted(runtimes: tuple[str, ...] | None, log) -> bool:
    """OpenVINO joins when asked, or by default when installed (a missing extra is then one log line)."""
    from porting.runners.openvino_runtime import INSTALL, require_openvino

    if runtimes is not None:
        if "openvino" in runtimes:
            require_openvino()
        return "openvino" in runtimes
    try:
        require_openvino()
    except PortingError:
        log(f"OpenVINO is not installed ({INSTALL}): its rows are left out")
        return False
    return True


def bench(ckpt: Path, batches: tuple[int, ...] = (1, 8), size: int | None = None, reps: int = 10, warmup: int = 2,
          device: str | None = None, progress=None, runtimes: tuple[str, ...] | None = None,
          precisions: tuple[str, ...] = ("f32", "default"), log=lambda msg: None) -> list[dict]:
    """[{runtime, batch, size, median_s, img_per_s, precision}] for MindSpore (GRAPH mode) and, of `runtimes`
    (default: ort, and openvino when installed), onnxruntime and OpenVINO at each of `precisions`."""
    from porting import msenv
    from porting.converters.export import export_onnx
    from porting.runners.mindspore_runtime import MindSporeRuntime
    from porting.runners.onnx_runtime import OnnxRuntime

    for runtime in runtimes or ():
        if runtime not in RUNTIMES:
            raise PortingError(f"unknown runtime '{runtime}': use {', '.join(RUNTIMES)}")
    with_openvino = _openvino_wanted(runtimes, log)
    if with_openvino:
        from porting.runners.openvino_runtime import OpenVinoRuntime, check_precision

        for precision in precisions:
            check_precision(precision)
    msenv.setup(device, graph=True)
    net, card = checkpoint.load_model(ckpt)
    size = archs.check_input_size(card.arch, size or card.input_size)
    mindspore = MindSporeRuntime(net)
    calls = {f"MindSpore ({msenv.device()}, GRAPH)": (mindspore, "f32")}
    with files.scratch_dir("bench-") as tmp:
        export_onnx(net, card, tmp / "model.onnx", size)
        if runtimes is None or "ort" in runtimes:
            calls["ONNX Runtime (CPU)"] = (OnnxRuntime(tmp / "model.onnx"), "f32")
        for precision in dict.fromkeys(precisions) if with_openvino else ():
            runtime = OpenVinoRuntime(tmp / "model.onnx", precision=precision)
            calls[f"OpenVINO (CPU, {runtime.said()})"] = (runtime, runtime.precision)
    task = progress.add_task("bench", total=len(batches) * len(calls) * (warmup + reps)) if progress else None
    results = []
    for batch in batches:
        x = make_images(0, batch, size, card.mean, card.std)
        # each call includes its runtime's own copy in and out (NumPy -> Tensor -> NumPy, as for ONNX Runtime)
        timed = {name: (lambda run=run: run.logits(x)) for name, (run, _) in calls.items()}
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
            results.append({"runtime": name, "batch": batch, "size": size, "median_s": median,
                            "img_per_s": batch / median, "precision": calls[name][1]})
    return results
