"""Parent side of a source worker: write the job, run the worker process, read its NumPy results.

A worker process runs one job and exits (the CLI's way: one job per command). Within `reusing_workers()` (a
notebook, a test session) the jobs of one library share a worker that stays, so its framework is imported once:
torch and timm take about 7 s of CPU to import, TensorFlow 5 s, against a second or two for most jobs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from porting import files
from porting.archs.registry import ModelSpec
from porting.errors import PortingError
from porting.heads import Head
from porting.job import (PipelineRequest, PretrainedConfig, SourceInfo, SourceJob, SourceResult, Training,
                         TrainStep)
from porting.runtimes.base import LOGITS, Runtime
from porting.sources.registry import checkout_folder


def _verbose() -> bool:
    return os.environ.get("PORTING_VERBOSE", "") not in ("", "0")


def _worker_env(tmpdir: Path) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", GLOG_minloglevel="2", PYTHONWARNINGS="ignore",
               PORTING_PARENT_PID=str(os.getpid()))
    # the framework's own temporaries live in the job's folder, so they go when the job goes
    env["TMPDIR"] = str(tmpdir)
    if env.pop("PORTING_CAPPED_ONEDNN", None):  # the AVX2 cap is for MindSpore's oneDNN only (msenv.py)
        env.pop("ONEDNN_MAX_CPU_ISA", None)
    return env


def _start_worker(job_file: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "porting.sources.worker", str(job_file)],
                            stdout=None if _verbose() else subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, errors="replace", env=env)


def _wait(spec: ModelSpec, proc: subprocess.Popen) -> None:
    """Wait for the worker; any failure becomes one PortingError line."""
    _, stderr = proc.communicate()
    if proc.returncode == 0:
        return
    if _verbose():
        sys.stderr.write(stderr)
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error: ")]
    if errors:
        raise PortingError(errors[-1][len("error: "):])
    raise _died(spec, proc.returncode, stderr)


def _died(spec: ModelSpec, returncode: int, stderr: str) -> PortingError:
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return PortingError(f"the {spec.source} worker for {spec.id} was killed by {name}"
                            + (" (out of memory?)" if name == "SIGKILL" else ""))
    last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "no output")
    return PortingError(f"the {spec.source} worker for {spec.id} failed (exit {returncode}): {last.strip()}"
                        + ("" if _verbose() else " (porting --verbose ... prints its output)"))


@contextlib.contextmanager
def _fresh_worker(spec: ModelSpec, job: Path, tmpdir: Path) -> Iterator[Callable[[], None]]:
    """A worker process for this job alone; yields wait()."""
    env = _worker_env(tmpdir)
    with files.guarded_process(lambda: _start_worker(job, env)) as proc:
        yield lambda: _wait(spec, proc)


class _KeptWorker:
    """A worker that serves jobs of one library until closed (worker.py --serve): job paths on its stdin, one
    JSON answer per job on a pipe of its own (its stdout and stderr are the libraries')."""

    def __init__(self):
        self.scratch = Path(tempfile.mkdtemp(prefix="porting-worker-"))
        self.log = open(self.scratch / "stderr.log", "w+", errors="replace")
        answers, theirs = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "porting.sources.worker", "--serve", str(theirs)], stdin=subprocess.PIPE,
                stdout=None if _verbose() else subprocess.DEVNULL, stderr=None if _verbose() else self.log,
                text=True, env=_worker_env(self.scratch), pass_fds=(theirs,))
        finally:
            os.close(theirs)
        self.answers = os.fdopen(answers)
        self.busy = False  # a job asked and not yet answered

    def alive(self) -> bool:
        return self.proc.poll() is None

    def ask(self, job: Path) -> None:
        self.busy = True
        self.proc.stdin.write(f"{job}\n")
        self.proc.stdin.flush()

    def answer(self, spec: ModelSpec) -> None:
        """Waits for the job's answer and raises its error."""
        line = self.answers.readline()
        if not line:  # it died mid-job
            self.proc.wait()
            self.log.seek(0)
            raise _died(spec, self.proc.returncode, self.log.read())
        answer = json.loads(line)
        self.busy = False
        if answer["error"]:
            raise _Failed(answer["error"], answer["sound"])

    def close(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.answers.close()
        self.log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class _Failed(PortingError):
    def __init__(self, message: str, sound: bool):
        super().__init__(message)
        self.sound = sound  # an anticipated failure (a bad file): the worker may take the next job


_KEPT: dict[tuple, _KeptWorker] | None = None  # None: a fresh worker per job; else oldest use first
KEPT_AT_MOST = 2  # a worker holds its framework and allocator (1-3 GB): the least recently used one goes


@contextlib.contextmanager
def reusing_workers() -> Iterator[None]:
    """Within this block, the source jobs of one library (one model-zoo checkout) share one worker process,
    closed when the block ends; at most KEPT_AT_MOST are kept, the least recently used closed first. Each job
    still gets its own temporaries and the library's state is reset where it keeps any (Keras's session). A job that fails for an unanticipated reason (not a bad file) takes its worker
    with it, as does one whose answer is never read; the next job starts a fresh one."""
    global _KEPT
    if _KEPT is not None:  # already inside such a block
        yield
        return
    _KEPT = {}
    try:
        yield
    finally:
        kept, _KEPT = _KEPT, None
        for worker in kept.values():
            worker.close()


@contextlib.contextmanager
def _kept_worker(spec: ModelSpec, checkout: str | None, job: Path) -> Iterator[Callable[[], None]]:
    key = (spec.source, checkout)
    worker = _KEPT.pop(key, None)
    if worker is not None and worker.busy:  # a job of this library inside another one's: a worker of its own
        _KEPT[key] = worker
        with _fresh_worker(spec, job, Path(job).parent / "tmp") as wait:
            yield wait
        return
    if worker is None or not worker.alive():
        if worker is not None:
            worker.close(kill=True)
        for old in [k for k, w in _KEPT.items() if not w.busy][: max(0, len(_KEPT) + 1 - KEPT_AT_MOST)]:
            _KEPT.pop(old).close()
        worker = _KeptWorker()
    _KEPT[key] = worker  # the most recently used, last
    answered = False

    def wait() -> None:
        nonlocal answered
        try:
            worker.answer(spec)
        except _Failed as failed:
            if not failed.sound:
                _retire(key, worker)
            raise PortingError(str(failed)) from None
        except BaseException:
            _retire(key, worker)
            raise
        finally:
            answered = True

    worker.ask(job)
    try:
        yield wait
    finally:
        if not answered:  # the answer was never read: the worker is still busy with this job
            _retire(key, worker)


def _retire(key: tuple, worker: _KeptWorker) -> None:
    if _KEPT is not None and _KEPT.get(key) is worker:
        del _KEPT[key]
    worker.close(kill=True)


@contextlib.contextmanager
def source_job(spec: ModelSpec, *, weights: str | None = None, seed: int | None = None,
               num_classes: int | None = None, want_tensors: bool = True, inputs: np.ndarray | None = None,
               taps: list[str] | None = None, save_weights: str | None = None, save_weights_as: str | None = None,
               untrained: bool = False, preprocess: tuple[list[str], int, int] | None = None,
               training: Training | None = None, assign: dict[str, np.ndarray] | None = None,
               unassigned: list[str] | None = None, export_config: PretrainedConfig | None = None,
               train_step: TrainStep | None = None, step_grads: dict[str, np.ndarray] | None = None,
               keep_model: str = "", head: Head | None = None) -> Iterator[Callable[[], SourceResult]]:
    """Start building `spec`'s source model in its own process; yields `result()`, which waits for it.

    The caller works meanwhile (port-weights imports MindSpore and builds the target network while the worker
    imports its framework). weights: a local file in the source's format; seed: seeded synthetic weights;
    neither: the source library's own pretrained download; untrained: the library's default init (for names
    and shapes). save_weights: where the worker writes the weights in the source's own format (the caller
    makes it atomic); save_weights_as: the name its errors give that file (the user's output path).
    preprocess: (image paths, crop size, resize): the library's own preprocessing of those images (timm and Keras
    choose their own resize), in result().preprocessed. training: the optimizer a source's own checkpoints carry
    the state of (the model zoo's), for save_weights. assign: tensors (the library's names) put into the untrained
    model before save_weights, every one but `unassigned` patterns; with inputs or tensors, the saved file is read
    back by the library's loader and that model answers (export --to); export_config: label names and
    preprocessing for the formats that hold them. train_step: one training step of the model on `inputs` (its
    labels and recipe in the request): result().tensors are the tensors before it, result().step what it gave;
    with step_grads (the library's names), the recipe's optimizer alone on those gradients. keep_model: a key; within
    reusing_workers() the worker keeps the model it built, and the next job with the same key runs on it (for jobs
    that only run inputs or preprocess: SourceRuntime's chunks). head: the head the library's model is built with
    instead of its standard classifier (porting.heads; the worker's SourceInfo.head says the head it loaded).
    """
    # a library that is a checkout (the model zoo) runs its network from it; reading weights alone (port-weights)
    # needs none
    code = checkout_folder(spec, required=not weights or inputs is not None or preprocess is not None)
    with files.scratch_dir("worker-") as tmp:
        job = SourceJob(
            source=spec.source, model=spec.source_name, hub=spec.hub, weights=weights, seed=seed,
            num_classes=num_classes, untrained=untrained, input_size=spec.input_size, mean=spec.mean, std=spec.std,
            random_init=dict(spec.random_init), checkout=code, result_out=str(tmp / "result.json"),
            tensors_out=str(tmp / "tensors.npz") if want_tensors else None, taps=list(taps or []),
            save_weights=save_weights, save_weights_as=save_weights_as,
            training=training,
            inputs=str(tmp / "inputs.npy") if inputs is not None else None,
            outputs_out=str(tmp / "outputs.npz") if inputs is not None else None,
            preprocess=PipelineRequest(preprocess[0], preprocess[1], preprocess[2], str(tmp / "preprocessed.npy"))
            if preprocess is not None else None, tmpdir=str(tmp / "tmp"),
            assign=str(tmp / "assign.npz") if assign is not None else None, unassigned=list(unassigned or []),
            export_config=export_config or PretrainedConfig(),
            train_step=dataclasses.replace(train_step, out=str(tmp / "step.npz"),
                                           grads=str(tmp / "grads.npz") if step_grads is not None else "")
            if train_step else None, keep_model=keep_model, head=head.to_dict() if head is not None else None)
        (tmp / "tmp").mkdir()
        if step_grads is not None:
            np.savez(job.train_step.grads, **step_grads)
        if inputs is not None:
            np.save(job.inputs, inputs)
        if assign is not None:
            np.savez(job.assign, **assign)
        job.write(tmp / "job.json")
        worker = (_fresh_worker(spec, tmp / "job.json", tmp / "tmp") if _KEPT is None
                  else _kept_worker(spec, code, tmp / "job.json"))
        with worker as wait:
            def result() -> SourceResult:
                wait()
                done = SourceResult(SourceInfo.read(job.result_out), weights=weights, seed=seed)
                if want_tensors:
                    with np.load(job.tensors_out) as npz:
                        done.tensors = {k: npz[k] for k in npz.files}
                if train_step is not None:
                    with np.load(job.train_step.out) as npz:
                        done.step = {k: npz[k] for k in npz.files}
                elif inputs is not None:
                    with np.load(job.outputs_out) as npz:
                        done.outputs = {k: npz[k] for k in npz.files}
                if preprocess is not None:
                    done.preprocessed = np.load(job.preprocess.out)
                return done

            yield result


def run_source(spec: ModelSpec, **kwargs) -> SourceResult:
    """Build `spec`'s source model in its own process and return what was asked for (see source_job)."""
    with source_job(spec, **kwargs) as result:
        return result()


class SourceRuntime(Runtime):
    """The source library's model in its worker process, as a runtime. The job that loaded the model ran it on the
    chunk it carried (`inputs`: infer answers for that chunk from its outputs); it was asked to keep the model
    (`job`: source_job's arguments with a keep_model key), so infer on any other chunk is one more job on the model
    its worker kept, within reusing_workers(): the weights are read once and the framework imported once, however
    many chunks follow, and only one chunk's outputs travel at a time."""

    def __init__(self, spec: ModelSpec, source: SourceResult, inputs: np.ndarray, job: dict):
        self.name, self.description = spec.source, f"{spec.id} in its {spec.source} worker"
        self.spec, self.source, self.job, self.inputs = spec, source, job, inputs

    @property
    def order(self) -> list[str]:
        """The taps in the order the source computed them."""
        return self.source.info.order

    def infer(self, x: np.ndarray, taps=()) -> dict[str, np.ndarray]:
        if self.inputs is not None and x.shape == self.inputs.shape and np.array_equal(x, self.inputs):
            outputs, self.inputs, self.source.outputs = self.source.outputs, None, {}  # answered once, then freed
        else:
            outputs = run_source(self.spec, want_tensors=False, inputs=x, taps=list(taps), **self.job).outputs
        return {**{t: outputs[t] for t in taps if t in outputs}, LOGITS: outputs[LOGITS]}
