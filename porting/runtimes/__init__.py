"""Deployment runtimes: what runs a ported model (MindSpore, a MINDIR, onnxruntime, OpenVINO, TensorRT)."""
