"""Camera sensor effects: exposure, white balance, vignetting, blur, noise, tone curve, JPEG.

A `SensorModel` is drawn once per drive (it is the camera's); the noise is drawn per frame from
the frame's own seed, so a frame renders the same way every time. Effects change the image only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SensorModel:
    exposure: float          # gain on the scene radiance
    white_balance: tuple     # RGB gains (camera's wrong guess of the illuminant)
    gamma: float             # tone-curve exponent (contrast / response of the camera)
    vignetting: float        # brightness loss in the corners (0: none)
    blur_sigma: float        # Gaussian blur [px] (focus, optics); 0: sharp
    motion_blur: int         # horizontal motion-blur kernel length [px]; 0/1: none
    read_noise: float        # Gaussian noise std (in [0, 1] intensity units)
    shot_noise: float        # signal-dependent noise: std = sqrt(shot_noise * intensity)
    jpeg_quality: int        # 0: no JPEG round trip


NO_EFFECTS = SensorModel(1.0, (1.0, 1.0, 1.0), 1.0, 0.0, 0.0, 0, 0.0, 0.0, 0)


def sample_sensor(rng: np.random.Generator) -> SensorModel:
    wb = rng.uniform(0.85, 1.15, 3)
    wb[1] = 1.0
    return SensorModel(
        exposure=float(2.0 ** rng.uniform(-0.8, 0.6)),
        white_balance=tuple(float(v) for v in wb),
        gamma=float(rng.uniform(0.8, 1.25)),
        vignetting=float(rng.uniform(0.0, 0.45) if rng.random() < 0.6 else 0.0),
        blur_sigma=float(rng.uniform(0.3, 1.3) if rng.random() < 0.5 else 0.0),
        motion_blur=int(rng.integers(3, 8) if rng.random() < 0.15 else 0),
        read_noise=float(rng.uniform(0.0, 0.02)),
        shot_noise=float(rng.uniform(0.0, 0.01)),
        jpeg_quality=int(rng.integers(35, 96) if rng.random() < 0.6 else 0),
    )


def apply_sensor(rgb: np.ndarray, sensor: SensorModel, rng: np.random.Generator) -> np.ndarray:
    """Scene colour float32 [H, W, 3] (about [0, 1]) -> the camera's uint8 image."""
    import cv2

    img = rgb.astype(np.float32) * np.float32(sensor.exposure)
    img *= np.asarray(sensor.white_balance, np.float32)
    h, w = img.shape[:2]
    if sensor.vignetting > 0:
        y, x = np.ogrid[:h, :w]
        r2 = ((x - (w - 1) / 2) / (w / 2)) ** 2 + ((y - (h - 1) / 2) / (w / 2)) ** 2
        img *= (1 - sensor.vignetting * r2 / r2.max()).astype(np.float32)[..., None]
    if sensor.blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), sensor.blur_sigma)
    if sensor.motion_blur > 1:
        kernel = np.full((1, sensor.motion_blur), 1.0 / sensor.motion_blur, np.float32)
        img = cv2.filter2D(img, -1, kernel, borderType=cv2.BORDER_REFLECT)
    np.clip(img, 0.0, 1.0, out=img)
    if sensor.read_noise > 0 or sensor.shot_noise > 0:
        std = np.sqrt(sensor.read_noise ** 2 + sensor.shot_noise * img)
        img += std * rng.standard_normal(img.shape, dtype=np.float32)
        np.clip(img, 0.0, 1.0, out=img)
    img = img ** np.float32(1.0 / sensor.gamma)
    out = np.round(img * 255.0).astype(np.uint8)
    if sensor.jpeg_quality > 0:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY,
                                                         sensor.jpeg_quality])
        if not ok:
            raise RuntimeError("OpenCV could not JPEG-encode a rendered frame")
        out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    return out
