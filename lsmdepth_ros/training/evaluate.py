"""Old import path of the evaluation functions, kept so that existing scripts keep working.

The Eigen metrics live in ``lsmdepth_ros.metrics`` (used by training, bags and commands alike),
KITTI velodyne ground truth in ``training.datasets.kitti_velodyne`` and a network's held-out
evaluation in ``training.heldout``. New code imports from there; nothing in the package imports
this module.
"""
from lsmdepth_ros.metrics import (  # noqa: F401
    EIGEN_CROP,
    GARG_CROP,
    METRIC_NAMES,
    EvalOptions,
    EvalSummary,
    FrameResult,
    compute_depth_metrics,
    crop_mask,
    encode_depth_png,
    eval_mask,
    evaluate_depth_pair,
    evaluate_depth_pairs,
    median_scale,
    read_depth_png,
    resize_depth,
    summarize,
)
from lsmdepth_ros.training.datasets.kitti_velodyne import (  # noqa: F401
    generate_depth_map,
    load_velodyne_points,
    read_calib_file,
    velodyne_to_depth,
)
from lsmdepth_ros.training.heldout import evaluate_model, predict_depth_batches  # noqa: F401
