"""Source libraries: one package per library (as porting.archs holds one per architecture family), each holding

    __init__.py        its record (registry.SourceLibrary: names, file suffixes, resize backend, weight-map
                       convention, what it can do), registered with `register_source`; no framework imported
    runner.py          its SourceRunner: the worker-side hooks that build, load, run and save its models in the
                       library's own code (imports its one framework)

and what every library shares: base.py (the SourceRunner contract and the seeded randomiser), worker.py (the
worker process: `python -m porting.sources.worker`), jobs.py (the parent side: source_job, run_source,
reusing_workers) and inputs.py (seeded synthetic images).

Source frameworks (timm/PyTorch, Keras/TensorFlow, PaddleClas/Paddle, mindcv and the model zoo in MindSpore) each
run in a worker process of their own, because TensorFlow, Paddle and MindSpore crash or corrupt each other in one
process (PORTING_NOTES.md section 2). The parent talks to a worker through a JSON job file and NumPy .npz files;
it never imports the source framework itself. Importing porting.sources imports every record, no framework.
"""
import importlib
import pkgutil

from porting.sources.registry import (Checkout, SourceLibrary, checkout_folder, libraries, library,  # noqa: F401
                                      register_source, with_checkout)

PACKAGES = [info.name for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name) if info.ispkg]
for _package in PACKAGES:
    importlib.import_module(f"{__name__}.{_package}")
