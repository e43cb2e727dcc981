"""Node start-up time and memory: the torch path (.pt) against the ONNX-only path (.onnx).

    python -m lsmdepth_ros.benchmarks.models --startup

Each run is a fresh interpreter that does what `ros2 run lsmdepth_ros depth_node` does before
it spins (import the node, rclpy.init, build `DepthNode` with `model_path`), then runs one frame.
Reported: seconds from process launch to a ready node, to the first depth image, and the
resident memory (VmRSS after the frame, VmHWM peak), median over runs that alternate the two
paths; "torch loaded" says whether the process imported torch at all.
"""
from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

CHILD = r"""
import json, sys, time
t_launch = float(sys.argv[1])
import numpy as np
import rclpy
from lsmdepth_ros.ros.node import DepthNode
from lsmdepth_ros.ros.transport import use_large_data_transport
use_large_data_transport()  # as the node's main() does
rclpy.init(args=["--ros-args", "-p", "model_path:=" + sys.argv[2], "-p", "num_threads:=1",
                 "--log-level", "warn"])
node = DepthNode()
ready = time.time() - t_launch
w, h = node.estimator.network_size
node.estimator.estimate(np.full((h, w, 3), 100, np.uint8), "rgb8")
first = time.time() - t_launch
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
mb = lambda key: int(status[key].split()[0]) / 1024.0
print(json.dumps({"ready_s": ready, "first_s": first, "rss_mb": mb("VmRSS"),
                  "peak_mb": mb("VmHWM"), "torch": "torch" in sys.modules}))
node.stop()
node.destroy_node()
rclpy.shutdown()
"""


@dataclass
class StartupResult:
    path: str                       # "torch (.pt)" or "onnxruntime (.onnx)"
    runs: list[dict] = field(default_factory=list)

    def median(self, key: str) -> float:
        return statistics.median(r[key] for r in self.runs)


def _one_run(model_path: str) -> dict:
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(100, 200)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, repr(launched), model_path], env=env,
                         capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"node start-up run failed for {model_path}:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_startup(pt_path: str, onnx_path: str, runs: int = 3, out=None) -> list[StartupResult]:
    results = [StartupResult("torch (.pt)"), StartupResult("onnxruntime (.onnx)")]
    for i in range(runs):
        for result, path in zip(results, (pt_path, onnx_path)):
            print(f"[startup] {result.path} run {i + 1}/{runs}", file=out, flush=True)
            result.runs.append(_one_run(path))
    return results


def format_startup(results: list[StartupResult]) -> str:
    torch_r, onnx_r = results
    lines = [("Node start-up (fresh process, import to ready node / first depth image) and "
             "resident memory after one frame, median of alternating runs."), "",
             "| path | ready s | first depth s | RSS MB | peak MB | torch loaded |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r.path} | {r.median('ready_s'):.2f} | {r.median('first_s'):.2f} | "
                     f"{r.median('rss_mb'):.0f} | {r.median('peak_mb'):.0f} | "
                     f"{'yes' if any(x['torch'] for x in r.runs) else 'no'} |")
    lines += ["", (f"ONNX-only vs torch: start-up {onnx_r.median('ready_s') / torch_r.median('ready_s'):.2f}x, "
                  f"memory {onnx_r.median('rss_mb') / torch_r.median('rss_mb'):.2f}x")]
    return "\n".join(lines)
