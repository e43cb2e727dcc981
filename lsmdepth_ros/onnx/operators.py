"""Which onnxruntime releases run which ONNX operators, and what to tell a user whose does not.

No torch, no onnxruntime import: the ONNX backend calls `load_error_message` with the
onnxruntime load error and the installed version.
"""
from __future__ import annotations

import re

# First onnxruntime release with a kernel for operators `lsmdepth export` may write that older
# releases lack. Measured here (test/test_onnx/compat.py installs releases with pip --target):
# DeformConv(19) fails in 1.19.2, 1.20.1 and 1.24.4 and runs in 1.25.0.
FIRST_ORT_RELEASE = {"DeformConv": "1.25.0"}
# The oldest onnxruntime the `--compat` export was run in (older ones need numpy < 2).
COMPAT_ORT_TESTED = "1.19.2"

_NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\((\d+)\)")


def missing_operator_hint(error: str, installed_version: str) -> str | None:
    """A message for an onnxruntime 'no implementation for OP(OPSET)' load error, else None."""
    match = _NO_KERNEL.search(error)
    if match is None:
        return None
    op, opset = match.groups()
    first = FIRST_ORT_RELEASE.get(op)
    upgrade = (f"onnxruntime {first} is the first release that has it: upgrade onnxruntime "
               f"(onnxruntime-gpu on a GPU) to >= {first}" if first else
               "upgrade onnxruntime (which release first has it is not known to lsmdepth_ros)")
    return (f"the model uses the ONNX operator {op} (opset {opset}), which the installed "
            f"onnxruntime {installed_version} cannot run; {upgrade}, or re-export the model "
            "with `lsmdepth export --compat CHECKPOINT` (no DeformConv, opset 16: runs in "
            f"onnxruntime >= {COMPAT_ORT_TESTED} and, by its documented operators, TensorRT "
            ">= 8.5)")


def load_error_message(path, error: Exception, installed_version: str) -> str:
    """What to tell the user when onnxruntime cannot load `path`."""
    detail = missing_operator_hint(str(error), installed_version) or (
        f"{error}. Expected a file written by `lsmdepth export`; check model_path.")
    return f"cannot load the ONNX model '{path}': {detail}"
