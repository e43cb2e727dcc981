"""Put this folder first on PYTHONPATH to make torch (and the export-only onnx packages)
unimportable, as on a robot that installed only requirements-robot-onnx.txt."""
import sys

BLOCKED = {"torch", "torchvision", "onnx", "onnxscript"}


class _Blocker:
    def find_spec(self, fullname, path=None, target=None):  # None: let the next finder look
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} is not installed here (torch-free runtime check)")


sys.meta_path.insert(0, _Blocker())
