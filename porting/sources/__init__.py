"""Source libraries: each one's worker-side runner, one per framework, Polygraphy-style.

Source frameworks (timm/PyTorch, Keras/TensorFlow, PaddleClas/Paddle, mindcv and the model zoo in MindSpore) each
run in a worker process of their own (`python -m porting.sources.worker`), because TensorFlow, Paddle and
MindSpore crash or corrupt each other in one process (PORTING_NOTES.md section 2). The parent talks to a worker
through a JSON job file and NumPy .npz files (porting.sources.jobs); it never imports the source framework itself.
"""
