"""Published weights: official Lite-Mono, LSMDepth and monodepth2 folders (encoder.pth +
depth.pth) load strictly through model_path and give the disparities of the authors' forward pass.

Folders are written from key/shape descriptions of the authors' module trees with random weights
(official_reference.py), never from our own models, and outputs are compared with a functional
forward pass over the same state dicts that follows the authors' operations.
"""
from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import official_reference as ref
import pytest
import torch

from lsmdepth_ros.checkpoints import CheckpointError, identify_official, load_checkpoint
from lsmdepth_ros.cli import main as cli_main
from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions, ModelLoadError
from lsmdepth_ros.networks import build_depth_model

H, W = 64, 192  # forward passes run here; the folders name their own training size
HYBRID = {  # our name, options -> (dims, depths, family)
    ("lite-mono", ()): ((48, 80, 128), (4, 4, 10), "lite-mono"),
    ("lite-mono-small", ()): ((48, 80, 128), (4, 4, 7), "lite-mono"),
    ("lite-mono-tiny", ()): ((32, 64, 128), (4, 4, 7), "lite-mono"),
    ("lite-mono-8m", ()): ((64, 128, 224), (4, 4, 10), "lite-mono"),
    ("lsmdepth-official", (("variant", "light"),)): ((48, 80, 128), (4, 4, 10), "lsmdepth"),
    ("lsmdepth-official", (("variant", "light-s"),)): ((48, 80, 128), (4, 4, 7), "lsmdepth"),
    ("lsmdepth-official", (("variant", "light-t"),)): ((32, 64, 128), (4, 4, 7), "lsmdepth"),
    ("lsmdepth-official", (("variant", "light-m"),)): ((64, 128, 224), (4, 4, 10), "lsmdepth"),
}
LAYOUTS = [*HYBRID, ("monodepth2-r18", ()), ("monodepth2-r50", ())]
# The authors' dilation tables (their encoders define only these two sizes).
DILATIONS = {
    (192, 640): {10: [[1, 2, 3], [1, 2, 3], [1, 2, 3, 1, 2, 3, 2, 4, 6]],
                 7: [[1, 2, 3], [1, 2, 3], [1, 2, 3, 2, 4, 6]]},
    (320, 1024): {10: [[1, 2, 5], [1, 2, 5], [1, 2, 5, 1, 2, 5, 2, 4, 10]],
                  7: [[1, 2, 5], [1, 2, 5], [1, 2, 5, 2, 4, 10]]},
}


def layout_shapes(name, options):
    """(encoder.pth shapes, depth.pth shapes) of a published layout."""
    if name.startswith("monodepth2"):
        layers = int(name.rsplit("r", 1)[1])
        enc = ref.resnet_channels(layers)
        return ref.resnet_encoder_shapes(layers), ref.plain_decoder_shapes(enc, [16, 32, 64, 128, 256])
    dims, depths, family = HYBRID[(name, options)]
    decoder = (ref.lsmdepth_decoder_shapes(dims) if family == "lsmdepth"
               else ref.plain_decoder_shapes(dims, [c // 2 for c in dims]))
    return ref.hybrid_encoder_shapes(dims, depths, family), decoder


def reference_forward(name, options, enc, dec, x, size):
    """The authors' disparities for images x, with weights trained at ``size`` (H, W)."""
    if name.startswith("monodepth2"):
        features = ref.resnet_encoder_forward(enc, x, int(name.rsplit("r", 1)[1]))
        return ref.plain_decoder_forward(dec, features, "nearest")
    dims, depths, family = HYBRID[(name, options)]
    table = (192, 640) if dims[0] == 64 else size  # the 8m widths keep the 640x192 table
    features = ref.hybrid_encoder_forward(enc, x, DILATIONS[table][depths[2]], family)
    if family == "lsmdepth":
        return ref.lsmdepth_decoder_forward(dec, features)
    return ref.plain_decoder_forward(dec, features, "bilinear")


def write_folder(folder, enc, dec, size, use_stereo=False):
    """As the authors' trainers save: encoder.pth carries height, width and use_stereo."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({**enc, "height": size[0], "width": size[1], "use_stereo": use_stereo},
               folder / "encoder.pth")
    torch.save(dec, folder / "depth.pth")
    return folder


def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _id(layout):
    name, options = layout
    return dict(options).get("variant", name)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("layout", LAYOUTS, ids=_id)
def test_models_have_the_published_keys_and_shapes(layout):
    name, options = layout
    model = build_depth_model(name, height=H, width=W, **dict(options))
    enc_shapes, dec_shapes = layout_shapes(name, options)
    assert _shapes(model.encoder) == enc_shapes
    assert _shapes(model.decoder) == dec_shapes
    # ... and the files alone say which model they are (keys and shapes, not the folder name)
    empty = {k: torch.empty(s) for k, s in enc_shapes.items()}
    assert identify_official(empty)[:2] == (name, dict(options))


@pytest.mark.parametrize("layout,size", [
    (("lite-mono", ()), (192, 640)),
    (("lite-mono-tiny", ()), (320, 1024)),
    (("lsmdepth-official", (("variant", "light"),)), (192, 640)),
    (("lsmdepth-official", (("variant", "light"),)), (320, 1024)),
    (("lsmdepth-official", (("variant", "light-m"),)), (320, 1024)),
    (("monodepth2-r18", ()), (320, 1024)),
    (("monodepth2-r50", ()), (192, 640)),
], ids=lambda v: _id(v) if isinstance(v, tuple) and isinstance(v[0], str) else f"{v[1]}x{v[0]}")
def test_folder_loads_strictly_and_matches_the_authors_forward(tmp_path, layout, size):
    name, options = layout
    enc_shapes, dec_shapes = layout_shapes(name, options)
    enc, dec = ref.random_state(enc_shapes, 1), ref.random_state(dec_shapes, 2)
    folder = write_folder(tmp_path / "any_name", enc, dec, size)
    model, info = load_checkpoint(folder)
    assert (info.name, info.source) == (name, "official")
    assert {k: info.options[k] for k in dict(options)} == dict(options)
    assert (info.options["height"], info.options["width"]) == size
    assert not model.training
    loaded = {**model.encoder.state_dict(), **{f"dec.{k}": v for k, v in model.decoder.state_dict().items()}}
    for key, value in [*enc.items(), *((f"dec.{k}", v) for k, v in dec.items())]:
        assert torch.equal(loaded[key], value), key
    x = torch.rand(2, 3, H, W, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = reference_forward(name, options, enc, dec, x, size)
        got = model(x)
    assert set(got) == set(expected)
    for key in expected:
        assert got[key].shape == expected[key].shape
        assert (got[key] - expected[key]).abs().max() < 1e-5, key
    # the comparison means something: the two images give clearly different disparities
    assert (expected[("disp", 0)][0] - expected[("disp", 0)][1]).abs().max() > 1e-2


@pytest.mark.parametrize("name,options,stereo", [
    ("lsmdepth-official", (("variant", "light"),), False),
    ("monodepth2-r18", (), True),
])
def test_model_path_folder_gives_the_authors_depth(tmp_path, name, options, stereo):
    """Through DepthEstimator, as the node uses it: network size from encoder.pth."""
    size = (64, 224)  # a size the file names (not the package default), kept small
    enc_shapes, dec_shapes = layout_shapes(name, options)
    enc, dec = ref.random_state(enc_shapes, 4), ref.random_state(dec_shapes, 5)
    folder = write_folder(tmp_path / "weights", enc, dec, size, use_stereo=stereo)
    est = DepthEstimator(EstimatorOptions(model_path=str(folder), device="cpu", num_threads=1))
    assert est.model_name == name and est.network_size == (size[1], size[0])
    image = np.random.default_rng(6).integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
    depth = est.estimate(image, "rgb8")
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        disp = reference_forward(name, options, enc, dec, x, (192, 640))[("disp", 0)][0, 0]
    expected = 1.0 / (1 / 100.0 + (1 / 0.1 - 1 / 100.0) * disp.double().numpy())
    assert depth.shape == expected.shape
    np.testing.assert_allclose(depth, expected, rtol=1e-4)
    _, info = load_checkpoint(folder)
    assert info.extra["use_stereo"] is stereo and info.extra["size_from_file"]


def test_export_command_accepts_a_folder(tmp_path, capsys):
    import onnxruntime as ort

    name, options = "lsmdepth-official", (("variant", "light"),)
    enc, dec = (ref.random_state(s, 7) for s in layout_shapes(name, options))
    folder = write_folder(tmp_path / "weights", enc, dec, (H, W))
    out = tmp_path / "model.onnx"
    assert cli_main(["export", str(folder), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lsmdepth-official" in printed and float(printed.rsplit(":", 1)[1]) < 1e-4
    x = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(8))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(["disp"], {"image": x.numpy()})[0]
    with torch.no_grad():
        expected = reference_forward(name, options, enc, dec, x, (192, 640))[("disp", 0)].numpy()
    assert np.abs(got - expected).max() < 1e-4


# --- bad folders ---------------------------------------------------------------------------

@pytest.fixture
def lite_mono_state():
    enc_shapes, dec_shapes = layout_shapes("lite-mono-tiny", ())
    return ref.random_state(enc_shapes, 9), ref.random_state(dec_shapes, 10)


def _load_error(path) -> str:
    """The message of both loaders: load_checkpoint and the node's DepthEstimator."""
    with pytest.raises(CheckpointError) as plain:
        load_checkpoint(path)
    with pytest.raises(ModelLoadError) as estimator:
        DepthEstimator(EstimatorOptions(model_path=str(path), device="cpu"))
    assert str(plain.value) in str(estimator.value)
    return str(plain.value)


@pytest.mark.parametrize("missing", ["encoder.pth", "depth.pth"])
def test_folder_with_a_file_missing(tmp_path, lite_mono_state, missing):
    folder = write_folder(tmp_path / "weights", *lite_mono_state, (192, 640))
    (folder / missing).unlink()
    message = _load_error(folder)
    assert str(folder) in message and f"has no {missing}" in message
    other = "depth.pth" if missing == "encoder.pth" else "encoder.pth"
    assert f"found: {other}" in message


@pytest.mark.parametrize("damaged", ["encoder.pth", "depth.pth"])
def test_truncated_file(tmp_path, lite_mono_state, damaged):
    folder = write_folder(tmp_path / "weights", *lite_mono_state, (192, 640))
    data = (folder / damaged).read_bytes()
    (folder / damaged).write_bytes(data[:len(data) // 2])
    message = _load_error(folder)
    assert str(folder / damaged) in message and "truncated" in message


def test_state_dict_of_another_model(tmp_path, lite_mono_state):
    enc, dec = lite_mono_state
    # encoder.pth from no known network (here: a PoseNet-like dict): every layout tried is named
    pose = {"squeeze.weight": torch.zeros(256, 512, 1, 1), "pose.0.weight": torch.zeros(256, 256, 3, 3)}
    message = _load_error(write_folder(tmp_path / "pose", pose, dec, (192, 640)))
    assert str(tmp_path / "pose" / "encoder.pth") in message
    for family in ("Lite-Mono", "LSMDepth", "monodepth2"):
        assert family in message
    assert "squeeze.weight" in message
    # a Lite-Mono encoder with a monodepth2 decoder: depth.pth is named, with the key mismatch
    _, md2_dec = layout_shapes("monodepth2-r18", ())
    message = _load_error(write_folder(tmp_path / "mixed", enc, ref.random_state(md2_dec, 1),
                                       (192, 640)))
    assert str(tmp_path / "mixed" / "depth.pth") in message and "missing" in message
    # an encoder of a size no release has
    wide = {k: v for k, v in enc.items() if not k.startswith("stages.2.")}
    wide.update({k: v for k, v in enc.items() if k.startswith("stages.2.") and int(k.split(".")[2]) < 3})
    message = _load_error(write_folder(tmp_path / "odd", wide, dec, (192, 640)))
    assert "encoder.pth" in message and "3 blocks in the last stage" in message


def test_bad_size_and_lsmdepth_checkpoint_in_a_folder(tmp_path, lite_mono_state):
    message = _load_error(write_folder(tmp_path / "size", *lite_mono_state, (100, 640)))
    assert "encoder.pth" in message and "multiples of 32" in message
    folder = tmp_path / "ours"
    folder.mkdir()
    from lsmdepth_ros.checkpoints import save_checkpoint

    save_checkpoint(folder / "encoder.pth", build_depth_model("lite-mono-tiny", height=H, width=W))
    torch.save(lite_mono_state[1], folder / "depth.pth")
    assert "lsmdepth_ros checkpoint" in _load_error(folder)


def test_size_defaults_to_the_release_size_when_the_file_omits_it(tmp_path, lite_mono_state):
    folder = write_folder(tmp_path / "weights", *lite_mono_state, (192, 640))
    enc = torch.load(folder / "encoder.pth", weights_only=True)
    torch.save({k: v for k, v in enc.items() if k not in ("height", "width")}, folder / "encoder.pth")
    _, info = load_checkpoint(folder)
    assert (info.options["height"], info.options["width"]) == (192, 640)
    assert info.extra["size_from_file"] is False


def test_node_exits_with_code_2_on_a_bad_folder(tmp_path, lite_mono_state):
    pytest.importorskip("rclpy")
    from lsmdepth_ros.resources import fastdds_env

    folder = write_folder(tmp_path / "weights", *lite_mono_state, (192, 640))
    (folder / "depth.pth").unlink()
    env = fastdds_env()
    env.update(ROS_DOMAIN_ID=str(random.randint(1, 100)), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               PYTHONUNBUFFERED="1", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    proc = subprocess.run([sys.executable, "-m", "lsmdepth_ros.ros.node", "--ros-args",
                           "-p", f"model_path:={folder}", "-p", "device:=cpu"],
                          check=False, env=env, capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert str(folder) in text and "has no depth.pth" in text and "Traceback" not in text
