"""One table of data sets: `data_kind` -> how to build its train / val / test sets.

As monodepth2's `datasets_dict`, a dict picks the data set; the trainer (`build_datasets`) and
`lsmdepth evaluate` both build through it. A kind's `data_options` are the keyword arguments of
its class's typed ``__init__`` (minus the ones the builder sets: `base.COMMON_ARGS` and the
path arguments) plus the few the builder itself reads, so an option added to a data set class
is valid here without touching this file. `check_data_config` checks names and types before
anything is built or written.
"""
from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from lsmdepth_ros.metrics import KITTI_PNG_SCALE
from lsmdepth_ros.options import TYPE_WORDS, accepts
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.base import COMMON_ARGS
from lsmdepth_ros.training.datasets.folder import (
    FolderSequenceDataset,
    ImageDepthFolder,
)
from lsmdepth_ros.training.datasets.kitti import (
    KittiRawDataset,
    synthetic_folder_dataset,
)
from lsmdepth_ros.training.datasets.rosbag import RosbagSequenceDataset
from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset
from lsmdepth_ros.training.supervision import needs_depth

if TYPE_CHECKING:
    from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DataKind:
    """How one `data_kind` becomes data sets.

    build(cls, path, split, options, **common) returns the split's data set of `dataset`, or None when the kind
    has no such split (folder / bag without a held-out path). `common` holds `COMMON_ARGS`.
    """

    dataset: type                               # its typed __init__ declares the options
    build: Callable[..., Any]
    summary: str
    set_by_builder: tuple[str, ...] = ()        # constructor arguments the builder fills in
    builder_options: Mapping[str, Any] = field(default_factory=dict)  # name -> type it reads
    needs_path: bool = True
    trainable: bool = True                      # False: evaluation only


# ----------------------------------------------------------------------------------------------
# builders: (class, path, split, options, **common) -> data set | None


def _rendered_synthetic(cls, path, split, options, **common):
    opts = dict(options)
    frames = int(opts.pop("frames_per_sequence", 100))
    count = int(opts.pop("train_sequences", 8)), int(opts.pop("val_sequences", 1))
    seeds = int(opts.pop("seed", 0)), int(opts.pop("val_seed", 1))
    cache = int(opts.pop("cache_frames", 4096))
    k = 0 if split == "train" else 1
    if count[k] <= 0:
        return None
    return cls(count[k], frames, seed=seeds[k], cache_frames=cache if k == 0 else 0, **common,
               **opts)


def _synthetic_folder(cls, path, split, options, **common):
    return synthetic_folder_dataset(path, split, **common, **options)


def _kitti(cls, path, split, options, **common):
    opts = dict(options)
    split_dir = Path(path) / "splits" / "eigen_zhou"
    files = {"train": opts.pop("train_split", str(split_dir / "train_files.txt")),
             "val": opts.pop("val_split", str(split_dir / "val_files.txt"))}
    files["test"] = opts.pop("test_split", None) or files["val"]
    return cls(path, files[split], **common, **opts)


def _folder(cls, path, split, options, **common):
    return cls(path, **common, **options) if split == "train" else None


def _bag(cls, path, split, options, **common):
    opts = dict(options)
    val_path = opts.pop("val_path", "")
    chosen = path if split == "train" else val_path
    if not chosen:
        return None
    bags = [p.strip() for p in str(chosen).split(",") if p.strip()]
    return cls(bags, **common, **opts)


def _depth_folder(cls, path, split, options, **common):
    return cls(path, options["depths"], height=common["height"], width=common["width"],
               png_scale=options.get("png_scale", KITTI_PNG_SCALE))


DATASETS: dict[str, DataKind] = {
    "synthetic": DataKind(
        SyntheticDataset, _rendered_synthetic, "procedural drives rendered in memory (no "
        "data_path); train_sequences / val_sequences drives of frames_per_sequence frames",
        set_by_builder=("num_sequences", "frames_per_sequence", "seed", "cache_frames"),
        builder_options={"train_sequences": int, "val_sequences": int,
                         "frames_per_sequence": int, "seed": int, "val_seed": int,
                         "cache_frames": int}, needs_path=False),
    "synthetic_folder": DataKind(
        KittiRawDataset, _synthetic_folder, "a folder written by `lsmdepth synth --kind kitti` "
        "(its train / val / test splits)", set_by_builder=("data_path", "filenames")),
    "kitti": DataKind(
        KittiRawDataset, _kitti, "KITTI raw (monodepth2 layout); train_split / val_split files "
        "(default <data_path>/splits/eigen_zhou/{train,val}_files.txt)",
        set_by_builder=("data_path", "filenames"),
        builder_options={"train_split": str, "val_split": str, "test_split": str}),
    "folder": DataKind(
        FolderSequenceDataset, _folder, "folders of image sequences + intrinsics.yaml (no "
        "held-out depth)", set_by_builder=("root",)),
    "bag": DataKind(
        RosbagSequenceDataset, _bag, "rosbag2 recordings; val_path: held-out bag(s) of the same "
        "topics", set_by_builder=("bags",), builder_options={"val_path": str}),
    "depth_folder": DataKind(
        ImageDepthFolder, _depth_folder, "images + ground-truth depth folders (evaluation)",
        set_by_builder=("images", "height", "width"),
        builder_options={"depths": str, "png_scale": float},
        trainable=False),
}
TRAINABLE_KINDS = tuple(k for k, v in DATASETS.items() if v.trainable)


def resolve_kind(kind: str, path: str) -> str:
    """`synthetic` with a data_path is the folder `lsmdepth synth` wrote."""
    return "synthetic_folder" if kind == "synthetic" and path else kind


def declared_options(kind: str) -> dict[str, Any]:
    """{option name: its type annotation} of a (resolved) data kind."""
    entry = DATASETS[kind]
    init = entry.dataset.__init__
    try:
        hints = typing.get_type_hints(init)
    except (NameError, TypeError):
        hints = {}
    skip = set(COMMON_ARGS) | set(entry.set_by_builder) | {"self"}
    options = {name: hints.get(name, Any)
               for name, p in inspect.signature(init).parameters.items()
               if name not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    options.update(entry.builder_options)
    return options


def check_data_config(kind: str, path: str, options: Mapping) -> list[str]:
    """Problems with (data_kind, data_path, data_options), one sentence each."""
    if kind not in TRAINABLE_KINDS:
        return [f"data_kind must be one of {TRAINABLE_KINDS}, got {kind!r}"]
    resolved = resolve_kind(kind, path)
    if DATASETS[resolved].needs_path and not path:
        return [f"data_kind {kind!r} needs data_path ({DATASETS[resolved].summary})"]
    errors = check_options(resolved, options, f"data_kind {kind!r}")
    if resolved == "synthetic" and options.get("seed", 0) == options.get("val_seed", 1):
        errors.append("data_options seed and val_seed must differ: the held-out drives must "
                      "not be the training drives")
    return errors


def check_options(kind: str, options: Mapping, where: str) -> list[str]:
    declared = declared_options(kind)
    errors = []
    unknown = sorted(str(k) for k in options if k not in declared)
    if unknown:
        errors.append(f"unknown data_options key(s) {unknown} for {where}; valid keys: "
                      f"{sorted(declared)}")
    for name, value in options.items():
        if name in declared and not _accepts(declared[name], value):
            errors.append(f"data_options.{name} expects {_describe(declared[name])}, got "
                          f"{value!r}")
    return errors


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether a YAML value fits a constructor annotation (unknown annotations accept all)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation in (bool, int, float):
        return accepts(annotation, value)
    if annotation in (str, Path):
        return isinstance(value, str)
    base = origin or annotation
    if base in (list, tuple, np.ndarray):
        return isinstance(value, (list, tuple))
    if base is dict:
        return isinstance(value, dict)
    if isinstance(base, type) and base is not Any:
        return isinstance(value, base)
    return True


def _describe(annotation: Any) -> str:
    names = {**TYPE_WORDS, Path: "a path", type(None): "null"}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    base = typing.get_origin(annotation) or annotation
    if base in (list, tuple, np.ndarray):
        return "a list"
    return names.get(annotation, f"a {getattr(annotation, '__name__', annotation)}")


def _parameters(cls: type) -> set[str]:
    """Names a class's constructor takes (all of `COMMON_ARGS` when it forwards **kwargs)."""
    params = inspect.signature(cls.__init__).parameters
    names = set(params)
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        names |= set(COMMON_ARGS)
    return names


def build_dataset(kind: str, path: str, options: Mapping, split: str, *, height: int,
                  width: int, frame_ids: tuple[int, ...] = (0,), num_scales: int = 1,
                  is_train: bool = False, load_depth: bool = False,
                  augment: AugmentOptions | None = None) -> Dataset | None:
    """The `split` data set of a kind (None when the kind has no such split)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    resolved = resolve_kind(kind, path)
    errors = check_options(resolved, options, f"data_kind {kind!r}")
    if errors:
        raise ValueError("; ".join(errors))
    entry = DATASETS[resolved]
    accepted = _parameters(entry.dataset)
    common = {"height": height, "width": width, "frame_ids": tuple(frame_ids),
              "num_scales": num_scales, "is_train": is_train, "load_depth": load_depth,
              "augment": augment}
    if load_depth and "load_depth" not in accepted and entry.dataset.provides_depth is not True:
        raise ValueError(f"data_kind {kind!r} does not provide ground-truth depth "
                         f"({entry.summary})")
    common = {k: v for k, v in common.items()
              if k in accepted and not (k == "augment" and v is None)}
    return entry.build(entry.dataset, path, split, dict(options), **common)


class DataConfig(Protocol):
    """The fields of `config.TrainConfig` that choose the data."""

    data_kind: str
    data_path: str
    data_options: dict
    height: int
    width: int
    augment: bool
    grayscale_prob: float
    supervision: str
    source_frame_ids: list[int]


def build_datasets(config: DataConfig, num_scales: int) -> tuple[Dataset, Dataset | None]:
    """Training and held-out data sets of a training config (monodepth2 sample format).

    The held-out set shows the target frame only, is never augmented and carries
    ground-truth depth when its kind can (`provides_depth`); None when the kind has none.
    """
    augment = (AugmentOptions(grayscale_prob=getattr(config, "grayscale_prob", 0.0))
               if config.augment else AugmentOptions(color_prob=0.0, flip_prob=0.0))
    where = (config.data_kind, config.data_path, config.data_options)
    train = build_dataset(*where, "train", height=config.height, width=config.width,
                          frame_ids=(0, *config.source_frame_ids), num_scales=num_scales,
                          is_train=True, load_depth=needs_depth(config.supervision),
                          augment=augment)
    kind = DATASETS[resolve_kind(config.data_kind, config.data_path)]
    can_have_depth = "load_depth" in _parameters(kind.dataset)
    val = build_dataset(*where, "val", height=config.height, width=config.width,
                        load_depth=can_have_depth)
    return train, val
