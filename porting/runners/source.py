"""Parent side of a source worker: write the job, run the worker process, read its NumPy results."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from porting import files
from porting.errors import PortingError
from porting.job import PipelineRequest, SourceInfo, SourceJob, SourceResult, Training
from porting.runners.runtime import LOGITS, Runtime
from porting.specs import ModelSpec


def _verbose() -> bool:
    return os.environ.get("PORTING_VERBOSE", "") not in ("", "0")


def _worker_env(scratch: Path) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", GLOG_minloglevel="2", PYTHONWARNINGS="ignore",
               PORTING_PARENT_PID=str(os.getpid()))
    # the framework's own temporaries live in the job's folder, so they go when the job goes
    (scratch / "tmp").mkdir()
    env["TMPDIR"] = str(scratch / "tmp")
    if env.pop("PORTING_CAPPED_ONEDNN", None):  # the AVX2 cap is for MindSpore's oneDNN only (msenv.py)
        env.pop("ONEDNN_MAX_CPU_ISA", None)
    return env


def _start_worker(job_file: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "porting.runners.worker", str(job_file)],
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
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise PortingError(f"the {spec.source} worker for {spec.id} was killed by {name}"
                           + (" (out of memory?)" if name == "SIGKILL" else ""))
    last = next((ln for ln in reversed(stderr.splitlines()) if ln.strip()), "no output")
    raise PortingError(f"the {spec.source} worker for {spec.id} failed (exit {proc.returncode}): {last.strip()}"
                       + ("" if _verbose() else " (porting --verbose ... prints its output)"))


@contextlib.contextmanager
def source_job(spec: ModelSpec, *, weights: str | None = None, seed: int | None = None,
               num_classes: int | None = None, want_tensors: bool = True, inputs: np.ndarray | None = None,
               taps: list[str] | None = None, save_weights: str | None = None, save_weights_as: str | None = None,
               untrained: bool = False, preprocess: tuple[list[str], int, int] | None = None,
               training: Training | None = None
               ) -> Iterator[Callable[[], SourceResult]]:
    """Start building `spec`'s source model in its own process; yields `result()`, which waits for it.

    The caller works meanwhile (port-weights imports MindSpore and builds the target network while the worker
    imports its framework). weights: a local file in the source's format; seed: seeded synthetic weights;
    neither: the source library's own pretrained download; untrained: the library's default init (for names
    and shapes). save_weights: where the worker writes the weights in the source's own format (the caller
    makes it atomic); save_weights_as: the name its errors give that file (the user's output path).
    preprocess: (image paths, crop size, resize): the library's own preprocessing of those images (timm and Keras
    choose their own resize), in result().preprocessed. training: the optimizer a source's own checkpoints carry
    the state of (the model zoo's), for save_weights.
    """
    code = None
    if spec.source == "modelzoo":  # the model zoo's network runs from the user's checkout; reading weights alone
        from porting import modelzoo  # (port-weights) needs none

        code = modelzoo.checkout(spec, required=not weights or inputs is not None or preprocess is not None)
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
            if preprocess is not None else None)
        if inputs is not None:
            np.save(job.inputs, inputs)
        job.write(tmp / "job.json")
        env = _worker_env(tmp)

        with files.guarded_process(lambda: _start_worker(tmp / "job.json", env)) as proc:
            def result() -> SourceResult:
                _wait(spec, proc)
                done = SourceResult(SourceInfo.read(job.result_out), weights=weights, seed=seed)
                if want_tensors:
                    with np.load(job.tensors_out) as npz:
                        done.tensors = {k: npz[k] for k in npz.files}
                if inputs is not None:
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
    """The source library's model in its worker process, as a runtime. The worker builds the model once per job
    and runs it on the batch the job carries (`inputs`, recording `taps`), so infer answers for that batch."""

    def __init__(self, spec: ModelSpec, source: SourceResult, inputs: np.ndarray):
        self.name, self.description = spec.source, f"{spec.id} in its {spec.source} worker"
        self.source, self.inputs = source, inputs

    @property
    def order(self) -> list[str]:
        """The taps in the order the source computed them."""
        return self.source.info.order

    def infer(self, x: np.ndarray, taps=()) -> dict[str, np.ndarray]:
        if x.shape != self.inputs.shape or not np.array_equal(x, self.inputs):
            raise PortingError(f"{self.description} ran on the batch its job carried, not on this one")
        outputs = self.source.outputs
        return {**{t: outputs[t] for t in taps if t in outputs}, LOGITS: outputs[LOGITS]}
