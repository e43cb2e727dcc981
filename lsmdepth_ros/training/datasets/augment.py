"""Training-time augmentation as in monodepth2: colour jitter and horizontal flips; optionally
grey inputs (`grayscale_prob`, off by default): the network input of the whole sample becomes
its BT.601 luma, replicated to three channels, as the node feeds a mono8 camera.

Colour jitter (brightness, contrast, saturation 0.2, hue 0.1) is applied with probability 0.5,
with ONE set of jitter parameters per sample so every frame of the sample changes alike. As in
monodepth2 it only produces the "color_aug" images fed to the networks; the photometric loss
compares the un-jittered "color" images.

Flips (probability 0.5) mirror every image of the sample. monodepth2 keeps K unchanged on a flip,
which is exact only when cx = (W - 1) / 2; here the principal point is mirrored exactly,
cx' = (W - 1) - cx (see `flip_intrinsics`), the depth map is mirrored and a ground-truth relative
pose T becomes F T F with F = diag(-1, 1, 1, 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class AugmentOptions:
    """monodepth2's defaults."""

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1
    color_prob: float = 0.5
    flip_prob: float = 0.5
    grayscale_prob: float = 0.0


_MIRROR = np.diag([-1.0, 1.0, 1.0, 1.0])
#: BT.601 luma weights (OpenCV's RGB2GRAY, what a mono8 image carries)
LUMA = torch.tensor([0.299, 0.587, 0.114])


def flip_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """Principal point of a horizontally mirrored image (pixel-centre convention)."""
    K = np.array(K, dtype=np.float64, copy=True)
    K[0, 2] = (width - 1) - K[0, 2]
    return K


def flip_pose(T: np.ndarray) -> np.ndarray:
    """A relative camera motion seen in mirrored images: F T F, F = diag(-1, 1, 1, 1)."""
    return _MIRROR @ np.asarray(T, np.float64) @ _MIRROR


class ColorAugment:
    """Draws one torchvision ColorJitter parameter set and applies it to any number of images."""

    def __init__(self, options: AugmentOptions, rng: np.random.Generator):
        from torchvision.transforms import ColorJitter

        self.enabled = rng.random() < options.color_prob
        # drawn only when asked for, so that runs without it keep their random streams
        self.grey = options.grayscale_prob > 0 and rng.random() < options.grayscale_prob
        if not self.enabled:
            return
        # torchvision draws from torch's global RNG; seed it from our per-sample generator so
        # that samples are reproducible under the DataLoader's worker seeding
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(int(rng.integers(2 ** 31)))
        jitter = ColorJitter(options.brightness, options.contrast, options.saturation, options.hue)
        self.params = ColorJitter.get_params(jitter.brightness, jitter.contrast,
                                             jitter.saturation, jitter.hue)
        torch.random.set_rng_state(gen_state)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """image: float [3, H, W] in [0, 1]."""
        if self.enabled:
            image = self._jitter(image)
        if self.grey:
            luma = (LUMA.to(image.dtype)[:, None, None] * image).sum(0, keepdim=True)
            image = luma.expand_as(image).contiguous()
        return image

    def _jitter(self, image: torch.Tensor) -> torch.Tensor:
        import torchvision.transforms.functional as TF

        order, b, c, s, h = self.params
        for fn in order.tolist():
            if fn == 0 and b is not None:
                image = TF.adjust_brightness(image, b)
            elif fn == 1 and c is not None:
                image = TF.adjust_contrast(image, c)
            elif fn == 2 and s is not None:
                image = TF.adjust_saturation(image, s)
            elif fn == 3 and h is not None:
                image = TF.adjust_hue(image, h)
        return image
