"""Entry point of a source worker process: `python -m porting.runners.worker JOB.json`.

Imports exactly one source framework, chosen by the job's "source". User-facing failures are printed as one
`error: ...` line on stderr with exit code 2; the parent turns that line into a PortingError.
"""
from __future__ import annotations

import importlib
import json
import sys

import numpy as np

from porting.errors import PortingError

RUNNERS = {"timm": "porting.runners.timm_source", "paddleclas": "porting.runners.paddle_source",
           "keras": "porting.runners.keras_source"}


def main(job_path: str) -> int:
    with open(job_path) as f:
        job = json.load(f)
    try:
        runner = importlib.import_module(RUNNERS[job["source"]])
        model, info = runner.load(job)
        if job.get("save_weights"):
            runner.save_weights(model, job["save_weights"])
        if job.get("tensors_out"):
            np.savez(job["tensors_out"], **runner.tensors(model))
        if job.get("inputs"):
            outputs, order = runner.forward(model, np.load(job["inputs"]), job.get("taps") or [])
            np.savez(job["outputs_out"], **outputs)
            info["order"] = order
        with open(job["result_out"], "w") as f:
            json.dump(info, f)
    except PortingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
