"""What a run reports while it trains: TensorBoard scalars and image grids, a plain log line.

TensorBoard tags: loss/total, loss/<term> for every named loss term, loss/scale_<s> for the
photometric term's scales, lr/<network>, train/nonfinite_steps, train/images_per_s, val/<metric>
and the train/rgb_disparity_automask grid. A resumed run purges the events a killed run wrote
after its checkpoint, so no step appears twice.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from lsmdepth_ros.training.batch import Batch
from lsmdepth_ros.training.loss_terms import LossTerms
from lsmdepth_ros.visualisation import colorize_tensor as colorize

log = logging.getLogger("lsmdepth_ros.training.trainer")


class RunLog:
    """TensorBoard writer (opened on first use, rank 0 only) and log lines of one run."""

    def __init__(self, run_dir: Path, enabled: bool, resumed_step: int | None = None):
        self.run_dir, self.enabled = Path(run_dir), enabled
        # events after the resumed checkpoint belong to the killed run's lost steps
        self.purge_step = resumed_step + 1 if resumed_step is not None else None
        self.writer = None

    def tb(self):
        if self.writer is None and self.enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir), purge_step=self.purge_step)
        return self.writer

    def scalars(self, step: int, loss: float, terms: LossTerms | None, lrs: Mapping[str, float],
                nonfinite_total: int, images_per_s: float) -> None:
        tb = self.tb()
        if terms is not None:
            tb.add_scalar("loss/total", loss, step)
            for name, value in terms.terms.items():
                tb.add_scalar(f"loss/{name}", float(value.detach()), step)
            if terms.photometric is not None:
                for s, value in terms.photometric.per_scale.items():
                    tb.add_scalar(f"loss/scale_{s}", float(value.detach()), step)
        for name, lr in lrs.items():
            tb.add_scalar(f"lr/{name}", lr, step)
        tb.add_scalar("train/nonfinite_steps", nonfinite_total, step)
        tb.add_scalar("train/images_per_s", images_per_s, step)

    @staticmethod
    def line(step: int, total_steps: int, loss: float, terms: LossTerms | None,
             lrs: Mapping[str, float], images_per_s: float) -> None:
        """One plain log line (CI logs, nohup runs: no progress bar)."""
        parts = [f"step {step}/{total_steps}", f"loss {loss:.4f}"]
        if terms is not None and len(terms.terms) > 1:
            parts.append(" ".join(f"{k} {float(v.detach()):.4f}" for k, v in terms.terms.items()))
        parts.append(" ".join(f"lr/{k} {v:.3g}" for k, v in lrs.items()))
        parts.append(f"{images_per_s:.1f} images/s")
        log.info("%s", ", ".join(parts))

    def images(self, step: int, batch: Batch, terms: LossTerms) -> None:
        if terms.depth is None:
            return
        from torchvision.utils import make_grid

        n = min(4, batch.target.shape[0])
        rgb = batch.target[:n].detach().float().cpu()
        disp = 1.0 / terms.depth[:n].detach().float().cpu()
        disp = colorize(disp / disp.flatten(1).quantile(0.95, dim=1).clamp_min(1e-6)[:, None, None, None])
        rows = [rgb, disp]
        automask = terms.photometric.automask if terms.photometric is not None else None
        if automask is not None:
            rows.append(automask[:n, None].float().cpu().repeat(1, 3, 1, 1))
        grid = make_grid(torch.cat(rows, 0), nrow=n, padding=2)
        self.tb().add_image("train/rgb_disparity_automask", grid, step)

    def metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        tb = self.tb()
        for k, v in metrics.items():
            tb.add_scalar(f"val/{k}", v, step)
        log.info("step %d: held-out %s", step, ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
