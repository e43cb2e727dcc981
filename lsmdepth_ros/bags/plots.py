"""PNG figures of an evaluation (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lsmdepth_ros.atomic_files import atomic_path
from lsmdepth_ros.visualisation import colorize_depth_rgb as colorize_rgb


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, plt.figure(*args, **kwargs)


def _save(plt, fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return Path(path)


def plot_metrics_over_time(rows, path: str | Path) -> Path:
    """abs_rel, rmse and a1 (and the median-scaling factor) against time since the first frame."""
    plt, fig = _figure(figsize=(9, 7))
    good = [r for r in rows if r.metrics is not None]
    t0 = rows[0].stamp_ns if rows else 0
    t = np.array([(r.stamp_ns - t0) / 1e9 for r in good])
    panels = [("abs_rel", "AbsRel"), ("rmse", "RMSE [m]"), ("a1", "δ < 1.25")]
    axes = fig.subplots(len(panels) + 1, 1, sharex=True)
    for ax, (key, label) in zip(axes, panels):
        values = np.array([r.metrics[key] for r in good])
        ax.plot(t, values, ".-", lw=1)
        if values.size:
            ax.axhline(values.mean(), color="gray", ls="--", lw=0.8,
                       label=f"mean {values.mean():.3f}")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[-1].plot(t, [r.scale for r in good], ".-", lw=1, color="tab:orange")
    axes[-1].set_ylabel("scale")
    axes[-1].set_xlabel("time since first frame [s]")
    axes[-1].grid(alpha=0.3)
    fig.suptitle("depth metrics per frame")
    fig.tight_layout()
    return _save(plt, fig, Path(path))


def plot_error_map(image: np.ndarray | None, pred: np.ndarray, gt: np.ndarray, path: str | Path,
                   title: str = "", max_depth: float = 80.0) -> Path:
    """Image | predicted depth | ground truth | absolute relative error, side by side."""
    import cv2

    gt = np.asarray(gt, dtype=np.float32)
    h, w = gt.shape
    pred = np.asarray(pred, dtype=np.float32)
    if pred.shape != gt.shape:
        pred = cv2.resize(pred, (w, h), interpolation=cv2.INTER_NEAREST)
    valid = np.isfinite(gt) & (gt > 0) & (gt < max_depth) & np.isfinite(pred)
    lo, hi = (np.percentile(gt[valid], [5, 95]) if valid.any() else (None, None))
    gt_show = gt
    if valid.mean() < 0.2:  # sparse (LiDAR) ground truth: dilate so it is visible
        gt_show = cv2.dilate(np.nan_to_num(gt, nan=0.0), np.ones((3, 3), np.uint8))
        gt_show[gt_show == 0] = np.nan
    err = np.full(gt.shape, np.nan, dtype=np.float32)
    err[valid] = np.abs(pred[valid] - gt[valid]) / gt[valid]
    panels = [("predicted depth", colorize_rgb(pred, lo, hi)),
              ("ground truth", colorize_rgb(gt_show, lo, hi))]
    if image is not None:
        panels.insert(0, ("image", cv2.resize(image, (w, h)) if image.shape[:2] != (h, w)
                          else image))
    plt, fig = _figure(figsize=(6, 1.0 + 0.9 * (len(panels) + 1) * 6 * h / w * 1.1))
    axes = fig.subplots(len(panels) + 1, 1)
    for ax, (label, rgb) in zip(axes, panels):
        ax.imshow(rgb)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    ax = axes[-1]
    from matplotlib import colormaps

    shown = ax.imshow(err, cmap=colormaps["inferno"].with_extremes(bad="black"), vmin=0.0,
                      vmax=0.5, interpolation="nearest")
    mean = float(np.nanmean(err)) if valid.any() else float("nan")
    ax.set_title(f"|pred - gt| / gt (mean {mean:.3f}; black: no ground truth)", fontsize=9)
    ax.axis("off")
    fig.colorbar(shown, ax=ax, fraction=0.025, pad=0.01)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(plt, fig, Path(path))
