"""Lite-Mono's learning-rate schedule with torch's own schedulers.

Linear warm-up (LinearLR) then cosine annealing with warm restarts
(CosineAnnealingWarmRestarts), chained by SequentialLR and stepped once per optimiser step.
Lite-Mono restarts every 31 epochs with floors 5e-6 (depth) / 1e-5 (pose); here periods are in
steps, and a period of 0 means one cosine from the end of warm-up to the last step.
"""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingWarmRestarts,
    LinearLR,
    LRScheduler,
    SequentialLR,
)


def warmup_cosine_restarts(optimizer: torch.optim.Optimizer, *, total_steps: int,
                           warmup_steps: int, eta_min: float, restart_period: int = 0,
                           restart_mult: int = 1, warmup_start_factor: float = 0.01) -> LRScheduler:
    """Scheduler for `optimizer`; call `.step()` after every optimiser step."""
    cosine_steps = max(1, total_steps - warmup_steps)
    period = restart_period if restart_period > 0 else cosine_steps
    cosine = CosineAnnealingWarmRestarts(optimizer, T_0=period, T_mult=restart_mult, eta_min=eta_min)
    if warmup_steps <= 0:
        return cosine
    # SequentialLR re-initialises its children; build the warm-up last so the initial lr is
    # the warm-up's start value.
    warmup = LinearLR(optimizer, start_factor=warmup_start_factor, end_factor=1.0,
                      total_iters=warmup_steps)
    return SequentialLR(optimizer, schedulers=[warmup, cosine], milestones=[warmup_steps])
