"""A 2-process DDP training step on CPU (gloo, env:// as torchrun sets it up).

Both ranks must end with identical weights, equal to one single-process step whose loss is the
mean of the two ranks' losses (DDP averages gradients; BatchNorm statistics stay per rank, so the
reference runs each rank's half-batch through the network separately).
"""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch.utils.data import DistributedSampler, default_collate

from lsmdepth_ros.checkpoints import load_checkpoint
from lsmdepth_ros.training.config import TrainConfig
from lsmdepth_ros.training.datasets.augment import AugmentOptions
from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset
from lsmdepth_ros.training.trainer import Batch, Trainer

WORLD = 2


def _config(run_dir):
    # no randomness inside the step (drop-path, automask noise, augmentation), so the
    # single-process reference can reproduce it exactly
    return {"model": "lite-mono-tiny", "height": 32, "width": 96, "batch_size": 2, "steps": 1,
            "warmup_steps": 0, "lr": 1e-3, "pose_lr": 1e-3, "num_workers": 0, "augment": False,
            "automask_noise": 0.0, "model_options": {"drop_path_rate": 0.0}, "progress": False,
            "image_interval": 0, "checkpoint_interval": 1, "log_dir": str(run_dir),
            "run_name": "ddp"}


def _data():
    no_augmentation = AugmentOptions(color_prob=0.0, flip_prob=0.0)
    return SyntheticDataset(1, 10, 32, 96, seed=0, num_scales=3, is_train=True, load_depth=False,
                            augment=no_augmentation)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from lsmdepth_ros.training import distributed

    trainer = Trainer(TrainConfig(**_config(out_dir)), train_dataset=_data())
    assert trainer.dist.world_size == WORLD and isinstance(
        trainer.net, torch.nn.parallel.DistributedDataParallel)
    summary = trainer.train()
    params = {n: p.detach().clone() for n, p in trainer.bare_net.named_parameters()}
    torch.save({"params": params, "loss": summary.losses}, os.path.join(out_dir, f"rank{rank}.pt"))
    distributed.cleanup()


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True,
                       start_method="spawn")
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    return out, ranks


def test_both_ranks_end_with_identical_weights(ddp_run):
    _, ranks = ddp_run
    a, b = ranks[0]["params"], ranks[1]["params"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert ranks[0]["loss"] == ranks[1]["loss"]  # the logged loss is the mean over ranks


def test_ddp_step_equals_single_process_step_on_both_halves(ddp_run, tmp_path):
    _, ranks = ddp_run
    torch.set_num_threads(1)
    config = TrainConfig(**_config(tmp_path))
    data = _data()
    ref = Trainer(config, train_dataset=data)
    initial = {n: p.detach().clone() for n, p in ref.bare_net.named_parameters()}
    halves = []
    for rank in range(WORLD):
        sampler = DistributedSampler(data, num_replicas=WORLD, rank=rank, shuffle=True,
                                     seed=config.seed)
        sampler.set_epoch(0)
        indices = list(sampler)[:config.batch_size]
        halves.append(default_collate([data[i] for i in indices]))
    ref.net.train()
    losses = [ref.compute_loss(Batch.from_sample(h, ref.source_ids, ref.num_scales, ref.device)).total
              for h in halves]
    mean = (losses[0] + losses[1]) / 2
    mean.backward()
    for opt in ref.optimizers.values():
        opt.step()
    assert ranks[0]["loss"][0] == pytest.approx(mean.item(), rel=1e-5)

    ddp = ranks[0]["params"]
    moved = max((ddp[n] - initial[n]).abs().max().item() for n in ddp)
    assert moved > 0.5 * config.lr  # the step really changed the weights
    for name, p in ref.bare_net.named_parameters():
        # Adam's first step is lr * g / (|g| + eps): tiny float differences in near-zero
        # gradients move it by a small fraction of lr (measured: 3e-4 lr)
        torch.testing.assert_close(ddp[name], p.detach(), atol=0.01 * config.lr, rtol=0)


def test_rank0_wrote_a_resumable_checkpoint_with_every_ranks_rng(ddp_run):
    out, _ = ddp_run
    _, info = load_checkpoint(out / "ddp" / "latest.pt")
    assert info.extra["world_size"] == WORLD and len(info.extra["rng"]) == WORLD
    assert not torch.equal(info.extra["rng"][0]["torch"], info.extra["rng"][1]["torch"])
    assert (out / "ddp" / "model.pt").is_file()
