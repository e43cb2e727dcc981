"""What the demo leaves in its output folder, made from the recorded bag (offline).

eval/ (metrics CSV + JSON + plots), depth_png/ (colour-mapped depth of every recorded frame),
depth_colored_by_node.png, points_<n>.ply, latency_report.json / .txt.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lsmdepth_ros.atomic_files import atomic_write_text
from lsmdepth_ros.bags import bagfile
from lsmdepth_ros.bags import messages as bagmsg
from lsmdepth_ros.bags.bagfile import BagError
from lsmdepth_ros.bags.messages import (
    cloud_to_points_and_colors,
    depth_to_metres,
    header_ns,
)
from lsmdepth_ros.bags.outputs import write_ply, write_png
from lsmdepth_ros.visualisation import colorize_depth_rgb as colorize_rgb


class DemoError(RuntimeError):
    """The demo could not run; the message says why and what to do."""


def write_report(out: Path, sample: Path, recorded: Path, replay_stats, seen: dict,
                 sample_topics: tuple[str, str, str]) -> dict:
    """The report of a demo run; `sample_topics` are the sample bag's image, camera_info and
    ground-truth depth topics."""
    from lsmdepth_ros.bags.bag_eval import BagEvalOptions, evaluate_bag

    IMAGE_TOPIC, CAMERA_INFO_TOPIC, GT_TOPIC = sample_topics

    topics = bagfile.bag_topics(recorded)
    counts = {t: info.count for t, info in topics.items()}
    if counts.get("/depth", 0) == 0:
        raise DemoError(f"the node published no depth (recorded: {counts or 'nothing'}); see "
                        f"{out / 'logs' / 'node.log'}")
    evaluation = evaluate_bag(BagEvalOptions(
        bag=recorded, out_dir=out / "eval", pred_topic="/depth", gt_bag=sample,
        image_topic=IMAGE_TOPIC, camera_info_topic=CAMERA_INFO_TOPIC, gt_topic=GT_TOPIC))
    files = {name: str(path) for name, path in evaluation.files.items()}
    files.update(_depth_pngs(recorded, out / "depth_png"))
    files.update(_node_colored(recorded, out))
    files.update(_point_cloud(recorded, out))
    latency = latency_report(sample, recorded, replay_stats, IMAGE_TOPIC)
    latency["monitor_outputs_seen"] = len(seen)
    files["latency_json"] = str(atomic_write_text(out / "latency_report.json",
                                                  json.dumps(latency, indent=2) + "\n"))
    files["latency_txt"] = str(atomic_write_text(out / "latency_report.txt",
                                                 format_latency(latency) + "\n"))
    return {"metrics": evaluation.summary["metrics"],
            "frames_evaluated": evaluation.summary["frames_evaluated"],
            "scale_ratio_median": evaluation.summary["scale_ratio_median"],
            "recorded_messages": counts, "latency": latency, "files": files}


def _depth_pngs(recorded: Path, folder: Path) -> dict:
    """Every recorded depth frame, colour-mapped with one range for all (so colours compare)."""
    limits = None
    written = 0
    for i, m in enumerate(bagfile.read_messages(recorded, ["/depth"])):
        depth = depth_to_metres(bagmsg.image_to_numpy(m.msg), m.msg.encoding)
        if limits is None:
            valid = depth[np.isfinite(depth)]
            limits = tuple(np.percentile(valid, [5, 95])) if valid.size else (None, None)
        write_png(folder / f"depth_{i:03d}_{header_ns(m.msg)}.png",
                  colorize_rgb(depth, *limits))
        written += 1
    return {"depth_png_dir": str(folder), "depth_png_count": written}


def _middle(recorded: Path, topic: str):
    """The middle message of a topic, decoded (the others are skipped undecoded)."""
    count = bagfile.bag_topics(recorded)[topic].count
    for i, m in enumerate(bagfile.read_messages(recorded, [topic], decode=False)):
        if i == count // 2:
            return bagfile.get_typestore().deserialize_cdr(m.raw, m.msgtype), i
    return None, 0


def _node_colored(recorded: Path, out: Path) -> dict:
    if "/depth/colored" not in bagfile.bag_topics(recorded):
        return {}
    msg, _ = _middle(recorded, "/depth/colored")
    if msg is None:
        return {}
    return {"node_colored_png": str(write_png(out / "depth_colored_by_node.png",
                                              bagmsg.image_to_rgb(msg)))}


def _point_cloud(recorded: Path, out: Path) -> dict:
    if "/points" not in bagfile.bag_topics(recorded):
        return {}
    msg, _index = _middle(recorded, "/points")
    if msg is None:
        return {}
    points, colors = cloud_to_points_and_colors(msg)
    path = out / f"points_{header_ns(msg)}.ply"
    for old in out.glob("points_*.ply"):
        old.unlink()
    count = write_ply(path, points, colors)
    return {"ply": str(path), "ply_points": count}


def latency_report(sample: Path, recorded: Path, replay_stats, image_topic: str) -> dict:
    """Latency (image published -> depth recorded) and drops, from stamps and /diagnostics."""
    header_of = {m.stamp_ns: header_ns(m.msg)
                 for m in bagfile.read_messages(sample, [image_topic])}
    published = {header_of[t]: wall for topic, t, wall in replay_stats.publish_log
                 if topic == image_topic and t in header_of}
    arrived: dict[int, int] = {}
    for m in bagfile.read_messages(recorded, ["/depth"]):
        arrived.setdefault(header_ns(m.msg), m.stamp_ns)
    unmatched = [s for s in arrived if s not in published]
    if unmatched:
        raise BagError(f"{len(unmatched)} recorded depth frames carry stamps that were never "
                       "published; another publisher on the demo's ROS domain?")
    lat = np.array([(arrived[s] - published[s]) / 1e6 for s in arrived])
    recv = np.array(sorted(arrived.values()), dtype=np.float64)
    report = {
        "images_published": len(published),
        "depth_frames_recorded": len(arrived),
        "drop_rate": 1.0 - len(arrived) / max(len(published), 1),
        "output_rate_hz": ((len(recv) - 1) / ((recv[-1] - recv[0]) / 1e9)
                           if len(recv) > 1 and recv[-1] > recv[0] else float("nan")),
        "input_rate_hz": (len(published) - 1) / max(replay_stats.duration_s, 1e-9),
        "latency_ms": {f"p{p}": float(np.percentile(lat, p)) for p in (50, 90, 99)}
        | {"max": float(lat.max()), "mean": float(lat.mean())},
        "diagnostics": _last_diagnostics(recorded),
    }
    return report


def _last_diagnostics(recorded: Path) -> dict:
    if "/diagnostics" not in bagfile.bag_topics(recorded):
        return {}
    last = {}
    for m in bagfile.read_messages(recorded, ["/diagnostics"]):
        if m.msg.status:
            last = {kv.key: kv.value for kv in m.msg.status[0].values}
            last["level"] = int(m.msg.status[0].level)
            last["message"] = m.msg.status[0].message
    return last


def format_latency(r: dict) -> str:
    lat = r["latency_ms"]
    lines = [
        f"images published : {r['images_published']} at {r['input_rate_hz']:.1f} Hz",
        (f"depth recorded   : {r['depth_frames_recorded']} at {r['output_rate_hz']:.1f} Hz "
        f"(drop rate {100 * r['drop_rate']:.0f} %: the node processes the newest frame and "
        "drops the rest when slower than the camera)"),
        (f"latency (stamps) : p50 {lat['p50']:.0f} ms, p90 {lat['p90']:.0f} ms, "
        f"p99 {lat['p99']:.0f} ms, max {lat['max']:.0f} ms (image published -> depth recorded)"),
    ]
    d = r.get("diagnostics") or {}
    if d:
        lines.append(
            f"node diagnostics : received {d.get('frames_received', '?')}, processed "
            f"{d.get('frames_processed', '?')}, dropped {d.get('frames_dropped', '?')}; "
            f"inference p50 {d.get('inference_ms_p50', '?')} ms, end-to-end p50 "
            f"{d.get('latency_ms_p50', '?')} ms, p99 {d.get('latency_ms_p99', '?')} ms")
    return "\n".join(lines)
