"""pose_source 'dataset': the known motion replaces PoseNet in the photometric loss."""
import pytest
import torch
from torch.utils.data import DataLoader

from lsmdepth_ros.checkpoints import load_checkpoint
from lsmdepth_ros.training.config import TrainConfig
from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset
from lsmdepth_ros.training.trainer import Batch, Trainer

CFG = {"model": "lite-mono-tiny", "height": 32, "width": 96, "batch_size": 2, "num_workers": 0,
       "progress": False, "log_interval": 100, "image_interval": 0, "warmup_steps": 1,
       "augment": False, "steps": 2}


@pytest.fixture(scope="module")
def sample():
    torch.set_num_threads(1)
    data = SyntheticDataset(1, 6, 32, 96, seed=0, num_scales=3, is_train=False)
    return data, next(iter(DataLoader(data, batch_size=2)))


def test_known_poses_are_the_datasets_and_posenet_is_left_alone(tmp_path, sample):
    data, batch_sample = sample
    trainer = Trainer(TrainConfig(**CFG, pose_source="dataset", log_dir=str(tmp_path)),
                      train_dataset=data)
    batch = Batch.from_sample(batch_sample, trainer.source_ids, trainer.num_scales,
                              trainer.device)
    disps, poses = trainer.forward(batch)
    for f in (-1, 1):
        assert torch.equal(poses[f], batch_sample[("pose_gt", f)])
    # the loss is the photometric loss evaluated with the true motion (same automask noise)
    torch.manual_seed(1)
    got = trainer.loss_of(batch, disps, poses).total
    torch.manual_seed(1)
    expected = trainer.loss_fn(disps, batch.target, batch.sources,
                               {f: batch_sample[("pose_gt", f)] for f in (-1, 1)},
                               batch.K, batch.inv_K, batch.target_pyramid).total
    assert torch.allclose(got, expected)

    depth_before = {k: v.clone() for k, v in trainer.depth.state_dict().items()}
    assert trainer.pose is None and set(trainer.optimizers) == {"depth"}  # PoseNet not built
    trainer.train()
    assert any(not torch.equal(depth_before[k], v) for k, v in trainer.depth.state_dict().items())
    _, info = load_checkpoint(trainer.run_dir / "model.pt")
    assert "pose_state_dict" not in info.extra  # an untrained PoseNet is not shipped
    _, latest = load_checkpoint(trainer.run_dir / "latest.pt")
    assert "pose_state_dict" not in latest.extra and set(latest.extra["optimizers"]) == {"depth"}


def test_dataset_poses_required(tmp_path):
    class NoPoses(torch.utils.data.Dataset):
        def __init__(self):
            self.inner = SyntheticDataset(1, 6, 32, 96, seed=0, num_scales=3, is_train=False)

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, i):
            return {k: v for k, v in self.inner[i].items()
                    if not (isinstance(k, tuple) and k[0] == "pose_gt")}

    trainer = Trainer(TrainConfig(**CFG, pose_source="dataset", log_dir=str(tmp_path)),
                      train_dataset=NoPoses())
    with pytest.raises(ValueError, match="pose_source 'dataset' needs samples"):
        trainer.train()


def test_unknown_pose_source_is_refused():
    with pytest.raises(ValueError, match="pose_source"):
        TrainConfig(**CFG, pose_source="imu")
