"""Training data sets in monodepth2's sample format (keys documented in `base`).

- `SyntheticDataset`: procedural drives rendered on the fly (exact depth and poses).
- `KittiRawDataset`: KITTI raw in monodepth2's folder layout + split files; also reads the
  KITTI-like folders written by `lsmdepth_ros.synthetic.writer.write_kitti_layout` / `lsmdepth synth`
  (`synthetic_folder_dataset`).
- `FolderSequenceDataset`: folders of image sequences + an intrinsics YAML.
- `RosbagSequenceDataset`: image + camera_info topics of rosbag2 bags.

`registry.DATASETS` maps a config's `data_kind` to its class and builder (train / val / test);
`collate.collate_samples` turns samples into a batch.
"""
from lsmdepth_ros.synthetic import SyntheticDrive, SyntheticOptions
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.base import (
                                                 DEPTH_KEY,
                                                 Item,
                                                 K_key,
                                                 MonoDataset,
                                                 color_key,
                                                 pose_key,
)
from lsmdepth_ros.training.datasets.folder import FolderSequenceDataset
from lsmdepth_ros.training.datasets.kitti import (
                                                 KittiRawDataset,
                                                 synthetic_folder_dataset,
)
from lsmdepth_ros.training.datasets.rosbag import RosbagSequenceDataset
from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset

__all__ = [
                                                 "DEPTH_KEY",
                                                 "AugmentOptions",
                                                 "FolderSequenceDataset",
                                                 "Item",
                                                 "K_key",
                                                 "KittiRawDataset",
                                                 "MonoDataset",
                                                 "RosbagSequenceDataset",
                                                 "SyntheticDataset",
                                                 "SyntheticDrive",
                                                 "SyntheticOptions",
                                                 "color_key",
                                                 "pose_key",
                                                 "synthetic_folder_dataset",
]
