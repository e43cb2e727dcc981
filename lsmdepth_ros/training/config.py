"""Typed training configuration: YAML file + `key=value` overrides, saved beside the run.

Defaults follow Lite-Mono's KITTI recipe (AdamW, lr 1e-4 for depth and pose, weight decay 1e-2,
cosine annealing with warm restarts, 640x192, frames [0, -1, 1], depth range 0.1..100 m);
a training run is measured in optimiser steps, not epochs, so checkpoints and the schedule are
the same whatever the dataset size.
"""
from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lsmdepth_ros.atomic_files import atomic_write_text
from lsmdepth_ros.geometry import MAX_DEPTH, MIN_DEPTH, DepthRange
from lsmdepth_ros.options import OptionInfo, coerce
from lsmdepth_ros.training.supervision import (
    POSE_SOURCES,
    SUPERVISION_MODES,
    check_supervision,
    needs_sources,
    trains_pose_network,
    uses_source_frames,
)


@dataclass
class TrainConfig:
    # model
    model: str = "lsmdepth"
    model_options: dict = field(default_factory=dict)   # extra build_depth_model(**options)
    pose_options: dict = field(default_factory=dict)    # build_pose_model(**options)
    height: int = 192
    width: int = 640
    min_depth: float = MIN_DEPTH
    max_depth: float = MAX_DEPTH
    init_checkpoint: str = ""       # start from these depth (+ pose) weights (fine-tuning)

    # data
    data_kind: str = "synthetic"
    data_path: str = ""             # dataset root / bag; synthetic: a cache folder or "" (memory)
    # the data set's own options: keyword arguments of its class (datasets/registry.py lists
    # them per data_kind; checked, with the valid keys in the error)
    data_options: dict = field(default_factory=dict)
    frame_ids: list = field(default_factory=lambda: [0, -1, 1])
    # Where the camera motion between frames comes from: "network" (PoseNet, fully
    # self-supervised) or "dataset" (the sample's ("pose_gt", i): odometry or the synthetic
    # generator's exact poses; depth is then learnt at metric scale and PoseNet is not trained)
    pose_source: str = "network"
    augment: bool = True            # monodepth2 colour jitter + horizontal flips
    # with augment: the probability that a sample's network input is grey (all its frames):
    # robots run mono cameras, and a net trained on colour only can lean on hue for depth
    grayscale_prob: float = 0.0
    # What the depth network learns from (training/supervision.py): "self" (photometric),
    # "supervised" (SigLoss on dense depth_gt; only frame 0 is loaded), "self+lidar"
    # (photometric + sparse depth), "distill" (a teacher's depth, + photometric when frame_ids
    # has sources); supervision_options holds the mode's keys (supervision.SupervisionOptions)
    supervision: str = "self"
    supervision_options: dict = field(default_factory=dict)
    batch_size: int = 12            # per process
    num_workers: int = 2

    # optimisation (Lite-Mono)
    steps: int = 20000              # optimiser steps in total
    lr: float = 1e-4                # depth network peak lr
    lr_min: float = 5e-6            # depth network floor of the cosine
    pose_lr: float = 1e-4
    pose_lr_min: float = 1e-5
    weight_decay: float = 1e-2
    warmup_steps: int = 500         # linear warm-up from warmup_start_factor * lr
    warmup_start_factor: float = 0.01
    restart_period: int = 0         # steps of the first cosine cycle; 0: one cycle to the end
    restart_mult: int = 1
    grad_clip: float = 0.0          # max gradient norm; 0 disables clipping

    # loss (monodepth2)
    ssim_weight: float = 0.85
    smoothness_weight: float = 1e-3
    automask: bool = True
    automask_noise: float = 1e-5

    # run
    seed: int = 0
    device: str = "auto"            # auto | cpu | cuda | cuda:N
    amp: bool = True                # mixed precision (float16), CUDA only (ignored on CPU)
    # bfloat16 autocast on a CPU (worth it where the CPU has AVX512-BF16 or AMX: a lsmdepth step
    # at 320x96 took 0.65x the time here); never switched on by itself, as it changes results
    cpu_amp: bool = False
    threads: int = 0                # torch CPU threads (0: torch's default); 1-2 on a busy CPU
    log_dir: str = "runs"
    run_name: str = ""              # "" -> <model>_<timestamp>
    log_interval: int = 20          # TensorBoard scalars every N steps
    image_interval: int = 500       # TensorBoard image grids every N steps (0: never)
    checkpoint_interval: int = 500  # step_XXXXXX.pt + latest.pt every N steps
    keep_checkpoints: int = 3       # step files kept (0: keep all); latest.pt always kept
    val_interval: int = 0           # held-out evaluation every N steps (0: only at the end)
    val_samples: int = 64           # held-out images evaluated each time (0: all)
    eval_crop: str = "auto"         # auto (garg for kitti, none otherwise) | garg | eigen | none
    eval_max_depth: float = 80.0    # Eigen protocol cap (metres)
    max_nonfinite_steps: int = 10   # stop after this many non-finite steps in a row
    progress: bool = True           # tqdm bar on rank 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        errors = []
        if self.height % 32 or self.width % 32 or self.height <= 0 or self.width <= 0:
            errors.append(f"height and width must be positive multiples of 32 (the encoder "
                          f"downsamples 32x), got {self.height}x{self.width}")
        if self.pose_source not in POSE_SOURCES:
            errors.append(f"pose_source must be one of {POSE_SOURCES}, got {self.pose_source!r}")
        if not self.frame_ids or self.frame_ids[0] != 0 \
                or (needs_sources(self.supervision) and len(self.frame_ids) < 2) \
                or len(set(self.frame_ids)) != len(self.frame_ids):
            errors.append(f"frame_ids must start with 0 (the target) followed by distinct "
                          f"source offsets such as [0, -1, 1], got {self.frame_ids}")
        if self.supervision not in SUPERVISION_MODES:
            errors.append(f"supervision must be one of {SUPERVISION_MODES}, got "
                          f"{self.supervision!r}")
        else:
            try:
                check_supervision(self.supervision, self.supervision_options)
            except ValueError as exc:
                errors.append(str(exc))
        from lsmdepth_ros.training.datasets.registry import check_data_config

        errors.extend(check_data_config(self.data_kind, self.data_path, self.data_options))
        for name in ("batch_size", "steps", "checkpoint_interval", "max_nonfinite_steps",
                     "restart_mult"):
            if getattr(self, name) < 1:
                errors.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "warmup_steps", "restart_period", "log_interval",
                     "image_interval", "val_interval", "threads", "val_samples", "keep_checkpoints"):
            if getattr(self, name) < 0:
                errors.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.eval_crop not in ("auto", "garg", "eigen", "none"):
            errors.append(f"eval_crop must be auto, garg, eigen or none, got {self.eval_crop!r}")
        if not 0 <= self.grayscale_prob <= 1:
            errors.append(f"grayscale_prob must be in [0, 1], got {self.grayscale_prob}")
        if not 0 < self.warmup_start_factor <= 1:
            errors.append(f"warmup_start_factor must be in (0, 1], got {self.warmup_start_factor}")
        if self.lr <= 0 or self.pose_lr <= 0 or self.lr_min < 0 or self.pose_lr_min < 0:
            errors.append("learning rates must be positive (minimums >= 0)")
        try:
            DepthRange(self.min_depth, self.max_depth)
        except ValueError as exc:
            errors.append(str(exc))
        if len(errors) == 1:
            raise ValueError(f"invalid training config: {errors[0]}")
        if errors:
            raise ValueError("invalid training config:\n  - " + "\n  - ".join(errors))

    @property
    def depth_range(self) -> DepthRange:
        return DepthRange(self.min_depth, self.max_depth)

    @property
    def source_frame_ids(self) -> list[int]:
        """The source frames the photometric loss uses (none in supervised mode)."""
        if not uses_source_frames(self.supervision):
            return []
        return [int(f) for f in self.frame_ids[1:]]

    @property
    def trains_pose_network(self) -> bool:
        """Whether PoseNet exists in this run (see `supervision.trains_pose_network`)."""
        return trains_pose_network(self.supervision, len(self.source_frame_ids), self.pose_source)

    # ------------------------------------------------------------------------------------------
    # (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown training config key(s) {unknown}; valid keys: "
                             f"{sorted(names)}")
        coerced = {k: _coerce(k, v) for k, v in values.items()}
        for k, v in coerced.items():
            if isinstance(v, dict):
                check_flow_map(k, v)
        return cls(**coerced)

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: list[str] | None = None,
             **explicit: Any) -> TrainConfig:
        """YAML file (optional), then `key=value` overrides, then explicit keyword values."""
        values: dict[str, Any] = {}
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"training config {path} does not exist; pass a YAML "
                                        "file of TrainConfig keys (see config/train_*.yaml)")
            loaded = yaml.safe_load(path.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"training config {path} must be a YAML mapping of keys to "
                                 f"values, got {type(loaded).__name__}")
            values.update(loaded)
        values.update(parse_overrides(overrides or []))
        values.update({k: v for k, v in explicit.items() if v is not None})
        return cls.from_dict(values)

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """['lr=2e-4', 'frame_ids=[0,-1,1]'] -> {'lr': '2e-4', ...} (coerced later by field type)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. --set lr=2e-4)")
        out[key.strip()] = value.strip()
    return out


_FIELDS: dict[str, OptionInfo] | None = None


def _coerce(name: str, value: Any) -> Any:
    """A YAML / command-line value as the field's declared type (`options.coerce`, the one place
    raw values become typed), with lists and mappings given as YAML text parsed first."""
    global _FIELDS
    if _FIELDS is None:
        hints = typing.get_type_hints(TrainConfig)
        _FIELDS = {f.name: OptionInfo(name=f.name, default=None, type=hints[f.name], help="",
                                      live=False, choices=())
                   for f in dataclasses.fields(TrainConfig)}
    info = _FIELDS[name]
    if info.type in (list, dict) and (value is None or isinstance(value, str)):
        try:
            value = yaml.safe_load(value) if isinstance(value, str) else None
        except yaml.YAMLError:
            pass  # left as text: the type check below names the key and the value
        value = info.type() if value is None else value
    return coerce(info, value, from_text=True)


def check_flow_map(name: str, mapping: Mapping) -> None:
    """YAML reads `{train_sequences:2}` (no space after the colon) as the key
    'train_sequences:2' with no value: name that mistake instead of an unknown key."""
    for key, value in mapping.items():
        if isinstance(key, str) and ":" in key and value is None:
            good = key.replace(":", ": ", 1)
            raise ValueError(f"{name} holds the key {key!r} without a value: in YAML flow maps "
                             f"a colon needs a space after it; write {{{good}}}")
