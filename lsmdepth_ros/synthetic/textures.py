"""Albedo textures of the synthetic world: skimage's photos and tileable procedural noise.

Textures are mapped in WORLD coordinates and mip-mapped (one flat float32 atlas), so a surface
point has the same colour in every frame and distant surfaces do not alias.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TEX_SIZE = 256


def _tileable_noise(rng: np.random.Generator, size: int, beta: float) -> np.ndarray:
    """Periodic 1/f^beta noise in [0, 1] (periodic so that world-space tiling has no seams)."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** beta
    spectrum[0, 0] = 0
    img = np.fft.irfft2(spectrum, s=(size, size))
    img = (img - img.min()) / (img.max() - img.min())
    return img


def _paving(rng: np.random.Generator, size: int) -> np.ndarray:
    noise = _tileable_noise(rng, size, 1.2)
    tiles = 4
    u = (np.arange(size) * tiles / size) % 1.0
    joints = (np.minimum(u, 1 - u) < 0.03)
    grid = joints[None, :] | joints[:, None]
    return np.where(grid, 0.25, 0.55 + 0.45 * noise)


def _photo(name: str, size: int) -> np.ndarray:
    import cv2
    import skimage.data

    img = getattr(skimage.data, name)().astype(np.float32) / 255.0
    if img.ndim == 3:
        img = img.mean(axis=2)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Atlas:
    flat: np.ndarray      # all mip levels of all textures, flattened, float32, mean ~1
    offsets: np.ndarray   # [T, L] start of (texture, level) in flat
    sizes: np.ndarray     # [L] side length of level l
    levels: int


def _mirror_tile(img: np.ndarray, size: int) -> np.ndarray:
    """A photo made seamless for world-space tiling: mirrored into a 2x2 block, then resized."""
    import cv2

    block = np.block([[img, img[:, ::-1]], [img[::-1], img[::-1, ::-1]]])
    return cv2.resize(block, (size, size), interpolation=cv2.INTER_AREA)


def _photo_mirrored(name: str, size: int) -> np.ndarray:
    return _mirror_tile(_photo(name, size), size)


def _planks(rng: np.random.Generator, size: int) -> np.ndarray:
    """Wooden floor boards: grain along u, boards of random shade, dark joints."""
    grain = _tileable_noise(rng, size, 1.6)
    v = np.arange(size)
    boards = 8
    shade = rng.uniform(0.6, 1.0, boards)[(v * boards) // size]
    joint = ((v * boards) % size) < 3
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (np.arange(size)[None, :] / size * 4 + 6 * grain))
    img = shade[:, None] * (0.75 + 0.25 * wave)
    return np.where(joint[:, None], 0.2, img)


def _tiles(rng: np.random.Generator, size: int, tiles: int) -> np.ndarray:
    noise = _tileable_noise(rng, size, 2.0)
    u = (np.arange(size) * tiles / size) % 1.0
    joints = np.minimum(u, 1 - u) < 0.04
    grid = joints[None, :] | joints[:, None]
    return np.where(grid, 0.35, 0.85 + 0.15 * noise)


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    u = np.arange(size) / size
    period = int(rng.integers(4, 12))
    band = (np.sin(2 * np.pi * u * period) > 0).astype(np.float64)
    return (0.6 + 0.4 * band)[None, :] * (0.9 + 0.1 * _tileable_noise(rng, size, 1.0))


def _checker(size: int, cells: int) -> np.ndarray:
    c = (np.arange(size) * cells // size) % 2
    return 0.3 + 0.7 * (c[None, :] ^ c[:, None])


#: The classic street drive's textures (indices used by scenes._MATERIALS), then the world's.
CLASSIC_TEXTURES = ("gravel", "grass", "brick", "noise", "paving", "noise_fine")
WORLD_TEXTURES = CLASSIC_TEXTURES + (
    "camera", "moon", "coffee", "chelsea", "rocket", "astronaut", "page", "coins",
    "planks", "tiles", "tiles_small", "stripes", "checker", "carpet", "concrete")


def _make_textures(names: tuple[str, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(20240607)  # textures are fixed; only the layout depends on seed
    size = TEX_SIZE
    makers = {
        "gravel": lambda: _photo("gravel", size),
        "grass": lambda: _photo("grass", size),
        "brick": lambda: _photo("brick", size),
        "noise": lambda: _tileable_noise(rng, size, 1.0),
        "paving": lambda: _paving(rng, size),
        "noise_fine": lambda: _tileable_noise(rng, size, 0.7),
        "planks": lambda: _planks(rng, size),
        "tiles": lambda: _tiles(rng, size, 4),
        "tiles_small": lambda: _tiles(rng, size, 16),
        "stripes": lambda: _stripes(rng, size),
        "checker": lambda: _checker(size, 8),
        "carpet": lambda: _tileable_noise(rng, size, 0.3),
        "concrete": lambda: 0.7 * _tileable_noise(rng, size, 1.5)
        + 0.3 * _tileable_noise(rng, size, 0.5),
    }
    # photos other than the three ground textures are seamless mirrored tiles
    return [makers[n]() if n in makers else _photo_mirrored(n, size) for n in names]


def build_atlas(textures: list[np.ndarray]) -> Atlas:
    """Mip-mapped atlas of square power-of-two textures, each normalised to mean 1."""
    size = textures[0].shape[0]
    levels = int(np.log2(size)) - 1  # down to 4x4
    flat, offsets, sizes = [], np.zeros((len(textures), levels), np.int64), []
    pos = 0
    for t, tex in enumerate(textures):
        level = (tex / tex.mean()).astype(np.float32)
        for lv in range(levels):
            if t == 0:
                sizes.append(level.shape[0])
            offsets[t, lv] = pos
            flat.append(level.ravel())
            pos += level.size
            level = 0.25 * (level[0::2, 0::2] + level[1::2, 0::2] + level[0::2, 1::2]
                            + level[1::2, 1::2])
    return Atlas(np.concatenate(flat), offsets, np.array(sizes, np.int64), levels)


@lru_cache(maxsize=1)
def texture_atlas() -> Atlas:
    """The classic drive's six textures (gravel, grass, brick photos; noise; paving; noise)."""
    return build_atlas(_make_textures(CLASSIC_TEXTURES))


@lru_cache(maxsize=1)
def world_atlas() -> Atlas:
    """Every texture of WORLD_TEXTURES (index = position in that tuple)."""
    return build_atlas(_make_textures(WORLD_TEXTURES))


def sky_gradient(d: np.ndarray, horizon, zenith, atlas: Atlas):
    """Sky seen along world directions d [N, 3] (y down): (colour [N, 3] float64 from the
    horizon / zenith gradient, cloud texture [N] around 1, unit directions [N, 3])."""
    n = d / np.linalg.norm(d, axis=1, keepdims=True)
    elevation = np.clip(-n[:, 1], 0.0, 1.0)
    azimuth = np.arctan2(n[:, 0], n[:, 2])
    w = np.sqrt(elevation)[:, None]
    base = (1 - w) * np.asarray(horizon) + w * np.asarray(zenith)
    clouds = sample_texture(atlas, np.full(n.shape[0], 3), np.full(n.shape[0], 2),
                            azimuth * 300.0, elevation * 600.0)
    return base, clouds, n


def sample_texture(atlas: Atlas, tex: np.ndarray, level: np.ndarray, a: np.ndarray,
                   b: np.ndarray) -> np.ndarray:
    """Bilinear, wrapping lookup at (a, b) in level-0 texels of texture `tex` at mip `level`."""
    size = atlas.sizes[level]          # powers of two: wrap with a bit mask
    mask = size - 1
    scale = np.ldexp(np.float32(1.0), -level.astype(np.int32)).astype(np.float32)
    x = a * scale - 0.5
    y = b * scale - 0.5
    x0f = np.floor(x)
    y0f = np.floor(y)
    fx = x - x0f
    fy = y - y0f
    x0 = x0f.astype(np.int64) & mask
    y0 = y0f.astype(np.int64) & mask
    x1 = (x0 + 1) & mask
    y1 = (y0 + 1) & mask
    base = atlas.offsets[tex, level]
    r0 = base + y0 * size
    r1 = base + y1 * size
    f = atlas.flat
    top = f.take(r0 + x0) * (1 - fx) + f.take(r0 + x1) * fx
    bot = f.take(r1 + x0) * (1 - fx) + f.take(r1 + x1) * fx
    return top * (1 - fy) + bot * fy
