"""Runners: one per framework, Polygraphy-style.

Source frameworks (timm/PyTorch, Keras/TensorFlow, PaddleClas/Paddle) each run in a worker process of their
own (`python -m porting.runners.worker`), because TensorFlow, Paddle and MindSpore crash or corrupt each other
in one process (PORTING_NOTES.md section 2). The parent talks to a worker through a JSON job file and NumPy
.npz files; it never imports the source framework itself.
"""
