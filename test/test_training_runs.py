"""Training you can trust: exact resume with DataLoader workers, checked data_options, held-out
metrics on any data set with depth, and the run-folder details (resume errors, stale temporary
files, finished runs, JSON, TensorBoard after resume, --keep, log lines, help text)."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from torch.utils.data import Dataset

from lsmdepth_ros.checkpoints import load_checkpoint
from lsmdepth_ros.cli import build_parser, main
from lsmdepth_ros.training.config import TrainConfig
from lsmdepth_ros.training.datasets.base import DEPTH_KEY
from lsmdepth_ros.training.datasets.synthetic import SyntheticDataset
from lsmdepth_ros.training.trainer import Trainer, TrainSummary, summary_dict

TINY = {"model": "lite-mono-tiny", "height": 32, "width": 96, "batch_size": 2,
        "num_workers": 0, "progress": False, "log_interval": 1, "image_interval": 0,
        "val_samples": 2, "warmup_steps": 2, "threads": 1,
        "model_options": {"drop_path_rate": 0.1}}
DATA = {"train_sequences": 1, "val_sequences": 1, "frames_per_sequence": 11}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(tmp_path, name, **overrides):
    return TrainConfig(**{**TINY, "steps": 6, "checkpoint_interval": 3, "log_dir": str(tmp_path),
                          "run_name": name, "data_options": DATA, **overrides})


def _weights(trainer):
    return {f"{n}.{k}": v.clone() for n, m in trainer.networks.items()
            for k, v in m.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------------
# 1. exact resume whatever num_workers


def test_resume_with_workers_is_bit_exact_and_independent_of_worker_count(tmp_path):
    # 9 samples / batch 2: the run crosses an epoch boundary; the resume point (3) is mid-epoch;
    # flips, colour jitter, drop-path and automask noise all draw random numbers.
    full = Trainer(_config(tmp_path, "full", num_workers=2))
    losses_full = full.train().losses
    half = Trainer(_config(tmp_path, "split", num_workers=2))
    first = half.train(until_step=3)   # its DataLoader workers die with it, as in a kill
    del half
    resumed = Trainer(_config(tmp_path, "split", num_workers=2), resume=tmp_path / "split")
    second = resumed.train()
    assert first.losses + second.losses == losses_full
    assert _same(_weights(full), _weights(resumed))
    # the samples do not depend on which process loads them: no workers, same run
    inline = Trainer(_config(tmp_path, "inline", num_workers=0))
    assert inline.train().losses == losses_full
    assert _same(_weights(full), _weights(inline))
    fresh = Trainer(_config(tmp_path, "fresh"))
    assert not _same(_weights(fresh), _weights(full))     # training did change the weights


def _cli_config(tmp_path, name, **overrides):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TINY, "steps": 8, "checkpoint_interval": 2,
                                    "log_dir": str(tmp_path), "run_name": name,
                                    "num_workers": 1, "data_options": DATA, **overrides}))
    return path


def test_sigkilled_run_with_workers_resumes_to_the_uninterrupted_weights(tmp_path):
    assert main(["train", "--config", str(_cli_config(tmp_path, "whole"))]) == 0
    cfg = _cli_config(tmp_path, "killed")
    run = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "lsmdepth_ros.cli", "train", "--config",
                             str(cfg)], env=os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not (run / "step_000002.pt").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)      # the trainer and its DataLoader worker
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (run / "model.pt").exists()
    (run / ".latest.pt.stale.tmp").write_bytes(b"half a checkpoint")   # a save cut short
    assert main(["train", "--resume", str(run)]) == 0
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))
    a, info_a = load_checkpoint(tmp_path / "whole" / "model.pt")
    b, info_b = load_checkpoint(run / "model.pt")
    assert info_b.extra["steps"] == 8
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    pa, pb = info_a.extra["pose_state_dict"], info_b.extra["pose_state_dict"]
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


# ----------------------------------------------------------------------------------------------
# 2. data_options checked before anything is written


@pytest.mark.parametrize("text, expected", [
    ("data_options: {train_sequence: 2}", "unknown data_options key(s) ['train_sequence']"),
    ("data_options: {train_sequences:2}", "a colon needs a space after it"),
    ("data_options: {train_sequences: two}", "data_options.train_sequences expects an integer"),
    ("{data_kind: kitti, data_options: {stride: 2}}", "data_kind 'kitti' needs data_path"),
    ("{data_kind: folder, data_path: x, data_options: {train_sequences: 2}}",
     "valid keys: ['intrinsics', 'stride']"),
])
def test_bad_data_options_exit_2_with_one_line_before_writing(tmp_path, capsys, text, expected):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**TINY, "log_dir": str(tmp_path / "runs"), "run_name": "r"})
                   + text + "\n" if text.startswith("data_options") else
                   yaml.safe_dump({**TINY, "log_dir": str(tmp_path / "runs"), "run_name": "r",
                                   **yaml.safe_load(text)}))
    assert main(["train", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_new_data_set_options_are_picked_up_from_the_constructor(monkeypatch):
    from lsmdepth_ros.training.datasets import registry

    class Foggy(SyntheticDataset):
        def __init__(self, num_sequences: int = 1, frames_per_sequence: int = 6,
                     height: int = 32, width: int = 96, seed: int = 0, fog: float = 0.0,
                     cache_frames: int = 0, **common):
            super().__init__(num_sequences, frames_per_sequence, height, width, seed,
                             cache_frames=cache_frames, **common)
            self.fog = fog

    entry = registry.DATASETS["synthetic"]
    monkeypatch.setitem(registry.DATASETS, "synthetic",
                        registry.DataKind(Foggy, entry.build, entry.summary,
                                          entry.set_by_builder, entry.builder_options,
                                          entry.needs_path))
    assert registry.check_data_config("synthetic", "", {"fog": 0.5}) == []
    assert registry.check_data_config("synthetic", "", {"fog": "thick"}) == \
        ["data_options.fog expects a number, got 'thick'"]
    train, _ = registry.build_datasets(TrainConfig(**TINY, data_options={
        "fog": 0.25, "train_sequences": 1, "frames_per_sequence": 5}), 3)
    assert isinstance(train, Foggy) and train.fog == 0.25


# ----------------------------------------------------------------------------------------------
# 4. held-out metrics on any data set whose samples carry depth


class _PlainHeldOut(Dataset):
    """Not a MonoDataset and says nothing about depth: its samples just carry it."""

    def __init__(self, with_depth):
        self.inner = SyntheticDataset(1, 4, 32, 96, seed=5, frame_ids=(0,), num_scales=1,
                                      load_depth=True)
        self.with_depth = with_depth

    def __len__(self):
        return len(self.inner)

    def __getitem__(self, i):
        sample = self.inner[i]
        return sample if self.with_depth else {k: v for k, v in sample.items() if k != DEPTH_KEY}


def test_held_out_metrics_on_any_data_set_that_provides_depth(tmp_path, caplog):
    train = SyntheticDataset(1, 6, 32, 96, seed=0, num_scales=3, is_train=True)
    tr = Trainer(_config(tmp_path, "plain", steps=1), train_dataset=train,
                 val_dataset=_PlainHeldOut(True))
    metrics = tr.train().metrics
    reference = tr.evaluate(SyntheticDataset(1, 4, 32, 96, seed=5, frame_ids=(0,),
                                             num_scales=1, load_depth=True))
    assert metrics == reference and 0 < metrics["abs_rel"] < 1
    caplog.set_level("INFO")
    tr = Trainer(_config(tmp_path, "nodepth", steps=1), train_dataset=train,
                 val_dataset=_PlainHeldOut(False))
    summary = tr.train()
    assert summary.metrics == {} and summary.model_path
    assert "no held-out depth metrics" in caplog.text


# ----------------------------------------------------------------------------------------------
# 5. run folder details


def test_resume_errors_name_the_run_folder(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nope") in err and "config.yaml" not in err
    (tmp_path / "empty_run").mkdir()
    assert main(["train", "--resume", str(tmp_path / "empty_run")]) == 2
    assert f"run folder {tmp_path / 'empty_run'}" in capsys.readouterr().err


def test_finished_run_is_left_alone_and_raised_steps_extend_it(tmp_path, capsys):
    cfg = _cli_config(tmp_path, "done", steps=2, num_workers=0, checkpoint_interval=1)
    assert main(["train", "--config", str(cfg), "--keep", "1"]) == 0
    run = tmp_path / "done"
    assert [p.name for p in run.glob("step_*.pt")] == ["step_000002.pt"]
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in run.iterdir()}
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "already finished" in out and "nothing written" in out
    assert {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in run.iterdir()} == before
    assert main(["train", "--resume", str(run), "--steps", "3"]) == 0
    _, info = load_checkpoint(run / "model.pt")
    assert info.extra["steps"] == 3


def test_summary_json_has_no_nan():
    summary = TrainSummary(run_dir="r", steps=1, final_loss=math.nan,
                           metrics={"abs_rel": math.inf, "a1": 0.5})
    text = json.dumps(summary_dict(summary), allow_nan=False)
    assert json.loads(text)["final_loss"] is None and json.loads(text)["metrics"]["a1"] == 0.5


def _scalar_steps(run, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_has_no_duplicate_steps_after_resume(tmp_path):
    full = Trainer(_config(tmp_path, "tb_full"))
    full.train()
    full.close()
    killed = Trainer(_config(tmp_path, "tb"))
    killed.train(until_step=5)   # checkpoint at 3, logged 4 and 5, then "killed"
    killed.close()
    resumed = Trainer(_config(tmp_path, "tb"), resume=tmp_path / "tb" / "step_000003.pt")
    resumed.train()
    resumed.close()
    got = _scalar_steps(tmp_path / "tb", "loss/total")
    assert [s for s, _ in got] == [1, 2, 3, 4, 5, 6]
    assert got == _scalar_steps(tmp_path / "tb_full", "loss/total")


def test_plain_log_line_every_log_interval_without_progress_bar(tmp_path, caplog):
    caplog.set_level("INFO", logger="lsmdepth_ros.training.trainer")
    Trainer(_config(tmp_path, "lines", steps=4, log_interval=2, val_samples=0)).train()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert [line.split(",")[0] for line in lines if "loss" in line] == ["step 2/4", "step 4/4"]
    assert "lr/depth" in lines[0] and "images/s" in lines[0]


@pytest.mark.parametrize("command", ["train", "evaluate", "synth"])
def test_every_flag_has_help_and_shows_its_default(command):
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices[command]
    for action in p._actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings} has no help text"
        default = action.default
        if default not in (None, False, []) and default is not argparse.SUPPRESS:
            helptext = p._get_formatter()._expand_help(action)
            assert f"(default: {default})" in helptext, (command, action.option_strings)
    if command == "train":   # shortcuts of config keys: the config holds their defaults
        for flag in ("--model", "--steps", "--device", "--keep"):
            assert "default: the config's" in p._option_string_actions[flag].help


def test_resume_takes_the_newest_step_file_when_latest_was_not_yet_updated(tmp_path):
    # a kill between writing step_XXXXXX.pt and pointing latest.pt at it
    from lsmdepth_ros.training.state import resolve_resume

    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(FileNotFoundError, match="saved no checkpoint"):
        resolve_resume(run)
    (run / "latest.pt").write_bytes(b"step 2")
    assert resolve_resume(run) == run / "latest.pt"
    for step in (2, 4):
        (run / f"step_{step:06d}.pt").write_bytes(b"x")
    assert resolve_resume(run) == run / "step_000004.pt"
    (run / "latest.pt").unlink()
    assert resolve_resume(run) == run / "step_000004.pt"
