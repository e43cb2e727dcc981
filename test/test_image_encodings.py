"""Camera encodings real drivers publish (YUV 4:2:2, Bayer, 16-bit, OpenCV type names): each is
built here from its definition (byte order, mosaic pattern, BT.601 coefficients), independently
of the converter, and must come back as the image it was made from."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lsmdepth_ros.image_encodings import CONVERTED, stretch_to_8bit, to_native
from lsmdepth_ros.inference import DepthEstimator, EstimatorOptions, image_to_rgb
from lsmdepth_ros.ros.conversions import MessageError, input_image_to_numpy


def smooth_rgb(h=48, w=64) -> np.ndarray:
    """Slowly varying colours (demosaicing is exact only where colour is locally constant), with
    saturated corners so that 16-bit versions reach full scale."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.stack([40 + 180 * x / w, 200 - 150 * y / h, 60 + 100 * (x + y) / (w + h)], axis=-1)
    rgb[:6, :6] = 255
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """ROS definition: the pattern lists the colours of the 2x2 tile from the top-left pixel,
    row by row (rggb: R G / G B)."""
    channel = {"r": 0, "g": 1, "b": 2}
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for k, letter in enumerate(pattern):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[letter]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("bits", [8, 16])
def test_bayer_mosaic_demosaics_to_the_original_colours(pattern, bits):
    rgb = smooth_rgb()
    raw = mosaic(rgb, pattern)
    if bits == 16:
        raw = raw.astype(np.uint16) * 257   # 8-bit values spread over the 16-bit range
    out, encoding = to_native(raw, f"bayer_{pattern}{bits}")
    assert encoding == "rgb8" and out.shape == rgb.shape and out.dtype == np.uint8
    inner = (slice(8, -2), slice(8, -2))
    err = np.abs(out[inner].astype(int) - rgb[inner]).mean(axis=(0, 1))
    assert np.all(err < 3.0), (pattern, err)
    # a wrong pattern would swap red and blue: far off on this image
    wrong = {"rggb": "bggr", "bggr": "rggb", "gbrg": "grbg", "grbg": "gbrg"}[pattern]
    other, _ = to_native(raw, f"bayer_{wrong}{bits}")
    assert np.abs(other[inner].astype(int) - rgb[inner]).mean() > 20


def bt601_yuv(rgb: np.ndarray) -> np.ndarray:
    """Studio-swing BT.601 (what UVC cameras send), from the standard's coefficients."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    return np.clip(np.round(np.stack([y, u, v], -1)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("encoding,order", [("yuv422", "UYVY"), ("uyvy", "UYVY"),
                                            ("yuv422_yuy2", "YUYV"), ("yuyv", "YUYV")])
def test_packed_yuv422_decodes_in_its_byte_order(encoding, order):
    rgb = smooth_rgb()
    rgb[:, 1::2] = rgb[:, 0::2]   # pairs share their chroma in 4:2:2: make pairs one colour
    yuv = bt601_yuv(rgb)
    h, w = rgb.shape[:2]
    packed = np.empty((h, w // 2, 4), np.uint8)
    lumas = iter([yuv[:, 0::2, 0], yuv[:, 1::2, 0]])   # Y of the pair's first, then second
    for k, letter in enumerate(order):   # bytes of one pixel pair, in the encoding's order
        packed[..., k] = (yuv[:, 0::2, 1] if letter == "U" else
                          yuv[:, 0::2, 2] if letter == "V" else next(lumas))
    out, native = to_native(packed.reshape(h, w, 2), encoding)
    assert native == "rgb8" and out.shape == rgb.shape
    assert np.abs(out.astype(int) - rgb).max() <= 4
    swapped = {"yuv422": "yuv422_yuy2", "uyvy": "yuyv", "yuv422_yuy2": "yuv422",
               "yuyv": "uyvy"}[encoding]
    other, _ = to_native(packed.reshape(h, w, 2), swapped)
    assert np.abs(other.astype(int) - rgb).mean() > 20


def test_16bit_images_are_stretched_by_their_own_bright_end():
    rng = np.random.default_rng(0)
    twelve_bit = rng.integers(0, 4096, (120, 160)).astype(np.uint16)   # a 12-bit sensor
    out, native = to_native(twelve_bit, "mono16")
    assert native == "mono8" and out.dtype == np.uint8
    top = np.percentile(twelve_bit[::1, ::1], 99.9)
    expected = np.clip(np.round(twelve_bit * (255.0 / top)), 0, 255)
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert out.mean() > 100   # a fixed /256 would give about 8
    # channel order survives: bgr16 -> bgr8 -> the estimator's RGB
    bgr16 = np.zeros((8, 8, 3), np.uint16)
    bgr16[..., 0] = 60000   # blue
    rgb = image_to_rgb(bgr16, "bgr16")
    assert rgb[..., 2].min() == 255 and rgb[..., :2].max() == 0
    assert stretch_to_8bit(np.zeros((4, 4), np.uint16)).max() == 0   # black stays black


def test_opencv_type_names_map_to_native_encodings():
    bgr = smooth_rgb()[..., ::-1].copy()
    assert np.array_equal(image_to_rgb(bgr, "8UC3"), bgr[..., ::-1])
    mono = bgr[..., 0].copy()
    assert np.array_equal(image_to_rgb(mono, "8UC1")[..., 1], mono)


def test_bad_converted_images_get_clear_errors():
    with pytest.raises(ValueError, match="width must be even"):
        to_native(np.zeros((4, 5, 2), np.uint8), "yuv422")
    with pytest.raises(ValueError, match="must be uint16"):
        to_native(np.zeros((4, 4), np.uint8), "bayer_rggb16")
    with pytest.raises(ValueError, match="yuv422"):   # the list of what is accepted
        image_to_rgb(np.zeros((4, 4), np.uint8), "nv12")


def fake_image_msg(array: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    """The sensor_msgs/Image fields (rclpy and rosbags share them), rows padded by `pad` bytes."""
    rows = array.reshape(array.shape[0], -1).view(np.uint8)
    data = np.concatenate([rows, np.zeros((rows.shape[0], pad), np.uint8)], axis=1)
    return SimpleNamespace(encoding=encoding, height=array.shape[0], width=array.shape[1],
                           step=data.shape[1], is_bigendian=0, data=data.tobytes())


def test_messages_in_converted_encodings_reach_the_estimator_as_8bit():
    rgb = smooth_rgb()
    msg = fake_image_msg(mosaic(rgb, "grbg"), "bayer_grbg8", pad=16)
    image, encoding = input_image_to_numpy(msg)
    assert encoding == "rgb8" and image.shape == rgb.shape
    assert np.abs(image[8:-2, 8:-2].astype(int) - rgb[8:-2, 8:-2]).mean() < 3
    yuyv = np.zeros((4, 6, 2), np.uint8)
    image, encoding = input_image_to_numpy(fake_image_msg(yuyv, "yuyv"))
    assert encoding == "rgb8" and image.shape == (4, 6, 3)
    with pytest.raises(MessageError) as err:
        input_image_to_numpy(fake_image_msg(np.zeros((4, 5, 2), np.uint8), "yuv422"))
    assert err.value.kind == "encoding"
    with pytest.raises(MessageError, match="bayer_rggb8"):   # listed among the accepted ones
        input_image_to_numpy(fake_image_msg(np.zeros((4, 4), np.float32), "32FC1"))
    assert set(CONVERTED) >= {"yuv422", "yuv422_yuy2", "bayer_rggb8", "mono16"}


def test_estimator_depth_from_a_mosaic_equals_depth_from_its_demosaiced_image():
    est = DepthEstimator(EstimatorOptions(num_threads=1), say=lambda _msg: None)
    rgb = smooth_rgb(96, 128)
    raw = mosaic(rgb, "rggb")
    demosaiced, _ = to_native(raw, "bayer_rggb8")
    depth_raw = est.estimate(raw, "bayer_rggb8")
    depth_rgb = est.estimate(demosaiced, "rgb8")
    assert depth_raw.shape == (96, 128)
    np.testing.assert_array_equal(depth_raw, depth_rgb)


def test_16bit_png_compressed_images_are_stretched_too():
    import cv2

    from lsmdepth_ros.ros.conversions import compressed_to_numpy

    thermal = np.random.default_rng(1).integers(2000, 3000, (20, 30)).astype(np.uint16)
    _, png = cv2.imencode(".png", thermal)
    image, encoding = compressed_to_numpy(SimpleNamespace(data=png.tobytes(), format="png"))
    assert encoding == "mono8"
    np.testing.assert_array_equal(image, stretch_to_8bit(thermal))
    # and independently of the helper: linear from zero, the 99.9th percentile at white
    expected = np.clip(np.round(thermal * (255.0 / np.percentile(thermal, 99.9))), 0, 255)
    assert np.abs(image.astype(int) - expected).max() <= 1
