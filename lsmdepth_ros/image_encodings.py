"""Camera encodings beyond 8-bit RGB / BGR / mono, as real ROS camera drivers publish them.

- packed YUV 4:2:2 from UVC webcams (`v4l2_camera`, `usb_cam` without conversion): ``yuv422``
  and its newer name ``uyvy`` (byte order U Y0 V Y1), ``yuv422_yuy2`` and ``yuyv``
  (Y0 U Y1 V);
- raw Bayer mosaics from machine-vision cameras that do not debayer on board:
  ``bayer_{rggb,bggr,gbrg,grbg}{8,16}`` (the pattern names the 2x2 tile from the top-left pixel);
- 16-bit images (thermal and machine-vision cameras, 10/12/14-bit sensors in 16-bit words):
  ``mono16``, ``rgb16``, ``bgr16``, ``rgba16``, ``bgra16``;
- OpenCV type names some drivers use: ``8UC1`` (mono8), ``8UC3`` (bgr8, as cv_bridge reads it),
  ``8UC4`` (bgra8).

`to_native` turns any of them into one of the estimator's native 8-bit encodings at the camera's
resolution: a mosaic or packed chroma cannot be resized pixel by pixel, so this runs before the
network's resize. 16-bit data is stretched to 8 bits by its own bright end (the 99.9th
percentile of a sparse sample maps to 255), because the same container holds 10-bit to 16-bit
sensors: a fixed divide by 256 would leave a 12-bit camera's image almost black.
Everything is numpy + OpenCV: no torch, no ROS.
"""
from __future__ import annotations

import cv2
import numpy as np

# encoding -> (dtype, channels, cv2 code to RGB or None, native encoding after the code)
_BAYER = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
          "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}
# OpenCV names a Bayer pattern by the second row's second and third pixels, ROS by the first
# row's first two: ROS rggb (R G / G B) is OpenCV's BG. Checked in test_image_encodings against
# a mosaic built from the ROS definition.
CONVERTED: dict[str, tuple[np.dtype, int, int | None, str]] = {
    "yuv422": (np.dtype(np.uint8), 2, cv2.COLOR_YUV2RGB_UYVY, "rgb8"),
    "uyvy": (np.dtype(np.uint8), 2, cv2.COLOR_YUV2RGB_UYVY, "rgb8"),
    "yuv422_yuy2": (np.dtype(np.uint8), 2, cv2.COLOR_YUV2RGB_YUY2, "rgb8"),
    "yuyv": (np.dtype(np.uint8), 2, cv2.COLOR_YUV2RGB_YUY2, "rgb8"),
    **{f"bayer_{p}8": (np.dtype(np.uint8), 1, code, "rgb8") for p, code in _BAYER.items()},
    **{f"bayer_{p}16": (np.dtype(np.uint16), 1, code, "rgb8") for p, code in _BAYER.items()},
    "mono16": (np.dtype(np.uint16), 1, None, "mono8"),
    "rgb16": (np.dtype(np.uint16), 3, None, "rgb8"),
    "bgr16": (np.dtype(np.uint16), 3, None, "bgr8"),
    "rgba16": (np.dtype(np.uint16), 4, None, "rgba8"),
    "bgra16": (np.dtype(np.uint16), 4, None, "bgra8"),
    "8UC1": (np.dtype(np.uint8), 1, None, "mono8"),
    "8UC3": (np.dtype(np.uint8), 3, None, "bgr8"),
    "8UC4": (np.dtype(np.uint8), 4, None, "bgra8"),
}

_STRETCH_PERCENTILE = 99.9
_STRETCH_SAMPLES = 20000


def stretch_to_8bit(image: np.ndarray) -> np.ndarray:
    """uint16 -> uint8, linearly, with the 99.9th percentile of a sparse sample at 255."""
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / _STRETCH_SAMPLES)))
    sample = image[::step, ::step].reshape(-1)
    top = float(np.percentile(sample, _STRETCH_PERCENTILE)) if sample.size else 0.0
    return cv2.convertScaleAbs(image, alpha=255.0 / max(top, 1.0))


def converted_shape(encoding: str) -> tuple[np.dtype, int]:
    """(dtype, channels) of a message in a CONVERTED encoding (yuv422: 2 bytes per pixel)."""
    dtype, channels, _, _ = CONVERTED[encoding]
    return dtype, channels


def to_native(image: np.ndarray, encoding: str) -> tuple[np.ndarray, str]:
    """An image in a CONVERTED encoding -> (uint8 image, native encoding); others unchanged."""
    if encoding not in CONVERTED:
        return image, encoding
    dtype, channels, code, native = CONVERTED[encoding]
    shape_ok = (image.ndim == 2 and channels == 1) or (image.ndim == 3 and image.shape[2] == channels)
    if image.dtype != dtype or not shape_ok:
        raise ValueError(f"{encoding} image must be {dtype} HxW{'' if channels == 1 else f'x{channels}'}"
                         f", got {image.dtype} {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape}); expected a non-zero size")
    if channels == 2 and image.shape[1] % 2:
        raise ValueError(f"{encoding} packs two pixels in four bytes: the width must be even, "
                         f"got {image.shape[1]}")
    out = stretch_to_8bit(image) if dtype == np.uint16 else image
    if code is not None:
        out = cv2.cvtColor(np.ascontiguousarray(out), code)
    return np.ascontiguousarray(out), native
