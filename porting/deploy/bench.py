"""`porting bench CKPT`: how fast a ported model runs on this machine, in MindSpore and in ONNX Runtime.

Both runtimes run in this process, one call at a time in a rotating order (so the machine's drift hits both
alike), after a warm-up that includes MindSpore's graph compilation; the result is the median per call.
Side-by-side comparisons with other libraries are in benchmarks/ (one process per framework).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from porting import archs, checkpoint, files
from porting.runners.inputs import make_images


def bench(ckpt: Path, batches: tuple[int, ...] = (1, 8), size: int | None = None, reps: int = 10, warmup: int = 2,
          device: str | None = None, progress=None) -> list[dict]:
    """[{runtime, batch, size, median_s, img_per_s}] for MindSpore (GRAPH mode) and onnxruntime."""
    from porting import msenv
    from porting.converters.export import export_onnx
    from porting.runners.mindspore_runtime import MindSporeRuntime
    from porting.runners.onnx_runtime import OnnxRuntime

    msenv.setup(device, graph=True)
    net, card = checkpoint.load_model(ckpt)
    size = archs.check_input_size(card.arch, size or card.input_size)
    with files.scratch_dir("bench-") as tmp:
        export_onnx(net, card, tmp / "model.onnx", size)
        onnx = OnnxRuntime(tmp / "model.onnx")
    mindspore = MindSporeRuntime(net)
    task = progress.add_task("bench", total=len(batches) * 2 * (warmup + reps)) if progress else None
    results = []
    for batch in batches:
        x = make_images(0, batch, size, card.mean, card.std)
        # each call includes its runtime's own copy in and out (NumPy -> Tensor -> NumPy, as for ONNX Runtime)
        runtimes = {f"MindSpore ({msenv.device()}, GRAPH)": lambda: mindspore.logits(x),
                    "ONNX Runtime (CPU)": lambda: onnx.logits(x)}
        times: dict[str, list[float]] = {name: [] for name in runtimes}
        for rep in range(warmup + reps):
            order = list(runtimes) if rep % 2 == 0 else list(runtimes)[::-1]
            for name in order:
                if task is not None:
                    progress.update(task, advance=1, description=f"batch {batch}: {name}, run {rep + 1}/"
                                                                 f"{warmup + reps}")
                t0 = time.perf_counter()
                runtimes[name]()
                if rep >= warmup:
                    times[name].append(time.perf_counter() - t0)
        for name, measured in times.items():
            median = statistics.median(measured)
            results.append({"runtime": name, "batch": batch, "size": size, "median_s": median,
                            "img_per_s": batch / median})
    return results
