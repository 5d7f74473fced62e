"""Nothing lost on faults: files written whole or not at all, and training killed mid-epoch resumed exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import epiformer as ef
from epiformer._files import atomic_path
from epiformer._lightning import AtomicCheckpointIO
from epiformer.models import MethylGPT

SMALL = {"d_model": 16, "n_layers": 2, "n_heads": 2, "batch_size": 16, "progress": False}


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="interrupted"), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]  # no temporary file left behind
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_atomic_path_names_a_folder_it_cannot_write(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError, match=r"Cannot write .*out\.json.*folder you can write to"):
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("{}")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_save_pretrained_leaves_the_previous_model(tmp_path, monkeypatch):
    import safetensors.torch

    first = MethylGPT(ef.models.MethylGPTVocab.from_probes([f"cg{i:08d}" for i in range(8)]), d_model=16, n_layers=1)
    folder = tmp_path / "model"
    first.save_pretrained(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"\0" * 100)  # a partial file, as a process killed mid-write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    second = MethylGPT(ef.models.MethylGPTVocab.from_probes([f"cg{i:08d}" for i in range(8)]), d_model=16, n_layers=1)
    with pytest.raises(KeyboardInterrupt):
        second.save_pretrained(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    monkeypatch.undo()
    loaded = MethylGPT.from_pretrained(folder)
    for key, value in first.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_interrupted_lightning_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    from lightning.pytorch.plugins import TorchCheckpointIO

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 0, "state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()

    def crash(self, checkpoint, target, storage_options=None):
        with open(target, "wb") as handle:
            handle.write(before[:50])  # part of a checkpoint, as a process killed mid-write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 1, "state_dict": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert io.load_checkpoint(path)["epoch"] == 0


_KILLED_RUN = """
import os
import signal
import sys

import epiformer as ef
from epiformer.models.methylgpt._pretraining import PretrainModule

step = PretrainModule.training_step


def training_step(self, batch, batch_idx):
    if self.current_epoch == 1 and batch_idx == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # as a scheduler or the OOM killer stops a job: no clean-up runs
    return step(self, batch, batch_idx)


PretrainModule.training_step = training_step
cohort = ef.datasets.synthetic_methylome(80, 48, missing_rate=0.05, random_state=1)
ef.tl.pretrain(cohort, max_epochs=3, ckpt_dir=sys.argv[1], d_model=16, n_layers=2, n_heads=2, batch_size=16,
               progress=False)
"""


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_training_killed_mid_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(_KILLED_RUN))
    ckpt_dir = tmp_path / "killed"
    done = subprocess.run(
        [sys.executable, str(script), str(ckpt_dir)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["epoch=0.ckpt", "last.ckpt"]  # epoch 1 never finished

    cohort = ef.datasets.synthetic_methylome(80, 48, missing_rate=0.05, random_state=1)
    full = ef.tl.pretrain(cohort.copy(), max_epochs=3, **SMALL)
    resumed = ef.tl.pretrain(cohort.copy(), max_epochs=3, ckpt_dir=ckpt_dir, resume=ckpt_dir / "last.ckpt", **SMALL)
    for key, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=1e-6)
    losses = ["train_loss", "val_loss"]
    np.testing.assert_allclose(resumed.history[losses].to_numpy(), full.history[losses].to_numpy()[1:], rtol=1e-6)
