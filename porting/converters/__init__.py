"""Converters: source tensors -> porting's checkpoint (port), and a ported network -> ONNX / MINDIR / AIR
(export, with porting's own ONNX lowering in onnx_graph and onnx_ops)."""
