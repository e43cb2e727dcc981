"""The one definition of every network; the node, the trainer and the exporter all build here.

    model = build_depth_model("lsmdepth", height=192, width=640)
    disp = model(images)[("disp", 0)]        # images [B,3,H,W] RGB in [0,1]; sigmoid disparity

Registered depth models: ``lsmdepth`` (default), ``lsmdepth-official``, ``lite-mono``,
``lite-mono-small``, ``lite-mono-tiny``, ``lite-mono-8m`` (3 output scales), ``dna-depth-b0``,
``dna-depth-b1`` (EfficientNet + neighbour aggregation, 4 scales) and ``monodepth2-r18``,
``monodepth2-r50`` (ResNet + monodepth2's decoder, 4 scales). Every model is fully convolutional:
``height``/``width`` (multiples of 32) pick the dilation table and are recorded in ``.options``
as the training/deployment size, but any multiple of 32 runs.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .decoder import DepthDecoder
from .dnadepth import DNA_VARIANTS, build_dna_depth
from .litemono import DILATION_TABLES, LITE_MONO_VARIANTS, LiteMonoEncoder
from .lsmdepth import LEGACY_DOWNSAMPLE, LEGACY_MLP_RATIOS, LSMDepthEncoder
from .lsmdepth_official import (
    OFFICIAL_VARIANTS,
    OfficialLSMDepthDecoder,
    official_encoder,
)
from .monodepth2 import ResnetEncoder, monodepth2_decoder
from .pose import PoseNet

DEFAULT_MODEL = "lsmdepth"
NUM_SCALES = 3
SIZE_MULTIPLE = 32


@dataclass
class DepthModelOptions:
    """Options every depth model takes."""
    height: int = 192
    width: int = 640
    drop_path_rate: float = 0.2     # stochastic depth in training; identity in eval
    dilations: str = "auto"         # "auto" | "640x192" | "1024x320" (see litemono docstring)


@dataclass
class LSMDepthOptions(DepthModelOptions):
    deformable_blocks: int = 2      # deformable local blocks at the end of the 1/16 stage
    mlp_ratios: tuple[int, int, int] = (3, 4, 6)  # MLP expansion per stage (see lsmdepth.py)
    downsample: str = "3x3"         # kernel of the stride-2 convs between stages: "3x3" | "2x2"


@dataclass
class OfficialLSMDepthOptions(DepthModelOptions):
    variant: str = "light"          # the official --model: light (published); light-s/-t/-m use
    #                                 Lite-Mono's widths (named by the official options only)


@dataclass
class DNADepthOptions:
    """DNA-Depth options (no dilation table: the EfficientNet encoder has none)."""
    height: int = 192
    width: int = 640
    drop_path_rate: float = 0.2     # EfficientNet stochastic depth (the reference's 0.2)
    decoder_dropout: float = 0.5    # dropout on the two deepest levels, as the reference


@dataclass
class Monodepth2Options:
    """monodepth2 options: only the input size (the ResNet has no dilation table or drop path)."""
    height: int = 192
    width: int = 640


class DepthModel(nn.Module):
    """Encoder + decoder. ``forward(images)`` -> {("disp", s): [B,1,H/2^s,W/2^s]} in (0, 1)."""

    def __init__(self, name: str, options: DepthModelOptions, encoder: nn.Module,
                 decoder: nn.Module):
        super().__init__()
        self.name = name
        self.options = dataclasses.asdict(options)
        self.encoder = encoder
        self.decoder = decoder
        self.num_scales = decoder.num_scales

    def forward(self, images: torch.Tensor) -> dict[tuple, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name} expects images [B,3,H,W] (RGB, float in [0,1]); "
                             f"got shape {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE:
            raise ValueError(f"{self.name}: image size {w}x{h} is not a multiple of "
                             f"{SIZE_MULTIPLE}; resize to e.g. {self.options['width']}x"
                             f"{self.options['height']} first")
        return self.decoder(self.encoder(images))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, options={self.options}"


def _lite_mono(variant: str) -> Callable[[DepthModelOptions], tuple[nn.Module, nn.Module]]:
    def build(o: DepthModelOptions):
        enc = LiteMonoEncoder(variant, o.height, o.width, o.drop_path_rate, o.dilations)
        return enc, DepthDecoder(enc.num_ch_enc, NUM_SCALES)
    return build


def _lsmdepth(o: LSMDepthOptions):
    enc = LSMDepthEncoder(o.height, o.width, o.drop_path_rate, o.dilations, o.deformable_blocks,
                          mlp_ratios=tuple(o.mlp_ratios), downsample=o.downsample)
    return enc, DepthDecoder(enc.num_ch_enc, NUM_SCALES, skip_attention=True)


def _lsmdepth_official(o: OfficialLSMDepthOptions):
    enc = official_encoder(o.variant, o.height, o.width, o.drop_path_rate, o.dilations)
    return enc, OfficialLSMDepthDecoder(enc.num_ch_enc, NUM_SCALES)


def _monodepth2(num_layers: int) -> Callable[[Monodepth2Options], tuple[nn.Module, nn.Module]]:
    def build(o: Monodepth2Options):
        enc = ResnetEncoder(num_layers)
        return enc, monodepth2_decoder(enc.num_ch_enc)
    return build


def _dna_depth(variant: str) -> Callable[[DNADepthOptions], tuple[nn.Module, nn.Module]]:
    def build(o: DNADepthOptions):
        return build_dna_depth(variant, o.drop_path_rate, o.decoder_dropout)
    return build


_REGISTRY: dict[str, tuple[type, Callable]] = {
    "lsmdepth": (LSMDepthOptions, _lsmdepth),
    "lsmdepth-official": (OfficialLSMDepthOptions, _lsmdepth_official),
    **{name: (DepthModelOptions, _lite_mono(name)) for name in LITE_MONO_VARIANTS},
    **{name: (DNADepthOptions, _dna_depth(name)) for name in DNA_VARIANTS},
    "monodepth2-r18": (Monodepth2Options, _monodepth2(18)),
    "monodepth2-r50": (Monodepth2Options, _monodepth2(50)),
}


# Options added after checkpoints were already saved: a file without them was trained with these
# values, so they (not today's defaults) rebuild its network.
_SAVED_BEFORE_OPTION: dict[str, dict] = {
    "lsmdepth": {"mlp_ratios": LEGACY_MLP_RATIOS, "downsample": LEGACY_DOWNSAMPLE},
}


def saved_model_options(name: str, options: dict) -> dict:
    """A checkpoint's recorded options, completed with the values older files were built with."""
    return {**_SAVED_BEFORE_OPTION.get(name, {}), **options}


def available_models() -> list[str]:
    return list(_REGISTRY)


def model_options_type(name: str) -> type:
    """The options dataclass of a registered model (for CLI flags and configs)."""
    _check_name(name)
    return _REGISTRY[name][0]


def _check_name(name: str) -> None:
    if name not in _REGISTRY:
        raise ValueError(f"unknown depth model {name!r}; available: {', '.join(_REGISTRY)}")


def build_depth_model(name: str = DEFAULT_MODEL, height: int = 192, width: int = 640,
                      **options) -> DepthModel:
    """Build a registered depth model (randomly initialised; load weights with checkpoints)."""
    _check_name(name)
    options_type, build = _REGISTRY[name]
    allowed = {f.name for f in dataclasses.fields(options_type)} - {"height", "width"}
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {sorted(unknown)}; accepted: {sorted(allowed)}")
    for label, value in (("height", height), ("width", width)):
        if not isinstance(value, int) or value <= 0 or value % SIZE_MULTIPLE:
            raise ValueError(f"{name}: {label}={value!r} must be a positive multiple of "
                             f"{SIZE_MULTIPLE} (e.g. 192x640)")
    if options.get("dilations", "auto") not in DILATION_TABLES:
        raise ValueError(f"{name}: dilations={options['dilations']!r}; expected one of "
                         f"{DILATION_TABLES}")
    if name == "lsmdepth-official" and options.get("variant", "light") not in OFFICIAL_VARIANTS:
        raise ValueError(f"{name}: variant={options['variant']!r}; expected one of "
                         f"{sorted(OFFICIAL_VARIANTS)}")
    opts = options_type(height=height, width=width, **options)
    encoder, decoder = build(opts)
    return DepthModel(name, opts, encoder, decoder)


def build_pose_model(**options) -> PoseNet:
    """PoseNet (ResNet-18 on stacked frames); options: num_input_frames=2, output_scale=0.01."""
    return PoseNet(**options)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "DEFAULT_MODEL", "DNADepthOptions", "DepthModel", "DepthModelOptions", "LSMDepthOptions",
    "Monodepth2Options", "OfficialLSMDepthOptions", "PoseNet", "available_models",
    "build_depth_model", "build_pose_model", "count_parameters", "model_options_type",
    "saved_model_options",
]
