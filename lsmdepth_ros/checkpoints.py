"""Checkpoints: one file that names its model and options, so it alone rebuilds the network.

File layout (a ``torch.save`` dict, read back with ``weights_only=True``, never full pickle)::

    {"format": "lsmdepth_ros.checkpoint", "version": 1, "model": "lsmdepth",
     "options": {"height": 192, "width": 640, ...}, "state_dict": {...},
     "min_depth": 0.1, "max_depth": 100.0, "extra": {...}}

``load_checkpoint`` also accepts an official Lite-Mono / LSMDepth / monodepth2 weights folder
(``encoder.pth`` + ``depth.pth``, as their trainers write them); the kind and variant are
recognised from the keys and shapes, the input size read from ``encoder.pth``.
"""
from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic_files import atomic_path
from .geometry import MAX_DEPTH, MIN_DEPTH
from .networks import (
    DepthModel,
    available_models,
    build_depth_model,
    saved_model_options,
)
from .networks.lsmdepth_official import OFFICIAL_VARIANTS

FORMAT = "lsmdepth_ros.checkpoint"
VERSION = 1
OFFICIAL_MIN_DEPTH, OFFICIAL_MAX_DEPTH = MIN_DEPTH, MAX_DEPTH  # their trainers' defaults


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not match the model it names."""


@dataclass
class CheckpointInfo:
    name: str
    options: dict
    min_depth: float
    max_depth: float
    extra: dict = field(default_factory=dict)
    path: str = ""
    source: str = "lsmdepth_ros"    # or "official" for an encoder.pth/depth.pth folder


def _check_weights_only_safe(value: Any, where: str = "extra") -> None:
    """Reject what ``torch.load(weights_only=True)`` would refuse, at save time."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_weights_only_safe(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} must be a str or int")
            _check_weights_only_safe(item, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where} has a {type(value).__name__}; checkpoints only store tensors, "
                    "numbers, strings, lists and dicts (convert it, e.g. with .tolist() or str())")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *,
                    min_depth: float = MIN_DEPTH, max_depth: float = MAX_DEPTH, extra: Mapping | None = None) -> Path:
    """Write ``model`` (a ``build_depth_model`` result) atomically; returns the path."""
    name, options = getattr(model, "name", None), getattr(model, "options", None)
    if name not in available_models() or not isinstance(options, dict):
        raise TypeError("save_checkpoint needs a model from networks.build_depth_model (with "
                        f".name and .options); got {type(model).__name__}")
    if not (0 < min_depth < max_depth and math.isfinite(max_depth)):
        raise ValueError(f"need 0 < min_depth < max_depth < inf, got {min_depth}, {max_depth}")
    extra = dict(extra or {})
    _check_weights_only_safe(extra)
    payload = {
        "format": FORMAT, "version": VERSION, "model": name, "options": dict(options),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "min_depth": float(min_depth), "max_depth": float(max_depth), "extra": extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _torch_load(path: Path, map_location) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a damaged file can fail anywhere in the unpickler/zip reader
        # torch's own unpickling message suggests weights_only=False: never repeat that advice.
        detail = "" if isinstance(exc, pickle.UnpicklingError) else f": {str(exc).splitlines()[0]}"
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(exc).__name__}{detail}). The file is truncated, "
            "corrupt, or not a weights-only PyTorch file; write it again with "
            "lsmdepth_ros.checkpoints.save_checkpoint (or download it again).") from exc


def _load_state(module: nn.Module, state: Mapping, origin: str, model_name: str) -> None:
    def head(keys):
        return ", ".join(keys[:5]) + (f" ... (+{len(keys) - 5})" if len(keys) > 5 else "")

    expected = module.state_dict()
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
             for k, v in state.items()
             if k in expected and isinstance(v, torch.Tensor) and v.shape != expected[k].shape]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{origin}: weights do not match model {model_name}: "
            f"missing {len(missing)} key(s) [{head(missing)}], "
            f"unexpected {len(unexpected)} [{head(unexpected)}]"
            + (f", wrong shape {len(wrong)} [{head(wrong)}]" if wrong else "")
            + ". Was it saved for another model or version?")
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:  # e.g. a value that is not a tensor
        raise CheckpointError(f"{origin}: cannot load into {model_name}: "
                              f"{str(exc).splitlines()[-1].strip()}") from exc


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> tuple[DepthModel, CheckpointInfo]:
    """Rebuild the model a checkpoint names and load its weights (eval mode).

    ``path`` is a ``save_checkpoint`` file or an official Lite-Mono / LSMDepth / monodepth2
    folder with ``encoder.pth`` and ``depth.pth``. Raises ``CheckpointError`` with the reason otherwise.
    """
    path = Path(path)
    if path.is_dir():
        return _load_official_folder(path, map_location)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}. Expected a .pt file written by "
                              "`lsmdepth train` / save_checkpoint, or an official weights folder "
                              "with encoder.pth and depth.pth.")
    payload = _torch_load(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if isinstance(payload, dict) and "height" in payload and "width" in payload:
            raise CheckpointError(f"{path} looks like an official encoder.pth; pass the folder "
                                  "that holds encoder.pth and depth.pth instead")
        raise CheckpointError(f"{path} is not an lsmdepth_ros checkpoint (no '{FORMAT}' header)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload['version']}; this "
                              f"lsmdepth_ros reads up to {VERSION}: upgrade the package")
    name, options = payload.get("model"), dict(payload.get("options") or {})
    if name not in available_models():
        raise CheckpointError(f"{path} names model {name!r}, which this version does not know "
                              f"(available: {', '.join(available_models())})")
    try:
        model = build_depth_model(name, **saved_model_options(name, options))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild {name} with options {options}: {exc}") from exc
    _load_state(model, payload.get("state_dict") or {}, str(path), name)
    info = CheckpointInfo(name=name, options=dict(model.options),
                          min_depth=float(payload.get("min_depth", OFFICIAL_MIN_DEPTH)),
                          max_depth=float(payload.get("max_depth", OFFICIAL_MAX_DEPTH)),
                          extra=dict(payload.get("extra") or {}), path=str(path))
    return model.eval(), info


# --- official weights folders (encoder.pth + depth.pth) ------------------------------------
# The Lite-Mono, LSMDepth and monodepth2 trainers all save a folder with encoder.pth (the encoder
# state dict plus "height", "width", "use_stereo") and depth.pth (the decoder state dict). The
# kind and variant are recognised from the keys and shapes, never from the folder's name.

OFFICIAL_DEFAULT_SIZE = (192, 640)  # every published release's size if encoder.pth omits it
_HYBRID_STEM = "downsample_layers.0.0.conv.weight"
_HYBRID_BY_SHAPE = {  # (stem width, blocks in the 1/16 stage) -> Lite-Mono variant
    (48, 10): "lite-mono", (48, 7): "lite-mono-small", (32, 7): "lite-mono-tiny",
    (64, 10): "lite-mono-8m",
}
_LSMDEPTH_BY_LITE_MONO = {v: k for k, v in OFFICIAL_VARIANTS.items()}
_RESNET_BY_BLOCKS = {  # (blocks in layer1..layer4, bottleneck blocks) -> ResNet depth
    ((2, 2, 2, 2), False): 18, ((3, 4, 6, 3), True): 50,
}


def _has_suffix(state: Mapping, suffix: str) -> bool:
    return any(k.endswith(suffix) for k in state)


def _count_blocks(state: Mapping, prefix: str) -> int:
    """Number of distinct ``<prefix><n>.`` sub-modules (blocks of a stage or ResNet layer)."""
    return len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)})


def _hybrid_variant(state: Mapping, family: str) -> str:
    width = int(state[_HYBRID_STEM].shape[0])
    blocks = _count_blocks(state, "stages.2.")
    variant = _HYBRID_BY_SHAPE.get((width, blocks))
    if variant is None:
        known = ", ".join(f"{w} channels/{b} blocks" for w, b in _HYBRID_BY_SHAPE)
        raise CheckpointError(f"a {family} encoder with {width} stem channels and {blocks} blocks "
                              f"in the last stage, which no released variant has ({known})")
    return variant


def _lite_mono(state: Mapping) -> tuple[str, dict]:
    return _hybrid_variant(state, "Lite-Mono"), {}


def _lsmdepth(state: Mapping) -> tuple[str, dict]:
    variant = _LSMDEPTH_BY_LITE_MONO[_hybrid_variant(state, "LSMDepth")]
    return "lsmdepth-official", {"variant": variant}


def _monodepth2(state: Mapping) -> tuple[str, dict]:
    blocks = tuple(_count_blocks(state, f"encoder.layer{i}.") for i in range(1, 5))
    bottleneck = "encoder.layer1.0.conv3.weight" in state
    depth = _RESNET_BY_BLOCKS.get((blocks, bottleneck))
    if depth is None:
        raise CheckpointError(f"a monodepth2 ResNet encoder with {blocks} blocks per layer "
                              f"({'bottleneck' if bottleneck else 'basic'} blocks); supported: "
                              "ResNet-18 and ResNet-50, the published ones")
    return f"monodepth2-r{depth}", {}


@dataclass(frozen=True)
class OfficialLayout:
    family: str
    marker: str                               # how it is recognised, for people
    matches: Callable[[Mapping], bool]
    identify: Callable[[Mapping], tuple[str, dict]]


OFFICIAL_LAYOUTS = (
    OfficialLayout("LSMDepth (CdpLab/LSMDepth)",
                   f"{_HYBRID_STEM} and stages.*.strip_pool.conv.weight",
                   lambda s: _HYBRID_STEM in s and _has_suffix(s, ".strip_pool.conv.weight"),
                   _lsmdepth),
    OfficialLayout("Lite-Mono (noahzn/Lite-Mono)", f"{_HYBRID_STEM} and stages.*.xca.temperature",
                   lambda s: _HYBRID_STEM in s and _has_suffix(s, ".xca.temperature"),
                   _lite_mono),
    OfficialLayout("monodepth2 (nianticlabs/monodepth2)", "encoder.conv1.weight",
                   lambda s: "encoder.conv1.weight" in s, _monodepth2),
)


def _some_keys(state: Mapping, n: int = 4) -> str:
    keys = [str(k) for k in state]
    return ", ".join(keys[:n]) + (f" ... ({len(keys)} in all)" if len(keys) > n else "")


def identify_official(encoder_state: Mapping, encoder_file: str = "encoder.pth"
                      ) -> tuple[str, dict, str]:
    """(model name, model options, family) of an official encoder state dict."""
    for layout in OFFICIAL_LAYOUTS:
        if layout.matches(encoder_state):
            try:
                name, options = layout.identify(encoder_state)
            except CheckpointError as exc:
                raise CheckpointError(f"{encoder_file}: {exc}") from None
            return name, options, layout.family
    tried = "; ".join(f"{lay.family}: {lay.marker}" for lay in OFFICIAL_LAYOUTS)
    raise CheckpointError(
        f"{encoder_file}: not an encoder of a known layout. Tried {tried}. Found "
        f"{len(encoder_state)} entries: {_some_keys(encoder_state) or 'none'}")


def _read_state(path: Path, map_location) -> dict:
    state = _torch_load(path, map_location)
    if isinstance(state, Mapping) and state.get("format") == FORMAT:
        raise CheckpointError(f"{path} is an lsmdepth_ros checkpoint, not an official weights "
                              "file; set model_path to that file directly")
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path} holds {type(state).__name__ if state is not None else None}"
                              f"{' (empty)' if isinstance(state, Mapping) else ''}; an official "
                              "weights file holds a state dict (parameter name -> tensor)")
    return dict(state)


def _official_size(enc_state: dict, enc_path: Path) -> tuple[tuple[int, int], bool]:
    """((height, width), whether encoder.pth named it). Removes the size keys."""
    if "height" not in enc_state or "width" not in enc_state:
        return OFFICIAL_DEFAULT_SIZE, False
    height, width = enc_state.pop("height"), enc_state.pop("width")
    try:
        size = int(height), int(width)
    except (TypeError, ValueError):
        size = (0, 0)
    if min(size) <= 0 or size[0] % 32 or size[1] % 32:
        raise CheckpointError(f"{enc_path}: input size height={height!r}, width={width!r} is not "
                              "a pair of positive multiples of 32")
    return size, True


def _load_official_folder(folder: Path, map_location) -> tuple[DepthModel, CheckpointInfo]:
    enc_path, dec_path = folder / "encoder.pth", folder / "depth.pth"
    for p in (enc_path, dec_path):
        if not p.is_file():
            present = ", ".join(sorted(f.name for f in folder.iterdir()
                                       if f.suffix in (".pth", ".pt"))) or "no .pth/.pt file"
            raise CheckpointError(
                f"{folder} is a folder but has no {p.name} (found: {present}); an official "
                "Lite-Mono / LSMDepth / monodepth2 weights folder holds both encoder.pth and "
                "depth.pth, as their trainers save them")
    enc_state, dec_state = _read_state(enc_path, map_location), _read_state(dec_path, map_location)
    (height, width), size_given = _official_size(enc_state, enc_path)
    use_stereo = bool(enc_state.pop("use_stereo", False))
    name, options, family = identify_official(enc_state, str(enc_path))
    model = build_depth_model(name, height=height, width=width, **options)
    _load_state(model.encoder, enc_state, str(enc_path), f"{name} (encoder)")
    _load_state(model.decoder, dec_state, str(dec_path),
                f"{name} (the {family} decoder that goes with encoder.pth)")
    extra = {"layout": family, "use_stereo": use_stereo, "size_from_file": size_given}
    info = CheckpointInfo(name=name, options=dict(model.options), min_depth=OFFICIAL_MIN_DEPTH,
                          max_depth=OFFICIAL_MAX_DEPTH, extra=extra, path=str(folder),
                          source="official")
    return model.eval(), info


def official_state_dicts(model: DepthModel) -> tuple[dict, dict]:
    """(encoder.pth, depth.pth) dicts as the official trainers write them (for export/tests)."""
    enc = {k: v.detach().cpu() for k, v in model.encoder.state_dict().items()}
    enc.update(height=model.options["height"], width=model.options["width"], use_stereo=False)
    dec = {k: v.detach().cpu() for k, v in model.decoder.state_dict().items()}
    return enc, dec
