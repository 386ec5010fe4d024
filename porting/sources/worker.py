"""Entry point of a source worker process: `python -m porting.sources.worker JOB.json`.

Imports exactly one source framework: the runner of the job's library (its record's `runner`). Every failure, anticipated or not, is
printed as one `error: ...` line on stderr with exit code 2; the parent turns that line into a PortingError
(with `porting --verbose`, the worker's traceback is printed too). The worker dies with its parent.

`python -m porting.sources.worker --serve FD` is the same worker kept for several jobs of one library
(porting.sources.jobs.reusing_workers): job paths arrive on stdin one per line, and each answer is one JSON
line on FD: {"error": null or "the line", "sound": false after an unanticipated failure}.
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import json
import os
import shutil
import signal
import sys
import tempfile
import traceback

import numpy as np

from porting.errors import PortingError, describe_os_error, first_line
from porting.job import SourceInfo, SourceJob
from porting.sources import library

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """The kernel kills us when the parent dies, even by kill -9; Ctrl-C is the parent's to handle."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(os.environ.get("PORTING_PARENT_PID", os.getppid())):
        os._exit(1)  # the parent died before we asked
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# (key, runner, model, what load() found) of the last job that asked to keep its model (SourceJob.keep_model)
_kept_model: tuple | None = None


def _loaded(job: SourceJob):
    """(runner, model, found): the model the job asks for, or the one an earlier job with its keep_model key left."""
    global _kept_model
    if job.keep_model and _kept_model is not None and _kept_model[0] == job.keep_model:
        return _kept_model[1:]
    _kept_model = None  # another job: the kept model goes before this one loads
    if job.keep_model and (job.assign or job.save_weights or job.train_step or job.preprocess is None
                           and not job.inputs):
        raise ValueError("keep_model is for jobs that only run inputs (or preprocess) on the model as loaded")
    module, _, cls = library(job.source).runner.partition(":")
    runner = getattr(importlib.import_module(module), cls)()
    model, found = runner.load(job)
    if job.keep_model:
        _kept_model = (job.keep_model, runner, model, found)
    return runner, model, found


def _run(job: SourceJob) -> None:
    runner, model, found = _loaded(job)
    if job.assign:
        with np.load(job.assign) as npz:
            runner.assign_checked(model, {k: npz[k] for k in npz.files}, job.unassigned)
    if job.save_weights:
        try:
            runner.save_weights(model, job.save_weights, job.export_config)
        except PortingError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch/Keras/Paddle writers raise RuntimeError etc. on a full disk
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
            if shutil.disk_usage(os.path.dirname(os.path.abspath(job.save_weights))).free < 16 << 20:
                reason = "No space left on device"  # torch.save says 'unexpected pos 1573952 vs 1573904'
            raise PortingError(f"cannot write '{job.save_weights_as or job.save_weights}': {reason}") from None
        if job.assign and (job.inputs or job.tensors_out):
            # an export is proven on the file as the library reads it, not on the model that wrote it
            model = runner.load_file(job.save_weights, job.model, job.num_classes)
            found = {**found, **runner.inference_info(model)}
    info = SourceInfo(**found)
    if job.tensors_out:
        np.savez(job.tensors_out, **runner.tensors(model))
    if job.train_step:  # parity --train-step: the tensors above are the ones before the step
        _train_step(runner, model, job)
        info.write(job.result_out)
        return
    if job.inputs:
        outputs, order = runner.forward(model, np.load(job.inputs), job.taps)
        np.savez(job.outputs_out, **outputs)
        info.order = order
    if job.preprocess:  # the library's own image pipeline, for parity --check-preprocessing
        todo = job.preprocess
        arrays, info.pipeline = runner.preprocess(model, todo.images, todo.size, todo.resize)
        np.save(todo.out, arrays)
    info.write(job.result_out)


# parity --train-step's runs of one step: float32 as given; float32 on the images moved by 1e-6 of themselves (a
# second sample of float32's rounding, as deep in the network as float32's own error already is); float64 (the
# reference, on the images as given)
STEP_RUNS = (("32", False, 0.0), ("32p", False, 1e-6), ("64", True, 0.0))


def _train_step(runner, model, job: SourceJob) -> None:
    """The step's runs from the same tensors, or, given gradients, the optimizer alone on them."""
    step = job.train_step
    before = {k: np.array(v, copy=True) for k, v in runner.tensors(model).items()}  # torch's share memory
    arrays = {}
    if step.grads:
        with np.load(step.grads) as npz:
            runner.optimizer_step(model, {k: npz[k] for k in npz.files}, step)
        arrays = {f"after/{k}": np.array(v, copy=True) for k, v in runner.tensors(model).items()}
    else:
        x, labels = np.load(job.inputs), np.asarray(step.labels, np.int64)
        for run, float64, moved in STEP_RUNS:
            runner.assign(model, before)
            taken = runner.float64(model) if float64 else model
            if moved:
                x_run = (x * (1.0 + moved * np.random.default_rng(0).standard_normal(x.shape))).astype(x.dtype)
            else:
                x_run = x
            loss, grads, counts = runner.gradients(taken, x_run, labels, step)
            runner.optimizer_step(taken, grads, step)
            arrays.update({f"loss/{run}": np.float64(loss), **{f"grad/{run}/{k}": v for k, v in grads.items()},
                           **{f"after/{run}/{k}": np.array(v, copy=True) for k, v in runner.tensors(taken).items()},
                           **{f"count/{k}": np.int64(v) for k, v in counts.items()}})
    np.savez(step.out, **arrays)


def attempt(job: SourceJob) -> tuple[str | None, bool]:
    """Run the job: (None, True), or (the one line that says why it failed, whether the failure was anticipated:
    a bad file or path, after which the process is as sound as before)."""
    who = f"{job.source} worker for {job.source}:{job.model}"
    try:
        _run(job)
    except PortingError as exc:
        return " ".join(str(exc).split()), True
    except OSError as exc:
        return " ".join(f"{who}: cannot access {describe_os_error(exc)}".split()), True
    except MemoryError:
        message = f"{who}: out of memory"
    except Exception as exc:  # noqa: BLE001 - the worker's boundary: the parent gets one line
        verbose = os.environ.get("PORTING_VERBOSE", "") not in ("", "0")
        if verbose:
            traceback.print_exc()
        message = f"{who}: unexpected {type(exc).__name__}: {first_line(exc)}" + (
            "" if verbose else " (porting --verbose ... prints the traceback)")
    else:
        return None, True
    return " ".join(message.split()), False


def main(job_path: str) -> int:
    _die_with_parent()
    message, _ = attempt(SourceJob.read(job_path))
    if message is None:
        return 0
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 2


def _give_back_memory() -> None:
    """Between jobs, the freed model's memory goes back to the system rather than staying in the allocator."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)  # glibc
    except AttributeError:
        pass


def serve(reply_fd: int) -> int:
    """Jobs one after another until stdin closes; each job's temporaries in its own folder, as a fresh worker's."""
    _die_with_parent()
    with os.fdopen(reply_fd, "w", buffering=1) as reply:
        for line in sys.stdin:
            job = SourceJob.read(line.strip())
            os.environ["TMPDIR"] = tempfile.tempdir = job.tmpdir or os.environ["TMPDIR"]
            message, sound = attempt(job)
            sys.stdout.flush()
            sys.stderr.flush()
            _give_back_memory()
            reply.write(json.dumps({"error": message, "sound": sound}) + "\n")
    return 0


if __name__ == "__main__":
    code = serve(int(sys.argv[2])) if sys.argv[1] == "--serve" else main(sys.argv[1])
    sys.stdout.flush()
    sys.stderr.flush()
    # Every result file is closed: skip the interpreter's teardown of torch / TensorFlow / Paddle (over a
    # second), which the parent would otherwise wait for.
    os._exit(code)
