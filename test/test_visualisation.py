"""One colour map: the node's picture, the PNG/plot RGB and the trainer's tensors agree."""
import numpy as np
import pytest
import torch

from lsmdepth_ros.visualisation import (
    COLORMAPS,
    colorize_depth,
    colorize_depth_rgb,
    colorize_tensor,
    colormap_table,
)


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_tensor_png_and_node_colours_are_the_same_table(name):
    table = colormap_table(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8
    assert len({tuple(c) for c in table}) > 100          # a real ramp, not a constant
    # limits 0.5..1 m map inverse depth 1..2 onto levels 0..255: level k + 0.5 lands on k
    levels = np.arange(256)
    depth = (1.0 / (1.0 + (levels + 0.5) / 255.0)).astype(np.float32)[None, :]
    bgr = colorize_depth(depth, name, vmin=0.5, vmax=1.0)
    assert np.array_equal(bgr[0, :, ::-1], table[levels])
    assert np.array_equal(colorize_depth_rgb(depth, 0.5, 1.0, name), bgr[..., ::-1])
    values = torch.linspace(0, 1, 256).reshape(1, 1, 1, 256)
    rgb = colorize_tensor(values, name)
    assert rgb.shape == (1, 3, 1, 256)
    assert np.allclose(rgb[0, :, 0].T.numpy() * 255, table, atol=1e-3)
