"""Checkpoints: one file that names its model and options, so it alone rebuilds the network.

File layout (a ``torch.save`` dict, read back with ``weights_only=True``, never full pickle)::

    {"format": "lsmdepth_ros.checkpoint", "version": 1, "model": "lsmdepth",
     "options": {"height": 192, "width": 640, ...}, "state_dict": {...},
     "min_depth": 0.1, "max_depth": 100.0, "extra": {...}}

``load_checkpoint`` also accepts an official Lite-Mono / LSMDepth weights folder (``encoder.pth``
+ ``depth.pth``, as their trainers write them); the variant is recognised from the weights.
"""
from __future__ import annotations

import math
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .io_utils import atomic_path
from .networks import DepthModel, available_models, build_depth_model

FORMAT = "lsmdepth_ros.checkpoint"
VERSION = 1
OFFICIAL_MIN_DEPTH, OFFICIAL_MAX_DEPTH = 0.1, 100.0
_OFFICIAL_ENCODER_EXTRAS = ("height", "width", "use_stereo")


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


def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, min_depth: float = 0.1,
                    max_depth: float = 100.0, extra: Mapping | None = None) -> Path:
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
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        def head(keys):
            return ", ".join(keys[:5]) + (f" ... (+{len(keys) - 5})" if len(keys) > 5 else "")
        raise CheckpointError(
            f"{origin}: weights do not match model {model_name}: "
            f"missing {len(result.missing_keys)} key(s) [{head(result.missing_keys)}], "
            f"unexpected {len(result.unexpected_keys)} [{head(result.unexpected_keys)}]. "
            "Was it saved for another model or version?")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> tuple[DepthModel, CheckpointInfo]:
    """Rebuild the model a checkpoint names and load its weights (eval mode).

    ``path`` is a ``save_checkpoint`` file or an official Lite-Mono / LSMDepth folder with
    ``encoder.pth`` and ``depth.pth``. Raises ``CheckpointError`` with the reason otherwise.
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
        model = build_depth_model(name, **options)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild {name} with options {options}: {exc}") from exc
    _load_state(model, payload.get("state_dict") or {}, str(path), name)
    info = CheckpointInfo(name=name, options=dict(model.options),
                          min_depth=float(payload.get("min_depth", OFFICIAL_MIN_DEPTH)),
                          max_depth=float(payload.get("max_depth", OFFICIAL_MAX_DEPTH)),
                          extra=dict(payload.get("extra") or {}), path=str(path))
    return model.eval(), info


# --- official Lite-Mono / LSMDepth folders -------------------------------------------------

_LITE_MONO_BY_SHAPE = {  # (stem width, blocks in the 1/16 stage) -> variant
    (48, 10): "lite-mono", (48, 7): "lite-mono-small", (32, 7): "lite-mono-tiny",
    (64, 10): "lite-mono-8m",
}
_OFFICIAL_LSMDEPTH = {"lite-mono": "light", "lite-mono-small": "light-s",
                      "lite-mono-tiny": "light-t", "lite-mono-8m": "light-m"}


def identify_official(encoder_state: Mapping, decoder_state: Mapping) -> tuple[str, dict]:
    """(model name, extra options) for official encoder/decoder state dicts."""
    try:
        width = int(encoder_state["downsample_layers.0.0.conv.weight"].shape[0])
    except KeyError:
        raise CheckpointError("encoder.pth has no 'downsample_layers.0.0.conv.weight': not a "
                              "Lite-Mono / LSMDepth encoder") from None
    blocks = {int(k.split(".")[2]) for k in encoder_state if k.startswith("stages.2.")}
    variant = _LITE_MONO_BY_SHAPE.get((width, len(blocks)))
    if variant is None:
        raise CheckpointError(f"encoder.pth: unknown layout (stem width {width}, "
                              f"{len(blocks)} blocks in the last stage)")
    if any(k.startswith("skip_att.") for k in decoder_state):
        return "lsmdepth-official", {"variant": _OFFICIAL_LSMDEPTH[variant]}
    return variant, {}


def _load_official_folder(folder: Path, map_location) -> tuple[DepthModel, CheckpointInfo]:
    enc_path, dec_path = folder / "encoder.pth", folder / "depth.pth"
    for p in (enc_path, dec_path):
        if not p.is_file():
            raise CheckpointError(f"{folder} is a folder but has no {p.name}; an official "
                                  "Lite-Mono / LSMDepth weights folder holds encoder.pth and "
                                  "depth.pth")
    enc_state, dec_state = _torch_load(enc_path, map_location), _torch_load(dec_path, map_location)
    if not isinstance(enc_state, dict) or not isinstance(dec_state, dict):
        raise CheckpointError(f"{folder}: encoder.pth / depth.pth must hold state dicts")
    enc_state = dict(enc_state)
    height, width = int(enc_state.get("height", 192)), int(enc_state.get("width", 640))
    for k in _OFFICIAL_ENCODER_EXTRAS:
        enc_state.pop(k, None)
    name, options = identify_official(enc_state, dec_state)
    model = build_depth_model(name, height=height, width=width, **options)
    _load_state(model.encoder, enc_state, str(enc_path), f"{name} (encoder)")
    _load_state(model.decoder, dec_state, str(dec_path), f"{name} (decoder)")
    info = CheckpointInfo(name=name, options=dict(model.options), min_depth=OFFICIAL_MIN_DEPTH,
                          max_depth=OFFICIAL_MAX_DEPTH, path=str(folder), source="official")
    return model.eval(), info


def official_state_dicts(model: DepthModel) -> tuple[dict, dict]:
    """(encoder.pth, depth.pth) dicts as the official trainers write them (for export/tests)."""
    enc = {k: v.detach().cpu() for k, v in model.encoder.state_dict().items()}
    enc.update(height=model.options["height"], width=model.options["width"], use_stereo=False)
    dec = {k: v.detach().cpu() for k, v in model.decoder.state_dict().items()}
    return enc, dec
