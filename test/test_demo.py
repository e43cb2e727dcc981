"""`lsmdepth demo --quick` end to end (node live on the sample drive, recorded, evaluated), with
its outputs checked against the recorded bag; and its clear failure without weights."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bag_fixtures import decoded, private_ros_env, random_checkpoint

from lsmdepth_ros.bags import messages as bagmsg
from lsmdepth_ros.bags.outputs import read_ply


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    model = random_checkpoint(work / "random.pt", height=64, width=128)
    out = work / "out"
    env = dict(os.environ, **private_ros_env())
    proc = subprocess.run([sys.executable, "-m", "lsmdepth_ros.cli", "demo", "--quick",
                           "--model", str(model), "--out", str(out), "--cache-dir",
                           str(work / "cache")], env=env, capture_output=True, text=True, check=False,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc.stdout, json.loads((out / "demo_summary.json").read_text())


def test_demo_prints_where_to_look(demo):
    out, stdout, _ = demo
    assert "lsmdepth demo finished" in stdout and str(out) in stdout
    for name in ("summary.json", "latency_report.txt", ".ply", "depth_png"):
        assert name in stdout


def test_demo_stops_the_node_and_recorder_cleanly(demo):
    _, _, summary = demo
    assert summary["node_exit_code"] == 0 and summary["recorder_exit_code"] == 0
    counts = summary["recorded_messages"]
    assert set(counts) == {"/depth", "/depth/camera_info", "/points", "/depth/colored",
                           "/diagnostics"}
    assert counts["/depth"] >= 1 and counts["/diagnostics"] >= 1


def test_demo_metrics_are_sane_and_match_the_csv(demo):
    out, _, summary = demo
    evaluation = json.loads((out / "eval" / "summary.json").read_text())
    m = evaluation["metrics"]
    assert 0 < m["abs_rel"] < 2 and 0 < m["rmse"] < 80 and 0 <= m["a1"] <= m["a2"] <= m["a3"] <= 1
    rows = [r for r in csv.DictReader((out / "eval" / "frames.csv").open()) if r["abs_rel"]]
    assert len(rows) == evaluation["frames_evaluated"] == summary["frames_evaluated"]
    assert np.mean([float(r["abs_rel"]) for r in rows]) == pytest.approx(m["abs_rel"], rel=1e-5)
    assert summary["metrics"] == m
    for png in ("metrics_over_time.png", "error_map_0.png"):
        assert (out / "eval" / png).read_bytes()[:4] == b"\x89PNG"


def test_demo_depth_pngs_and_point_cloud_come_from_the_recorded_outputs(demo):
    import cv2

    out, _, summary = demo
    recorded = Path(summary["recorded_bag"])
    depth = decoded(recorded, "/depth")
    pngs = sorted((out / "depth_png").glob("*.png"))
    assert len(pngs) == len(depth) == summary["files"]["depth_png_count"]
    image = cv2.imread(str(pngs[0]))
    assert image.shape[:2] == (depth[0].height, depth[0].width) and image.std() > 0
    assert (out / "depth_colored_by_node.png").is_file()
    # the PLY holds exactly the finite points of the recorded cloud with that stamp
    ply_path = Path(summary["files"]["ply"])
    stamp = int(ply_path.stem.split("_")[1])
    cloud = next(m for m in decoded(recorded, "/points")
                 if bagmsg.stamp_to_ns(m.header.stamp) == stamp)
    xyz = bagmsg.cloud_to_numpy(cloud)
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    ply = read_ply(ply_path)
    assert summary["files"]["ply_points"] == len(ply) == len(xyz) > 0
    np.testing.assert_array_equal(np.stack([ply["x"], ply["y"], ply["z"]], 1), xyz)
    # and its z values are the recorded depth of that frame (organised cloud, stride 1)
    frame = next(m for m in depth if bagmsg.stamp_to_ns(m.header.stamp) == stamp)
    z = bagmsg.image_to_numpy(frame)
    np.testing.assert_allclose(np.sort(ply["z"]), np.sort(z[np.isfinite(z)]), rtol=1e-6)


def test_demo_latency_report_is_consistent(demo):
    out, _, summary = demo
    report = json.loads((out / "latency_report.json").read_text())
    assert report == summary["latency"]
    assert report["images_published"] == 12
    assert 1 <= report["depth_frames_recorded"] <= 12
    assert report["drop_rate"] == pytest.approx(1 - report["depth_frames_recorded"] / 12)
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 30_000
    diag = report["diagnostics"]
    # the node's own counts (its last /diagnostics comes after the last output)
    assert int(diag["frames_processed"]) >= report["depth_frames_recorded"]
    assert int(diag["frames_received"]) <= 12
    assert int(diag["frames_processed"]) + int(diag["frames_dropped"]) <= int(
        diag["frames_received"])


def test_demo_without_weights_says_what_to_do(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lsmdepth_ros.cli", "demo", "--model",
                           str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert "missing.pt" in proc.stderr and "--model" in proc.stderr
    assert "Traceback" not in proc.stderr
