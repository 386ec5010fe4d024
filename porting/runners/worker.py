"""Entry point of a source worker process: `python -m porting.runners.worker JOB.json`.

Imports exactly one source framework, chosen by the job's "source". Every failure, anticipated or not, is
printed as one `error: ...` line on stderr with exit code 2; the parent turns that line into a PortingError
(with `porting --verbose`, the worker's traceback is printed too). The worker dies with its parent.
"""
from __future__ import annotations

import ctypes
import importlib
import os
import shutil
import signal
import sys
import traceback

import numpy as np

from porting.errors import PortingError, describe_os_error, first_line
from porting.job import SourceInfo, SourceJob

# source -> the module holding its SourceRunner (imported alone: one framework per process)
RUNNERS = {"timm": "porting.runners.timm_source:TimmRunner", "paddleclas": "porting.runners.paddle_source:PaddleRunner",
           "keras": "porting.runners.keras_source:KerasRunner", "mindcv": "porting.runners.mindcv_source:MindcvRunner",
           "modelzoo": "porting.runners.modelzoo_source:ModelzooRunner"}
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """The kernel kills us when the parent dies, even by kill -9; Ctrl-C is the parent's to handle."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(os.environ.get("PORTING_PARENT_PID", os.getppid())):
        os._exit(1)  # the parent died before we asked
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(job: SourceJob) -> None:
    module, _, cls = RUNNERS[job.source].partition(":")
    runner = getattr(importlib.import_module(module), cls)()
    model, found = runner.load(job)
    info = SourceInfo(**found)
    if job.save_weights:
        try:
            runner.save_weights(model, job.save_weights)
        except PortingError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch/Keras/Paddle writers raise RuntimeError etc. on a full disk
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
            if shutil.disk_usage(os.path.dirname(os.path.abspath(job.save_weights))).free < 16 << 20:
                reason = "No space left on device"  # torch.save says 'unexpected pos 1573952 vs 1573904'
            raise PortingError(f"cannot write '{job.save_weights_as or job.save_weights}': {reason}") from None
    if job.tensors_out:
        np.savez(job.tensors_out, **runner.tensors(model))
    if job.inputs:
        outputs, order = runner.forward(model, np.load(job.inputs), job.taps)
        np.savez(job.outputs_out, **outputs)
        info.order = order
    if job.preprocess:  # the library's own image pipeline, for parity --check-preprocessing
        todo = job.preprocess
        arrays, info.pipeline = runner.preprocess(model, todo.images, todo.size, todo.resize)
        np.save(todo.out, arrays)
    info.write(job.result_out)


def main(job_path: str) -> int:
    _die_with_parent()
    job = SourceJob.read(job_path)
    who = f"{job.source} worker for {job.source}:{job.model}"
    try:
        _run(job)
    except PortingError as exc:
        message = str(exc)
    except OSError as exc:
        message = f"{who}: cannot access {describe_os_error(exc)}"
    except MemoryError:
        message = f"{who}: out of memory"
    except Exception as exc:  # noqa: BLE001 - the worker's boundary: the parent gets one line
        verbose = os.environ.get("PORTING_VERBOSE", "") not in ("", "0")
        if verbose:
            traceback.print_exc()
        message = f"{who}: unexpected {type(exc).__name__}: {first_line(exc)}" + (
            "" if verbose else " (porting --verbose ... prints the traceback)")
    else:
        return 0
    print(f"error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return 2


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    # Every result file is closed: skip the interpreter's teardown of torch / TensorFlow / Paddle (over a
    # second), which the parent would otherwise wait for.
    os._exit(code)
