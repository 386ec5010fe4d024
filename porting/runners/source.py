"""Parent side of a source worker: write the job, run the worker process, read its NumPy results."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from porting.errors import PortingError
from porting.specs import ModelSpec


@dataclass
class SourceResult:
    info: dict  # num_classes, pretrained_cfg, ...
    tensors: dict[str, np.ndarray] = field(default_factory=dict)  # the source model's named tensors
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # tapped layer outputs + 'logits'
    order: list[str] = field(default_factory=list)  # taps in the order the source computed them


def run_source(spec: ModelSpec, *, weights: str | None = None, seed: int | None = None,
               num_classes: int | None = None, want_tensors: bool = True, inputs: np.ndarray | None = None,
               taps: list[str] | None = None, save_weights: str | None = None,
               untrained: bool = False) -> SourceResult:
    """Build `spec`'s source model in its own process and return what was asked for.

    weights: a local file in the source's format; seed: seeded synthetic weights; neither: the source
    library's own pretrained download; untrained: the library's default init (for names and shapes).
    """
    with tempfile.TemporaryDirectory(prefix="porting-") as tmp:
        tmp = Path(tmp)
        job = {
            "source": spec.source, "model": spec.name, "weights": weights, "seed": seed,
            "num_classes": num_classes, "untrained": untrained, "input_size": spec.input_size, "mean": spec.mean, "std": spec.std,
            "random_init": dict(spec.random_init),
            "tensors_out": str(tmp / "tensors.npz") if want_tensors else None,
            "inputs": None, "taps": taps or [], "outputs_out": None,
            "save_weights": save_weights, "result_out": str(tmp / "result.json"),
        }
        if inputs is not None:
            np.save(tmp / "inputs.npy", inputs)
            job["inputs"], job["outputs_out"] = str(tmp / "inputs.npy"), str(tmp / "outputs.npz")
        (tmp / "job.json").write_text(json.dumps(job))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", GLOG_minloglevel="2", PYTHONWARNINGS="ignore")
        if env.pop("PORTING_CAPPED_ONEDNN", None):  # the AVX2 cap is for MindSpore's oneDNN only (msenv.py)
            env.pop("ONEDNN_MAX_CPU_ISA", None)
        proc = subprocess.run([sys.executable, "-m", "porting.runners.worker", str(tmp / "job.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
            if errors:
                raise PortingError(errors[-1][len("error: "):])
            tail = "\n".join(proc.stderr.splitlines()[-15:])
            raise PortingError(f"{spec.source} worker for {spec.id} died (exit {proc.returncode}):\n{tail}")
        result = SourceResult(info=json.loads((tmp / "result.json").read_text()))
        if want_tensors:
            with np.load(tmp / "tensors.npz") as npz:
                result.tensors = {k: npz[k] for k in npz.files}
        if inputs is not None:
            with np.load(tmp / "outputs.npz") as npz:
                result.outputs = {k: npz[k] for k in npz.files}
            result.order = result.info.pop("order", [])
        return result
