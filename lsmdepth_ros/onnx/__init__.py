"""ONNX models for the node's onnxruntime backend.

``spec``: what an ONNX depth model takes and returns (its ``lsmdepth.*`` metadata, read through
onnxruntime), and the pre/post-processing that follows from it. No torch: a robot that runs
``.onnx`` files installs only requirements-robot-onnx.txt.
``export``: writing such a file from a PyTorch model (needs torch, onnx, onnxscript).
``quantize``: INT8 static quantisation of an exported file (onnxruntime.quantization).
``compat``: deformable convolutions as GridSample + grouped conv, for runtimes without
DeformConv (needs torch). ``operators``: which onnxruntime release brings which operator, for
load errors (no torch). ``runtime``: execution providers (TensorRT, CUDA, CPU; no torch).

Nothing is imported here, so ``import lsmdepth_ros.onnx.spec`` never pulls in torch.
"""
